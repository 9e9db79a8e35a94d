#!/usr/bin/env python3
"""bench/check_http.py: checks that a proxy answers correctly before it is measured.

  check_http.py --addr HOST:PORT --path /?size=N --size N [--reference HOST:PORT]
                [--count K] [--wait SECONDS] [--tls [--cert FILE --key FILE]]

Waits up to --wait seconds for HOST:PORT to accept connections, then sends K requests over
one keep-alive connection and checks each response: status 200, body of exactly N bytes,
and (with --reference, the origin's address) the same body bytes as the origin serves for
the same path. Then it sends one more request on a fresh connection (the proxy must keep
accepting). Prints one line and exits 0 when all is well, 1 otherwise (with the reason).
Python 3 standard library only.
"""
import argparse
import http.client
import socket
import ssl
import sys
import time


def fetch(conn, path):
    conn.request("GET", path, headers={"User-Agent": "torii-bench-check"})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, resp.getheaders(), body


def wait_listening(host, port, seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--reference")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--wait", type=float, default=10.0)
    ap.add_argument("--name", default="server")
    ap.add_argument("--tls", action="store_true", help="speak TLS to --addr (not verified)")
    ap.add_argument("--cert", help="with --tls: a client certificate (PEM) to present")
    ap.add_argument("--key", help="its private key (PEM)")
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    port = int(port)

    if not wait_listening(host, port, a.wait):
        print(f"{a.name}: nothing accepts connections on {a.addr} after {a.wait}s")
        return 1
    expected = None
    if a.reference:
        rhost, rport = a.reference.rsplit(":", 1)
        rc = http.client.HTTPConnection(rhost, int(rport), timeout=10)
        st, _, expected = fetch(rc, a.path)
        rc.close()
        if st != 200 or len(expected) != a.size:
            print(f"{a.name}: the origin itself answered {st} with {len(expected)} bytes "
                  f"for {a.path} (expected 200, {a.size} bytes)")
            return 1
    def connect():
        if not a.tls:
            return http.client.HTTPConnection(host, port, timeout=10)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if a.cert:
            ctx.load_cert_chain(a.cert, a.key)
        return http.client.HTTPSConnection(host, port, timeout=10, context=ctx)

    try:
        conn = connect()
        for i in range(a.count):
            st, headers, body = fetch(conn, a.path)
            if st != 200:
                print(f"{a.name}: request {i + 1} GET {a.path} answered {st}, expected 200; "
                      f"headers {headers}; body {body[:200]!r}")
                return 1
            if len(body) != a.size:
                print(f"{a.name}: request {i + 1} GET {a.path}: body of {len(body)} bytes, "
                      f"expected {a.size}")
                return 1
            if expected is not None and body != expected:
                at = next(j for j in range(len(body)) if body[j] != expected[j])
                print(f"{a.name}: request {i + 1} GET {a.path}: body differs from the origin's "
                      f"at byte {at}")
                return 1
        conn.close()
        conn = connect()
        st, _, body = fetch(conn, a.path)
        conn.close()
        if st != 200 or len(body) != a.size:
            print(f"{a.name}: fresh connection: {st}, {len(body)} bytes (expected 200, {a.size})")
            return 1
    except (OSError, http.client.HTTPException) as e:
        print(f"{a.name}: GET {a.path} on {a.addr} failed: {type(e).__name__}: {e}")
        return 1
    print(f"{a.name}: {a.count + 1} x GET {a.path} -> 200, {a.size} bytes"
          + (", body identical to the origin's" if expected is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
