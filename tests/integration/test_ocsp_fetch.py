"""OCSP stapling fetched by torii itself (#21, tls.ocsp_stapling): the certificate names its
responder in its Authority Information Access; torii POSTs the OCSP request to it on worker
0's ring and staples the checked answer, which a client verifies (openssl s_client -status),
with `openssl ocsp` as the responder on loopback:

- the responder up at start: the response is stapled within moments;
- the responder down at start: nothing is stapled (never a made-up answer), a warning is
  logged, and once it comes up the response is fetched on the next retry;
- a responder that says "revoked", or "unknown" (it knows another certificate), is not
  stapled;
- a reload keeps stapling what was fetched;
- certificates that name no responder are refused by torii -t."""
import os
import re
import socket
import subprocess
import unittest

import harness as h
from test_tls import OPENSSL, Pki, tls_config


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@unittest.skipIf(OPENSSL is None, "openssl is not installed")
class OcspFetch(h.ToriiCase):
    def setUp(self):
        self.pki = Pki()
        self.addCleanup(self.pki.cleanup)
        self.port = free_port()
        self.leaf = self.pki.leaf(
            "a", ["a.test"], ext=f"authorityInfoAccess=OCSP;URI:http://127.0.0.1:{self.port}\n")
        self.leaf["cert"] = self.pki.fullchain("a")  # the issuer after the leaf
        self.responder = None

    def start_responder(self, status="V", serial=None):
        """openssl ocsp answering for a.crt (V good, R revoked) on self.port; with `serial`,
        it knows only that certificate (and answers "unknown" for a.crt)."""
        d = self.pki.dir
        serial_out = subprocess.run([OPENSSL, "x509", "-in", "a.crt", "-noout", "-serial"],
                                    cwd=d, capture_output=True, check=True, text=True).stdout
        serial = serial or serial_out.strip().split("=", 1)[1]
        revoked = "261231000000Z" if status == "R" else ""
        with open(os.path.join(d, "a.index"), "w") as f:
            f.write(f"{status}\t301231000000Z\t{revoked}\t{serial}\tunknown\t/CN=a.test\n")
        self.responder = subprocess.Popen(
            [OPENSSL, "ocsp", "-index", "a.index", "-port", str(self.port),
             "-rsigner", "ca.crt", "-rkey", "ca.key", "-CA", "ca.crt", "-ndays", "1"],
            cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop_responder)
        h.wait_for(lambda: self.listening(), 5, what="the OCSP responder")

    def listening(self):
        # Read from /proc: a probe connection would be taken for a client by openssl ocsp,
        # which serves one connection at a time.
        want = f":{self.port:04X} "
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                if any(want in line and line.split()[3] == "0A" for line in f):
                    return True
        return False

    def stop_responder(self):
        if self.responder is not None and self.responder.poll() is None:
            self.responder.terminate()
            self.responder.wait(timeout=5)
        self.responder = None

    def stapled(self, port):
        """What openssl s_client -status says about the stapled response."""
        p = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-servername",
                            "a.test", "-status", "-CAfile", self.pki.path("ca.crt")],
                           input=b"", capture_output=True, timeout=10 * h.SLOW)
        out = p.stdout.decode(errors="replace")
        if "OCSP response: no response sent" in out:
            return "none"
        m = re.search(r"Cert Status: (\w+)", out)
        return m.group(1) if m else out[-500:]

    def start_torii(self):
        c = tls_config(self.origin("o1"), self.pki, [self.leaf],
                       tls_extra={"ocsp_stapling": True})
        t = self.torii(c)
        return t, t.addr("https")[1]

    def test_fetched_and_stapled(self):
        self.start_responder()
        t, port = self.start_torii()
        h.wait_for(lambda: self.stapled(port) == "good", 10, interval=0.2,
                   what="a stapled good response")
        # A reload keeps stapling it (the new context takes the fetched response over).
        os.kill(t.pid, 1)
        h.wait_for(lambda: "reloaded" in t.error_log(), 10, what="the reload")
        self.stop_responder()
        self.assertEqual(self.stapled(port), "good")

    def test_responder_down_then_up(self):
        t, port = self.start_torii()
        h.wait_for(lambda: "OCSP response for" in t.error_log(), 10, what="the failure warning")
        self.assertIn("nothing is stapled meanwhile", t.error_log())
        self.assertEqual(self.stapled(port), "none")
        self.start_responder()
        # The first retry comes 5 s after the failure.
        h.wait_for(lambda: self.stapled(port) == "good", 20, interval=0.5,
                   what="the response once the responder is up")
        h.wait_for(lambda: "fetched from" in t.error_log(), 5, what="the recovery line")

    def test_revoked_is_not_stapled(self):
        self.start_responder(status="R")
        t, port = self.start_torii()
        h.wait_for(lambda: "the certificate is revoked" in t.error_log(), 10,
                   what="the refusal logged")
        self.assertEqual(self.stapled(port), "none")

    def test_answer_about_another_certificate_is_not_stapled(self):
        self.start_responder(serial="0BADC0DE")
        t, port = self.start_torii()
        h.wait_for(lambda: "status is unknown" in t.error_log(), 10, what="the refusal logged")
        self.assertEqual(self.stapled(port), "none")

    def test_certificate_without_responder_is_refused(self):
        plain = self.pki.leaf("b", ["b.test"])
        c = tls_config(self.origin("o1"), self.pki, [plain], tls_extra={"ocsp_stapling": True})
        t = h.Torii(c, dir=self.tmpdir(), start=False)
        p = subprocess.run([h.torii_bin(), "-t", "-c", t.config_path], capture_output=True,
                           text=True, env=h.child_env(), timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("names no OCSP responder", p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
