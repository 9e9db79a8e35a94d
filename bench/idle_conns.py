#!/usr/bin/env python3
"""bench/idle_conns.py: memory cost of idle keep-alive connections in a server.

  idle_conns.py --addr HOST:PORT --pid PID [--pid PID ...] [-n 10000] [--path /?size=100]
                [--batch 200] [--settle 3] [--label NAME] [--tls] [--h2c]

Opens N TCP connections to HOST:PORT; on each it sends one keep-alive GET and reads the
whole response (status 200 required, Content-Length framing), then leaves it idle. RSS
(VmRSS in /proc/PID/status, summed over every --pid) is read after a warm-up and again
once all N connections are idle; the difference divided by N is the server's user-space
memory per idle connection (kernel socket buffers are not in RSS). It also checks that the
server kept every connection open. With --tls every connection first completes a TLS
handshake (certificate not verified; the TLS state is then part of what an idle connection
costs). With --h2c every connection speaks HTTP/2 with prior knowledge instead: the preface,
SETTINGS (and the ACK of the server's), one GET on stream 1 read to its END_STREAM; the
connection then stays open and idle (the HPACK tables and whatever the server keeps per
HTTP/2 connection are part of the cost). The last line of output is machine-readable:

  RESULT label=NAME n=N alive=A rss_before_kib=B rss_after_kib=C bytes_per_conn=D

The soft RLIMIT_NOFILE is raised to the hard limit; N must fit under it.
Python 3 standard library only.
"""
import argparse
import resource
import socket
import ssl
import sys
import time


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def read_response(sock):
    """Reads one Content-Length-framed response; returns (status, body_len)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"transfer-encoding":
            raise ConnectionError("chunked response: use a path answered with Content-Length")
    if length is None:
        raise ConnectionError("response without Content-Length")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of the body")
        rest += chunk
    if len(rest) != length:
        raise ConnectionError(f"{len(rest) - length} unexpected bytes after the body")
    return status, length


H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_frame(ftype, flags, stream, payload=b""):
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags]) +
            stream.to_bytes(4, "big") + payload)


def h2_request(host, path):
    """Preface, empty SETTINGS, and HEADERS (END_STREAM | END_HEADERS) for GET `path` on
    stream 1, HPACK-encoded by hand: static-table indices and literals without Huffman."""
    def literal(index, value):
        v = value.encode()
        assert len(v) < 127
        return bytes([0x00 | index, len(v)]) + v  # literal without indexing, indexed name
    block = bytes([0x82, 0x86]) + literal(4, path) + literal(1, host)  # GET, http, :path, :auth
    return H2_PREFACE + h2_frame(4, 0, 0) + h2_frame(1, 0x05, 1, block)


def read_h2_response(sock):
    """Reads frames until stream 1 ends (its status is not decoded: HPACK would be needed;
    an RST_STREAM or GOAWAY instead is an error). ACKs the server's SETTINGS."""
    buf = b""
    while True:
        while len(buf) < 9 or len(buf) < 9 + int.from_bytes(buf[:3], "big"):
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the response ended")
            buf += chunk
        length = int.from_bytes(buf[:3], "big")
        ftype, flags = buf[3], buf[4]
        stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
        buf = buf[9 + length:]
        if ftype == 4 and not flags & 1:
            sock.sendall(h2_frame(4, 1, 0))  # SETTINGS ACK
        elif ftype in (3, 7):
            raise ConnectionError("RST_STREAM or GOAWAY instead of a response")
        elif ftype in (0, 1) and stream == 1 and flags & 1:
            return 200, 0


def open_batch(host, port, request, count, tls=None, h2c=False):
    socks = []
    try:
        for _ in range(count):
            s = socket.create_connection((host, port), timeout=15)
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname="bench.test")
            socks.append(s)
        for s in socks:
            s.sendall(request)
        for s in socks:
            status, _ = read_h2_response(s) if h2c else read_response(s)
            if status != 200:
                raise ConnectionError(f"status {status}, expected 200")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def alive(sock):
    sock.setblocking(False)  # a socket with a timeout would wait in recv() despite DONTWAIT
    try:
        # The plain socket's recv, also for a TLS socket (which refuses flags): it peeks at
        # raw bytes, enough to tell open from closed.
        data = socket.socket.recv(sock, 1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True  # nothing to read and not closed
    except OSError:
        return False
    return bool(data)  # b"" = the server closed it


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--addr", required=True)
    ap.add_argument("--pid", type=int, action="append", required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--path", default="/?size=100")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--label", default="server")
    ap.add_argument("--tls", action="store_true", help="TLS on every connection (not verified)")
    ap.add_argument("--h2c", action="store_true", help="HTTP/2 with prior knowledge")
    a = ap.parse_args()
    tls = None
    if a.tls:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    host, port = a.addr.rsplit(":", 1)
    port = int(port)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if a.n + 64 > soft:
        print(f"{a.label}: -n {a.n} needs {a.n + 64} file descriptors, the limit is {soft}; "
              f"use -n {soft - 64} or raise the hard limit", file=sys.stderr)
        return 2

    request = (f"GET {a.path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: torii-bench-idle\r\n"
               f"Accept: */*\r\n\r\n").encode()
    if a.h2c:
        request = h2_request(f"{host}:{port}", a.path)

    # Warm-up: 200 connections that connect, get a response and close, so the baseline already
    # includes the server's lazily allocated per-worker state (buffer pools, upstream pool).
    # Not --batch: with --batch N the burst itself must land after the baseline.
    # Both readings come `settle` seconds after the traffic before them: long enough for torii
    # to give back its receive ring's pages (after a quiet second), so neither reading holds
    # pages the other does not.
    for s in open_batch(host, port, request, min(200, a.n), tls, a.h2c):
        s.close()
    time.sleep(a.settle)
    before = rss_kib(a.pid)

    socks = []
    t0 = time.monotonic()
    try:
        while len(socks) < a.n:
            socks += open_batch(host, port, request, min(a.batch, a.n - len(socks)), tls, a.h2c)
    except (OSError, ConnectionError, ValueError, IndexError) as e:
        print(f"{a.label}: failed after {len(socks)} connections: {type(e).__name__}: {e}",
              file=sys.stderr)
        for s in socks:
            s.close()
        return 1
    opened_s = time.monotonic() - t0
    time.sleep(a.settle)
    after = rss_kib(a.pid)
    n_alive = sum(1 for s in socks if alive(s))
    for s in socks:
        s.close()
    per_conn = (after - before) * 1024 / a.n
    print(f"{a.label}: {a.n} connections opened in {opened_s:.1f}s, {n_alive} still open after "
          f"{a.settle:.0f}s idle; RSS {before} KiB -> {after} KiB: "
          f"{per_conn:,.0f} bytes per idle connection")
    print(f"RESULT label={a.label} n={a.n} alive={n_alive} rss_before_kib={before} "
          f"rss_after_kib={after} bytes_per_conn={per_conn:.0f}")
    return 0 if n_alive == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
