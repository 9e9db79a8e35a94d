"""Soak: mixed traffic against a running torii while its resources are sampled every second.

Used by test_soak.py (a short run in CI that asserts no growth after warm-up) and by
`bench/run.sh soak` (minutes or hours against a Release build; CSV and a PNG plot).

Traffic, each kind in its own thread, as long as the run lasts: keep-alive clients mixing
cache hits, compressed text and plain responses; one request per connection with
`Connection: close`; TLS 1.3 connections (half of them resumed); slow clients that send their
request byte by byte and read a 100 KiB response a little at a time; clients that reset the
connection (RST) before or while the response arrives.

Samples: torii's resident memory (VmRSS), open descriptors, ESTABLISHED TCP connections to
the origin (torii's upstream connections), and from /metrics the cache's bytes and torii's
open connections.
"""
import os
import random
import socket
import ssl
import struct
import threading
import time
import urllib.request
import zlib

import harness as h

FIELDS = ("t", "rss_kib", "fds", "upstream", "cache_bytes", "connections")


def established_to(port):
    """ESTABLISHED TCP connections whose remote port is `port` (IPv4 and IPv6)."""
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except FileNotFoundError:
            pass
    return n


def scrape(admin, names):
    """{name: value summed over its samples} from torii's /metrics."""
    url = f"http://{admin[0]}:{admin[1]}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    out = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


class Soak:
    """Runs the traffic against `addr` (plain) and `tls_addr` (TLS, optional) of torii process
    `pid`, whose origin listens on `origin_port`, sampling every `interval` seconds."""

    def __init__(self, pid, addr, admin, origin_port, tls_addr=None, tls_ca=None,
                 interval=1.0, clients=None):
        self.pid = pid
        self.addr = addr
        self.admin = admin
        self.origin_port = origin_port
        self.tls_addr = tls_addr
        self.tls_ca = tls_ca
        self.interval = interval
        self.clients = clients or {"keepalive": 2, "close": 1, "tls": 1, "slow": 1, "reset": 1}
        self.samples = []
        self.counts = {}
        self.errors = {}
        self.last_error = {}  # kind: the last exception it saw
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # ---- traffic ----

    def _note(self, kind, error):
        with self._lock:
            self.last_error[kind] = repr(error)

    def _count(self, kind, ok=True):
        with self._lock:
            table = self.counts if ok else self.errors
            table[kind] = table.get(kind, 0) + 1

    def _keepalive(self, rnd):
        c = None
        while not self._stop.is_set():
            try:
                if c is None:
                    c = h.Client(self.addr, timeout=10)
                pick = rnd.random()
                if pick < 0.5:  # a cache hit once stored (64 objects)
                    r = c.get(f"/static/o{rnd.randrange(64)}?size=4096&cc=max-age%3D3600")
                elif pick < 0.8:  # compressed on the fly
                    r = c.get("/text?size=20000&text=1&ct=text%2Fhtml",
                              headers={"Accept-Encoding": "gzip"})
                else:
                    r = c.get(f"/?size={rnd.randrange(100, 8000)}")
                self._count("keepalive", r.status == 200)
                if (r.header("connection") or "").lower() == "close":
                    c.sock.close()
                    c = None
            except (OSError, TimeoutError, ConnectionError, h.Malformed) as e:
                self._count("keepalive", False)
                self._note("keepalive", e)
                if c is not None:
                    c.sock.close()
                c = None
                time.sleep(0.05)
        if c is not None:
            c.sock.close()

    def _close(self, rnd):
        while not self._stop.is_set():
            try:
                c = h.Client(self.addr, timeout=10)
                r = c.get(f"/?size={rnd.randrange(100, 4000)}", headers={"Connection": "close"})
                c.sock.close()
                self._count("close", r.status == 200)
            except (OSError, TimeoutError, ConnectionError, h.Malformed) as e:
                self._count("close", False)
                self._note("close", e)
                time.sleep(0.05)

    def _tls(self, rnd):
        ctx = ssl.create_default_context(cafile=self.tls_ca)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        session = None
        while not self._stop.is_set():
            try:
                raw = socket.create_connection(self.tls_addr, timeout=10)
                s = ctx.wrap_socket(raw, server_hostname="a.test",
                                    session=session if rnd.random() < 0.5 else None)
                c = h.Client(None, timeout=10, sock=s)
                for _ in range(rnd.randrange(1, 4)):
                    r = c.get(f"/?size={rnd.randrange(100, 4000)}", host="a.test")
                    self._count("tls", r.status == 200)
                    if r.status != 200:
                        self._note("tls", r)
                session = s.session
                s.close()
            except (OSError, ssl.SSLError, TimeoutError, ConnectionError, h.Malformed) as e:
                self._count("tls", False)
                self._note("tls", e)
                time.sleep(0.05)

    def _slow(self, rnd):
        while not self._stop.is_set():
            try:
                s = h.connect(self.addr, timeout=10, rcvbuf=4096)
                req = h.build_request("GET", "/?size=102400", headers={"Connection": "close"})
                for i in range(0, len(req), 7):
                    s.sendall(req[i:i + 7])
                    time.sleep(0.002)
                got = 0
                while True:
                    chunk = s.recv(2048)
                    if not chunk:
                        break
                    got += len(chunk)
                    time.sleep(0.001)
                s.close()
                self._count("slow", got > 102400)
            except (OSError, TimeoutError) as e:
                self._count("slow", False)
                self._note("slow", e)
                time.sleep(0.05)

    def _reset(self, rnd):
        while not self._stop.is_set():
            try:
                s = h.connect(self.addr, timeout=10)
                s.sendall(h.build_request("GET", f"/?size={rnd.choice([1000, 100000, 1000000])}"))
                if rnd.random() < 0.5:
                    s.recv(rnd.randrange(1, 20000))  # part of the response first
                h.rst_close(s)
                self._count("reset")
                time.sleep(0.005)
            except (OSError, TimeoutError) as e:
                self._count("reset", False)
                self._note("reset", e)
                time.sleep(0.05)

    # ---- sampling ----

    def sample(self, t):
        m = scrape(self.admin, ("torii_cache_bytes", "torii_connections"))
        return {"t": round(t, 1), "rss_kib": h.vm_rss_kib(self.pid), "fds": h.fd_count(self.pid),
                "upstream": established_to(self.origin_port),
                "cache_bytes": int(m["torii_cache_bytes"]),
                "connections": int(m["torii_connections"])}

    def run(self, seconds, on_sample=None):
        """Traffic for `seconds`, sampling meanwhile; returns the samples."""
        threads = []
        kinds = {"keepalive": self._keepalive, "close": self._close, "slow": self._slow,
                 "reset": self._reset}
        if self.tls_addr is not None:
            kinds["tls"] = self._tls
        for kind, fn in kinds.items():
            for i in range(self.clients.get(kind, 0)):
                t = threading.Thread(target=fn, args=(random.Random(hash((kind, i))),),
                                     daemon=True)
                t.start()
                threads.append(t)
        start = time.monotonic()
        next_at = start
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            if now >= next_at:
                s = self.sample(now - start)
                self.samples.append(s)
                if on_sample:
                    on_sample(s)
                next_at += self.interval
            time.sleep(min(0.1, max(0.0, next_at - time.monotonic())))
        self._stop.set()
        for t in threads:
            t.join(timeout=30)
        return self.samples


def slope(samples, field, after):
    """Least-squares growth of `field` per second over the samples taken at t >= after."""
    pts = [(s["t"], s[field]) for s in samples if s["t"] >= after]
    n = len(pts)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    den = sum((t - mt) ** 2 for t, _ in pts)
    return sum((t - mt) * (v - mv) for t, v in pts) / den if den else 0.0


def write_csv(samples, path):
    with open(path, "w") as f:
        f.write(",".join(FIELDS) + "\n")
        for s in samples:
            f.write(",".join(str(s[k]) for k in FIELDS) + "\n")


# ---- a PNG line chart, no dependencies: one panel per series, from 0 to its maximum ----

# 3x5 glyphs: five rows top to bottom, each an octal digit of 3 bits (4 = left column).
_FONT = {
    "0": "75557", "1": "26227", "2": "71747", "3": "71717", "4": "55711", "5": "74717",
    "6": "74757", "7": "71111", "8": "75757", "9": "75717", ".": "00002", " ": "00000",
    "/": "11244", "-": "00700", "A": "25755", "B": "65656", "C": "74447", "D": "65556",
    "E": "74647", "F": "74644", "G": "74557", "H": "55755", "I": "72227", "K": "55655",
    "L": "44447", "M": "57755", "N": "65555", "O": "75557", "P": "75744", "R": "75765",
    "S": "74717", "T": "72222", "U": "55557", "W": "55775", "X": "55255", "Y": "55222",
}


def _glyph(ch):
    return [int(c, 8) for c in _FONT.get(ch.upper(), "00000")]


def plot_png(samples, path, series=(("rss_kib", "RSS KIB"), ("fds", "FDS"),
                                    ("upstream", "UPSTREAM CONNS"),
                                    ("cache_bytes", "CACHE BYTES"),
                                    ("connections", "CONNECTIONS"))):
    w, panel, pad = 900, 120, 6
    hgt = panel * len(series)
    img = [[(255, 255, 255)] * w for _ in range(hgt)]

    def put(x, y, c):
        if 0 <= x < w and 0 <= y < hgt:
            img[y][x] = c

    def text(x, y, s, c=(0, 0, 0)):
        for ch in s:
            for r, bits in enumerate(_glyph(ch)):
                for b in range(3):
                    if bits & (4 >> b):
                        for dx in (0, 1):
                            for dy in (0, 1):
                                put(x + 2 * b + dx, y + 2 * r + dy, c)
            x += 8

    def line(x0, y0, x1, y1, c):
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            put(round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n), c)

    t_end = max((s["t"] for s in samples), default=1) or 1
    left, right = 90, w - 10
    for p, (field, label) in enumerate(series):
        top = p * panel + pad + 16
        bottom = (p + 1) * panel - pad
        vals = [s[field] for s in samples]
        # From zero, so that flat reads as flat and growth as growth.
        lo, hi = 0, max(max(vals, default=1) * 1.1, 1)
        line(left, bottom, right, bottom, (160, 160, 160))
        line(left, top, left, bottom, (160, 160, 160))
        text(left, p * panel + pad, label)
        text(4, top, str(int(hi)))
        text(4, bottom - 14, str(int(lo)))
        prev = None
        for s in samples:
            x = left + round((right - left) * s["t"] / t_end)
            y = bottom - round((bottom - top) * (s[field] - lo) / (hi - lo))
            if prev:
                line(prev[0], prev[1], x, y, (30, 80, 200))
            prev = (x, y)
    text(right - 8 * 12, hgt - 14, f"{int(t_end)} S")
    raw = b"".join(b"\x00" + bytes(v for px in row for v in px) for row in img)

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data +
                struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, hgt, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def main():
    """bench/run.sh soak: SOAK_SECONDS of traffic against the binaries in TORII_BIN and
    TORII_ORIGIN_BIN; CSV, PNG and a summary into SOAK_OUT (a folder)."""
    from test_tls import Pki
    seconds = float(os.environ.get("SOAK_SECONDS", "600"))
    out = os.environ.get("SOAK_OUT", ".")
    os.makedirs(out, exist_ok=True)
    pki = Pki()
    leaf = pki.leaf("a", ["a.test"])
    origin = h.Origin("soak", threads=2)
    torii = None
    try:
        torii = h.Torii(soak_config(origin, leaf["cert"], leaf["key"]))
        s = Soak(torii.pid, torii.addr("http"), torii.addr("admin"), origin.port,
                 tls_addr=torii.addr("https"), tls_ca=pki.path("ca.crt"))
        s.run(seconds, on_sample=lambda x: print(",".join(str(x[k]) for k in FIELDS),
                                                flush=True) if int(x["t"]) % 30 == 0 else None)
        time.sleep(3)
        after = s.sample(seconds + 3)
        write_csv(s.samples, os.path.join(out, "soak.csv"))
        plot_png(s.samples, os.path.join(out, "soak.png"))
        warm = min(60.0, seconds / 4)
        first = next(x for x in s.samples if x["t"] >= warm)
        last = s.samples[-1]
        lines = [
            f"soak: {seconds:.0f} s of mixed traffic; requests {dict(sorted(s.counts.items()))}",
            f"errors {dict(sorted(s.errors.items()))}",
            f"after warm-up ({warm:.0f} s) -> end: RSS {first['rss_kib']} -> {last['rss_kib']} KiB "
            f"(trend {slope(s.samples, 'rss_kib', warm) * 3600:+.0f} KiB/h), fds {first['fds']} "
            f"-> {last['fds']}, upstream {first['upstream']} -> {last['upstream']}, cache bytes "
            f"{first['cache_bytes']} -> {last['cache_bytes']}",
            f"3 s after the load stopped: RSS {after['rss_kib']} KiB, fds {after['fds']}, "
            f"connections {after['connections']}, upstream {after['upstream']}",
        ]
        with open(os.path.join(out, "soak.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n".join(lines))
    finally:
        if torii is not None:
            torii.stop()
        origin.stop()
        pki.cleanup()


def soak_config(origin, cert, key, workers=1):
    """Plain and TLS listeners, a cached /static/ route, compression on, admin on."""
    c = h.proxy_config([origin], workers=workers, pool_extra={"keepalive": 16})
    c.listeners.append({"name": "https", "address": "127.0.0.1:0",
                        "tls": {"certificates": [{"cert": cert, "key": key}]}})
    c.routes = [{"host": "*", "path_prefix": "/static/", "pool": "app", "cache": "objects"},
                {"host": "*", "path_prefix": "/", "pool": "app", "compress": True}]
    c.tables["cache.objects"] = {"memory": "4MiB", "max_object": "64KiB"}
    c.tables["compression"] = {"algorithms": ["gzip"], "gzip_level": 1}
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    return c


if __name__ == "__main__":
    main()
