"""TLS through the real binary (issue #5, BAD-INPUTS T1-T8): TLS 1.3 negotiated, SNI picks the
certificate, ALPN, ECDSA and RSA side by side, session resumption across reconnects and
workers and across processes sharing a key file, TLS 1.2 refused by default, plain HTTP and
garbage on the TLS port closed cleanly (no fd leak), a stalled handshake closed at
handshake_timeout, X-Forwarded-Proto and the access log, http_to_https, and TLS to backends
with verification (a wrong CA is a 502). Certificates are made at run time with openssl."""

import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import harness as h

OPENSSL = shutil.which("openssl")


def run(args, cwd):
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A test CA and leaf certificates signed by it (made once per test class)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="torii-tls-pki-")
        run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3",
             "-subj", "/CN=torii test CA"], self.dir)
        # A second CA that signed nothing torii serves (the "wrong CA").
        run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.crt", "-days", "3",
             "-subj", "/CN=another CA"], self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def leaf(self, name, sans, kind="ec", ca="ca", ext=""):
        """{name}.crt / {name}.key for DNS `sans`, EC P-256 or RSA 2048, signed by `ca`
        ("ca", or "other-ca": one torii does not trust); `ext`: more extension lines."""
        key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec" else \
              ["-newkey", "rsa:2048"]
        run([OPENSSL, "req"] + key + ["-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                                      "-subj", f"/CN={sans[0]}"], self.dir)
        with open(self.path(f"{name}.ext"), "w") as f:
            f.write("subjectAltName=" + ",".join(f"DNS:{s}" for s in sans) + "\n" + ext)
        run([OPENSSL, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "3", "-extfile", f"{name}.ext"],
            self.dir)
        return {"cert": self.path(f"{name}.crt"), "key": self.path(f"{name}.key")}

    def revoke(self, names):
        """A CRL (crl.pem) from the test CA revoking the leaves `names`."""
        with open(self.path("ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\ncrlnumber = crlnumber\n"
                    "default_md = sha256\ndefault_crl_days = 3\n")
        open(self.path("index.txt"), "w").close()
        with open(self.path("crlnumber"), "w") as f:
            f.write("01\n")
        base = [OPENSSL, "ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt"]
        for name in names:
            run(base + ["-revoke", f"{name}.crt"], self.dir)
        run(base + ["-gencrl", "-out", "crl.pem"], self.dir)
        return self.path("crl.pem")

    def ocsp(self, name, status="V"):
        """{name}.ocsp: a DER OCSP response from the test CA saying `name` is good ("V") or
        revoked ("R"), valid for a day (openssl ocsp as the responder)."""
        def field(flag):
            out = subprocess.run([OPENSSL, "x509", "-in", f"{name}.crt", "-noout", flag],
                                 cwd=self.dir, capture_output=True, check=True).stdout.decode()
            return out.strip().split("=", 1)[1]
        serial = field("-serial")
        end = subprocess.run([OPENSSL, "x509", "-in", f"{name}.crt", "-noout", "-enddate",
                              "-dateopt", "iso_8601"], cwd=self.dir, capture_output=True,
                             check=True).stdout.decode()
        stamp = re.sub(r"[^0-9]", "", end.split("=", 1)[1])[2:14] + "Z"
        revoked = stamp if status == "R" else ""
        with open(self.path(f"{name}.index"), "w") as f:
            f.write(f"{status}\t{stamp}\t{revoked}\t{serial}\tunknown\t/CN={name}\n")
        run([OPENSSL, "ocsp", "-issuer", "ca.crt", "-cert", f"{name}.crt", "-no_nonce",
             "-reqout", f"{name}.req"], self.dir)
        run([OPENSSL, "ocsp", "-index", f"{name}.index", "-rsigner", "ca.crt", "-rkey", "ca.key",
             "-CA", "ca.crt", "-reqin", f"{name}.req", "-respout", f"{name}.ocsp", "-ndays", "1"],
            self.dir)
        return self.path(f"{name}.ocsp")

    def fullchain(self, name):
        """{name}.full.crt: the leaf, then the CA (the issuer an OCSP response is checked with)."""
        with open(self.path(f"{name}.full.crt"), "w") as out:
            for part in (f"{name}.crt", "ca.crt"):
                with open(self.path(part)) as f:
                    out.write(f.read())
        return self.path(f"{name}.full.crt")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def client_context(pki, alpn=("http/1.1",), max_version=None, min_version=None):
    ctx = ssl.create_default_context(cafile=pki.path("ca.crt"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if max_version:
        ctx.maximum_version = max_version
    if min_version:
        ctx.minimum_version = min_version
    return ctx


def tls_connect(addr, ctx, server_name="a.test", session=None, timeout=10):
    raw = socket.create_connection(addr, timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_name, session=session)
    except Exception:
        raw.close()
        raise


def tls_get(s, path, host="a.test", headers=None):
    """One request on an established TLS socket; returns the harness Response."""
    s.sendall(h.build_request("GET", path, headers=headers, host=host))
    data = b""
    while True:
        resp = h.parse_responses(data) if data else []
        if resp and resp[0].complete:
            return resp[0]
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data[:200]!r}")
        data += chunk


def tls_config(origin, pki, certificates, tls_extra=None, workers=1, listeners_extra=None):
    c = h.proxy_config([origin], workers=workers)
    tls = {"certificates": certificates, "handshake_timeout": "1s"}
    tls.update(tls_extra or {})
    c.listeners = [{"name": "https", "address": "127.0.0.1:0", "tls": tls}]
    c.listeners += listeners_extra or []
    c.tables["admin"] = {"address": "127.0.0.1:0"}
    return c


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
class Termination(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        a_ec = cls.pki.leaf("a-ec", ["a.test", "www.a.test"])
        a_rsa = cls.pki.leaf("a-rsa", ["a.test", "www.a.test"], kind="rsa")
        wild = cls.pki.leaf("wild", ["*.c.test"])
        cls.o = cls.class_origin("o1")
        cls.t = cls.class_torii(tls_config(cls.o, cls.pki, [a_ec, a_rsa, wild], workers=2))
        cls.addr = cls.t.addr("https")

    def tearDown(self):
        self.t.check_alive()

    def test_tls13_alpn_and_forwarded_proto(self):
        with tls_connect(self.addr, client_context(self.pki)) as s:
            self.assertEqual(s.version(), "TLSv1.3")
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
            r = tls_get(s, "/headers")
            self.assertEqual(r.status, 200)
            self.assertIn(b"X-Forwarded-Proto: https", r.body)
            # Keep-alive over TLS: a second request on the same connection.
            self.assertEqual(tls_get(s, "/?size=100000").body_len if hasattr(r, "body_len")
                             else len(tls_get(s, "/?size=100000").body), 100000)

    def test_sni_picks_the_certificate(self):
        for name, want in (("a.test", "a.test"), ("www.a.test", "a.test"),
                           ("x.c.test", "*.c.test")):
            with self.subTest(sni=name):
                with tls_connect(self.addr, client_context(self.pki), server_name=name) as s:
                    sans = [v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS"]
                    self.assertIn(want, sans)
        # Unknown or absent SNI: the default (first) certificate.
        ctx = client_context(self.pki)
        ctx.check_hostname = False
        with tls_connect(self.addr, ctx, server_name="unknown.test") as s:
            sans = [v for k, v in s.getpeercert()["subjectAltName"] if k == "DNS"]
            self.assertIn("a.test", sans)

    # R8: the server name picked one certificate, Host names a site another one serves (the
    # default certificate, for a name no certificate lists): 421 Misdirected Request, nothing
    # forwarded, and the connection stays usable for a request that matches. A Host the same
    # certificate covers is fine.
    def test_misdirected_request_421(self):
        before = len(self.o.log_entries())
        with tls_connect(self.addr, client_context(self.pki), server_name="a.test") as s:
            self.assertEqual(tls_get(s, "/", host="x.c.test").status, 421)
            self.assertEqual(len(self.o.log_entries()), before)
            for host in ("a.test", "WWW.A.TEST:443"):
                self.assertEqual(tls_get(s, "/", host=host).status, 200, host)
        with tls_connect(self.addr, client_context(self.pki), server_name="x.c.test") as s:
            self.assertEqual(tls_get(s, "/", host="y.c.test").status, 200)
            for host in ("a.test", "other.example"):
                self.assertEqual(tls_get(s, "/", host=host).status, 421, host)

    def test_ecdsa_preferred_rsa_for_rsa_only_clients(self):
        def peer_type(sigalgs):
            p = subprocess.run(
                [OPENSSL, "s_client", "-connect", f"127.0.0.1:{self.addr[1]}", "-servername",
                 "a.test", "-sigalgs", sigalgs, "-CAfile", self.pki.path("ca.crt")],
                input=b"", capture_output=True, timeout=30)
            out = p.stdout.decode(errors="replace")
            m = re.search(r"Peer signature type: (\S+)", out)
            return m.group(1) if m else out[-500:]

        self.assertEqual(peer_type("ECDSA+SHA256:RSA-PSS+SHA256"), "ECDSA")
        self.assertEqual(peer_type("RSA-PSS+SHA256"), "RSA-PSS")

    def test_resumption_across_reconnects_and_workers(self):
        ctx = client_context(self.pki)
        with tls_connect(self.addr, ctx) as s:
            tls_get(s, "/")  # the ticket arrives after the handshake
            session = s.session
            self.assertFalse(s.session_reused)
        reused = 0
        for _ in range(20):  # two workers: the connections land on both
            with tls_connect(self.addr, ctx, session=session) as s:
                tls_get(s, "/")
                reused += 1 if s.session_reused else 0
                session = s.session
        self.assertGreaterEqual(reused, 19)

    def test_tls12_is_refused_by_default(self):
        with self.assertRaises(ssl.SSLError):
            with tls_connect(self.addr, client_context(self.pki,
                                                       max_version=ssl.TLSVersion.TLSv1_2)):
                pass
        self.t.check_alive()

    def test_plain_http_gets_400_and_a_close(self):
        data, closed = self._raw_exchange(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertTrue(data.startswith(b"HTTP/1.1 400"), data[:200])
        self.assertIn(b"plain HTTP", data)
        self.assertTrue(closed)
        # Logged (at most one line a second per worker: other tests' failures may take it).
        self.assertRegex(self.t.error_log(), r"TLS with 127\.0\.0\.1 failed: ")

    def test_garbage_is_closed_without_leaking(self):
        pid = self.t.proc.pid
        before = h.fd_count(pid)
        for i in range(200):
            data, closed = self._raw_exchange(os.urandom(64 + i) if i % 2 else
                                              b"\x16\x03\x01\x00\x05hello-not-a-client-hello")
            self.assertTrue(closed)
        h.wait_for(lambda: h.fd_count(pid) <= before + 2, 10, what="fds back to the baseline")

    def test_stalled_handshake_is_closed_at_handshake_timeout(self):
        s = socket.create_connection(self.addr, timeout=10)
        try:
            s.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
            start = time.monotonic()
            data, closed = h.read_until_eof(s, 8)
            self.assertTrue(closed)
            self.assertLess(time.monotonic() - start, 6)
        finally:
            s.close()

    def test_access_log_has_the_tls_facts(self):
        with tls_connect(self.addr, client_context(self.pki)) as s:
            tls_get(s, "/logged-tls")
        line = h.wait_for(lambda: next((l for l in self.t.access_log_lines()
                                        if "/logged-tls" in l), None), 5, what="access line")
        self.assertRegex(line, r"tls=TLSv1\.3/TLS_\S+ sni=a\.test resumed=0")

    def test_metrics_count_full_resumed_and_failed_handshakes(self):
        def sample(name, labels):
            text = h.get(self.t.addr("admin"), "/metrics").body.decode()
            m = re.search(re.escape(name + "{" + labels + "}") + r" (\d+)", text)
            return int(m.group(1)) if m else None

        before = sample("torii_tls_handshakes_total", 'listener="https",kind="resumed"')
        ctx = client_context(self.pki)
        with tls_connect(self.addr, ctx) as s:
            tls_get(s, "/")
            session = s.session
        with tls_connect(self.addr, ctx, session=session) as s:
            tls_get(s, "/")
        self._raw_exchange(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertGreater(sample("torii_tls_handshakes_total", 'listener="https",kind="resumed"'),
                           before)
        self.assertGreater(sample("torii_tls_handshakes_total", 'listener="https",kind="full"'), 0)
        self.assertGreater(sample("torii_tls_handshake_failures_total",
                                  'listener="https",reason="plain HTTP on TLS port"'), 0)

    def _raw_exchange(self, payload):
        s = socket.create_connection(self.addr, timeout=5)
        try:
            s.sendall(payload)
            return h.read_until_eof(s, 5)
        finally:
            s.close()


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
def der_of(pem_path):
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_cert_context(pki, name):
    ctx = client_context(pki)
    ctx.load_cert_chain(pki.path(f"{name}.crt"), pki.path(f"{name}.key"))
    return ctx


class MutualTls(h.ToriiCase):
    """Client certificates (#21): a listener that requires one, one that asks for one with
    routes that require it (and an allow list), a CRL, RFC 9440 fields to the backend, the
    verification in the log, and a pool presenting its own certificate to a backend."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        site = cls.pki.leaf("site", ["a.test"])
        for name in ("alice", "bob", "mallory"):
            cls.pki.leaf(name, [f"{name}.test"])
        cls.pki.leaf("eve", ["alice.test"], ca="other-ca")  # alice's name, the wrong CA
        crl = cls.pki.revoke(["mallory"])
        cls.o = cls.class_origin("o1")
        c = h.proxy_config([cls.o], server_extra={"access_log_format": "json"})
        tls = {"certificates": [site], "handshake_timeout": "2s"}
        c.listeners = [
            {"name": "req", "address": "127.0.0.1:0", "tls": tls,
             "client_auth": {"ca": cls.pki.path("ca.crt"), "mode": "require"}},
            {"name": "opt", "address": "127.0.0.1:0", "tls": tls,
             "client_auth": {"ca": cls.pki.path("ca.crt"), "mode": "optional", "crl": crl}},
        ]
        c.routes = [
            {"path_prefix": "/secure/", "pool": "app", "require_client_cert": True},
            {"path_prefix": "/alice/", "pool": "app", "client_cert_allow": ["alice.test"]},
            {"path_prefix": "/", "pool": "app"},
        ]
        cls.t = cls.class_torii(c)

    def get(self, listener, path, cert=None, headers=None):
        ctx = client_cert_context(self.pki, cert) if cert else client_context(self.pki)
        with tls_connect(self.t.addr(listener), ctx) as s:
            return tls_get(s, path, headers=headers)

    def last_record(self):
        return json.loads(self.t.access_log_lines(wait_for_count=1)[-1])

    # require: no certificate, or one from another CA, fails the handshake; a good one is
    # served and its DER reaches the backend as Client-Cert (a client's own is dropped).
    def test_required(self):
        for cert in (None, "eve"):
            with self.assertRaises((ssl.SSLError, ConnectionError, OSError), msg=cert):
                self.get("req", "/headers", cert)
        r = self.get("req", "/headers", "alice", headers=[("Client-Cert", ":Zm9v:")])
        self.assertEqual(r.status, 200)
        e = self.o.log_entries()[-1]
        self.assertEqual(h.header_of(e, "Client-Cert"),
                         [":" + base64.b64encode(der_of(self.pki.path("alice.crt"))).decode() + ":"])
        rec = self.last_record()
        self.assertEqual(rec["client_cert"]["verify"], "SUCCESS")
        self.assertIn("CN=alice.test", rec["client_cert"]["subject"])

    # optional: the handshake completes whatever the client sends; routes decide.
    def test_optional_routes_decide(self):
        self.assertEqual(self.get("opt", "/open").status, 200)
        self.assertEqual(self.last_record()["client_cert"]["verify"], "NONE")
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "Client-Cert"), [])
        for cert, status in ((None, 403), ("eve", 403), ("mallory", 403), ("bob", 200),
                             ("alice", 200)):
            self.assertEqual(self.get("opt", "/secure/x", cert).status, status, cert)
        for cert, status in (("alice", 200), ("bob", 403), ("eve", 403)):
            self.assertEqual(self.get("opt", "/alice/x", cert).status, status, cert)
        r = self.get("opt", "/open", "mallory")
        self.assertEqual(r.status, 200)  # no route demand: served, logged as failed
        self.assertEqual(self.last_record()["client_cert"]["verify"],
                         "FAILED:certificate revoked")
        self.assertEqual(h.header_of(self.o.log_entries()[-1], "Client-Cert"), [])

    # A pool with tls = { cert, key } presents its certificate to a backend that requires one
    # (a second torii here, which forwards what it verified).
    def test_pool_client_certificate(self):
        backend = self.torii(self.plain_backend_config())
        c = h.Config()
        c.server["workers"] = 1
        host, port = backend.addr("req")
        c.add_pool("app", [f"{host}:{port}"],
                   tls={"ca": self.pki.path("ca.crt"), "sni": "a.test",
                        "cert": self.pki.path("bob.crt"), "key": self.pki.path("bob.key")})
        c.add_route("app")
        front = self.torii(c)
        self.assertEqual(h.get(front.addr(), "/headers").status, 200)
        e = self.o.log_entries()[-1]
        self.assertEqual(h.header_of(e, "Client-Cert"),
                         [":" + base64.b64encode(der_of(self.pki.path("bob.crt"))).decode() + ":"])
        # Without the certificate the backend refuses the handshake: 502.
        c.pools[0]["tls"] = {"ca": self.pki.path("ca.crt"), "sni": "a.test"}
        self.assertEqual(h.get(self.torii(c).addr(), "/headers").status, 502)

    def plain_backend_config(self):
        c = h.proxy_config([self.o])
        c.listeners = [{"name": "req", "address": "127.0.0.1:0",
                        "tls": {"certificates": [{"cert": self.pki.path("site.crt"),
                                                  "key": self.pki.path("site.key")}]},
                        "client_auth": {"ca": self.pki.path("ca.crt")}}]
        return c


class CertificateReload(h.ToriiCase):
    """SIGHUP with changed certificate files: new handshakes get the new certificate, open
    connections go on; a broken new pair is refused and the old one keeps serving (#21)."""

    def reload(self, t, expect):
        before = t.error_log().count(expect)
        os.kill(t.pid, signal.SIGHUP)
        h.wait_for(lambda: t.error_log().count(expect) > before, 10 * h.SLOW,
                   what=f"'{expect}' in the error log")

    def serial(self, t):
        with tls_connect(t.addr("https"), client_context(self.pki)) as s:
            self.assertEqual(tls_get(s, "/").status, 200)
            return s.getpeercert()["serialNumber"]

    def test_swap_and_refuse_broken(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        old = self.pki.leaf("old", ["a.test"])
        new = self.pki.leaf("new", ["a.test"])
        other = self.pki.leaf("other", ["a.test"])
        d = self.tmpdir()
        live = {"cert": os.path.join(d, "site.crt"), "key": os.path.join(d, "site.key")}
        for k in ("cert", "key"):
            shutil.copy(old[k], live[k])
        t = self.torii(tls_config(self.origin("o1"), self.pki, [live]))
        old_serial = self.serial(t)
        kept = tls_connect(t.addr("https"), client_context(self.pki))
        self.addCleanup(kept.close)
        self.assertEqual(tls_get(kept, "/").status, 200)
        for k in ("cert", "key"):
            shutil.copy(new[k], live[k])
        self.reload(t, "SIGHUP: reloaded")
        new_serial = self.serial(t)
        self.assertNotEqual(new_serial, old_serial)
        self.assertEqual(tls_get(kept, "/").status, 200)  # the old connection goes on
        # A key that does not match the certificate: refused, the new pair keeps serving.
        shutil.copy(other["key"], live["key"])
        self.reload(t, "reload refused")
        self.assertEqual(self.serial(t), new_serial)
        self.assertIn("does not match", t.error_log().split("reload refused")[-1])


    def test_tickets_issued_before_a_reload_resume_after_it(self):
        # The listener's ticket settings are unchanged: it keeps its keys across SIGHUP, so a
        # client's ticket from before resumes (a fresh key set would force full handshakes).
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        site = self.pki.leaf("site", ["a.test"])
        t = self.torii(tls_config(self.origin("o1"), self.pki, [site]))
        ctx = client_context(self.pki)
        with tls_connect(t.addr("https"), ctx) as s:
            self.assertEqual(tls_get(s, "/").status, 200)
            session = s.session
        self.reload(t, "SIGHUP: reloaded")
        with tls_connect(t.addr("https"), ctx, session=session) as s:
            self.assertEqual(tls_get(s, "/").status, 200)
            self.assertTrue(s.session_reused)


class CertificateExpiry(h.ToriiCase):
    # #21: seconds to each certificate's notAfter on /metrics, and a warning at start for one
    # that ends within 30 days (the test CA's leaves live 3 days).
    def test_metric_and_warning(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        site = self.pki.leaf("site", ["a.test"])
        t = self.torii(tls_config(self.origin("o1"), self.pki, [site]))
        from test_admin import parse_metrics
        m = parse_metrics(h.get(t.addr("admin"), "/metrics").body.decode())
        key = ("torii_tls_certificate_expiry_seconds",
               f'listener="https",certificate="{site["cert"]}",name="a.test"')
        self.assertIn(key, m)
        self.assertGreater(m[key], 2 * 86400)
        self.assertLessEqual(m[key], 3 * 86400)
        status = json.loads(h.get(t.addr("admin"), "/status.json").body)
        certs = [l for l in status["listeners"] if l["name"] == "https"][0]["certificates"]
        self.assertEqual(certs[0]["name"], "a.test")
        self.assertGreater(certs[0]["expires_in_s"], 2 * 86400)
        self.assertRegex(t.error_log() + t.stderr_text(),
                         r"listener https: certificate \S+site.crt \(a.test\) expires in [23] day")


class OcspStapling(h.ToriiCase):
    """OCSP stapling from a file (#21): stapled to clients that ask (openssl s_client -status),
    checked at load (revoked, another certificate's, not the issuer's signature: refused), and
    a Must-Staple certificate refused without one."""

    def status(self, port):
        p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                            "a.test", "-status", "-CAfile", self.pki.path("ca.crt")],
                           input=b"", capture_output=True, timeout=30)
        return p.stdout.decode(errors="replace")

    def check(self, c):
        path = os.path.join(self.tmpdir(), "check.toml")
        with open(path, "w") as f:
            f.write(c.render(os.path.join(self.tmpdir(), "r"), "off", "-"))
        return subprocess.run([h.torii_bin(), "-t", "-c", path], capture_output=True, timeout=30,
                              env=h.child_env())

    def test_stapled_and_checked(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        site = self.pki.leaf("site", ["a.test"])
        other = self.pki.leaf("other", ["b.test"])
        good = self.pki.ocsp("site")
        o = self.origin("o1")
        stapled = {"cert": self.pki.fullchain("site"), "key": site["key"], "ocsp_file": good}
        c = tls_config(o, self.pki, [stapled])
        c.listeners.append({"name": "plain", "address": "127.0.0.1:0",
                            "tls": {"certificates": [site]}})
        t = self.torii(c)
        out = self.status(t.addr("https")[1])
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn("OCSP response: no response sent", self.status(t.addr("plain")[1]))
        # Refused at load, each naming why.
        for ocsp, why in ((self.pki.ocsp("site", "R"), "revoked"),
                          (self.pki.ocsp("other"), "not about certificate")):
            c.listeners[0]["tls"]["certificates"] = [dict(stapled, ocsp_file=ocsp)]
            p = self.check(c)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(why, p.stderr.decode())
        c.listeners[0]["tls"]["certificates"] = [dict(stapled, cert=site["cert"])]
        p = self.check(c)
        self.assertIn("issuer after the leaf", p.stderr.decode())
        # Must-Staple (RFC 7633) without an ocsp_file: refused.
        must = self.pki.leaf("must", ["a.test"], ext="tlsfeature=status_request\n")
        c.listeners = [c.listeners[1]]
        c.listeners[0]["tls"]["certificates"] = [must]
        p = self.check(c)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("Must-Staple", p.stderr.decode())


class SecretsNeverLogged(h.ToriiCase):
    """#18: private keys, session ticket keys and Basic-auth passwords never reach a log (at
    debug level), the metrics or the status page, even when loading them fails."""

    def test_no_secret_in_any_output(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        site = self.pki.leaf("site", ["a.test"])
        d = self.tmpdir()
        ticket_key = os.urandom(80)
        with open(os.path.join(d, "ticket.key"), "wb") as f:
            f.write(ticket_key)
        from test_edge import crypt_hash
        with open(os.path.join(d, "htpasswd"), "w") as f:
            f.write("alice:" + crypt_hash("pa55-w0rd-secret", "sha512") + "\n")
        c = tls_config(self.origin("o1"), self.pki, [site],
                       tls_extra={"session_ticket_key_file": os.path.join(d, "ticket.key")})
        c.server.update({"log_level": "debug", "access_log_format": "json"})
        c.routes = [{"path_prefix": "/", "pool": "app",
                     "auth": {"users_file": os.path.join(d, "htpasswd")}}]
        t = self.torii(c)
        for password in ("pa55-w0rd-secret", "wrong-secret-guess"):
            with tls_connect(t.addr("https"), client_context(self.pki)) as s:
                token = base64.b64encode(f"alice:{password}".encode()).decode()
                s.sendall(h.build_request("GET", "/headers", host="a.test",
                                          headers=[("Authorization", "Basic " + token)]))
                s.recv(65536)
        with socket.create_connection(t.addr("https")) as raw:  # a failed handshake
            raw.sendall(b"\x16\x03\x01\x00\x05hello")
            raw.recv(100)
        # A reload with a key file that is not a key: refused, naming the file only.
        with open(site["key"]) as f:
            key_pem = f.read()
        with open(site["key"], "w") as f:
            f.write(key_pem.replace("PRIVATE KEY", "PRIVATE KEZ"))
        before = t.error_log().count("reload refused")
        os.kill(t.pid, signal.SIGHUP)
        h.wait_for(lambda: t.error_log().count("reload refused") > before, 10 * h.SLOW,
                   what="the refused reload")
        outputs = [t.error_log(), t.stderr_text(), "\n".join(t.access_log_lines()),
                   h.get(t.addr("admin"), "/metrics").body.decode(),
                   h.get(t.addr("admin"), "/status.json").body.decode()]
        key_lines = [l for l in key_pem.splitlines() if l and not l.startswith("-----")]
        secrets = key_lines + ["pa55-w0rd-secret", "wrong-secret-guess", ticket_key.hex(),
                               base64.b64encode(ticket_key).decode()[:40]]
        for text in outputs:
            for secret in secrets:
                self.assertNotIn(secret, text)
        self.assertIn("alice", outputs[2])  # the user is logged, the password is not


class Groups(h.ToriiCase):
    """Key exchange groups (#21): the default serves clients that offer only X448 or only
    FFDHE; `groups` narrows it; unknown names are refused by torii -t."""

    def handshake(self, port, group):
        p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                            "a.test", "-groups", group, "-CAfile", self.pki.path("ca.crt")],
                           input=b"", capture_output=True, timeout=30)
        out = p.stdout.decode(errors="replace")
        m = re.search(r"(?:Server Temp Key|Negotiated TLS1.3 group): (\S+)", out)
        return (m.group(1).rstrip(",") if m else None), out

    def test_default_and_narrowed(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        site = self.pki.leaf("site", ["a.test"])
        o = self.origin("o1")
        c = tls_config(o, self.pki, [site])
        c.listeners.append({"name": "narrow", "address": "127.0.0.1:0",
                            "tls": {"certificates": [site], "groups": ["X25519", "P-256"]}})
        t = self.torii(c)
        for group, shown in (("X448", "X448"), ("ffdhe2048", "DH, 2048 bits"),
                             ("P-384", "prime384v1|secp384r1|P-384"), ("X25519", "X25519")):
            got, out = self.handshake(t.addr("https")[1], group)
            self.assertIsNotNone(got, f"{group}: {out[-400:]}")
            self.assertRegex(out, r"Server Temp Key: [^\n]*(" + shown + ")")
        got, out = self.handshake(t.addr("narrow")[1], "X448")
        self.assertIsNone(got, out[-400:])
        c.listeners[1]["tls"]["groups"] = ["X25519", "nope"]
        path = os.path.join(self.tmpdir(), "bad.toml")
        with open(path, "w") as f:
            f.write(c.render(os.path.join(self.tmpdir(), "r"), "off", "-"))
        p = subprocess.run([h.torii_bin(), "-t", "-c", path], capture_output=True, timeout=30,
                           env=h.child_env())
        self.assertEqual(p.returncode, 1)
        self.assertIn("groups [X25519:nope]", p.stderr.decode())


class RecordReader:
    """A TLS 1.3 client over memory BIOs that sees the records on the wire: the length of each
    record (ciphertext and 17 bytes: the content type and the AEAD tag) and its plaintext."""

    def __init__(self, addr, ctx, server_name="a.test"):
        self.sock = socket.create_connection(addr, timeout=10)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=server_name)
        self.wire = b""  # bytes received, not yet split into whole records
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._send()
                self._receive()
        self._send()

    def close(self):
        self.sock.close()

    def _send(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _receive(self):
        """Reads from the socket; returns the lengths of the records it completed."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        self.inc.write(chunk)
        self.wire += chunk
        lengths = []
        while len(self.wire) >= 5 and len(self.wire) >= 5 + int.from_bytes(self.wire[3:5], "big"):
            n = int.from_bytes(self.wire[3:5], "big")
            lengths.append(n)
            self.wire = self.wire[5 + n:]
        return lengths

    def get(self, path):
        """One request; returns (response, [record lengths]) for the records that carried the
        response (and any ticket that came with them)."""
        self.tls.write(h.build_request("GET", path, host="a.test"))
        self._send()
        data, lengths = b"", []
        while True:
            resp = h.parse_responses(data) if data else []
            if resp and resp[0].complete:
                return resp[0], lengths
            lengths += self._receive()
            while True:
                try:
                    data += self.tls.read(65536)
                except ssl.SSLWantReadError:
                    break


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
class RecordSizes(h.ToriiCase):
    """tls.record_size: dynamic by default (records of one TCP segment while a connection is
    new or back from an idle second, then full 16 KiB records), or a fixed cap."""

    SMALL = 1378 + 17  # RecordSizer::kSmallRecord on the wire, less the 5-byte header
    FULL = 16384 + 17
    BODY = 100 * 1024

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        cls.cert = cls.pki.leaf("a", ["a.test"])
        cls.o = cls.class_origin("o1")

    TICKET = 300  # a NewSessionTicket record is shorter; every record of a response longer

    def fetch(self, reader):
        """The lengths of the records that carried the response: the session tickets OpenSSL
        sends after the handshake may come in the same reads, ahead of it, and are left out."""
        resp, lengths = reader.get(f"/?size={self.BODY}")
        self.assertEqual(resp.status, 200)
        self.assertEqual(len(resp.body), self.BODY)
        while lengths and lengths[0] < self.TICKET:
            lengths.pop(0)
        return lengths

    def test_dynamic_small_first_then_full_then_small_after_idle(self):
        t = self.torii(tls_config(self.o, self.pki, [self.cert]))
        reader = RecordReader(t.addr("https"), client_context(self.pki))
        try:
            first = self.fetch(reader)
            # A new connection: its response starts in records of one segment...
            big = [i for i, n in enumerate(first) if n > self.SMALL]
            self.assertTrue(big, first)
            small = first[:big[0]]
            self.assertGreaterEqual(sum(n - 17 for n in small), 64 * 1024, first)
            self.assertLessEqual(max(small), self.SMALL, first)
            # ...then goes on in full records.
            self.assertEqual(max(first), self.FULL, first)
            # The next response on the busy connection: full records from the start.
            second = self.fetch(reader)
            self.assertEqual(second[0], self.FULL, second)
            self.assertEqual(second.count(self.FULL), self.BODY // 16384, second)
            # Idle for more than a second: small records again.
            time.sleep(1.3)
            third = self.fetch(reader)
            self.assertLessEqual(max(third[:40]), self.SMALL, third)
            self.assertEqual(max(third), self.FULL, third)
        finally:
            reader.close()

    def test_fixed_size_caps_every_record(self):
        t = self.torii(tls_config(self.o, self.pki, [self.cert], {"record_size": "4KiB"}))
        reader = RecordReader(t.addr("https"), client_context(self.pki))
        try:
            for _ in range(2):
                lengths = self.fetch(reader)
                self.assertEqual(max(lengths), 4096 + 17, lengths)
                self.assertGreaterEqual(len(lengths), self.BODY // 4096, lengths)
        finally:
            reader.close()

    def test_bad_record_size_is_refused_at_load(self):
        c = tls_config(self.o, self.pki, [self.cert], {"record_size": 100})
        path = os.path.join(self.tmpdir(), "bad.toml")
        with open(path, "w") as f:
            f.write(c.render("/tmp/unused.ready", "off", "-"))
        p = subprocess.run([h.torii_bin(), "-t", "-c", path], capture_output=True, timeout=30,
                           env=h.child_env())
        self.assertEqual(p.returncode, 1)
        self.assertIn("record_size", p.stderr.decode())
        self.assertIn("expected a size from 512B to 16KiB, got 100", p.stderr.decode())


class Options(h.ToriiCase):
    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        cls.cert = cls.pki.leaf("a", ["a.test"])

    def test_tls12_allowed_when_configured(self):
        o = self.origin("o1")
        t = self.torii(tls_config(o, self.pki, [self.cert], {"min_version": "1.2"}))
        with tls_connect(t.addr("https"), client_context(self.pki,
                                                         max_version=ssl.TLSVersion.TLSv1_2)) as s:
            self.assertEqual(s.version(), "TLSv1.2")
            self.assertEqual(tls_get(s, "/").status, 200)

    # T4 (RFC 7507): a client that falls back to TLS 1.2 with TLS_FALLBACK_SCSV while torii
    # speaks 1.3 gets inappropriate_fallback, not a downgraded session.
    def test_t4_fallback_scsv_is_refused(self):
        t = self.torii(tls_config(self.origin("o1"), self.pki, [self.cert], {"min_version": "1.2"}))
        p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{t.addr('https')[1]}",
                            "-servername", "a.test", "-tls1_2", "-fallback_scsv"],
                           input=b"", capture_output=True, timeout=30)
        out = (p.stdout + p.stderr).decode(errors="replace")
        self.assertIn("inappropriate fallback", out)
        self.assertIn("Cipher is (NONE)", out)

    # T5: early data (0-RTT) is off: a resumed client offering it is not accepted, and the
    # request is answered once, after the handshake.
    def test_t5_early_data_is_not_accepted(self):
        o = self.origin("o1")
        t = self.torii(tls_config(o, self.pki, [self.cert]))
        port = t.addr("https")[1]
        d = self.tmpdir()
        sess, req = os.path.join(d, "sess.pem"), os.path.join(d, "early.txt")
        with open(req, "wb") as f:
            f.write(b"GET /early HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        base = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "a.test",
                "-CAfile", self.pki.path("ca.crt")]
        # -ign_eof: wait for the answer (and the ticket after the handshake) before quitting.
        subprocess.run(base + ["-ign_eof", "-sess_out", sess],
                       input=b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                       capture_output=True, timeout=30)
        self.assertTrue(os.path.exists(sess))
        p = subprocess.run(base + ["-sess_in", sess, "-early_data", req], input=b"",
                           capture_output=True, timeout=30)
        out = p.stdout.decode(errors="replace")
        self.assertRegex(out, r"Early data was (not sent|rejected)")
        self.assertNotIn("Early data was accepted", out)

    def test_processes_sharing_a_key_file_resume_each_other(self):
        key_file = os.path.join(self.tmpdir(), "ticket.key")
        with open(key_file, "wb") as f:
            f.write(os.urandom(80))
        o = self.origin("o1")
        shared = {"session_ticket_key_file": key_file}
        a = self.torii(tls_config(o, self.pki, [self.cert], shared))
        b = self.torii(tls_config(o, self.pki, [self.cert], shared))
        c = self.torii(tls_config(o, self.pki, [self.cert]))  # its own random keys
        ctx = client_context(self.pki)
        with tls_connect(a.addr("https"), ctx) as s:
            tls_get(s, "/")
            session = s.session
        with tls_connect(b.addr("https"), ctx, session=session) as s:
            tls_get(s, "/")
            self.assertTrue(s.session_reused)
        with tls_connect(c.addr("https"), ctx, session=session) as s:
            tls_get(s, "/")
            self.assertFalse(s.session_reused)  # a full handshake, no error

    def test_http_to_https_redirect(self):
        o = self.origin("o1")
        c = tls_config(o, self.pki, [self.cert], listeners_extra=[
            {"name": "http", "address": "127.0.0.1:0", "http_to_https": True}])
        t = self.torii(c)
        r = h.get(t.addr("http"), "/a/b?c=1", host="a.test:8080")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "https://a.test/a/b?c=1")
        r = h.get(t.addr("http"), "/form", host="a.test", method="POST", body=b"x")
        self.assertEqual(r.status, 308)

    def test_truncated_or_corrupted_body_aborts_and_never_pools_the_upstream(self):
        # T9: a request body cut short without close_notify, or a forged record in the middle
        # of it: the request is aborted and its upstream connection closed, never reused.
        for how in ("truncate", "corrupt"):
            with self.subTest(how=how):
                o = self.origin(f"o-{how}")
                t = self.torii(tls_config(o, self.pki, [self.cert]))  # one worker
                ctx = client_context(self.pki)
                with tls_connect(t.addr("https"), ctx) as s:
                    self.assertEqual(tls_get(s, "/warm").status, 200)  # pools one connection
                s = tls_connect(t.addr("https"), ctx)
                try:
                    s.sendall(b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n"
                              b"\r\n" + b"x" * 500)
                    time.sleep(0.3)  # the head and half the body reach the origin
                    if how == "corrupt":
                        socket.socket.sendall(s, b"\x17\x03\x03\x00\x20" + os.urandom(32))
                    else:
                        socket.socket.shutdown(s, socket.SHUT_WR)  # FIN, no close_notify
                    try:
                        data, closed = h.read_until_eof(s, 5)
                    except ssl.SSLError:  # the alert torii sends for the forged record
                        data, closed = b"", True
                    self.assertTrue(closed)
                    self.assertNotIn(b"HTTP/1.1 200", data)
                finally:
                    socket.socket.close(s)
                with tls_connect(t.addr("https"), ctx) as s2:
                    self.assertEqual(tls_get(s2, "/after").status, 200)
                conn_of = {e["target"]: e["conn"] for e in o.log_entries()}
                # The cut request went out on the pooled connection; the next one needed another.
                self.assertNotIn("/echo", conn_of)  # never completed at the origin
                self.assertNotEqual(conn_of["/after"], conn_of["/warm"])
                t.check_alive()

    def test_example_config_checks_once_its_certificate_exists(self):
        d = self.tmpdir()
        shutil.copy(os.path.join(h.REPO, "conf", "tls.toml"), d)
        path = os.path.join(d, "tls.toml")
        p = subprocess.run([h.torii_bin(), "-t", "-c", path], capture_output=True, timeout=30,
                           env=h.child_env())
        self.assertEqual(p.returncode, 1)
        self.assertIn("site.crt", p.stderr.decode())
        shutil.copy(self.cert["cert"], os.path.join(d, "site.crt"))
        shutil.copy(self.cert["key"], os.path.join(d, "site.key"))
        p = subprocess.run([h.torii_bin(), "-t", "-c", path], capture_output=True, timeout=30,
                           env=h.child_env())
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_bad_certificate_files_are_refused_naming_the_file(self):
        o = self.origin("o1")
        other = self.pki.leaf("other", ["other.test"])
        cases = {
            "missing": ({"cert": "/nonexistent/site.crt", "key": self.cert["key"]},
                        "/nonexistent/site.crt"),
            "mismatch": ({"cert": self.cert["cert"], "key": other["key"]}, self.cert["cert"]),
        }
        for name, (cert, word) in cases.items():
            with self.subTest(case=name):
                c = tls_config(o, self.pki, [cert])
                text = c.render("/tmp/unused.ready", "off", "-")
                path = os.path.join(self.tmpdir(), f"{name}.toml")
                with open(path, "w") as f:
                    f.write(text)
                for args in (["-t", "-c", path], ["-c", path]):
                    p = subprocess.run([h.torii_bin()] + args, capture_output=True, timeout=30,
                                       env=h.child_env())
                    self.assertEqual(p.returncode, 1, p.stderr)
                    self.assertIn(word, p.stderr.decode())
                    self.assertIn("listener https tls", p.stderr.decode())


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
class ToBackends(h.ToriiCase):
    """torii → (TLS) → a second torii terminating TLS → the origin."""

    @classmethod
    def setUpClass(cls):
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.cleanup)
        cls.o = cls.class_origin("o1")
        cls.backend = cls.class_torii(tls_config(cls.o, cls.pki,
                                                 [cls.pki.leaf("b", ["backend.test"])]))

    def front(self, tls, **pool_extra):
        c = h.proxy_config([{"address": f"127.0.0.1:{self.backend.addr('https')[1]}"}],
                           pool_extra={"tls": tls, "retries": 0, "max_fails": 0, **pool_extra})
        return self.torii(c)

    def backend_handshakes(self, kind):
        text = h.get(self.backend.addr("admin"), "/metrics").body.decode()
        m = re.search(r'torii_tls_handshakes_total\{listener="https",kind="' + kind +
                      r'"\} (\d+)', text)
        return int(m.group(1)) if m else 0

    def test_verified_backend_and_resumed_sessions(self):
        # keepalive 0: a new upstream connection, so a new handshake, for every request; the
        # backend torii counts which of them resumed the session the first one got.
        t = self.front({"verify": True, "ca": self.pki.path("ca.crt"), "sni": "backend.test"},
                       keepalive=0)
        full, resumed = self.backend_handshakes("full"), self.backend_handshakes("resumed")
        for i in range(4):
            r = h.get(t.addr(), f"/headers?i={i}")
            self.assertEqual(r.status, 200)
            self.assertIn(b"X-Forwarded-Proto: https", r.body)  # the backend torii saw TLS
        full = self.backend_handshakes("full") - full
        resumed = self.backend_handshakes("resumed") - resumed
        self.assertEqual(full + resumed, 4, "one handshake per request")
        self.assertEqual(full, 1, "only the first handshake is a full one")
        self.assertEqual(resumed, 3)

    def test_wrong_ca_is_a_502(self):
        t = self.front({"verify": True, "ca": self.pki.path("other-ca.crt"),
                        "sni": "backend.test"})
        r = h.get(t.addr(), "/")
        self.assertEqual(r.status, 502)
        self.assertRegex(t.error_log(), r"TLS with 127\.0\.0\.1 failed: certificate")

    def test_wrong_name_is_a_502(self):
        t = self.front({"verify": True, "ca": self.pki.path("ca.crt"), "sni": "evil.test"})
        self.assertEqual(h.get(t.addr(), "/").status, 502)


    def health_checks_seen(self):
        return [e for e in self.o.log_entries()
                if h.header_of(e, "User-Agent") == ["torii-health-check"]]

    # issue #15 defect 3: a pool with tls and health is checked over TLS (same CA, SNI and
    # verification as its traffic), so it stays UP and serves.
    def test_health_checks_over_tls_keep_the_pool_up(self):
        before = len(self.health_checks_seen())
        c = h.proxy_config([{"address": f"127.0.0.1:{self.backend.addr('https')[1]}"}],
                           pool_extra={"tls": {"verify": True, "ca": self.pki.path("ca.crt"),
                                               "sni": "backend.test"},
                                       "health": {"path": "/health", "interval": "100ms",
                                                  "timeout": "100ms", "rise": 1, "fall": 1}})
        t = self.torii(c)
        h.wait_for(lambda: len(self.health_checks_seen()) >= before + 3, 10 * h.SLOW,
                   what="three health checks through the TLS backend")
        self.assertNotIn("is DOWN", t.error_log())
        self.assertEqual(h.get(t.addr(), "/").status, 200)

    # A check that fails verification marks the backend DOWN and says why.
    def test_health_check_with_the_wrong_ca_marks_the_backend_down(self):
        c = h.proxy_config([{"address": f"127.0.0.1:{self.backend.addr('https')[1]}"}],
                           pool_extra={"tls": {"verify": True,
                                               "ca": self.pki.path("other-ca.crt"),
                                               "sni": "backend.test"},
                                       "health": {"path": "/health", "interval": "100ms",
                                                  "timeout": "100ms", "rise": 1, "fall": 1}})
        t = self.torii(c)
        h.wait_for(lambda: "is DOWN" in t.error_log(), 10 * h.SLOW, what="backend down")
        self.assertIn("last: TLS failed", t.error_log())
        self.assertEqual(h.get(t.addr(), "/").status, 503)


if __name__ == "__main__":
    unittest.main()
