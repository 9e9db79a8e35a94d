"""Backend faults (BAD-INPUTS.md B1-B15): dead, slow, truncating, lying and garbage-speaking
origins. torii answers 502/503/504 where nothing usable came back, forwards every byte it got
when a response breaks mid-body (then aborts the client connection), and never reuses an
upstream connection whose state it cannot trust."""

import time
import unittest

import harness as h


class DeadBackends(h.ToriiCase):
    # B1: one of three origins stopped → every request still succeeds (connect errors are
    # retried on the next backend).
    def test_one_origin_down(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_))
        with h.Client(t.addr()) as c:
            for _ in range(6):  # warm: pooled connections to every origin
                self.assertEqual(c.get("/").status, 200)
        os_[1].stop()
        statuses, backends = [], set()
        with h.Client(t.addr()) as c:
            for i in range(200):
                r = c.get(f"/?i={i}")
                statuses.append(r.status)
                backends.add(r.header("X-Backend"))
        for i in range(20):  # and on fresh client connections
            statuses.append(h.get(t.addr(), "/").status)
        self.assertEqual(statuses.count(200), len(statuses),
                         f"errors: {[s for s in statuses if s != 200][:10]}")
        self.assertEqual(backends, {"o1", "o3"})

    # B1/B2: all origins down → 502 or 503 fast (well under 1 s), Retry-After on a 503.
    def test_all_origins_down(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        t = self.torii(h.proxy_config(os_))
        self.assertEqual(h.get(t.addr(), "/").status, 200)
        for o in os_:
            o.stop()
        for i in range(5):
            t0 = time.monotonic()
            r = h.get(t.addr(), "/")
            elapsed = time.monotonic() - t0
            self.assertIn(r.status, (502, 503))
            if r.status == 503:
                self.assertIsNotNone(r.header("Retry-After"))
            self.assertLess(elapsed, 1.0 * h.SLOW, f"request {i} took {elapsed:.2f}s")
        # Back in service once an origin returns (same port).
        os_[0].restart()
        self.assertEqual(h.get(t.addr(), "/").status, 200)


class Faults(h.ToriiCase):
    """One origin behind a pool with response_timeout 1 s."""

    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(h.proxy_config([cls.o],
                                               pool_extra={"response_timeout": "1s"}))
        cls.addr = cls.t.addr()

    def tearDown(self):
        self.t.check_alive()
        # After any fault, an ordinary request still works.
        self.assertEqual(h.get(self.addr, "/", timeout=5 * h.SLOW).status, 200)

    # B3: a backend that accepts but never answers → 504 at response_timeout (1 s).
    def test_b3_response_timeout(self):
        t0 = time.monotonic()
        r = h.get(self.addr, "/sleep", timeout=10)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.status, 504)
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 1.0 + 1.0 * h.SLOW)

    # B3: a slow but live backend (delay below the timeout) is waited for.
    def test_b3_slow_backend_within_timeout(self):
        r = h.get(self.addr, "/?delay=300")
        self.assertEqual(r.status, 200)

    # B4: the backend dies mid-body (FIN, RST, chunked): the client gets the head and exactly
    # the 10 body bytes that arrived, then EOF without a complete message.
    def test_b4_die_mid_body(self):
        for path in ("/die-mid", "/die-mid-rst", "/die-mid-chunked"):
            with self.subTest(path=path):
                data, closed = h.raw(self.addr, h.build_request("GET", path),
                                     timeout=5 * h.SLOW)
                self.assertTrue(closed)
                rs = h.parse_responses(data)
                self.assertEqual(len(rs), 1, data[:300])
                self.assertEqual(rs[0].status, 200)
                self.assertEqual(rs[0].body, b"0123456789")
                self.assertFalse(rs[0].complete, "a truncated body must not look complete")
                if path != "/die-mid-chunked":
                    self.assertEqual(rs[0].header("Content-Length"), "100000")

    # B6: non-HTTP garbage from the backend → 502.
    def test_b6_garbage(self):
        r = h.get(self.addr, "/garbage")
        self.assertEqual(r.status, 502)
        self.assertNotIn(b"NOT HTTP", r.body)

    # B7: framing the backend got wrong → 502; no NUL or CR is forwarded.
    def test_b7_bad_response_framing(self):
        for path in ("/cl-te", "/dup-cl", "/nul-hdr", "/cr-hdr", "/obs-fold", "/bad-status",
                     "/long-reason"):
            with self.subTest(path=path):
                data, _ = h.raw(self.addr, h.build_request(
                    "GET", path, headers={"Connection": "close"}), timeout=3 * h.SLOW)
                self.assertEqual(h.status_of(data), 502, data[:300])
                head = data.split(b"\r\n\r\n")[0]
                self.assertNotIn(b"\x00", data)
                self.assertNotIn(b"\r", head.replace(b"\r\n", b""))
                self.assertNotIn(b"X-Bad", data)
                self.assertNotIn(b"X-Folded", data)

    # B8: 304/204 with Content-Length have no body; the next request on the same client
    # connection is answered at once (no stall, no 504).
    def test_b8_bodiless_status_with_content_length(self):
        with h.Client(self.addr, timeout=3 * h.SLOW) as c:
            for path, status in (("/r304cl", 304), ("/r204cl", 204)):
                with self.subTest(path=path):
                    r = c.get(path)
                    self.assertEqual(r.status, status)
                    self.assertEqual(r.body, b"")
                    t0 = time.monotonic()
                    r = c.get("/")
                    self.assertEqual((r.status, r.body), (200, b"o1\n"))
                    self.assertLess(time.monotonic() - t0, 0.5 * h.SLOW)

    # B9: bytes after a complete response never answer a later request ("evil!").
    def test_b9_extra_bytes_after_response(self):
        with h.Client(self.addr) as c:
            for _ in range(10):
                r = c.get("/extra-bytes")
                self.assertEqual((r.status, r.body), (200, b"ok"))
                r = c.get("/")
                self.assertEqual(r.body, b"o1\n")
                self.assertNotIn(b"evil", r.body)
        for _ in range(5):
            self.assertEqual(h.get(self.addr, "/").body, b"o1\n")

    # B10: 103/100 interim responses are not mistaken for the final one: 200 within 1 s.
    def test_b10_interim_responses(self):
        for path in ("/103-then-200", "/100-then-200"):
            with self.subTest(path=path):
                with h.Client(self.addr) as c:
                    t0 = time.monotonic()
                    r = c.get(path, timeout=3)
                    self.assertLess(time.monotonic() - t0, 1.0 * h.SLOW)
                    self.assertEqual((r.status, r.body), (200, b"ok"))
                    self.assertEqual(c.get("/").status, 200)

    # Issue #15/#17: 103 Early Hints reaches an HTTP/1.1 client (with its Link header) before
    # the final response; 100 from the backend is dropped; an HTTP/1.0 client gets no 1xx.
    def test_early_hints_forwarded_to_http11_clients(self):
        with h.Client(self.addr) as c:
            c.send(h.build_request("GET", "/103-then-200"))
            interim = c.read_response(interim=True, timeout=3)
            self.assertEqual(interim.status, 103)
            self.assertEqual(interim.header("Link"), "</a.css>; rel=preload")
            final = c.read_response(timeout=3)
            self.assertEqual((final.status, final.body), (200, b"ok"))
            c.send(h.build_request("GET", "/100-then-200"))
            self.assertEqual(c.read_response(interim=True, timeout=3).status, 200)
        data, _ = h.raw(self.addr, b"GET /103-then-200 HTTP/1.0\r\n\r\n", timeout=3)
        self.assertTrue(data.startswith(b"HTTP/1.0 200 "), data[:80])
        self.assertNotIn(b" 103 ", data)

    # B11: a close-delimited response reaches an HTTP/1.1 client complete, chunked (the client
    # connection survives) or close-delimited.
    def test_b11_no_length(self):
        with h.Client(self.addr) as c:
            r = c.get("/no-length")
            self.assertEqual((r.status, r.body), (200, b"close-delimited body\n"))
            if r.chunked:
                self.assertEqual(c.get("/").status, 200)
        data, closed = h.raw(self.addr, b"GET /no-length HTTP/1.0\r\n\r\n", timeout=3 * h.SLOW)
        self.assertTrue(closed)
        self.assertEqual(h.parse_responses(data)[0].body, b"close-delimited body\n")

    # The backend resets or closes before answering → 502.
    def test_reset_and_close_before_response(self):
        for path in ("/reset", "/close"):
            with self.subTest(path=path):
                t0 = time.monotonic()
                r = h.get(self.addr, path)
                self.assertEqual(r.status, 502)
                self.assertLess(time.monotonic() - t0, 1.0 * h.SLOW)

    # B15: a client sends CL 100, then 10 bytes, and leaves: the upstream connection that got
    # the partial body is closed, never pooled; the next client is unaffected and the origin
    # never sees its bytes mixed into the first body.
    def test_b15_partial_body_not_pooled(self):
        mark = len(self.o.log_entries())
        for i in range(3):
            s = h.connect(self.addr)
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\n"
                      b"0123456789")
            time.sleep(0.1)
            s.close()
            time.sleep(0.05)
            r = h.get(self.addr, f"/second?i={i}")
            self.assertEqual((r.status, r.body), (200, b"o1\n"))
        entries = self.o.log_entries()[mark:]
        self.assertEqual([e["target"] for e in entries if e["target"].startswith("/second")],
                         ["/second?i=0", "/second?i=1", "/second?i=2"])
        for e in entries:
            self.assertNotIn("second", e["body"], "a later request landed in an earlier body")
            self.assertNotEqual(e["target"], "/echo", "the truncated POST completed at the origin")


class KeepAliveRace(h.ToriiCase):
    # B5: the origin closes idle connections after 1 s; requests spaced 1.2 s apart reuse a
    # pooled connection just as (or after) it closed, and still all succeed.
    def test_b5_origin_keepalive_timeout(self):
        o = self.origin("o1", keepalive_timeout=1)
        t = self.torii(h.proxy_config([o]))
        statuses = []
        with h.Client(t.addr()) as c:
            for i in range(4):
                statuses.append(c.get(f"/?i={i}").status)
                time.sleep(1.2)
        for i in range(2):  # fresh client connections too
            statuses.append(h.get(t.addr(), "/").status)
            time.sleep(1.05)
        self.assertEqual(statuses, [200] * 6)


if __name__ == "__main__":
    unittest.main()
