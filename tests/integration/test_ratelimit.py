"""Rate limits and access control through the real binary (issue #7): exact 429 counts with
Retry-After and the RateLimit headers, independent keys, limits shared across workers, prefix
and header keys, delay mode, automatic bans, connection limits at accept, CIDR allow/deny for
IPv4 and IPv6, and X-Forwarded-For believed only from trusted proxies (BAD-INPUTS D6)."""

import concurrent.futures
import socket
import time
import unittest

import harness as h


def limited_config(origin, limit, route_extra=None, workers=1, listeners=None, server=None):
    c = h.proxy_config([origin], workers=workers)
    c.routes[0]["rate_limit"] = "per_ip"
    c.routes[0].update(route_extra or {})
    if listeners is not None:
        c.listeners = listeners
    if server:
        c.server.update(server)
    text_limit = "\n[rate_limit.per_ip]\n" + "".join(
        f"{k} = {h.toml_value(v)}\n" for k, v in limit.items())

    class WithLimit(h.Config):
        def render(self, *a):
            return c.render(*a) + text_limit
    return WithLimit()


def statuses_from(addr, n, source=None, path="/", headers=None, keepalive=True):
    out = []
    if keepalive:
        with h.Client(addr, source=source) as cl:
            for i in range(n):
                out.append(cl.get(f"{path}?i={i}", headers=headers))
    else:
        for i in range(n):
            out.append(h.get(addr, f"{path}?i={i}", source=source, headers=headers))
    return out


class RateLimits(h.ToriiCase):
    def test_burst_above_the_limit_gets_exactly_the_expected_429s(self):
        o = self.origin("o1")
        t = self.torii(limited_config(o, {"rate": "1/m", "burst": 4}))
        rs = statuses_from(t.addr(), 10, source="127.0.0.2")
        self.assertEqual([r.status for r in rs], [200] * 5 + [429] * 5)
        for r in rs[5:]:
            retry = int(r.header("Retry-After"))
            self.assertGreaterEqual(retry, 1)
            self.assertLessEqual(retry, 60)
            self.assertEqual(r.header("RateLimit-Policy"), '"per_ip";q=1;w=60')
            self.assertTrue(r.header("RateLimit").startswith('"per_ip";r=0;t='))
        # Allowed responses carry the policy and what is left.
        self.assertEqual(rs[0].header("RateLimit-Policy"), '"per_ip";q=1;w=60')
        self.assertTrue(rs[0].header("RateLimit").startswith('"per_ip";r=4;'), rs[0].header("RateLimit"))
        self.assertTrue(rs[4].header("RateLimit").startswith('"per_ip";r=0;'))
        # The rejected ones never reached the origin; the connection stayed open throughout.
        self.assertEqual(len([e for e in o.log_entries() if e["target"].startswith("/?i=")]), 5)
        self.assertIn("rate limited", "\n".join(t.access_log_lines()))

    def test_two_clients_are_limited_independently(self):
        o = self.origin("o1")
        t = self.torii(limited_config(o, {"rate": "1/m", "burst": 2}))
        a = [r.status for r in statuses_from(t.addr(), 5, source="127.0.0.2")]
        b = [r.status for r in statuses_from(t.addr(), 5, source="127.0.0.3")]
        self.assertEqual(a, [200] * 3 + [429] * 2)
        self.assertEqual(b, [200] * 3 + [429] * 2)

    def test_limit_holds_across_workers(self):
        o = self.origin("o1", threads=2)
        t = self.torii(limited_config(o, {"rate": "1/m", "burst": 4}, workers=4))
        # Fresh connections land on different workers (SO_REUSEPORT); concurrently, too.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            rs = list(pool.map(lambda i: h.get(t.addr(), f"/?i={i}", source="127.0.0.2").status,
                               range(24)))
        self.assertEqual(rs.count(200), 5, rs)
        self.assertEqual(rs.count(429), 19, rs)

    def test_prefix_key_groups_a_network(self):
        o = self.origin("o1")
        t = self.torii(limited_config(o, {"key": "client_ip/24", "rate": "1/m", "burst": 2}))
        a = [r.status for r in statuses_from(t.addr(), 2, source="127.0.5.2")]
        b = [r.status for r in statuses_from(t.addr(), 2, source="127.0.5.3")]
        c = [r.status for r in statuses_from(t.addr(), 3, source="127.0.6.2")]
        self.assertEqual(a + b, [200, 200, 200, 429])
        self.assertEqual(c, [200, 200, 200])

    def test_header_key_and_missing_header_falls_back_to_the_address(self):
        o = self.origin("o1")
        t = self.torii(limited_config(o, {"key": "header:X-Api-Key", "rate": "1/m", "burst": 1}))
        k1 = [r.status for r in statuses_from(t.addr(), 3, headers=[("X-Api-Key", "k1")])]
        k2 = [r.status for r in statuses_from(t.addr(), 3, headers=[("X-Api-Key", "k2")])]
        none = [r.status for r in statuses_from(t.addr(), 3, source="127.0.0.7")]
        self.assertEqual(k1, [200, 200, 429])
        self.assertEqual(k2, [200, 200, 429])
        self.assertEqual(none, [200, 200, 429])

    def test_delay_mode_spaces_requests_instead_of_rejecting(self):
        o = self.origin("o1", threads=4)
        t = self.torii(limited_config(o, {"rate": "10/s", "burst": 3, "mode": "delay"}))

        def one(i):
            time.sleep(i * 0.01)
            t0 = time.monotonic()
            r = h.get(t.addr(), f"/?i={i}", source="127.0.0.2", timeout=10)
            return r.status, time.monotonic() - t0
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            rs = list(pool.map(one, range(5)))
        self.assertEqual(sorted(s for s, _ in rs), [200, 200, 200, 200, 429])
        waits = sorted(d for s, d in rs if s == 200)
        # Four admitted: one at once, three held about 100, 200 and 300 ms.
        self.assertLess(waits[0], 0.09 * h.SLOW + 0.05)
        self.assertGreaterEqual(waits[3], 0.25)

    def test_ban_after_repeated_rejections_then_unban(self):
        o = self.origin("o1")
        t = self.torii(limited_config(o, {"rate": "1/m", "burst": 0, "ban_after": 2,
                                          "ban_window": "10s", "ban_for": "2s"}))
        with h.Client(t.addr(), source="127.0.0.2") as c:
            self.assertEqual([c.get("/").status for _ in range(4)], [200, 429, 429, 403])
        self.assertIn("client 127.0.0.2 banned for 2 s", t.error_log())
        # Another client is untouched.
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.3").status, 200)
        time.sleep(2.2)
        # The ban is over; the rate limit itself still applies.
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.2").status, 429)


class Access(h.ToriiCase):
    def test_route_and_listener_lists_ipv4(self):
        o = self.origin("o1")
        c = h.proxy_config([o])
        c.listeners[0]["allow"] = ["127.0.0.0/29"]
        c.routes = [{"host": "*", "path_prefix": "/admin", "pool": "app",
                     "deny": ["127.0.0.3"]},
                    {"host": "*", "path_prefix": "/", "pool": "app"}]
        t = self.torii(c)
        self.assertEqual(h.get(t.addr(), "/admin", source="127.0.0.2").status, 200)
        r = h.get(t.addr(), "/admin", source="127.0.0.3")
        self.assertEqual(r.status, 403)
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.3").status, 200)
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.9").status, 403)
        self.assertEqual([e for e in o.log_entries() if e["target"] == "/admin"].__len__(), 1)

    def test_ipv6_lists(self):
        o = self.origin("o1")
        c = h.proxy_config([o])
        c.listeners = [{"name": "v6", "address": "[::1]:0", "deny": ["::1/128"]},
                       {"name": "v6ok", "address": "[::1]:0", "allow": ["::1"]},
                       {"name": "http", "address": "127.0.0.1:0", "allow": ["::/0"]}]
        t = self.torii(c)
        self.assertEqual(h.get(t.addr("v6"), "/").status, 403)
        self.assertEqual(h.get(t.addr("v6ok"), "/").status, 200)
        # An IPv6-only allow list admits no IPv4 client.
        self.assertEqual(h.get(t.addr("http"), "/").status, 403)

    def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(self):
        o = self.origin("o1")
        c = h.proxy_config([o], server_extra={"trusted_proxies": ["127.0.0.10/32"]})
        c.routes[0]["deny"] = ["203.0.113.7"]
        t = self.torii(c)
        spoof = [("X-Forwarded-For", "203.0.113.7")]
        # From an untrusted peer the header means nothing: not denied.
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.2", headers=spoof).status, 200)
        # From the trusted proxy it names the client: denied.
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.10", headers=spoof).status, 403)
        # Right-most untrusted hop: a client cannot hide behind a prepended address.
        chain = [("X-Forwarded-For", "198.51.100.1, 203.0.113.7")]
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.10", headers=chain).status, 403)
        ok = [("X-Forwarded-For", "203.0.113.7, 198.51.100.1")]
        self.assertEqual(h.get(t.addr(), "/", source="127.0.0.10", headers=ok).status, 200)

    def test_rate_limit_keys_on_the_real_client_behind_a_trusted_proxy(self):
        o = self.origin("o1")
        t = self.torii(limited_config(o, {"rate": "1/m", "burst": 1},
                                      server={"trusted_proxies": ["127.0.0.10"]}))
        for client in ("198.51.100.1", "198.51.100.2"):
            xff = [("X-Forwarded-For", client)]
            got = [r.status for r in statuses_from(t.addr(), 3, source="127.0.0.10",
                                                   headers=xff)]
            self.assertEqual(got, [200, 200, 429], client)
        # An untrusted peer's header is ignored: it is limited as itself.
        got = [h.get(t.addr(), "/", source="127.0.0.2",
                     headers=[("X-Forwarded-For", f"192.0.2.{i}")]).status for i in range(3)]
        self.assertEqual(got, [200, 200, 429])


class ConnectionLimits(h.ToriiCase):
    @staticmethod
    def answers(addr, source):
        try:
            return h.get(addr, "/", source=source, timeout=2).status == 200
        except (OSError, ConnectionError, TimeoutError):
            return False

    def closed_at_accept(self, addr, source):
        s = h.connect(addr, source=source)
        try:
            s.settimeout(3 * h.SLOW)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            data = s.recv(100)
            return data == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            s.close()

    def test_max_conns_per_ip(self):
        o = self.origin("o1")
        c = h.proxy_config([o], workers=2)
        c.listeners[0]["max_conns_per_ip"] = 2
        t = self.torii(c)
        held = [h.Client(t.addr(), source="127.0.0.2") for _ in range(2)]
        try:
            for cl in held:
                self.assertEqual(cl.get("/").status, 200)
            self.assertTrue(self.closed_at_accept(t.addr(), "127.0.0.2"))
            # Another address is not affected.
            self.assertEqual(h.get(t.addr(), "/", source="127.0.0.3").status, 200)
            held.pop().close()
            h.wait_for(lambda: self.answers(t.addr(), "127.0.0.2"), 3 * h.SLOW,
                       what="slot released")
        finally:
            for cl in held:
                cl.close()
        self.assertIn("closed at accept (max_conns_per_ip", t.error_log())

    def test_listener_max_conns(self):
        o = self.origin("o1")
        c = h.proxy_config([o], workers=2)
        c.listeners[0]["max_conns"] = 3
        t = self.torii(c)
        held = [h.Client(t.addr(), source=f"127.0.0.{i}") for i in (2, 3, 4)]
        try:
            for cl in held:
                self.assertEqual(cl.get("/").status, 200)
            self.assertTrue(self.closed_at_accept(t.addr(), "127.0.0.5"))
        finally:
            for cl in held:
                cl.close()
        h.wait_for(lambda: self.answers(t.addr(), "127.0.0.5"), 3 * h.SLOW, what="room again")

    def test_flood_of_connections_is_logged_at_a_bounded_rate(self):
        o = self.origin("o1")
        c = h.proxy_config([o])
        c.listeners[0]["max_conns_per_ip"] = 1
        t = self.torii(c)
        with h.Client(t.addr(), source="127.0.0.2") as keep:
            self.assertEqual(keep.get("/").status, 200)
            for _ in range(200):
                s = socket.create_connection(t.addr(), source_address=("127.0.0.2", 0))
                s.close()
            time.sleep(0.3)
        lines = [l for l in t.error_log().splitlines() if "closed at accept" in l]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 5)
        t.check_alive()


if __name__ == "__main__":
    unittest.main()
