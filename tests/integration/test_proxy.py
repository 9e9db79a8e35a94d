"""Proxying as a user sees it: balancing, keep-alive, pipelining, bodies both ways, streaming,
header rewriting, HTTP/1.0, routing, add_headers and the access log."""

import json
import os
import re
import threading
import time
import unittest

import harness as h


class Balancing(h.ToriiCase):
    # Round-robin over 3 origins: X-Backend rotates o1, o2, o3, o1, ... (config order).
    def test_round_robin_rotates(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_))
        with h.Client(t.addr()) as c:
            seen = [c.get("/").header("X-Backend") for _ in range(9)]
        self.assertEqual(seen, ["o1", "o2", "o3"] * 3)
        # Fresh client connections rotate the same way (the picker is per pool, not per client).
        seen = [h.get(t.addr(), "/").header("X-Backend") for _ in range(6)]
        self.assertEqual(sorted(seen), ["o1", "o1", "o2", "o2", "o3", "o3"])
        self.assertEqual(seen[:3], seen[3:])

    # Weights 3:1 give 3:1 traffic, interleaved (never 3 in a row for the light one).
    def test_weighted_round_robin(self):
        heavy, light = self.origin("heavy"), self.origin("light")
        t = self.torii(h.proxy_config([(heavy, 3), (light, 1)]))
        with h.Client(t.addr()) as c:
            seen = [c.get("/").header("X-Backend") for _ in range(40)]
        self.assertEqual(seen.count("heavy"), 30, seen)
        self.assertEqual(seen.count("light"), 10, seen)
        for i in range(0, 40, 4):
            self.assertEqual(seen[i:i + 4].count("light"), 1, seen)


class Trailers(h.ToriiCase):
    # Trailer fields after a chunked body pass on both ways when the route lists them (gRPC's
    # by default; C7: any other is dropped), never one that belongs in a head (RFC 9110
    # §6.5.1) even when listed, and never where the framing has no place for them.
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(h.proxy_config([cls.o], routes=[
            {"path_prefix": "/plain/", "pool": "app", "strip_prefix": "/plain"},
            {"path_prefix": "/", "pool": "app",
             "trailers": ["grpc-status", "x-checksum", "x-sum", "authorization", "set-cookie"]}]))
        cls.addr = cls.t.addr()

    def test_unlisted_trailers_are_dropped_by_default(self):
        with h.Client(self.addr) as c:
            r = c.get("/plain/trailers")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"hello world")
            self.assertEqual(r.trailers, [("Grpc-Status", "0")])  # the default list: gRPC's
            c.send(b"POST /plain/echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\nok\r\n0\r\nX-Sum: 1\r\nContent-Length: 50\r\nHost: evil\r\n\r\n")
            self.assertEqual(c.read_response().body, b"ok")
        self.assertEqual(self.o.log_entries()[-1]["trailers"], [])  # C7: the origin sees none

    def test_response_trailers_reach_a_chunked_client(self):
        with h.Client(self.addr) as c:
            r = c.get("/trailers")
            self.assertEqual(r.status, 200)
            self.assertTrue(r.chunked)
            self.assertEqual(r.body, b"hello world")
            self.assertEqual(r.trailers, [("Grpc-Status", "0"), ("X-Checksum", "abc")])
            self.assertEqual(r.header("Content-Type"), "text/plain")  # not the trailer's
            self.assertIsNone(r.header("Set-Cookie"))
            self.assertEqual(c.get("/").status, 200)  # the connection goes on

    def test_http10_client_gets_the_body_without_trailers(self):
        data, closed = h.raw(self.addr, b"GET /trailers HTTP/1.0\r\n\r\n", timeout=3 * h.SLOW)
        self.assertTrue(closed)
        rs = h.parse_responses(data)
        self.assertEqual(len(rs), 1)
        self.assertEqual(rs[0].body, b"hello world")
        self.assertNotIn(b"Grpc-Status", data)

    def test_bad_trailer_from_the_backend_truncates_the_response(self):
        data, closed = h.raw(self.addr, b"GET /bad-trailer HTTP/1.1\r\nHost: a\r\n\r\n",
                             timeout=3 * h.SLOW)
        self.assertTrue(closed)
        rs = h.parse_responses(data)
        self.assertEqual(len(rs), 1)
        self.assertFalse(rs[0].complete)  # the last chunk never comes: the client sees a cut
        self.assertNotIn(b"X-Bad", data)

    def test_request_trailers_reach_the_backend(self):
        body = (b"5\r\nhello\r\n0\r\nX-Sum: 42\r\nAuthorization: Basic eA==\r\n"
                b"X-Forwarded-For: 6.6.6.6\r\nHost: evil\r\n\r\n")
        with h.Client(self.addr) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"hello")
        e = self.o.log_entries()[-1]
        self.assertEqual(e["trailers"], [["X-Sum", "42"]])
        self.assertEqual(h.header_of(e, "Host"), ["a"])


class IdleMemory(h.ToriiCase):
    # E2: an idle keep-alive connection holds no receive buffer and no exchange buffers (both
    # go back to the worker's pools between requests): 1,000 of them, each after one request,
    # grow torii by far less than the 16 KiB receive buffer each would pin. The per-connection
    # figure next to nginx's and HAProxy's is bench/run.sh idle.
    def test_e2_idle_connections_hold_no_receive_buffer(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o]))

        def open_idle(n):
            clients = []
            for _ in range(n):
                c = h.Client(t.addr())
                self.assertEqual(c.get("/?size=100").status, 200)
                clients.append(c)
            return clients

        for c in open_idle(200):  # warm-up: pools, slots and the upstream connection exist
            c.close()
        time.sleep(0.5)
        before = t.rss_kib()
        idle = open_idle(1000)
        try:
            time.sleep(0.5)
            grown = t.rss_kib() - before
            self.assertLess(grown, 1000 * 12, f"1,000 idle connections grew torii by {grown} KiB")
            self.assertTrue(all(not c.closed_by_peer(timeout=0.01) for c in idle[:50]))
        finally:
            for c in idle:
                c.close()


class KeepAliveAndPipelining(h.ToriiCase):
    def setUp(self):
        self.o = self.origin("o1")
        self.t = self.torii(h.proxy_config([self.o], limits={"keepalive_requests": 100000}))
        self.addr = self.t.addr()

    # Keep-alive on both sides: 50 requests on one client connection use one upstream
    # connection (X-Conn-Id repeats; the origin accepted one connection).
    def test_keepalive_reuse_both_sides(self):
        before = self.o.stats()["connections"]
        with h.Client(self.addr) as c:
            ids = {c.get(f"/?i={i}").header("X-Conn-Id") for i in range(50)}
        self.assertEqual(len(ids), 1, ids)
        # Sequential client connections share the pooled upstream connection too.
        for i in range(20):
            r = h.get(self.addr, f"/?j={i}")
            self.assertEqual(r.status, 200)
            ids.add(r.header("X-Conn-Id"))
        self.assertLessEqual(len(ids), 2, ids)
        after = self.o.stats()["connections"]
        # + 1 for each /__stats connection of ours.
        self.assertLessEqual(after - before, 3, (before, after))

    # P1: 3 pipelined GETs in one write → 3 responses in order, each matching its request.
    def test_pipelining_in_order(self):
        reqs = b"".join(h.build_request("GET", f"/p{i}?hdr=X-Req:{i}&size={s}")
                        for i, s in ((1, 100000), (2, 10), (3, 5000)))
        with h.Client(self.addr) as c:
            c.send(reqs)
            rs = [c.read_response() for _ in range(3)]
        self.assertEqual([r.header("X-Req") for r in rs], ["1", "2", "3"])
        self.assertEqual([len(r.body) for r in rs], [100000, 10, 5000])
        self.assertEqual([e["target"].split("?")[0] for e in self.o.log_entries()[-3:]],
                         ["/p1", "/p2", "/p3"])

    # P1: pipelined requests mixing bodies and methods stay framed and ordered.
    def test_pipelining_with_bodies(self):
        reqs = (h.build_request("POST", "/echo", body=b"first") +
                h.build_request("GET", "/?hdr=X-Req:get") +
                h.build_request("POST", "/echo", body=b"third", chunked=True) +
                h.build_request("DELETE", "/?hdr=X-Req:delete"))
        data, closed = h.raw(self.addr, reqs + h.build_request(
            "GET", "/last", headers={"Connection": "close"}), timeout=5 * h.SLOW)
        rs = h.parse_responses(data)
        self.assertTrue(closed)
        self.assertEqual([r.status for r in rs], [200] * 5)
        self.assertEqual(rs[0].body, b"first")
        self.assertEqual(rs[1].header("X-Req"), "get")
        self.assertEqual(rs[2].body, b"third")
        self.assertEqual(rs[3].header("X-Req"), "delete")
        self.assertEqual(rs[4].body, b"o1\n")

    # P1 flood: 5000 pipelined GETs sent while the client does not read: torii applies
    # backpressure (memory stays bounded), then answers all of them in order.
    def test_pipelining_flood_backpressure(self):
        n = 5000
        reqs = b"".join(b"GET /?hdr=X-I:%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i
                        for i in range(n))
        self.assertEqual(h.get(self.addr, "/").status, 200)
        rss0 = self.t.rss_kib()
        s = h.connect(self.addr, timeout=60)
        sender = threading.Thread(target=lambda: s.sendall(reqs), daemon=True)
        sender.start()
        time.sleep(1.0)
        rss_stalled = self.t.rss_kib()
        data = bytearray()
        s.settimeout(30 * h.SLOW)
        deadline = time.monotonic() + 60 * h.SLOW
        while data.count(b"X-I: ") < n and time.monotonic() < deadline:
            b = s.recv(1 << 20)
            if not b:
                break
            data += b
        sender.join(5)
        s.close()
        rs = h.parse_responses(bytes(data))
        self.assertEqual(len(rs), n)
        self.assertEqual([r.header("X-I") for r in rs], [str(i) for i in range(n)])
        self.assertLess(rss_stalled - rss0, 16 * 1024, "RSS grew while the client did not read")

    # P1 (issue #18): 1,000 pipelined GETs of 64 KiB while the client reads nothing. torii
    # stops starting exchanges once the responses it owes pass the high-water mark: the origin
    # serves only what the socket buffers and one high-water mark hold, memory stays flat (it
    # grew by ~76 MiB before), and once the client reads every response arrives, in order.
    def test_pipelined_large_responses_wait_for_the_reader(self):
        n, size = 1000, 65536
        reqs = b"".join(b"GET /?size=%d&hdr=X-I:%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % (size, i)
                        for i in range(n))
        self.assertEqual(h.get(self.addr, "/").status, 200)
        served0 = len(self.o.log_entries())
        rss0 = self.t.rss_kib()
        c = h.Client(self.addr, timeout=30 * h.SLOW, rcvbuf=64 * 1024)
        self.addCleanup(c.close)
        sender = threading.Thread(target=lambda: c.send(reqs), daemon=True)
        sender.start()
        # Wait until the origin stops receiving requests (torii stopped), bounded.
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 20 * h.SLOW
        while time.monotonic() < deadline:
            served = len(self.o.log_entries()) - served0
            if served != last:
                last, stable_since = served, time.monotonic()
            elif time.monotonic() - stable_since > 1.0:
                break
            time.sleep(0.1)
        rss_stalled = self.t.rss_kib()
        stalled_served = len(self.o.log_entries()) - served0
        self.assertLess(stalled_served, n // 4, "torii kept serving a client that does not read")
        self.assertLess(rss_stalled - rss0, 16 * 1024, "RSS grew while the client did not read")
        got = []
        for _ in range(n):
            r = c.read_response()
            got.append((r.header("X-I"), len(r.body)))
        sender.join(5)
        self.assertEqual(got, [(str(i), size) for i in range(n)])

    # HEAD: the GET's length, no body, and the connection stays usable, on a fresh and on a
    # pooled (reused) upstream connection alike.
    def test_head(self):
        with h.Client(self.addr) as c:
            r = c.request("HEAD", "/?size=1000")
            self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "1000", b""))
            r = c.get("/?size=10")
            self.assertEqual(r.body, h.pattern_bytes(10))
            # The upstream connection is now a reused one.
            r = c.request("HEAD", "/?size=1000", timeout=3 * h.SLOW)
            self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "1000", b""))
            r = c.get("/?size=10", timeout=3 * h.SLOW)
            self.assertEqual(r.body, h.pattern_bytes(10))
            r = c.request("HEAD", "/?size=1000&chunked=1", timeout=3 * h.SLOW)
            self.assertEqual((r.status, r.body), (200, b""))
            r = c.get("/?size=10", timeout=3 * h.SLOW)
            self.assertEqual(r.body, h.pattern_bytes(10))
        self.assertEqual([e["method"] for e in self.o.log_entries()[-6:]],
                         ["HEAD", "GET", "HEAD", "GET", "HEAD", "GET"])


class Bodies(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(h.proxy_config([cls.o]))
        cls.addr = cls.t.addr()

    def tearDown(self):
        self.t.check_alive()

    # POST with Content-Length: the body reaches the origin byte-exact (1 MiB random).
    def test_post_content_length(self):
        for body in (b"x", b"hello world", os.urandom(1 << 20)):
            with self.subTest(size=len(body)):
                with h.Client(self.addr) as c:
                    r = c.request("POST", "/echo", body=body)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, body)
                e = self.o.log_entries()[-1]
                self.assertEqual(e["body_len"], len(body))
                self.assertEqual(h.header_of(e, "Content-Length"), [str(len(body))])
                self.assertEqual(h.header_of(e, "Transfer-Encoding"), [])

    # POST with a chunked body in many chunks: re-chunked to the origin, byte-exact.
    def test_post_chunked(self):
        body = os.urandom(1 << 20)
        cuts = [0] + sorted(set(i * 61001 % len(body) for i in range(1, 40))) + [len(body)]
        pieces = [body[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        head = (b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        with h.Client(self.addr) as c:
            c.send(head)
            for i in range(0, len(framed), 50000):
                c.send(framed[i:i + 50000])
            r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, body)
        e = self.o.log_entries()[-1]
        self.assertEqual(h.header_of(e, "Transfer-Encoding"), ["chunked"])
        self.assertEqual(h.header_of(e, "Content-Length"), [])
        self.assertEqual(e["body_len"], len(body))

    # An empty POST reaches the origin with "Content-Length: 0" (it never waits for a body).
    def test_post_empty(self):
        with h.Client(self.addr) as c:
            r = c.request("POST", "/echo", body=b"")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"")
            r = c.request("POST", "/echo", headers={"Content-Length": "0"})
            self.assertEqual(r.status, 200)
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "Content-Length"), ["0"])

    # Responses of 50 MiB (Content-Length and chunked) stream through intact, and torii's RSS
    # stays bounded (it never buffers a whole body): sampled all along, its peak stays within
    # 4 MiB of the level after a 20 MiB warm-up response (which has touched every page of the
    # 16 MiB provided-buffer ring), where buffering one body would add 50. (A torii of its own
    # with a small ASan quarantine, so RSS shows what is held, not what was freed.)
    def test_large_streamed_responses(self):
        size = 50 * 1024 * 1024
        env = {"ASAN_OPTIONS": h.child_env()["ASAN_OPTIONS"] + ":quarantine_size_mb=1"}
        t = self.torii(h.proxy_config([self.o]), env_extra=env)
        with h.Client(t.addr(), timeout=60 * h.SLOW) as c:
            # Warm-up: a chunked body goes through the receive ring (a Content-Length one this
            # large is spliced, pool splice_min), so the ring's pages are counted in rss0.
            c.get("/?size=20971520&chunked=1")
            c.get("/?size=20971520")
            rss0 = t.rss_kib()
            peak = rss0

            def sampled(piece):
                nonlocal peak
                peak = max(peak, t.rss_kib())
                check(piece)

            for q in ("", "&chunked=1"):
                with self.subTest(framing=q or "content-length"):
                    check = h.PatternChecker()
                    c.send(h.build_request("GET", f"/?size={size}{q}"))
                    r = c.stream_response(sampled)
                    self.assertEqual(r.status, 200)
                    self.assertEqual(r.body_len, size)
                    self.assertTrue(check.ok, "body differs from the origin's pattern")
                    if q:
                        self.assertTrue(r.chunked)
                    else:
                        self.assertEqual(r.header("Content-Length"), str(size))
        print(f"[rss] streamed 2 x 50 MiB: {rss0} -> peak {peak} KiB (+{peak - rss0})")
        self.assertLess(peak - rss0, 4 * 1024, f"RSS grew from {rss0} to a peak of {peak} KiB")


class HeaderRewriting(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(h.proxy_config([cls.o]))
        cls.addr = cls.t.addr()

    # Hop-by-hop request headers are stripped (Connection, Keep-Alive, TE, Proxy-Connection,
    # Trailer and every header named in Connection); forwarding headers are torii's own
    # (H3: X-Forwarded-For is the socket peer, never the client's claim); Via is appended;
    # Host is preserved.
    def test_request_hop_by_hop_and_forwarding_headers(self):
        with h.Client(self.addr) as c:
            r = c.get("/headers", host="Example.Test:8080", headers=[
                ("Connection", "keep-alive, X-Secret"), ("Keep-Alive", "timeout=5"),
                ("TE", "trailers"), ("X-Secret", "s"), ("Proxy-Connection", "keep-alive"),
                ("Trailer", "X-T"), ("X-Forwarded-For", "1.2.3.4"),
                ("X-Forwarded-Host", "evil.test"), ("X-Forwarded-Proto", "https"),
                ("Forwarded", "for=1.2.3.4"), ("X-Real-IP", "1.2.3.4"),
                ("Via", "1.0 client"), ("X-Keep", "yes")])
        self.assertEqual(r.status, 200)
        e = self.o.log_entries()[-1]
        names = [k.lower() for k, _ in e["headers"]]
        for gone in ("connection", "keep-alive", "te", "x-secret", "proxy-connection",
                     "trailer", "forwarded", "x-real-ip", "x-forwarded-host"):
            self.assertNotIn(gone, names)
        self.assertEqual(h.header_of(e, "Host"), ["Example.Test:8080"])
        self.assertEqual(h.header_of(e, "X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(h.header_of(e, "X-Forwarded-Proto"), ["http"])
        self.assertEqual(h.header_of(e, "X-Keep"), ["yes"])
        via = h.header_of(e, "Via")
        self.assertEqual(len(via), 1)
        self.assertTrue(via[0].startswith("1.0 client"), via)
        self.assertIn("torii", via[0])

    # Via is added when the client sent none; a chunked client body is re-framed by torii
    # (exactly one Transfer-Encoding, no Content-Length).
    def test_via_and_reframing(self):
        with h.Client(self.addr) as c:
            c.request("POST", "/echo", body=b"abc", chunked=True)
        e = self.o.log_entries()[-1]
        self.assertEqual(len(h.header_of(e, "Via")), 1)
        self.assertIn("torii", h.header_of(e, "Via")[0])
        self.assertEqual(h.header_of(e, "Transfer-Encoding"), ["chunked"])
        self.assertEqual(h.header_of(e, "Content-Length"), [])

    # Hop-by-hop response headers from the origin are stripped (Keep-Alive and headers named
    # in its Connection header); end-to-end ones pass.
    def test_response_hop_by_hop(self):
        with h.Client(self.addr) as c:
            r = c.get("/?hdr=Connection:X-Resp-Secret&hdr=X-Resp-Secret:1"
                      "&hdr=Keep-Alive:timeout=9&hdr=X-Keep:1&hdr=Proxy-Connection:close")
            self.assertEqual(r.status, 200)
            self.assertFalse(r.has_header("X-Resp-Secret"), r.headers)
            self.assertFalse(r.has_header("Keep-Alive"), r.headers)
            self.assertFalse(r.has_header("Proxy-Connection"), r.headers)
            self.assertNotIn("x-resp-secret", r.header("Connection", "").lower())
            self.assertEqual(r.header("X-Keep"), "1")
            self.assertEqual(r.header("X-Backend"), "o1")
            # The connection is still usable.
            self.assertEqual(c.get("/").status, 200)


class ConnectionSemantics(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(h.proxy_config([cls.o]))
        cls.addr = cls.t.addr()

    # An HTTP/1.0 client gets an HTTP/1.0 response with Content-Length, then close.
    def test_http10_content_length(self):
        data, closed = h.raw(self.addr, b"GET /?size=100 HTTP/1.0\r\n\r\n", timeout=3 * h.SLOW)
        self.assertTrue(closed)
        rs = h.parse_responses(data)
        self.assertEqual(len(rs), 1)
        self.assertEqual(rs[0].version, "HTTP/1.0")
        self.assertEqual(rs[0].header("Content-Length"), "100")
        self.assertEqual(rs[0].body, h.pattern_bytes(100))

    # An HTTP/1.0 client never gets chunked coding: a chunked origin response arrives
    # close-delimited (or with a length), complete, then the connection closes.
    def test_http10_chunked_origin(self):
        data, closed = h.raw(self.addr, b"GET /?size=70000&chunked=1 HTTP/1.0\r\n\r\n",
                             timeout=3 * h.SLOW)
        self.assertTrue(closed)
        rs = h.parse_responses(data)
        self.assertEqual(len(rs), 1)
        self.assertIsNone(rs[0].header("Transfer-Encoding"))
        self.assertEqual(rs[0].body, h.pattern_bytes(70000))

    # HTTP/1.0 with "Connection: keep-alive" keeps the connection (and says so).
    def test_http10_keepalive(self):
        with h.Client(self.addr) as c:
            for _ in range(2):
                r = c.request("GET", "/", version="1.0", headers={"Connection": "keep-alive"})
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("Connection", "").lower(), "keep-alive")

    # "Connection: close" gets its response (saying Connection: close), then EOF.
    def test_connection_close(self):
        with h.Client(self.addr) as c:
            r = c.get("/", headers={"Connection": "close"})
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Connection", "").lower(), "close")
            rest, closed = c.read_eof(3 * h.SLOW)
            self.assertTrue(closed)
            self.assertEqual(rest, b"")

    # The origin's "Connection: close" ends only the upstream connection: the client
    # connection stays open and the next request gets a fresh upstream connection.
    def test_origin_close_keeps_client(self):
        with h.Client(self.addr) as c:
            r1 = c.get("/?close=1")
            self.assertEqual(r1.status, 200)
            self.assertNotEqual(r1.header("Connection", "").lower(), "close")
            r2 = c.get("/")
            self.assertEqual(r2.status, 200)
            self.assertNotEqual(r1.header("X-Conn-Id"), r2.header("X-Conn-Id"))

    # A client half-close after a complete request still gets the answer (printf | nc).
    def test_half_close_after_request(self):
        data, closed = h.raw(self.addr, h.build_request("GET", "/"), shutdown_write=True,
                             timeout=3 * h.SLOW)
        self.assertTrue(closed)
        self.assertEqual([r.status for r in h.parse_responses(data)], [200])


class Routing(h.ToriiCase):
    """a.test → pool app (oa) with add_headers; *.b.test under /api/ → pool b (ob); b.test
    (exact) → app. No catch-all: anything else is 404."""

    @classmethod
    def setUpClass(cls):
        cls.oa = cls.class_origin("oa")
        cls.ob = cls.class_origin("ob")
        cfg = h.proxy_config([cls.oa], pools={"b": [cls.ob]}, routes=[
            {"host": "a.test", "path_prefix": "/", "pool": "app",
             "add_headers": {"X-Added": "yes", "Strict-Transport-Security": "max-age=60"}},
            {"host": "*.b.test", "path_prefix": "/api/", "pool": "b"},
            {"host": "b.test", "path_prefix": "/", "pool": "app"},
        ])
        cls.t = cls.class_torii(cfg)
        cls.addr = cls.t.addr()

    # Host selects the pool; a port and letter case in Host do not matter.
    def test_route_by_host(self):
        for host, backend in [("a.test", "oa"), ("A.Test:8080", "oa"), ("b.test", "oa")]:
            with self.subTest(host=host):
                r = h.get(self.addr, "/x", host=host)
                self.assertEqual((r.status, r.header("X-Backend")), (200, backend))

    # A wildcard host plus a path prefix selects pool b; outside the prefix nothing matches.
    def test_route_by_wildcard_and_prefix(self):
        r = h.get(self.addr, "/api/v1?q=1", host="x.b.test")
        self.assertEqual((r.status, r.header("X-Backend")), (200, "ob"))
        self.assertEqual(self.ob.log_entries()[-1]["target"], "/api/v1?q=1")
        r = h.get(self.addr, "/other", host="x.b.test")
        self.assertEqual(r.status, 404)
        self.assertIsNone(r.header("X-Backend"))

    # Unknown host with no catch-all route → 404 from torii (never "the first pool"); the
    # connection stays usable.
    def test_unknown_host_404(self):
        before = len(self.oa.log_entries()) + len(self.ob.log_entries())
        with h.Client(self.addr) as c:
            r = c.get("/", host="unknown.test")
            self.assertEqual(r.status, 404)
            self.assertIsNone(r.header("X-Backend"))
            self.assertEqual(c.get("/", host="a.test").status, 200)
        self.assertEqual(len(self.oa.log_entries()) + len(self.ob.log_entries()), before + 1)

    # add_headers of a route appear on that route's responses only.
    def test_add_headers(self):
        r = h.get(self.addr, "/", host="a.test")
        self.assertEqual(r.header("X-Added"), "yes")
        self.assertEqual(r.header("Strict-Transport-Security"), "max-age=60")
        r = h.get(self.addr, "/api/x", host="x.b.test")
        self.assertIsNone(r.header("X-Added"))
        self.assertIsNone(r.header("Strict-Transport-Security"))


TEXT_LINE = re.compile(r'^(\S+) \[([^\]]+)\] "(\S*) (\S*) HTTP/1\.(\d)" (\d{3}) (\d+) '
                       r'host="([^"]*)" backend=(\S+) (\d+)ms( note="[^"]*")?'
                       r'( phases_ms=[a-z]+:[0-9.]+(?:,[a-z]+:[0-9.]+)*)?'
                       r'( rid=[0-9a-f]{32})?( trace=[0-9a-f]{32})?$')


class AccessLog(h.ToriiCase):
    def run_requests(self, t, o):
        with h.Client(t.addr()) as c:
            c.get("/one?x=1")
            c.request("POST", "/echo", body=b"abc")
            c.get("/nothing", host="unknown.test")  # 404 no route
        # Hostile targets (BAD-INPUTS L1): quote, backslash (in the query: a raw backslash in
        # the path is refused), long; CR/LF/ESC are refused by the parser but still logged as
        # one line each.
        h.get(t.addr(), '/q"uote?back\\slash')
        h.get(t.addr(), "/long" + "L" * 5000)
        for bad in (b"GET /a\x1b[31mred HTTP/1.1\r\nHost: a.test\r\n\r\n",
                    b"GET /a\r\nInjected: x HTTP/1.1\r\nHost: a.test\r\n\r\n",
                    b"GET /a\rb HTTP/1.1\r\nHost: a.test\r\n\r\n"):
            h.raw(t.addr(), bad, timeout=2 * h.SLOW)
        return 8

    def config(self, o, fmt):
        return h.proxy_config([o], server_extra={"access_log_format": fmt}, routes=[
            {"host": "a.test", "pool": "app"}, {"host": "test.local", "pool": "app"}])

    # Text format: one line per request with method, path, status and backend; hostile bytes
    # are escaped so one request is always one line (L1).
    def test_text_format(self):
        o = self.origin("o1")
        t = self.torii(self.config(o, "text"))
        n = self.run_requests(t, o)
        lines = t.access_log_lines(wait_for_count=n)
        self.assertEqual(len(lines), n, lines)
        parsed = []
        for line in lines:
            self.assertTrue(all(0x20 <= ord(ch) < 0x7f for ch in line), repr(line))
            m = TEXT_LINE.match(line)
            self.assertIsNotNone(m, line)
            parsed.append(m)
        self.assertEqual((parsed[0].group(3), parsed[0].group(4), parsed[0].group(6)),
                         ("GET", "/one?x=1", "200"))
        self.assertEqual(parsed[0].group(1), "127.0.0.1")
        self.assertEqual(parsed[0].group(9), o.address)
        self.assertEqual((parsed[1].group(3), parsed[1].group(4), parsed[1].group(6)),
                         ("POST", "/echo", "200"))
        self.assertEqual((parsed[2].group(6), parsed[2].group(9)), ("404", "-"))
        self.assertNotIn('"', parsed[3].group(4))
        self.assertLess(len(lines[4]), 3000, "long target not truncated")
        for m in parsed[5:]:
            self.assertEqual(m.group(6), "400")

    # JSON format: every line is one JSON object with method, target, status and backend;
    # quotes and backslashes in the target survive the round trip.
    def test_json_format(self):
        o = self.origin("o1")
        t = self.torii(self.config(o, "json"))
        n = self.run_requests(t, o)
        lines = t.access_log_lines(wait_for_count=n)
        self.assertEqual(len(lines), n, lines)
        recs = [json.loads(line) for line in lines]
        self.assertEqual([r["status"] for r in recs], [200, 200, 404, 200, 200, 400, 400, 400])
        self.assertEqual((recs[0]["method"], recs[0]["target"], recs[0]["backend"]),
                         ("GET", "/one?x=1", o.address))
        self.assertEqual(recs[0]["host"], "test.local")
        self.assertEqual(recs[1]["method"], "POST")
        self.assertEqual(recs[2]["backend"], "")
        self.assertEqual(recs[3]["target"], '/q"uote?back\\slash')
        self.assertLess(len(recs[4]["target"]), 2100)
        for line in lines:
            self.assertTrue(all(0x20 <= ord(ch) < 0x7f for ch in line), repr(line))


if __name__ == "__main__":
    unittest.main()
