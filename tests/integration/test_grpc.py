"""gRPC end to end through torii (python3-grpcio client and server, h2c both sides): unary,
streaming both ways, a 10 MiB message, status codes and messages carried in trailers, and the
calls torii itself must fail answered as gRPC (UNAVAILABLE, DEADLINE_EXCEEDED from
grpc-timeout), never as an HTTP error page."""
import os
import socket
import sys
import time
import unittest

import harness as h
from test_http2 import H2Client, h2, header

try:
    import grpc
except ImportError:  # python3-grpcio
    grpc = None

GRPC_BACKEND = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grpc_backend.py")
MAX = 32 << 20


class GrpcBackend(h.Origin):
    def start(self, listen=None):
        # grpcio takes longer to start than the other backends.
        return self._launch([sys.executable, GRPC_BACKEND, "--ready-file", self.ready_file],
                            ready_timeout=20)


def grpc_config(backends, pool_extra=None, **kw):
    c = h.proxy_config(backends, pool_extra=dict({"protocol": "h2c", "retries": 0},
                                                 **(pool_extra or {})), **kw)
    c.listeners[0]["h2c"] = True
    return c


def grpc_frame(payload):
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


@unittest.skipIf(grpc is None or h2 is None, "python3-grpcio / python3-h2 is not installed")
class Grpc(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.b = GrpcBackend("g1", dir=cls.class_tmpdir())
        cls.addClassCleanup(cls.b.cleanup)
        cls.t = cls.class_torii(grpc_config([cls.b]))
        addr = cls.t.addr()
        cls.channel = grpc.insecure_channel(
            f"{addr[0]}:{addr[1]}", options=[("grpc.max_receive_message_length", MAX),
                                             ("grpc.max_send_message_length", MAX)])
        cls.addClassCleanup(cls.channel.close)

    def call(self, method, kind="unary_unary"):
        return getattr(self.channel, kind)(f"/test.Echo/{method}")

    def test_unary_and_a_10_mib_message(self):
        self.assertEqual(self.call("Unary")(b"hello", timeout=10), b"hello")
        big = os.urandom(10 << 20)
        self.assertEqual(self.call("Unary")(big, timeout=30), big)

    def test_status_and_message_pass_through(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("Fail")(b"x", timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(cm.exception.details(), "no such thing")

    def test_server_streaming_to_a_slow_client(self):
        got = 0
        for i, msg in enumerate(self.call("Stream", "unary_stream")(b"10000", timeout=60)):
            self.assertEqual(msg[:8], b"%08d" % i)
            got += 1
            if i % 2000 == 0:
                time.sleep(0.2)  # the client falls behind: flow control holds the backend
        self.assertEqual(got, 10000)

    def test_client_streaming(self):
        reply = self.call("Collect", "stream_unary")(iter([b"a" * 1000] * 50), timeout=10)
        self.assertEqual(reply, b"50000")

    def test_client_deadline(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.call("Slow")(b"x", timeout=0.5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertEqual(self.call("Unary")(b"after", timeout=10), b"after")

    def test_grpc_timeout_bounds_the_backend_wait(self):
        # torii's own answer when the backend outlives grpc-timeout: 200, grpc-status 4.
        c = H2Client(self.t.addr())
        self.addCleanup(c.close)
        # The backend answers after 2 s: grpc-status 4 can only be torii's own answer.
        r = c.response(c.request("POST", "/test.Echo/Slow", body=grpc_frame(b"x"), headers=[
            ("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "300m")]))
        self.assertEqual(r["status"], 200)
        self.assertEqual(header(r, "grpc-status"), ["4"])
        self.assertEqual(header(r, "content-type"), ["application/grpc"])
        self.assertEqual(r["data"], b"")


@unittest.skipIf(grpc is None, "python3-grpcio is not installed")
class GrpcHealthCheck(h.ToriiCase):
    def test_grpc_health_protocol_takes_the_backend_out_and_back(self):
        b = GrpcBackend("g1", dir=self.tmpdir())
        self.addCleanup(b.cleanup)
        c = grpc_config([b], pool_extra=None)
        c.pools[0]["health"] = {"type": "grpc", "interval": "200ms", "timeout": "200ms",
                                "rise": 1, "fall": 1}
        t = self.torii(c)
        addr = t.addr()
        with grpc.insecure_channel(f"{addr[0]}:{addr[1]}") as ch:
            call = ch.unary_unary("/test.Echo/Unary")

            def outcome():
                try:
                    return call(b"x", timeout=5) == b"x"
                except grpc.RpcError as e:
                    return e.code()

            h.wait_for(lambda: outcome() is True, 10 * h.SLOW, what="backend up")
            with grpc.insecure_channel(f"127.0.0.1:{b.port}") as direct:
                direct.unary_unary("/test.Echo/SetHealth")(b"0", timeout=5)
                h.wait_for(lambda: outcome() == grpc.StatusCode.UNAVAILABLE, 10 * h.SLOW,
                           what="NOT_SERVING takes the backend out")
                direct.unary_unary("/test.Echo/SetHealth")(b"1", timeout=5)
            h.wait_for(lambda: outcome() is True, 10 * h.SLOW, what="SERVING brings it back")
        self.assertIn("is DOWN", t.error_log())


@unittest.skipIf(grpc is None, "python3-grpcio is not installed")
class GrpcWithoutBackend(h.ToriiCase):
    def test_no_backend_is_unavailable(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        t = self.torii(grpc_config([f"127.0.0.1:{port}"]))
        addr = t.addr()
        with grpc.insecure_channel(f"{addr[0]}:{addr[1]}") as ch:
            with self.assertRaises(grpc.RpcError) as cm:
                ch.unary_unary("/test.Echo/Unary")(b"x", timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
        self.assertIn("no backend", cm.exception.details())
        lines = t.access_log_lines()
        self.assertTrue(any('"POST /test.Echo/Unary HTTP/2.0" 200' in l for l in lines), lines)


if __name__ == "__main__":
    unittest.main()
