#!/usr/bin/python3
"""An HTTP/2 backend for the integration tests (python3-h2 on asyncio): h2c with prior
knowledge, or h2 over TLS (ALPN h2) with --cert/--key. Writes "HOST:PORT" to --ready-file
once listening and one JSON line per request to --log.

Paths:
  /echo              the request body back (content-type kept); its trailers are logged
  /trailers          "hello world", then trailers grpc-status: 0, x-checksum: abc
  /size?n=N          N bytes of a repeating pattern
  /slow?ms=N         answers after N ms
  /refuse            RST_STREAM REFUSED_STREAM before answering (never processed)
  /rst               RST_STREAM INTERNAL_ERROR before answering
  /rst-mid           the head and 5 bytes, then RST_STREAM INTERNAL_ERROR
  /goaway            answers, then GOAWAY (last stream = this one): the next request needs a
                     new connection
  /die               closes the TCP connection without answering
  /malformed?kind=K  a response HTTP/2 forbids, written as raw frames past python-h2's checks:
                     K = ctl (a value with \x01), upper (an uppercase name), conn (a
                     Connection field), length (Content-Length 10 over a 3-byte body)
  /__stats           {"connections", "streams", "max_concurrent"} as JSON
  /health            an empty answer with the status /__health?status=N set (200 at first)
anything else        200 with the backend's name.
A cc=VALUE parameter adds Cache-Control: VALUE to a 200 (/size, /slow and the default).
Every response carries x-backend (--name), x-conn (connection number) and x-stream.
"""
import argparse
import asyncio
import json
import ssl
import os
import sys
import urllib.parse

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings

STATS = {"connections": 0, "streams": 0, "max_concurrent": 0}
HEALTH = {"status": 200}


def pattern(n):
    unit = b"0123456789abcdefghijklmnopqrstuvwxyz"
    return (unit * (n // len(unit) + 1))[:n]


class Conn:
    def __init__(self, reader, writer, args, log):
        self.r, self.w, self.args, self.log = reader, writer, args, log
        STATS["connections"] += 1
        self.num = STATS["connections"]
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                        validate_inbound_headers=True)
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.streams = {}  # id -> {"headers", "body", "trailers"}
        self.window_open = asyncio.Event()
        self.active = 0
        self.closed = False

    def flush(self):
        data = self.h2.data_to_send()
        if data and not self.closed:
            self.w.write(data)

    async def run(self):
        if self.args.max_streams:
            # In the first SETTINGS frame (a later one would leave a window for more).
            self.h2.local_settings = h2.settings.Settings(
                client=False,
                initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS:
                                self.args.max_streams})
        self.h2.initiate_connection()
        self.flush()
        try:
            while not self.closed:
                data = await self.r.read(65536)
                if not data:
                    break
                try:
                    events = self.h2.receive_data(data)
                except h2.exceptions.ProtocolError:
                    self.flush()
                    break
                for ev in events:
                    self.on_event(ev)
                self.flush()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            self.closed = True
            self.window_open.set()
            try:
                self.w.close()
            except Exception:
                pass

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            self.streams[ev.stream_id] = {"headers": ev.headers, "body": b"", "trailers": []}
            self.active += 1
            STATS["streams"] += 1
            STATS["max_concurrent"] = max(STATS["max_concurrent"], self.active)
            if ev.stream_ended:
                self.start(ev.stream_id)
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st["body"] += ev.data
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st["trailers"] = ev.headers
        elif isinstance(ev, h2.events.StreamEnded):
            if ev.stream_id in self.streams:
                self.start(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            if self.streams.pop(ev.stream_id, None) is not None:
                self.active -= 1
        elif isinstance(ev, h2.events.WindowUpdated):
            self.window_open.set()
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.closed = True

    def start(self, sid):
        asyncio.ensure_future(self.answer(sid))

    def done(self, sid):
        if self.streams.pop(sid, None) is not None:
            self.active -= 1

    async def send_body(self, sid, body, end=True):
        view = memoryview(body)
        while view and not self.closed:
            try:
                window = min(self.h2.local_flow_control_window(sid),
                             self.h2.max_outbound_frame_size)
            except (h2.exceptions.StreamClosedError, KeyError):
                return False
            if window <= 0:
                self.window_open.clear()
                await self.window_open.wait()
                continue
            self.h2.send_data(sid, bytes(view[:window]))
            view = view[window:]
            self.flush()
            await self.w.drain()
        if end and not self.closed:
            self.h2.end_stream(sid)
            self.flush()
        return True

    def write_malformed(self, sid, kind):
        """Raw HEADERS (and DATA) for `sid`: literals without indexing, so the HPACK tables on
        both sides stay as they were; python-h2 never learns of them (the peer resets the
        stream, which it then hears)."""
        def literal(name, value):
            assert len(name) < 127 and len(value) < 127
            return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

        def frame(ftype, flags, payload):
            return (len(payload).to_bytes(3, "big") + bytes([ftype, flags]) +
                    sid.to_bytes(4, "big") + payload)

        fields = {"ctl": literal(b"x-bad", b"a\x01b"),
                  "upper": literal(b"X-Bad", b"a"),
                  "conn": literal(b"connection", b"close"),
                  "length": literal(b"content-length", b"10")}[kind]
        block = b"\x88" + fields  # :status 200 (static index 8)
        self.flush()
        if kind == "length":
            self.w.write(frame(0x1, 0x4, block) + frame(0x0, 0x1, b"abc"))
        else:
            self.w.write(frame(0x1, 0x5, block))

    async def answer(self, sid):
        st = self.streams.get(sid)
        if st is None:
            return
        hdrs = dict(st["headers"])
        path = hdrs.get(":path", "/")
        u = urllib.parse.urlsplit(path)
        q = dict(urllib.parse.parse_qsl(u.query))
        self.log.write(json.dumps({
            "conn": self.num, "stream": sid, "method": hdrs.get(":method"), "path": path,
            "authority": hdrs.get(":authority"), "scheme": hdrs.get(":scheme"),
            "headers": [[k, v] for k, v in st["headers"]], "trailers": [[k, v] for k, v in
                                                                         st["trailers"]],
            "body_len": len(st["body"])}) + "\n")
        self.log.flush()
        common = [("x-backend", self.args.name), ("x-conn", str(self.num)),
                  ("x-stream", str(sid))]
        try:
            if u.path == "/refuse":
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
            elif u.path == "/rst":
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            elif u.path == "/malformed":
                self.write_malformed(sid, q.get("kind", "ctl"))
            elif u.path == "/die":
                self.closed = True
                self.w.close()
                return
            elif u.path == "/rst-mid":
                self.h2.send_headers(sid, [(":status", "200"), ("content-length", "100")] + common)
                self.h2.send_data(sid, b"01234")
                self.flush()
                await asyncio.sleep(0.05)
                self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
            elif u.path == "/echo":
                ct = hdrs.get("content-type", "application/octet-stream")
                self.h2.send_headers(sid, [(":status", "200"), ("content-type", ct),
                                           ("content-length", str(len(st["body"])))] + common)
                await self.send_body(sid, st["body"])
            elif u.path == "/trailers":
                self.h2.send_headers(sid, [(":status", "200"), ("content-type", "text/plain")]
                                     + common)
                await self.send_body(sid, b"hello world", end=False)
                self.h2.send_headers(sid, [("grpc-status", "0"), ("x-checksum", "abc")],
                                     end_stream=True)
            elif u.path in ("/health", "/__health"):
                if u.path == "/__health":
                    HEALTH["status"] = int(q.get("status", "200"))
                self.h2.send_headers(sid, [(":status", str(HEALTH["status"])),
                                           ("content-length", "0")] + common, end_stream=True)
            elif u.path == "/__stats":
                body = json.dumps(STATS).encode()
                self.h2.send_headers(sid, [(":status", "200"),
                                           ("content-length", str(len(body)))] + common)
                await self.send_body(sid, body)
            else:
                if u.path == "/slow":
                    await asyncio.sleep(int(q.get("ms", "100")) / 1000)
                body = pattern(int(q["n"])) if u.path == "/size" else \
                    (self.args.name + "\n").encode()
                cc = [("cache-control", q["cc"])] if "cc" in q else []
                self.h2.send_headers(sid, [(":status", "200"), ("content-type", "text/plain"),
                                           ("content-length", str(len(body)))] + cc + common)
                await self.send_body(sid, body)
                if u.path == "/goaway":
                    self.h2.close_connection(last_stream_id=sid)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            pass
        self.flush()
        self.done(sid)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--name", default="h2")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--max-streams", type=int, default=0)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        ctx.set_alpn_protocols(["h2"])
    log = open(args.log, "a")

    async def handle(reader, writer):
        await Conn(reader, writer, args, log).run()

    server = await asyncio.start_server(handle, host, int(port), ssl=ctx)
    sock = server.sockets[0].getsockname()
    with open(args.ready_file + ".tmp", "w") as f:
        f.write(f"{sock[0]}:{sock[1]}\n")
    os.rename(args.ready_file + ".tmp", args.ready_file)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
