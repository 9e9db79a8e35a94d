"""Hot reload through the real binary (issue #9, BAD-INPUTS E8): SIGHUP swaps in a changed
config (a route and a pool change take effect for new requests, also on connections opened
before the reload), a bad config is refused with file:line:col while the old one keeps
serving, what a reload cannot change (listeners) is refused, the cache survives a reload, a
rate limit's table and a pool's backend health survive it when their settings do not change
(and start afresh when they do), and 100 reloads under steady load fail no request."""

import json
import os
import re
import signal
import threading
import time
import unittest

import harness as h


def two_pool_config(o1, o2, serve="one", extra_route=None, cache=False):
    """Pools "one" (o1) and "two" (o2); the catch-all route serves `serve`."""
    c = h.proxy_config([o1], pools={"two": [o2]})
    c.pools[0]["name"] = "one"
    c.routes = [{"host": "*", "path_prefix": "/", "pool": serve}]
    if extra_route:
        c.routes.insert(0, dict(extra_route))
    if cache:
        c.routes[-1]["cache"] = "main"
        c.tables["cache.main"] = {"memory": "8MiB", "max_object": "1MiB"}
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    return c


class ReloadCase(h.ToriiCase):
    """Helpers: rewrite the running config file, SIGHUP and wait for the outcome."""

    def write(self, t, config_or_text):
        text = config_or_text
        if isinstance(config_or_text, h.Config):
            text = config_or_text.render(t.ready_file, t.access_log_path, t.error_log_path)
        with open(t.config_path, "w") as f:
            f.write(text)
        return text

    def reload(self, t, expect):
        """SIGHUP, then wait for the error log to say `expect` once more than before."""
        before = t.error_log().count(expect)
        os.kill(t.pid, signal.SIGHUP)
        h.wait_for(lambda: t.error_log().count(expect) > before, 10 * h.SLOW,
                   what=f"'{expect}' in the error log")

    def backend(self, t, path="/", client=None):
        r = client.request("GET", path) if client else h.get(t.addr(), path)
        self.assertEqual(r.status, 200, r.body[:200])
        return r.header("X-Backend")


class Reload(ReloadCase):
    def test_route_and_pool_changes_apply_to_new_requests(self):
        o1, o2 = self.origin("o1"), self.origin("o2")
        t = self.torii(two_pool_config(o1, o2, serve="one"))
        keep = h.Client(t.addr())
        self.addCleanup(keep.close)
        self.assertEqual(self.backend(t, client=keep), "o1")
        self.write(t, two_pool_config(o1, o2, serve="two",
                                      extra_route={"path_prefix": "/one/", "pool": "one"}))
        self.reload(t, "SIGHUP: reloaded")
        self.assertEqual(self.backend(t), "o2")
        self.assertEqual(self.backend(t, "/one/x"), "o1")  # a route that did not exist before
        # A keep-alive connection opened before the reload: its next request uses the new one.
        self.assertEqual(self.backend(t, client=keep), "o2")
        # A pool's backends change too: "two" now points at o1.
        c = two_pool_config(o1, o1, serve="two")
        self.write(t, c)
        self.reload(t, "SIGHUP: reloaded")
        self.assertEqual(self.backend(t), "o1")
        m = h.get(t.addr("admin"), "/metrics").body.decode()
        self.assertRegex(m, r"torii_config_reloads_total 2\b")

    def test_bad_config_is_refused_and_the_old_one_keeps_serving(self):
        o1, o2 = self.origin("o1"), self.origin("o2")
        t = self.torii(two_pool_config(o1, o2, serve="one"))
        good = self.write(t, two_pool_config(o1, o2, serve="one"))
        bad = good.replace('pool = "one"', 'pool = "nope"')
        self.write(t, bad)
        line = next(i for i, l in enumerate(bad.splitlines(), 1) if '"nope"' in l)
        self.reload(t, "reload refused")
        log = t.error_log()
        self.assertRegex(log, re.escape(t.config_path) + rf":{line}:\d+")
        self.assertIn("still serving the previous configuration", log)
        self.assertEqual(self.backend(t), "o1")
        # Syntax errors too.
        self.write(t, good.replace("[[pool]]", "[[pool]", 1))
        self.reload(t, "reload refused")
        self.assertEqual(self.backend(t), "o1")
        # What needs a restart is refused, saying so.
        self.write(t, good.replace('name = "http"', 'name = "web"'))
        self.reload(t, "needs a restart")
        self.assertEqual(self.backend(t), "o1")
        t.check_alive()

    def test_cache_entries_survive_a_reload(self):
        o1, o2 = self.origin("o1"), self.origin("o2")
        t = self.torii(two_pool_config(o1, o2, serve="one", cache=True))
        r = h.get(t.addr(), "/c?cc=max-age=60")
        self.assertEqual(r.header("Cache-Status"), "torii; fwd=miss; stored")
        self.write(t, two_pool_config(o1, o2, serve="one", cache=True,
                                      extra_route={"path_prefix": "/other/", "pool": "two"}))
        self.reload(t, "SIGHUP: reloaded")
        r = h.get(t.addr(), "/c?cc=max-age=60")
        self.assertEqual(r.header("Cache-Status"), "torii; hit")

    def test_reloads_under_load_fail_no_request(self):
        o1, o2 = self.origin("o1", threads=2), self.origin("o2", threads=2)
        configs = [two_pool_config(o1, o2, serve="one"), two_pool_config(o1, o2, serve="two")]
        c0 = configs[0]
        c0.server["workers"] = 2
        configs[1].server["workers"] = 2
        t = self.torii(c0)
        stop = threading.Event()
        failures = []
        counts = {"o1": 0, "o2": 0}
        lock = threading.Lock()

        def load(keep_alive):
            client = None
            while not stop.is_set():
                try:
                    if client is None:
                        client = h.Client(t.addr(), timeout=10)
                    r = client.request("GET", "/?delay=20&size=2000")
                    if r.status != 200 or len(r.body) != 2000:
                        failures.append(f"{r.status} {len(r.body)}")
                    with lock:
                        counts[r.header("X-Backend")] += 1
                    if not keep_alive or r.header("Connection") == "close":
                        client.close()
                        client = None
                except Exception as e:  # noqa: BLE001 - any failure counts
                    failures.append(repr(e))
                    if client is not None:
                        client.close()
                    client = None
            if client is not None:
                client.close()

        threads = [threading.Thread(target=load, args=(i % 2 == 0,)) for i in range(4)]
        for th in threads:
            th.start()
        try:
            for i in range(100):
                time.sleep(0.03)
                self.write(t, configs[(i + 1) % 2])
                self.reload(t, "SIGHUP: reloaded")
        finally:
            time.sleep(0.3)
            stop.set()
            for th in threads:
                th.join(30)
        self.assertEqual(failures, [])
        self.assertGreater(counts["o1"], 0)
        self.assertGreater(counts["o2"], 0)
        t.check_alive()


if __name__ == "__main__":
    unittest.main()


class ReloadCarriesState(ReloadCase):
    def test_rate_limit_table_kept_unless_its_settings_change(self):
        o = self.origin("o1")

        def config(rate, header="a"):
            c = h.proxy_config([o])
            c.routes[0]["rate_limit"] = "per_ip"
            c.routes[0]["add_headers"] = {"X-Generation": header}
            c.tables["rate_limit.per_ip"] = {"rate": rate, "burst": 1}
            return c

        t = self.torii(config("1/m"))
        statuses = [h.get(t.addr(), "/").status for _ in range(3)]
        self.assertEqual(statuses[0], 200)
        self.assertEqual(statuses[-1], 429, statuses)
        # Another route setting, the same limit: the table (and this client's debt) stays.
        self.write(t, config("1/m", header="b"))
        self.reload(t, "SIGHUP: reloaded")
        self.assertEqual(h.get(t.addr(), "/").status, 429)
        # The limit itself changed: a new table, the client starts with a full budget.
        self.write(t, config("2/m", header="c"))
        self.reload(t, "SIGHUP: reloaded")
        r = h.get(t.addr(), "/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("X-Generation"), "c")

    def test_backend_health_kept_across_a_reload(self):
        o1, o2 = self.origin("o1"), self.origin("o2")
        # fall 2 at 2 s intervals: a fresh health state would call o2 up for 2 s at least.
        health = {"path": "/health", "interval": "2s", "timeout": "1s", "rise": 1, "fall": 2}

        def config(routes):
            c = h.proxy_config([o1, o2], pool_extra={"health": health})
            c.routes = [{"host": "*", "path_prefix": p, "pool": "app"} for p in routes]
            c.tables["admin"] = {"address": "127.0.0.1:0"}
            return c

        def status():
            return json.loads(h.get(t.addr("admin"), "/status.json").body)

        t = self.torii(config(["/"]))
        h.get(o2.addr, "/__health?status=503")
        h.wait_for(lambda: not status()["pools"][0]["backends"][1]["up"], 10 * h.SLOW,
                   what="o2 down")
        self.write(t, config(["/x/", "/"]))
        self.reload(t, "SIGHUP: reloaded")
        s = h.wait_for(lambda: (lambda s: s if len(s["routes"]) == 2 else None)(status()),
                       5 * h.SLOW, what="the new generation on the status page")
        self.assertFalse(s["pools"][0]["backends"][1]["up"], s["pools"][0])
        self.assertTrue(s["pools"][0]["backends"][0]["up"], s["pools"][0])
        self.assertEqual({h.get(t.addr(), "/").header("X-Backend") for _ in range(6)}, {"o1"})
