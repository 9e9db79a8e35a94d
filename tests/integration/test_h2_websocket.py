"""WebSocket over HTTP/2 (RFC 8441) through the real binary (issue #16): torii offers extended
CONNECT in its SETTINGS, turns a client's CONNECT with :protocol websocket into the HTTP/1.1
handshake for the backend (with a key of its own, whose accept it checks), opens the stream's
tunnel with a 200 once the backend switched, and relays WebSocket frames as DATA both ways with
each side's flow control (a client that stops reading holds the backend back). A route that
tunnels nothing answers 501, a backend that does not switch 502: an HTTP/2 client takes any
2xx as its tunnel's opening, so torii never lets one through otherwise. The client is
python3-h2 writing RFC 6455 frames by hand; the backend is python3-websockets."""

import os
import socket
import ssl
import struct
import time
import unittest

import harness as h
from test_admin import parse_metrics
from test_websocket import RawBackend, WsBackend, WsFleetCase, masked_frame

try:
    import h2.errors
    import h2.settings
    from test_http2 import H2Client, header
except ImportError:  # Debian's python3-h2
    h2 = None
try:
    import websockets
except ImportError:  # Debian's python3-websockets imports only in /usr/bin/python3
    websockets = None

ENABLE_CONNECT_PROTOCOL = 0x8


def ws_frames(data, limit=None):
    """The complete server frames (unmasked, RFC 6455 §5.2) at the start of `data` (at most
    `limit`), as (opcode, payload) pairs, and the bytes after them."""
    frames = []
    while len(data) >= 2 and (limit is None or len(frames) < limit):
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        at = 2
        if n == 126:
            if len(data) < 4:
                break
            n, at = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            if len(data) < 10:
                break
            n, at = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < at + n:
            break
        frames.append((opcode, data[at:at + n]))
        data = data[at + n:]
    return frames, data


def open_tunnel(c, path="/ws", protocols=None, end=False):
    """An extended CONNECT for a WebSocket on `path`; returns its stream id."""
    headers = [(":protocol", "websocket"), ("sec-websocket-version", "13")]
    if protocols:
        headers.append(("sec-websocket-protocol", protocols))
    return c.request("CONNECT", path, headers=headers, scheme="https", end=end)


def send_frame(c, sid, payload, opcode=0x1):
    c.send_body(sid, masked_frame(payload, opcode), end=False)


def take_frames(c, sid, count, timeout=20):
    """The stream's next `count` frames, taken from its data (what follows stays)."""
    c.read_until(lambda: len(ws_frames(c.streams[sid]["data"], count)[0]) >= count
                 or c.done(sid), timeout)
    frames, rest = ws_frames(c.streams[sid]["data"], count)
    if len(frames) < count:
        raise AssertionError(f"{len(frames)} of {count} frames: {c.streams[sid]}"[:600])
    c.streams[sid]["data"] = rest
    return frames


@unittest.skipIf(h2 is None or websockets is None,
                 "python3-h2 and python3-websockets import only in Debian's python3")
class WebSocketOverH2(WsFleetCase):
    @classmethod
    def setUpClass(cls):
        cls.start_fleet(h2c=True)

    def client(self, **kw):
        c = H2Client(self.t.addr("http"), **kw)
        self.addCleanup(c.close)
        c.read_until(lambda: ENABLE_CONNECT_PROTOCOL in c.server_settings, 5)
        return c

    # SETTINGS_ENABLE_CONNECT_PROTOCOL, the handshake torii makes for the backend, the 200
    # that opens the tunnel (with the subprotocol, without the backend's accept), then text,
    # binary and ping frames both ways; the stream ends when the backend closes.
    def test_echo_through_an_extended_connect(self):
        c = self.client()
        self.assertEqual(c.server_settings[ENABLE_CONNECT_PROTOCOL], 1)
        sid = open_tunnel(c, "/chat?room=1", protocols="chat")
        c.read_until(lambda: c.streams[sid]["status"] is not None or c.done(sid), 10)
        st = c.streams[sid]
        self.assertEqual(st["status"], 200, st)
        self.assertFalse(st["ended"])
        self.assertEqual(header(st, "sec-websocket-protocol"), ["chat"])
        self.assertEqual(header(st, "sec-websocket-accept"), [])
        # This test's handshake (an earlier test's tunnel may still reach the backend after it).
        # The backend records it in its handler, which runs once its 101 is sent: the 200 may
        # arrive first.
        deadline = time.monotonic() + 5
        mine = []
        while not mine and time.monotonic() < deadline:
            mine = [(p, r) for p, r in self.ws.requests if p == "/chat?room=1"]
            if not mine:
                time.sleep(0.01)
        self.assertEqual(len(mine), 1, [p for p, _ in self.ws.requests])
        path, req = mine[0]
        self.assertEqual(req["Upgrade"].lower(), "websocket")
        self.assertEqual(len(req["Sec-WebSocket-Key"]), 24)  # torii's key, 16 bytes in base64
        self.assertEqual(req["Host"], "a.test")

        send_frame(c, sid, b"hello")
        send_frame(c, sid, b"\x00\x01binary", opcode=0x2)
        send_frame(c, sid, b"are you there", opcode=0x9)  # ping: the backend pongs
        frames = take_frames(c, sid, 3)
        # (the backend's library answers the ping at once, maybe before the echo)
        self.assertEqual(sorted(frames), [(0x1, b"hello"), (0x2, b"\x00\x01binary"),
                                          (0xA, b"are you there")])
        # The backend closes: its close frame, then END_STREAM.
        send_frame(c, sid, b"server-close")
        frames = take_frames(c, sid, 1)
        self.assertEqual(frames[0][0], 0x8)
        self.assertEqual(struct.unpack("!H", frames[0][1][:2])[0], 4000)
        c.send_body(sid, masked_frame(struct.pack("!H", 4000), 0x8), end=True)
        self.assertTrue(c.read_until(lambda: c.done(sid), 10), c.streams[sid])
        self.assertTrue(c.streams[sid]["ended"], c.streams[sid])
        r = self.tunnel_record("/chat?room=1")
        self.assertEqual((r["status"], r["protocol"]), (200, "HTTP/2.0"))
        self.assertGreater(r["bytes_up"], 30)
        self.assertGreater(r["bytes"], 30)

    # Messages larger than every window on the way (64 KiB stream windows, 1 MiB connection
    # window) cross both ways; a second tunnel and an ordinary request share the connection.
    def test_large_messages_and_streams_side_by_side(self):
        c = self.client()
        a = open_tunnel(c, "/a")
        b = open_tunnel(c, "/b")
        c.read_until(lambda: c.streams[a]["status"] and c.streams[b]["status"], 10)
        self.assertEqual((c.streams[a]["status"], c.streams[b]["status"]), (200, 200))
        big = os.urandom(3 << 20)
        send_frame(c, a, big, opcode=0x2)
        send_frame(c, b, b"small")
        self.assertEqual(take_frames(c, b, 1), [(0x1, b"small")])
        self.assertEqual(take_frames(c, a, 1, timeout=60), [(0x2, big)])
        plain = c.get("/plain/x")
        self.assertEqual(plain["status"], 200)
        for sid in (a, b):
            c.send_body(sid, b"", end=True)
        self.assertTrue(c.read_until(lambda: c.done(a) and c.done(b), 10))

    # The client's END_STREAM ends the tunnel: the backend's connection closes, the stream
    # ends, and it is logged once; tunnels_active goes back to 0.
    def test_client_end_stream_closes_the_backend_side(self):
        c = self.client()
        sid = open_tunnel(c, "/client-ends")
        c.read_until(lambda: c.streams[sid]["status"] is not None, 10)
        send_frame(c, sid, b"one")
        self.assertEqual(take_frames(c, sid, 1), [(0x1, b"one")])
        c.send_body(sid, b"", end=True)
        self.assertTrue(c.read_until(lambda: c.done(sid), 10), c.streams[sid])
        self.assertTrue(c.streams[sid]["ended"])
        h.wait_for(lambda: "/client-ends" in self.ws.close_codes, 5, what="backend saw the end")

        def settled():
            m = parse_metrics(h.get(self.t.addr("admin"), "/metrics").body.decode())
            return m[("torii_tunnels_active", "")] == 0 and m
        m = h.wait_for(settled, 5, what="tunnels closed")
        self.assertGreaterEqual(m[("torii_tunnels_total", "")], 1)
        self.tunnel_record("/client-ends")

    # Frames the client sends before the 200 (optimistically) wait, unacknowledged, and reach
    # the backend once it switched.
    def test_frames_before_the_200_are_held_then_relayed(self):
        c = self.client()
        sid = open_tunnel(c, "/early")
        send_frame(c, sid, b"sent before the answer")
        self.assertEqual(take_frames(c, sid, 1), [(0x1, b"sent before the answer")])
        self.assertEqual(c.streams[sid]["status"], 200)

    # A client that stops acknowledging DATA while the backend floods: the stream's window
    # closes, torii stops reading the backend instead of buffering its output.
    def test_client_not_reading_holds_the_backend(self):
        c = self.client(ack_data=False)
        sid = open_tunnel(c, "/flood")
        c.read_until(lambda: c.streams[sid]["status"] is not None, 10)
        rss_before = self.t.rss_kib()
        sent_before = self.ws.flood_sent
        send_frame(c, sid, b"flood 256")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            c.read_once(timeout=0.2)
        sent = self.ws.flood_sent - sent_before
        grown_kib = self.t.rss_kib() - rss_before
        self.assertLess(sent, 64, f"the backend sent {sent} MiB to a client that reads nothing")
        self.assertLess(grown_kib, 24 * 1024, f"torii grew by {grown_kib} KiB")
        self.t.check_alive()

    # A client resetting its tunnel stream ends the backend's side too.
    def test_client_reset_ends_the_tunnel(self):
        c = self.client()
        sid = open_tunnel(c, "/reset")
        c.read_until(lambda: c.streams[sid]["status"] is not None, 10)
        c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        c.flush()
        h.wait_for(lambda: "/reset" in self.ws.close_codes, 5, what="backend saw the reset")
        r = self.tunnel_record("/reset")
        self.assertEqual(r["status"], 200)

    # A route that tunnels nothing: 501 (an HTTP/2 client's upgrade cannot fall back to an
    # ordinary request); a backend that answers the upgrade with a 200: 502, and that backend
    # is not held at fault (the next ordinary request still reaches it).
    def test_no_switch_is_never_a_2xx(self):
        c = self.client()
        r = c.response(open_tunnel(c, "/off/x"))
        self.assertEqual(r["status"], 501, r)
        # (P3 over HTTP/2: bytes the client sent ahead of the answer are never forwarded,
        # not as tunnel bytes nor as a request of their own.)
        sid = open_tunnel(c, "/plain/x")
        c.send_body(sid, b"GET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n", end=False)
        r = c.response(sid)
        self.assertEqual(r["status"], 502, r)
        e = self.o.log_entries()[-1]
        self.assertEqual(e["target"], "/plain/x")
        self.assertEqual(h.header_of(e, "Upgrade"), ["websocket"])
        self.assertEqual(c.get("/plain/again")["status"], 200)
        self.assertNotIn("/smuggled", [x["target"] for x in self.o.log_entries()])
        # A plain CONNECT is not supported at all.
        raw = self.client(validate=False)  # (python3-h2 wants a :path even on CONNECT)
        sid = raw.conn.get_next_available_stream_id()
        raw.conn.send_headers(sid, [(":method", "CONNECT"), (":authority", "a.test:443")])
        raw.streams[sid] = {"status": None, "headers": [], "info": [], "data": b"",
                            "ended": False, "reset": None}
        raw.flush()
        self.assertEqual(raw.response(sid)["status"], 501)


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class WebSocketOverH2Faults(h.ToriiCase):
    # A 101 whose Sec-WebSocket-Accept does not answer torii's key is not a switch: 502.
    def test_wrong_accept_is_a_bad_response(self):
        b = RawBackend(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
                       b"Upgrade: websocket\r\nSec-WebSocket-Accept: not-the-answer=\r\n\r\n")
        self.addCleanup(b.stop)
        c = h.proxy_config([b.address])
        c.listeners[0]["h2c"] = True
        t = self.torii(c)
        cl = H2Client(t.addr("http"))
        self.addCleanup(cl.close)
        r = cl.response(open_tunnel(cl, "/ws"))
        self.assertEqual(r["status"], 502, r)

    # Over TLS (ALPN h2): the same tunnel inside the client's TLS session.
    @unittest.skipIf(websockets is None, "python3-websockets is not importable")
    def test_over_tls(self):
        from test_tls import Pki, tls_config
        pki = Pki()
        self.addCleanup(pki.cleanup)
        ws = WsBackend()
        self.addCleanup(ws.stop)
        t = self.torii(tls_config(ws.address, pki, [pki.leaf("site", ["a.test"])],
                                  tls_extra={"alpn": ["h2", "http/1.1"]}))
        ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
        ctx.set_alpn_protocols(["h2"])
        c = H2Client(t.addr("https"), tls_ctx=ctx)
        self.addCleanup(c.close)
        c.read_until(lambda: ENABLE_CONNECT_PROTOCOL in c.server_settings, 5)
        sid = open_tunnel(c, "/secure")
        c.read_until(lambda: c.streams[sid]["status"] is not None, 10)
        self.assertEqual(c.streams[sid]["status"], 200)
        big = os.urandom(1 << 20)
        send_frame(c, sid, big, opcode=0x2)
        self.assertEqual(take_frames(c, sid, 1, timeout=60), [(0x2, big)])
        self.assertEqual(ws.requests[-1][1]["X-Forwarded-Proto"], "https")


if __name__ == "__main__":
    unittest.main()
