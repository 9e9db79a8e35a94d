"""The edge (issue #15) through the real binary: path normalisation before routing and every
access decision (the /admin bypasses), the normalised path forwarded to the backend, and the
ambiguous spellings refused with 400 before anything reaches a backend (BAD-INPUTS K5); the
real client carried end to end behind trusted proxies (X-Forwarded-For/-Proto/-Host, the
access log, ip_hash), and never believed from anyone else (H3)."""

import base64
import json
import os
import re
import subprocess
import tempfile
import unittest
import warnings

import harness as h

# Spellings that most backends read as /admin. Each must meet the /admin route's deny list.
ADMIN_SPELLINGS = [
    "/admin",
    "/%61dmin",
    "/%61%64%6d%69%6E",
    "//admin",
    "///admin",
    "/./admin",
    "/x/../admin",
    "/x/y/../../admin",
    "/../admin",
    "/%2e/admin",
    "/x/%2E%2E/admin",
    "/x/.%2e/admin",
    "/x//../admin",
    "/admin/./secret",
    "/public/../admin/secret",
    "/public/%2e%2e/admin?q=1",
]

# Spellings backends disagree about: refused, never forwarded.
REFUSED = [
    "/admin%2fsecret",
    "/public/..%2fadmin",
    "/public/..%5cadmin",
    "/public%2F..%2Fadmin",
    "/a%00b",
    "/%c0%ae%c0%ae/admin",
    "/%e0%80%ae/admin",
    "/a%zz",
    "/a%4",
]


def request_line(path, host="test.local"):
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


class PathNormalisation(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        c = h.proxy_config([cls.o])
        c.routes = [{"host": "*", "path_prefix": "/admin", "pool": "app",
                     "deny": ["0.0.0.0/0"]},
                    {"host": "*", "path_prefix": "/", "pool": "app"}]
        c.listeners.append({"name": "lax", "address": "127.0.0.1:0",
                            "allow_encoded_slash": True, "allow_encoded_nul": True})
        cls.t = cls.class_torii(c)

    def targets_seen(self):
        return [e["target"] for e in self.o.log_entries()]

    # issue #15 defect 1: every spelling of /admin gets the /admin route's 403, and none of
    # them reaches the backend.
    def test_access_list_cannot_be_bypassed_by_spelling(self):
        for path in ADMIN_SPELLINGS:
            with self.subTest(path=path):
                data, _ = h.raw(self.t.addr(), request_line(path))
                self.assertEqual(h.status_of(data), 403, data[:200])
        # Absolute-form: the path inside the target is normalised the same way.
        data, _ = h.raw(self.t.addr(), request_line("http://test.local/x/../admin"))
        self.assertEqual(h.status_of(data), 403, data[:200])
        self.assertFalse([t for t in self.targets_seen() if "admin" in t], self.targets_seen())

    # Ambiguous spellings (encoded slash or backslash, NUL, overlong UTF-8, bad escapes) get
    # 400 and a close, and the backend sees nothing of them.
    def test_ambiguous_paths_are_refused(self):
        before = len(self.targets_seen())
        for path in REFUSED:
            with self.subTest(path=path):
                data, closed = h.raw(self.t.addr(), request_line(path).replace(
                    b"Connection: close\r\n", b""))
                self.assertEqual(h.status_of(data), 400, data[:200])
                self.assertTrue(closed)
        self.assertEqual(len(self.targets_seen()), before)

    # The backend receives exactly the normalised path the route was chosen on; the query is
    # not touched.
    def test_backend_receives_the_normalised_path(self):
        cases = {
            "/a/./b/../c//d?q=/../x%2f": "/a/c/d?q=/../x%2f",
            "/%7euser/%41%62c/%e2%82%ac": "/~user/Abc/%E2%82%AC",
            "/x/..": "/",
            "/plain/path": "/plain/path",
        }
        for sent, expected in cases.items():
            with self.subTest(sent=sent):
                r = h.get(self.t.addr(), sent)
                self.assertEqual(r.status, 200)
                self.assertEqual(self.o.log_entries()[-1]["target"], expected)

    # A listener that allows encoded slashes and NUL forwards them still encoded: the backend
    # sees one segment, and the deny rule still applies to the decoded-unreserved path.
    def test_listener_may_allow_encoded_slash_and_nul(self):
        r = h.get(self.t.addr("lax"), "/a%2fb/%00")
        self.assertEqual(r.status, 200)
        self.assertEqual(self.o.log_entries()[-1]["target"], "/a%2Fb/%00")
        data, _ = h.raw(self.t.addr("lax"), request_line("/%61dmin%2Fx"))
        self.assertEqual(h.status_of(data), 403)


class MergeSlashesOff(h.ToriiCase):
    # [server] merge_slashes = false keeps empty segments (dot segments still go).
    def test_empty_segments_kept(self):
        o = self.origin("o1")
        c = h.proxy_config([o], server_extra={"merge_slashes": False})
        t = self.torii(c)
        self.assertEqual(h.get(t.addr(), "//a//b/./c").status, 200)
        self.assertEqual(o.log_entries()[-1]["target"], "//a//b/c")


TRUSTED = "127.0.0.10"
SPOOF = [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"),
         ("X-Forwarded-Host", "shop.example"), ("X-Real-IP", "203.0.113.9")]


class ClientIdentity(h.ToriiCase):
    def start(self, fmt="text"):
        self.o = self.origin("o1")
        c = h.proxy_config([self.o], server_extra={"trusted_proxies": [TRUSTED + "/32"],
                                                   "access_log_format": fmt})
        self.t = self.torii(c)

    def seen(self, name):
        return h.header_of(self.o.log_entries()[-1], name)

    # issue #15 defect 2: behind a trusted load balancer the backend learns the real client
    # (the chain with the balancer appended), the scheme and host the client used there, and
    # the access log names the client first and the balancer as peer=.
    def test_trusted_proxy_chain_reaches_the_backend(self):
        self.start()
        r = h.get(self.t.addr(), "/", source=TRUSTED, headers=SPOOF)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.seen("X-Forwarded-For"), ["203.0.113.9, " + TRUSTED])
        self.assertEqual(self.seen("X-Forwarded-Proto"), ["https"])
        self.assertEqual(self.seen("X-Forwarded-Host"), ["shop.example"])
        self.assertEqual(self.seen("X-Real-IP"), [])
        # Repeated X-Forwarded-For headers are one chain, in order.
        h.get(self.t.addr(), "/", source=TRUSTED,
              headers=[("X-Forwarded-For", "198.51.100.1"), ("X-Forwarded-For", "203.0.113.9")])
        self.assertEqual(self.seen("X-Forwarded-For"),
                         ["198.51.100.1, 203.0.113.9, " + TRUSTED])
        # Only http and https are believed as a scheme; a malformed host is dropped.
        h.get(self.t.addr(), "/", source=TRUSTED,
              headers=[("X-Forwarded-Proto", "javascript"), ("X-Forwarded-Host", "a/b@c")])
        self.assertEqual(self.seen("X-Forwarded-Proto"), ["http"])
        self.assertEqual(self.seen("X-Forwarded-Host"), [])
        self.assertEqual(self.seen("X-Forwarded-For"), [TRUSTED])
        lines = self.t.access_log_lines(wait_for_count=3)
        self.assertTrue(lines[0].startswith("203.0.113.9 ["), lines[0])
        self.assertIn(" peer=" + TRUSTED + " ", lines[0])
        self.assertTrue(lines[2].startswith(TRUSTED + " ["), lines[2])
        self.assertNotIn("peer=", lines[2])

    # H3: from an untrusted peer every forwarding header is replaced by torii's own.
    def test_untrusted_peer_cannot_claim_another_client(self):
        self.start()
        r = h.get(self.t.addr(), "/", source="127.0.0.2", headers=SPOOF)
        self.assertEqual(r.status, 200)
        self.assertEqual(self.seen("X-Forwarded-For"), ["127.0.0.2"])
        self.assertEqual(self.seen("X-Forwarded-Proto"), ["http"])
        self.assertEqual(self.seen("X-Forwarded-Host"), [])
        self.assertEqual(self.seen("X-Real-IP"), [])
        line = self.t.access_log_lines(wait_for_count=1)[0]
        self.assertTrue(line.startswith("127.0.0.2 ["), line)
        self.assertNotIn("peer=", line)

    # The JSON access log carries the client and the peer as two fields.
    def test_json_log_client_and_peer(self):
        self.start("json")
        h.get(self.t.addr(), "/", source=TRUSTED, headers=SPOOF)
        rec = json.loads(self.t.access_log_lines(wait_for_count=1)[0])
        self.assertEqual((rec["client"], rec["peer"]), ("203.0.113.9", TRUSTED))

    # RFC 7239 (forwarded_header = true): a trusted proxy's elements are kept and torii's hop
    # appended; anyone else's Forwarded is replaced by torii's hop alone.
    def test_forwarded_header(self):
        self.o = self.origin("o1")
        c = h.proxy_config([self.o], server_extra={"trusted_proxies": [TRUSTED + "/32"],
                                                   "forwarded_header": True})
        self.t = self.torii(c)
        spoof = [("Forwarded", "for=203.0.113.9;proto=https")]
        h.get(self.t.addr(), "/", source=TRUSTED, headers=spoof)
        self.assertEqual(self.seen("Forwarded"),
                         [f'for=203.0.113.9;proto=https, for={TRUSTED};host="test.local";proto=http'])
        h.get(self.t.addr(), "/", source="127.0.0.2", headers=spoof)
        self.assertEqual(self.seen("Forwarded"), ['for=127.0.0.2;host="test.local";proto=http'])

    # ip_hash keys on the client the trusted proxy names, not on the proxy: clients spread
    # over the backends, and each one keeps its backend.
    def test_ip_hash_uses_the_real_client(self):
        origins = [self.origin(f"o{i}") for i in range(3)]
        c = h.proxy_config(origins, pool_extra={"algorithm": "ip_hash"},
                           server_extra={"trusted_proxies": [TRUSTED]})
        t = self.torii(c)
        chosen = {}
        for i in range(24):
            client = f"198.51.100.{i + 1}"
            for _ in range(2):
                r = h.get(t.addr(), "/", source=TRUSTED, headers=[("X-Forwarded-For", client)])
                chosen.setdefault(client, set()).add(r.header("X-Backend"))
        self.assertTrue(all(len(b) == 1 for b in chosen.values()), chosen)
        self.assertGreater(len(set().union(*chosen.values())), 1, chosen)


HEX32 = re.compile(r"^[0-9a-f]{32}$")
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


class RequestIdsAndTraceContext(h.ToriiCase):
    def start(self, **server):
        self.o = self.origin("o1")
        extra = {"trusted_proxies": [TRUSTED + "/32"], "access_log_format": "json"}
        extra.update(server)
        self.t = self.torii(h.proxy_config([self.o], server_extra=extra))

    def seen(self, name):
        return h.header_of(self.o.log_entries()[-1], name)

    # A client's X-Request-Id is replaced by torii's own (it cannot choose what the logs show);
    # the backend, the response and the access log carry the same ID.
    def test_request_id_made_for_untrusted_clients(self):
        self.start()
        r = h.get(self.t.addr(), "/", source="127.0.0.2", headers=[("X-Request-Id", "evil")])
        rid = r.header("X-Request-Id")
        self.assertRegex(rid, HEX32)
        self.assertEqual(self.seen("X-Request-Id"), [rid])
        rec = json.loads(self.t.access_log_lines(wait_for_count=1)[0])
        self.assertEqual(rec["request_id"], rid)
        other = h.get(self.t.addr(), "/").header("X-Request-Id")
        self.assertNotEqual(other, rid)

    # From a trusted proxy the ID is kept, so one ID follows the request through the fleet.
    def test_request_id_kept_from_a_trusted_proxy(self):
        self.start()
        r = h.get(self.t.addr(), "/", source=TRUSTED, headers=[("X-Request-Id", "lb-42")])
        self.assertEqual(r.header("X-Request-Id"), "lb-42")
        self.assertEqual(self.seen("X-Request-Id"), ["lb-42"])
        # An unsafe value is replaced even from a trusted peer.
        r = h.get(self.t.addr(), "/", source=TRUSTED, headers=[("X-Request-Id", "a b")])
        self.assertRegex(r.header("X-Request-Id"), HEX32)

    # Responses torii makes itself carry the ID too.
    def test_local_replies_carry_the_id(self):
        self.start()
        data, _ = h.raw(self.t.addr(), b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(h.status_of(data), 400)
        self.assertRegex(data.decode("latin-1"), r"\r\nX-Request-Id: [0-9a-f]{32}\r\n")

    # W3C trace context: a valid traceparent is continued (same trace id and flags, torii's
    # span as the parent); none, or an invalid one, starts a trace; the log shows the trace id.
    def test_traceparent_continued_or_started(self):
        self.start()
        incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        h.get(self.t.addr(), "/", headers=[("traceparent", incoming), ("tracestate", "k=v")])
        tp = self.seen("traceparent")
        self.assertEqual(len(tp), 1)
        m = TRACEPARENT.match(tp[0])
        self.assertIsNotNone(m, tp)
        self.assertEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertNotEqual(m.group(2), "00f067aa0ba902b7")
        self.assertEqual(m.group(3), "01")
        self.assertEqual(self.seen("tracestate"), ["k=v"])
        rec = json.loads(self.t.access_log_lines(wait_for_count=1)[0])
        self.assertEqual(rec["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736")
        for headers in ([], [("traceparent", incoming.upper())]):
            h.get(self.t.addr(), "/", headers=headers)
            m = TRACEPARENT.match(self.seen("traceparent")[0])
            self.assertIsNotNone(m)
            self.assertNotEqual(m.group(1), "4bf92f3577b34da6a3ce929d0e0e4736")

    # torii makes a trace's ids when the backend's head or the log first needs them, once: the
    # log shows the trace the backend got, and a request torii answers itself after its head
    # is logged with a trace of its own.
    def test_trace_id_logged_is_the_one_sent(self):
        self.start()
        h.get(self.t.addr(), "/")
        m = TRACEPARENT.match(self.seen("traceparent")[0])
        self.assertIsNotNone(m)
        rec = json.loads(self.t.access_log_lines(wait_for_count=1)[0])
        self.assertEqual(rec["trace_id"], m.group(1))
        data, _ = h.raw(self.t.addr(), b"GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(h.status_of(data), 400)
        rec = json.loads(self.t.access_log_lines(wait_for_count=2)[1])
        self.assertEqual(rec["status"], 400)
        self.assertRegex(rec["trace_id"], HEX32)
        self.assertNotEqual(rec["trace_id"], m.group(1))

    # Both can be turned off: the client's fields then pass through as any other.
    def test_off(self):
        self.start(request_id_header="", trace_context=False)
        r = h.get(self.t.addr(), "/", headers=[("X-Request-Id", "c-1"), ("traceparent", "x")])
        self.assertIsNone(r.header("X-Request-Id"))
        self.assertEqual(self.seen("X-Request-Id"), ["c-1"])
        self.assertEqual(self.seen("traceparent"), ["x"])


class Rewrites(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        c = h.proxy_config([cls.o], server_extra={"access_log_format": "json"})
        c.routes = [
            {"host": "*", "path_prefix": "/api/admin", "pool": "app", "deny": ["0.0.0.0/0"],
             "strip_prefix": "/api"},
            {"host": "*", "path_prefix": "/api/", "pool": "app", "strip_prefix": "/api",
             "host_rewrite": "api.internal:8080",
             "request_headers": {"set": {"X-Env": "prod"}, "add": {"X-Tag": "torii"},
                                 "remove": ["X-Debug"]},
             "response_headers": {"set": {"Server": "edge"}, "remove": ["X-Powered-By"]}},
            {"host": "*", "path_prefix": "/old/", "pool": "app", "replace_prefix": "/new/"},
            {"host": "*", "path_prefix": "/u/", "pool": "app",
             "regex_rewrite": {"pattern": "^/u/([0-9]+)/(\\w+)$",
                               "substitution": "/users/\\2/\\1"}},
            {"host": "*", "path_prefix": "/go/", "redirect_prefix": "http://elsewhere.test",
             "redirect_status": 302},
            {"host": "*", "path_prefix": "/", "pool": "app"},
        ]
        cls.t = cls.class_torii(c)

    def last(self):
        return self.o.log_entries()[-1]

    # The backend gets the rewritten path, Host and fields; the client gets the response with
    # its fields rewritten; the log keeps the client's target.
    def test_prefix_host_and_header_rewrites(self):
        r = h.get(self.t.addr(), "/api/users?id=7&hdr=X-Powered-By:php&hdr=Server:apache",
                  headers=[("X-Env", "dev"), ("X-Debug", "1"), ("X-Keep", "k")])
        self.assertEqual(r.status, 200)
        e = self.last()
        self.assertEqual(e["target"], "/users?id=7&hdr=X-Powered-By:php&hdr=Server:apache")
        self.assertEqual(h.header_of(e, "Host"), ["api.internal:8080"])
        self.assertEqual(h.header_of(e, "X-Env"), ["prod"])
        self.assertEqual(h.header_of(e, "X-Tag"), ["torii"])
        self.assertEqual(h.header_of(e, "X-Debug"), [])
        self.assertEqual(h.header_of(e, "X-Keep"), ["k"])
        self.assertIsNone(r.header("X-Powered-By"))
        self.assertEqual(r.header_all("Server"), ["edge"])
        rec = json.loads(self.t.access_log_lines(wait_for_count=1)[-1])
        self.assertTrue(rec["target"].startswith("/api/users?id=7"), rec)

    # replace_prefix swaps the matched prefix.
    def test_replace_prefix(self):
        self.assertEqual(h.get(self.t.addr(), "/old/page?q=1").status, 200)
        self.assertEqual(self.last()["target"], "/new/page?q=1")

    # H1: an encoded CR LF in the path stays encoded through a rewrite (the backend's request
    # line) and a prefix redirect (Location): no header can be injected either way.
    def test_h1_crlf_in_path_stays_encoded(self):
        r = h.get(self.t.addr(), "/api/a%0d%0aX-Injected:%201")
        self.assertEqual(r.status, 200)
        e = self.last()
        self.assertEqual(e["target"], "/a%0D%0AX-Injected:%201")
        self.assertEqual(h.header_of(e, "X-Injected"), [])
        r = h.get(self.t.addr(), "/go/a%0d%0aX-Injected:%201")
        self.assertEqual(r.status, 302)
        self.assertEqual(r.header("Location"), "http://elsewhere.test/go/a%0D%0AX-Injected:%201")
        self.assertIsNone(r.header("X-Injected"))
        self.assertNotIn(b"\r\nX-Injected", r.raw_head)

    # regex_rewrite substitutes groups in the path; the query stays; no match, no rewrite.
    def test_regex_rewrite(self):
        self.assertEqual(h.get(self.t.addr(), "/u/42/posts?x=/u/1/a").status, 200)
        self.assertEqual(self.last()["target"], "/users/posts/42?x=/u/1/a")
        self.assertEqual(h.get(self.t.addr(), "/u/abc").status, 200)
        self.assertEqual(self.last()["target"], "/u/abc")

    # Access decisions use the client's path: /api/admin is denied although the backend would
    # have seen /admin.
    def test_access_decided_before_rewrites(self):
        before = len(self.o.log_entries())
        self.assertEqual(h.get(self.t.addr(), "/api/admin/x").status, 403)
        self.assertEqual(h.get(self.t.addr(), "/api/./admin").status, 403)
        self.assertEqual(len(self.o.log_entries()), before)


class RicherRouting(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        names = ("main", "posts", "canary", "v2", "users")
        cls.os = {n: cls.class_origin(n) for n in names}
        c = h.proxy_config([cls.os["main"]],
                           pools={n: [cls.os[n]] for n in names if n != "main"})
        c.routes = [
            {"path_exact": "/robots.txt", "return": {"status": 200,
                                                     "body": "User-agent: *\nDisallow: /\n"}},
            {"path_exact": "/gone", "return": {"status": 410}},
            {"path_prefix": "/api/", "methods": ["POST", "PUT"], "pool": "posts"},
            {"path_prefix": "/", "headers": [{"name": "X-Canary", "value": "1"}],
             "pool": "canary"},
            {"path_prefix": "/", "query": [{"name": "v", "regex": "2|two"}], "pool": "v2"},
            {"path_regex": "/users/[0-9]+", "pool": "users"},
            {"path_prefix": "/", "pool": "app"},
        ]
        cls.t = cls.class_torii(c)

    def backend(self, path, **kw):
        r = h.get(self.t.addr(), path, **kw)
        self.assertEqual(r.status, 200, (path, r.status))
        return r.header("X-Backend")

    # Each matcher sends its requests to its pool; what matches none goes on down the list.
    def test_matchers_pick_the_pool(self):
        self.assertEqual(self.backend("/api/x", method="POST", body=b"b"), "posts")
        self.assertEqual(self.backend("/api/x"), "main")
        self.assertEqual(self.backend("/x", headers=[("X-Canary", "1")]), "canary")
        self.assertEqual(self.backend("/x", headers=[("X-Canary", "0")]), "main")
        self.assertEqual(self.backend("/x?v=2"), "v2")
        self.assertEqual(self.backend("/x?a=b&v=%74wo"), "v2")
        self.assertEqual(self.backend("/x?v=3"), "main")
        self.assertEqual(self.backend("/users/42"), "users")
        self.assertEqual(self.backend("/users/42?x=1"), "users")
        self.assertEqual(self.backend("/users/abc"), "main")
        # The regex sees the normalised path.
        self.assertEqual(self.backend("/x/../users/%34%32"), "users")

    # A return route answers itself with its status and body; no backend is asked.
    def test_return_routes(self):
        before = sum(len(o.log_entries()) for o in self.os.values())
        r = h.get(self.t.addr(), "/robots.txt")
        self.assertEqual((r.status, r.body), (200, b"User-agent: *\nDisallow: /\n"))
        self.assertEqual(r.header("Content-Type"), "text/plain")
        self.assertEqual(h.get(self.t.addr(), "/gone").status, 410)
        # The connection stays usable after a return, whatever its status.
        with h.Client(self.t.addr()) as c:
            self.assertEqual(c.get("/gone").status, 410)
            self.assertEqual(c.get("/robots.txt").status, 200)
            self.assertEqual(c.get("/x").header("X-Backend"), "main")
        self.assertEqual(sum(len(o.log_entries()) for o in self.os.values()), before + 1)


class TrafficSplit(h.ToriiCase):
    def start(self, **route):
        self.v1, self.v2 = self.origin("v1"), self.origin("v2")
        c = h.proxy_config([self.v1], pools={"v2": [self.v2]})
        r = {"host": "*", "path_prefix": "/",
             "split": [{"pool": "app", "weight": 3}, {"pool": "v2", "weight": 1}]}
        r.update(route)
        c.routes = [r]
        self.t = self.torii(c)

    # Weighted: 3:1 over 400 requests (a binomial draw: bounds at ±4.6 standard deviations).
    def test_weighted_split(self):
        self.start()
        with h.Client(self.t.addr()) as c:
            seen = [c.get(f"/?i={i}").header("X-Backend") for i in range(400)]
        self.assertEqual(set(seen), {"v1", "v2"})
        self.assertTrue(60 <= seen.count("v2") <= 140, seen.count("v2"))

    # Sticky: a client stays on its side; clients spread over both.
    def test_sticky_split(self):
        self.start(split_sticky=True)
        sides = {}
        for i in range(2, 42):
            src = f"127.0.3.{i}"
            got = {h.get(self.t.addr(), "/", source=src).header("X-Backend") for _ in range(3)}
            self.assertEqual(len(got), 1, (src, got))
            sides[src] = got.pop()
        self.assertEqual(set(sides.values()), {"v1", "v2"})

    # A header (or cookie) naming a pool of the split forces it: canary by header.
    def test_split_by_header_and_cookie(self):
        self.start(split_by="header:X-Pool")
        for _ in range(20):
            r = h.get(self.t.addr(), "/", headers=[("X-Pool", "v2")])
            self.assertEqual(r.header("X-Backend"), "v2")
        # A value that names no pool of the split falls back to the weights.
        self.assertIn(h.get(self.t.addr(), "/", headers=[("X-Pool", "nope")]).header("X-Backend"),
                      ("v1", "v2"))


class RouteTimeouts(h.ToriiCase):
    # A route's response_timeout overrides its pool's: the same 1 s answer is a 504 on the
    # impatient route and a 200 elsewhere.
    def test_route_response_timeout(self):
        o = self.origin("o1")
        c = h.proxy_config([o], pool_extra={"response_timeout": "30s", "retries": 0})
        c.routes = [{"host": "*", "path_prefix": "/quick/", "pool": "app",
                     "response_timeout": "200ms"},
                    {"host": "*", "path_prefix": "/", "pool": "app"}]
        t = self.torii(c)
        self.assertEqual(h.get(t.addr(), "/quick/x?delay=1000", timeout=10).status, 504)
        self.assertEqual(h.get(t.addr(), "/slow?delay=1000", timeout=10).status, 200)


class ErrorPages(h.ToriiCase):
    # The 4xx/5xx replies torii makes itself use the operator's pages: the route's first,
    # then the server's; others keep the built-in text.
    def test_server_and_route_pages(self):
        d = self.tmpdir()
        with open(os.path.join(d, "404.html"), "w") as f:
            f.write("<h1>not here</h1>\n")
        with open(os.path.join(d, "busy.json"), "w") as f:
            f.write('{"error": "busy"}\n')
        o = self.origin("o1")
        dead = self.origin("dead")
        dead_address = dead.address
        dead.stop()
        c = h.proxy_config([o], server_extra={
            "error_pages": {"404": os.path.join(d, "404.html")}},
            pools={"gone": [{"address": dead_address}]})
        c.routes = [{"host": "a.test", "path_prefix": "/api/", "pool": "gone",
                     "error_pages": {"503": os.path.join(d, "busy.json")}},
                    {"host": "a.test", "path_prefix": "/", "pool": "app"}]
        t = self.torii(c)
        r = h.get(t.addr(), "/x", host="nowhere.test")
        self.assertEqual((r.status, r.body), (404, b"<h1>not here</h1>\n"))
        self.assertEqual(r.header("Content-Type"), "text/html; charset=utf-8")
        r = h.get(t.addr(), "/api/x", host="a.test")
        self.assertEqual((r.status, r.body), (503, b'{"error": "busy"}\n'))
        self.assertEqual(r.header("Content-Type"), "application/json")
        self.assertEqual(r.header("Retry-After"), "1")
        data, _ = h.raw(t.addr(), b"GET /a%zz HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertEqual(h.status_of(data), 400)
        self.assertIn(b"Content-Type: text/plain", data)

    # A missing page is a start-up error naming the file (torii -t checks it too).
    def test_missing_page_refused(self):
        c = h.proxy_config([self.origin("o1")],
                           server_extra={"error_pages": {"404": "/nonexistent/404.html"}})
        text = c.render("/tmp/unused.ready", "off", "-")
        path = os.path.join(self.tmpdir(), "bad.toml")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([h.torii_bin(), "-t", "-c", path], capture_output=True, timeout=30,
                           env=h.child_env())
        self.assertEqual(p.returncode, 1)
        self.assertIn("/nonexistent/404.html", p.stderr.decode())


def crypt_hash(password, method):
    """A libcrypt hash made by Python's crypt module (Debian's python3 3.11 still has it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    if method == "bcrypt":
        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class BasicAuth(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        d = cls.class_tmpdir()
        cls.users = os.path.join(d, "htpasswd")
        with open(cls.users, "w") as f:
            f.write("# staff\n\nalice:%s\nbob:%s\n" % (crypt_hash("s3cret", "bcrypt"),
                                                     crypt_hash("hunter2", "sha512")))
        cls.o = cls.class_origin("o1")
        c = h.proxy_config([cls.o], server_extra={"access_log_format": "json"})
        c.routes = [
            {"path_prefix": "/private/", "pool": "app",
             "auth": {"users_file": cls.users, "realm": "staff only"}},
            {"path_prefix": "/fwd/", "pool": "app",
             "auth": {"users_file": cls.users, "forward": True}},
            {"path_prefix": "/", "pool": "app"},
        ]
        cls.t = cls.class_torii(c)

    # No credentials, another scheme, a wrong password, an unknown user: 401 with the
    # challenge, nothing forwarded, and the connection stays open for the retry a browser makes.
    def test_refused_then_admitted_on_the_same_connection(self):
        before = len(self.o.log_entries())
        with h.Client(self.t.addr()) as c:
            for headers in ([], [("Authorization", "Bearer abc")],
                            [("Authorization", basic("alice", "wrong"))],
                            [("Authorization", basic("mallory", "s3cret"))],
                            [("Authorization", "Basic !!!")]):
                r = c.get("/private/x", headers=headers)
                self.assertEqual(r.status, 401, headers)
                self.assertEqual(r.header("WWW-Authenticate"),
                                 'Basic realm="staff only", charset="UTF-8"')
            self.assertEqual(len(self.o.log_entries()), before)
            for user, pw in (("alice", "s3cret"), ("bob", "hunter2")):
                r = c.get("/private/x", headers=[("Authorization", basic(user, pw))])
                self.assertEqual(r.status, 200)
        e = self.o.log_entries()[-1]
        self.assertEqual(h.header_of(e, "Authorization"), [])  # the password stays at torii
        lines = self.t.access_log_lines(wait_for_count=7)
        recs = [json.loads(line) for line in lines]
        self.assertEqual([r["status"] for r in recs[-7:]], [401] * 5 + [200] * 2)
        self.assertEqual(recs[-1]["user"], "bob")
        self.assertNotIn("user", recs[-3])
        text = "\n".join(lines)
        for secret in ("s3cret", "hunter2", basic("alice", "s3cret").split()[1]):
            self.assertNotIn(secret, text)

    # P6: a 401 while the request body is still unread closes the connection; the body never
    # reaches the backend.
    def test_401_before_the_body_closes(self):
        before = len(self.o.log_entries())
        data, closed = h.raw(self.t.addr(), b"POST /private/up HTTP/1.1\r\nHost: a\r\n"
                                            b"Content-Length: 100000\r\n\r\n" + b"x" * 1000)
        self.assertEqual(h.status_of(data), 401)
        self.assertIn(b"connection: close", data.lower())
        self.assertTrue(closed)
        self.assertEqual(len(self.o.log_entries()), before)

    # forward = true passes the Authorization field on; routes without auth are open.
    def test_forward_and_open_routes(self):
        r = h.get(self.t.addr(), "/fwd/x", headers=[("Authorization", basic("alice", "s3cret"))])
        self.assertEqual(r.status, 200)
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "Authorization"),
                         [basic("alice", "s3cret")])
        self.assertEqual(h.get(self.t.addr(), "/open").status, 200)

    # Hashes torii will not check (Apache MD5, DES, plain text) and broken files are refused by
    # the loader, naming the file and line.
    def test_weak_or_broken_users_files_refused(self):
        d = self.tmpdir()
        for content, message in (("carol:$apr1$abc$V7uD6Y3Ey1b.T8QFySWI51\n", "MD5"),
                                 ("carol:plain\n", "is not bcrypt"),
                                 ("just-a-name\n", "expected USER:HASH"),
                                 ("# nobody\n", "lists no user")):
            path = os.path.join(d, "users")
            with open(path, "w") as f:
                f.write(content)
            c = h.proxy_config([self.o])
            c.routes = [{"path_prefix": "/", "pool": "app", "auth": {"users_file": path}}]
            cfg = os.path.join(d, "t.toml")
            with open(cfg, "w") as f:
                f.write(c.render(os.path.join(d, "r"), "off", "-"))
            p = subprocess.run([h.torii_bin(), "-t", "-c", cfg], capture_output=True, timeout=30,
                               env=h.child_env())
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(message, p.stderr.decode())
            if message != "lists no user":
                self.assertIn(f"{path}:1:", p.stderr.decode())


class FilePermissions(h.ToriiCase):
    # #18: a config any local user may rewrite is refused, by torii -t and at start.
    def test_world_writable_config_refused(self):
        c = h.proxy_config([self.origin("o1")])
        path = os.path.join(self.tmpdir(), "ww.toml")
        with open(path, "w") as f:
            f.write(c.render(os.path.join(self.tmpdir(), "r"), "off", "-"))
        os.chmod(path, 0o666)
        for args in (["-t", "-c", path], ["-c", path]):
            p = subprocess.run([h.torii_bin()] + args, capture_output=True, timeout=30,
                               env=h.child_env())
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn("writable by every user", p.stderr.decode())
        os.chmod(path, 0o644)
        p = subprocess.run([h.torii_bin(), "-t", "-c", path], capture_output=True, timeout=30,
                           env=h.child_env())
        self.assertEqual(p.returncode, 0, p.stderr)


class Privileges(h.ToriiCase):
    # #18: [server] user drops root after binding and reading keys: workers serve as that
    # user (no supplementary groups), and a user that does not exist stops the start.
    # LeakSanitizer cannot inspect a process that gave up root (it is no longer dumpable), so
    # leak checking is off for this process only; ASan and UBSan stay on.
    NO_LSAN = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0:halt_on_error=1"}

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to drop it")

    def test_runs_as_the_configured_user(self):
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], server_extra={"user": "nobody"}),
                       env_extra=self.NO_LSAN)
        self.assertEqual(h.get(t.addr(), "/").status, 200)
        with open(f"/proc/{t.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        self.assertEqual(status["Uid"].split(), ["65534"] * 4)
        self.assertEqual(status["Gid"].split(), ["65534"] * 4)
        self.assertEqual(status["Groups"].split(), ["65534"])

    def test_unknown_user_stops_the_start(self):
        c = h.proxy_config([self.origin("o1")], server_extra={"user": "no-such-user-x"})
        path = os.path.join(self.tmpdir(), "u.toml")
        with open(path, "w") as f:
            f.write(c.render(os.path.join(self.tmpdir(), "r"), "off", "-"))
        p = subprocess.run([h.torii_bin(), "-c", path], capture_output=True, timeout=30,
                           env=h.child_env(self.NO_LSAN))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("no such user: no-such-user-x", p.stderr.decode())


class TcpHealthChecks(h.ToriiCase):
    # type = "tcp": a backend that accepts connections is UP without any request reaching it;
    # one that refuses them goes DOWN and gets no traffic.
    def test_tcp_check_connects_only(self):
        live = self.origin("live")
        dead = self.origin("dead")
        dead_address = dead.address
        dead.stop()
        c = h.proxy_config([live, {"address": dead_address}], pool_extra={
            "health": {"type": "tcp", "interval": "100ms", "timeout": "100ms",
                       "rise": 1, "fall": 1}, "retries": 0})
        t = self.torii(c)
        h.wait_for(lambda: f"backend {dead_address} is DOWN" in t.error_log(), 10 * h.SLOW,
                   what="dead backend down")
        seen = {h.get(t.addr(), f"/?i={i}").header("X-Backend") for i in range(6)}
        self.assertEqual(seen, {"live"})
        self.assertNotIn(f"backend {live.address} is DOWN", t.error_log())
        self.assertEqual([e["target"] for e in live.log_entries()],
                         [f"/?i={i}" for i in range(6)])


if __name__ == "__main__":
    unittest.main()
