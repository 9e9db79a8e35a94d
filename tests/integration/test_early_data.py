"""TLS 1.3 early data (0-RTT, #21) through the real binary, with openssl s_client as the
client (-sess_out a ticket, then -sess_in it with -early_data a request):

- a GET in early data is forwarded at once, marked Early-Data: 1 (RFC 8470), logged
  early_data=1, and answered;
- a POST in early data waits for the handshake to complete and reaches the backend unmarked;
- each ticket carries early data once, across workers: the same ticket again gets the
  handshake without it (counted as refused on /metrics);
- a client's first flight replayed byte for byte (recorded by a relay that never lets the
  real client finish): its GET is forwarded once, marked; its POST never reaches the backend,
  and the connection is closed at handshake_timeout;
- a backend's 425 Too Early to a marked request is retried, unmarked, after the handshake;
- off by default, and refused with client_auth or without session tickets."""
import socket
import subprocess
import threading
import time
import unittest

import harness as h
from test_tls import OPENSSL, Pki, tls_config


def s_client(port, args, stdin=b"", wait=0.5):
    """Runs openssl s_client against 127.0.0.1:port; returns its output (stdout + stderr).
    stdin stays open for `wait` seconds so the answer (and the tickets) can arrive."""
    p = subprocess.Popen([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                          "a.test"] + args, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        p.stdin.write(stdin)
        p.stdin.flush()
        time.sleep(wait * h.SLOW)
        p.stdin.close()
        out = p.stdout.read()
        p.wait(timeout=10 * h.SLOW)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return out.decode(errors="replace")


class Relay:
    """Listens on 127.0.0.1:0 and records what the first client sends until it falls quiet,
    without answering: the client's first flight (ClientHello and early data)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.flight = b""
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        c.settimeout(0.5)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                self.flight += b
        except OSError:
            pass
        finally:
            c.close()

    def wait(self):
        self._t.join(timeout=10)
        self.sock.close()
        return self.flight


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
class EarlyData(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.leaf = cls.pki.leaf("a", ["a.test"])

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def start(self, origin, workers=1, tls_extra=None):
        extra = {"early_data": True}
        extra.update(tls_extra or {})
        c = tls_config(origin, self.pki, [self.leaf], tls_extra=extra, workers=workers)
        t = self.torii(c)
        return t, t.addr("https")[1]

    def ticket(self, port):
        """A session file from a first (full) handshake."""
        path = f"{self.tmpdir()}/ticket-{time.monotonic_ns()}.pem"
        out = s_client(port, ["-sess_out", path], b"GET /?size=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertIn("HTTP/1.1 200", out)
        return path

    def request_file(self, text):
        path = f"{self.tmpdir()}/req-{time.monotonic_ns()}.txt"
        with open(path, "wb") as f:
            f.write(text)
        return path

    def early(self, port, ticket, request):
        return s_client(port, ["-sess_in", ticket, "-early_data", self.request_file(request)])

    def test_get_in_early_data_is_forwarded_marked(self):
        o = self.origin("o1")
        t, port = self.start(o)
        ticket = self.ticket(port)
        out = self.early(port, ticket, b"GET /?size=7 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertIn("Early data was accepted", out)
        self.assertIn("HTTP/1.1 200", out)
        entry = o.log_entries()[-1]
        self.assertEqual(entry["target"], "/?size=7")
        self.assertEqual(h.header_of(entry, "Early-Data"), ["1"])
        line = t.access_log_lines(wait_for_count=2)[-1]
        self.assertIn("early_data=1", line)
        self.assertIn("resumed=1", line)
        # The first request (a full handshake) was not early.
        self.assertEqual(h.header_of(o.log_entries()[0], "Early-Data"), [])

    def test_close_after_early_data_waits_for_the_handshake(self):
        # Connection: close on a request answered in early data: torii closes only once the
        # handshake is done, so the client gets its next ticket (and a close_notify): each
        # visit's ticket carries the next visit's early data.
        o = self.origin("o1")
        t, port = self.start(o)
        ticket = self.ticket(port)
        for i in range(3):
            after = f"{self.tmpdir()}/next-{i}.pem"
            out = s_client(port, ["-sess_in", ticket, "-sess_out", after, "-early_data",
                                  self.request_file(b"GET /?size=2 HTTP/1.1\r\nHost: a.test\r\n"
                                                    b"Connection: close\r\n\r\n")])
            self.assertIn("Early data was accepted", out, i)
            self.assertIn("HTTP/1.1 200", out)
            self.assertNotIn("unexpected eof", out.lower())
            ticket = after

    def test_post_in_early_data_waits_for_the_handshake(self):
        o = self.origin("o1")
        t, port = self.start(o)
        ticket = self.ticket(port)
        out = self.early(port, ticket, b"POST /echo HTTP/1.1\r\nHost: a.test\r\n"
                                       b"Content-Length: 5\r\n\r\nhello")
        self.assertIn("Early data was accepted", out)
        self.assertIn("HTTP/1.1 200", out)
        self.assertIn("hello", out)
        entry = o.log_entries()[-1]
        self.assertEqual(entry["method"], "POST")
        self.assertEqual(h.header_of(entry, "Early-Data"), [])
        self.assertIn("early_data=1", t.access_log_lines(wait_for_count=2)[-1])

    def test_each_ticket_carries_early_data_once_across_workers(self):
        o = self.origin("o1")
        t, port = self.start(o, workers=2)
        ticket = self.ticket(port)
        outs = [self.early(port, ticket, b"GET /?size=1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
                for _ in range(4)]
        accepted = [o_.count("Early data was accepted") for o_ in outs]
        rejected = [o_.count("Early data was rejected") for o_ in outs]
        self.assertEqual(sum(accepted), 1, outs)
        self.assertEqual(sum(rejected), 3, outs)
        marked = [e for e in o.log_entries() if h.header_of(e, "Early-Data") == ["1"]]
        self.assertEqual(len(marked), 1)
        metrics = h.Client(t.addr("admin")).get("/metrics").body.decode()
        self.assertIn('torii_tls_early_data_total{listener="https",result="accepted"} 1', metrics)
        self.assertIn('torii_tls_early_data_total{listener="https",result="refused"} 3', metrics)

    def replay(self, port, flight, hold=0.0):
        """Sends a recorded first flight to torii; reads until it closes (or `hold` passes)."""
        s = socket.create_connection(("127.0.0.1", port), timeout=5 * h.SLOW)
        got = b""
        try:
            s.sendall(flight)
            deadline = time.monotonic() + max(hold, 0.5) * h.SLOW
            while time.monotonic() < deadline:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    return got, True
                if not b:
                    return got, True
                got += b
        finally:
            s.close()
        return got, False

    def record(self, ticket, request):
        relay = Relay()
        s_client(relay.port, ["-sess_in", ticket, "-early_data", self.request_file(request)],
                 wait=0.5)
        flight = relay.wait()
        self.assertGreater(len(flight), 100)
        return flight

    def test_replayed_flight_get_once_post_never(self):
        o = self.origin("o1")
        t, port = self.start(o)
        # A GET: the replay is taken as early data once (the real client never sent it), and
        # forwarded marked; the same bytes again are refused early data.
        flight = self.record(self.ticket(port), b"GET /?size=3 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        before = len(o.log_entries())
        self.replay(port, flight)
        h.wait_for(lambda: len(o.log_entries()) == before + 1, 5, what="the replayed GET")
        self.assertEqual(h.header_of(o.log_entries()[-1], "Early-Data"), ["1"])
        self.replay(port, flight)
        time.sleep(0.3 * h.SLOW)
        self.assertEqual(len(o.log_entries()), before + 1)
        # A POST: held for a handshake that never completes, then the connection is closed at
        # handshake_timeout (1 s here); the backend never sees it.
        flight = self.record(self.ticket(port), b"POST /echo HTTP/1.1\r\nHost: a.test\r\n"
                                                b"Content-Length: 2\r\n\r\nhi")
        before = len(o.log_entries())
        started = time.monotonic()
        _, closed = self.replay(port, flight, hold=5)
        self.assertTrue(closed)
        self.assertLess(time.monotonic() - started, 4 * h.SLOW)
        self.assertEqual(len(o.log_entries()), before)
        self.assertTrue(any("handshake not completed after early data" in line
                            for line in t.access_log_lines()))

    def test_425_from_the_backend_is_retried_after_the_handshake(self):
        class TooEarly(h.ThreadedBackend):
            """425 to a request marked Early-Data: 1, else 200 "late"."""

            def __init__(self):
                self.marks = []
                super().__init__("too-early")

            def serve(self, c):
                buf = b""
                c.settimeout(5)
                while True:
                    got = h.read_head(c, buf)
                    if got is None:
                        return
                    head, buf = got
                    marked = b"\r\nearly-data: 1" in head.lower()
                    with self._lock:
                        self.marks.append(marked)
                    body = b"early" if marked else b"late"
                    status = b"425 Too Early" if marked else b"200 OK"
                    c.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n%s"
                              % (len(body), body))

        b = TooEarly()
        self.addCleanup(b.cleanup)
        c = tls_config(b.address, self.pki, [self.leaf], tls_extra={"early_data": True})
        t = self.torii(c)
        port = t.addr("https")[1]
        ticket = self.ticket(port)
        out = self.early(port, ticket, b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertIn("Early data was accepted", out)
        self.assertIn("HTTP/1.1 200", out)
        self.assertIn("late", out)
        self.assertEqual(b.marks, [False, True, False])  # the ticket's visit, early, retried

    def test_http2_request_in_early_data(self):
        try:
            import h2.config
            import h2.connection
        except ImportError:
            self.skipTest("python3-h2 is not installed")
        o = self.origin("o1")
        t, port = self.start(o, tls_extra={"alpn": ["h2", "http/1.1"]})
        path = f"{self.tmpdir()}/h2-ticket.pem"
        s_client(port, ["-alpn", "h2", "-sess_out", path])
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "GET"), (":path", "/?size=4"), (":scheme", "https"),
                              (":authority", "a.test")], end_stream=True)
        out = s_client(port, ["-alpn", "h2", "-sess_in", path, "-early_data",
                              self.request_file(conn.data_to_send())])
        self.assertIn("Early data was accepted", out)
        h.wait_for(lambda: o.log_entries(), 5, what="the request at the origin")
        entry = o.log_entries()[-1]
        self.assertEqual(entry["target"], "/?size=4")
        self.assertEqual(h.header_of(entry, "Early-Data"), ["1"])
        line = t.access_log_lines(wait_for_count=1)[-1]
        self.assertIn("HTTP/2.0", line)
        self.assertIn("early_data=1", line)

    def test_off_by_default(self):
        o = self.origin("o1")
        c = tls_config(o, self.pki, [self.leaf])
        t = self.torii(c)
        port = t.addr("https")[1]
        ticket = self.ticket(port)
        out = self.early(port, ticket, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertNotIn("Early data was accepted", out)
        self.assertTrue(all(h.header_of(e, "Early-Data") == [] for e in o.log_entries()))

    def test_config_refusals(self):
        o = self.origin("o1")
        for extra, listener_extra, want in (
                ({"session_tickets": False}, {}, "needs session_tickets = true"),
                ({}, {"client_auth": {"ca": self.pki.path("ca.crt")}}, "not supported")):
            c = tls_config(o, self.pki, [self.leaf], tls_extra=dict(extra, early_data=True))
            c.listeners[0].update(listener_extra)
            t = h.Torii(c, dir=self.tmpdir(), start=False)
            p = subprocess.run([h.torii_bin(), "-t", "-c", t.config_path], capture_output=True,
                               text=True, env=h.child_env(), timeout=30)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(want, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
