"""The response cache through the real binary (issue #6, BAD-INPUTS K1-K10, P5): hits and
misses counted at the origin, expiry, Age, Vary, 304 revalidation, client conditionals,
stale-while-revalidate, stale-if-error with the origin down, unsafe-method invalidation, PURGE,
negative caching, what must never be stored, request coalescing (1,000 concurrent clients, one
origin request), compressed variants made once, and the memory bound under a flood of URLs."""

import gzip
import json
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness as h
from test_admin import parse_metrics

SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")


def metrics(t):
    out = {}
    for line in h.get(t.addr("admin"), "/metrics").body.decode().splitlines():
        m = SAMPLE.match(line)
        if m:
            out[(m.group("name"), m.group("labels") or "")] = float(m.group("value"))
    return out


def cache_config(origin, cache=None, route_extra=None, workers=1, extra_routes=None):
    c = h.proxy_config([origin], workers=workers)
    c.routes[0]["cache"] = "main"
    c.routes[0].update(route_extra or {})
    for r in extra_routes or []:
        c.routes.insert(0, dict(r))
    table = {"memory": "16MiB", "max_object": "1MiB", "purge_allow": ["127.0.0.1"]}
    table.update(cache or {})
    c.tables["cache.main"] = table
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    return c


class CacheCase(h.ToriiCase):
    """One origin and one torii per class; every test uses URLs of its own."""

    cache = None
    route_extra = None
    workers = 1

    @classmethod
    def setUpClass(cls):
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(cache_config(cls.o, cls.cache, cls.route_extra, cls.workers))
        cls.addr = cls.t.addr()

    def tearDown(self):
        self.t.check_alive()

    def origin_count(self):
        return self.o.stats()["requests"]

    def metrics(self):
        return parse_metrics(h.get(self.t.addr("admin"), "/metrics").body.decode())

    def get(self, path, **kw):
        return h.get(self.addr, path, **kw)

    def assertCacheStatus(self, r, expected):
        self.assertEqual(r.header("Cache-Status"), expected, f"{r.status} {r.headers}")


class Basics(CacheCase):
    cache = {"negative_ttl": "30s"}

    def test_hit_after_miss_reaches_the_origin_once(self):
        before = self.origin_count()
        r1 = self.get("/basic?cc=max-age=60&size=4096")
        self.assertEqual(r1.status, 200)
        self.assertCacheStatus(r1, "torii; fwd=miss; stored")
        for _ in range(3):
            r = self.get("/basic?cc=max-age=60&size=4096")
            self.assertEqual(r.status, 200)
            self.assertCacheStatus(r, "torii; hit")
            self.assertEqual(r.body, r1.body)
            self.assertEqual(r.header("Content-Length"), "4096")
            self.assertIsNotNone(r.header("Age"))
            # Names go out capitalised as on the miss, though the store keeps them lowercased.
            self.assertIn(("Content-Type", "text/plain"), r.headers)
            self.assertIn(("Cache-Control", "max-age=60"), r.headers)
        self.assertEqual(self.origin_count() - before, 1)

    def test_a_hit_sends_the_fields_the_miss_sent(self):
        # A stored response's fields are rendered for HTTP/1.1 once, when stored, and copied on
        # each hit (a Vary that must name Accept-Encoding is extended on each): a hit's fields
        # are the miss's, fields of one name in the same order, but for the lines each answer
        # has its own (the store keeps Date apart; names go out in title case, "Etag").
        own = {"age", "cache-status", "x-request-id"}
        paths = ["/same-1?cc=max-age=60&size=100&hdr=X-Kept:yes",
                 "/same-2?cc=max-age=60&size=100&hdr=Vary:Cookie&hdr=X-Two:a&hdr=X-Two:b",
                 "/same-3?cc=max-age=60&size=5&hdr=ETag:%22v%22&hdr=Vary:Accept-Encoding",
                 "/same-4?cc=max-age=60&size=0&hdr=Connection:X-Hop&hdr=X-Hop:1"]
        for path in paths:
            miss = self.get(path)
            self.assertCacheStatus(miss, "torii; fwd=miss; stored")
            for _ in range(2):
                hit = self.get(path)
                self.assertCacheStatus(hit, "torii; hit")
                fields = [sorted(((n.lower(), v) for n, v in r.headers if n.lower() not in own),
                                 key=lambda f: f[0]) for r in (miss, hit)]
                self.assertEqual(fields[1], fields[0], path)

    def test_a_hit_larger_than_the_clients_high_water_mark_is_sent_whole(self):
        # Bodies are queued to the client 64 KiB at a time up to its high-water mark (256 KiB),
        # the rest as it drains: a queue left exactly at the mark once waited for ever.
        for size in (300 * 1024, 600 * 1024, 900 * 1024):
            path = f"/big-hit-{size}?cc=max-age=600&size={size}"
            miss = self.get(path)
            self.assertCacheStatus(miss, "torii; fwd=miss; stored")
            r = self.get(path)
            self.assertCacheStatus(r, "torii; hit")
            self.assertEqual(len(r.body), size)
            self.assertTrue(r.body == miss.body)

    def test_query_is_part_of_the_key(self):
        before = self.origin_count()
        self.get("/q?cc=max-age=60&a=1")
        r = self.get("/q?cc=max-age=60&a=2")
        self.assertCacheStatus(r, "torii; fwd=miss; stored")
        self.assertEqual(self.origin_count() - before, 2)

    def test_age_counts_the_age_on_arrival_and_the_time_stored(self):
        self.get("/age?cc=max-age=100&hdr=Age:10")
        r = self.get("/age?cc=max-age=100&hdr=Age:10")
        self.assertCacheStatus(r, "torii; hit")
        self.assertGreaterEqual(int(r.header("Age")), 10)
        self.assertLess(int(r.header("Age")), 15)
        self.assertEqual(len(r.header_all("Age")), 1)
        time.sleep(2.1)
        r = self.get("/age?cc=max-age=100&hdr=Age:10")
        self.assertGreaterEqual(int(r.header("Age")), 12)

    def test_expired_entry_is_fetched_again(self):
        before = self.origin_count()
        self.get("/exp?cc=max-age=2")
        self.assertCacheStatus(self.get("/exp?cc=max-age=2"), "torii; hit")
        time.sleep(3.1)
        r = self.get("/exp?cc=max-age=2")
        self.assertCacheStatus(r, "torii; fwd=miss; stored")
        self.assertEqual(self.origin_count() - before, 2)

    def test_vary_selects_a_variant_per_header_value(self):
        path = "/vary?cc=max-age=60&hdr=Vary:X-Lang"
        before = self.origin_count()
        self.assertCacheStatus(self.get(path, headers=[("X-Lang", "en")]),
                               "torii; fwd=miss; stored")
        self.assertCacheStatus(self.get(path, headers=[("X-Lang", "fr")]),
                               "torii; fwd=miss; stored")
        self.assertCacheStatus(self.get(path, headers=[("X-Lang", "en")]), "torii; hit")
        self.assertCacheStatus(self.get(path, headers=[("X-Lang", "fr")]), "torii; hit")
        self.assertCacheStatus(self.get(path), "torii; fwd=miss; stored")
        self.assertEqual(self.origin_count() - before, 3)

    def test_vary_star_is_never_stored(self):
        path = "/varystar?cc=max-age=60&hdr=Vary:*"
        self.get(path)
        self.assertCacheStatus(self.get(path), "torii; fwd=miss")

    def test_odd_accept_encoding_normalises_no_bypass_no_crash(self):
        # K3: spellings of one meaning share a variant; garbage is survived.
        path = "/ae?cc=max-age=60&hdr=Vary:Accept-Encoding"
        self.get(path, headers=[("Accept-Encoding", "gzip, br")])
        self.assertCacheStatus(self.get(path, headers=[("Accept-Encoding", "br,gzip")]),
                               "torii; hit")
        self.assertCacheStatus(self.get(path, headers=[("Accept-Encoding", "BR ;q=1, gzip")]),
                               "torii; hit")
        for odd in (",,,;q=x", ";" * 1000, "gzip;q=" + "9" * 5000, "," * 3000):
            r = self.get(path, headers=[("Accept-Encoding", odd)])
            self.assertEqual(r.status, 200)

    def test_revalidation_with_304_refreshes_the_entry(self):
        path = "/reval?cc=max-age=2&etag=v1&size=2000"
        before = self.origin_count()
        full = self.get(path).body
        time.sleep(3.1)
        r = self.get(path)
        self.assertEqual(r.status, 200)
        self.assertCacheStatus(r, "torii; fwd=stale; fwd-status=304")
        self.assertEqual(r.body, full)
        self.assertCacheStatus(self.get(path), "torii; hit")
        self.assertEqual(self.origin_count() - before, 2)
        # The revalidation carried our validator, not a client's.
        conditional = [e for e in self.o.log_entries() if e["target"] == path][-1]
        self.assertEqual(h.header_of(conditional, "If-None-Match"), ['"v1"'])

    def test_client_conditional_is_answered_304_from_the_cache(self):
        path = "/cond?cc=max-age=60&etag=c1&size=100"
        self.get(path)
        before = self.origin_count()
        r = self.get(path, headers=[("If-None-Match", '"c1"')])
        self.assertEqual(r.status, 304)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.header("ETag"), '"c1"')
        r = self.get(path, headers=[("If-None-Match", '"other"')])
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 100)
        self.assertEqual(self.origin_count(), before)

    def test_head_is_answered_from_a_stored_get_and_never_stored_as_it(self):
        # K8: a HEAD first must not become the GET entry.
        c = h.Client(self.addr)
        try:
            r = c.request("HEAD", "/k8?cc=max-age=60&size=50")
            self.assertEqual(r.status, 200)
        finally:
            c.close()
        r = self.get("/k8?cc=max-age=60&size=50")
        self.assertEqual(len(r.body), 50)
        self.assertCacheStatus(r, "torii; fwd=miss; stored")
        c = h.Client(self.addr)
        try:
            r = c.request("HEAD", "/k8?cc=max-age=60&size=50")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Content-Length"), "50")
            self.assertCacheStatus(r, "torii; hit")
            # The connection stays usable: no body was sent after the HEAD response.
            r = c.request("GET", "/k8?cc=max-age=60&size=50")
            self.assertEqual(len(r.body), 50)
        finally:
            c.close()

    def test_unsafe_method_invalidates(self):
        path = "/inv?cc=max-age=60"
        self.get(path)
        self.assertCacheStatus(self.get(path), "torii; hit")
        r = self.get(path, method="POST", body=b"x")
        self.assertEqual(r.status, 200)
        self.assertCacheStatus(self.get(path), "torii; fwd=miss; stored")
        # A failed unsafe request (4xx) leaves the entry alone.
        self.get(path + "&status=404", method="DELETE")
        self.get(path)
        self.assertCacheStatus(self.get(path), "torii; hit")

    def test_unsafe_method_invalidates_location_on_the_same_host(self):
        self.get("/loc-target?cc=max-age=60")
        self.assertCacheStatus(self.get("/loc-target?cc=max-age=60"), "torii; hit")
        self.get("/loc-post?hdr=Location:/loc-target%3Fcc=max-age=60", method="POST", body=b"x")
        self.assertCacheStatus(self.get("/loc-target?cc=max-age=60"), "torii; fwd=miss; stored")

    def test_purge(self):
        path = "/purge-me?cc=max-age=60"
        self.get(path)
        self.assertEqual(self.get(path, method="PURGE", source="127.0.0.2").status, 403)
        self.assertCacheStatus(self.get(path), "torii; hit")
        self.assertEqual(self.get(path, method="PURGE").status, 200)
        self.assertEqual(self.get(path, method="PURGE").status, 404)
        self.assertCacheStatus(self.get(path), "torii; fwd=miss; stored")

    # #17: PURGE with Cache-Tag removes every entry stored with one of the tags (Cache-Tag or
    # Surrogate-Key from the backend), and nothing else; Soft-Purge: 1 marks them stale, so
    # the next use revalidates (304 from the origin keeps the body).
    def test_purge_by_tag(self):
        a = "/tag-a?cc=max-age=60&hdr=Cache-Tag:product-1,list"
        b = "/tag-b?cc=max-age=60&hdr=Surrogate-Key:list%20product-2"
        c = "/tag-c?cc=max-age=60&hdr=Cache-Tag:product-3"
        for path in (a, b, c):
            self.get(path)
            self.assertCacheStatus(self.get(path), "torii; hit")
        self.assertEqual(self.get("/", method="PURGE", headers=[("Cache-Tag", "list")],
                                  source="127.0.0.2").status, 403)
        r = self.get("/", method="PURGE", headers=[("Cache-Tag", "list, nothing")])
        self.assertEqual((r.status, r.body), (200, b"purged: 2 entries\n"))
        self.assertCacheStatus(self.get(a), "torii; fwd=miss; stored")
        self.assertCacheStatus(self.get(b), "torii; fwd=miss; stored")
        self.assertCacheStatus(self.get(c), "torii; hit")
        self.assertEqual(self.get("/", method="PURGE",
                                  headers=[("Cache-Tag", "nothing")]).status, 404)
        # Soft: stale at once, revalidated with the stored validator on next use.
        d = "/tag-d?cc=max-age=60&etag=v1&size=500&hdr=Cache-Tag:soft"
        self.get(d)
        r = self.get("/", method="PURGE", headers=[("Cache-Tag", "soft"), ("Soft-Purge", "1")])
        self.assertEqual((r.status, r.body), (200, b"marked stale: 1 entries\n"))
        r = self.get(d)
        self.assertEqual((r.status, len(r.body)), (200, 500))
        self.assertCacheStatus(r, "torii; fwd=stale; fwd-status=304")
        self.assertCacheStatus(self.get(d), "torii; hit")

    def test_negative_caching(self):
        before = self.origin_count()
        r = self.get("/missing?status=404")
        self.assertEqual(r.status, 404)
        self.assertCacheStatus(r, "torii; fwd=miss; stored")
        r = self.get("/missing?status=404")
        self.assertEqual(r.status, 404)
        self.assertCacheStatus(r, "torii; hit")
        self.assertEqual(self.origin_count() - before, 1)

    def test_errors_are_stored_only_with_explicit_freshness(self):
        # Issue #17 (RFC 9111 §3): any final status the origin marks fresh is stored and served.
        for status in (299, 400, 500, 502, 503, 504, 599):
            path = f"/err-fresh?status={status}&cc=max-age=60"
            self.assertEqual(self.get(path).status, status)
            r = self.get(path)
            self.assertEqual(r.status, status)
            self.assertCacheStatus(r, "torii; hit")
        # K4 (CPDoS): an error without freshness information is never stored.
        for status in (500, 502, 503, 400, 431):
            path = f"/err?status={status}"
            self.assertEqual(self.get(path).status, status)
            self.assertCacheStatus(self.get(path), "torii; fwd=miss")

    def test_private_no_store_and_set_cookie_are_not_stored(self):
        # K5, K6: the response decides; a second client never gets the first one's cookie.
        for q in ("cc=private,max-age=60", "cc=no-store", "cc=max-age=60&hdr=Set-Cookie:sid=1"):
            path = f"/private?{q}"
            self.get(path)
            r = self.get(path)
            self.assertCacheStatus(r, "torii; fwd=miss")

    def test_authorization_is_not_served_from_the_cache(self):
        path = "/auth?cc=max-age=60"
        self.get(path)
        self.assertCacheStatus(self.get(path), "torii; hit")
        r = self.get(path, headers=[("Authorization", "Bearer x")])
        self.assertCacheStatus(r, "torii; fwd=request")

    def test_host_is_part_of_the_key(self):
        # K1: the origin reflects the Host it got.
        a = self.get("/headers?cc=max-age=60", host="a.test")
        b = self.get("/headers?cc=max-age=60", host="b.test")
        self.assertIn(b"a.test", a.body)
        self.assertIn(b"b.test", b.body)
        self.assertNotIn(b"a.test", b.body)

    def test_unkeyed_forwarding_headers_cannot_poison(self):
        # K2: X-Forwarded-Host and friends are stripped before the origin sees them.
        path = "/headers?cc=max-age=60&k2=1"
        r = self.get(path, headers=[("X-Forwarded-Host", "evil"), ("X-Original-URL", "/evil")])
        self.assertNotIn(b"evil", r.body)
        r = self.get(path)
        self.assertCacheStatus(r, "torii; hit")
        self.assertNotIn(b"evil", r.body)

    def test_truncated_response_is_never_stored(self):
        # K7: the origin promises 100000 bytes, sends 10 and closes.
        for _ in range(2):
            before = self.origin_count()
            c = h.Client(self.addr)
            try:
                c.send(h.build_request("GET", "/die-mid"))
                data, closed = c.read_eof(timeout=5)
            finally:
                c.close()
            self.assertTrue(closed)
            self.assertTrue(data.endswith(b"0123456789"), data[-100:])
            self.assertEqual(self.origin_count() - before, 1)

    def test_only_if_cached_on_a_cold_key_is_504(self):
        r = self.get("/oic?cc=max-age=60", headers=[("Cache-Control", "only-if-cached")])
        self.assertEqual(r.status, 504)
        self.get("/oic?cc=max-age=60")
        r = self.get("/oic?cc=max-age=60", headers=[("Cache-Control", "only-if-cached")])
        self.assertEqual(r.status, 200)

    def test_request_no_cache_revalidates(self):
        path = "/nc?cc=max-age=60&etag=n1"
        self.get(path)
        r = self.get(path, headers=[("Cache-Control", "no-cache")])
        self.assertCacheStatus(r, "torii; fwd=stale; fwd-status=304")

    def test_larger_than_max_object_passes_through_unstored(self):
        path = "/big?cc=max-age=60&size=1500000"
        for _ in range(2):
            r = self.get(path)
            self.assertEqual(len(r.body), 1500000)
            self.assertCacheStatus(r, "torii; fwd=miss")
        path = "/bigchunked?cc=max-age=60&size=1500000&chunked=1"
        self.assertEqual(len(self.get(path).body), 1500000)
        self.assertCacheStatus(self.get(path), "torii; fwd=miss; stored")  # decided at the head
        r = self.get(path)
        self.assertEqual(len(r.body), 1500000)
        self.assertNotEqual(r.header("Cache-Status"), "torii; hit")

    def test_get_with_a_body_is_forwarded_and_the_next_request_gets_its_own_answer(self):
        # P5: a GET with a body on a cached URL: the body is read (forwarded), never parsed as
        # the next request.
        path = "/p5?cc=max-age=60"
        self.get(path)
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        c = h.Client(self.addr)
        try:
            c.send(h.build_request("GET", path, headers=[("Content-Length", str(len(smuggled)))])
                   + smuggled)
            r1 = c.read_response()
            self.assertEqual(r1.status, 200)
            self.assertCacheStatus(r1, "torii; fwd=request")
            r2 = c.request("GET", path)
            self.assertCacheStatus(r2, "torii; hit")
        finally:
            c.close()
        # The bytes reached the origin as the GET's body, never as a request of their own.
        self.assertNotIn("/smuggled", [e["target"] for e in self.o.log_entries()])

    def test_many_ranges_get_the_full_body(self):
        # K9: Range is not served piecewise from the cache; the full 200 is safe.
        path = "/range?cc=max-age=60&size=1000"
        self.get(path)
        r = self.get(path, headers=[("Range", "bytes=" + ",".join(["0-"] * 1000))])
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 1000)

    def test_cache_metrics(self):
        self.get("/m?cc=max-age=60")
        self.get("/m?cc=max-age=60")
        m = metrics(self.t)
        self.assertGreaterEqual(m[("torii_cache_hits_total", "")], 1)
        self.assertGreaterEqual(m[("torii_cache_stored_total", "")], 1)
        self.assertGreater(m[("torii_cache_bytes", 'cache="main"')], 0)
        self.assertEqual(m[("torii_cache_capacity_bytes", 'cache="main"')], 16 << 20)


class PerRouteMetrics(h.ToriiCase):
    # #17: each route with a cache counts its hits, misses, revalidations and bytes sent from
    # the store, on /metrics and the status page; a route without one shows none.
    def test_per_route_cache_counters(self):
        o = self.origin("o1")
        c = cache_config(o, extra_routes=[{"path_prefix": "/nocache/", "pool": "app"}])
        c.routes[-1]["path_prefix"] = "/"
        t = self.torii(c)
        for _ in range(3):
            self.assertEqual(h.get(t.addr(), "/r?cc=max-age=60&size=1000").status, 200)
        self.assertEqual(h.get(t.addr(), "/nocache/x").status, 200)
        m = metrics(t)
        labels = 'host="*",path_prefix="/"'
        self.assertEqual(m[("torii_route_cache_requests_total", labels + ',outcome="hit"')], 2)
        self.assertEqual(m[("torii_route_cache_requests_total", labels + ',outcome="miss"')], 1)
        self.assertEqual(m[("torii_route_cache_sent_bytes_total", labels)], 2000)
        self.assertEqual(m[("torii_route_requests_total", labels)], 3)
        self.assertNotIn(("torii_route_cache_sent_bytes_total", 'host="*",path_prefix="/nocache/"'),
                         m)
        status = json.loads(h.get(t.addr("admin"), "/status.json").body)
        routes = {r["path_prefix"]: r for r in status["routes"]}
        self.assertEqual(routes["/"]["cache"], {"hits": 2, "misses": 1, "revalidated": 0,
                                                "stale": 0, "bytes": 2000})
        self.assertNotIn("cache", routes["/nocache/"])


class RangesFromTheStore(CacheCase):
    """Issue #17 / BAD-INPUTS K9: Range requests answered from a stored complete response."""

    def prime(self, path):
        full = self.get(path)
        self.assertEqual((full.status, len(full.body)), (200, 1024))
        self.assertCacheStatus(full, "torii; fwd=miss; stored")
        return full.body

    def test_single_range_is_a_206_from_the_store(self):
        path = "/ranged?size=1024&cc=max-age=60&etag=v1"
        body = self.prime(path)
        before = self.origin_count()
        for spec, first, last in (("bytes=10-19", 10, 19), ("bytes=-10", 1014, 1023),
                                  ("bytes=1000-", 1000, 1023), ("bytes=1000-5000", 1000, 1023)):
            r = self.get(path, headers=[("Range", spec)])
            self.assertEqual(r.status, 206, spec)
            self.assertEqual(r.header("Content-Range"), f"bytes {first}-{last}/1024", spec)
            self.assertEqual(r.header("Content-Length"), str(last - first + 1), spec)
            self.assertEqual(r.body, body[first:last + 1], spec)
            self.assertCacheStatus(r, "torii; hit")
        self.assertEqual(self.origin_count(), before)

    def test_unsatisfiable_range_is_a_416(self):
        path = "/ranged416?size=1024&cc=max-age=60"
        self.prime(path)
        before = self.origin_count()
        r = self.get(path, headers=[("Range", "bytes=5000-6000")])
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header("Content-Range"), "bytes */1024")
        self.assertEqual(r.body, b"")
        # The connection stays usable after a 416.
        with h.Client(self.addr) as c:
            self.assertEqual(c.get(path, headers=[("Range", "bytes=-0")]).status, 416)
            self.assertEqual(c.get(path).status, 200)
        self.assertEqual(self.origin_count(), before)

    def test_if_range_and_ignored_ranges_get_the_whole_response(self):
        path = "/rangedif?size=1024&cc=max-age=60&etag=v7"
        body = self.prime(path)
        r = self.get(path, headers=[("Range", "bytes=0-9"), ("If-Range", '"v7"')])
        self.assertEqual((r.status, r.body), (206, body[:10]))
        for headers in ([("Range", "bytes=0-9"), ("If-Range", '"other"')],
                        [("Range", "bytes=0-9"), ("If-Range", 'W/"v7"')],
                        [("Range", "bytes=0-1,5-6")],
                        [("Range", "bytes=" + ",".join(["0-"] * 1000))],
                        [("Range", "lines=1-2")]):
            r = self.get(path, headers=headers)
            self.assertEqual((r.status, r.body), (200, body), headers[-1][1][:40])
        # HEAD ignores Range.
        r = self.get(path, method="HEAD", headers=[("Range", "bytes=0-9")])
        self.assertEqual(r.status, 200)


class HopByHopOnHits(CacheCase):
    # Issue #17: fields the stored response's Connection header names are hop-by-hop: never
    # forwarded on the miss, never stored, never sent on a hit.
    def test_connection_named_fields_are_not_stored(self):
        path = "/hop?cc=max-age=60&hdr=Connection:X-Hop&hdr=X-Hop:secret&hdr=X-Kept:yes"
        miss = self.get(path)
        hit = self.get(path)
        self.assertCacheStatus(hit, "torii; hit")
        for r in (miss, hit):
            self.assertIsNone(r.header("X-Hop"), r.headers)
            self.assertEqual(r.header("X-Kept"), "yes")


class TargetedCacheControl(CacheCase):
    """RFC 9213 (issue #17): CDN-Cache-Control decides for torii; browsers still see both."""

    def test_cdn_cache_control_takes_precedence(self):
        path = "/cdn?cc=no-store&hdr=CDN-Cache-Control:max-age%3D60"
        miss = self.get(path)
        self.assertCacheStatus(miss, "torii; fwd=miss; stored")
        hit = self.get(path)
        self.assertCacheStatus(hit, "torii; hit")
        for r in (miss, hit):
            self.assertEqual(r.header("Cache-Control"), "no-store")
            self.assertEqual(r.header("CDN-Cache-Control"), "max-age=60")
        path = "/cdn2?cc=max-age%3D60&hdr=CDN-Cache-Control:no-store"
        self.get(path)
        self.assertCacheStatus(self.get(path), "torii; fwd=miss")


class OwnTargetedField(CacheCase):
    cache = {"targeted": ["Torii-Cache-Control"]}

    # An operator can address torii alone; CDN-Cache-Control is then one more field.
    def test_configured_field_wins(self):
        path = "/own?cc=no-store&hdr=Torii-Cache-Control:max-age%3D60"
        self.get(path)
        self.assertCacheStatus(self.get(path), "torii; hit")
        path = "/own2?cc=no-store&hdr=CDN-Cache-Control:max-age%3D60"
        self.get(path)
        self.assertCacheStatus(self.get(path), "torii; fwd=miss")


class SetCookiePolicy(CacheCase):
    """Issue #17: a public response with Set-Cookie is stored without the cookie (default)."""

    def test_public_response_stored_without_its_cookie(self):
        path = "/cookie?cc=public,max-age%3D60&hdr=Set-Cookie:sid%3Dfirst-client"
        miss = self.get(path)
        self.assertCacheStatus(miss, "torii; fwd=miss; stored")
        self.assertEqual(miss.header("Set-Cookie"), "sid=first-client")
        hit = self.get(path, source="127.0.0.2")
        self.assertCacheStatus(hit, "torii; hit")
        self.assertIsNone(hit.header("Set-Cookie"), hit.headers)


class SetCookieStored(CacheCase):
    cache = {"set_cookie": "store"}

    # set_cookie = "store": the cookie is replayed (for site-wide cookies only).
    def test_cookie_replayed(self):
        path = "/cookie-store?cc=max-age%3D60&hdr=Set-Cookie:lang%3Den"
        self.get(path)
        hit = self.get(path)
        self.assertCacheStatus(hit, "torii; hit")
        self.assertEqual(hit.header("Set-Cookie"), "lang=en")


class StaleWhileRevalidate(CacheCase):
    """stale-while-revalidate (RFC 5861 §3): within the window every request, the first one
    included, is answered from the stale entry at once, and one refresh, owned by the worker
    rather than by a client connection, updates the entry in the background."""

    def wait_fresh(self, path):
        """Requests `path` until the refreshed entry answers (bounded); returns what the
        requests before it got."""
        seen = []

        def fresh():
            r = self.get(path)
            seen.append(r.header("Cache-Status"))
            return r.header("Cache-Status") == "torii; hit"

        h.wait_for(fresh, 10 * h.SLOW, interval=0.1, what="the background refresh to land")
        return seen[:-1]

    def test_first_request_is_served_stale_and_the_refresh_outlives_its_client(self):
        # The origin takes 0.8 s: a refresh in the foreground would hold the first request. (The
        # refreshed entry is that much older on arrival: max-age leaves it fresh for a while.)
        path = "/swr-first?cc=max-age=5,stale-while-revalidate=60&etag=s1&delay=800&size=100"
        self.get(path)
        time.sleep(5.6)
        before = self.origin_count()
        metrics_before = self.metrics()
        r = self.get(path)  # its connection closes as soon as it has the answer
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 100)
        self.assertCacheStatus(r, "torii; hit; detail=stale-while-revalidate")
        self.assertGreaterEqual(int(r.header("Age")), 5)
        # Meanwhile the stale entry answers; then the refreshed one (the origin's 304), fresh.
        seen = self.wait_fresh(path)
        for status in seen:
            self.assertEqual(status, "torii; hit; detail=stale-while-revalidate")
        # Counted as a refresh and a revalidation; the clients' requests only are requests.
        m, m0 = self.metrics(), metrics_before
        self.assertEqual(self.origin_count() - before, 1)
        self.assertLess(int(self.get(path).header("Age")), 5)
        delta = lambda name, labels="": m[(name, labels)] - m0[(name, labels)]
        self.assertEqual(delta("torii_cache_background_refreshes_total"), 1)
        self.assertEqual(delta("torii_cache_revalidated_total"), 1)
        self.assertEqual(delta("torii_requests_total"),
                         delta("torii_responses_total", 'class="2xx"'))

    def test_concurrent_requests_all_get_the_stale_entry_and_one_refresh_runs(self):
        path = "/swr?cc=max-age=3,stale-while-revalidate=60&etag=s1&delay=600"
        self.get(path)
        time.sleep(3.6)
        before = self.origin_count()
        results = []
        threads = [threading.Thread(target=lambda: results.append(self.get(path)))
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(len(results), 4)
        for r in results:
            self.assertCacheStatus(r, "torii; hit; detail=stale-while-revalidate")
        self.wait_fresh(path)
        self.assertEqual(self.origin_count() - before, 1)

    def test_without_validators_the_refresh_fetches_the_whole_response(self):
        path = "/swr-noval?cc=max-age=3,stale-while-revalidate=60&size=64&delay=300"
        self.get(path)
        time.sleep(3.6)
        before = self.origin_count()
        self.assertCacheStatus(self.get(path), "torii; hit; detail=stale-while-revalidate")
        self.wait_fresh(path)
        self.assertEqual(self.origin_count() - before, 1)
        self.assertEqual(len(self.get(path).body), 64)


class StaleWhileRevalidateOriginDown(h.ToriiCase):
    def test_a_failed_refresh_leaves_the_stale_entry_and_the_next_request_tries_again(self):
        o = self.origin("o1")
        t = self.torii(cache_config(o))
        path = "/swr-down?cc=max-age=1,stale-while-revalidate=60&etag=d1&size=32"
        self.assertEqual(h.get(t.addr(), path).status, 200)
        o.stop()
        time.sleep(1.6)
        for _ in range(3):
            r = h.get(t.addr(), path)
            self.assertEqual(r.status, 200)
            self.assertEqual(len(r.body), 32)
            self.assertEqual(r.header("Cache-Status"),
                             "torii; hit; detail=stale-while-revalidate")
            time.sleep(0.3)  # the refresh fails meanwhile (connection refused)
        t.check_alive()


class StaleIfError(h.ToriiCase):
    def test_stale_entry_answers_while_the_origin_is_down(self):
        o = self.origin("o1")
        t = self.torii(cache_config(o))
        self.assertEqual(h.get(t.addr(), "/sie?cc=max-age=1,stale-if-error=60&size=10").status,
                         200)
        self.assertEqual(h.get(t.addr(), "/nosie?cc=max-age=1&size=10").status, 200)
        o.stop()
        time.sleep(2.1)
        r = h.get(t.addr(), "/sie?cc=max-age=1,stale-if-error=60&size=10")
        self.assertEqual(r.status, 200)
        self.assertEqual(len(r.body), 10)
        self.assertTrue(r.header("Cache-Status").startswith("torii; fwd=stale; fwd-status=50"),
                        r.header("Cache-Status"))
        self.assertIn("detail=stale-if-error", r.header("Cache-Status"))
        # Without stale-if-error the failure shows.
        self.assertIn(h.get(t.addr(), "/nosie?cc=max-age=1&size=10").status, (502, 503))


class Coalescing(h.ToriiCase):
    CLIENTS = 1000

    def test_a_thousand_concurrent_misses_make_one_origin_request(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = self.CLIENTS + 512
        if soft < want:
            if hard != resource.RLIM_INFINITY and hard < want:
                self.skipTest(f"RLIMIT_NOFILE hard limit {hard} < {want}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        o = self.origin("o1")
        t = self.torii(cache_config(o, workers=2))
        addr = t.addr()
        before = o.stats()["requests"]
        path = "/coalesce?cc=max-age=60&size=4096&delay=1500"
        request = h.build_request("GET", path)
        sel = selectors.DefaultSelector()
        socks = []
        try:
            for _ in range(self.CLIENTS):
                s = socket.create_connection(addr, timeout=10)
                s.sendall(request)
                s.setblocking(False)
                socks.append(s)
                sel.register(s, selectors.EVENT_READ, bytearray())
            done = 0
            deadline = time.monotonic() + 60
            bodies = {}
            while done < self.CLIENTS and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1):
                    chunk = key.fileobj.recv(65536)
                    key.data.extend(chunk)
                    resp = h.parse_responses(bytes(key.data))
                    if (resp and resp[0].complete) or not chunk:
                        sel.unregister(key.fileobj)
                        done += 1
                        bodies[key.fileobj] = resp
            self.assertEqual(done, self.CLIENTS)
            statuses = [r[0].status for r in bodies.values() if r]
            self.assertEqual(statuses.count(200), self.CLIENTS)
            self.assertTrue(all(len(r[0].body) == 4096 for r in bodies.values()))
        finally:
            for s in socks:
                s.close()
        self.assertEqual(o.stats()["requests"] - before, 1)
        collapsed = metrics(t)[("torii_cache_collapsed_total", "")]
        self.assertGreaterEqual(collapsed, self.CLIENTS - 1 - 50)  # a few may arrive after it

    def test_uncacheable_response_releases_the_waiters_at_once(self):
        o = self.origin("o1")
        t = self.torii(cache_config(o, cache={"lock_timeout": "30s"}))
        path = "/nocache?cc=no-store&delay=500"
        results = []

        def one():
            start = time.monotonic()
            r = h.get(t.addr(), path)
            results.append((r.status, time.monotonic() - start))

        threads = [threading.Thread(target=one) for _ in range(5)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(20)
        self.assertEqual([s for s, _ in results], [200] * 5)
        # Released when the first response turned out unstorable, not at lock_timeout.
        self.assertLess(max(d for _, d in results), 10)


class CompressedVariants(CacheCase):
    route_extra = {"compress": True}

    def test_variant_is_made_once_and_served_from_the_cache(self):
        path = "/cv?cc=max-age=60&size=20000&text=1&etag=e"
        plain = self.get(path).body
        before = metrics(self.t)
        bodies = []
        for _ in range(3):
            r = self.get(path, headers=[("Accept-Encoding", "gzip")])
            self.assertEqual(r.header("Content-Encoding"), "gzip")
            self.assertEqual(r.header("Vary"), "Accept-Encoding")
            self.assertEqual(r.header("ETag"), 'W/"e"')
            self.assertCacheStatus(r, "torii; hit")
            self.assertEqual(gzip.decompress(r.body), plain)
            bodies.append(r.body)
        after = metrics(self.t)
        self.assertEqual(after[("torii_cache_variants_total", "")] -
                         before[("torii_cache_variants_total", "")], 1)
        self.assertEqual(after[("torii_compressed_responses_total", "")] -
                         before[("torii_compressed_responses_total", "")], 1)
        self.assertEqual(len(set(bodies)), 1)
        r = self.get(path)
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertEqual(r.body, plain)


class MemoryBound(CacheCase):
    cache = {"memory": "1MiB", "max_object": "64KiB"}

    def test_a_flood_of_distinct_urls_stays_within_memory(self):
        for start in range(0, 1500, 500):  # within keepalive_requests per connection
            c = h.Client(self.addr)
            try:
                for i in range(start, start + 500):
                    r = c.request("GET", f"/flood{i}?cc=max-age=600&size=2000")
                    self.assertEqual(r.status, 200)
            finally:
                c.close()
        m = metrics(self.t)
        self.assertLessEqual(m[("torii_cache_bytes", 'cache="main"')], 1 << 20)
        self.assertGreater(m[("torii_cache_evictions_total", 'cache="main"')], 0)
        # The most recent ones are still there.
        self.assertCacheStatus(self.get("/flood1499?cc=max-age=600&size=2000"), "torii; hit")


if __name__ == "__main__":
    unittest.main()


class DiskTier(h.ToriiCase):
    """[cache.NAME] disk: objects beyond the memory bound are served from the file, a restart
    finds them (revalidated on first use), a purge reaches them, a torn record is never served,
    and a reload keeps the tier."""

    OBJECTS = 40
    SIZE = 64 * 1024

    def config(self, origin, disk):
        return cache_config(origin, {"memory": "1MiB", "max_object": "256KiB",
                                     "disk": {"path": disk, "size": "16MiB"}})

    def start(self, config):
        """A torii on `config` whose disk tier has finished its start-up scan."""
        t = self.torii(config)
        self.wait_metric(t, "torii_cache_disk_ready", "", 1)
        return t

    def origin_and_config(self):
        o = self.origin("o1")
        disk = os.path.join(self.tmpdir(), "cache.disk")
        return o, disk, self.config(o, disk)

    @staticmethod
    def disk_metric(t, name, labels=""):
        """The sample of `name` for [cache.main] (with `labels` after the cache's)."""
        want = 'cache="main"' + ("," + labels if labels else "")
        return metrics(t).get((name, want))

    def wait_metric(self, t, name, labels, want, timeout=20):
        deadline = time.monotonic() + timeout * h.SLOW
        value = None
        while time.monotonic() < deadline:
            value = self.disk_metric(t, name, labels)
            if value is not None and value >= want:
                return value
            time.sleep(0.05)
        self.fail(f"{name}{{{labels}}} = {value}, expected >= {want}: {metrics(t)}")

    def fill(self, t, paths):
        bodies = {}
        for p in paths:
            r = h.get(t.addr(), p)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("Cache-Status"), "torii; fwd=miss; stored")
            bodies[p] = r.body
        # Written through to disk after each response: wait for the last write to land.
        self.wait_metric(t, "torii_cache_disk_writes_total", 'outcome="ok"', len(paths))
        return bodies

    def paths(self, tag, n=OBJECTS, etag=True):
        return [f"/disk-{tag}-{i}?cc=max-age=600&size={self.SIZE}" + (f"&etag={tag}{i}" if etag
                                                                      else "")
                for i in range(n)]

    def test_a_working_set_beyond_memory_is_served_from_disk(self):
        o, disk, config = self.origin_and_config()
        t = self.start(config)
        paths = self.paths("ws")
        bodies = self.fill(t, paths)  # 2.5 MiB: most of it no longer in the 1 MiB memory tier
        before = o.stats()["requests"]
        statuses = []
        for _ in range(2):
            for p in paths:
                r = h.get(t.addr(), p)
                self.assertEqual(r.status, 200)
                self.assertEqual(r.body, bodies[p])
                statuses.append(r.header("Cache-Status"))
        self.assertEqual(o.stats()["requests"], before, "a hit on disk reached the origin")
        self.assertIn("torii; hit; detail=disk", statuses)
        self.assertEqual(set(statuses), {"torii; hit", "torii; hit; detail=disk"})
        self.assertGreaterEqual(self.disk_metric(t, "torii_cache_disk_reads_total",
                                                 'outcome="hit"'),
                                statuses.count("torii; hit; detail=disk"))
        self.assertEqual(self.disk_metric(t, "torii_cache_disk_reads_total",
                                          'outcome="corrupt"'), 0)
        # Served in place from the file's mapping (its pages were just written: in memory).
        self.assertGreaterEqual(self.disk_metric(t, "torii_cache_disk_mapped_total"),
                                statuses.count("torii; hit; detail=disk"))
        self.assertLessEqual(self.disk_metric(t, "torii_cache_bytes"), 1 << 20)
        self.assertEqual(self.disk_metric(t, "torii_cache_disk_entries"), len(paths))
        # The file never grows past its size, whatever is written.
        self.assertEqual(os.path.getsize(disk), 16 << 20)
        # A reload keeps the tier (and what it holds).
        os.kill(t.pid, signal.SIGHUP)
        h.wait_for(lambda: metrics(t).get(("torii_config_reloads_total", "")) == 1,
                   10 * h.SLOW, interval=0.05, what="the reload")
        r = h.get(t.addr(), paths[0])
        self.assertIn(r.header("Cache-Status"), ("torii; hit", "torii; hit; detail=disk"))
        self.assertEqual(o.stats()["requests"], before)

    def test_a_record_being_sent_is_never_written_over(self):
        """A disk hit is sent from the file's mapping; while a slow client still reads it, the
        log wraps around the record (the write head passes over it, pinned) and every byte the
        client gets is the object's."""
        o = self.origin("o1")
        disk = os.path.join(self.tmpdir(), "cache.disk")
        mib = 1 << 20
        t = self.start(cache_config(o, {"memory": "24MiB", "max_object": "6MiB",
                                        "disk": {"path": disk, "size": "32MiB"}}))
        # Larger than a socket's largest send buffer (tcp_wmem: 4 MiB): part of it stays with
        # torii until the client reads.
        size = 5 * mib
        big = f"/disk-pin-big?cc=max-age=600&size={size}"
        expected = self.fill(t, [big])[big]
        # A memory hit larger than the client's high-water mark (256 KiB) is sent whole.
        mem = f"/disk-pin-mem?cc=max-age=600&text=1&size={size}"
        in_memory = self.fill(t, [mem])[mem]
        r = h.get(t.addr(), mem)
        self.assertEqual(r.header("Cache-Status"), "torii; hit")
        self.assertTrue(r.body == in_memory, f"{len(r.body)} bytes of {size}")
        # The big one out of the memory tier (24 MiB), still on disk (30 of 32 MiB written).
        self.fill(t, [f"/disk-pin-a{i}?cc=max-age=600&text=1&size={size}" for i in range(4)])
        r = h.get(t.addr(), big)
        self.assertEqual(r.header("Cache-Status"), "torii; hit; detail=disk")
        self.assertEqual(r.body, expected)
        mapped = self.disk_metric(t, "torii_cache_disk_mapped_total")
        self.assertGreaterEqual(mapped, 1)
        s = h.connect(t.addr(), timeout=10 * h.SLOW, rcvbuf=4096)
        try:
            s.sendall(h.build_request("GET", big))
            got = s.recv(65536)
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
            self.assertIn(b"detail=disk", got.partition(b"\r\n\r\n")[0], got[:600])
            self.assertEqual(self.disk_metric(t, "torii_cache_disk_mapped_total"), mapped + 1)
            self.assertEqual(self.disk_metric(t, "torii_cache_disk_pinned"), 1)
            # 25 MiB more: the head goes around the file and past the record being sent.
            writes = self.disk_metric(t, "torii_cache_disk_writes_total", 'outcome="ok"')
            others = [f"/disk-pin-b{i}?cc=max-age=600&text=1&size={size}" for i in range(5)]
            for p in others:
                self.assertEqual(h.get(t.addr(), p).status, 200)
            self.wait_metric(t, "torii_cache_disk_writes_total", 'outcome="ok"',
                             writes + len(others))
            self.assertEqual(self.disk_metric(t, "torii_cache_disk_pinned"), 1)
            data = got
            deadline = time.monotonic() + 30 * h.SLOW
            while time.monotonic() < deadline:
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep and len(body) >= size:
                    break
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        finally:
            s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        self.assertEqual(len(body), size)
        self.assertTrue(body == expected, "the body sent from the mapping changed under it")
        h.wait_for(lambda: self.disk_metric(t, "torii_cache_disk_pinned") == 0, 10 * h.SLOW,
                   interval=0.05, what="the record unpinned")
        # Its space is taken on the next lap; the big object is still whole where it is read.
        self.assertEqual(self.disk_metric(t, "torii_cache_disk_reads_total", 'outcome="corrupt"'),
                         0)

    def test_a_restart_finds_the_entries_and_revalidates_them(self):
        o, disk, config = self.origin_and_config()
        t = self.start(config)
        paths = self.paths("rs", n=8)
        bodies = self.fill(t, paths)
        # PURGE reaches the disk too: a purged URL is not found after the restart.
        purge = h.get(t.addr(), paths[7], method="PURGE")
        self.assertEqual(purge.status, 200)
        t.stop()
        t = self.torii(config)
        self.assertEqual(self.wait_metric(t, "torii_cache_disk_loaded", "", 7), 7)
        before = len(o.log_entries())
        for p in paths[:7]:
            r = h.get(t.addr(), p)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, bodies[p])
            # Stale after a restart: revalidated with the stored ETag, answered 304.
            self.assertEqual(r.header("Cache-Status"), "torii; fwd=stale; fwd-status=304")
            r = h.get(t.addr(), p)
            self.assertEqual(r.header("Cache-Status"), "torii; hit")
        seen = o.log_entries()[before:]
        self.assertEqual(len(seen), 7)
        for entry in seen:
            names = {k.lower(): v for k, v in entry["headers"]}
            self.assertIn("if-none-match", names, entry)
        r = h.get(t.addr(), paths[7])
        self.assertEqual(r.header("Cache-Status"), "torii; fwd=miss; stored")

    def test_a_torn_record_is_never_served(self):
        o, disk, config = self.origin_and_config()
        t = self.start(config)
        paths = self.paths("torn", n=3, etag=False)
        bodies = self.fill(t, paths)
        os.kill(t.pid, signal.SIGKILL)  # a crash: nothing flushed, nothing closed cleanly
        t.stop(expect_code=None)
        # Damage one record's body, as a write cut short by a crash would leave it.
        with open(disk, "r+b") as f:
            data = f.read()
            at = data.find(b"/disk-torn-1?")
            self.assertGreater(at, 0)
            f.seek(at + 4096)
            f.write(b"\xde\xad\xbe\xef" * 16)
        t = self.start(config)
        for p in paths:
            r = h.get(t.addr(), p)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, bodies[p], p)
        self.assertEqual(self.disk_metric(t, "torii_cache_disk_reads_total",
                                          'outcome="corrupt"'), 1)

    def test_a_crash_while_writing_never_serves_a_torn_record(self):
        # SIGKILL while clients fill the cache (writes in flight), then a restart: every URL is
        # answered with its own head and body, from the disk or from the origin, never a mix.
        o, disk, config = self.origin_and_config()
        t = self.start(config)
        n = 240

        def path(i):
            return f"/crash-{i}?cc=max-age=600&etag=c{i}&hdr=X-Key:{i}&size={20000 + 37 * i}"

        done = []
        lock = threading.Lock()

        def client(start):
            c = None
            for i in range(start, n, 4):
                try:
                    c = c or h.Client(t.addr(), timeout=10 * h.SLOW)
                    c.request("GET", path(i))
                    with lock:
                        done.append(i)
                except Exception:  # torii is killed under it
                    return

        threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(4)]
        for th in threads:
            th.start()
        h.wait_for(lambda: len(done) >= n // 2, 30 * h.SLOW, interval=0.005,
                   what="half the URLs fetched")
        os.kill(t.pid, signal.SIGKILL)
        for th in threads:
            th.join(15)
        t.stop(expect_code=None)
        t = self.start(config)
        reference = {}
        for i in range(n):
            size = 20000 + 37 * i
            if size not in reference:
                reference[size] = h.get(o.addr, f"/?size={size}").body
            r = h.get(t.addr(), path(i))
            self.assertEqual(r.status, 200, i)
            self.assertEqual(r.header("X-Key"), str(i), f"{i}: {r.headers}")
            self.assertEqual(r.body, reference[size], f"{i}: the body is not its own")
        t.check_alive()

    def test_bad_disk_settings_are_refused_at_start(self):
        o = self.origin("o1")
        c = cache_config(o, {"disk": {"path": "relative/path", "size": "16MiB"}})
        t = h.Torii(c, dir=tempfile.mkdtemp(dir=self.tmpdir()), start=False)
        self.addCleanup(t.cleanup)
        p = subprocess.run([h.torii_bin(), "-t", "-c", t.config_path], capture_output=True,
                           text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("expected an absolute file path", p.stderr + p.stdout)
        missing = os.path.join(self.tmpdir(), "no", "such", "dir", "cache")
        c = cache_config(o, {"disk": {"path": missing, "size": "16MiB"}})
        t = h.Torii(c, dir=tempfile.mkdtemp(dir=self.tmpdir()), start=False)
        self.addCleanup(t.cleanup)
        with self.assertRaises(AssertionError) as ctx:
            t.start(10)
        self.assertIn("disk cache " + missing, str(ctx.exception))
        t.stop(expect_code=None)
