"""WebSocket and other HTTP/1.1 upgrades through the real binary (issue #15): the RFC 6455
handshake passes through, after the backend's 101 both directions are a byte tunnel
(python3-websockets on both ends: text and binary messages, ping/pong, a 10 MiB message,
close from either side), an idle tunnel is closed after tunnel_idle_timeout, a client that
stops reading holds the backend back instead of growing torii, and anything but a 101 is an
ordinary response. Each tunnel is logged once with the bytes each way and counted in metrics."""

import asyncio
import base64
import json
import os
import socket
import struct
import threading
import time
import unittest

import harness as h
from test_admin import parse_metrics

try:
    import websockets
except ImportError:  # Debian's python3-websockets imports only in /usr/bin/python3
    websockets = None


class WsBackend:
    """A WebSocket echo server (python3-websockets) on 127.0.0.1:0, in a thread of its own.
    Messages: "server-close" → close 4000 "bye"; "flood N" → N binary messages of 1 MiB
    (counted in .flood_sent); anything else is echoed."""

    def __init__(self):
        self.requests = []  # (path, headers) of each handshake
        self.close_codes = {}  # path → the close code the backend saw
        self.flood_sent = 0
        self._loop = asyncio.new_event_loop()
        started = threading.Event()

        async def handler(ws, path=None):
            self.requests.append((ws.path, ws.request_headers))
            try:
                async for msg in ws:
                    if msg == "server-close":
                        await ws.close(4000, "bye")
                        break
                    if isinstance(msg, str) and msg.startswith("flood "):
                        chunk = b"f" * (1 << 20)
                        for _ in range(int(msg.split()[1])):
                            await ws.send(chunk)
                            self.flood_sent += 1
                        continue
                    await ws.send(msg)
            except websockets.ConnectionClosed:
                pass
            self.close_codes[ws.path] = ws.close_code

        async def main():
            self._server = await websockets.serve(handler, "127.0.0.1", 0, max_size=None,
                                                  ping_interval=None, subprotocols=["chat"])
            self.address = "127.0.0.1:%d" % self._server.sockets[0].getsockname()[1]
            started.set()

        def run():
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(main())
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("WebSocket backend did not start")

    def stop(self):
        async def shut():
            self._server.close()
            await self._server.wait_closed()
        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def masked_frame(payload, opcode=0x1):
    """A client frame (FIN, masked) as RFC 6455 §5.2 lays it out."""
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def handshake(path="/ws"):
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET {path} HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n").encode()


def connect(addr):
    return socket.create_connection(addr, timeout=5)


def ws_url(t, path="/"):
    host, port = t.addr()
    return f"ws://{host}:{port}{path}"


def read_head(sock, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


class WsFleetCase(h.ToriiCase):
    """A WebSocket backend (WsBackend), an ordinary origin and torii in front of them (JSON
    access log, admin listener; `h2c`: HTTP/2 with prior knowledge too): /plain/ goes to the
    origin, /off/ is a route that tunnels nothing, the rest goes to the WebSocket backend."""

    @classmethod
    def start_fleet(cls, h2c=False):
        cls.ws = WsBackend()
        cls.addClassCleanup(cls.ws.stop)
        cls.o = cls.class_origin("plain")
        c = h.proxy_config([cls.ws.address], server_extra={"access_log_format": "json"},
                           pools={"plain": [cls.o]})
        if h2c:
            c.listeners[0]["h2c"] = True
        c.tables["admin"] = {"address": "127.0.0.1:0"}
        c.routes = [
            {"path_prefix": "/plain/", "pool": "plain"},
            {"path_prefix": "/off/", "pool": "plain", "upgrades": []},
            {"path_prefix": "/", "pool": "app"},
        ]
        cls.t = cls.class_torii(c)

    def log_records(self, count):
        lines = self.t.access_log_lines(wait_for_count=count, timeout=5)
        return [json.loads(line) for line in lines]

    def tunnel_record(self, target):
        """The access log record of the tunnel whose request target was `target`."""
        def find():
            recs = [r for r in self.log_records(0) if r["target"] == target]
            return recs[-1] if recs else None
        return h.wait_for(find, 5, what=f"log record of {target}")


@unittest.skipIf(websockets is None, "python3-websockets is not importable (Debian's python3)")
class WebSocket(WsFleetCase):
    @classmethod
    def setUpClass(cls):
        cls.start_fleet()
        cls.uri = ws_url(cls.t, "/ws")

    # Text and binary messages, a negotiated subprotocol, ping/pong: the handshake and the
    # frames pass through unchanged; the backend sees the forwarding headers.
    def test_echo_text_binary_ping(self):
        async def go():
            async with websockets.connect(self.uri + "?q=1", subprotocols=["chat"],
                                          ping_interval=None) as c:
                self.assertEqual(c.subprotocol, "chat")
                await c.send("héllo")
                self.assertEqual(await c.recv(), "héllo")
                blob = os.urandom(3000)  # random: permessage-deflate cannot shrink it
                await c.send(blob)
                self.assertEqual(await c.recv(), blob)
                pong = await c.ping(b"p1")
                await asyncio.wait_for(pong, 5)
        run(go())
        path, headers = self.ws.requests[-1]
        self.assertEqual(path, "/ws?q=1")
        self.assertEqual(headers["X-Forwarded-For"], "127.0.0.1")
        self.assertEqual(headers["Upgrade"].lower(), "websocket")
        rec = self.tunnel_record("/ws?q=1")
        self.assertEqual(rec["status"], 101)
        self.assertGreater(rec["bytes_up"], 3000, rec)
        self.assertGreater(rec["bytes"], 3000)
        self.assertEqual(rec["backend"], self.ws.address)

    # A 10 MiB message each way: the tunnel streams it through the back-pressured queues.
    def test_large_message(self):
        big = os.urandom(10 << 20)

        async def go():
            async with websockets.connect(self.uri, max_size=None, ping_interval=None) as c:
                await c.send(big)
                self.assertEqual(await c.recv(), big)
        run(go(), timeout=60)

    # Close from the client (code 1000) and from the backend (4000 "bye"): each side sees the
    # other's close frame, and torii logs the tunnel once.
    def test_close_from_either_side(self):
        async def client_closes():
            async with websockets.connect(self.uri + "?c", ping_interval=None) as c:
                await c.send("x")
                await c.recv()
        run(client_closes())

        async def server_closes():
            async with websockets.connect(self.uri + "?s", ping_interval=None) as c:
                await c.send("server-close")
                with self.assertRaises(websockets.ConnectionClosed) as cm:
                    await c.recv()
                return cm.exception
        e = run(server_closes())
        self.assertEqual((e.rcvd.code, e.rcvd.reason), (4000, "bye"))
        h.wait_for(lambda: "/ws?s" in self.ws.close_codes, 5, what="closes")
        self.assertEqual(self.ws.close_codes["/ws?c"], 1000)
        self.assertEqual(self.ws.close_codes["/ws?s"], 4000)
        for target in ("/ws?c", "/ws?s"):
            rec = self.tunnel_record(target)
            self.assertEqual(rec["status"], 101)
            self.assertIn(rec["note"], ("client closed", "backend closed"))

    # Bytes the client sends right behind its handshake reach the backend after the 101.
    def test_frame_right_behind_the_handshake(self):
        with connect(self.t.addr()) as s:
            s.sendall(handshake() + masked_frame(b"early"))
            head, rest = read_head(s)
            self.assertTrue(head.startswith("HTTP/1.1 101 "), head)
            self.assertIn("\r\nupgrade: websocket", head.lower())
            self.assertIn("\r\nconnection: upgrade", head.lower())
            self.assertIn("sec-websocket-accept: ", head.lower())
            while len(rest) < 7:
                rest += s.recv(65536)
            self.assertEqual(rest[:7], b"\x81\x05early")

    # A client that stops reading while the backend floods it: torii stops reading the backend
    # (its sends stall) instead of buffering, so its memory stays flat.
    def test_client_not_reading_holds_the_backend(self):
        rss_before = self.t.rss_kib()
        sent_before = self.ws.flood_sent
        s = connect(self.t.addr())
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            s.sendall(handshake())
            head, _ = read_head(s)
            self.assertTrue(head.startswith("HTTP/1.1 101 "), head)
            s.sendall(masked_frame(b"flood 256"))
            time.sleep(2.0)
            sent = self.ws.flood_sent - sent_before
            grown_kib = self.t.rss_kib() - rss_before
            self.assertLess(sent, 64, f"the backend sent {sent} MiB to a client that reads nothing")
            self.assertLess(grown_kib, 24 * 1024, f"torii grew by {grown_kib} KiB")
        finally:
            s.close()

    # A route that tunnels nothing forwards the request without its upgrade; a backend that
    # answers an upgrade with a 200 gives an ordinary response.
    def test_no_101_is_an_ordinary_response(self):
        r = h.get(self.t.addr(), "/plain/x", headers=[("Upgrade", "websocket"),
                                                        ("Connection", "Upgrade")])
        self.assertEqual(r.status, 200)
        e = self.o.log_entries()[-1]
        self.assertEqual(h.header_of(e, "Upgrade"), ["websocket"])
        r = h.get(self.t.addr(), "/off/x", headers=[("Upgrade", "websocket"),
                                                      ("Connection", "Upgrade")])
        self.assertEqual(r.status, 200)
        e = self.o.log_entries()[-1]
        self.assertEqual(h.header_of(e, "Upgrade"), [])
        self.assertEqual(h.header_of(e, "Connection"), [])

    # h2c is never tunnelled, nor an upgrade on a POST: both go as ordinary requests.
    def test_other_upgrades_are_not_tunnelled(self):
        r = h.get(self.t.addr(), "/plain/h2c", headers=[("Upgrade", "h2c"),
                                                          ("Connection", "Upgrade, HTTP2-Settings"),
                                                          ("HTTP2-Settings", "AAMAAABkAAQAAP__")])
        self.assertEqual(r.status, 200)
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "Upgrade"), [])
        r = h.get(self.t.addr(), "/plain/post", method="POST", body=b"abc",
                  headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")])
        self.assertEqual(r.status, 200)
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "Upgrade"), [])

    # Metrics: tunnels opened, active (back to 0 once closed) and bytes each way.
    def test_metrics(self):
        async def go():
            async with websockets.connect(self.uri, ping_interval=None) as c:
                await c.send("m" * 100)
                await c.recv()
                m = parse_metrics(h.get(self.t.addr("admin"), "/metrics").body.decode())
                self.assertGreaterEqual(m[("torii_tunnels_active", "")], 1)
        run(go())

        def settled():
            m = parse_metrics(h.get(self.t.addr("admin"), "/metrics").body.decode())
            return m[("torii_tunnels_active", "")] == 0 and m
        m = h.wait_for(settled, 5, what="tunnels closed")
        self.assertGreaterEqual(m[("torii_tunnels_total", "")], 1)
        self.assertGreaterEqual(m[("torii_tunnel_sent_bytes_total", "")], 100)
        self.assertGreaterEqual(m[("torii_tunnel_received_bytes_total", "")], 100)


@unittest.skipIf(websockets is None, "python3-websockets is not importable")
class SecureWebSocket(h.ToriiCase):
    # wss://: the tunnel runs inside the client's TLS session (its records carry the frames
    # both ways), a 1 MiB message included.
    def test_wss_echo(self):
        from test_tls import Pki, client_context, tls_config
        pki = Pki()
        self.addCleanup(pki.cleanup)
        ws = WsBackend()
        self.addCleanup(ws.stop)
        c = tls_config(ws.address, pki, [pki.leaf("site", ["a.test"])])
        t = self.torii(c)
        host, port = t.addr("https")
        big = os.urandom(1 << 20)

        async def go():
            async with websockets.connect(f"wss://a.test:{port}/secure", max_size=None,
                                          ping_interval=None, ssl=client_context(pki),
                                          host=host, port=port, server_hostname="a.test") as c:
                await c.send("over tls")
                self.assertEqual(await c.recv(), "over tls")
                await c.send(big)
                self.assertEqual(await c.recv(), big)
        run(go(), timeout=60)
        self.assertEqual(ws.requests[-1][0], "/secure")
        self.assertEqual(ws.requests[-1][1]["X-Forwarded-Proto"], "https")


class RawBackend:
    """Answers every connection's first request with `response` (bytes), then keeps it open."""

    def __init__(self, response):
        self.response = response
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self._stop = False
        self._conns = []
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self._conns.append(c)
            c.settimeout(2)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    piece = c.recv(65536)
                    if not piece:
                        break
                    data += piece
                c.sendall(self.response)
            except OSError:
                pass

    def stop(self):
        self._stop = True
        self._thread.join(3)
        for c in self._conns:
            c.close()
        self.sock.close()


class UpgradeFaults(h.ToriiCase):
    def backend(self, response):
        b = RawBackend(response)
        self.addCleanup(b.stop)
        return b

    # A 101 to a request that asked for no upgrade, or one that names no protocol: 502.
    def test_unrequested_or_nameless_101_is_a_bad_response(self):
        b = self.backend(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                         b"Upgrade: websocket\r\n\r\n")
        t = self.torii(h.proxy_config([b.address]))
        self.assertEqual(h.get(t.addr(), "/").status, 502)
        b2 = self.backend(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n")
        t2 = self.torii(h.proxy_config([b2.address]))
        with connect(t2.addr()) as s:
            s.sendall(handshake())
            head, _ = read_head(s)
            self.assertTrue(head.startswith("HTTP/1.1 502 "), head)

    # A tunnel silent both ways for tunnel_idle_timeout is closed (and logged); one that
    # keeps talking is not.
    @unittest.skipIf(websockets is None, "python3-websockets is not importable")
    def test_idle_timeout(self):
        ws = WsBackend()
        self.addCleanup(ws.stop)
        t = self.torii(h.proxy_config([ws.address], limits={"tunnel_idle_timeout": "1s"},
                                      server_extra={"access_log_format": "json"}))

        async def go():
            async with websockets.connect(ws_url(t), ping_interval=None) as c:
                for _ in range(4):  # 2 s of traffic every 0.5 s: never idle
                    await c.send("k")
                    self.assertEqual(await c.recv(), "k")
                    await asyncio.sleep(0.5)
                start = time.monotonic()
                with self.assertRaises(websockets.ConnectionClosed):
                    await asyncio.wait_for(c.recv(), 10)
                return time.monotonic() - start
        waited = run(go())
        self.assertLess(waited, 8)
        recs = [json.loads(line) for line in t.access_log_lines(wait_for_count=1)]
        self.assertEqual(recs[-1]["status"], 101)
        self.assertEqual(recs[-1]["note"], "tunnel idle timeout")

    # Shutdown: an open tunnel is closed once shutdown_grace is over and torii exits cleanly.
    @unittest.skipIf(websockets is None, "python3-websockets is not importable")
    def test_shutdown_closes_tunnels_after_grace(self):
        ws = WsBackend()
        self.addCleanup(ws.stop)
        t = self.torii(h.proxy_config([ws.address], server_extra={"shutdown_grace": "1s"}))

        failures = []

        def stop():
            try:
                t.stop()
            except AssertionError as e:
                failures.append(e)

        async def go():
            async with websockets.connect(ws_url(t), ping_interval=None) as c:
                await c.send("a")
                await c.recv()
                stopper = threading.Thread(target=stop)
                stopper.start()
                await asyncio.sleep(0.3)
                await c.send("still")  # draining: the tunnel still works within the grace
                self.assertEqual(await c.recv(), "still")
                with self.assertRaises(websockets.ConnectionClosed):
                    await asyncio.wait_for(c.recv(), 10)
                stopper.join(20)
        run(go())
        self.assertEqual(failures, [])


if __name__ == "__main__":
    unittest.main()
