"""TCP Fast Open (RFC 7413) through the real binary, on both sides (#21). Whether a
connection's first bytes rode in its SYN is read from the kernel of the receiving end
(TCP_INFO's TCPI_OPT_SYN_DATA: the data in the SYN was accepted), per connection.

- a listener with tcp_fastopen accepts a request in the SYN (a client holding a cookie),
  and answers it; a listener without it does not;
- a pool with tcp_fastopen sends the request (or, over TLS, the ClientHello) in the SYN to a
  backend that accepts fast open; a pool without it never does;
- a backend that is down refuses the SYN that carries a POST: that is a failed connect
  (nothing reached the backend), so the POST (without a body: bodies are streamed, not kept)
  is retried on the next backend, as it would be without fast open.

The kernel's switch (net.ipv4.tcp_fastopen, per network namespace) must allow both sides
(bits 1 and 2); the tests turn the server bit on when they may (root), else they skip."""
import socket
import ssl
import subprocess
import unittest

import harness as h

SYSCTL = "/proc/sys/net/ipv4/tcp_fastopen"
TCPI_OPT_SYN_DATA = 32
TCP_INFO_LEN = 104


def enable_fastopen():
    """True when the kernel lets both sides use fast open (turning it on if it may)."""
    try:
        with open(SYSCTL) as f:
            flags = int(f.read().split()[0])
        if flags & 3 != 3:
            with open(SYSCTL, "w") as f:
                f.write(str(flags | 3))
        return True
    except (OSError, ValueError):
        return False


def syn_data(sock):
    """Did this connection's SYN carry data that the other end accepted?"""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    return bool(info[5] & TCPI_OPT_SYN_DATA)  # tcpi_options


def fastopen_get(addr, path="/?size=10"):
    """GET with MSG_FASTOPEN (the request in the SYN when a cookie is cached): (status,
    whether the SYN data was accepted)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Blocking: without a cookie the SYN asks for one and the request follows the handshake.
        s.sendto(h.build_request("GET", path), socket.MSG_FASTOPEN, addr)
        s.settimeout(5 * h.SLOW)
        c = h.Client(addr, sock=s)
        r = c.read_response()
        return r.status, syn_data(s)
    finally:
        s.close()


class FastOpenBackend(h.ThreadedBackend):
    """Answers each connection's one request with 200 and "syn-data=1" or "syn-data=0" (did
    that connection's SYN carry it), then closes; over TLS when given a context."""

    def __init__(self, tls=None):
        self.tls = tls
        self.seen = []
        super().__init__("fastopen", fastopen=16)

    def serve(self, c):
        flag = syn_data(c)
        c.settimeout(5)
        if self.tls is not None:
            c = self.tls.wrap_socket(c, server_side=True)
        if h.read_head(c) is None:
            return
        with self._lock:
            self.seen.append(flag)
        body = b"syn-data=%d" % flag
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (len(body), body))


@unittest.skipUnless(enable_fastopen(), "TCP Fast Open is off in this kernel and cannot be "
                                        "turned on here (net.ipv4.tcp_fastopen needs 3)")
class FastOpen(h.ToriiCase):
    def test_listener_accepts_a_request_in_the_syn(self):
        o = self.origin("o1")
        c = h.proxy_config([o])
        c.listeners[0]["tcp_fastopen"] = 64
        c.listeners.append({"name": "plain", "address": "127.0.0.1:0"})
        t = self.torii(c)
        # The first connection asks for a cookie (the kernel may hold one for 127.0.0.1
        # already); from then on the request rides in the SYN and is answered.
        results = [fastopen_get(t.addr()) for _ in range(3)]
        self.assertEqual([s for s, _ in results], [200, 200, 200])
        self.assertTrue(results[-1][1], results)
        # Same address, same cookie, a listener without tcp_fastopen: never in the SYN (the
        # request is sent again after the handshake, and served).
        plain = [fastopen_get(t.addr("plain")) for _ in range(3)]
        self.assertEqual(plain, [(200, False)] * 3)

    def test_pool_sends_the_request_in_the_syn(self):
        b = FastOpenBackend()
        self.addCleanup(b.cleanup)
        c = h.Config()
        c.add_pool("fast", [b.address], tcp_fastopen=True, keepalive=0)
        c.add_pool("slow", [b.address], keepalive=0)
        c.add_route("slow", path_prefix="/slow/")
        c.add_route("fast")
        t = self.torii(c)
        client = h.Client(t.addr())
        fast = [client.get("/f").body for _ in range(4)]
        self.assertIn(b"syn-data=1", fast)
        self.assertEqual(fast[-1], b"syn-data=1", fast)
        slow = [client.get("/slow/x").body for _ in range(3)]
        self.assertEqual(slow, [b"syn-data=0"] * 3)

    def test_pool_sends_the_tls_client_hello_in_the_syn(self):
        from test_tls import OPENSSL, Pki
        if OPENSSL is None:
            self.skipTest("openssl is not installed")
        pki = Pki()
        self.addCleanup(pki.cleanup)
        leaf = pki.leaf("backend", ["backend.test"])
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(leaf["cert"], leaf["key"])
        b = FastOpenBackend(tls=ctx)
        self.addCleanup(b.cleanup)
        c = h.proxy_config([b.address], pool_extra={
            "tcp_fastopen": True, "keepalive": 0,
            "tls": {"ca": pki.path("ca.crt"), "sni": "backend.test"}})
        t = self.torii(c)
        client = h.Client(t.addr())
        bodies = [client.get("/").body for _ in range(4)]
        self.assertEqual(bodies[-1], b"syn-data=1", bodies)

    def test_refused_syn_with_a_post_is_a_failed_connect_and_retried(self):
        live = FastOpenBackend()
        self.addCleanup(live.cleanup)
        # A port nobody listens on (bound, never listening: refused, not reused meanwhile).
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        self.addCleanup(hole.close)
        dead = f"127.0.0.1:{hole.getsockname()[1]}"
        c = h.proxy_config([dead, live.address], pool_extra={
            "tcp_fastopen": True, "max_fails": 0, "retries": 1, "keepalive": 0})
        t = self.torii(c)
        client = h.Client(t.addr())
        # A cookie for 127.0.0.1 first (the kernel keeps one per address, not per port):
        # from then on every connect to the dead port sends a SYN with the request in it.
        for _ in range(4):
            client.get("/")
        self.assertIn(True, live.seen)
        for i in range(6):
            r = client.request("POST", f"/post{i}", headers={"Content-Length": "0"})
            self.assertEqual(r.status, 200, (i, r.status, t.access_log_lines()[-2:]))


class FastOpenConfig(h.ToriiCase):
    def test_http2_pools_refuse_tcp_fastopen(self):
        c = h.proxy_config(["127.0.0.1:1"], pool_extra={"protocol": "h2c",
                                                        "tcp_fastopen": True})
        t = h.Torii(c, dir=self.tmpdir(), start=False)
        p = subprocess.run([h.torii_bin(), "-t", "-c", t.config_path], capture_output=True,
                           text=True, env=h.child_env(), timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("tcp_fastopen", p.stderr + p.stdout)
        self.assertIn("HTTP/1.1 pools only", p.stderr + p.stdout)

if __name__ == "__main__":
    unittest.main()
