"""HTTP/2 to backends (pool protocol = "h2c" / "h2"): requests from HTTP/1.1 and HTTP/2
clients multiplexed as streams on shared upstream connections, bodies and trailers both
ways, and what the backend's resets, GOAWAY and disappearance turn into. The backend is
h2_origin.py (python3-h2)."""
import concurrent.futures
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import unittest

import harness as h
from test_http2 import H2Client, h2, header
from test_tls import Pki

H2_ORIGIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "h2_origin.py")


class H2Origin(h.Origin):
    """An h2_origin.py process (h2c, or h2 over TLS with `tls` = {"cert", "key"})."""

    def __init__(self, name, dir=None, tls=None, max_streams=0, start=True):
        self.tls = tls
        self.max_streams = max_streams
        super().__init__(name, dir=dir, start=start)

    def start(self, listen="127.0.0.1:0"):
        args = [sys.executable, H2_ORIGIN, "--listen", listen, "--name", self.name,
                "--ready-file", self.ready_file, "--log", self.log_path]
        if self.tls:
            args += ["--cert", self.tls["cert"], "--key", self.tls["key"]]
        if self.max_streams:
            args += ["--max-streams", str(self.max_streams)]
        return self._launch(args)

    def stats(self):
        """{"connections", "streams", "max_concurrent"} (asked over HTTP/2 directly)."""
        cl = H2Client(self.addr)
        try:
            return json.loads(cl.get("/__stats")["data"])
        finally:
            cl.close()


def pattern(n):
    unit = b"0123456789abcdefghijklmnopqrstuvwxyz"
    return (unit * (n // len(unit) + 1))[:n]


def h2_pool_config(origins, protocol="h2c", pool_extra=None, **kw):
    c = h.proxy_config(origins, pool_extra=dict({"protocol": protocol}, **(pool_extra or {})),
                       **kw)
    c.listeners[0]["h2c"] = True
    c.routes[0]["trailers"] = ["grpc-status", "x-checksum", "x-sum"]
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    return c


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class H2Upstream(h.ToriiCase):
    def h2origin(self, name, **kw):
        o = H2Origin(name, dir=self.tmpdir(), **kw)
        self.addCleanup(o.cleanup)
        return o

    def test_requests_from_http11_clients_are_multiplexed_on_one_connection(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o]))
        r = h.get(t.addr(), "/hello")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"b1\n")
        self.assertEqual(r.header("X-Backend"), "b1")
        e = o.log_entries()[-1]
        self.assertEqual((e["method"], e["path"], e["scheme"]), ("GET", "/hello", "http"))
        self.assertEqual(e["authority"], "test.local")
        self.assertIn(["te", "trailers"], e["headers"])
        self.assertIn(["via", "1.1 torii"], e["headers"])
        # 16 clients at once, each on its own connection to torii: one connection upstream
        # carries them as concurrent streams.
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            rs = list(ex.map(lambda i: h.get(t.addr(), f"/slow?ms=300&i={i}"), range(16)))
        self.assertEqual([r.status for r in rs], [200] * 16)
        self.assertEqual({r.header("X-Conn") for r in rs}, {"1"})
        s = o.stats()
        self.assertGreater(s["max_concurrent"], 4, s)
        self.assertEqual(s["connections"], 2, s)  # torii's, and this stats request's

    def test_http2_client_streams_and_bodies_both_ways(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o]))
        c = H2Client(t.addr())
        self.addCleanup(c.close)
        sids = [c.request("GET", f"/size?n={100000 + i}") for i in range(8)]
        for i, sid in enumerate(sids):
            r = c.response(sid)
            self.assertEqual(r["status"], 200)
            self.assertEqual(r["data"], pattern(100000 + i))
        body = os.urandom(1 << 20)
        r = c.response(c.request("POST", "/echo", body=body,
                                 headers=[("content-type", "application/x-test")]))
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["data"], body)
        self.assertEqual(header(r, "content-type"), ["application/x-test"])
        # An HTTP/1.1 chunked upload too.
        with h.Client(t.addr()) as hc:
            r = hc.request("POST", "/echo", body=body[:300000], chunked=True)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, body[:300000])

    def test_trailers_both_ways(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o]))
        c = H2Client(t.addr())
        self.addCleanup(c.close)
        r = c.get("/trailers")
        self.assertEqual(r["data"], b"hello world")
        self.assertEqual(r.get("trailers"), [("grpc-status", "0"), ("x-checksum", "abc")])
        sid = c.request("POST", "/echo", end=False)
        c.send_body(sid, b"abc", end=False)
        c.conn.send_headers(sid, [("x-sum", "42"), ("x-not-listed", "1")], end_stream=True)
        c.flush()
        self.assertEqual(c.response(sid)["data"], b"abc")
        self.assertEqual(o.log_entries()[-1]["trailers"], [["x-sum", "42"]])
        # An HTTP/1.1 client gets them in the last chunk.
        with h.Client(t.addr()) as hc:
            r = hc.get("/trailers")
            self.assertEqual(r.body, b"hello world")
            self.assertEqual(r.trailers, [("grpc-status", "0"), ("x-checksum", "abc")])

    def test_backend_resets_and_goaway(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o]))
        with h.Client(t.addr()) as c:
            # REFUSED_STREAM never reached the application: retried once on a new stream, then
            # 503 (the backend refuses every time here).
            before = len(o.log_entries())
            r = c.get("/refuse")
            self.assertEqual(r.status, 503)
            self.assertEqual(len(o.log_entries()) - before, 2)
            self.assertEqual(c.get("/").status, 200)
            self.assertEqual(c.get("/rst").status, 502)
        data, closed = h.raw(t.addr(), b"GET /rst-mid HTTP/1.1\r\nHost: a\r\n\r\n",
                             timeout=3 * h.SLOW)
        self.assertTrue(closed)
        rs = h.parse_responses(data)
        self.assertEqual(rs[0].status, 200)
        self.assertFalse(rs[0].complete)  # the client sees the cut
        # GOAWAY: the answer still arrives, and the next request goes on a new connection.
        with h.Client(t.addr()) as c:
            first = c.get("/goaway")
            self.assertEqual(first.status, 200)
            deadline = time.monotonic() + 5
            while True:
                r = c.get("/")
                self.assertEqual(r.status, 200)
                if r.header("X-Conn") != first.header("X-Conn") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertNotEqual(r.header("X-Conn"), first.header("X-Conn"))
            # The backend vanishing without a word: 502, and the next request opens a new one.
            self.assertEqual(c.get("/die").status, 502)
            self.assertEqual(c.get("/").status, 200)
        lines = t.access_log_lines()
        self.assertTrue(any('"GET /refuse HTTP/1.1" 503' in l for l in lines), lines[-5:])
        m = h.get(t.addr("admin"), "/metrics").body.decode()
        def metric(name):
            return int(re.search(rf"^{name} (\d+)$", m, re.M).group(1))

        # The two refusals of /refuse, and any stream that crossed the GOAWAY.
        self.assertGreaterEqual(metric("torii_upstream_http2_refused_total"), 2)
        self.assertGreaterEqual(metric("torii_upstream_http2_connections_total"), 3)

    # A response HTTP/2 forbids (RFC 9113 §8.2: a control character in a value, an uppercase
    # name, a connection-specific field; §8.1.1: DATA short of Content-Length) is 502 and
    # resets its stream only: the connection goes on carrying the next requests. A control
    # character (S15) would otherwise reach HTTP/1.1 clients.
    def test_malformed_responses_are_502_and_the_connection_stays(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o]))
        with h.Client(t.addr()) as c:
            first = c.get("/")
            self.assertEqual(first.status, 200)
            for kind in ("ctl", "upper", "conn"):
                r = c.get(f"/malformed?kind={kind}")
                self.assertEqual(r.status, 502, kind)
                self.assertNotIn(b"\x01", r.raw_head, kind)
                ok = c.get("/")
                self.assertEqual(ok.status, 200, kind)
                self.assertEqual(ok.header("X-Conn"), first.header("X-Conn"), kind)
        # Short of its Content-Length: the head was on its way, so the client sees the cut.
        data, closed = h.raw(t.addr(), b"GET /malformed?kind=length HTTP/1.1\r\nHost: a\r\n\r\n",
                             timeout=3 * h.SLOW)
        self.assertTrue(closed)
        rs = h.parse_responses(data)
        self.assertEqual(rs[0].status, 200)
        self.assertFalse(rs[0].complete)
        with h.Client(t.addr()) as c:
            ok = c.get("/")
            self.assertEqual(ok.status, 200)
            self.assertEqual(ok.header("X-Conn"), first.header("X-Conn"))
        t.check_alive()

    def test_max_streams_opens_more_connections(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o], pool_extra={"max_streams": 2}))
        with concurrent.futures.ThreadPoolExecutor(6) as ex:
            rs = list(ex.map(lambda i: h.get(t.addr(), f"/slow?ms=400&i={i}"), range(6)))
        self.assertEqual([r.status for r in rs], [200] * 6)
        conns = {r.header("X-Conn") for r in rs}
        self.assertGreaterEqual(len(conns), 3, conns)
        self.assertLessEqual(o.stats()["max_concurrent"], 2)

    def test_backend_stream_limit_is_honoured(self):
        o = self.h2origin("b1", max_streams=3)
        t = self.torii(h2_pool_config([o]))
        # Once the connection exists (its SETTINGS known; before that a client may exceed the
        # limit, RFC 9113 §5.1.2, and the backend refuses the excess), no more than 3 at once.
        self.assertEqual(h.get(t.addr(), "/").status, 200)
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            rs = list(ex.map(lambda i: h.get(t.addr(), f"/slow?ms=300&i={i}"), range(8)))
        self.assertEqual([r.status for r in rs], [200] * 8)
        self.assertLessEqual(o.stats()["max_concurrent"], 3)

    def test_response_timeout_and_unreachable_backend(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o], pool_extra={"response_timeout": "300ms",
                                                      "retries": 0}))
        self.assertEqual(h.get(t.addr(), "/slow?ms=2000").status, 504)
        self.assertEqual(h.get(t.addr(), "/").status, 200)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t2 = self.torii(h2_pool_config([f"127.0.0.1:{port}"]))
        self.assertEqual(h.get(t2.addr(), "/").status, 503)

    def test_stale_while_revalidate_refreshes_on_a_stream_in_the_background(self):
        """#17: an HTTP/2 pool carries the worker's background refresh like any exchange's
        request: the client gets the stale entry at once, one stream refreshes it."""
        o = self.h2origin("b1")
        c = h2_pool_config([o])
        c.routes[0]["cache"] = "main"
        c.tables["cache.main"] = {"memory": "4MiB", "max_object": "1MiB"}
        t = self.torii(c)
        path = "/slow?ms=400&cc=max-age%3D3,stale-while-revalidate%3D60"
        self.assertEqual(h.get(t.addr(), path).header("Cache-Status"), "torii; fwd=miss; stored")
        time.sleep(3.6)
        r = h.get(t.addr(), path)
        self.assertEqual(r.body, b"b1\n")
        self.assertEqual(r.header("Cache-Status"), "torii; hit; detail=stale-while-revalidate")
        h.wait_for(lambda: h.get(t.addr(), path).header("Cache-Status") == "torii; hit",
                   10 * h.SLOW, interval=0.1, what="the background refresh to land")
        streams = {(e["conn"], e["stream"]) for e in o.log_entries() if e["path"] == path}
        self.assertEqual(len(streams), 2)

    def test_silent_backend_is_found_dead_by_ping(self):
        # A backend that stops answering without closing (SIGSTOP: a hung host) is found out by
        # PING within about keepalive_timeout, long before response_timeout.
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o], pool_extra={
            "keepalive_timeout": "1s", "response_timeout": "60s", "retries": 0}))
        self.assertEqual(h.get(t.addr(), "/").status, 200)
        os.kill(o.proc.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, o.proc.pid, signal.SIGCONT)
        start = time.monotonic()
        with h.Client(t.addr(), timeout=30) as c:
            r = c.get("/")
        self.assertEqual(r.status, 502)
        self.assertLess(time.monotonic() - start, 15)

    def test_http_health_check_over_h2(self):
        o = self.h2origin("b1")
        t = self.torii(h2_pool_config([o], pool_extra={
            "health": {"path": "/health", "interval": "200ms", "timeout": "200ms", "rise": 1,
                       "fall": 1}}))
        h.wait_for(lambda: h.get(t.addr(), "/").status == 200, 10 * h.SLOW, what="backend up")
        self.assertEqual(o.stats()["streams"] > 0, True)
        cl = H2Client(o.addr)
        self.addCleanup(cl.close)
        self.assertEqual(cl.get("/__health?status=503")["status"], 503)
        h.wait_for(lambda: h.get(t.addr(), "/").status == 503, 10 * h.SLOW,
                   what="a failing check takes the backend out")
        self.assertEqual(cl.get("/__health?status=200")["status"], 200)
        h.wait_for(lambda: h.get(t.addr(), "/").status == 200, 10 * h.SLOW, what="back")
        checks = [e for e in o.log_entries() if e["path"] == "/health"]
        self.assertTrue(checks)
        self.assertEqual(checks[-1]["method"], "GET")

    def test_reload_keeps_the_connection_of_an_unchanged_pool(self):
        # A reload that leaves the pool as it was: the new generation takes the shared
        # connection over, so the stream in flight finishes on it and new requests share it.
        o = self.h2origin("b1")
        c = h2_pool_config([o])
        t = self.torii(c)
        self.assertEqual(h.get(t.addr(), "/").header("X-Conn"), "1")

        def slow_ones():
            return sum(e["path"].startswith("/slow") for e in o.log_entries())

        def slow_at_origin(before):
            h.wait_for(lambda: slow_ones() > before, 10 * h.SLOW, interval=0.02,
                       what="the slow request to reach the origin")

        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            before = slow_ones()
            slow = ex.submit(h.get, t.addr(), "/slow?ms=800")
            slow_at_origin(before)  # in flight before the reload
            c.routes[0]["trailers"] = ["grpc-status"]
            with open(t.config_path, "w") as f:
                f.write(c.render(t.ready_file, t.access_log_path, t.error_log_path))
            os.kill(t.pid, signal.SIGHUP)
            h.wait_for(lambda: "SIGHUP: reloaded" in t.error_log(), 10 * h.SLOW,
                       what="the reload")
            r = h.get(t.addr(), "/")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Conn"), "1")  # the same connection, taken over
            first = slow.result(timeout=10)
        self.assertEqual(first.status, 200)
        self.assertEqual(first.header("X-Conn"), "1")
        self.assertEqual(h.get(t.addr(), "/").header("X-Conn"), "1")
        self.assertEqual(o.stats()["connections"], 2)  # torii's one, and this /__stats
        # A reload that changes the pool drains it: the stream in flight finishes on the old
        # connection, which then closes; new requests open one of the new generation.
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            before = slow_ones()
            slow = ex.submit(h.get, t.addr(), "/slow?ms=800")
            slow_at_origin(before)  # in flight before the reload
            c.pools[0]["max_conns"] = 10  # part of what the shared state depends on
            with open(t.config_path, "w") as f:
                f.write(c.render(t.ready_file, t.access_log_path, t.error_log_path))
            os.kill(t.pid, signal.SIGHUP)
            h.wait_for(lambda: t.error_log().count("SIGHUP: reloaded") == 2, 10 * h.SLOW,
                       what="the second reload")
            r = h.get(t.addr(), "/")
            self.assertEqual(r.status, 200)
            self.assertNotEqual(r.header("X-Conn"), "1")  # the new generation's connection
            first = slow.result(timeout=10)
        self.assertEqual(first.header("X-Conn"), "1")  # finished where it began

        def connections():
            out = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{o.port} )"],
                                 capture_output=True, text=True, check=True).stdout
            return len(out.splitlines())

        h.wait_for(lambda: connections() == 1, 10 * h.SLOW, what="the old connection to close")

    def test_h2_over_tls(self):
        pki = Pki()
        self.addCleanup(pki.cleanup)
        leaf = pki.leaf("backend", ["backend.test"])
        o = self.h2origin("tls1", tls=leaf)
        c = h2_pool_config([o], protocol="h2",
                           pool_extra={"tls": {"ca": pki.path("ca.crt"), "sni": "backend.test"}})
        t = self.torii(c)
        r = h.get(t.addr(), "/over-tls")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"tls1\n")
        self.assertEqual(o.log_entries()[-1]["scheme"], "https")


if __name__ == "__main__":
    unittest.main()
