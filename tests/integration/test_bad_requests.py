"""Hostile and malformed client input (BAD-INPUTS.md S1-S19, C1-C7, R1-R12, P1-P6, D1, D4, D8).

Each row sends exact bytes with raw() and asserts three things: the status torii answers, whether
it closes the connection, and what reached the origin (never `/smuggled`; usually nothing at
all). The rows whose verdict is just that are data (RAW_ROWS, walked by RawRows); the others are
methods that check more. One torii and its origins serve each class (starting them per row would
dominate the run time); tearDown checks that torii is still alive and that no origin ever saw
/smuggled, and the class cleanup stops torii with the sanitizer check.
"""

import socket
import time
import unittest

import harness as h
from harness import SMUGGLED as SM

BODY_LIMIT = 1024 * 1024  # limits.body_bytes below


def post(headers, body=b"", target="/", version="1.1", host=b"a.test"):
    """A POST with raw header lines (bytes, CRLF added) and a raw body."""
    lines = [f"POST {target} HTTP/{version}".encode()]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += headers
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def get(headers=(), target="/", version="1.1", host=b"a.test"):
    if isinstance(target, str):
        target = target.encode("latin-1")
    lines = [b"GET " + target + f" HTTP/{version}".encode()]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += list(headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def late_bytes_after_final_response(addr, request, extra=SM, pause=1.0):
    """Sends `request` on a connection with a small receive buffer and reads nothing for
    `pause` s: a response of a few MB then sits in torii's output queue after the exchange has
    finished. `extra` arrives in that window, before the flush; then everything is read to EOF.
    Returns (final responses, raw bytes)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    s.settimeout(5)
    s.connect(addr)
    try:
        s.sendall(request)
        time.sleep(pause)
        try:
            s.sendall(extra)
        except OSError:
            pass
        time.sleep(0.3)
        data, _ = h.read_until_eof(s, 5 * h.SLOW)
    finally:
        s.close()
    return h.finals(h.parse_responses(data)), data


# Response sizes that straddle what loopback socket buffers plus torii's output queue hold, so
# that for one of them the exchange ends while bytes are still queued (the window under test).
LATE_SIZES = (3000000, 3500000, 4000000)


class BadRequestBase(h.ToriiCase):
    """One torii for the class: pool "app" (o1) as the catch-all, pool "other" (o2) for Host
    other.test, pool "capture" (a raw byte recorder) for Host capture.test."""

    limits = {"body_bytes": "1MiB"}

    @classmethod
    def setUpClass(cls):
        cls.o1 = cls.class_origin("o1")
        cls.o2 = cls.class_origin("o2")
        cls.cap = h.CaptureBackend()
        cls.addClassCleanup(cls.cap.cleanup)
        cfg = h.proxy_config([cls.o1], limits=cls.limits,
                             pools={"other": [cls.o2], "capture": [cls.cap.address]},
                             routes=[{"host": "other.test", "pool": "other"},
                                     {"host": "capture.test", "pool": "capture"},
                                     {"host": "*", "path_prefix": "/", "pool": "app"}])
        cls.t = cls.class_torii(cfg)
        cls.addr = cls.t.addr()

    def setUp(self):
        self.log_marks = {o.name: len(o.log_bytes()) for o in (self.o1, self.o2)}
        self.cap_mark = len(self.cap.requests)

    def tearDown(self):
        # Only this test's traffic, so one failure does not cascade into the next tests.
        self.t.check_alive()
        for o in (self.o1, self.o2):
            self.assertNotIn(b"/smuggled", o.log_bytes()[self.log_marks[o.name]:],
                             f"/smuggled reached origin {o.name}")
        for r in self.cap.requests[self.cap_mark:]:
            self.assertNotIn(b"/smuggled", r)

    def origin_count(self):
        return len(self.o1.log_entries()) + len(self.o2.log_entries()) + len(self.cap.requests)

    def expect(self, payload, status, closed=True, forwarded=0, timeout=None, chunks=None,
               gap=0.0):
        """Sends `payload`; asserts the one final response's status (an int or a tuple of
        allowed ones), the connection handling (closed True/False/None = don't care) and how
        many requests reached any origin (None = don't care). Returns the responses."""
        before = self.origin_count()
        if timeout is None:
            timeout = 3 * h.SLOW if closed else 0.7
        data, was_closed = h.raw(self.addr, payload, timeout=timeout, chunks=chunks, gap=gap)
        rs = h.finals(h.parse_responses(data))
        allowed = status if isinstance(status, tuple) else (status,)
        self.assertEqual(len(rs), 1, f"expected one response, got {data[:400]!r}")
        self.assertIn(rs[0].status, allowed, f"response: {data[:400]!r}")
        if closed is not None:
            self.assertEqual(was_closed, closed,
                             "connection should be closed" if closed else "connection closed")
        if closed and rs[0].status >= 400:
            self.assertEqual(rs[0].header("Connection", "").lower(), "close",
                             "an error that closes says Connection: close")
        if forwarded is not None:
            # A forwarded request is logged before the origin answers, so it is in the log by
            # the time the response arrived; a wrongly forwarded one shows up here too.
            self.assertEqual(self.origin_count() - before, forwarded, "requests at the origin")
        return rs


def chunked(body, target="/", extra=()):
    return post([b"Transfer-Encoding: chunked"] + list(extra), body, target=target)


# The catalogue's `raw` rows whose verdict is exact bytes in, a status out: each row becomes
# RawRows.test_<row>_<name>, which sends every variant on a connection of its own and asserts
# the status (an int, or a tuple of allowed ones; a (payload, status) variant names its own),
# whether torii closes the connection (`closed`, default True) and how many requests reached an
# origin (`forwarded`, default 0: nothing; None: don't care); tearDown adds that /smuggled never
# did, and the class cleanup that no sanitizer spoke. Rows that owe more than that (what the
# origin received, how fast, how much memory) are methods of the classes after it.
RAW_ROWS = [
    # row, name, status, variants, options
    ("S1", "cl_then_te", 400,
     [post([b"Content-Length: 4", b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SM)], {}),
    ("S2", "te_then_cl", 400,
     [post([b"Transfer-Encoding: chunked", b"Content-Length: 4"], b"0\r\n\r\n" + SM)], {}),
    ("S3", "conflicting_content_length", 400,
     [post([b"Content-Length: 4", b"Content-Length: 41"], b"abcd" + SM)], {}),
    ("S4", "duplicate_content_length", 400,
     [post(cl, b"ab" + SM) for cl in ([b"Content-Length: 2", b"Content-Length: 2"],
                                      [b"Content-Length: 2, 2"])], {}),
    ("S5", "malformed_content_length", 400,
     [post([b"Content-Length: " + v], b"ab" + SM)
      for v in [b"", b"+2", b"-2", b"0x2", b"1 0", b"1_0", b"2a", b"99999999999999999999",
                b"184467440737095516160"]], {}),
    # Anything but exactly "chunked": 400, or 501 for a coding torii does not know.
    ("S7", "transfer_encoding_variants", (400, 501),
     [post(te, b"0\r\n\r\n" + SM)
      for te in [[b"Transfer-Encoding: chunked, chunked"], [b"Transfer-Encoding: chunked, gzip"],
                 [b"Transfer-Encoding: gzip, chunked"], [b"Transfer-Encoding: xchunked"],
                 [b"Transfer-Encoding: identity"], [b"Transfer-Encoding: chunked;x=y"],
                 [b"Transfer-Encoding: , chunked"], [b"Transfer-Encoding: chunked,"],
                 [b"Transfer-Encoding: \x0bchunked"], [b"Transfer-Encoding: \x0cchunked"],
                 [b"Transfer-Encoding: \x00chunked"],
                 [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"],
                 [b"Transfer-Encoding: gzip"]]], {}),
    ("S9", "transfer_encoding_obs_fold", 400,
     [post([b"Transfer-Encoding:", b" chunked", b"Content-Length: 4"], b"0\r\n\r\n" + SM)],
     {}),
    ("S10", "obs_fold_any_header", 400,
     [get(fold) for fold in ([b"X-A: a", b" b"], [b"X-A: a", b"\tb"], [b"X-A:", b" b"])], {}),
    ("S11", "http10_with_transfer_encoding", 400,
     [post([b"Transfer-Encoding: chunked"], b"0\r\n\r\n" + SM, version="1.0")], {}),
    ("S12", "bare_lf", 400,
     [b"GET / HTTP/1.1\nHost: a.test\n\n", b"GET / HTTP/1.1\r\nHost: a.test\nX-A: b\r\n\r\n"],
     {}),
    ("S13", "bare_cr_in_value", 400,
     [post([b"X-A: a\rTransfer-Encoding: chunked", b"Content-Length: 5"], b"0\r\n\r\n" + SM)],
     {}),
    ("S15", "ctl_in_value", 400,
     [get([b"X-A: a" + bytes([c]) + b"b"]) for c in [1, 8, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f]], {}),
    ("S16", "empty_header_name", 400,
     [post([b": x", b"Content-Length: 4"], b"abcd" + SM), get([b":x"])], {}),
    ("S17", "invalid_header_name", 400,
     [post([name, b"Content-Length: 4"], b"abcd" + SM)
      for name in [b"X Y: z", b"Transfer-Encoding : chunked", b"X@Y: z", b"X\x01Y: z",
                   b"X(Y): z", b"\"X\": z", b" X: z"]], {}),
    ("C1", "bad_chunk_size", 400,
     [chunked(size + b"\r\nab\r\n0\r\n\r\n" + SM)
      for size in [b"0x2", b"+2", b"-1", b" 2", b"2 ", b"2_0", b"2;", b"g", b""]],
     {"forwarded": None}),
    # Chunks that together pass body_bytes: 413 at the chunk that passes it.
    ("C2", "chunks_over_budget", 413,
     [chunked((b"%x\r\n" % (BODY_LIMIT // 2)) + b"x" * (BODY_LIMIT // 2) + b"\r\n"
              + (b"%x\r\n" % (BODY_LIMIT // 2 + 1)), target="/echo")], {"forwarded": None}),
    ("C3", "bare_lf_in_chunks", 400,
     [chunked(body + SM) for body in [b"2\nab\r\n0\r\n\r\n", b"2\r\nab\n0\r\n\r\n",
                                      b"2\r\nab\r\n0\n\n", b"2;x=y\nab\r\n0\r\n\r\n",
                                      b"2\r\nab\r\n0\r\n\n"]], {"forwarded": None}),
    ("C4", "chunk_data_without_crlf", 400, [chunked(b"2\r\nabXX0\r\n\r\n" + SM)],
     {"forwarded": None}),
    ("C5", "chunk_spill", 400, [chunked(b"2\r\nabcd\r\n0\r\n\r\n" + SM)], {"forwarded": None}),
    # A chunk extension with a bare LF, or longer than 4 KiB.
    ("C6", "bad_chunk_extensions", 400,
     [chunked(b"2;x=\"a\nb\"\r\nab\r\n0\r\n\r\n" + SM),
      chunked(b"2;x=" + b"v" * 10240 + b"\r\nab\r\n0\r\n\r\n" + SM)], {"forwarded": None}),
    # HTTP/2.0 in an HTTP/1 request line: 505; a malformed version: 400.
    ("R2", "versions", 400, [(get(version="2.0"), 505), get(version="01.1"), get(version="1.10")],
     {}),
    ("R3", "fragment_in_target", 400, [get(target="/a#b"), get(target="/#")], {}),
    ("R4", "bad_target_bytes", 400,
     [get(target=t) for t in ["/a\x00b", "/a\tb", "/a\x01b", "/a\x7fb", "/\xc3\xa9", "/a\x1b[0m"]],
     {}),
    ("R6", "bad_host", 400,
     [get(hosts, host=None)
      for hosts in [[b"Host: a.test", b"Host: a.test"], [b"Host: a.test", b"Host: b.test"],
                    [b"Host: a,b"], [b"Host: a/b@c"], [b"Host: .."], [b"Host: a..b"],
                    [b"Host: "], [b"Host: a b"], [b"Host: a:"], [b"Host: a:12x"],
                    [b"Host: [::1"], [b"Host: a@b"]]], {}),
    # Neither origin-form nor absolute-form.
    ("R7", "bad_target_forms", (400, 404),
     [get(target=t) for t in ["a.test/x", "ftp://a.test/", "http://", "*"]], {"closed": None}),
    ("R9", "long_request_line", 414, [get(target="/" + "a" * 20000)], {}),
    # One 70 KB header, or many.
    ("R10", "header_section_too_large", 431,
     [get([b"X-Big: " + b"b" * 70000]), get([b"X-H%d: %s" % (i, b"v" * 200) for i in range(90)])],
     {}),
    ("R12", "bad_methods", (400, 501),
     [m + b" / HTTP/1.1\r\nHost: a.test\r\n\r\n" for m in [b"get", b"FOO", b"G@T", b"GETT"]],
     {}),
    # An HTTP/1.0 request without keep-alive ends the connection: SM after it never runs.
    ("P2", "http10_close", 200, [get(version="1.0") + SM], {"forwarded": 1}),
    # An early 431 with an unread body closes the connection; the body never runs.
    ("P6", "early_431_with_body", 431,
     [post([b"X-Big: " + b"b" * 20000, b"Content-Length: %d" % len(SM)], SM)], {}),
]


class RawRows(BadRequestBase):
    """RAW_ROWS, one test per row (made below)."""


def _raw_row_test(status, variants, options):
    def test(self):
        for v in variants:
            payload, want = v if isinstance(v, tuple) else (v, status)
            with self.subTest(payload=payload[:120]):
                self.expect(payload, want, **options)
    return test


for _row, _name, _status, _variants, _options in RAW_ROWS:
    setattr(RawRows, f"test_{_row.lower()}_{_name}", _raw_row_test(_status, _variants, _options))


class RequestFraming(BadRequestBase):
    # S6: CL with leading zeros is accepted and forwarded as plain decimal, never raw.
    def test_s6_leading_zero_content_length_is_reserialised(self):
        rs = self.expect(post([b"Content-Length: 0002", b"Connection: close"], b"ab",
                              target="/echo"), 200, forwarded=1)
        self.assertEqual(rs[0].body, b"ab")
        entry = self.o1.log_entries()[-1]
        self.assertEqual(h.header_of(entry, "Content-Length"), ["2"])
        # The exact bytes on the wire to a backend.
        self.expect(post([b"Content-Length: 0002", b"Connection: close"], b"ab",
                         host=b"capture.test"), 200, forwarded=1)
        wire = self.cap.requests[-1]
        self.assertIn(b"\r\nContent-Length: 2\r\n", wire)
        self.assertNotIn(b"Content-Length: 0002", wire)
        self.assertTrue(wire.endswith(b"\r\n\r\nab"), wire)

    # S8: "Transfer-Encoding: CHUNKED" is the chunked coding (tokens are case-insensitive).
    def test_s8_chunked_is_case_insensitive(self):
        rs = self.expect(post([b"Transfer-Encoding: CHUNKED", b"Connection: close"],
                              b"5\r\nhello\r\n0\r\n\r\n", target="/echo"), 200, forwarded=1)
        self.assertEqual(rs[0].body, b"hello")

    # S14: NUL in a header value → 400; no NUL ever reaches an origin.
    def test_s14_nul_in_value(self):
        self.expect(get([b"X-A: a\x00b"]), 400)
        self.assertNotIn(b"\\u0000", self.o1.log_bytes())

    # S18: header names with '_' are dropped, never forwarded (so Content_Length cannot frame).
    def test_s18_underscore_header_dropped(self):
        rs = self.expect(post([b"Content_Length: 36", b"X_Custom: 1", b"X-Fine: 2",
                               b"Connection: close"], SM, target="/headers"), 200, forwarded=1)
        echoed = [line.split(b":")[0] for line in rs[0].body.split(b"\n") if line]
        self.assertNotIn(b"Content_Length", echoed)
        self.assertNotIn(b"X_Custom", echoed)
        entry = self.o1.log_entries()[-1]
        names = [k.lower() for k, _ in entry["headers"]]
        self.assertNotIn("content_length", names)
        self.assertNotIn("x_custom", names)
        self.assertIn("x-fine", names)

    # S19: a 300-byte name that starts with "Content-Length" is an ordinary header; the origin
    # sees exactly one Content-Length.
    def test_s19_long_header_name(self):
        long_name = b"Content-Length0" + b"a" * 285
        rs = self.expect(post([long_name + b": 99", b"Content-Length: 2", b"Connection: close"],
                              b"ab", target="/echo"), (200, 431), forwarded=None)
        if rs[0].status == 200:
            entry = self.o1.log_entries()[-1]
            self.assertEqual(h.header_of(entry, "Content-Length"), ["2"])
            self.assertEqual(entry["body"], "ab")


class ChunkedBodies(BadRequestBase):
    # C2: a chunk size over the body budget → 413 at once (before reading it), close.
    def test_c2_huge_chunk_size(self):
        for size, allowed in [(b"FFFFFFFFFFFFFFED", 413), (b"10000000000000000", (400, 413)),
                              (b"FFFFFFFFFFFFFFFFFFFF", (400, 413)),
                              (b"%x" % (BODY_LIMIT + 1), 413)]:
            with self.subTest(size=size):
                rss = self.t.rss_kib()
                t0 = time.monotonic()
                self.expect(chunked(size + b"\r\nab"), allowed, forwarded=None)
                self.assertLess(time.monotonic() - t0, 1.0 * h.SLOW)
                self.assertLess(self.t.rss_kib() - rss, 16 * 1024, "RSS grew")

    # C6: valid chunk extensions are accepted and stripped when re-chunking to the origin.
    def test_c6_chunk_extensions_stripped(self):
        self.expect(post([b"Transfer-Encoding: chunked", b"Connection: close"],
                         b"2;x=y\r\nab\r\n3;name=\"q v\"\r\ncde\r\n0;last=1\r\n\r\n",
                         host=b"capture.test"), 200, forwarded=1)
        wire = self.cap.requests[-1]
        head, _, body = wire.partition(b"\r\n\r\n")
        self.assertIn(b"\r\nTransfer-Encoding: chunked", head)
        for ext in (b";", b"x=y", b"name", b"last"):
            self.assertNotIn(ext, body, f"chunk extension forwarded: {body!r}")
        self.assertEqual(h._parse_one(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                      + body, 0)[0].body, b"abcde")

    # C7: trailers (even Content-Length, Host, Authorization) are dropped: never forwarded,
    # never merged into the head.
    def test_c7_trailers_dropped(self):
        trailers = b"Content-Length: 99\r\nHost: evil.test\r\nAuthorization: Basic eA==\r\n"
        self.expect(post([b"Transfer-Encoding: chunked", b"Connection: close"],
                         b"2\r\nab\r\n0\r\n" + trailers + b"\r\n", host=b"capture.test"),
                    200, forwarded=1)
        wire = self.cap.requests[-1]
        self.assertTrue(wire.endswith(b"\r\n0\r\n\r\n"), wire)
        for t in (b"evil.test", b"Authorization", b"Content-Length: 99"):
            self.assertNotIn(t, wire)
        rs = self.expect(post([b"Transfer-Encoding: chunked", b"Connection: close"],
                              b"2\r\nab\r\n0\r\n" + trailers + b"\r\n", target="/echo"),
                         200, forwarded=1)
        self.assertEqual(rs[0].body, b"ab")
        entry = self.o1.log_entries()[-1]
        self.assertEqual(h.header_of(entry, "Host"), ["a.test"])
        self.assertEqual(h.header_of(entry, "Authorization"), [])
        self.assertEqual(h.header_of(entry, "Content-Length"), [])

    # C7: a Transfer-Encoding trailer is dropped (200) or refused as malformed (400); either
    # way it never reaches the origin. (501 would claim an unsupported coding of the request.)
    def test_c7_transfer_encoding_trailer(self):
        for te in (b"chunked", b"gzip"):
            with self.subTest(te=te):
                rs = self.expect(post([b"Transfer-Encoding: chunked", b"Connection: close"],
                                      b"2\r\nab\r\n0\r\nTransfer-Encoding: " + te +
                                      b"\r\n\r\n", host=b"capture.test"),
                                 (200, 400), forwarded=None)
                if rs[0].status == 200:
                    self.assertTrue(self.cap.requests[-1].endswith(b"\r\n0\r\n\r\n"))


class RequestLine(BadRequestBase):
    # R1: HTTP/0.9 request → 400 and close (or a silent close); never forwarded.
    def test_r1_http09(self):
        before = self.origin_count()
        data, closed = h.raw(self.addr, b"GET /\r\n\r\n", timeout=3 * h.SLOW)
        self.assertTrue(closed)
        self.assertIn(h.status_of(data), (400, None), data)
        self.assertEqual(self.origin_count(), before)

    # R2: HTTP/1.2 is answered as HTTP/1.1 (RFC 9110 §2.5: the highest minor we support).
    def test_r2_http12_is_treated_as_11(self):
        rs = self.expect(get([b"Connection: close"], version="1.2"), 200, forwarded=1)
        self.assertEqual(rs[0].version, "HTTP/1.1")

    # R5: HTTP/1.1 without Host → 400 (HTTP/1.0 without Host is fine).
    def test_r5_missing_host(self):
        self.expect(get(host=None), 400)
        rs = self.expect(get(host=None, version="1.0"), 200, forwarded=1)
        self.assertEqual(rs[0].header("X-Backend"), "o1")

    # R7: an absolute-form target's authority routes the request and becomes the Host the
    # origin sees; the origin gets the origin-form path.
    def test_r7_absolute_form_overrides_host(self):
        rs = self.expect(get([b"Connection: close"], target="http://other.test/p/q?x=1"), 200,
                         forwarded=1)
        self.assertEqual(rs[0].header("X-Backend"), "o2")
        entry = self.o2.log_entries()[-1]
        self.assertEqual(entry["target"], "/p/q?x=1")
        self.assertEqual(h.header_of(entry, "Host"), ["other.test"])
        # No path: "/"; query only: "/?q".
        self.expect(get([b"Connection: close"], target="http://other.test"), 200, forwarded=1)
        self.assertEqual(self.o2.log_entries()[-1]["target"], "/")
        self.expect(get([b"Connection: close"], target="http://other.test?q=2"), 200,
                    forwarded=1)
        self.assertEqual(self.o2.log_entries()[-1]["target"], "/?q=2")
        # The authority wins even when the Host header names the other pool.
        rs = self.expect(get([b"Connection: close"], target="http://a.test/z",
                             host=b"other.test"), 200, forwarded=1)
        self.assertEqual(rs[0].header("X-Backend"), "o1")
        self.assertEqual(h.header_of(self.o1.log_entries()[-1], "Host"), ["a.test"])

    # R11: more than header_count (100) headers → 431, close; exactly 100 is fine.
    def test_r11_too_many_headers(self):
        self.expect(get([b"X-H%d: v" % i for i in range(200)]), 431)
        self.expect(get([b"X-H%d: v" % i for i in range(100)]), 431)  # + Host = 101
        self.expect(get([b"X-H%d: v" % i for i in range(98)] + [b"Connection: close"]), 200,
                    forwarded=1)  # + Host = 100

    # CONNECT is not proxied → 501 (or 400), close.
    def test_connect_refused(self):
        self.expect(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n", (400, 501))


class ConnectionHandling(BadRequestBase):
    # P2: bytes after a "Connection: close" request are never parsed: one response, close.
    def test_p2_bytes_after_connection_close(self):
        self.expect(get([b"Connection: close"]) + SM, 200, forwarded=1)
        req = get([b"Connection: close"])
        self.expect(None, 200, forwarded=1, chunks=[req, SM], gap=0.1)

    # P2: bytes that arrive after a "Connection: close" request, while its (large) response is
    # still being flushed, are dropped unparsed: exactly one response, no 400 after it.
    def test_p2_bytes_after_close_while_flushing(self):
        for size in LATE_SIZES:
            with self.subTest(size=size):
                rs, data = late_bytes_after_final_response(
                    self.addr, b"GET /?size=%d HTTP/1.1\r\nHost: a.test\r\n"
                    b"Connection: close\r\n\r\n" % size)
                self.assertEqual([r.status for r in rs], [200], f"tail: {data[-300:]!r}")
                self.assertEqual(len(rs[0].body), size)

    # P3: an Upgrade the origin answers with 200 instead of 101: the upgrade was forwarded (the
    # route tunnels websocket), the bytes after the request are held, never tunnelled nor
    # forwarded, and the connection closes after the ordinary response.
    def test_p3_upgrade_answered_200(self):
        rs = self.expect(get([b"Connection: Upgrade", b"Upgrade: websocket",
                              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                              b"Sec-WebSocket-Version: 13"], target="/headers") + SM,
                         200, forwarded=1)
        self.assertNotEqual(rs[0].status, 101)
        entry = self.o1.log_entries()[-1]
        fields = {k.lower(): v for k, v in entry["headers"]}
        self.assertEqual(fields.get("upgrade"), "websocket")
        self.assertEqual(fields.get("connection"), "upgrade")

    # P4: Expect: 100-continue → torii sends "100 Continue", then the final response.
    def test_p4_expect_100_continue(self):
        c = h.Client(self.addr)
        try:
            c.send(b"POST /echo HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
                   b"Content-Length: 5\r\n\r\n")
            interim = c.read_response(interim=True, timeout=3 * h.SLOW)
            self.assertEqual(interim.status, 100)
            self.assertEqual(interim.raw_head, b"HTTP/1.1 100 Continue")
            c.send(b"hello")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"hello")
        finally:
            c.close()
        entry = self.o1.log_entries()[-1]
        self.assertEqual(h.header_of(entry, "Expect"), [])

    # P4/P6: Expect with a body over the limit → 413 without "100 Continue"; the body (SM) is
    # never parsed as a request; close.
    def test_p4_expect_then_early_error(self):
        payload = post([b"Expect: 100-continue", b"Content-Length: %d" % (BODY_LIMIT + 1)], SM)
        self.expect(payload, 413)
        data, _ = h.raw(self.addr, payload, timeout=2 * h.SLOW)
        self.assertNotIn(b"100 Continue", data)

    # P6: Content-Length over body_bytes → 413 at once (the body is not awaited), close.
    def test_p6_content_length_over_limit(self):
        t0 = time.monotonic()
        self.expect(post([b"Content-Length: %d" % (BODY_LIMIT + 1)]), 413)
        self.assertLess(time.monotonic() - t0, 1.0 * h.SLOW)
        self.expect(post([b"Content-Length: %d" % (BODY_LIMIT + 1)], SM * 100), 413)

    # A body of exactly body_bytes is accepted and delivered intact.
    def test_body_at_limit_accepted(self):
        body = bytes(range(256)) * (BODY_LIMIT // 256)
        rs = self.expect(post([b"Content-Length: %d" % len(body), b"Connection: close"], body,
                              target="/echo"), 200, forwarded=1)
        self.assertEqual(rs[0].body, body)


class Timeouts(h.ToriiCase):
    """limits: header_timeout, body_timeout and idle_timeout 1 s, keepalive_requests 3."""

    @classmethod
    def setUpClass(cls):
        cls.o1 = cls.class_origin("o1")
        cls.t = cls.class_torii(h.proxy_config(
            [cls.o1], limits={"header_timeout": "1s", "idle_timeout": "1s",
                              "body_timeout": "1s", "keepalive_requests": 3}))
        cls.addr = cls.t.addr()

    def tearDown(self):
        self.t.check_alive()

    # D1: a partial head gets 408 + close at header_timeout.
    def test_header_timeout(self):
        s = h.connect(self.addr)
        try:
            t0 = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\n")
            data, closed = h.read_until_eof(s, 5 * h.SLOW)
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertStatus(data, 408)
        self.assertTrue(closed)
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 1.0 + 1.0 * h.SLOW)

    # D1 slowloris: one byte every 300 ms does not extend the header timeout; 408 arrives about
    # 1 s after the first byte.
    def test_slowloris(self):
        s = h.connect(self.addr)
        payload = b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: " + b"a" * 100
        data = b""
        closed = False
        try:
            t0 = time.monotonic()
            s.settimeout(0.3)
            for b in payload:
                try:
                    s.sendall(bytes([b]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                try:
                    got = s.recv(4096)
                    if not got:
                        closed = True
                        break
                    data += got
                    if b"\r\n\r\n" in data:
                        break
                except socket.timeout:
                    pass
                if time.monotonic() - t0 > 6:
                    break
            elapsed = time.monotonic() - t0
            more, closed2 = h.read_until_eof(s, 3 * h.SLOW)
            data += more
            closed = closed or closed2
        finally:
            s.close()
        self.assertStatus(data, 408)
        self.assertTrue(closed)
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 1.0 + 1.0 * h.SLOW)

    # D2: a body that stops arriving gets 408 + close at body_timeout.
    def test_body_timeout(self):
        s = h.connect(self.addr)
        try:
            t0 = time.monotonic()
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nhello")
            data, closed = h.read_until_eof(s, 5 * h.SLOW)
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertStatus(data, 408)
        self.assertTrue(closed)
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 1.0 + 1.0 * h.SLOW)

    # D4: an idle keep-alive connection is closed at idle_timeout (no response bytes).
    def test_idle_keepalive_closed(self):
        with h.Client(self.addr) as c:
            r = c.get("/")
            self.assertEqual(r.status, 200)
            t0 = time.monotonic()
            rest, closed = c.read_eof(timeout=5 * h.SLOW)
            elapsed = time.monotonic() - t0
        self.assertTrue(closed)
        self.assertEqual(rest, b"")
        self.assertGreater(elapsed, 0.8)
        self.assertLess(elapsed, 1.0 + 1.0 * h.SLOW)

    # D4: a connection that never sends a byte is closed at idle_timeout, silently.
    def test_silent_connection_closed(self):
        s = h.connect(self.addr)
        try:
            t0 = time.monotonic()
            data, closed = h.read_until_eof(s, 5 * h.SLOW)
            elapsed = time.monotonic() - t0
        finally:
            s.close()
        self.assertTrue(closed)
        self.assertEqual(data, b"")
        self.assertLess(elapsed, 1.0 + 1.0 * h.SLOW)

    # D8: keepalive_requests = 3: the 3rd response says Connection: close, then EOF.
    def test_keepalive_requests_cap(self):
        with h.Client(self.addr) as c:
            for i in range(1, 4):
                r = c.get(f"/?i={i}")
                self.assertEqual(r.status, 200)
                if i < 3:
                    self.assertNotEqual(r.header("Connection", "").lower(), "close", i)
                else:
                    self.assertEqual(r.header("Connection", "").lower(), "close")
            _, closed = c.read_eof(timeout=3 * h.SLOW)
            self.assertTrue(closed)

    # D8 + P2: once torii answered "Connection: close" (the keepalive_requests cap), bytes
    # that arrive while that response is still being flushed are never parsed or forwarded.
    def test_keepalive_cap_drops_late_request(self):
        for size in LATE_SIZES:
            with self.subTest(size=size):
                mark = len(self.o1.log_bytes())
                req = (b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n" * 2 +
                       b"GET /?size=%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % size)
                rs, data = late_bytes_after_final_response(self.addr, req)
                self.assertEqual([r.status for r in rs], [200, 200, 200], data[-300:])
                self.assertEqual(rs[2].header("Connection", "").lower(), "close")
                self.assertEqual(len(rs[2].body), size)
                self.assertNotIn(b"/smuggled", self.o1.log_bytes()[mark:],
                                 "a request sent after the final response was forwarded")


if __name__ == "__main__":
    unittest.main()
