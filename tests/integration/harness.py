"""Integration-test harness: runs the real torii binary in front of real torii-origin servers.

What it owns (STYLE.md §J, DESIGN.md "Tests"):
  - Origin: one torii-origin process on 127.0.0.1:0 (--ready-file, --log in a temp dir). The
    origin stamps X-Backend: NAME and X-Conn-Id on every response and logs every request it
    parses as one JSON line, so a test asserts on both sides of the proxy.
  - Torii: the proxy, started from a generated TOML config (listeners on port 0, ready file,
    access log and error log in a temp dir). stop() sends SIGTERM, waits (bounded), fails the
    test when the process does not exit, and fails it when stderr or the error log holds an
    AddressSanitizer, LeakSanitizer or UBSan report; every test goes through stop().
  - CaptureBackend: a raw Python backend that records the exact bytes torii sends upstream
    (chunk framing, re-serialised headers), for the rows the origin's parsed log cannot show.
  - raw(): exact bytes in, (bytes, closed) out; parse_responses(): a byte stream split into
    responses (Content-Length, chunked, bodiless statuses, close-delimited); Client: one
    keep-alive connection that reads one response at a time.
  - ToriiCase: a unittest.TestCase whose helpers register cleanups, so every process started
    by a test is stopped by PID (never pkill), even when the test fails.

Everything waits with a deadline; ports are always 0. Standard library only.
"""

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# TORII_KEEP_TMP=1 keeps every temp dir (configs, logs, stderr) for a post-mortem.
KEEP_TMP = os.environ.get("TORII_KEEP_TMP", "") not in ("", "0")

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

# Sanitizer report markers: any of them in torii's stderr or error log fails the test.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: UndefinedBehaviorSanitizer", "WARNING: AddressSanitizer")


def _find_binary(env_name, candidates):
    path = os.environ.get(env_name)
    if path:
        return path
    for c in candidates:
        p = os.path.join(REPO, c)
        if os.access(p, os.X_OK):
            return p
    raise unittest.SkipTest(f"{env_name} is not set and no built binary was found")


def torii_bin():
    return _find_binary("TORII_BIN", ["build-it/app/torii", "build/app/torii"])


def origin_bin():
    return _find_binary("TORII_ORIGIN_BIN",
                        ["build-it/tests/origin/torii-origin", "build/tests/origin/torii-origin"])


def sanitize_on():
    return os.environ.get("TORII_SANITIZE", "").upper() in ("ON", "1", "TRUE", "YES")


def child_env(extra=None):
    """Environment for torii and the origins: sanitizer options that make a report fatal
    and visible (stderr), leaks included."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS",
                   "detect_leaks=1:abort_on_error=0:halt_on_error=1:"
                   "print_summary=1:detect_stack_use_after_return=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.setdefault("LSAN_OPTIONS", "report_objects=0")
    if extra:
        env.update(extra)
    return env


# Time scale: sanitized binaries are slower; generous bounds keep the suite stable on a busy
# 2-core machine without hiding hangs.
SLOW = 2.0 if sanitize_on() else 1.0


def wait_for(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate() until it returns a truthy value or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = predicate()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def _stop_process(proc, term_timeout):
    """SIGTERM, bounded wait, SIGKILL fallback. Returns (exit_code, exited_on_term)."""
    if proc.poll() is not None:
        return proc.returncode, True
    try:
        proc.send_signal(signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=term_timeout), True
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10), False


ALPHABET = b"abcdefghijklmnopqrstuvwxyz0123456789"


class PatternChecker:
    """Checks that a streamed body is torii-origin's size=N pattern (byte i is
    ALPHABET[i % 36]), piece by piece, without keeping it."""

    def __init__(self):
        self.offset = 0
        self.ok = True
        self._pattern = ALPHABET * ((1 << 21) // len(ALPHABET) + 2)

    def __call__(self, piece):
        if len(piece) > (1 << 21):
            for i in range(0, len(piece), 1 << 20):
                self(piece[i:i + (1 << 20)])
            return
        start = self.offset % len(ALPHABET)
        if self.ok and piece != self._pattern[start:start + len(piece)]:
            self.ok = False
        self.offset += len(piece)


def pattern_bytes(n):
    return (ALPHABET * (n // len(ALPHABET) + 1))[:n]


def fd_count(pid):
    """Open file descriptors of process `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# =============================================================================================
# Origin


class Origin:
    """One torii-origin process. `name` is what it stamps in X-Backend."""

    def __init__(self, name, dir=None, threads=1, keepalive_timeout=None, start=True):
        self.name = name
        self._own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix=f"torii-origin-{name}-")
        self.ready_file = os.path.join(self.dir, f"origin-{name}.ready")
        self.log_path = os.path.join(self.dir, f"origin-{name}.log")
        self.stderr_path = os.path.join(self.dir, f"origin-{name}.stderr")
        self.threads = threads
        self.keepalive_timeout = keepalive_timeout
        self.proc = None
        self.addr = None
        self.port = None
        if start:
            self.start()

    def start(self, listen="127.0.0.1:0"):
        args = [origin_bin(), "--listen", listen, "--name", self.name,
                "--ready-file", self.ready_file, "--log", self.log_path,
                "--threads", str(self.threads)]
        if self.keepalive_timeout is not None:
            args += ["--keepalive-timeout", str(self.keepalive_timeout)]
        return self._launch(args)

    def _launch(self, args, ready_timeout=10):
        """Starts `args` (a backend that writes "HOST:PORT" to self.ready_file once it
        listens) and waits for it (ready_timeout x SLOW seconds); its output goes to
        self.stderr_path."""
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._stderr,
                                     stderr=self._stderr, env=child_env())

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"origin {self.name} exited early "
                                     f"(rc={self.proc.returncode}): {self._stderr_text()}")
            try:
                with open(self.ready_file) as f:
                    text = f.read().strip()
            except FileNotFoundError:
                return None
            return text or None

        text = wait_for(ready, ready_timeout * SLOW, what=f"origin {self.name} ready file")
        host, port = text.splitlines()[0].rsplit(":", 1)
        self.host = host
        self.port = int(port)
        self.addr = (host, self.port)
        return self

    def restart(self):
        """Starts again on the same port (after stop())."""
        return self.start(listen=f"127.0.0.1:{self.port}")

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()[-4000:]
        except FileNotFoundError:
            return ""

    def log_entries(self):
        """Every request the origin parsed so far, as dicts (conn, method, target, version,
        headers [[name, value], ...], body, body_len)."""
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n"):
            if line.strip():
                out.append(json.loads(line))
        return out

    def log_bytes(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def stats(self):
        """GET /__stats on the origin directly: {"requests", "connections", "active"}."""
        c = Client(self.addr, timeout=5)
        try:
            r = c.request("GET", "/__stats")
        finally:
            c.close()
        return json.loads(r.body)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        rc, _ = _stop_process(self.proc, 10 * SLOW)
        self.proc = None
        self._stderr.close()
        return rc

    def cleanup(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def header_of(entry, name):
    """All values of header `name` in an origin log entry (case-insensitive)."""
    return [v for k, v in entry["headers"] if k.lower() == name.lower()]


# =============================================================================================
# Config


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML form for {v!r}")


def toml_key(k):
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _backend_of(o):
    """An Origin, (Origin, weight), an "addr:port" string or a backend dict → backend dict."""
    if isinstance(o, dict):
        return o
    if isinstance(o, tuple):
        b = _backend_of(o[0])
        b["weight"] = o[1]
        return b
    if isinstance(o, Origin):
        return {"address": o.address}
    return {"address": str(o)}


class Config:
    """A torii config as data. Torii() fills in ready_file, access_log and error_log."""

    def __init__(self):
        self.server = {}
        self.limits = {}
        self.listeners = [{"name": "http", "address": "127.0.0.1:0"}]
        self.pools = []
        self.routes = []
        self.tables = {}  # other tables by name: {"compression": {...}, "rate_limit.x": {...}}

    def add_pool(self, name, origins, **extra):
        p = {"name": name, "backends": [_backend_of(o) for o in origins]}
        p.update(extra)
        self.pools.append(p)
        return self

    def add_route(self, pool, host="*", path_prefix="/", **extra):
        r = {"host": host, "path_prefix": path_prefix, "pool": pool}
        r.update(extra)
        self.routes.append(r)
        return self

    def render(self, ready_file, access_log, error_log):
        server = {"workers": 1, "log_level": "info", "shutdown_grace": "3s"}
        server.update(self.server)
        server.setdefault("ready_file", ready_file)
        server.setdefault("access_log", access_log)
        server.setdefault("error_log", error_log)
        lines = ["[server]"]
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in server.items()]
        if self.limits:
            lines.append("\n[limits]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in self.limits.items()]
        for section, items in (("listener", self.listeners), ("pool", self.pools),
                               ("route", self.routes)):
            for item in items:
                lines.append(f"\n[[{section}]]")
                lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in item.items()]
        for name, table in self.tables.items():
            lines.append(f"\n[{name}]")
            lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in table.items()]
        return "\n".join(lines) + "\n"


def proxy_config(origins, workers=1, limits=None, pool_extra=None, routes=None,
                 server_extra=None, pools=None):
    """The usual config: pool "app" over `origins` (Origin, (Origin, weight) or dicts) and one
    catch-all route to it. `pools` adds more pools {name: origins}; `routes` replaces the
    route list (dicts with host, path_prefix, pool, ...)."""
    c = Config()
    c.server["workers"] = workers
    if server_extra:
        c.server.update(server_extra)
    if limits:
        c.limits.update(limits)
    c.add_pool("app", origins, **(pool_extra or {}))
    for name, os_ in (pools or {}).items():
        c.add_pool(name, os_)
    if routes is None:
        c.add_route("app")
    else:
        for r in routes:
            c.routes.append(dict(r))
    return c


# =============================================================================================
# Torii


class Torii:
    """The real torii binary. `config` is a Config, or TOML text in which @READY_FILE@,
    @ACCESS_LOG@, @ERROR_LOG@ and @DIR@ are replaced by paths in the temp dir."""

    def __init__(self, config, dir=None, env_extra=None, start=True, ready_timeout=15):
        self._own_dir = dir is None
        self.dir = dir or tempfile.mkdtemp(prefix="torii-it-")
        self.ready_file = os.path.join(self.dir, "torii.ready")
        self.access_log_path = os.path.join(self.dir, "access.log")
        self.error_log_path = os.path.join(self.dir, "error.log")
        self.stderr_path = os.path.join(self.dir, "torii.stderr")
        self.stdout_path = os.path.join(self.dir, "torii.stdout")
        self.config_path = os.path.join(self.dir, "torii.toml")
        if isinstance(config, Config):
            text = config.render(self.ready_file, self.access_log_path, self.error_log_path)
        else:
            text = (config.replace("@READY_FILE@", self.ready_file)
                    .replace("@ACCESS_LOG@", self.access_log_path)
                    .replace("@ERROR_LOG@", self.error_log_path)
                    .replace("@DIR@", self.dir))
        self.config_text = text
        with open(self.config_path, "w") as f:
            f.write(text)
        self.env_extra = env_extra
        self.proc = None
        self.listeners = {}
        self.exit_code = None
        if start:
            self.start(ready_timeout)

    def start(self, ready_timeout=15):
        self._out = open(self.stdout_path, "ab")
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([torii_bin(), "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, env=child_env(self.env_extra))
        self.pid = self.proc.pid

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"torii exited early (rc={self.proc.returncode}):\n"
                                     f"{self.stderr_text()[-4000:]}\n{self.error_log()[-4000:]}")
            try:
                with open(self.ready_file) as f:
                    text = f.read()
            except FileNotFoundError:
                return None
            return text if text.endswith("\n") else None

        text = wait_for(ready, ready_timeout * SLOW, what="torii ready file")
        self.ready_text = text
        for line in text.splitlines():
            name, address = line.split(" ", 1)
            host, port = address.rsplit(":", 1)
            self.listeners[name] = (host.strip("[]"), int(port))
        return self

    def addr(self, listener="http"):
        return self.listeners[listener]

    def stderr_text(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def error_log(self):
        try:
            with open(self.error_log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def access_log_lines(self, wait_for_count=None, timeout=3.0):
        """Lines of the access log. torii writes it once per loop turn, so a line can trail
        the response by a moment: with `wait_for_count`, wait (bounded) for that many."""
        def read():
            try:
                with open(self.access_log_path, "rb") as f:
                    data = f.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                return []
            return [line for line in data.split("\n") if line]
        if wait_for_count is None:
            return read()
        deadline = time.monotonic() + timeout * SLOW
        lines = read()
        while len(lines) < wait_for_count and time.monotonic() < deadline:
            time.sleep(0.02)
            lines = read()
        return lines

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        assert self.proc is not None, "torii was not started"
        rc = self.proc.poll()
        if rc is not None:
            raise AssertionError(f"torii died (rc={rc}):\n{self.stderr_text()[-6000:]}")

    def rss_kib(self):
        return vm_rss_kib(self.pid)

    def sanitizer_reports(self):
        text = self.stderr_text() + "\n" + self.error_log()
        return [m for m in SANITIZER_MARKERS if m in text]

    def stop(self, timeout=None, expect_code=0):
        """SIGTERM, bounded wait. Fails when torii does not exit in time (then SIGKILLs it),
        when it exits with a code other than `expect_code` (None: any), or when a sanitizer
        reported anything. Returns the exit code."""
        if self.proc is None:
            return self.exit_code
        if timeout is None:
            timeout = 15 * SLOW
        rc, clean = _stop_process(self.proc, timeout)
        self.proc = None
        self.exit_code = rc
        self._out.close()
        self._err.close()
        if not clean:
            raise AssertionError(f"torii did not exit within {timeout:.0f}s of SIGTERM; "
                                 f"killed.\n{self.stderr_text()[-4000:]}")
        self.assert_no_sanitizer_report()
        if expect_code is not None and rc != expect_code:
            raise AssertionError(f"torii exited with {rc}, expected {expect_code}:\n"
                                 f"{self.stderr_text()[-4000:]}\n{self.error_log()[-4000:]}")
        return rc

    def assert_no_sanitizer_report(self):
        found = self.sanitizer_reports()
        if found:
            text = self.stderr_text() + "\n" + self.error_log()
            at = min(text.find(m) for m in found if text.find(m) >= 0)
            raise AssertionError(f"sanitizer report from torii ({', '.join(found)}):\n"
                                 f"{text[max(0, at - 200):at + 6000]}")

    def kill(self):
        """Emergency stop (no checks)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self):
        try:
            self.stop()
        finally:
            self.kill()
            if self._own_dir:
                shutil.rmtree(self.dir, ignore_errors=True)


# =============================================================================================
# Client side: raw bytes and response parsing


class Response:
    def __init__(self, version, status, reason, headers, body, complete, raw_head=b""):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers  # [(name, value)] as str, in order
        self.body = body        # bytes (decoded from chunked framing)
        self.complete = complete
        self.raw_head = raw_head
        self.chunked = False
        self.trailers = []  # [(name, value)] after a chunked body

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def has_header(self, name):
        return any(k.lower() == name.lower() for k, _ in self.headers)

    def __iter__(self):  # (status, headers, body)
        return iter((self.status, self.headers, self.body))

    def __repr__(self):
        return (f"<Response {self.status} {self.headers!r} body={self.body[:80]!r}"
                f"{'...' if len(self.body) > 80 else ''} len={len(self.body)}"
                f"{'' if self.complete else ' INCOMPLETE'}>")


class NeedMore(Exception):
    pass


class Malformed(Exception):
    pass


def _parse_head(data, pos):
    end = data.find(b"\r\n\r\n", pos)
    if end < 0:
        raise NeedMore()
    head = data[pos:end]
    lines = head.split(b"\r\n")
    m = re.fullmatch(rb"(HTTP/\d\.\d) (\d{3}) ?(.*)", lines[0])
    if not m:
        raise Malformed(f"bad status line {lines[0][:200]!r}")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise Malformed(f"bad header line {line[:200]!r}")
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    return (m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1"), headers,
            end + 4, head)


def _parse_one(data, pos, head_request=False, eof=False):
    """Parses one response at data[pos:]. Returns (Response, next_pos). Raises NeedMore when
    more bytes are needed and not at EOF. At EOF a truncated message comes back with
    complete=False and the body bytes that did arrive."""
    try:
        version, status, reason, headers, body_at, raw_head = _parse_head(data, pos)
    except NeedMore:
        if eof:
            raise Malformed(f"truncated head {data[pos:pos + 200]!r}")
        raise
    r = Response(version, status, reason, headers, b"", True, raw_head)
    te = r.header("Transfer-Encoding")
    cl = r.header("Content-Length")
    if head_request or status < 200 or status in (204, 304):
        return r, body_at
    if te is not None:
        if te.lower() != "chunked":
            raise Malformed(f"unexpected Transfer-Encoding {te!r}")
        r.chunked = True
        p = body_at
        body = bytearray()
        while True:
            line_end = data.find(b"\r\n", p)
            if line_end < 0:
                break
            size_text = data[p:line_end].split(b";")[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise Malformed(f"bad chunk size {data[p:line_end][:40]!r}")
            if size == 0:
                # Last chunk, then trailers up to an empty line.
                t_end = data.find(b"\r\n\r\n", line_end)
                if data[line_end:line_end + 4] == b"\r\n\r\n":
                    r.body = bytes(body)
                    return r, line_end + 4
                if t_end < 0:
                    break
                r.body = bytes(body)
                for line in data[line_end + 2:t_end].split(b"\r\n"):
                    name, _, value = line.decode("latin-1").partition(":")
                    r.trailers.append((name, value.strip()))
                return r, t_end + 4
            if len(data) < line_end + 2 + size + 2:
                body += data[line_end + 2:line_end + 2 + size]
                break
            body += data[line_end + 2:line_end + 2 + size]
            if data[line_end + 2 + size:line_end + 4 + size] != b"\r\n":
                raise Malformed("chunk data not followed by CRLF")
            p = line_end + 4 + size
        if not eof:
            raise NeedMore()
        r.body = bytes(body)
        r.complete = False
        return r, len(data)
    if cl is not None:
        n = int(cl)
        if len(data) - body_at >= n:
            r.body = data[body_at:body_at + n]
            return r, body_at + n
        if not eof:
            raise NeedMore()
        r.body = data[body_at:]
        r.complete = False
        return r, len(data)
    # Close-delimited.
    if not eof:
        raise NeedMore()
    r.body = data[body_at:]
    return r, len(data)


def parse_responses(data, head_requests=()):
    """Splits a byte stream (read to EOF) into responses, interim 1xx included. Indices in
    `head_requests` are responses to HEAD (no body). The last one may be incomplete."""
    out = []
    pos = 0
    while pos < len(data):
        r, pos = _parse_one(data, pos, head_request=len(out) in head_requests, eof=True)
        out.append(r)
    return out


def finals(responses):
    """Responses without the interim (1xx) ones."""
    return [r for r in responses if r.status >= 200]


def connect(addr, timeout=5, source=None, rcvbuf=None):
    """A TCP connection to `addr`; `source` binds the client side to that local IP (any
    127.x.y.z works on loopback, so tests can play many clients); `rcvbuf` sets SO_RCVBUF
    before connecting (a client that reads slowly holds little in its kernel buffer)."""
    if rcvbuf is None:
        s = socket.create_connection(addr, timeout=timeout,
                                     source_address=(source, 0) if source else None)
    else:
        s = socket.socket(socket.AF_INET6 if ":" in addr[0] else socket.AF_INET)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            s.bind((source, 0))
        s.settimeout(timeout)
        s.connect(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until_eof(sock, timeout):
    """Reads until EOF, a reset or `timeout` seconds. Returns (data, closed)."""
    deadline = time.monotonic() + timeout
    chunks = []
    closed = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except socket.timeout:
            break
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        if not b:
            closed = True
            break
        chunks.append(b)
    return b"".join(chunks), closed


def raw(addr, data, timeout=2, shutdown_write=False, chunks=None, gap=0.0):
    """Sends exactly `data` (or each of `chunks`, `gap` seconds apart) on a new connection,
    then reads until EOF or `timeout` seconds. Returns (bytes_received, closed)."""
    s = connect(addr)
    try:
        try:
            for i, piece in enumerate(chunks if chunks is not None else [data]):
                if i and gap:
                    time.sleep(gap)
                s.sendall(piece)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # torii may answer and close before reading everything: read what came
        return read_until_eof(s, timeout)
    finally:
        s.close()


def rst_close(sock):
    """Closes with RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def build_request(method, path, headers=None, body=None, host="test.local", version="1.1",
                  chunked=False):
    """A well-formed request. `headers`: list of (name, value) or dict. A body gets a
    Content-Length unless `chunked` (then it goes as one chunk) or the headers set framing."""
    hs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines = [f"{method} {path} HTTP/{version}"]
    names = {k.lower() for k, _ in hs}
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    for k, v in hs:
        lines.append(f"{k}: {v}")
    payload = b""
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        if chunked:
            lines.append("Transfer-Encoding: chunked")
            payload = (f"{len(body):x}\r\n".encode() + body + b"\r\n" if body else b"") \
                + b"0\r\n\r\n"
        else:
            if "content-length" not in names and "transfer-encoding" not in names:
                lines.append(f"Content-Length: {len(body)}")
            payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class Client:
    """One persistent client connection (keep-alive, pipelining); over `sock` when given (a
    TLS socket, say), else a new TCP connection to `addr`."""

    def __init__(self, addr, timeout=10, source=None, rcvbuf=None, sock=None):
        self.sock = sock if sock is not None else connect(addr, timeout, source, rcvbuf)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, headers=None, body=None, host="test.local", chunked=False,
                version="1.1", timeout=None):
        self.send(build_request(method, path, headers, body, host, version, chunked))
        return self.read_response(head_request=method == "HEAD", timeout=timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out waiting for a response")
        self.sock.settimeout(left)
        try:
            b = self.sock.recv(1 << 20)
        except socket.timeout:
            raise TimeoutError("timed out waiting for a response")
        except ConnectionResetError:
            b = b""
        if not b:
            self.eof = True
        self.buf += b

    def read_response(self, head_request=False, timeout=None, interim=False):
        """Reads the next response (skipping 1xx unless `interim`). Raises TimeoutError, or
        ConnectionError when the connection closed before a response began."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if self.buf:
                try:
                    r, pos = _parse_one(self.buf, 0, head_request, self.eof)
                    self.buf = self.buf[pos:]
                    if r.status < 200 and not interim:
                        continue
                    return r
                except NeedMore:
                    pass
            elif self.eof:
                raise ConnectionError("connection closed before a response")
            self._fill(deadline)

    def stream_response(self, sink, head_request=False, timeout=None):
        """Reads the next final response, passing decoded body bytes to sink(bytes) as they
        arrive instead of keeping them. Returns the Response (empty body; .body_len set)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                version, status, reason, headers, body_at, raw_head = _parse_head(self.buf, 0)
            except NeedMore:
                if self.eof:
                    raise ConnectionError("connection closed before a response")
                self._fill(deadline)
                continue
            self.buf = self.buf[body_at:]
            r = Response(version, status, reason, headers, b"", True, raw_head)
            if status >= 200:
                break
        r.body_len = 0
        if head_request or status in (204, 304):
            return r
        te, cl = r.header("Transfer-Encoding"), r.header("Content-Length")

        def take(n):
            while len(self.buf) < n:
                if self.eof:
                    raise ConnectionError("truncated response")
                self._fill(deadline)
            out, self.buf = self.buf[:n], self.buf[n:]
            return out

        def line():
            while b"\r\n" not in self.buf:
                if self.eof:
                    raise ConnectionError("truncated response")
                self._fill(deadline)
            i = self.buf.index(b"\r\n")
            out, self.buf = self.buf[:i], self.buf[i + 2:]
            return out

        if te is not None:
            r.chunked = True
            while True:
                size = int(line().split(b";")[0], 16)
                if size == 0:
                    while line():
                        pass
                    return r
                left = size
                while left:
                    if not self.buf:
                        self._fill(deadline)
                    piece = self.buf[:left]
                    self.buf = self.buf[len(piece):]
                    left -= len(piece)
                    r.body_len += len(piece)
                    sink(piece)
                if take(2) != b"\r\n":
                    raise Malformed("chunk data not followed by CRLF")
        left = int(cl) if cl is not None else None
        while left is None or left > 0:
            if not self.buf:
                if self.eof:
                    if left is None:
                        return r
                    raise ConnectionError("truncated response")
                self._fill(deadline)
                continue
            piece = self.buf if left is None else self.buf[:left]
            self.buf = self.buf[len(piece):]
            if left is not None:
                left -= len(piece)
            r.body_len += len(piece)
            sink(piece)
        return r

    def read_eof(self, timeout=2):
        """Waits for EOF; returns (leftover_bytes, closed)."""
        data, closed = read_until_eof(self.sock, timeout) if not self.eof else (b"", True)
        self.eof = self.eof or closed
        out = self.buf + data
        self.buf = b""
        return out, self.eof

    def closed_by_peer(self, timeout=2):
        _, closed = self.read_eof(timeout)
        return closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def get(addr, path, **kw):
    """One request on a fresh connection."""
    c = Client(addr, timeout=kw.pop("timeout", 10), source=kw.pop("source", None))
    try:
        return c.request(kw.pop("method", "GET"), path, **kw)
    finally:
        c.close()


def status_of(data):
    """Status code of the first response in `data`, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else None


def statuses(data):
    return [int(x) for x in re.findall(rb"(?:^|\r\n\r\n|\n)HTTP/1\.[01] (\d{3}) ", data)]


# =============================================================================================
# CaptureBackend: a raw backend that records the exact bytes torii sends


def _request_end(data):
    """End offset of the first complete request in `data` (CL or chunked framing), or None."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end].decode("latin-1").split("\r\n")
    body_at = end + 4
    cl = 0
    chunked = False
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            cl = int(value.strip())
        elif name.strip().lower() == "transfer-encoding":
            chunked = value.strip().lower() == "chunked"
    if not chunked:
        return body_at + cl if len(data) >= body_at + cl else None
    p = body_at
    while True:
        le = data.find(b"\r\n", p)
        if le < 0:
            return None
        size = int(data[p:le].split(b";")[0], 16)
        if size == 0:
            t = data.find(b"\r\n\r\n", le)
            if data[le:le + 4] == b"\r\n\r\n":
                return le + 4
            return t + 4 if t >= 0 else None
        p = le + 2 + size + 2
        if len(data) < p:
            return None


def read_head(sock, buf=b""):
    """Reads from `sock` until a message head ends (CRLF CRLF): (head, what followed it), or
    None when the peer closes first. `buf`: bytes already read."""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(4096)
        if not b:
            return None
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


class ThreadedBackend:
    """A raw test backend on 127.0.0.1:0 run by Python threads: an accept loop (0.2 s timeout,
    until cleanup()) and one thread per connection running self.serve(conn), which subclasses
    write; the connection is closed after it. `fastopen` > 0 turns on TCP Fast Open on the
    listening socket (that queue length); `rcvbuf` sets each accepted socket's SO_RCVBUF."""

    def __init__(self, name, fastopen=0, rcvbuf=None):
        self.name = name
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._rcvbuf = rcvbuf
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fastopen:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, fastopen)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._conns = []
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def stopping(self):
        return self._stop.is_set()

    def serve(self, c):
        raise NotImplementedError

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self._rcvbuf:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._rcvbuf)
            with self._lock:
                self.connections += 1
                self._conns.append(c)
            t = threading.Thread(target=self._run, args=(c,), daemon=True)
            t.start()
            self._threads.append(t)

    def _run(self, c):
        try:
            self.serve(c)
        except OSError:
            pass
        finally:
            c.close()

    def cleanup(self):
        self._stop.set()
        self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)


class CaptureBackend(ThreadedBackend):
    """A backend on 127.0.0.1:0 that records every request's exact bytes (`.requests`) and
    answers each with 200 "ok" (X-Backend: capture), keeping the connection open."""

    def __init__(self):
        self.requests = []
        super().__init__("capture")

    def serve(self, c):
        buf = b""
        c.settimeout(0.2)
        while not self.stopping():
            try:
                b = c.recv(65536)
            except socket.timeout:
                continue
            if not b:
                return
            buf += b
            while True:
                end = _request_end(buf)
                if end is None:
                    break
                with self._lock:
                    self.requests.append(buf[:end])
                buf = buf[end:]
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                          b"X-Backend: capture\r\n\r\nok")


# =============================================================================================
# Test case base


class ToriiCase(unittest.TestCase):
    """Helpers that register cleanups: every process a test starts is stopped (by PID) when it
    ends, and torii's stop() fails the test on a sanitizer report or an unclean exit. Class
    variants (class_origin / class_torii) share one process across a class's tests."""

    def tmpdir(self):
        if not hasattr(self, "_tmp"):
            self._tmp = tempfile.mkdtemp(prefix=f"torii-it-{self._testMethodName[:40]}-")
            if not KEEP_TMP:
                self.addCleanup(shutil.rmtree, self._tmp, True)
        return self._tmp

    def origin(self, name, **opts):
        o = Origin(name, dir=self.tmpdir(), **opts)
        self.addCleanup(o.cleanup)
        return o

    def torii(self, config, env_extra=None, ready_timeout=15):
        d = tempfile.mkdtemp(prefix="torii-", dir=self.tmpdir())
        t = Torii(config, dir=d, start=False, env_extra=env_extra)
        self.addCleanup(t.cleanup)  # registered before start: a failed start is cleaned too
        t.start(ready_timeout)
        return t

    def capture_backend(self):
        b = CaptureBackend()
        self.addCleanup(b.cleanup)
        return b

    @classmethod
    def class_tmpdir(cls):
        if "_class_tmp" not in cls.__dict__:
            cls._class_tmp = tempfile.mkdtemp(prefix=f"torii-it-{cls.__name__}-")
            if not KEEP_TMP:
                cls.addClassCleanup(shutil.rmtree, cls._class_tmp, True)
        return cls._class_tmp

    @classmethod
    def class_origin(cls, name, **opts):
        o = Origin(name, dir=cls.class_tmpdir(), **opts)
        cls.addClassCleanup(o.cleanup)
        return o

    @classmethod
    def class_torii(cls, config, env_extra=None, ready_timeout=15):
        d = tempfile.mkdtemp(prefix="torii-", dir=cls.class_tmpdir())
        t = Torii(config, dir=d, start=False, env_extra=env_extra)
        cls.addClassCleanup(t.cleanup)
        t.start(ready_timeout)
        return t

    # --- assertions -----------------------------------------------------------------------

    def assertNoSmuggled(self, *origins):
        for o in origins:
            self.assertNotIn(b"/smuggled", o.log_bytes(), f"/smuggled reached origin {o.name}")

    def assertStatus(self, data, status):
        self.assertEqual(status_of(data), status, f"response was {data[:300]!r}")
