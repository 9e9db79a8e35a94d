"""The PROXY protocol through the real binary, with HAProxy on the other side (issue #15):
received on a listener (`proxy_protocol = true`: v1 and v2 from HAProxy's send-proxy and
send-proxy-v2, before TLS too), accepted only from trusted_proxies, with a header timeout and
garbage closing the connection; and sent to a pool's backends (`send_proxy = "v1" | "v2"`) that
HAProxy reads with accept-proxy, health checks included."""

import json
import os
import shutil
import socket
import subprocess
import time
import unittest

import harness as h
from test_tls import OPENSSL, Pki, client_context, tls_config, tls_get

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy")
                                      else None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HAProxy:
    """HAProxy 2.x in the foreground on `cfg_text` (its frontends on ports the test picked)."""

    def __init__(self, cfg_text, dir, ports):
        self.path = os.path.join(dir, f"haproxy-{ports[0]}.cfg")
        with open(self.path, "w") as f:
            f.write(cfg_text)
        self.err = open(os.path.join(dir, f"haproxy-{ports[0]}.log"), "w+")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.path], stdout=self.err,
                                     stderr=subprocess.STDOUT)

        def listening():
            for p in ports:
                try:
                    socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                except OSError:
                    if self.proc.poll() is not None:
                        self.err.seek(0)
                        raise RuntimeError("haproxy exited: " + self.err.read())
                    return False
            return True
        h.wait_for(listening, 10, what="haproxy listening")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.err.close()


HAPROXY_HEAD = """global
  maxconn 256
defaults
  timeout connect 2s
  timeout client 10s
  timeout server 10s
"""


def sends_proxy(name, port, host, target_port, option):
    """A TCP frontend on `port` passing connections to torii with `option` (send-proxy...)."""
    return f"""
frontend {name}
  mode tcp
  bind 127.0.0.1:{port}
  default_backend {name}
backend {name}
  mode tcp
  server torii {host}:{target_port} {option}
"""


def echoes_source(name, port):
    """An HTTP frontend on `port` that reads a PROXY header and answers with its source."""
    return f"""
frontend {name}
  mode http
  bind 127.0.0.1:{port} accept-proxy
  http-request return status 200 content-type text/plain lf-string "src=%[src]"
"""


@unittest.skipIf(HAPROXY is None, "haproxy is not installed")
class WithHAProxy(h.ToriiCase):
    def haproxy(self, cfg, ports):
        p = HAProxy(HAPROXY_HEAD + cfg, self.tmpdir(), ports)
        self.addCleanup(p.stop)
        return p

    # HAProxy in TCP mode in front, send-proxy (v1) and send-proxy-v2: the client's address
    # reaches the backend in X-Forwarded-For and the log, the balancer's is the peer.
    def test_received_from_haproxy(self):
        o = self.origin("o")
        c = h.proxy_config([o], server_extra={"trusted_proxies": ["127.0.0.1/32"],
                                              "access_log_format": "json"})
        c.listeners[0]["proxy_protocol"] = True
        t = self.torii(c)
        host, port = t.addr()
        v1, v2 = free_port(), free_port()
        self.haproxy(sends_proxy("v1", v1, host, port, "send-proxy") +
                     sends_proxy("v2", v2, host, port, "send-proxy-v2"), [v1, v2])
        for fe, source in ((v1, "127.0.0.3"), (v2, "127.0.0.4")):
            r = h.get(("127.0.0.1", fe), "/headers", source=source)
            self.assertEqual(r.status, 200)
            e = o.log_entries()[-1]
            self.assertEqual(h.header_of(e, "X-Forwarded-For"), [source])
            rec = json.loads(t.access_log_lines(wait_for_count=1)[-1])
            self.assertEqual(rec["client"], source)
            self.assertEqual(rec["peer"], "127.0.0.1")

    # torii's pools send the header to HAProxy frontends with accept-proxy, which answer with
    # the source they read from it; health checks send a LOCAL header and keep the pool UP.
    def test_sent_to_haproxy(self):
        v1, v2 = free_port(), free_port()
        self.haproxy(echoes_source("v1", v1) + echoes_source("v2", v2), [v1, v2])
        c = h.Config()
        c.server["workers"] = 1
        health = {"path": "/", "interval": "100ms", "timeout": "100ms"}
        c.add_pool("v1", [f"127.0.0.1:{v1}"], send_proxy="v1", health=health)
        c.add_pool("v2", [f"127.0.0.1:{v2}"], send_proxy="v2", health=health)
        c.add_route("v1", path_prefix="/v1/")
        c.add_route("v2", path_prefix="/v2/")
        t = self.torii(c)
        time.sleep(0.5)  # several health-check rounds: a check without the header fails
        for version, source in (("v1", "127.0.0.5"), ("v2", "127.0.0.6")):
            with h.Client(t.addr(), source=source) as cl:
                for _ in range(3):  # each request on a connection of its own upstream
                    r = cl.get(f"/{version}/x")
                    self.assertEqual((r.status, r.body), (200, f"src={source}".encode()))
        self.assertNotIn("DOWN", t.error_log())

    # The whole way: client → HAProxy (send-proxy-v2) → torii (proxy_protocol) → HAProxy
    # (accept-proxy): the client's address survives both hops.
    def test_chain(self):
        fe_in, fe_out = free_port(), free_port()
        self.haproxy(echoes_source("out", fe_out), [fe_out])
        c = h.Config()
        c.server.update({"workers": 1, "trusted_proxies": ["127.0.0.1/32"]})
        c.listeners[0]["proxy_protocol"] = True
        c.add_pool("app", [f"127.0.0.1:{fe_out}"], send_proxy="v2")
        c.add_route("app")
        t = self.torii(c)
        host, port = t.addr()
        self.haproxy(sends_proxy("in", fe_in, host, port, "send-proxy-v2"), [fe_in])
        r = h.get(("127.0.0.1", fe_in), "/", source="127.0.0.7")
        self.assertEqual((r.status, r.body), (200, b"src=127.0.0.7"))


class Listener(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o")
        c = h.proxy_config([cls.o], limits={"header_timeout": "1s"},
                           server_extra={"trusted_proxies": ["127.0.0.1/32", "127.0.0.2/32"],
                                         "access_log_format": "json"})
        c.listeners[0]["proxy_protocol"] = True
        cls.t = cls.class_torii(c)

    def send(self, data, source="127.0.0.1", chunks=None):
        with h.Client(self.t.addr(), source=source) as cl:
            for piece in chunks or [data]:
                cl.send(piece)
                time.sleep(0.02)
            return cl.read_eof(timeout=3)

    # A header split across packets, then a request: served with the header's client.
    def test_split_header_then_request(self):
        header = b"PROXY TCP4 198.51.100.1 127.0.0.1 5000 80\r\n"
        req = b"GET /headers HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        data, closed = self.send(None, chunks=[header[:7], header[7:30], header[30:] + req[:5],
                                               req[5:]])
        self.assertEqual(h.status_of(data), 200, data[:200])
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "X-Forwarded-For"),
                         ["198.51.100.1"])

    # v2 LOCAL (a balancer's own health check): the socket's address is the client.
    def test_v2_local(self):
        local = b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
        data, _ = self.send(local + b"GET /headers HTTP/1.1\r\nHost: a\r\n"
                                    b"Connection: close\r\n\r\n", source="127.0.0.2")
        self.assertEqual(h.status_of(data), 200, data[:200])
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "X-Forwarded-For"),
                         ["127.0.0.2"])

    # No header, a malformed one, or one from a peer not in trusted_proxies: closed, nothing
    # answered, nothing forwarded.
    def test_refused(self):
        before = len(self.o.log_entries())
        req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        for data, source in ((req, "127.0.0.1"),
                             (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n" + req, "127.0.0.1"),
                             (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + req, "127.0.0.1"),
                             (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", "127.0.0.1"),
                             (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n" + req, "127.0.0.9")):
            got, closed = self.send(data, source=source)
            self.assertEqual(got, b"", data)
            self.assertTrue(closed, data)
        self.assertEqual(len(self.o.log_entries()), before)

    # A header that never completes is cut at header_timeout.
    def test_header_timeout(self):
        with h.Client(self.t.addr()) as cl:
            cl.send(b"PROXY TCP4 1.2.3.4 ")
            start = time.monotonic()
            data, closed = cl.read_eof(timeout=10)
            self.assertTrue(closed)
            self.assertEqual(data, b"")
            self.assertLess(time.monotonic() - start, 8)


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
class BeforeTls(h.ToriiCase):
    # On a TLS listener the header comes before the ClientHello.
    def test_header_then_handshake(self):
        pki = Pki()
        self.addCleanup(pki.cleanup)
        o = self.origin("o")
        c = tls_config(o, pki, [pki.leaf("a", ["a.test"])])
        c.server["trusted_proxies"] = ["127.0.0.1/32"]
        c.listeners[0]["proxy_protocol"] = True
        t = self.torii(c)
        raw = socket.create_connection(t.addr("https"), timeout=10)
        raw.sendall(b"PROXY TCP6 2001:db8::5 ::1 4000 443\r\n")
        s = client_context(pki).wrap_socket(raw, server_hostname="a.test")
        try:
            r = tls_get(s, "/headers")
        finally:
            s.close()
        self.assertEqual(r.status, 200)
        self.assertEqual(h.header_of(o.log_entries()[-1], "X-Forwarded-For"), ["2001:db8::5"])


if __name__ == "__main__":
    unittest.main()
