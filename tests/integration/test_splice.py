"""Response bodies sent socket to socket (pool splice_min, core::Conn::ForwardTo): what the
client gets is byte for byte what the backend sent, keep-alive and pipelining go on after it,
and the faults of a large body (B4 backend dies mid-body, D3 client never reads) behave as
they do when the body passes through torii's memory. torii_spliced_bytes_total shows which
path a body took."""

import gzip
import random
import socket
import threading
import time
import unittest

import harness as h
from test_admin import parse_metrics


def spliced(t):
    return parse_metrics(h.get(t.addr("admin"), "/metrics").body.decode()).get(
        ("torii_spliced_bytes_total", ""), 0)


def config(origins, limits=None, **pool_extra):
    c = h.proxy_config(origins, limits=limits, pool_extra=pool_extra or None)
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    return c


class DiesMidBody(h.ThreadedBackend):
    """Answers every request with a head saying Content-Length `length`, then `sent` bytes of
    the pattern, then a FIN (or an RST with `rst`)."""

    def __init__(self, name, length, sent, rst=False):
        super().__init__(name)
        self.length, self.sent, self.rst = length, sent, rst

    def serve(self, c):
        h.read_head(c)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: %d\r\n\r\n" % self.length)
        c.sendall(h.pattern_bytes(self.sent))
        time.sleep(0.2)  # the bytes reach torii before the end does
        if self.rst:
            h.rst_close(c)


class Splice(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        c = config([cls.o], limits={"keepalive_requests": 100000})
        c.routes[0]["compress"] = True
        c.tables["compression"] = {"algorithms": ["gzip"], "min_bytes": "10KiB",
                                   "types": ["text/plain"], "gzip_level": 1}
        cls.t = cls.class_torii(c)
        cls.addr = cls.t.addr()

    # Bodies from splice_min up go by splice, each one complete; the client and the upstream
    # connection both carry the next request, small or large.
    def test_large_bodies_pass_whole_and_both_connections_go_on(self):
        before = spliced(self.t)
        sizes = [64 * 1024, 1024 * 1024 + 7, 5 * 1024 * 1024 + 3, 100, 300 * 1024]
        with h.Client(self.addr) as c:
            rs = [c.get(f"/?size={n}") for n in sizes]
        for n, r in zip(sizes, rs):
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), n)
            self.assertEqual(r.body, h.pattern_bytes(n), f"size {n}")
        self.assertEqual(len({r.header("X-Conn-Id") for r in rs}), 1)  # one upstream connection
        # The first three bodies went by splice, all but what came with each head (one receive
        # buffer at most); the fourth is small, after which the connection receives with a
        # multishot receive again, so the last one comes mostly through the ring.
        large = sum(sizes[:3])
        self.assertGreaterEqual(spliced(self.t) - before, large - 3 * 16 * 1024)
        # The access log counts the spliced bytes as sent.
        lines = self.t.access_log_lines(wait_for_count=len(sizes))
        self.assertTrue(any(f" {5 * 1024 * 1024 + 3} " in l for l in lines), lines[-5:])

    # Pipelined requests behind a spliced body wait for it and keep their order.
    def test_pipelined_requests_follow_a_spliced_body(self):
        reqs = b"".join(h.build_request("GET", f"/p{i}?hdr=X-Req:{i}&size={n}")
                        for i, n in ((1, 2 * 1024 * 1024), (2, 10), (3, 200 * 1024), (4, 0)))
        with h.Client(self.addr) as c:
            c.send(reqs)
            rs = [c.read_response() for _ in range(4)]
        self.assertEqual([r.header("X-Req") for r in rs], ["1", "2", "3", "4"])
        self.assertEqual([len(r.body) for r in rs], [2 * 1024 * 1024, 10, 200 * 1024, 0])
        self.assertEqual(rs[0].body, h.pattern_bytes(2 * 1024 * 1024))
        self.assertEqual(rs[2].body, h.pattern_bytes(200 * 1024))

    # What is not sent as it is stays on the ordinary path: a HEAD, a body below splice_min,
    # and a body the client gets compressed. A large body after those comes through a multishot
    # receive (mostly through the ring), and the next one is spliced again.
    def test_head_small_and_compressed_bodies_are_not_spliced(self):
        before = spliced(self.t)
        with h.Client(self.addr) as c:
            r = c.request("HEAD", "/?size=1048576")
            self.assertEqual((r.status, r.body), (200, b""))
            self.assertEqual(r.header("Content-Length"), "1048576")
            self.assertEqual(len(c.get("/?size=60000").body), 60000)
            r = c.get("/?size=300000", headers=[("Accept-Encoding", "gzip")])
            self.assertEqual(r.header("Content-Encoding"), "gzip")
            self.assertEqual(gzip.decompress(r.body), h.pattern_bytes(300000))
            self.assertEqual(spliced(self.t), before)
            self.assertEqual(len(c.get("/?size=100000").body), 100000)  # the connection goes on
            self.assertEqual(len(c.get("/?size=100000").body), 100000)
        self.assertGreaterEqual(spliced(self.t) - before, 100000 - 16 * 1024)
        self.assertLessEqual(spliced(self.t) - before, 200000)

    # A client that stops reading a spliced body meets send_timeout (D3): the connection is cut
    # within a few seconds and the next client is served.
    def test_client_that_never_reads_meets_the_send_timeout(self):
        o = self.origin("o2")
        t = self.torii(config([o], limits={"send_timeout": "1s"}))
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(t.addr())
        s.sendall(h.build_request("GET", "/?size=104857600"))
        lines = t.access_log_lines(wait_for_count=1, timeout=6 * h.SLOW)
        self.assertTrue(any("send timeout" in l for l in lines), lines)
        got, deadline = 0, time.monotonic() + 5 * h.SLOW
        while time.monotonic() < deadline:
            try:
                b = s.recv(1 << 20)
            except (ConnectionResetError, socket.timeout):
                break
            if not b:
                break
            got += len(b)
        self.assertLess(got, 104857600)
        self.assertGreater(spliced(t), 0)
        r = h.get(t.addr(), "/?size=1048576")
        self.assertEqual((r.status, len(r.body)), (200, 1048576))

    # Many clients at once, large and small bodies mixed, some clients cutting their connection
    # mid-body: every body that is read to its end is whole, and torii keeps serving.
    def test_concurrent_mixed_bodies_arrive_whole(self):
        o = self.origin("o5")
        t = self.torii(config([o], limits={"keepalive_requests": 100000}))
        errors = []

        def client(seed):
            rng = random.Random(seed)
            try:
                with h.Client(t.addr(), timeout=30 * h.SLOW) as c:
                    for i in range(12):
                        n = rng.choice([0, 100, 70000, 300000, 1500000, rng.randrange(1 << 21)])
                        if i == 6 and seed % 3 == 0:
                            s = h.connect(t.addr())
                            s.sendall(h.build_request("GET", "/?size=4000000"))
                            s.recv(65536)
                            h.rst_close(s)  # a client gone mid-body
                        r = c.get(f"/?size={n}")
                        if r.status != 200 or r.body != h.pattern_bytes(n):
                            errors.append((seed, i, n, r.status, len(r.body)))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append((seed, repr(e)))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        self.assertEqual(errors, [])
        self.assertGreater(spliced(t), 0)
        r = h.get(t.addr(), "/?size=1000000")
        self.assertEqual(r.body, h.pattern_bytes(1000000))

    # splice_min = 0: every body goes through torii's memory (and arrives the same).
    def test_splice_min_zero_turns_it_off(self):
        o = self.origin("o3")
        t = self.torii(config([o], splice_min=0))
        r = h.get(t.addr(), "/?size=3000000")
        self.assertEqual(r.body, h.pattern_bytes(3000000))
        self.assertEqual(spliced(t), 0)


class SpliceFaults(h.ToriiCase):
    # B4: the backend dies mid-body after 1 MiB of a 4 MiB body: the client gets every byte it
    # sent, then the connection ends without the rest (no response could be complete).
    def test_b4_backend_fin_mid_body_forwards_every_byte_then_cuts(self):
        b = DiesMidBody("dies", 4 * 1024 * 1024, 1024 * 1024)
        self.addCleanup(b.cleanup)
        t = self.torii(config([b.address]))
        data, closed = h.raw(t.addr(), h.build_request("GET", "/big"), timeout=5 * h.SLOW)
        self.assertTrue(closed)
        rs = h.parse_responses(data)
        self.assertEqual(len(rs), 1)
        self.assertFalse(rs[0].complete)
        self.assertEqual(rs[0].body, h.pattern_bytes(1024 * 1024))
        self.assertGreater(spliced(t), 512 * 1024)

    # The same with an RST: a cut, never a hang or a crash, and torii serves the next client.
    def test_b4_backend_rst_mid_body_cuts_the_client(self):
        b = DiesMidBody("dies", 4 * 1024 * 1024, 1024 * 1024, rst=True)
        self.addCleanup(b.cleanup)
        t = self.torii(config([b.address]))
        for _ in range(2):
            data, closed = h.raw(t.addr(), h.build_request("GET", "/big"), timeout=5 * h.SLOW)
            self.assertTrue(closed)
            rs = h.parse_responses(data)
            self.assertEqual(len(rs), 1)
            self.assertFalse(rs[0].complete)
            self.assertLessEqual(len(rs[0].body), 1024 * 1024)
            self.assertEqual(rs[0].body, h.pattern_bytes(len(rs[0].body)))

    # The client resets mid-body: the upstream connection is closed (never pooled with bytes
    # left in it), and the next request gets a whole body on a fresh one.
    def test_client_reset_mid_body_closes_the_upstream(self):
        o = self.origin("o4")
        t = self.torii(config([o]))
        s = h.connect(t.addr())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(h.build_request("GET", "/?size=52428800"))
        self.assertTrue(s.recv(4096))
        h.rst_close(s)
        h.wait_for(lambda: t.access_log_lines(), 3 * h.SLOW, what="the cut request's log line")
        for n in (3 * 1024 * 1024, 100):
            r = h.get(t.addr(), f"/?size={n}")
            self.assertEqual((r.status, r.body), (200, h.pattern_bytes(n)))


if __name__ == "__main__":
    unittest.main()
