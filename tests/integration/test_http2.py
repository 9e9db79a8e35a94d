"""HTTP/2 to clients through the real binary (issue #14, part 2): h2c with prior knowledge and
h2 over TLS (ALPN), every stage on streams as on HTTP/1.1, RFC 9113's request rules, and the
defences (rapid reset, concurrent streams, header and body bounds, a client that never reads,
idle and shutdown GOAWAY). The client is python3-h2, driven frame by frame; curl --http2 and
h2load check interoperability with independent implementations."""

import collections
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness as h

try:
    import hpack
    from hyperframe.frame import (ContinuationFrame, DataFrame, HeadersFrame, PingFrame,
                                  SettingsFrame)
    import h2.config
    import h2.connection
    import h2.errors
    import h2.events
    import h2.exceptions
    import h2.settings
except ImportError:  # Debian's python3-h2; the suite says why it skips
    h2 = None

CURL = shutil.which("curl")
H2LOAD = shutil.which("h2load")


class H2Client:
    """One HTTP/2 connection: requests go out as frames, and read() collects what comes back
    per stream (response head, informational heads, data, end, reset) and for the connection
    (GOAWAY, the server's SETTINGS)."""

    def __init__(self, addr, tls_ctx=None, server_name="a.test", validate=True, ack_data=True,
                 timeout=10):
        raw = socket.create_connection(addr, timeout=timeout)
        self.sock = tls_ctx.wrap_socket(raw, server_hostname=server_name) if tls_ctx else raw
        if tls_ctx:
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=validate,
                                        normalize_outbound_headers=validate,
                                        validate_inbound_headers=True)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.flush()
        self.ack_data = ack_data
        self.streams = {}
        self.goaway = None
        self.closed = False
        self.server_settings = {}

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method="GET", path="/", authority="a.test", headers=(), body=None,
                end=True, scheme="http"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme), (":path", path)]
        if authority is not None:
            hdrs.append((":authority", authority))
        hdrs += list(headers)
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        self.streams[sid] = {"status": None, "headers": [], "info": [], "data": b"",
                             "ended": False, "reset": None}
        if body is not None:
            self.send_body(sid, body, end=end)
        self.flush()
        return sid

    def send_body(self, sid, body, end=True, timeout=20):
        # Within the peer's windows; read() lets WINDOW_UPDATEs in for the rest. Stops (raises)
        # when the connection closes or `timeout` passes.
        view = memoryview(body)
        deadline = time.monotonic() + timeout
        while view:
            if self.closed or time.monotonic() > deadline:
                raise ConnectionError(
                    f"body not sent: closed={self.closed}, goaway={self.goaway}, "
                    f"left={len(view)}, stream={self.streams.get(sid)}, "
                    f"windows={self.conn.local_flow_control_window(sid)}/"
                    f"{self.conn.outbound_flow_control_window}")
            if self.streams[sid]["reset"] is not None:
                raise h2.exceptions.StreamClosedError(sid)  # answered and reset by the peer
            window = min(self.conn.local_flow_control_window(sid),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.read_once(timeout=1)
                continue
            self.conn.send_data(sid, bytes(view[:window]))
            view = view[window:]
            self.flush()
        if end:
            self.conn.end_stream(sid)
            self.flush()

    def read_once(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.closed = True
            return False
        for ev in self.conn.receive_data(data):
            self._event(ev)
        self.flush()
        return True

    def _event(self, ev):
        st = self.streams.get(getattr(ev, "stream_id", None) or 0)
        if isinstance(ev, h2.events.ResponseReceived):
            st["headers"] = ev.headers
            st["status"] = int(dict(ev.headers)[":status"])
        elif isinstance(ev, h2.events.TrailersReceived):
            st["trailers"] = ev.headers
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            st["info"].append(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            st["data"] += ev.data
            if self.ack_data:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            st["ended"] = True
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st["reset"] = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.server_settings[k] = v.new_value

    def read_until(self, pred, timeout=10):
        deadline = time.monotonic() + timeout
        while not pred():
            if self.closed or time.monotonic() > deadline:
                return pred()
            self.read_once(timeout=max(0.05, min(1.0, deadline - time.monotonic())))
        return True

    def done(self, sid):
        st = self.streams[sid]
        return st["ended"] or st["reset"] is not None

    def response(self, sid, timeout=10):
        """The stream's outcome once it ended or was reset; AssertionError when it did neither
        within `timeout` (a response whose END_STREAM never comes is a failure)."""
        if not self.read_until(lambda: self.done(sid), timeout):
            raise AssertionError(f"stream {sid} neither ended nor was reset within {timeout}s: "
                                 f"{self.streams[sid]}")
        return self.streams[sid]

    def get(self, path, **kw):
        return self.response(self.request("GET", path, **kw))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def header(resp, name):
    return [v for k, v in resp["headers"] if k == name]


def h2c_config(origins, listeners_extra=None, **kw):
    c = h.proxy_config(origins, **kw)
    c.listeners[0]["h2c"] = True
    c.listeners += listeners_extra or []
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    return c


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class H2Basics(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        c = h2c_config([cls.o], limits={"body_bytes": "4MiB", "header_bytes": "8KiB"})
        c.routes[0]["trailers"] = ["grpc-status", "x-checksum", "x-sum"]
        c.add_route("app", path_prefix="/denied", deny=["127.0.0.0/8"])
        c.routes.insert(0, c.routes.pop())
        cls.t = cls.class_torii(c)
        cls.addr = cls.t.addr("http")

    def client(self, **kw):
        c = H2Client(self.addr, **kw)
        self.addCleanup(c.close)
        return c

    def test_get_over_h2c_and_http11_on_the_same_port(self):
        c = self.client()
        r = c.get("/hello?size=1000")
        self.assertEqual(r["status"], 200)
        self.assertEqual(len(r["data"]), 1000)
        self.assertEqual(header(r, "x-backend"), ["o1"])
        self.assertEqual(header(r, "content-length"), ["1000"])
        for k, _ in r["headers"]:
            self.assertEqual(k, k.lower())
            self.assertNotIn(k, ("connection", "keep-alive", "transfer-encoding"))
        # The same listener still serves HTTP/1.1.
        self.assertEqual(h.get(self.addr, "/plain").status, 200)
        lines = self.t.access_log_lines()
        self.assertTrue(any('"GET /hello?size=1000 HTTP/2.0" 200' in l for l in lines), lines)

    # The request ID is new in every response: it never enters the client's HPACK table (it
    # would only evict the entries the next response could use).
    def test_request_id_is_not_indexed(self):
        c = self.client()
        for path in ("/a", "/b"):
            r = c.get(path)
            self.assertIn("x-request-id", {f[0] for f in r["headers"]})
            names = {n for n, _ in c.conn.decoder.header_table.dynamic_entries}
            self.assertNotIn(b"x-request-id", names)

    # A connection idle past the spare-stream trim (1 s) has dropped its spare streams: it must
    # serve on exactly as before, with the header fields the client entered into its HPACK
    # table on the first request sent as table references afterwards.
    def test_connection_idle_past_the_trim_serves_on(self):
        c = self.client()
        token = "t" * 900
        first = c.get("/idle-1?size=3000", headers=[("x-token", token)])
        self.assertEqual(first["status"], 200)
        time.sleep(1.6)
        for i in range(2, 5):
            sids = [c.request("GET", f"/idle-{i}-{j}?size={3000 + j}", headers=[("x-token", token)])
                    for j in range(3)]
            for j, sid in enumerate(sids):
                r = c.response(sid)
                self.assertEqual(r["status"], 200, r)
                self.assertEqual(len(r["data"]), 3000 + j)
                self.assertEqual(header(r, "x-backend"), ["o1"])
            time.sleep(1.2)
        seen = {e["target"]: dict((k.lower(), v) for k, v in e["headers"])
                for e in self.o.log_entries() if e["target"].startswith("/idle-")}
        self.assertEqual(len(seen), 10, sorted(seen))
        for target, headers in seen.items():
            self.assertEqual(headers.get("x-token"), token, target)

    def test_many_streams_at_once_on_one_connection(self):
        c = self.client()
        sids = [c.request("GET", f"/m{i}?size={100 + i}") for i in range(50)]
        for i, sid in enumerate(sids):
            r = c.response(sid)
            self.assertEqual(r["status"], 200, r)
            self.assertEqual(len(r["data"]), 100 + i)
        targets = {e["target"] for e in self.o.log_entries()}
        for i in range(50):
            self.assertIn(f"/m{i}?size={100 + i}", targets)

    def test_chunked_backend_and_large_body(self):
        c = self.client()
        r = c.get("/c?size=300000&chunked=1")
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["data"], h.pattern_bytes(300000))
        self.assertEqual(header(r, "content-length"), [])
        r = c.get("/big?size=3000000")
        self.assertEqual(len(r["data"]), 3000000)

    def test_request_body_is_streamed_to_the_backend(self):
        c = self.client()
        body = os.urandom(2_000_000)
        sid = c.request("POST", "/echo", body=body)
        r = c.response(sid, timeout=20)
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["data"], body)
        # No Content-Length from the client: chunked to the HTTP/1.1 backend.
        e = [e for e in self.o.log_entries() if e["target"] == "/echo"][-1]
        self.assertEqual(h.header_of(e, "transfer-encoding"), ["chunked"])
        self.assertEqual(e["body_len"], len(body))

    def test_content_length_is_kept_and_checked(self):
        c = self.client()
        sid = c.request("POST", "/echo", headers=[("content-length", "5")], body=b"hello")
        r = c.response(sid)
        self.assertEqual((r["status"], r["data"]), (200, b"hello"))
        # DATA longer than Content-Length: a stream error, and the backend never gets a
        # complete request from it.
        c2 = self.client(validate=False)
        sid = c2.request("POST", "/cl-mismatch", headers=[("content-length", "3")], end=False)
        c2.conn.send_data(sid, b"too long body", end_stream=True)
        c2.flush()
        r = c2.response(sid)
        self.assertEqual(r["reset"], h2.errors.ErrorCodes.PROTOCOL_ERROR)
        done = [e for e in self.o.log_entries() if e["target"] == "/cl-mismatch" and
                e.get("body_len") == 13]
        self.assertEqual(done, [])

    def test_head_request(self):
        c = self.client()
        r = c.response(c.request("HEAD", "/h?size=1234"))
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["data"], b"")
        self.assertEqual(header(r, "content-length"), ["1234"])

    def test_cookie_crumbs_are_joined_and_authority_is_the_host(self):
        c = self.client()
        r = c.get("/cookies", authority="site.test:8443",
                  headers=[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")])
        self.assertEqual(r["status"], 200)
        e = [e for e in self.o.log_entries() if e["target"] == "/cookies"][-1]
        self.assertEqual(h.header_of(e, "cookie"), ["a=1; b=2; c=3"])
        self.assertEqual(h.header_of(e, "host"), ["site.test:8443"])

    def test_host_that_differs_from_authority_is_400(self):
        c = self.client(validate=False)
        r = c.get("/hd", authority="a.test", headers=[("host", "b.test")])
        self.assertEqual(r["status"], 400)

    def test_missing_authority_and_host_is_refused(self):
        # Neither :authority nor Host: malformed for nghttp2 (a stream error) before it reaches
        # the exchange, which would answer 400 "missing Host" as for HTTP/1.1.
        c = self.client(validate=False)
        r = c.get("/noauth", authority=None)
        self.assertTrue(r["status"] == 400 or r["reset"] == h2.errors.ErrorCodes.PROTOCOL_ERROR,
                        r)
        self.assertNotIn("/noauth", {e["target"] for e in self.o.log_entries()})
        self.assertEqual(c.get("/after-noauth")["status"], 200)

    def test_malformed_requests_are_stream_errors(self):
        # RFC 9113 §8.2.2 / §8.3: connection-specific fields, TE other than "trailers", a missing
        # :path, an uppercase name. Each resets its stream; the connection goes on.
        cases = [
            [(":method", "GET"), (":scheme", "http"), (":path", "/x1"), (":authority", "a"),
             ("connection", "keep-alive")],
            [(":method", "GET"), (":scheme", "http"), (":path", "/x2"), (":authority", "a"),
             ("te", "gzip")],
            [(":method", "GET"), (":scheme", "http"), (":authority", "a")],
            [(":method", "GET"), (":scheme", "http"), (":path", "/x4"), (":authority", "a"),
             ("X-Upper", "1")],
            [(":method", "GET"), (":scheme", "http"), (":path", "/x5"), (":authority", "a"),
             ("transfer-encoding", "chunked")],
            # Names that are no token (S17), a pseudo-field after a field, a second :path, a
            # :path that is not absolute, a value with a control character, a Content-Length
            # that is no number (S5).
            [(":method", "GET"), (":scheme", "http"), (":path", "/x6"), (":authority", "a"),
             ("x a", "1")],
            [(":method", "GET"), (":scheme", "http"), (":authority", "a"), ("x-a", "1"),
             (":path", "/x7")],
            [(":method", "GET"), (":scheme", "http"), (":path", "/x8"), (":path", "/x8b"),
             (":authority", "a")],
            [(":method", "GET"), (":scheme", "http"), (":path", "x9"), (":authority", "a")],
            [(":method", "GET"), (":scheme", "http"), (":path", "/x10"), (":authority", "a"),
             ("x-a", "a\x01b")],
            [(":method", "GET"), (":scheme", "http"), (":path", "/x11"), (":authority", "a"),
             ("content-length", "+0")],
        ]
        c = self.client(validate=False)
        for hdrs in cases:
            sid = c.conn.get_next_available_stream_id()
            c.streams[sid] = {"status": None, "headers": [], "info": [], "data": b"",
                              "ended": False, "reset": None}
            c.conn.send_headers(sid, hdrs, end_stream=True)
            c.flush()
            r = c.response(sid)
            self.assertEqual(r["reset"], h2.errors.ErrorCodes.PROTOCOL_ERROR, (hdrs, r))
        # TE: trailers is allowed, and the connection still works.
        r = c.get("/te", headers=[("te", "trailers")])
        self.assertEqual(r["status"], 200)
        targets = {e["target"] for e in self.o.log_entries()}
        for t in ("/x1", "/x2", "/x4", "/x5", "/x6", "/x7", "/x8", "/x8b", "x9", "/x10",
                  "/x11"):
            self.assertNotIn(t, targets)

    def test_header_list_over_the_limit_is_431(self):
        c = self.client()
        r = c.get("/big-head", headers=[("x-big", "v" * 9000)])
        self.assertEqual(r["status"], 431)
        self.assertEqual(c.get("/after")["status"], 200)
        # Refused before the exchange saw a head: the log still names the request.
        lines = self.t.access_log_lines()
        self.assertTrue(any('"GET /big-head HTTP/2.0" 431' in l for l in lines), lines[-3:])

    def test_header_count_over_the_limit_is_431(self):
        c = self.client()
        r = c.get("/many-fields", headers=[(f"x-f{i}", "v") for i in range(120)])
        self.assertEqual(r["status"], 431)
        self.assertEqual(c.get("/after-count")["status"], 200)

    def test_underscore_names_are_not_forwarded(self):
        # S18: a backend may read X_Real_IP as X-Real-IP; HTTP/2 requests lose such fields as
        # HTTP/1.1 ones do.
        c = self.client()
        r = c.get("/underscore", headers=[("x_real_ip", "6.6.6.6"), ("x-ok", "1")])
        self.assertEqual(r["status"], 200)
        seen = [dict((k.lower(), v) for k, v in e["headers"]) for e in self.o.log_entries()
                if e["target"] == "/underscore"]
        self.assertEqual(len(seen), 1)
        self.assertNotIn("x_real_ip", seen[0])
        self.assertEqual(seen[0].get("x-ok"), "1")

    def test_body_over_the_limit_is_413(self):
        c = self.client()
        r = c.response(c.request("POST", "/too-big", headers=[("content-length", "5000000")],
                                 end=False))
        self.assertEqual(r["status"], 413)
        c2 = self.client()
        sid = c2.request("POST", "/too-big-2", end=False)
        try:
            c2.send_body(sid, b"x" * 4_500_000)
        except h2.exceptions.StreamClosedError:
            pass  # torii answered and reset the stream before the client was done
        r = c2.response(sid)
        self.assertEqual(r["status"], 413)
        self.assertEqual(r["data"], b"413 Content Too Large\n")
        # The connection lives on (the client's resets of a stream already answered are not
        # counted as rapid reset).
        self.assertEqual(c2.get("/after-413")["status"], 200, (c2.goaway, c2.closed))

    def test_trailers_both_ways(self):
        c = self.client()
        r = c.get("/trailers")
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["data"], b"hello world")
        self.assertTrue(r["ended"])
        # The backend's chunked trailers arrive as trailing HEADERS, lowercase, the ones that
        # belong in a head left out.
        self.assertEqual(r.get("trailers"), [("grpc-status", "0"), ("x-checksum", "abc")])
        self.assertEqual(header(r, "content-type"), ["text/plain"])
        # The client's trailing HEADERS reach the backend as the last chunk's trailer fields.
        sid = c.request("POST", "/echo", end=False)
        c.send_body(sid, b"hello", end=False)
        c.conn.send_headers(sid, [("x-sum", "42"), ("authorization", "Basic eA==")],
                            end_stream=True)
        c.flush()
        r = c.response(sid)
        self.assertEqual(r["status"], 200)
        self.assertEqual(r["data"], b"hello")
        e = self.o.log_entries()[-1]
        self.assertEqual(e["trailers"], [["x-sum", "42"]])
        self.assertEqual(h.header_of(e, "Transfer-Encoding"), ["chunked"])

    def test_forbidden_trailers_reset_the_stream(self):
        # C7: trailers that carry a connection-specific field or a pseudo-field make the request
        # malformed: its stream is reset (PROTOCOL_ERROR), the connection goes on.
        c = self.client(validate=False)
        for trailer in ([("transfer-encoding", "chunked")], [(":path", "/other")]):
            sid = c.request("POST", "/echo-bad-trailer", end=False)
            c.send_body(sid, b"hello", end=False)
            c.conn.send_headers(sid, trailer, end_stream=True)
            c.flush()
            r = c.response(sid)
            self.assertEqual(r["reset"], h2.errors.ErrorCodes.PROTOCOL_ERROR, (trailer, r))
        self.assertEqual(c.get("/after-bad-trailers")["status"], 200)

    def test_access_list_on_a_stream(self):
        c = self.client()
        r = c.get("/denied/x")
        self.assertEqual(r["status"], 403)
        # torii's own page, whole (its first byte was once lost to the head's truncation).
        self.assertEqual(r["data"], b"403 Forbidden\n")
        self.assertEqual(header(r, "content-length"), [str(len(r["data"]))])
        self.assertEqual(c.get("/ok")["status"], 200)

    def test_interim_103_is_forwarded(self):
        c = self.client()
        r = c.get("/103-then-200")
        self.assertEqual(r["status"], 200)
        self.assertEqual([dict(i)[":status"] for i in r["info"]], ["103"])

    def test_backend_dying_mid_body_resets_the_stream(self):
        c = self.client()
        r = c.get("/die-mid")
        self.assertIsNotNone(r["reset"])
        self.assertEqual(c.get("/after-die")["status"], 200)

    def test_metrics_count_http2(self):
        c = self.client()
        c.get("/metric-probe")
        text = h.get(self.t.addr("admin"), "/metrics").body.decode()
        streams = [l for l in text.splitlines() if l.startswith("torii_http2_streams_total ")]
        self.assertTrue(streams and int(streams[0].split()[1]) >= 1, streams)
        conns = [l for l in text.splitlines() if l.startswith("torii_http2_connections_total ")]
        self.assertTrue(conns and int(conns[0].split()[1]) >= 1, conns)

    @unittest.skipIf(CURL is None, "curl is not installed")
    def test_curl_prior_knowledge(self):
        out = subprocess.run([CURL, "-s", "--http2-prior-knowledge", "-o", "-", "-w",
                              "\n%{http_version} %{http_code}",
                              f"http://{self.addr[0]}:{self.addr[1]}/curl?size=10"],
                             capture_output=True, timeout=10, check=True).stdout
        self.assertTrue(out.endswith(b"\n2 200"), out)


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class H2Stages(h.ToriiCase):
    """Rate limits, the cache and compression on HTTP/2 streams (one copy of each stage)."""

    def test_rate_limit_429_on_a_stream(self):
        o = self.origin("o1")
        c = h2c_config([o])
        c.tables["rate_limit.r"] = {"rate": "1/m", "burst": 1}
        c.routes[0]["rate_limit"] = "r"
        t = self.torii(c)
        cl = H2Client(t.addr("http"))
        self.addCleanup(cl.close)
        statuses = [cl.get(f"/r{i}")["status"] for i in range(4)]
        self.assertEqual(statuses, [200, 200, 429, 429])
        r = cl.get("/r-last")
        self.assertEqual(r["status"], 429)
        self.assertGreaterEqual(int(header(r, "retry-after")[0]), 1)
        self.assertTrue(header(r, "ratelimit-policy"))
        self.assertEqual(len([e for e in o.log_entries() if e["target"].startswith("/r")]), 2)

    def test_disk_tier_hits_on_concurrent_streams(self):
        # Each stream that misses in memory waits for its own read from the disk tier while the
        # others go on; every one is answered with the stored bytes.
        o = self.origin("o1")
        c = h2c_config([o])
        c.tables["cache.main"] = {"memory": "1MiB", "max_object": "256KiB",
                                  "disk": {"path": os.path.join(self.tmpdir(), "cache.disk"),
                                           "size": "16MiB"}}
        c.routes[0]["cache"] = "main"
        t = self.torii(c)
        cl = H2Client(t.addr("http"))
        self.addCleanup(cl.close)
        paths = [f"/h2disk{i}?size=65536&cc=max-age%3D600" for i in range(32)]
        bodies = {}
        for p in paths:
            r = cl.get(p)
            self.assertEqual(r["status"], 200)
            bodies[p] = r["data"]
        deadline = time.monotonic() + 20 * h.SLOW
        while time.monotonic() < deadline:
            m = h.get(t.addr("admin"), "/metrics").body.decode()
            if f'torii_cache_disk_writes_total{{cache="main",outcome="ok"}} {len(paths)}' in m:
                break
            time.sleep(0.05)
        before = len(o.log_entries())
        sids = {cl.request("GET", p): p for p in paths}
        statuses = []
        for sid, p in sids.items():
            r = cl.response(sid)
            self.assertEqual(r["status"], 200)
            self.assertEqual(r["data"], bodies[p], p)
            statuses.append(header(r, "cache-status")[0])
        self.assertIn("torii; hit; detail=disk", statuses)
        self.assertEqual(len(o.log_entries()), before, "a stream went to the origin")

    def test_cache_hit_and_gzip_on_streams(self):
        o = self.origin("o1")
        c = h2c_config([o])
        c.tables["cache.main"] = {"memory": "16MiB", "max_object": "1MiB"}
        c.tables["compression"] = {"algorithms": ["gzip"], "types": ["text/*"]}
        c.routes[0]["cache"] = "main"
        c.routes[0]["compress"] = True
        t = self.torii(c)
        cl = H2Client(t.addr("http"))
        self.addCleanup(cl.close)
        path = "/cached?size=5000&text=1&cc=max-age%3D60&ct=text/plain"
        first = cl.get(path, headers=[("accept-encoding", "gzip")])
        self.assertEqual(first["status"], 200)
        self.assertEqual(header(first, "content-encoding"), ["gzip"])
        second = cl.get(path, headers=[("accept-encoding", "gzip")])
        self.assertEqual(second["status"], 200)
        self.assertIn("hit", header(second, "cache-status")[0])
        import gzip
        self.assertEqual(gzip.decompress(second["data"]), gzip.decompress(first["data"]))
        self.assertEqual(len([e for e in o.log_entries() if e["target"] == path]), 1)


    def test_purge_coalescing_and_server_timing_on_streams(self):
        o = self.origin("o1")
        c = h2c_config([o])
        c.tables["cache.main"] = {"memory": "16MiB", "max_object": "1MiB",
                                  "purge_allow": ["127.0.0.1"]}
        c.routes[0]["cache"] = "main"
        c.routes[0]["server_timing"] = True
        t = self.torii(c)
        cl = H2Client(t.addr("http"))
        self.addCleanup(cl.close)
        # Ten streams for the same slow, cacheable URL at once: one fetch, nine wait for it.
        path = "/co?delay=300&size=50&cc=max-age%3D60"
        sids = [cl.request("GET", path) for _ in range(10)]
        rs = [cl.response(s) for s in sids]
        self.assertEqual([r["status"] for r in rs], [200] * 10)
        self.assertEqual(len([e for e in o.log_entries() if e["target"] == path]), 1)
        self.assertTrue(any("collapsed" in header(r, "cache-status")[0] for r in rs))
        # Server-Timing on a response the backend gave.
        r = cl.get("/st?size=5")
        self.assertTrue(header(r, "server-timing")[0].startswith("head;dur="), r["headers"])
        # PURGE on a stream: the next GET goes to the origin again.
        self.assertEqual(cl.get(path)["status"], 200)
        self.assertEqual(cl.response(cl.request("PURGE", path))["status"], 200)
        self.assertEqual(cl.get(path)["status"], 200)
        self.assertEqual(len([e for e in o.log_entries() if e["target"] == path]), 2)


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class H2Reload(h.ToriiCase):
    def test_reload_applies_to_new_streams_and_spares_the_one_in_flight(self):
        o1, o2 = self.origin("o1"), self.origin("o2")
        c = h2c_config([o1])
        c.add_pool("two", [o2])
        t = self.torii(c)
        cl = H2Client(t.addr("http"))
        self.addCleanup(cl.close)
        self.assertEqual(header(cl.get("/before"), "x-backend"), ["o1"])
        slow = cl.request("GET", "/slow?delay=800&size=10")
        h.wait_for(lambda: any(e["target"].startswith("/slow") for e in o1.log_entries()), 5,
                   what="the slow request at o1")
        c.routes[0]["pool"] = "two"
        with open(t.config_path, "w") as f:
            f.write(c.render(t.ready_file, t.access_log_path, t.error_log_path))
        before = t.error_log().count("SIGHUP: reloaded")
        t.proc.send_signal(signal.SIGHUP)
        h.wait_for(lambda: t.error_log().count("SIGHUP: reloaded") > before, 10,
                   what="the reload")
        # The stream in flight finishes where it started; the next stream on the same
        # connection runs on the new config.
        r = cl.response(slow)
        self.assertEqual((r["status"], header(r, "x-backend")), (200, ["o1"]))
        self.assertEqual(header(cl.get("/after"), "x-backend"), ["o2"])


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class H2Defences(h.ToriiCase):
    def test_rapid_reset_gets_goaway_enhance_your_calm(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o]))
        c = H2Client(t.addr("http"))
        self.addCleanup(c.close)
        for i in range(1000):
            sid = c.conn.get_next_available_stream_id()
            c.streams[sid] = {"status": None, "headers": [], "info": [], "data": b"",
                              "ended": False, "reset": None}
            c.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"),
                                      (":path", f"/rr{i}"), (":authority", "a")],
                                end_stream=True)
            c.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            if i % 50 == 49:
                try:
                    c.flush()
                except OSError:
                    break
                if c.goaway:
                    break
        try:
            c.flush()
        except OSError:
            pass
        c.read_until(lambda: c.goaway is not None, timeout=10)
        self.assertIsNotNone(c.goaway)
        self.assertEqual(c.goaway[0], h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)
        # The backend saw bounded work, and torii serves others.
        time.sleep(0.3)
        self.assertLess(len(o.log_entries()), 600)
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    def test_provoked_stream_errors_count_as_rapid_reset(self):
        # A request torii starts on, then a frame its stream may not carry (DATA after the
        # client's END_STREAM): torii resets the stream (STREAM_CLOSED) and drops the exchange,
        # a cancellation as cheap for the client as RST_STREAM, and counted as one.
        o = self.origin("o1")
        t = self.torii(h2c_config([o]))
        sock = self._raw_h2(t.addr("http"))
        enc = hpack.Encoder()
        sent, closed = 0, False
        for batch in range(20):
            frames = b""
            for i in range(50):
                sid = 1 + 2 * (batch * 50 + i)
                block = enc.encode([(":method", "GET"), (":scheme", "http"),
                                    (":path", f"/se{sid}?delay=200"), (":authority", "a")])
                frames += HeadersFrame(sid, data=block, flags=["END_HEADERS", "END_STREAM"]) \
                    .serialize() + DataFrame(sid, data=b"x").serialize()
            try:
                sock.sendall(frames)
                sent += 50
            except OSError:
                closed = True
                break
        data, closed_now = self._read_until_closed(sock, timeout=10)
        self.assertTrue(closed or closed_now, f"still open after {sent} provoked resets")
        self.assertIn(0xB, self._goaway_codes(data))  # ENHANCE_YOUR_CALM
        time.sleep(0.5)
        self.assertLess(len([e for e in o.log_entries() if e["target"].startswith("/se")]), 600)
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    def test_client_that_sends_and_never_reads_is_bounded(self):
        # Bodiless answers (204s torii makes itself: each closes its stream at once) asked for
        # as fast as the client can write, never read: once 64 KiB of answers wait behind a
        # full connection torii takes no more of what it received and reads no more (what the
        # client sent waits in the kernel's buffers), and does not grow. Each answer carries
        # 4 KiB of header: what it serves is what the kernel's send buffer (tcp_wmem's most)
        # and torii's own bounds (256 KiB queued, 64 KiB held) hold, not what the client sent.
        o = self.origin("o1")
        c = h2c_config([o])
        c.routes.insert(0, {"path_prefix": "/nb", "return": {"status": 204},
                            "add_headers": {"X-Pad": "p" * 4096}})
        t = self.torii(c)
        sock = socket.create_connection(t.addr("http"), timeout=5)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize() +
                     SettingsFrame(0, flags=["ACK"]).serialize())
        before = t.rss_kib()
        enc = hpack.Encoder()
        sock.settimeout(0.5)
        sid = 1
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sid < 160000:
            frames = b""
            for _ in range(100):
                block = enc.encode([(":method", "GET"), (":scheme", "http"),
                                    (":path", "/nb"), (":authority", "a"),
                                    ("x-n", str(sid))])
                frames += HeadersFrame(sid, data=block,
                                       flags=["END_HEADERS", "END_STREAM"]).serialize()
                sid += 2
            try:
                sock.sendall(frames)
            except (socket.timeout, TimeoutError, OSError):
                break  # the kernel's buffers are full
        # What torii serves until it stops reading (it stops growing: the count holds for a
        # second), bounded in time.
        served, deadline = -1, time.monotonic() + 15 * h.SLOW
        while time.monotonic() < deadline:
            time.sleep(1)
            now = len(t.access_log_lines())
            if now == served:
                break
            served = now
        with open("/proc/sys/net/ipv4/tcp_wmem") as f:
            wmem_max = int(f.read().split()[2])
        bound = (wmem_max + 2 * 1024 * 1024) // 4096
        self.assertLess(served, bound, f"{sid // 2} requests sent")
        if not h.sanitize_on():  # (AddressSanitizer's quarantine keeps what torii freed)
            self.assertLess(t.rss_kib() - before, 40 * 1024, f"{sid // 2} requests sent")
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    def test_concurrent_streams_are_bounded(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o], limits={"max_concurrent_streams": 4}))
        c = H2Client(t.addr("http"))
        self.addCleanup(c.close)
        c.read_until(lambda: h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS in
                     c.server_settings, timeout=5)
        self.assertEqual(c.server_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS], 4)
        # A client that opens more streams than it was allowed (h2 itself would not: the limit
        # it learned is lifted on the client side) breaks the protocol: nghttp2 ends the
        # connection (GOAWAY PROTOCOL_ERROR, RFC 9113 §5.1.2), and the backend sees at most the
        # allowed number of requests.
        c.conn.remote_settings._settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = \
            collections.deque([100])
        for i in range(6):
            c.request("GET", f"/slow{i}?delay=500")
        self.assertTrue(c.read_until(lambda: c.goaway is not None, timeout=5))
        self.assertEqual(c.goaway[0], h2.errors.ErrorCodes.PROTOCOL_ERROR)
        time.sleep(0.7)
        self.assertLessEqual(len([e for e in o.log_entries() if e["target"].startswith("/slow")]),
                             4)
        # Within the limit, streams run at once: all four reach the backend while none has been
        # answered (each answer waits 3 s there), which one stream after another could not do.
        c2 = H2Client(t.addr("http"))
        self.addCleanup(c2.close)
        sids = [c2.request("GET", f"/ok{i}?delay=3000") for i in range(4)]
        h.wait_for(lambda: len([e for e in o.log_entries() if e["target"].startswith("/ok")])
                   == 4, 10 * h.SLOW, interval=0.02, what="four streams at the backend")
        c2.read_until(lambda: False, timeout=0.2)  # whatever frames came meanwhile
        self.assertEqual([c2.streams[s]["status"] for s in sids], [None] * 4,
                         "an answer came before all four streams were at the backend")
        self.assertEqual([c2.response(s)["status"] for s in sids], [200] * 4)

    def test_client_that_never_reads_is_bounded_and_cut(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o], limits={"send_timeout": "1s"}))
        c = H2Client(t.addr("http"), ack_data=False)
        self.addCleanup(c.close)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        before = t.rss_kib()
        sids = [c.request("GET", f"/huge{i}?size=20000000") for i in range(4)]
        time.sleep(2.5)
        grown = t.rss_kib() - before
        self.assertLess(grown, 40 * 1024, f"torii grew {grown} KiB for a client not reading")
        # send_timeout: the streams were given up (their log lines say so).
        lines = t.access_log_lines(wait_for_count=4, timeout=5)
        self.assertTrue(sum("send timeout" in l for l in lines) >= 1, lines)
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    def test_idle_connection_gets_goaway(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o], limits={"idle_timeout": "1s"}))
        c = H2Client(t.addr("http"))
        self.addCleanup(c.close)
        self.assertEqual(c.get("/x")["status"], 200)
        self.assertTrue(c.read_until(lambda: c.goaway is not None, timeout=5))
        self.assertEqual(c.goaway[0], h2.errors.ErrorCodes.NO_ERROR)
        self.assertTrue(c.read_until(lambda: c.closed, timeout=5))

    def _raw_h2(self, addr):
        """A socket that has sent the preface and an empty SETTINGS (frames go raw after)."""
        sock = socket.create_connection(addr, timeout=5)
        self.addCleanup(sock.close)
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
        return sock

    def _read_until_closed(self, sock, timeout=5):
        """Everything the server sends until it closes (or `timeout`); and whether it closed."""
        data, deadline = b"", time.monotonic() + timeout
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return data, True
            if not chunk:
                return data, True
            data += chunk
        return data, False

    @staticmethod
    def _goaway_codes(data):
        """The error codes of the GOAWAY frames in raw server bytes (after its SETTINGS)."""
        codes, pos = [], 0
        while pos + 9 <= len(data):
            length = int.from_bytes(data[pos:pos + 3], "big")
            ftype = data[pos + 3]
            if ftype == 7 and pos + 9 + 8 <= len(data):
                codes.append(int.from_bytes(data[pos + 13:pos + 17], "big"))
            pos += 9 + length
        return codes

    @staticmethod
    def _frames(data):
        """(type, flags, stream, payload) of each complete frame in raw server bytes."""
        out, pos = [], 0
        while pos + 9 <= len(data):
            length = int.from_bytes(data[pos:pos + 3], "big")
            if pos + 9 + length > len(data):
                break
            stream = int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            out.append((data[pos + 3], data[pos + 4], stream, data[pos + 9:pos + 9 + length]))
            pos += 9 + length
        return out

    def test_hpack_bomb_is_bounded_by_header_bytes(self):
        # One large field indexed once, then referenced a thousand times: a few KiB on the wire,
        # 4 MB decoded. The header list bound answers 431 and torii does not grow.
        o = self.origin("o1")
        t = self.torii(h2c_config([o], limits={"header_bytes": "16KiB"}))
        before = t.rss_kib()
        sock = self._raw_h2(t.addr("http"))
        fields = [(":method", "GET"), (":scheme", "http"), (":path", "/bomb"),
                  (":authority", "a")] + [("x-bomb", "v" * 4000)] * 1000
        block = hpack.Encoder().encode(fields)
        self.assertLess(len(block), 16384)
        sock.sendall(HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"])
                     .serialize())
        data, deadline = b"", time.monotonic() + 5
        heads = []
        while not heads and time.monotonic() < deadline:
            try:
                data += sock.recv(65536)
            except (socket.timeout, TimeoutError):
                pass
            heads = [f for f in self._frames(data) if f[0] == 1 and f[2] == 1]
        self.assertTrue(heads, data)
        status = dict(hpack.Decoder().decode(heads[0][3]))[":status"]
        self.assertEqual(status, "431")
        self.assertLess(t.rss_kib() - before, 8 * 1024)
        self.assertNotIn("/bomb", {e["target"] for e in o.log_entries()})

    def test_broken_header_compression_ends_the_connection(self):
        # Blocks HPACK cannot decode (RFC 9113 §4.3: COMPRESSION_ERROR, the connection's end),
        # whole or spread over CONTINUATION frames: GOAWAY COMPRESSION_ERROR, no request reaches
        # the backend, and torii serves the next client.
        o = self.origin("o1")
        t = self.torii(h2c_config([o]))
        good = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                       (":path", "/hp"), (":authority", "a")])
        broken = {
            "index 0": b"\x80",
            "index past the tables": b"\xbf\x01",
            "Huffman EOS": b"\x00\x84\xff\xff\xff\xff\x01a",
            "table size above 4096": b"\x3f\xe2\x1f",
            "string past the block": b"\x00\x05ab",
        }
        for what, bad in broken.items():
            for split in (False, True):
                sock = self._raw_h2(t.addr("http"))
                if split:
                    frames = (HeadersFrame(1, data=good, flags=["END_STREAM"]).serialize() +
                              ContinuationFrame(1, data=bad, flags=["END_HEADERS"]).serialize())
                else:
                    frames = HeadersFrame(1, data=good + bad,
                                          flags=["END_HEADERS", "END_STREAM"]).serialize()
                sock.sendall(frames)
                data, closed = self._read_until_closed(sock, timeout=5)
                self.assertTrue(closed, what)
                self.assertIn(9, self._goaway_codes(data), what)  # COMPRESSION_ERROR
                sock.close()
        self.assertNotIn("/hp", {e["target"] for e in o.log_entries()})
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    def test_continuation_flood_ends_the_connection(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o]))
        sock = self._raw_h2(t.addr("http"))
        block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                        (":path", "/cont"), (":authority", "a")])
        frames = HeadersFrame(1, data=block, flags=["END_STREAM"]).serialize()
        filler = hpack.Encoder().encode([("x-a", "b")])
        for _ in range(200):
            frames += ContinuationFrame(1, data=filler).serialize()
        try:
            sock.sendall(frames)
        except OSError:
            pass
        data, closed = self._read_until_closed(sock)
        self.assertTrue(closed, "connection still open after 200 CONTINUATION frames")
        self.assertNotIn("/cont", {e["target"] for e in o.log_entries()})
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    def test_unfinished_header_block_meets_header_timeout(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o], limits={"header_timeout": "1s"}))
        sock = self._raw_h2(t.addr("http"))
        block = hpack.Encoder().encode([(":method", "GET"), (":scheme", "http"),
                                        (":path", "/slowhead"), (":authority", "a")])
        sock.sendall(HeadersFrame(1, data=block, flags=["END_STREAM"]).serialize())
        start = time.monotonic()
        data, closed = self._read_until_closed(sock, timeout=5)
        self.assertTrue(closed)
        self.assertGreater(time.monotonic() - start, 0.8)
        self.assertIn(1, self._goaway_codes(data))  # PROTOCOL_ERROR

    def test_ping_flood_from_a_client_that_does_not_read(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o]))
        sock = socket.create_connection(t.addr("http"), timeout=5)
        self.addCleanup(sock.close)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        before = t.rss_kib()
        pings = b"".join(PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize()
                         for i in range(2000))
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SettingsFrame(0).serialize())
        closed = False
        sock.settimeout(0.5)
        for _ in range(40):
            try:
                sock.sendall(pings)
            except (OSError, socket.timeout):
                closed = True
                break
        if not closed:
            # Still open: torii must at least not have buffered the answers.
            self.assertLess(t.rss_kib() - before, 16 * 1024)
        h.wait_for(lambda: h.fd_count(t.pid) <= 12, 10, what="the flooding connection closed")
        self.assertLess(t.rss_kib() - before, 16 * 1024)
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    def test_garbage_after_the_preface_closes(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o]))
        data, closed = h.raw(t.addr("http"), b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 64,
                             timeout=5)
        self.assertTrue(closed)
        self.assertEqual(h.get(t.addr("http"), "/alive").status, 200)

    @unittest.skipIf(CURL is None, "curl is not installed")
    def test_shutdown_sends_goaway_and_finishes_streams_in_flight(self):
        o = self.origin("o1")
        t = self.torii(h2c_config([o]))
        c = H2Client(t.addr("http"))
        self.addCleanup(c.close)
        self.assertEqual(c.get("/before")["status"], 200)
        # A stream in flight when the shutdown begins (curl: python3-h2 drops a connection's
        # streams once it sees GOAWAY).
        slow = subprocess.Popen(
            [CURL, "-s", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_code}",
             f"http://{t.addr('http')[0]}:{t.addr('http')[1]}/slow?delay=800&size=100"],
            stdout=subprocess.PIPE)
        self.addCleanup(lambda: slow.poll() is None and slow.kill())
        h.wait_for(lambda: any(e["target"].startswith("/slow") for e in o.log_entries()), 5,
                   what="the slow request at the origin")
        t.proc.send_signal(15)
        self.assertTrue(c.read_until(lambda: c.goaway is not None, timeout=5))
        self.assertEqual(c.goaway, (h2.errors.ErrorCodes.NO_ERROR, 1))
        out, _ = slow.communicate(timeout=10)
        self.assertEqual(out, h.pattern_bytes(100) + b"\n200")
        t.stop()


@unittest.skipIf(h2 is None, "python3-h2 is not installed")
class H2OverTls(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        import test_tls
        if test_tls.OPENSSL is None:
            raise unittest.SkipTest("openssl is not installed")
        cls.pki = test_tls.Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        leaf = cls.pki.leaf("a", ["a.test"])
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(test_tls.tls_config(cls.o, cls.pki, [leaf],
                                                    tls_extra={"alpn": ["h2", "http/1.1"]}))
        cls.addr = cls.t.addr("https")

    def ctx(self, alpn):
        ctx = ssl.create_default_context(cafile=self.pki.path("ca.crt"))
        ctx.set_alpn_protocols(alpn)
        return ctx

    def test_alpn_h2_and_http11_fallback(self):
        c = H2Client(self.addr, tls_ctx=self.ctx(["h2", "http/1.1"]))
        self.addCleanup(c.close)
        r = c.get("/tls?size=50000")
        self.assertEqual((r["status"], len(r["data"])), (200, 50000))
        e = [e for e in self.o.log_entries() if e["target"] == "/tls?size=50000"][-1]
        self.assertEqual(h.header_of(e, "x-forwarded-proto"), ["https"])
        # A client offering only http/1.1 still gets HTTP/1.1.
        s = socket.create_connection(self.addr, timeout=5)
        s = self.ctx(["http/1.1"]).wrap_socket(s, server_hostname="a.test")
        self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
        s.sendall(b"GET /h1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 200"))
        s.close()

    @unittest.skipIf(CURL is None, "curl is not installed")
    def test_curl_http2_over_tls(self):
        out = subprocess.run(
            [CURL, "-s", "--http2", "--cacert", self.pki.path("ca.crt"), "--resolve",
             f"a.test:{self.addr[1]}:{self.addr[0]}", "-o", "/dev/null", "-w",
             "%{http_version} %{http_code} %{size_download}",
             f"https://a.test:{self.addr[1]}/c?size=70000"],
            capture_output=True, timeout=10, check=True).stdout
        self.assertEqual(out, b"2 200 70000")

    @unittest.skipIf(H2LOAD is None, "h2load is not installed")
    def test_h2load_many_streams(self):
        out = subprocess.run(
            [H2LOAD, "-n", "400", "-c", "4", "-m", "10",
             f"https://{self.addr[0]}:{self.addr[1]}/l?size=2000"],
            capture_output=True, timeout=60, text=True).stdout
        self.assertIn("400 succeeded, 0 failed", out, out)
        self.assertIn("400 2xx", out, out)

if __name__ == "__main__":
    unittest.main()
