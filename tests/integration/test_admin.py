"""The admin listener through the real binary (issue #9, first part): Prometheus metrics whose
counts match the requests sent, the JSON status document with each backend's health, the
allow list, and the admin address in the ready file."""

import json
import re
import time
import unittest

import harness as h

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'(\{(?P<labels>[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"'
                    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*")*)?\})? '
                    r'(?P<value>-?[0-9.e+]+|\+Inf)$')


def parse_metrics(text):
    """{(name, labels): value}; fails on any line that is not valid text format 0.0.4."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        out[(m.group("name"), m.group("labels") or "")] = float(m.group("value"))
    return out


def admin_config(origins, allow=None, workers=2, pool_extra=None):
    c = h.proxy_config(origins, workers=workers, pool_extra=pool_extra)
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    if allow is not None:
        c.tables["admin"]["allow"] = allow
    return c


class Admin(h.ToriiCase):
    def test_metrics_count_what_was_sent(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        t = self.torii(admin_config(os_))
        self.assertIn("admin", t.listeners)
        with h.Client(t.addr()) as c:
            for i in range(10):
                self.assertEqual(c.get(f"/?size=100&i={i}").status, 200)
        for _ in range(2):  # and on fresh connections (possibly the other worker)
            self.assertEqual(h.get(t.addr(), "/").status, 200)
        r = h.get(t.addr("admin"), "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"))
        m = parse_metrics(r.body.decode())
        self.assertEqual(m[("torii_requests_total", "")], 12)
        self.assertEqual(m[("torii_responses_total", 'class="2xx"')], 12)
        self.assertEqual(m[("torii_request_duration_seconds_count", "")], 12)
        self.assertEqual(m[("torii_request_duration_seconds_bucket", 'le="+Inf"')], 12)
        self.assertGreaterEqual(m[("torii_response_body_bytes_total", "")], 10 * 100)
        self.assertEqual(m[("torii_workers", "")], 2)
        for o in os_:
            key = ("torii_backend_up", f'pool="app",backend="{o.address}"')
            self.assertEqual(m[key], 1, key)
        # Selections and responses per backend (round robin per worker: 5 or more each, 12 in
        # all), requests per route.
        selected = []
        for o in os_:
            labels = f'pool="app",backend="{o.address}"'
            selected.append(m[("torii_backend_selections_total", labels)])
            self.assertEqual(m[("torii_backend_responses_total", labels)], selected[-1], labels)
            self.assertGreater(m[("torii_backend_response_seconds_sum", labels)], 0)
        self.assertEqual(sum(selected), 12)
        self.assertGreaterEqual(min(selected), 5)
        self.assertEqual(m[("torii_route_requests_total", 'host="*",path_prefix="/"')], 12)
        st = json.loads(h.get(t.addr("admin"), "/status.json").body)
        self.assertEqual([b["selected"] for b in st["pools"][0]["backends"]], selected)
        self.assertEqual(st["routes"], [{"host": "*", "path_prefix": "/", "to": "pool app",
                                         "requests": 12}])
        # Buckets are cumulative and non-decreasing.
        buckets = [v for (n, _), v in m.items() if n == "torii_request_duration_seconds_bucket"]
        self.assertEqual(buckets, sorted(buckets))

    def test_status_json_reflects_backend_health(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        t = self.torii(admin_config(os_, pool_extra={
            "algorithm": "least_conn",
            "health": {"path": "/health", "interval": "100ms", "timeout": "100ms",
                       "rise": 1, "fall": 1}}))
        s = json.loads(h.get(t.addr("admin"), "/status.json").body)
        self.assertEqual(s["workers"], 2)
        pool = s["pools"][0]
        self.assertEqual(pool["name"], "app")
        self.assertEqual(pool["algorithm"], "least_conn")
        self.assertEqual([b["address"] for b in pool["backends"]], [o.address for o in os_])
        self.assertTrue(all(b["up"] for b in pool["backends"]))
        self.assertTrue(all(b["in_flight"] == 0 for b in pool["backends"]))
        h.get(os_[1].addr, "/__health?status=503")
        h.wait_for(lambda: not json.loads(h.get(t.addr("admin"), "/status.json").body)
                   ["pools"][0]["backends"][1]["up"], 5 * h.SLOW, what="o2 down in status.json")
        m = parse_metrics(h.get(t.addr("admin"), "/metrics").body.decode())
        self.assertEqual(m[("torii_backend_up", f'pool="app",backend="{os_[1].address}"')], 0)

    def test_allow_list_methods_and_paths(self):
        o = self.origin("o1")
        t = self.torii(admin_config([o], allow=["127.0.0.2/32"]))
        self.assertEqual(h.get(t.addr("admin"), "/metrics", source="127.0.0.3").status, 403)
        self.assertEqual(h.get(t.addr("admin"), "/metrics", source="127.0.0.2").status, 200)
        self.assertEqual(h.get(t.addr("admin"), "/nope", source="127.0.0.2").status, 404)
        self.assertEqual(h.get(t.addr("admin"), "/metrics", method="POST",
                               source="127.0.0.2").status, 405)
        # The proxy listener does not serve admin paths.
        self.assertNotIn(b"torii_requests_total", h.get(t.addr(), "/metrics").body)
        t.check_alive()

    def test_default_allow_is_loopback(self):
        o = self.origin("o1")
        t = self.torii(admin_config([o]))
        self.assertEqual(h.get(t.addr("admin"), "/status.json", source="127.0.0.9").status, 200)
        # Garbage on the admin port: a clean 400, never a crash.
        data, _ = h.raw(t.addr("admin"), b"\x00\x01garbage\r\n\r\n", timeout=5)
        self.assertEqual(h.status_of(data), 400)
        t.check_alive()


def server_timing(value):
    """{"head": ms, ...} from a Server-Timing value."""
    out = {}
    for item in value.split(","):
        name, _, params = item.strip().partition(";")
        m = re.search(r"dur=([0-9.]+)", params)
        assert m, f"no dur in {item!r}"
        out[name] = float(m.group(1))
    return out


class ServerTiming(h.ToriiCase):
    def test_phases_on_opted_in_routes(self):
        o = self.origin("o1")
        c = h.proxy_config([o], routes=[
            {"host": "*", "path_prefix": "/timed", "pool": "app", "server_timing": True,
             "add_headers": {"X-Extra": "1"}},
            {"host": "*", "path_prefix": "/", "pool": "app"}])
        t = self.torii(c)
        with h.Client(t.addr()) as cl:
            t0 = time.monotonic()
            r = cl.get("/timed/echo?delay=200")
            wall_ms = (time.monotonic() - t0) * 1000
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Extra"), "1")
            st = server_timing(r.header("Server-Timing"))
            self.assertEqual(list(st), ["head", "access", "wait", "connect", "backend", "total"])
            # The backend's 200 ms is in "backend"; the parts add up to the total; the total
            # is within what the client measured.
            self.assertGreaterEqual(st["backend"], 190)
            self.assertLessEqual(st["total"], wall_ms + 1)
            parts = st["head"] + st["access"] + st["wait"] + st["connect"] + st["backend"]
            self.assertAlmostEqual(parts, st["total"], delta=0.01 * 5)
            # The next request reuses the pooled connection: no connect phase.
            st2 = server_timing(cl.get("/timed/x").header("Server-Timing"))
            self.assertNotIn("connect", st2)
            self.assertLess(st2["backend"], 190)
            # Routes without server_timing say nothing.
            self.assertIsNone(cl.get("/plain").header("Server-Timing"))
        t.check_alive()


class LatencyBudget(h.ToriiCase):
    """Every request's phases in the access log (JSON and text) and /metrics histograms."""

    def test_phases_in_the_json_access_log_and_metrics(self):
        o = self.origin("o1")
        c = admin_config([o], workers=1)
        c.server["access_log_format"] = "json"
        t = self.torii(c)
        with h.Client(t.addr()) as cl:
            for path in ("/a?delay=100", "/b", "/c"):
                self.assertEqual(cl.get(path).status, 200)
        lines = t.access_log_lines(wait_for_count=3)
        records = [json.loads(line) for line in lines]
        first = records[0]["phases_ms"]
        # The connection's first request also has the time from accept to its first byte.
        self.assertEqual(list(first), ["accept", "head", "access", "wait", "connect", "backend",
                                       "stream", "total"])
        self.assertNotIn("accept", records[1]["phases_ms"])
        self.assertGreaterEqual(first["backend"], 95)
        # head..stream chain: they add up to the total.
        parts = sum(v for k, v in first.items() if k not in ("total", "accept", "tls", "compress"))
        self.assertAlmostEqual(parts, first["total"], delta=0.001 * len(first))
        self.assertNotIn("connect", records[1]["phases_ms"])  # a pooled connection
        m = parse_metrics(h.get(t.addr("admin"), "/metrics").body.decode())
        self.assertEqual(m[("torii_phase_duration_seconds_count", 'phase="total"')], 3)
        self.assertEqual(m[("torii_phase_duration_seconds_count", 'phase="connect"')], 1)
        self.assertGreaterEqual(m[("torii_phase_duration_seconds_sum", 'phase="backend"')], 0.095)
        st = json.loads(h.get(t.addr("admin"), "/status.json").body)
        backend = next(p for p in st["phases"] if p["name"] == "backend")
        self.assertEqual(backend["count"], 3)
        self.assertGreater(backend["avg_ms"], 30)
        t.check_alive()

    def test_compression_is_its_own_phase(self):
        o = self.origin("o1")
        c = h.proxy_config([o])
        c.routes[0]["compress"] = True
        c.server["access_log_format"] = "json"
        t = self.torii(c)
        r = h.get(t.addr(), "/?size=200000&text=1", headers=[("Accept-Encoding", "gzip")])
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertEqual(h.get(t.addr(), "/?size=200000&text=1").status, 200)
        records = [json.loads(line) for line in t.access_log_lines(wait_for_count=2)]
        compressed, plain = records[0]["phases_ms"], records[1]["phases_ms"]
        self.assertGreater(compressed["compress"], 0)
        self.assertLessEqual(compressed["compress"], compressed["stream"] + 0.001)
        self.assertNotIn("compress", plain)

    def test_text_log_and_off_switch(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o]))
        self.assertEqual(h.get(t.addr(), "/x").status, 200)
        line = t.access_log_lines(wait_for_count=1)[0]
        self.assertRegex(line, r" phases_ms=accept:[0-9.]+,head:[0-9.]+,access:[0-9.]+,wait:[0-9.]+,"
                               r"connect:[0-9.]+,backend:[0-9.]+,stream:[0-9.]+,total:[0-9.]+")
        c = h.proxy_config([o], server_extra={"phase_timing": False})
        t2 = self.torii(c)
        self.assertEqual(h.get(t2.addr(), "/x").status, 200)
        self.assertNotIn("phases_ms", t2.access_log_lines(wait_for_count=1)[0])


def chromium():
    import shutil as _shutil
    return _shutil.which("chromium") or _shutil.which("chromium-browser")


def browse(url, tmpdir, what="--dump-dom", budget_ms=3000):
    """Loads `url` in headless Chromium, runs its scripts for `budget_ms` of virtual time."""
    import subprocess
    args = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
            "--no-first-run", f"--user-data-dir={tmpdir}/chromium-profile",
            f"--virtual-time-budget={budget_ms}", "--window-size=1000,700", what, url]
    r = subprocess.run(args, capture_output=True, timeout=90)
    return r.stdout.decode("utf-8", "replace")


class StatusPage(h.ToriiCase):
    def test_status_page_in_a_real_browser(self):
        if chromium() is None:
            self.skipTest("chromium is not installed (scripts/install-deps.sh installs it)")
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        t = self.torii(admin_config(os_, pool_extra={
            "health": {"path": "/health", "interval": "100ms", "timeout": "100ms",
                       "rise": 1, "fall": 1}}))
        url = "http://%s:%d/" % t.addr("admin")
        page = h.get(t.addr("admin"), "/")
        self.assertEqual(page.status, 200)
        self.assertTrue(page.header("Content-Type").startswith("text/html"))
        # Self-contained: no external script, stylesheet or font.
        self.assertNotIn(b"<script src", page.body)
        self.assertNotIn(b"<link", page.body)
        self.assertNotIn(b"http://", page.body)
        self.assertNotIn(b"https://", page.body)
        for i in range(3):
            self.assertEqual(h.get(t.addr(), f"/?i={i}").status, 200)
        h.get(os_[1].addr, "/__health?status=503")
        h.wait_for(lambda: "is DOWN" in t.error_log(), 5 * h.SLOW, what="o2 down")
        dom = browse(url, self.tmpdir())
        # The script ran: the tables hold the backends, their health and the counters.
        self.assertIn(f"<td>{os_[0].address}</td><td class=\"up\">UP</td>", dom)
        self.assertIn(f"<td>{os_[1].address}</td><td class=\"down\">DOWN</td>", dom)
        self.assertIn("app (round_robin)", dom)
        self.assertRegex(dom, r"<td>3</td><td>3</td>")  # 3 requests, 3 of them 2xx
        # The latency budget as a chart: one bar per phase.
        self.assertRegex(dom, r"<td>backend</td><td>[0-9.]+</td><td><span class=\"bar\"")
        shot = f"{self.tmpdir()}/status.png"
        browse(url, self.tmpdir(), what=f"--screenshot={shot}")
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        t.check_alive()


if __name__ == "__main__":
    unittest.main()
