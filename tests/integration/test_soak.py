"""Soak, short (a minute and a half): mixed traffic through the real binary while its memory,
descriptors, upstream connections and cache are sampled every second; nothing may grow once
the warm-up is over, and everything goes back when the load stops. The long run is
`bench/run.sh soak` (bench/README.md has its figures and plot)."""
import unittest

import harness as h
import soak
from test_tls import OPENSSL, Pki

SECONDS = 90
WARM_UP = 30


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
class SoakTest(unittest.TestCase):
    def setUp(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        leaf = self.pki.leaf("a", ["a.test"])
        self.origin = h.Origin("soak", threads=2)
        self.addCleanup(self.origin.stop)  # also when torii fails to start below
        # A small ASan quarantine: freed memory held for use-after-free detection would
        # otherwise read as growth until its default 256 MiB fill up.
        env = {"ASAN_OPTIONS": h.child_env()["ASAN_OPTIONS"] + ":quarantine_size_mb=4"}
        self.torii = h.Torii(soak.soak_config(self.origin, leaf["cert"], leaf["key"]),
                             env_extra=env)
        self.addCleanup(self.torii.stop)

    def test_nothing_grows_under_mixed_traffic(self):
        t = self.torii
        base = soak.Soak(t.pid, t.addr("http"), t.addr("admin"), self.origin.port).sample(0)
        s = soak.Soak(t.pid, t.addr("http"), t.addr("admin"), self.origin.port,
                      tls_addr=t.addr("https"), tls_ca=self.pki.path("ca.crt"))
        samples = s.run(SECONDS)
        report = (f"requests {s.counts} errors {s.errors} last {s.last_error}\n" +
                  "\n".join(",".join(str(x[k]) for k in soak.FIELDS) for x in samples[::5]))
        # Every kind of client was served, and none but the resetting ones saw an error.
        for kind in ("keepalive", "close", "tls", "slow", "reset"):
            self.assertGreater(s.counts.get(kind, 0), 5, report)
        for kind in ("keepalive", "close", "tls", "slow"):
            self.assertEqual(s.errors.get(kind, 0), 0, report)
        after = [x for x in samples if x["t"] >= WARM_UP]
        # Memory: the trend after warm-up, over the rest of the run, stays under 4 MiB (a leak
        # of 100 bytes per request would show several times that).
        growth = soak.slope(samples, "rss_kib", WARM_UP) * (SECONDS - WARM_UP)
        self.assertLess(growth, 4096, report)
        # Descriptors and upstream connections stay bounded by the clients (6 connections,
        # each with at most one upstream connection) and the pool's idle keep-alive (16).
        self.assertLessEqual(max(x["fds"] for x in after), base["fds"] + 2 * 6 + 16 + 4, report)
        self.assertLessEqual(max(x["upstream"] for x in after), 6 + 16, report)
        self.assertLessEqual(max(x["cache_bytes"] for x in after), 4 << 20, report)
        # When the load stops, the client connections go; what stays open is the idle upstream
        # connections the pool keeps.
        idle = h.wait_for(lambda: (lambda x: x if x["connections"] <= 16 else None)(
            s.sample(SECONDS)), 10 * h.SLOW, what="client connections closed")
        self.assertLessEqual(idle["fds"], base["fds"] + 16 + 2, report)


if __name__ == "__main__":
    unittest.main()
