"""Compression through the real binary (issue #8): every coding decoded with the real tools
(gzip -d, brotli -d, zstd -d) and compared byte for byte with the origin's body, chunked and
Content-Length origins, negotiation by the server's preference, each skip rule, Vary and weak
ETags, keep-alive after a compressed body, HTTP/1.0 clients, and a 50 MiB body in bounded
memory."""

import os
import shutil
import subprocess
import tempfile
import time
import unittest
import zlib

import harness as h

TOOLS = {"gzip": ["gzip", "-d", "-c"], "br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c"]}


def decode_with_tool(coding, data):
    tool = TOOLS[coding]
    if shutil.which(tool[0]) is None:
        raise unittest.SkipTest(f"{tool[0]} is not installed (scripts/install-deps.sh installs it)")
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        return subprocess.run(tool + [f.name], capture_output=True, check=True, timeout=60).stdout


def compression_config(origin, compression=None, route_extra=None):
    c = h.proxy_config([origin])
    c.routes[0]["compress"] = True
    c.routes[0].update(route_extra or {})
    if compression is not None:
        c.tables["compression"] = compression
    return c


class Codings(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(compression_config(cls.o))
        cls.addr = cls.t.addr()

    def tearDown(self):
        self.t.check_alive()

    def plain(self, path):
        r = h.get(self.addr, path)
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Encoding"))
        return r.body

    def test_every_coding_decodes_with_the_real_tool(self):
        for path in ("/?size=100000", "/?size=100000&chunked=1", "/?size=300"):
            want = self.plain(path)
            for coding in ("gzip", "br", "zstd"):
                with self.subTest(path=path, coding=coding):
                    r = h.get(self.addr, path, headers=[("Accept-Encoding", coding)])
                    self.assertEqual(r.status, 200)
                    self.assertEqual(r.header("Content-Encoding"), coding)
                    self.assertEqual(r.header("Vary"), "Accept-Encoding")
                    self.assertIsNone(r.header("Content-Length"))
                    self.assertEqual(r.header("Transfer-Encoding"), "chunked")
                    self.assertEqual(decode_with_tool(coding, r.body), want)
                    if len(want) >= 100000:
                        self.assertLess(len(r.body), len(want) // 4)

    def test_server_preference_among_accepted_codings(self):
        cases = [
            ("gzip, deflate, br, zstd", "br"),
            ("gzip;q=1.0, zstd;q=0.5", "zstd"),   # the server's order wins over q
            ("br;q=0, gzip", "gzip"),
            ("*", "br"),
            ("*;q=0, gzip", "gzip"),
            ("identity", None),
            ("deflate", None),
            ("GZIP", "gzip"),
            ("gzip;q=bogus", None),
        ]
        for accept, want in cases:
            with self.subTest(accept=accept):
                r = h.get(self.addr, "/?size=5000", headers=[("Accept-Encoding", accept)])
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("Content-Encoding"), want)
        # No Accept-Encoding at all: sent as it is (but Vary says it could differ).
        r = h.get(self.addr, "/?size=5000")
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertEqual(r.header("Vary"), "Accept-Encoding")

    def test_skip_rules(self):
        ae = [("Accept-Encoding", "gzip")]
        skip = {
            "small body": "/?size=100",
            "not a compressible type": "/?size=5000&ct=image/png",
            "already encoded": "/?size=5000&hdr=Content-Encoding:zstd",
            "no-transform": "/?size=5000&cc=no-transform",
            "private (BREACH)": "/?size=5000&cc=private,%20max-age=60",
            "sets a cookie (BREACH)": "/?size=5000&hdr=Set-Cookie:%20sid=secret",
            "204": "/?status=204",
        }
        for why, path in skip.items():
            with self.subTest(why=why):
                r = h.get(self.addr, path, headers=ae)
                if why == "already encoded":
                    self.assertEqual(r.header("Content-Encoding"), "zstd")  # passed through
                else:
                    self.assertIsNone(r.header("Content-Encoding"))
        # HEAD: no body, no coding.
        r = h.get(self.addr, "/?size=5000", method="HEAD", headers=ae)
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Encoding"))
        # A Range request is not compressed (a 206 of an encoded body would be meaningless).
        r = h.get(self.addr, "/?size=5000", headers=ae + [("Range", "bytes=0-10")])
        self.assertIsNone(r.header("Content-Encoding"))

    def test_strong_etag_is_weakened_and_vary_merged(self):
        ae = [("Accept-Encoding", "br")]
        r = h.get(self.addr, "/?size=5000&etag=v7&hdr=Vary:Cookie", headers=ae)
        self.assertEqual(r.header("Content-Encoding"), "br")
        self.assertEqual(r.header("ETag"), 'W/"v7"')
        self.assertEqual(r.header("Vary"), "Cookie, Accept-Encoding")
        r = h.get(self.addr, "/?size=5000&etag=v7")
        self.assertEqual(r.header("ETag"), '"v7"')

    def test_keepalive_after_compressed_bodies_and_http10(self):
        with h.Client(self.addr) as c:
            for coding in ("gzip", "br", "zstd", "gzip"):
                r = c.get("/?size=20000", headers=[("Accept-Encoding", coding)])
                self.assertEqual(r.header("Content-Encoding"), coding)
                self.assertEqual(len(decode_with_tool(coding, r.body)), 20000)
            self.assertEqual(c.get("/?size=10").body, self.plain("/?size=10"))
        # HTTP/1.0: close-delimited.
        data, closed = h.raw(self.addr, b"GET /?size=20000 HTTP/1.0\r\nHost: a\r\n"
                                        b"Accept-Encoding: gzip\r\n\r\n", timeout=10)
        self.assertTrue(closed)
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertIn(b"Content-Encoding: gzip", head)
        self.assertNotIn(b"chunked", head.lower())
        self.assertEqual(decode_with_tool("gzip", body), self.plain("/?size=20000"))


class Decompress(h.ToriiCase):
    def test_backend_coding_decoded_only_for_clients_that_do_not_accept_it(self):
        o = self.origin("o1")
        t = self.torii(compression_config(o, {"decompress": True}))
        want = h.pattern_bytes(100000)
        for coding in ("gzip", "br", "zstd"):
            with self.subTest(coding=coding):
                path = f"/encoded?coding={coding}&size=100000"
                # A client that accepts it gets the backend's bytes untouched.
                r = h.get(t.addr(), path, headers=[("Accept-Encoding", coding)])
                self.assertEqual(r.header("Content-Encoding"), coding)
                self.assertEqual(decode_with_tool(coding, r.body), want)
                # One that does not gets them decoded.
                r = h.get(t.addr(), path, headers=[("Accept-Encoding", "identity")])
                self.assertEqual(r.status, 200)
                self.assertIsNone(r.header("Content-Encoding"))
                self.assertEqual(r.header("Vary"), "Accept-Encoding")
                self.assertEqual(r.body, want)
        # A body that is not what its Content-Encoding says: the client connection is cut
        # (the head already went out), never garbage presented as a complete body.
        s = h.connect(t.addr())
        self.addCleanup(s.close)
        s.sendall(b"GET /encoded?coding=garbage HTTP/1.1\r\nHost: a\r\n\r\n")
        data, closed = h.read_until_eof(s, 5 * h.SLOW)
        self.assertTrue(closed)
        self.assertNotIn(b"0\r\n\r\n", data.partition(b"\r\n\r\n")[2])
        self.assertIn("could not be decoded", "\n".join(t.access_log_lines(wait_for_count=7)))
        t.check_alive()

    def test_off_by_default_the_backend_coding_passes_through(self):
        o = self.origin("o1")
        t = self.torii(compression_config(o))
        r = h.get(t.addr(), "/encoded?coding=gzip&size=5000")
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertEqual(decode_with_tool("gzip", r.body), h.pattern_bytes(5000))


class Settings(h.ToriiCase):
    def test_route_without_compress_and_algorithm_list_and_min_bytes(self):
        o = self.origin("o1")
        c = h.proxy_config([o], routes=[
            {"host": "*", "path_prefix": "/raw", "pool": "app"},
            {"host": "*", "path_prefix": "/", "pool": "app", "compress": True}])
        c.tables["compression"] = {"algorithms": ["gzip"], "min_bytes": "10KiB",
                                   "types": ["text/plain"], "gzip_level": 1}
        t = self.torii(c)
        ae = [("Accept-Encoding", "br, zstd, gzip")]
        self.assertIsNone(h.get(t.addr(), "/raw?size=50000", headers=ae).header("Content-Encoding"))
        self.assertEqual(h.get(t.addr(), "/?size=50000", headers=ae).header("Content-Encoding"), "gzip")
        self.assertIsNone(h.get(t.addr(), "/?size=5000", headers=ae).header("Content-Encoding"))
        r = h.get(t.addr(), "/?size=50000&ct=application/json", headers=ae)
        self.assertIsNone(r.header("Content-Encoding"))

    def test_gzip_levels_of_both_engines_decode_with_the_real_tool(self):
        # Levels 1-3 compress with ISA-L, 4-9 with zlib: `gzip -d` reads both, streamed
        # (chunked, flushed as the backend's pieces arrive) and whole.
        o = self.origin("o1")
        for level in (1, 3, 4):
            with self.subTest(level=level):
                t = self.torii(compression_config(o, {"algorithms": ["gzip"],
                                                      "gzip_level": level}))
                for path in ("/?size=300000&text=1", "/?size=300000&text=1&chunked=1"):
                    want = h.get(t.addr(), path).body
                    r = h.get(t.addr(), path, headers=[("Accept-Encoding", "gzip")])
                    self.assertEqual(r.header("Content-Encoding"), "gzip")
                    self.assertEqual(decode_with_tool("gzip", r.body), want)
                    self.assertLess(len(r.body), len(want) // 2)
                t.stop()

    def test_fifty_mib_in_bounded_memory(self):
        o = self.origin("o1")
        # A small ASan quarantine (RSS shows what is held, not what was freed) and a 20 MiB
        # compressed warm-up (every page of the provided-buffer ring touched, an encoder made).
        env = {"ASAN_OPTIONS": h.child_env()["ASAN_OPTIONS"] + ":quarantine_size_mb=1"}
        t = self.torii(compression_config(o), env_extra=env)
        size = 50 * 1024 * 1024
        warm = h.get(t.addr(), "/?size=20971520&chunked=1", headers=[("Accept-Encoding", "gzip")],
                     timeout=60)
        self.assertEqual(warm.header("Content-Encoding"), "gzip")
        rss_before = h.vm_rss_kib(t.pid)
        s = h.connect(t.addr(), timeout=60)
        self.addCleanup(s.close)
        s.sendall(f"GET /?size={size}&chunked=1 HTTP/1.1\r\nHost: a\r\n"
                  "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n".encode())
        raw = bytearray()
        peak = rss_before
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            b = s.recv(1 << 20)
            if not b:
                break
            raw += b
            peak = max(peak, h.vm_rss_kib(t.pid))
        head, _, body = bytes(raw).partition(b"\r\n\r\n")
        self.assertIn(b"Content-Encoding: gzip", head)
        # De-chunk, then gunzip incrementally.
        out = 0
        d = zlib.decompressobj(wbits=31)
        pos = 0
        check = h.PatternChecker()
        while True:
            line_end = body.index(b"\r\n", pos)
            n = int(body[pos:line_end], 16)
            pos = line_end + 2
            if n == 0:
                break
            piece = d.decompress(body[pos:pos + n])
            check(piece)
            out += len(piece)
            pos += n + 2
        out += len(d.flush())
        self.assertEqual(out, size)
        self.assertTrue(check.ok, "the decoded body is not the origin's")
        self.assertLess(len(body), size // 20)
        # Far less than the body: streamed, never buffered whole.
        print(f"[rss] 50 MiB compressed: {rss_before} -> peak {peak} KiB (+{peak - rss_before})")
        self.assertLess(peak - rss_before, 4 * 1024, f"RSS grew {peak - rss_before} KiB")
        t.check_alive()


if __name__ == "__main__":
    unittest.main()
