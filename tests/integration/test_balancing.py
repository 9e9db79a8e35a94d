"""Load balancing and health through the real binary (issue #4): each algorithm's
distribution counted at the origins, ip_hash stickiness and minimal remapping, active health
checks taking a backend out and bringing it back, passive ejection, retries that never hit the
failed backend twice, backup backends, and redirect routes."""

import collections
import concurrent.futures
import threading
import time
import unittest

import harness as h


def backend_counts(addr, n, path="/", **kw):
    counts = collections.Counter()
    with h.Client(addr) as c:
        for i in range(n):
            r = c.get(f"{path}?i={i}", **kw)
            assert r.status == 200, r.status
            counts[r.header("X-Backend")] += 1
    return counts


def requests_for(origin, target_prefix):
    return [e for e in origin.log_entries() if e["target"].startswith(target_prefix)]


class Algorithms(h.ToriiCase):
    def test_round_robin_weights_interleaved(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config([(os_[0], 1), (os_[1], 2), (os_[2], 3)]))
        order = []
        with h.Client(t.addr()) as c:
            for i in range(60):
                order.append(c.get(f"/?i={i}").header("X-Backend"))
        self.assertEqual(collections.Counter(order), {"o1": 10, "o2": 20, "o3": 30})
        # Smooth: the weight-3 backend never gets more than 2 picks in a row.
        longest = max(len(run) for run in "".join(b[-1] for b in order).replace("1", " 1 ")
                      .replace("2", " 2 ").split())
        self.assertLessEqual(longest, 2)
        # Counted at the origins too (what each one actually received).
        for o, want in zip(os_, (10, 20, 30)):
            self.assertEqual(len(requests_for(o, "/?i=")), want)

    def test_least_conn_avoids_busy_backends(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra={"algorithm": "least_conn"}))
        # Sequential requests with every count at 0 rotate over all three.
        self.assertEqual(set(backend_counts(t.addr(), 9)), {"o1", "o2", "o3"})
        # Two slow requests in flight occupy two backends; every quick request meanwhile goes
        # to the third (round-robin would send two thirds of them to the busy ones).
        slow = [h.Client(t.addr(), timeout=20) for _ in range(2)]
        try:
            for c in slow:
                c.send(h.build_request("GET", "/echo?delay=2500", None, None, "test.local",
                                       "1.1", False))
            busy = set()
            deadline = time.monotonic() + 5 * h.SLOW
            while len(busy) < 2 and time.monotonic() < deadline:
                busy = {o.name for o in os_ if requests_for(o, "/echo?delay")}
                time.sleep(0.02)
            self.assertEqual(len(busy), 2, "the two slow requests did not reach two origins")
            free = ({"o1", "o2", "o3"} - busy).pop()
            counts = backend_counts(t.addr(), 12, path="/quick")
            self.assertEqual(counts, {free: 12})
            for c in slow:
                self.assertEqual(c.read_response(timeout=10 * h.SLOW).status, 200)
        finally:
            for c in slow:
                c.close()
        # With the slow ones done, the counts are back to 0: rotation again.
        self.assertEqual(set(backend_counts(t.addr(), 9, path="/after")), {"o1", "o2", "o3"})

    def test_least_conn_counts_across_workers(self):
        # Four workers, slow requests: each lands on a backend no other worker is using.
        os_ = [self.origin(f"o{i}", threads=2) for i in (1, 2, 3, 4)]
        t = self.torii(h.proxy_config(os_, workers=4, pool_extra={"algorithm": "least_conn"}))
        clients = [h.Client(t.addr(), timeout=20) for _ in range(4)]
        try:
            for c in clients:
                c.send(h.build_request("GET", "/echo?delay=1500", None, None, "test.local",
                                       "1.1", False))
                time.sleep(0.15 * h.SLOW)  # each pick sees the previous one's count
            names = [c.read_response(timeout=10 * h.SLOW).header("X-Backend") for c in clients]
        finally:
            for c in clients:
                c.close()
        self.assertEqual(sorted(names), ["o1", "o2", "o3", "o4"])

    def test_ip_hash_sticky_and_spread(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra={"algorithm": "ip_hash"}))
        sources = [f"127.0.{i // 200}.{i % 200 + 2}" for i in range(60)]
        first = {}
        for src in sources:
            first[src] = h.get(t.addr(), "/", source=src).header("X-Backend")
        # Every client stays on its backend, on new connections and keep-alive ones.
        for src in sources[:20]:
            with h.Client(t.addr(), source=src) as c:
                for _ in range(3):
                    self.assertEqual(c.get("/").header("X-Backend"), first[src], src)
        spread = collections.Counter(first.values())
        self.assertEqual(set(spread), {"o1", "o2", "o3"}, spread)
        self.assertGreaterEqual(min(spread.values()), 8, spread)

        # Remove o3: only o3's clients move; everyone else keeps their backend.
        t.stop()
        t2 = self.torii(h.proxy_config(os_[:2], pool_extra={"algorithm": "ip_hash"}))
        moved = 0
        for src in sources:
            now = h.get(t2.addr(), "/", source=src).header("X-Backend")
            if first[src] == "o3":
                self.assertIn(now, ("o1", "o2"))
            elif now != first[src]:
                moved += 1
        self.assertLessEqual(moved, 2, "clients of the surviving backends were remapped")

    def test_ip_hash_moves_clients_of_a_down_backend_and_brings_them_back(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        # A 400 ms check timeout: on a loaded 2-core machine (CI under ASan) a 100 ms one let a
        # healthy backend flap DOWN for a check, and its clients moved with it.
        t = self.torii(h.proxy_config(os_, pool_extra={
            "algorithm": "ip_hash",
            "health": {"path": "/health", "interval": "400ms", "timeout": "400ms",
                       "rise": 1, "fall": 1}}))
        sources = [f"127.0.1.{i}" for i in range(2, 42)]
        first = {s: h.get(t.addr(), "/", source=s).header("X-Backend") for s in sources}
        victims = [s for s in sources if first[s] == "o2"]
        self.assertTrue(victims)
        h.get(os_[1].addr, "/__health?status=503")
        h.wait_for(lambda: "backend " + os_[1].address + " is DOWN" in t.error_log(),
                   5 * h.SLOW, what="o2 marked down")
        for s in sources:
            now = h.get(t.addr(), "/", source=s).header("X-Backend")
            if s in victims:
                self.assertNotEqual(now, "o2")
            else:
                self.assertEqual(now, first[s], "a client of a healthy backend moved")
        h.get(os_[1].addr, "/__health?status=200")
        h.wait_for(lambda: "backend " + os_[1].address + " is UP" in t.error_log(),
                   5 * h.SLOW, what="o2 back up")
        for s in victims:
            self.assertEqual(h.get(t.addr(), "/", source=s).header("X-Backend"), "o2")

    def test_ip_hash_on_a_header_and_a_cookie(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra={"algorithm": "ip_hash",
                                                       "hash_key": "header:X-User"}))
        seen = collections.defaultdict(set)
        for user in range(30):
            for src in ("127.0.2.2", "127.0.2.3", "127.0.2.4"):
                r = h.get(t.addr(), "/", source=src, headers=[("X-User", f"u{user}")])
                seen[user].add(r.header("X-Backend"))
        self.assertTrue(all(len(b) == 1 for b in seen.values()), seen)
        self.assertEqual(set().union(*seen.values()), {"o1", "o2", "o3"})
        t.stop()
        t2 = self.torii(h.proxy_config(os_, pool_extra={"algorithm": "ip_hash",
                                                        "hash_key": "cookie:sid"}))
        for user in range(10):
            got = {h.get(t2.addr(), "/", source=src,
                         headers=[("Cookie", f"a=1; sid=s{user}; b=2")]).header("X-Backend")
                   for src in ("127.0.3.2", "127.0.3.3", "127.0.3.4")}
            self.assertEqual(len(got), 1)


class Health(h.ToriiCase):
    def health_pool(self, health=None, **extra):
        pool = {"health": {"path": "/health", "interval": "200ms", "timeout": "150ms",
                           "rise": 2, "fall": 2}}
        pool["health"].update(health or {})
        pool.update(extra)
        return pool

    def test_checks_take_a_failing_backend_out_and_bring_it_back(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra=self.health_pool()))
        h.wait_for(lambda: all(requests_for(o, "/health") for o in os_), 5 * h.SLOW,
                   what="a health check at every origin")
        # Health checks come with the configured path and a Host.
        e = requests_for(os_[0], "/health")[0]
        self.assertEqual(h.header_of(e, "Host"), [os_[0].address])
        self.assertEqual(set(backend_counts(t.addr(), 6)), {"o1", "o2", "o3"})
        # o2 answers its checks with 503 (alive, but unhealthy): out of rotation.
        h.get(os_[1].addr, "/__health?status=503")
        h.wait_for(lambda: f"backend {os_[1].address} is DOWN" in t.error_log(), 5 * h.SLOW,
                   what="o2 down")
        before = len(requests_for(os_[1], "/?i="))
        self.assertEqual(set(backend_counts(t.addr(), 30)), {"o1", "o3"})
        self.assertEqual(len(requests_for(os_[1], "/?i=")), before)
        # Healthy again: back after `rise` passing checks.
        h.get(os_[1].addr, "/__health?status=200")
        h.wait_for(lambda: f"backend {os_[1].address} is UP" in t.error_log(), 5 * h.SLOW,
                   what="o2 up")
        self.assertEqual(set(backend_counts(t.addr(), 6)), {"o1", "o2", "o3"})

    def test_checks_run_once_per_process_not_per_worker(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], workers=4, pool_extra={
            "health": {"path": "/health", "interval": "100ms", "timeout": "100ms"}}))
        time.sleep(1.0)
        n = len(requests_for(o, "/health"))
        # ~10 at one check per 100 ms; four workers checking would make ~40.
        self.assertGreaterEqual(n, 4)
        self.assertLessEqual(n, 14)
        t.check_alive()

    def test_origin_killed_under_load_no_request_fails_after_one_interval(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        # fail_window 1 s: a passive ejection (connect failures before the checks notice)
        # lasts 1 s, then the checks decide.
        t = self.torii(h.proxy_config(os_, workers=2,
                                      pool_extra=self.health_pool(fail_window="1s")))
        gone = (f"backend {os_[1].address} is DOWN", f"backend {os_[1].address} ejected")
        h.wait_for(lambda: all(requests_for(o, "/health") for o in os_), 5 * h.SLOW,
                   what="first health checks")
        stop = threading.Event()
        results = []  # (time, status or exception name)

        def load():
            c = None
            while not stop.is_set():
                try:
                    if c is None:
                        c = h.Client(t.addr(), timeout=5)
                    r = c.get("/")
                    results.append((time.monotonic(), r.status))
                    if r.header("Connection") == "close":
                        c.close()
                        c = None
                except (OSError, TimeoutError, ValueError) as e:
                    results.append((time.monotonic(), type(e).__name__))
                    if c is not None:
                        c.close()
                    c = None
            if c is not None:
                c.close()

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(load) for _ in range(4)]
            time.sleep(0.5)
            killed_at = time.monotonic()
            os_[1].stop()
            h.wait_for(lambda: any(g in t.error_log() for g in gone), 5 * h.SLOW,
                       what="o2 down or ejected")
            time.sleep(1.0)
            os_[1].restart()
            h.wait_for(lambda: f"backend {os_[1].address} is UP" in t.error_log(),
                       5 * h.SLOW, what="o2 up")
            time.sleep(0.5)
            stop.set()
            for f in futures:
                f.result()
        after = [s for (ts, s) in results if ts > killed_at + 0.2 * h.SLOW]
        self.assertGreater(len(after), 50)
        failed = [s for s in after if s != 200]
        # Connect failures on the dead backend are retried on another: nothing fails at all.
        self.assertEqual(failed, [], f"{len(failed)} failures after the kill")
        # o2 gets traffic again after it came back.
        self.assertIn("o2", set(backend_counts(t.addr(), 9)))

    def test_passive_ejection_without_active_checks(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra={
            "max_fails": 2, "fail_window": "2s", "fail_status": [500]}))
        # o2 answers 500 to /flaky; the others 200: after two, o2 is ejected for 2 s.
        # Round-robin from o1: requests 1 and 4 go to o2, which answers them 500.
        statuses = []
        for i in range(5):
            r = h.get(t.addr(), "/flaky?status=500" if i % 3 == 1 else "/flaky")
            statuses.append((r.header("X-Backend"), r.status))
        self.assertEqual(statuses, [("o1", 200), ("o2", 500), ("o3", 200), ("o1", 200),
                                    ("o2", 500)])
        h.wait_for(lambda: f"backend {os_[1].address} ejected" in t.error_log(), 3 * h.SLOW,
                   what="o2 ejected")
        counts = backend_counts(t.addr(), 20)
        self.assertNotIn("o2", counts)
        # Back after the ejection (2 s) ends.
        time.sleep(2.2)
        self.assertIn("o2", set(backend_counts(t.addr(), 9)))
        t.check_alive()

    def test_all_backends_down_by_checks_answers_503(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], pool_extra=self.health_pool({"rise": 1, "fall": 1})))
        h.get(o.addr, "/__health?status=500")
        h.wait_for(lambda: "is DOWN" in t.error_log(), 5 * h.SLOW, what="down")
        # B2: 503 at once, with Retry-After, no hanging.
        for _ in range(5):
            t0 = time.monotonic()
            r = h.get(t.addr(), "/")
            self.assertLess(time.monotonic() - t0, 0.5 * h.SLOW)
            self.assertEqual(r.status, 503)
            self.assertIsNotNone(r.header("Retry-After"))
        self.assertEqual([e for e in o.log_entries() if e["target"] == "/"], [])
        # Back in service within rise x interval of the backend recovering.
        h.get(o.addr, "/__health?status=200")
        t0 = time.monotonic()
        h.wait_for(lambda: h.get(t.addr(), "/").status == 200, 5 * h.SLOW, what="back")
        self.assertLess(time.monotonic() - t0, 1.0 * h.SLOW)

    # B12: a backend whose checks alternate pass/fail never reaches fall = 3 failures in a row:
    # it stays in rotation, traffic does not oscillate, and nothing is logged.
    def test_flapping_checks_do_not_flap_traffic(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        # A check that times out counts as failed: 100 ms (the interval, the most allowed)
        # leaves room on a loaded machine; the verdict waits for a count of checks, not a time.
        t = self.torii(h.proxy_config(os_, pool_extra={
            "health": {"path": "/health-toggle", "interval": "100ms", "timeout": "100ms",
                       "rise": 2, "fall": 3}}))
        h.wait_for(lambda: len(requests_for(os_[0], "/health-toggle")) >= 12, 10 * h.SLOW,
                   interval=0.05, what="twelve checks")
        self.assertEqual(backend_counts(t.addr(), 20), {"o1": 10, "o2": 10})
        self.assertNotIn("is DOWN", t.error_log())
        self.assertNotIn("is UP", t.error_log())

    # B12: clients hammering a URL that answers 500 cannot eject a backend (statuses count only
    # when fail_status names them).
    def test_clients_cannot_poison_passive_health_with_500s(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        t = self.torii(h.proxy_config(os_, pool_extra={"max_fails": 2}))
        with h.Client(t.addr()) as c:
            for i in range(30):
                self.assertEqual(c.get(f"/boom?status=500&i={i}").status, 500)
        self.assertNotIn("ejected", t.error_log())
        self.assertEqual(backend_counts(t.addr(), 10), {"o1": 5, "o2": 5})


class LeastConnCounters(h.ToriiCase):
    # B13: after timeouts, resets, early closes and clients vanishing mid-request, every
    # in-flight count is back to 0: sequential requests rotate evenly over all backends again
    # (a leaked count would make least_conn avoid that backend for good).
    def test_counts_return_to_zero_after_chaos(self):
        os_ = [self.origin(f"o{i}", threads=2) for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, workers=2, pool_extra={
            "algorithm": "least_conn", "response_timeout": "300ms", "max_fails": 0}))

        def chaos(i):
            kind = i % 5
            try:
                if kind == 0:
                    h.get(t.addr(), "/sleep", timeout=5)           # 504 at response_timeout
                elif kind == 1:
                    h.get(t.addr(), "/reset", timeout=5)           # reset before a response
                elif kind == 2:
                    h.get(t.addr(), "/close", method="POST", timeout=5)  # closed, not retried
                elif kind == 3:
                    s = h.connect(t.addr())                          # client leaves mid-request
                    s.sendall(h.build_request("GET", "/echo?delay=400", None, None,
                                              "test.local", "1.1", False))
                    time.sleep(0.05)
                    s.close()
                else:
                    h.get(t.addr(), "/die-mid", timeout=5)         # backend dies mid-body
            except (OSError, TimeoutError, ValueError):
                pass

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(chaos, range(60)))
        time.sleep(1.0 * h.SLOW)  # the abandoned /echo?delay=400 requests finish
        counts = backend_counts(t.addr(), 30, path="/calm")
        self.assertEqual(counts, {"o1": 10, "o2": 10, "o3": 10})
        t.check_alive()


class MaxConns(h.ToriiCase):
    def slow_requests(self, addr, n, delay_ms, stagger=0.05):
        """n concurrent GET /echo?delay=..., one connection each: [(status, seconds)]."""
        def one(i):
            time.sleep(i * stagger)
            t0 = time.monotonic()
            r = h.get(addr, f"/echo?delay={delay_ms}&i={i}", timeout=20)
            return r.status, time.monotonic() - t0, r.header("Retry-After")
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return list(pool.map(one, range(n)))

    def test_requests_over_max_conns_wait_for_a_slot(self):
        o = self.origin("o1", threads=4)
        t = self.torii(h.proxy_config([o], pool_extra={"max_conns": 1, "queue_timeout": "10s"}))
        t0 = time.monotonic()
        results = self.slow_requests(t.addr(), 3, 400)
        elapsed = time.monotonic() - t0
        self.assertEqual([r[0] for r in results], [200, 200, 200])
        # One at a time: three 400 ms requests take at least 1.2 s in all.
        self.assertGreaterEqual(elapsed, 1.15)
        self.assertGreaterEqual(max(r[1] for r in results), 1.0)

    def test_limit_holds_across_workers(self):
        o = self.origin("o1", threads=8)
        t = self.torii(h.proxy_config([o], workers=4,
                                      pool_extra={"max_conns": 2, "queue_timeout": "10s"}))
        t0 = time.monotonic()
        results = self.slow_requests(t.addr(), 6, 400, stagger=0.01)
        elapsed = time.monotonic() - t0
        self.assertEqual([r[0] for r in results], [200] * 6)
        # Two at a time over four workers: at least three rounds of 400 ms.
        self.assertGreaterEqual(elapsed, 1.15)

    def test_queue_timeout_answers_503(self):
        o = self.origin("o1", threads=4)
        t = self.torii(h.proxy_config([o], pool_extra={"max_conns": 1,
                                                       "queue_timeout": "300ms"}))
        results = self.slow_requests(t.addr(), 2, 1500, stagger=0.2)
        self.assertEqual(results[0][0], 200)
        status, seconds, retry_after = results[1]
        self.assertEqual(status, 503)
        self.assertIsNotNone(retry_after)
        # It waited its queue_timeout, not for the slot (that would have been a 200 after 1.3 s).
        self.assertGreaterEqual(seconds, 0.25)
        # The waiter never reached the origin.
        self.assertEqual(len(requests_for(o, "/echo?delay=1500&i=1")), 0)
        self.assertEqual(h.get(t.addr(), "/").status, 200)

    def test_a_full_backend_sends_requests_to_the_others(self):
        os_ = [self.origin(f"o{i}", threads=4) for i in (1, 2)]
        t = self.torii(h.proxy_config(os_, pool_extra={"max_conns": 1}))
        slow = h.Client(t.addr(), timeout=20)
        try:
            slow.send(h.build_request("GET", "/echo?delay=1500", None, None, "test.local",
                                      "1.1", False))
            h.wait_for(lambda: any(requests_for(o, "/echo?delay") for o in os_), 5 * h.SLOW,
                       what="slow request at an origin")
            busy = next(o.name for o in os_ if requests_for(o, "/echo?delay"))
            counts = backend_counts(t.addr(), 6, path="/quick")
            self.assertEqual(set(counts), {"o1", "o2"} - {busy})
            self.assertEqual(slow.read_response(timeout=10).status, 200)
        finally:
            slow.close()

    def test_body_of_a_queued_request_is_forwarded_intact(self):
        o = self.origin("o1", threads=4)
        t = self.torii(h.proxy_config([o], pool_extra={"max_conns": 1}))
        blocker = h.Client(t.addr(), timeout=20)
        try:
            blocker.send(h.build_request("GET", "/echo?delay=600", None, None, "test.local",
                                         "1.1", False))
            h.wait_for(lambda: requests_for(o, "/echo?delay"), 5 * h.SLOW, what="blocker")
            body = h.pattern_bytes(200000)
            with h.Client(t.addr(), timeout=20) as c:
                r = c.request("POST", "/echo", body=body)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, body)
                r = c.request("POST", "/echo", body=b"x" * 10, chunked=True)
                self.assertEqual(r.body, b"x" * 10)
            self.assertEqual(blocker.read_response(timeout=10).status, 200)
        finally:
            blocker.close()


class Retries(h.ToriiCase):
    def test_idempotent_retry_never_hits_the_same_backend_twice(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra={"retries": 2, "max_fails": 0}))
        r = h.get(t.addr(), "/close")  # every origin closes without answering
        self.assertEqual(r.status, 502)
        hits = [len(requests_for(o, "/close")) for o in os_]
        self.assertEqual(sorted(hits), [1, 1, 1], hits)

    def test_retries_are_bounded_by_the_setting(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra={"retries": 1, "max_fails": 0}))
        self.assertEqual(h.get(t.addr(), "/close").status, 502)
        hits = [len(requests_for(o, "/close")) for o in os_]
        self.assertEqual(sorted(hits), [0, 1, 1], hits)

    def test_non_idempotent_request_that_reached_a_backend_is_not_retried(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        t = self.torii(h.proxy_config(os_, pool_extra={"retries": 2, "max_fails": 0}))
        self.assertEqual(h.get(t.addr(), "/close", method="POST").status, 502)
        hits = [len(requests_for(o, "/close")) for o in os_]
        self.assertEqual(sorted(hits), [0, 0, 1], hits)

    def test_non_idempotent_request_is_retried_when_connect_failed(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        t = self.torii(h.proxy_config(os_, pool_extra={"max_fails": 0}))
        os_[0].stop()
        for i in range(4):
            r = h.get(t.addr(), f"/post{i}", method="POST")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("X-Backend"), "o2")

    def test_single_backend_timeout_keeps_its_504(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], pool_extra={"response_timeout": "300ms"}))
        self.assertEqual(h.get(t.addr(), "/sleep").status, 504)


class Backup(h.ToriiCase):
    def test_backup_serves_only_when_every_primary_is_down(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2, 3)]
        backends = [{"address": os_[0].address}, {"address": os_[1].address},
                    {"address": os_[2].address, "backup": True}]
        t = self.torii(h.proxy_config(backends, pool_extra={
            "health": {"path": "/health", "interval": "100ms", "timeout": "100ms",
                       "rise": 1, "fall": 1}}))
        self.assertEqual(set(backend_counts(t.addr(), 12)), {"o1", "o2"})
        for o in os_[:2]:
            h.get(o.addr, "/__health?status=503")
        h.wait_for(lambda: t.error_log().count("is DOWN") >= 2, 5 * h.SLOW, what="primaries down")
        self.assertEqual(set(backend_counts(t.addr(), 6)), {"o3"})
        h.get(os_[0].addr, "/__health?status=200")
        h.wait_for(lambda: "is UP" in t.error_log(), 5 * h.SLOW, what="o1 up")
        self.assertEqual(set(backend_counts(t.addr(), 6)), {"o1"})


class Redirects(h.ToriiCase):
    def test_redirect_routes(self):
        o = self.origin("o1")
        c = h.proxy_config([o], routes=[
            {"host": "old.example.com", "path_prefix": "/",
             "redirect_prefix": "https://new.example.com", "redirect_status": 301,
             "add_headers": {"X-Moved": "yes"}},
            {"host": "*", "path_prefix": "/gone", "redirect": "/here"},
            {"host": "*", "path_prefix": "/", "pool": "app"},
        ])
        t = self.torii(c)
        r = h.get(t.addr(), "/a/b?x=1", host="old.example.com")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "https://new.example.com/a/b?x=1")
        self.assertEqual(r.header("X-Moved"), "yes")
        r = h.get(t.addr(), "/gone/deep", host="x.test")
        self.assertEqual(r.status, 302)
        self.assertEqual(r.header("Location"), "/here")
        # Keep-alive continues after a redirect; a POST body to a redirect route closes.
        with h.Client(t.addr()) as cl:
            self.assertEqual(cl.get("/gone").status, 302)
            self.assertEqual(cl.get("/x").status, 200)
        self.assertEqual(len(requests_for(o, "/gone")), 0)
        self.assertEqual(len(requests_for(o, "/a/b")), 0)


if __name__ == "__main__":
    unittest.main()
