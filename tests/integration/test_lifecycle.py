"""The process as an operator sees it: command line, config checking, the ready file, graceful
stop, surviving thousands of client resets (DESIGN.md "Lifetimes", BAD-INPUTS E6) and several
workers."""

import os
import random
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness as h


def run_torii(args, timeout=30):
    return subprocess.run([h.torii_bin()] + args, capture_output=True, text=True,
                          timeout=timeout, env=h.child_env())


GOOD = """\
[server]
workers = 1

[[listener]]
name = "http"
address = "127.0.0.1:0"

[[pool]]
name = "app"
backends = [{ address = "127.0.0.1:9001" }]

[[route]]
pool = "app"
"""


class CommandLine(h.ToriiCase):
    def write(self, name, text):
        path = os.path.join(self.tmpdir(), name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # `torii -t -c good.toml` exits 0 and says so; the demo config checks too.
    def test_check_good_config(self):
        p = run_torii(["-t", "-c", self.write("good.toml", GOOD)])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("successful", p.stdout)
        for example in ("demo.toml", "grpc.toml", "dns.toml", "fleet.toml"):
            p = run_torii(["-t", "-c", os.path.join(h.REPO, "conf", example)])
            self.assertEqual(p.returncode, 0, (example, p.stderr))

    # Bad configs exit 1 with file:line:col pointing at the offending key or value.
    def test_check_bad_configs(self):
        cases = {
            "unknown_key.toml": (GOOD.replace("workers = 1", "workers = 1\nworkerz = 2"),
                                 "workerz"),
            "bad_duration.toml": (GOOD + '\n[limits]\nheader_timeout = "10 parsecs"\n',
                                  "parsecs"),
            "unknown_pool.toml": (GOOD.replace('[[route]]\npool = "app"',
                                               '[[route]]\npool = "nope"'), "nope"),
            "bad_address.toml": (GOOD.replace('"127.0.0.1:9001"', '"localhost:9001"'),
                                 "localhost"),
            "bad_size.toml": (GOOD + '\n[limits]\nheader_bytes = "lots"\n', "lots"),
            "toml_syntax.toml": (GOOD.replace("workers = 1", "workers = = 1"), "= ="),
        }
        for name, (text, word) in cases.items():
            with self.subTest(config=name):
                # The line that holds the mistake (1-based).
                line = next(i for i, l in enumerate(text.splitlines(), 1) if word in l)
                path = self.write(name, text)
                for args in (["-t", "-c", path], ["-c", path]):
                    p = run_torii(args)
                    self.assertEqual(p.returncode, 1, p.stderr)
                    m = re.search(re.escape(path) + r":(\d+):(\d+)", p.stderr)
                    self.assertIsNotNone(m, p.stderr)
                    self.assertEqual(int(m.group(1)), line, p.stderr)
                    self.assertGreater(int(m.group(2)), 0)
                    if name != "toml_syntax.toml":
                        self.assertIn(word, p.stderr)
                    self.assertNotIn("AddressSanitizer", p.stderr)

    # --version and --help exit 0 and print something useful; a bad flag exits non-zero.
    def test_version_and_help(self):
        p = run_torii(["--version"])
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"^torii \S+")
        p = run_torii(["--help"])
        self.assertEqual(p.returncode, 0)
        self.assertIn("-c", p.stdout)
        p = run_torii(["--bogus"])
        self.assertNotEqual(p.returncode, 0)
        p = run_torii([])
        self.assertNotEqual(p.returncode, 0)


class ReadyFileAndStop(h.ToriiCase):
    # The ready file lists "http 127.0.0.1:PORT" for each listener, with the port the kernel
    # picked, and it accepts connections; torii removes the file when it stops.
    def test_ready_file(self):
        o = self.origin("o1")
        cfg = h.proxy_config([o])
        cfg.listeners.append({"name": "second", "address": "127.0.0.1:0"})
        t = self.torii(cfg)
        lines = t.ready_text.splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[0], r"^http 127\.0\.0\.1:\d+$")
        self.assertRegex(lines[1], r"^second 127\.0\.0\.1:\d+$")
        for name in ("http", "second"):
            port = t.addr(name)[1]
            self.assertGreater(port, 0)
            self.assertEqual(h.get(t.addr(name), "/").status, 200)
        self.assertNotEqual(t.addr("http"), t.addr("second"))
        self.assertEqual(t.stop(), 0)
        self.assertFalse(os.path.exists(t.ready_file))

    # logrotate: the log files are moved aside, SIGUSR1 makes torii write new ones at the
    # configured paths; nothing is lost and the old files keep what was written before.
    def test_sigusr1_reopens_log_files(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], workers=2))
        with h.Client(t.addr()) as c:
            self.assertEqual(c.get("/before").status, 200)
            h.wait_for(lambda: "/before" in open(t.access_log_path).read(), 3 * h.SLOW,
                       what="the first access log line")
            os.rename(t.access_log_path, t.access_log_path + ".1")
            os.rename(t.error_log_path, t.error_log_path + ".1")
            os.kill(t.pid, signal.SIGUSR1)
            h.wait_for(lambda: os.path.exists(t.error_log_path) and
                       "log files reopened" in open(t.error_log_path).read(), 3 * h.SLOW,
                       what="the new error log")
            self.assertEqual(c.get("/after").status, 200)  # same connection, same worker
        self.assertEqual(h.get(t.addr(), "/after2").status, 200)
        h.wait_for(lambda: os.path.exists(t.access_log_path) and
                   "/after2" in open(t.access_log_path).read(), 3 * h.SLOW,
                   what="the new access log")
        new = open(t.access_log_path).read()
        old = open(t.access_log_path + ".1").read()
        self.assertIn("/after", new)
        self.assertIn("/before", old)
        self.assertNotIn("/after", old)
        self.assertNotIn("/before", new)
        self.assertIn("torii serving", open(t.error_log_path + ".1").read())
        self.assertEqual(t.stop(), 0)

    # Graceful stop: an in-flight slow request completes with 200 after SIGTERM, new
    # connections are refused, idle keep-alive clients are closed, and torii exits 0 quickly.
    def test_graceful_stop(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o]))
        addr = t.addr()
        idle = h.Client(addr)
        self.assertEqual(idle.get("/").status, 200)
        result = {}

        def slow():
            try:
                result["r"] = h.get(addr, "/?delay=1500", timeout=10)
            except Exception as e:  # reported below
                result["e"] = e

        th = threading.Thread(target=slow)
        th.start()
        # The slow request is at the origin (the idle client's was the first) before the stop.
        h.wait_for(lambda: o.stats()["requests"] >= 2, 10 * h.SLOW, interval=0.02,
                   what="the slow request to reach the origin")
        t0 = time.monotonic()
        t.proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(addr, timeout=2).close()
                return False
            except OSError:
                return True

        h.wait_for(refused, 5 * h.SLOW, interval=0.05, what="new connections to be refused")
        self.assertTrue(idle.closed_by_peer(timeout=2), "idle keep-alive client not closed")
        idle.close()
        th.join(10)
        self.assertNotIn("e", result, result.get("e"))
        self.assertEqual(result["r"].status, 200)
        self.assertEqual(result["r"].header("Connection", "").lower(), "close")
        rc = t.stop(timeout=10)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5 * h.SLOW)


class ClientResets(h.ToriiCase):
    # E6: clients resetting (SO_LINGER 0) mid-head, after a full head, and mid-response,
    # thousands of times: no crash and no sanitizer report; torii still serves and stops
    # cleanly afterwards.
    def test_reset_storm(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o]))
        addr = t.addr()
        rng = random.Random(1234)
        heads = [b"GET /?delay=20 HTTP/1.1\r\nHost: a.test\r\n\r\n",
                 b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n" +
                 b"x" * 300,
                 b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n" * 3]
        deadline = time.monotonic() + 40
        n = 0
        modes = [0, 0, 0, 0]
        while n < 2000 and time.monotonic() < deadline:
            mode = n % 4
            try:
                s = h.connect(addr, timeout=2)
                if mode == 0:  # half a head
                    s.sendall(b"GET /some/path HTTP/1.1\r\nHost: a.te")
                elif mode == 1:  # a full head, then RST before the response
                    s.sendall(heads[rng.randrange(len(heads))])
                elif mode == 2:  # a large response, RST after reading a bit
                    s.sendall(b"GET /?size=1048576 HTTP/1.1\r\nHost: a.test\r\n\r\n")
                    s.recv(rng.choice([1, 100, 20000]))
                else:  # a pipelined mix, RST after the first response bytes
                    s.sendall(b"GET /?size=5000 HTTP/1.1\r\nHost: a.test\r\n\r\n"
                              b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: "
                              b"chunked\r\n\r\n5\r\nhel")
                    s.recv(10)
                if rng.random() < 0.3:
                    time.sleep(0.001)
                h.rst_close(s)
                modes[mode] += 1
            except OSError:
                pass
            n += 1
        self.assertGreater(n, 200, "too few iterations to mean anything")
        t.check_alive()
        time.sleep(0.3)
        with h.Client(addr) as c:
            for _ in range(5):
                self.assertEqual(c.get("/").status, 200)
            self.assertEqual(c.request("POST", "/echo", body=b"after").body, b"after")
        self.assertEqual(t.stop(), 0)
        print(f"\n  reset storm: {n} iterations, per mode {modes}", end=" ")


class Workers(h.ToriiCase):
    # workers = 2: both workers serve (SO_REUSEPORT), requests on many connections succeed and
    # the process stops cleanly.
    def test_two_workers(self):
        os_ = [self.origin(f"o{i}") for i in (1, 2)]
        t = self.torii(h.proxy_config(os_, workers=2))
        errors = []

        def client(k):
            try:
                for i in range(25):
                    r = h.get(t.addr(), f"/?c={k}&i={i}")
                    if r.status != 200:
                        errors.append(r.status)
                with h.Client(t.addr()) as c:
                    for i in range(25):
                        if c.request("POST", "/echo", body=b"%d" % i).body != b"%d" % i:
                            errors.append("echo")
            except Exception as e:
                errors.append(repr(e))

        ths = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for th in ths:
            th.start()
        for th in ths:
            th.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(sum(o.stats()["requests"] for o in os_), 200)
        self.assertEqual(t.stop(), 0)


if __name__ == "__main__":
    unittest.main()
