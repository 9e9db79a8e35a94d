#!/usr/bin/env python3
"""bench/ttfb.py: time to first byte of a response on a new connection, N times in a row.

    ttfb.py --addr 127.0.0.1:PORT [--path /?size=100] [--count 2000] [--fastopen]

Each round opens a TCP connection, sends one GET (Connection: close) and times from just
before socket() to the first response byte; the rest of the response is read and the
connection closed. --fastopen sends the request with MSG_FASTOPEN (in the SYN once the
kernel holds the server's cookie; the first round fetches it and is not counted). Prints one
line: median_us p90_us p99_us syn_data_fraction ok_count (syn_data_fraction: the share of
rounds whose SYN data the server accepted, TCP_INFO's TCPI_OPT_SYN_DATA)."""
import argparse
import socket
import statistics
import sys
import time

TCPI_OPT_SYN_DATA = 32


def one(host, port, request, fastopen):
    t0 = time.perf_counter_ns()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if fastopen:
            s.sendto(request, socket.MSG_FASTOPEN, (host, port))
        else:
            s.connect((host, port))
            s.sendall(request)
        first = s.recv(65536)
        t1 = time.perf_counter_ns()
        if not first.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"unexpected answer: {first[:80]!r}")
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        while s.recv(65536):
            pass
        return (t1 - t0) / 1000, bool(info[5] & TCPI_OPT_SYN_DATA)
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--path", default="/?size=100")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--fastopen", action="store_true")
    args = ap.parse_args()
    host, port = args.addr.rsplit(":", 1)
    request = (f"GET {args.path} HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n"
               .encode())
    one(host, int(port), request, args.fastopen)  # warm-up (and the cookie)
    times, syn = [], 0
    for _ in range(args.count):
        t, s = one(host, int(port), request, args.fastopen)
        times.append(t)
        syn += s
    times.sort()
    q = statistics.quantiles(times, n=100)
    print(f"{statistics.median(times):.1f} {q[89]:.1f} {q[98]:.1f} {syn / len(times):.2f} "
          f"{len(times)}")


if __name__ == "__main__":
    sys.exit(main())
