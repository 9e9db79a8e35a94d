"""Backends found by DNS (issue #19) through the real binary, against a real DNS server on a
loopback port (dns_server.py: answers over UDP and TCP from records the test changes while
torii runs): A/AAAA names re-resolved at their TTL, addresses added and removed under load
with no failed request, NXDOMAIN cached for the SOA's minimum, the last good set kept while
the DNS server is down (stale on the status page), SRV discovery with backup priorities,
start-up refused for a name that does not resolve (unless resolve_at_start = false), and
reload re-resolving."""

import collections
import json
import os
import signal
import subprocess
import threading
import time
import unittest

import harness as h
from dns_server import DnsServer


def dns_config(dns, backends, dns_extra=None, pool_extra=None):
    c = h.Config()
    c.add_pool("app", [], **(pool_extra or {}))
    c.pools[0]["backends"] = backends
    if not backends:
        del c.pools[0]["backends"]
    c.add_route("app")
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    d = {"servers": [dns.address], "timeout": "300ms", "attempts": 2, "min_ttl": "1s"}
    d.update(dns_extra or {})
    c.tables["dns"] = d
    return c


def status(t):
    return json.loads(h.get(t.addr("admin"), "/status.json").body)


def backend_names(t):
    return sorted(b["address"] for b in status(t)["pools"][0]["backends"])


class Load:
    """Requests in a loop on keep-alive connections until stopped; counts statuses and
    backends."""

    def __init__(self, addr, clients=2):
        self.addr, self.stop_flag = addr, threading.Event()
        self.statuses, self.backends = collections.Counter(), collections.Counter()
        self.errors = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]
        for th in self.threads:
            th.start()

    def run(self):
        deadline = time.monotonic() + 120
        while not self.stop_flag.is_set() and time.monotonic() < deadline:
            try:
                with h.Client(self.addr) as c:
                    for _ in range(50):
                        if self.stop_flag.is_set():
                            return
                        r = c.get("/")
                        with self.lock:
                            self.statuses[r.status] += 1
                            self.backends[r.header("X-Backend")] += 1
                        time.sleep(0.002)
            except Exception as e:  # a failed request is what the test checks for
                with self.lock:
                    self.errors.append(repr(e))

    def snapshot(self):
        with self.lock:
            return collections.Counter(self.backends)

    def stop(self):
        self.stop_flag.set()
        for th in self.threads:
            th.join(10)


class DnsCase(h.ToriiCase):
    def dns(self, **kw):
        d = DnsServer(**kw)
        self.addCleanup(d.stop)
        return d

    def origins_on_one_port(self, names):
        """Origins on 127.0.0.1, 127.0.0.2, ... all on the same port (one A name, one port)."""
        first = self.origin(names[0])
        port = int(first.address.rsplit(":", 1)[1])
        out = [first]
        for i, name in enumerate(names[1:], start=2):
            o = self.origin(name, start=False)
            o.start(listen=f"127.0.0.{i}:{port}")
            out.append(o)
        return out, port


class Resolve(DnsCase):
    def test_a_records_are_the_backends(self):
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        dns.set_a("app.test", ["127.0.0.1", "127.0.0.2"], ttl=30)
        t = self.torii(dns_config(dns, [{"address": f"APP.test.:{port}", "resolve": True}]))
        seen = collections.Counter(h.get(t.addr(), f"/?i={i}").header("X-Backend")
                                   for i in range(20))
        self.assertEqual(seen, {"o1": 10, "o2": 10})
        st = status(t)["pools"][0]
        self.assertEqual(sorted(b["address"] for b in st["backends"]),
                         [f"127.0.0.1:{port}", f"127.0.0.2:{port}"])
        a = [n for n in st["dns"] if n["type"] == "A"][0]
        self.assertEqual((a["name"], a["records"], a["stale"]), ("app.test", 2, False))
        aaaa = [n for n in st["dns"] if n["type"] == "AAAA"][0]
        self.assertTrue(aaaa["negative"])  # NODATA: the name has no AAAA records

    def test_aaaa_records(self):
        dns = self.dns()
        o = self.origin("o6", start=False)
        o.start(listen="[::1]:0")
        port = int(o.address.rsplit(":", 1)[1])
        dns.set_aaaa("six.test", ["::1"], ttl=30)
        dns.set_a("six.test", [], ttl=30)
        t = self.torii(dns_config(dns, [{"address": f"six.test:{port}", "resolve": True}]))
        self.assertEqual(h.get(t.addr(), "/").header("X-Backend"), "o6")
        self.assertEqual(backend_names(t), [f"[::1]:{port}"])

    def test_addresses_added_and_removed_under_load_fail_no_request(self):
        dns = self.dns()
        (o1, o2, o3), port = self.origins_on_one_port(["o1", "o2", "o3"])
        dns.set_a("app.test", ["127.0.0.1"], ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}]))
        load = Load(t.addr())
        try:
            h.wait_for(lambda: load.snapshot()["o1"] > 20, 10 * h.SLOW, what="load on o1")
            dns.set_a("app.test", ["127.0.0.1", "127.0.0.2", "127.0.0.3"], ttl=1)
            h.wait_for(lambda: load.snapshot()["o2"] > 10 and load.snapshot()["o3"] > 10,
                       10 * h.SLOW, what="o2 and o3 added")
            dns.set_a("app.test", ["127.0.0.3"], ttl=1)
            h.wait_for(lambda: backend_names(t) == [f"127.0.0.3:{port}"], 10 * h.SLOW,
                       what="o1 and o2 removed")
            # A request sent to o2 just before the change may still be answered: counted once
            # it is, it is not a new one. Let those finish first.
            time.sleep(0.5 * h.SLOW)
            before = load.snapshot()
            time.sleep(1.0)
            after = load.snapshot()
            self.assertEqual(after["o1"], before["o1"], "a removed address got new requests")
            self.assertEqual(after["o2"], before["o2"], "a removed address got new requests")
            self.assertGreater(after["o3"], before["o3"])
        finally:
            load.stop()
        self.assertEqual(load.errors, [])
        self.assertEqual(set(load.statuses), {200}, load.statuses)
        self.assertIn("DNS changed its backends", t.error_log() + t.stderr_text())

    def test_ttl_is_honoured(self):
        dns = self.dns()
        o1, = self.origins_on_one_port(["o1"])[0]
        port = int(o1.address.rsplit(":", 1)[1])
        dns.set_a("app.test", ["127.0.0.1"], ttl=2)
        dns.set_aaaa("app.test", ["::1"], ttl=3600)  # asked again only after max_ttl
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}],
                                  dns_extra={"max_ttl": "5s"}))
        dns.reset_counts()
        time.sleep(7.2)
        a = dns.queries("app.test", "A")
        aaaa = dns.queries("app.test", "AAAA")
        # TTL 2 s: asked again every 2 s (3 or 4 times in 7.2 s, never every turn).
        self.assertTrue(3 <= a <= 4, a)
        # TTL 3600 s clamped by max_ttl = 5 s: once or twice.
        self.assertTrue(1 <= aaaa <= 2, aaaa)

    def test_change_is_seen_within_the_ttl(self):
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        dns.set_a("app.test", ["127.0.0.1"], ttl=2)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}]))
        dns.set_a("app.test", ["127.0.0.2"], ttl=2)
        changed = time.monotonic()
        h.wait_for(lambda: h.get(t.addr(), "/").header("X-Backend") == "o2", 10 * h.SLOW,
                   interval=0.05, what="the new address in use")
        self.assertLess(time.monotonic() - changed, 2 + 1 + 1.5 * h.SLOW)

    def test_nxdomain_is_cached_for_the_soa_minimum(self):
        dns = self.dns()
        o1, = self.origins_on_one_port(["o1"])[0]
        port = int(o1.address.rsplit(":", 1)[1])
        dns.set_soa(minimum=3, ttl=60)
        dns.set_a("app.test", ["127.0.0.1"], ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}]))
        dns.remove("app.test")
        h.wait_for(lambda: h.get(t.addr(), "/").status == 503, 10 * h.SLOW,
                   what="the pool emptied by NXDOMAIN")
        dns.reset_counts()
        time.sleep(6.5)
        n = dns.queries("app.test", "A")
        # Negative TTL = min(SOA TTL 60, MINIMUM 3) = 3 s: two or three queries, not six.
        self.assertTrue(2 <= n <= 3, n)
        st = status(t)["pools"][0]
        self.assertEqual(st["backends"], [])
        self.assertTrue([x for x in st["dns"] if x["type"] == "A"][0]["negative"])
        dns.set_a("app.test", ["127.0.0.1"], ttl=1)
        h.wait_for(lambda: h.get(t.addr(), "/").status == 200, 10 * h.SLOW,
                   what="the name back")

    def test_dns_server_down_keeps_the_last_good_set(self):
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        dns.set_a("app.test", ["127.0.0.1", "127.0.0.2"], ttl=1)
        dns.set_aaaa("app.test", [], ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}]))
        dns.stop()
        h.wait_for(lambda: any(n["stale"] for n in status(t)["pools"][0]["dns"]), 10 * h.SLOW,
                   what="stale on the status page")
        time.sleep(2.5)  # well past the TTL
        seen = collections.Counter(h.get(t.addr(), f"/?i={i}").header("X-Backend")
                                   for i in range(10))
        self.assertEqual(seen, {"o1": 5, "o2": 5})
        a = [n for n in status(t)["pools"][0]["dns"] if n["type"] == "A"][0]
        self.assertTrue(a["stale"])
        self.assertNotEqual(a["error"], "")
        dns.set_a("app.test", ["127.0.0.2"], ttl=1)
        dns.start()
        h.wait_for(lambda: backend_names(t) == [f"127.0.0.2:{port}"], 40 * h.SLOW,
                   what="answers again after the server came back")
        self.assertFalse(any(n["stale"] for n in status(t)["pools"][0]["dns"]))

    def test_health_state_stays_with_an_address(self):
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        o2.stop()
        dns.set_a("app.test", ["127.0.0.1", "127.0.0.2"], ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}],
                                  pool_extra={"health": {"path": "/", "interval": "1s",
                                                         "timeout": "300ms", "fall": 1,
                                                         "rise": 5}}))
        h.wait_for(lambda: [b["up"] for b in status(t)["pools"][0]["backends"]] == [True, False],
                   10 * h.SLOW, what="o2 down by the checks")
        o2.start(listen=f"127.0.0.2:{port}")  # back, but it needs 5 passing checks (5 s)
        o3 = self.origin("o3", start=False)
        o3.start(listen=f"127.0.0.3:{port}")
        dns.set_a("app.test", ["127.0.0.1", "127.0.0.2", "127.0.0.3"], ttl=1)
        h.wait_for(lambda: len(status(t)["pools"][0]["backends"]) == 3, 10 * h.SLOW,
                   what="o3 added")
        # o2's state moved with its address: still down, while o3 (new, no history) is up.
        up = {b["address"]: b["checks_passing"] for b in status(t)["pools"][0]["backends"]}
        self.assertEqual(up, {f"127.0.0.1:{port}": True, f"127.0.0.2:{port}": False,
                              f"127.0.0.3:{port}": True})
        for i in range(12):
            r = h.get(t.addr(), f"/?i={i}")
            self.assertEqual(r.status, 200)
            self.assertIn(r.header("X-Backend"), ("o1", "o3"))


    def test_a_change_keeps_the_idle_connections_of_addresses_that_stay(self):
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        dns.set_a("app.test", ["127.0.0.1"], ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}]))
        for i in range(3):
            self.assertEqual(h.get(t.addr(), f"/?i={i}").header("X-Backend"), "o1")
        before = o1.stats()["connections"]
        dns.set_a("app.test", ["127.0.0.1", "127.0.0.2"], ttl=1)
        h.wait_for(lambda: len(status(t)["pools"][0]["backends"]) == 2, 10 * h.SLOW,
                   what="o2 added")
        seen = collections.Counter(h.get(t.addr(), f"/?j={i}").header("X-Backend")
                                   for i in range(6))
        self.assertEqual(seen, {"o1": 3, "o2": 3})
        # o1's pooled connection went on serving: the change opened none to it (the one more
        # is this /__stats request's own).
        self.assertEqual(o1.stats()["connections"], before + 1)


    def test_requests_in_flight_keep_their_max_conns_slot_across_a_change(self):
        """#19: max_conns = 1 and a slow request in flight to o1 when DNS adds o2: o1 stays
        full under the new list (its slot is handed over, not counted afresh), so the next
        requests all go to o2 until the slow one ends."""
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        dns.set_a("app.test", ["127.0.0.1"], ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}],
                                  pool_extra={"max_conns": 1, "queue_timeout": "10s"}))
        slow = {}
        th = threading.Thread(target=lambda: slow.update(r=h.get(t.addr(), "/?delay=8000",
                                                                  timeout=30)))
        th.start()
        self.addCleanup(th.join, 30)
        h.wait_for(lambda: o1.stats()["requests"] >= 1, 10 * h.SLOW, interval=0.05,
                   what="the slow request to reach o1")
        dns.set_a("app.test", ["127.0.0.1", "127.0.0.2"], ttl=1)
        h.wait_for(lambda: len(status(t)["pools"][0]["backends"]) == 2, 10 * h.SLOW,
                   what="o2 added")
        self.assertIsNone(slow.get("r"), "the slow request ended too early for this test")
        seen = collections.Counter(h.get(t.addr(), f"/?i={i}").header("X-Backend")
                                   for i in range(6))
        self.assertIsNone(slow.get("r"), "the slow request ended too early for this test")
        self.assertEqual(seen, {"o2": 6})
        th.join(30)
        self.assertEqual(slow["r"].header("X-Backend"), "o1")
        # Its end gave the slot back to the new list's count: o1 takes requests again.
        seen = collections.Counter(h.get(t.addr(), f"/?j={i}").header("X-Backend")
                                   for i in range(4))
        self.assertEqual(seen, {"o1": 2, "o2": 2})

    def test_slow_start_ramps_a_new_address(self):
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        dns.set_a("app.test", ["127.0.0.1"], ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"app.test:{port}", "resolve": True}],
                                  pool_extra={"slow_start": "6s"}))
        dns.set_a("app.test", ["127.0.0.1", "127.0.0.2"], ttl=1)
        h.wait_for(lambda: len(status(t)["pools"][0]["backends"]) == 2, 10 * h.SLOW,
                   what="o2 added")
        added = time.monotonic()
        early = collections.Counter()
        while time.monotonic() - added < 1.0:
            with h.Client(t.addr()) as c:  # under keepalive_requests
                for _ in range(100):
                    early[c.get("/").header("X-Backend")] += 1
        # In its first second o2 takes part in at most ~1/6 of the picks: a small share.
        self.assertGreater(early["o1"], 20)
        self.assertLess(early["o2"] / sum(early.values()), 0.2, early)
        time.sleep(max(0.0, 6.5 - (time.monotonic() - added)))
        late = collections.Counter(h.get(t.addr(), f"/?i={i}").header("X-Backend")
                                   for i in range(40))
        self.assertEqual(late, {"o1": 20, "o2": 20})  # full share: plain round-robin again


class Srv(DnsCase):
    def test_srv_targets_ports_and_backup_priority(self):
        dns = self.dns()
        a, b, c = self.origin("a"), self.origin("b"), self.origin("c")
        port = lambda o: int(o.address.rsplit(":", 1)[1])
        dns.set_a("a.test", ["127.0.0.1"], ttl=30)
        dns.set_a("b.test", ["127.0.0.1"], ttl=30)
        dns.set_a("c.test", ["127.0.0.1"], ttl=30)
        dns.set_srv("_http._tcp.app.test", [(10, 1, port(a), "a.test"), (10, 3, port(b), "b.test"),
                                            (20, 1, port(c), "c.test")], ttl=1)
        t = self.torii(dns_config(dns, [], pool_extra={"discover": {"srv": "_http._tcp.app.test"}}))
        seen = collections.Counter(h.get(t.addr(), f"/?i={i}").header("X-Backend")
                                   for i in range(40))
        self.assertEqual(seen, {"a": 10, "b": 30})  # SRV weights; priority 20 is a backup
        backups = {x["address"]: x["backup"] for x in status(t)["pools"][0]["backends"]}
        self.assertEqual(backups[f"127.0.0.1:{port(c)}"], True)
        # The primaries leave the SRV set: the backup serves.
        dns.set_srv("_http._tcp.app.test", [(20, 1, port(c), "c.test")], ttl=1)
        h.wait_for(lambda: h.get(t.addr(), "/").header("X-Backend") == "c", 10 * h.SLOW,
                   what="the backup target in use")
        # A new target name is resolved on its own.
        d = self.origin("d")
        dns.set_a("d.test", ["127.0.0.1"], ttl=30)
        dns.set_srv("_http._tcp.app.test", [(5, 1, port(d), "d.test"), (20, 1, port(c), "c.test")],
                    ttl=1)
        h.wait_for(lambda: h.get(t.addr(), "/").header("X-Backend") == "d", 10 * h.SLOW,
                   what="the new SRV target in use")

    def test_srv_priorities_are_backup_tiers_and_large_weights_keep_their_ratio(self):
        """#19: three SRV priorities are three tiers: the second serves only when the first
        is down, the third only when both are; weights above 256 are scaled, not clamped
        (1000 : 3000 stays 1 : 3)."""
        dns = self.dns()
        o = {n: self.origin(n) for n in "abcd"}
        port = lambda x: int(o[x].address.rsplit(":", 1)[1])
        for n in "abcd":
            dns.set_a(f"{n}.test", ["127.0.0.1"], ttl=30)
        dns.set_srv("_http._tcp.app.test", [(10, 1000, port("a"), "a.test"),
                                            (10, 3000, port("b"), "b.test"),
                                            (20, 7, port("c"), "c.test"),
                                            (30, 70000 % 65536, port("d"), "d.test")], ttl=30)
        t = self.torii(dns_config(dns, [], pool_extra={
            "discover": {"srv": "_http._tcp.app.test"},
            "health": {"path": "/", "interval": "1s", "timeout": "300ms", "fall": 1,
                       "rise": 1}}))
        seen = collections.Counter(h.get(t.addr(), f"/?i={i}").header("X-Backend")
                                   for i in range(40))
        self.assertEqual(seen, {"a": 10, "b": 30})
        rows = {x["address"]: (x["tier"], x["weight"], x["backup"])
                for x in status(t)["pools"][0]["backends"]}
        self.assertEqual(rows, {f"127.0.0.1:{port('a')}": (0, 85, False),
                                f"127.0.0.1:{port('b')}": (0, 256, False),
                                f"127.0.0.1:{port('c')}": (1, 7, True),
                                f"127.0.0.1:{port('d')}": (2, 256, True)})
        o["a"].stop()
        o["b"].stop()
        h.wait_for(lambda: h.get(t.addr(), "/").header("X-Backend") == "c", 10 * h.SLOW,
                   what="the second tier in use")
        self.assertEqual({h.get(t.addr(), f"/?j={i}").header("X-Backend") for i in range(6)},
                         {"c"})  # never the third tier while the second serves
        o["c"].stop()
        h.wait_for(lambda: h.get(t.addr(), "/").header("X-Backend") == "d", 10 * h.SLOW,
                   what="the third tier in use")


class StartUp(DnsCase):
    def test_name_that_does_not_resolve_stops_start_up(self):
        dns = self.dns()
        c = dns_config(dns, [{"address": "nope.test:8080", "resolve": True}])
        t = h.Torii(c, dir=self.tmpdir(), start=False)
        t.start_failed = subprocess.run([h.torii_bin(), "-c", t.config_path],
                                        capture_output=True, text=True, timeout=30 * h.SLOW,
                                        env=h.child_env())
        self.assertEqual(t.start_failed.returncode, 1)
        text = t.start_failed.stderr + t.error_log()
        self.assertIn("nope.test:8080 does not resolve", text)
        self.assertIn("NXDOMAIN", text)

    def test_resolve_at_start_false_waits_for_the_name(self):
        dns = self.dns()
        o1, = self.origins_on_one_port(["o1"])[0]
        port = int(o1.address.rsplit(":", 1)[1])
        dns.set_soa(minimum=1, ttl=1)
        t = self.torii(dns_config(dns, [{"address": f"late.test:{port}", "resolve": True}],
                                  dns_extra={"resolve_at_start": False}))
        self.assertEqual(h.get(t.addr(), "/").status, 503)
        dns.set_a("late.test", ["127.0.0.1"], ttl=5)
        h.wait_for(lambda: h.get(t.addr(), "/").status == 200, 10 * h.SLOW,
                   what="the name resolving later")

    def test_dns_server_down_at_start(self):
        dns = self.dns()
        dns.set_mode("drop")
        c = dns_config(dns, [{"address": "app.test:8080", "resolve": True}],
                       dns_extra={"timeout": "200ms", "attempts": 1})
        t = h.Torii(c, dir=self.tmpdir(), start=False)
        started = time.monotonic()
        r = subprocess.run([h.torii_bin(), "-c", t.config_path], capture_output=True, text=True,
                           timeout=30 * h.SLOW, env=h.child_env())
        self.assertEqual(r.returncode, 1)
        self.assertIn("does not resolve", r.stderr + t.error_log())
        self.assertLess(time.monotonic() - started, 10 * h.SLOW)  # bounded by timeout x attempts

    def test_config_check_accepts_names_and_explains_missing_resolve(self):
        d = self.tmpdir()
        good = os.path.join(d, "good.toml")
        bad = os.path.join(d, "bad.toml")
        base = ('[[listener]]\nname = "http"\naddress = "127.0.0.1:0"\n'
                '[[route]]\npool = "app"\n[dns]\nservers = ["127.0.0.1:5353"]\n')
        with open(good, "w") as f:
            f.write(base + '[[pool]]\nname = "app"\nbackends = [{ address = "app.internal:8080",'
                    ' resolve = true }]\n')
        with open(bad, "w") as f:
            f.write(base + '[[pool]]\nname = "app"\nbackends = [{ address = "app.internal:8080"'
                    ' }]\n')
        ok = subprocess.run([h.torii_bin(), "-t", "-c", good], capture_output=True, text=True,
                            timeout=30, env=h.child_env())
        self.assertEqual(ok.returncode, 0, ok.stderr)
        no = subprocess.run([h.torii_bin(), "-t", "-c", bad], capture_output=True, text=True,
                            timeout=30, env=h.child_env())
        self.assertNotEqual(no.returncode, 0)
        self.assertIn("add resolve = true", no.stderr + no.stdout)


class Reload(DnsCase):
    def test_reload_re_resolves_and_refuses_a_name_that_does_not_resolve(self):
        dns = self.dns()
        (o1, o2), port = self.origins_on_one_port(["o1", "o2"])
        dns.set_a("one.test", ["127.0.0.1"], ttl=300)
        dns.set_a("two.test", ["127.0.0.2"], ttl=300)
        t = self.torii(dns_config(dns, [{"address": f"one.test:{port}", "resolve": True}]))
        self.assertEqual(h.get(t.addr(), "/").header("X-Backend"), "o1")
        with open(t.config_path) as f:
            text = f.read()
        with open(t.config_path, "w") as f:
            f.write(text.replace("one.test", "gone.test"))
        t.proc.send_signal(signal.SIGHUP)
        h.wait_for(lambda: "reload refused" in t.error_log() + t.stderr_text(), 10 * h.SLOW,
                   what="reload refused")
        self.assertEqual(h.get(t.addr(), "/").header("X-Backend"), "o1")
        with open(t.config_path, "w") as f:
            f.write(text.replace("one.test", "two.test"))
        t.proc.send_signal(signal.SIGHUP)
        h.wait_for(lambda: h.get(t.addr(), "/").header("X-Backend") == "o2", 10 * h.SLOW,
                   what="the reloaded name in use")


if __name__ == "__main__":
    unittest.main()
