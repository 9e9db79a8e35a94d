"""Slow peers and exhausted resources (BAD-INPUTS.md D2, D3, D5, E1, E7, B14): a client that
trickles its body or never reads, a connection flood over max_connections, a process out of
file descriptors, and a backend whose TCP handshake never completes. In each case torii
answers or closes within its configured bound, keeps its memory and CPU bounded, releases the
upstream connection it no longer needs, and serves everyone else."""

import os
import resource
import subprocess
import select
import socket
import struct
import threading
import time
import unittest

import harness as h

# TCP states as Linux reports them in tcpi_state (include/net/tcp_states.h).
TCP_ESTABLISHED = 1
TCP_CLOSE = 7
TCP_CLOSE_WAIT = 8


def tcp_state(sock):
    """The kernel's TCP state of `sock` (TCP_INFO byte 0), without reading from it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


def peer_closed(sock):
    """True when the peer sent FIN or RST (looks without consuming data or waiting)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        b = sock.recv(1, socket.MSG_PEEK)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return b == b""


def upstream_conns(origin):
    """Connections the origin has open, not counting the /__stats connection asking."""
    return origin.stats()["active"] - 1


def cpu_seconds(pid):
    """utime + stime of a process, in seconds (/proc/PID/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    socks.clear()


def get_within(addr, path, deadline, attempt_timeout=0.5):
    """GETs `path` on fresh connections until one answers 200 or `deadline` (monotonic) passes.
    Returns (response, attempts); the response is None when every attempt failed."""
    attempts = 0
    while True:
        attempts += 1
        try:
            r = h.get(addr, path, timeout=attempt_timeout)
            if r.status == 200:
                return r, attempts
        except (OSError, ConnectionError, TimeoutError, h.Malformed):
            pass
        if time.monotonic() >= deadline:
            return None, attempts
        time.sleep(0.02)


class SlowPost(h.ToriiCase):
    def test_d2_slow_post_body_timeout(self):
        """D2: a body that trickles in slower than body_timeout (1 s) gets 408 and the
        connection closes, 1-3 s after the last body byte. The timeout is per byte (bytes
        0.45 s apart for longer than 1 s are fine). Meanwhile another client is served; the
        origin never sees a complete request, and the upstream connection that got the
        partial body is closed, not pooled."""
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], limits={"body_timeout": "1s"}))
        addr = t.addr()
        s = h.connect(addr)
        self.addCleanup(s.close)
        s.sendall(b"POST /echo?d2 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 100\r\n\r\nx")
        # Bytes closer together than body_timeout keep the request alive past 1 s in total.
        for i in range(3):
            r, _, _ = select.select([s], [], [], 0.45)
            self.assertEqual(r, [], f"torii answered while body bytes kept coming (byte {i})")
            s.sendall(b"x")
        last_byte = time.monotonic()
        # Another client is served normally while the POST is stuck.
        t0 = time.monotonic()
        r = h.get(addr, "/?meanwhile", timeout=5)
        self.assertEqual((r.status, r.body), (200, b"o1\n"))
        self.assertLess(time.monotonic() - t0, 0.5 * h.SLOW)
        # Now 1 byte every 1.5 s: the 408 must come before the next byte is due.
        sent = 0
        while sent < 4:
            r, _, _ = select.select([s], [], [], max(0.0, last_byte + 1.5 - time.monotonic()))
            if r:
                break
            try:
                s.sendall(b"x")
            except (BrokenPipeError, ConnectionResetError):
                break
            last_byte = time.monotonic()
            sent += 1
        data, closed, first_at, eof_at = b"", False, None, None
        deadline = last_byte + 3.0 * h.SLOW
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                b = b""
            if first_at is None:
                first_at = time.monotonic()
            if not b:
                closed, eof_at = True, time.monotonic()
                break
            data += b
        self.assertEqual(sent, 0, f"{sent} bytes 1.5 s apart were accepted (body_timeout 1 s)")
        self.assertEqual(h.status_of(data), 408, f"got {data[:300]!r}")
        self.assertTrue(closed, "the connection stayed open after the 408")
        self.assertGreater(first_at - last_byte, 0.8, "408 before body_timeout")
        self.assertLess(eof_at - last_byte, 3.0, "408/close later than ~1-3 s after the last byte")
        # The origin never got the whole POST, and the upstream that held it is closed (the
        # meanwhile GET's pooled connection may remain).
        h.wait_for(lambda: upstream_conns(o) <= 1, 3 * h.SLOW, interval=0.1,
                   what="the slow POST's upstream connection to close")
        self.assertEqual([e for e in o.log_entries() if e["method"] == "POST"], [])
        self.assertEqual(h.get(addr, "/").status, 200)
        t.check_alive()


class SlowBodyRate(h.ToriiCase):
    def test_d2_body_below_min_rate_is_cut_while_a_fast_one_passes(self):
        """D2: a body whose every byte arrives well within body_timeout, but at 500 B/s on
        average, falls below body_min_rate (1000 B/s after a 0.5 s grace) and gets 408 +
        close within ~1-2 s; a 20 KB/s upload of the same size on another connection is fine."""
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], limits={
            "body_timeout": "10s", "body_min_rate": 1000, "body_rate_grace": "500ms"}))
        addr = t.addr()
        slow = h.connect(addr)
        self.addCleanup(slow.close)
        slow.sendall(b"POST /echo?slow HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4000\r\n\r\n")
        fast = h.connect(addr)
        self.addCleanup(fast.close)
        fast.sendall(b"POST /echo?fast HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4000\r\n\r\n")
        t0 = time.monotonic()
        answered = None
        for i in range(40):  # up to 4 s: 100 bytes per 0.1 s (slow) and 2000 per 0.1 s (fast)
            r, _, _ = select.select([slow], [], [], 0.1)
            if r:
                answered = time.monotonic() - t0
                break
            try:
                slow.sendall(b"s" * 50)
            except (BrokenPipeError, ConnectionResetError):
                answered = time.monotonic() - t0
                break
            if i < 2:
                fast.sendall(b"f" * 2000)
        self.assertIsNotNone(answered, "the slow body was never cut")
        self.assertGreater(answered, 0.5)
        self.assertLess(answered, 3.0 * h.SLOW)
        data, closed = h.read_until_eof(slow, 3 * h.SLOW)
        self.assertEqual(h.status_of(data), 408, data[:200])
        self.assertTrue(closed)
        fast.settimeout(5)
        resp = fast.recv(65536)
        self.assertEqual(h.status_of(resp), 200)
        self.assertEqual([e["target"] for e in o.log_entries() if e["method"] == "POST"],
                         ["/echo?fast"])


class SlowRead(h.ToriiCase):
    def test_d3_e7_slow_read_send_timeout(self):
        """D3 + E7: a client that asks for 100 MiB and never reads (SO_RCVBUF 4 KiB) is cut
        off at send_timeout (1 s): its socket sees the close within a few seconds, and reading
        ends in EOF/RST (bounded). While stalled, torii stops reading the upstream at its
        high-water mark, so its RSS grows < 64 MiB; the upstream connection is closed, and a
        normal request succeeds afterwards."""
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], limits={"send_timeout": "1s"}))
        addr = t.addr()
        h.wait_for(lambda: upstream_conns(o) == 0, 3 * h.SLOW, what="no upstream connection")
        rss0 = t.rss_kib()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(addr)
        t0 = time.monotonic()
        s.sendall(h.build_request("GET", "/?size=104857600"))
        # Never read; watch torii's RSS until the kernel reports the connection closed.
        peak = rss0
        closed_at = None
        deadline = t0 + 1.0 + 4.0 * h.SLOW
        while time.monotonic() < deadline:
            peak = max(peak, t.rss_kib())
            if tcp_state(s) != TCP_ESTABLISHED:
                closed_at = time.monotonic()
                break
            time.sleep(0.05)
        self.assertIsNotNone(closed_at, f"torii kept the non-reading client open for "
                                        f"{deadline - t0:.1f}s (send_timeout 1 s)")
        self.assertGreater(closed_at - t0, 0.8, "closed before send_timeout")
        self.assertIn(tcp_state(s), (TCP_CLOSE, TCP_CLOSE_WAIT))
        self.assertLess(peak - rss0, 64 * 1024, f"RSS grew {peak - rss0} KiB while stalled")
        # Reading now ends (EOF or RST) quickly, having received far less than 100 MiB.
        got, eof = 0, False
        read_deadline = time.monotonic() + 3 * h.SLOW
        while time.monotonic() < read_deadline:
            s.settimeout(max(0.01, read_deadline - time.monotonic()))
            try:
                b = s.recv(1 << 20)
            except socket.timeout:
                break
            except ConnectionResetError:
                eof = True
                break
            if not b:
                eof = True
                break
            got += len(b)
        self.assertTrue(eof, f"no EOF/RST after reading {got} bytes")
        self.assertLess(got, 100 * 1024 * 1024)
        # The upstream connection that fed it is closed too (not left paused, not pooled).
        h.wait_for(lambda: upstream_conns(o) == 0, 3 * h.SLOW, interval=0.1,
                   what="the stalled response's upstream connection to close")
        r = h.get(addr, "/", timeout=5)
        self.assertEqual((r.status, r.body), (200, b"o1\n"))
        t.check_alive()


class ConnectionFlood(h.ToriiCase):
    def test_d5_flood_over_max_connections(self):
        """D5: with max_connections 64 (one worker; clients and upstreams share the slots),
        200 idle connections: those over the limit are accepted and closed (or wait in the
        backlog); torii stays up; a keep-alive connection opened before the flood is still
        served (its upstream is pooled); a new connection during the flood is closed or
        answered, never left hanging; once the flood closes, a new connection succeeds
        within 1 s."""
        o = self.origin("o1")
        t = self.torii(h.proxy_config([o], server_extra={"max_connections": 64}))
        addr = t.addr()
        before = h.Client(addr, timeout=5)
        self.addCleanup(before.close)
        self.assertEqual(before.get("/").status, 200)
        flood = []
        self.addCleanup(close_all, flood)
        for _ in range(200):
            flood.append(socket.create_connection(addr, timeout=5))
        # Torii takes the first ~62 (64 slots minus the client and its upstream above) and
        # accepts-and-closes the rest.
        h.wait_for(lambda: sum(peer_closed(s) for s in flood) >= 200 - 64, 3 * h.SLOW,
                   interval=0.05, what="connections over the limit to be closed")
        time.sleep(0.2)
        open_ = sum(not peer_closed(s) for s in flood)
        self.assertLessEqual(open_, 64, "more connections held open than max_connections")
        t.check_alive()
        # The connection from before the flood is still served.
        r = before.get("/?during-flood", timeout=3 * h.SLOW)
        self.assertEqual((r.status, r.body), (200, b"o1\n"))
        # A new connection now is closed (no slot) or answered; never a hang.
        data, closed = h.raw(addr, h.build_request("GET", "/?new-during-flood"),
                             timeout=3 * h.SLOW)
        self.assertTrue(closed or h.status_of(data) in (200, 503),
                        f"new connection during the flood: {data[:200]!r}, closed={closed}")
        self.assertIn(h.status_of(data), (None, 200, 503))
        # The flood ends: a new connection is served within 1 s.
        close_all(flood)
        ended = time.monotonic()
        r, attempts = get_within(addr, "/?after-flood", ended + 1.0)
        self.assertIsNotNone(r, f"no 200 within 1 s of the flood ending ({attempts} attempts)")
        self.assertEqual(r.body, b"o1\n")
        self.assertEqual(before.get("/?after").status, 200)
        t.check_alive()


    def test_newcomer_at_max_connections_evicts_the_longest_silent(self):
        """At max_connections a new client is served, and the connection that makes room is
        the longest-silent one that never sent a byte, then the next; an idle keep-alive
        connection goes only when no silent one is left. Refusing the newcomer instead
        would fail this."""
        o = self.origin("o1")
        c = h.proxy_config([o], server_extra={"max_connections": 16})
        c.tables["admin"] = {"address": "127.0.0.1:0"}
        t = self.torii(c)
        addr = t.addr()
        keep = h.Client(addr, timeout=5)  # a client slot and, pooled, an upstream slot
        self.addCleanup(keep.close)
        self.assertEqual(keep.get("/").status, 200)
        silent = []
        self.addCleanup(close_all, silent)
        # 1 + 1 + 14 = 16 slots: full. (The admin listener, asked at the end, is worker 0's
        # too; its connection is answered and closed.)
        for _ in range(14):
            silent.append(socket.create_connection(addr, timeout=5))
            time.sleep(0.05)  # accepted in this order: silent[0] is the longest silent
        time.sleep(0.3)
        self.assertFalse(any(peer_closed(s) for s in silent))
        newcomers = []
        self.addCleanup(close_all, newcomers)
        for i in range(2):
            n = h.Client(addr, timeout=5 * h.SLOW)
            newcomers.append(n.sock)
            r = n.get(f"/?newcomer={i}")
            self.assertEqual(r.status, 200)
            h.wait_for(lambda: peer_closed(silent[i]), 2 * h.SLOW,
                       what=f"the {i + 1}th longest-silent connection evicted")
            self.assertFalse(any(peer_closed(s) for s in silent[i + 1:]),
                             "a younger silent connection was evicted first")
        # The idle keep-alive connections (the first client, the newcomers) were spared.
        self.assertEqual(keep.get("/?after").status, 200)
        from test_admin import parse_metrics
        m = parse_metrics(h.get(t.addr("admin"), "/metrics").body.decode())
        self.assertGreaterEqual(m[("torii_idle_evicted_total", "")], 2)


def socket_count(pid):
    """Sockets among the open fds of process `pid`."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return n


class FdExhaustion(h.ToriiCase):
    NOFILE = 64

    def test_open_file_limit_raised_to_what_max_connections_needs(self):
        """#18: started under a low soft RLIMIT_NOFILE, torii raises it to workers x
        max_connections (+ its own files), capped by the hard limit; max_open_files above the
        hard limit is a clear start-up error."""
        o = self.origin("o1")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            t = self.torii(h.proxy_config([o], server_extra={"max_connections": 2000}))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        want = 2000 + 256
        got = resource.prlimit(t.pid, resource.RLIMIT_NOFILE)[0]
        self.assertEqual(got, min(want, hard) if hard != resource.RLIM_INFINITY else want)
        self.assertEqual(h.get(t.addr(), "/").status, 200)
        if hard != resource.RLIM_INFINITY:
            c = h.proxy_config([o], server_extra={"max_open_files": hard + 1})
            path = os.path.join(self.tmpdir(), "big.toml")
            with open(path, "w") as f:
                f.write(c.render(os.path.join(self.tmpdir(), "ready"), "off", "-"))
            p = subprocess.run([h.torii_bin(), "-c", path], capture_output=True, timeout=30,
                               env=h.child_env())
            self.assertEqual(p.returncode, 1)
            self.assertIn("above the hard RLIMIT_NOFILE", p.stderr.decode())

    def limited_torii(self, pool_extra, limits=None):
        """A torii (one worker, origin o1) started with RLIMIT_NOFILE = NOFILE.

        harness.Torii has no hook for the child's rlimits, so the soft limit of this process
        is lowered while torii is spawned (children inherit it, as after `ulimit -n 64`); the
        soft limit is what accept and socket() check. It must be in place before torii starts:
        io_uring snapshots RLIMIT_NOFILE when an accept is armed, so prlimit on the running
        process would not reach its multishot accept."""
        o = self.origin("o1")
        self.assertLess(len(os.listdir("/proc/self/fd")), self.NOFILE - 16)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.NOFILE, hard))
        try:
            # max_open_files: torii keeps the limit it was given (by default it raises the soft
            # limit to what max_connections needs).
            t = self.torii(h.proxy_config([o], pool_extra=pool_extra, limits=limits,
                                          server_extra={"max_open_files": self.NOFILE}))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        # Raise it again before torii's stop (cleanups run last-in first-out) so that
        # LeakSanitizer has fds to work with at exit.
        self.addCleanup(lambda: t.alive() and resource.prlimit(
            t.pid, resource.RLIMIT_NOFILE, (soft, hard)))
        self.assertEqual(resource.prlimit(t.pid, resource.RLIMIT_NOFILE)[0], self.NOFILE)
        return t

    def exhaust_fds(self, t):
        """Opens 100 idle clients, more than torii has fds for, and waits until accepting
        failed (EMFILE). Returns the clients (closed at cleanup, or by close_all)."""
        clients = []
        self.addCleanup(close_all, clients)
        for _ in range(100):
            clients.append(socket.create_connection(t.addr(), timeout=5))
        h.wait_for(lambda: "accept failed" in t.error_log(), 5 * h.SLOW, interval=0.05,
                   what="torii to log the EMFILE accept failure")
        self.assertLessEqual(h.fd_count(t.pid), self.NOFILE)
        return clients

    def test_e1_emfile_pauses_accepting(self):
        """E1: torii (one worker) runs with RLIMIT_NOFILE 64 and 100 idle clients connect:
        accept fails with EMFILE, torii pauses accepting and retries on a timer, so it uses
        < 20% of one core (no busy loop). An accepted client that sends a request gets a 503
        (upstream socket() fails with EMFILE) or a close, within a bound. A request on a
        connection still in the backlog is served once the clients leave, and new requests
        succeed within ~1 s (accepting resumed)."""
        # keepalive 0: every request needs a new upstream socket (no pooled one hides EMFILE).
        t = self.limited_torii({"keepalive": 0})
        addr = t.addr()
        # One request end to end, and both of its connections destroyed, before the fds run
        # out: UndefinedBehaviorSanitizer's vptr check probes memory through a pipe() the first
        # time it meets a (class, vtable) pair, and reports a false "invalid vptr" when the
        # process has no fd left for it. Destroying a client session and an upstream connection
        # once here puts their pairs in its cache.
        idle_sockets = socket_count(t.pid)
        self.assertEqual(h.get(addr, "/").status, 200)
        h.wait_for(lambda: socket_count(t.pid) <= idle_sockets, 5 * h.SLOW, interval=0.02,
                   what="torii to close the warm-up request's connections")
        time.sleep(0.1)  # the close completions reach the loop, which destroys the handlers
        base_fds = h.fd_count(t.pid)
        self.assertLess(base_fds, self.NOFILE - 8, f"torii already holds {base_fds} fds")
        clients = self.exhaust_fds(t)
        # No busy loop while the backlog holds connections it cannot accept.
        time.sleep(0.2)
        c0, w0 = cpu_seconds(t.pid), time.monotonic()
        time.sleep(2.0)
        cpu, wall = cpu_seconds(t.pid) - c0, time.monotonic() - w0
        self.assertLess(cpu / wall, 0.20, f"torii used {cpu:.2f}s CPU in {wall:.2f}s at EMFILE")
        t.check_alive()
        # An accepted client (the first one) asks for something: 503 or closed, never a hang.
        first = clients[0]
        t0 = time.monotonic()
        first.sendall(h.build_request("GET", "/?while-exhausted"))
        data, closed = b"", False
        while time.monotonic() - t0 < 3 * h.SLOW:
            r, _, _ = select.select([first], [], [], 0.1)
            if not r:
                continue
            try:
                b = first.recv(65536)
            except ConnectionResetError:
                b = b""
            if not b:
                closed = True
                break
            data += b
            if b"\r\n\r\n" in data:
                break
        self.assertTrue(closed or h.status_of(data) == 503,
                        f"request while out of fds: {data[:300]!r}, closed={closed}")
        if data:
            self.assertEqual(h.status_of(data), 503, data[:300])
        # A connection that waits in the backlog with its request sent.
        waiting = h.Client(addr, timeout=2 * h.SLOW)
        self.addCleanup(waiting.close)
        waiting.send(h.build_request("GET", "/?from-backlog"))
        time.sleep(0.3)
        close_all(clients)
        ended = time.monotonic()
        r, attempts = get_within(addr, "/?after-exhaustion", ended + 1.0 * h.SLOW)
        self.assertIsNotNone(r, f"no 200 within 1 s of the clients leaving ({attempts} tries)")
        self.assertLess(time.monotonic() - ended, 1.0 * h.SLOW)
        r = waiting.read_response()
        self.assertEqual((r.status, r.body), (200, b"o1\n"), "the backlogged request")
        self.assertEqual(h.get(addr, "/").status, 200)
        t.check_alive()


    def test_e1_keepalive_clients_served_under_load_while_accepting_fails(self):
        """E1 under load: four keep-alive clients send requests back to back, over the four
        upstream connections the pool opened before, while 100 more clients take every fd torii
        has left. Accepting fails (EMFILE) and pauses, and the four are served throughout:
        every request they send, before, during and after, is answered 200. Once the 100 leave,
        new connections are served again within ~1 s."""
        # keepalive_requests: the load clients' connections are not capped meanwhile (D8).
        t = self.limited_torii({"keepalive": 8}, limits={"keepalive_requests": 1000000})
        addr = t.addr()
        # Warm-up (see test_e1_emfile_pauses_accepting: a client session destroyed once before
        # the fds run out), then four upstream connections opened at once (slow answers).
        self.assertEqual(h.get(addr, "/").status, 200)
        time.sleep(0.2)
        loaders = [h.Client(addr, timeout=3 * h.SLOW) for _ in range(4)]
        for c in loaders:
            self.addCleanup(c.close)
            c.send(h.build_request("GET", "/?delay=300"))
        for c in loaders:
            self.assertEqual(c.read_response().status, 200)
        stop = threading.Event()
        results = [[] for _ in loaders]  # per client: (monotonic time, status or error)

        def load(c, out):
            while not stop.is_set():
                try:
                    out.append((time.monotonic(), c.get("/?under-load").status))
                except (OSError, ConnectionError, TimeoutError, h.Malformed) as e:
                    out.append((time.monotonic(), repr(e)))
                    return

        threads = [threading.Thread(target=load, args=(c, out), daemon=True)
                   for c, out in zip(loaders, results)]
        for th in threads:
            th.start()
        self.addCleanup(stop.set)
        clients = self.exhaust_fds(t)
        exhausted = time.monotonic()
        time.sleep(1.5)
        close_all(clients)
        ended = time.monotonic()
        r, attempts = get_within(addr, "/?after-exhaustion", ended + 1.0 * h.SLOW)
        self.assertIsNotNone(r, f"no 200 within 1 s of the clients leaving ({attempts} tries)")
        stop.set()
        for th in threads:
            th.join(5 * h.SLOW)
        for i, out in enumerate(results):
            outcomes = {o for _, o in out}
            self.assertEqual(outcomes, {200}, f"client {i}: {[o for _, o in out if o != 200]}")
            during = [o for at, o in out if exhausted <= at <= ended]
            self.assertGreater(len(during), 5, f"client {i} was served {len(during)} times "
                               "while accepting failed")
        t.check_alive()


class ConnectHang(h.ToriiCase):
    def blackhole(self):
        """A listener whose accept queue is full (backlog 0 plus one connection never
        accepted): Linux drops further SYNs, so a connect to it hangs."""
        ln = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(ln.close)
        ln.bind(("127.0.0.1", 0))
        ln.listen(0)
        fillers = []
        self.addCleanup(close_all, fillers)
        for _ in range(2):
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            fillers.append(f)
            f.setblocking(False)
            f.connect_ex(ln.getsockname())
        time.sleep(0.05)
        # Check that a new connect really hangs.
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        fillers.append(probe)
        probe.settimeout(0.3)
        with self.assertRaises(socket.timeout, msg="the full-backlog listener still accepts"):
            probe.connect(ln.getsockname())
        return f"127.0.0.1:{ln.getsockname()[1]}"

    def test_b14_connect_timeout_next_backend(self):
        """B14: the first backend never completes the TCP handshake. With connect_timeout
        500ms and retries 1, every request is served by the second backend within ~1.5 s
        (the ones that tried the hanging backend first take ~0.5 s). A pool with only the
        hanging backend answers 503/504 within ~1.5 s."""
        hang = self.blackhole()
        o = self.origin("o2")
        c = h.Config()
        c.add_pool("app", [hang, o], connect_timeout="500ms", retries=1)
        c.add_pool("hang", [hang], connect_timeout="500ms", retries=1)
        c.add_route("hang", path_prefix="/only-hang")
        c.add_route("app")
        t = self.torii(c)
        addr = t.addr()
        times = []
        for i in range(4):
            t0 = time.monotonic()
            r = h.get(addr, f"/?i={i}", timeout=5)
            times.append(time.monotonic() - t0)
            self.assertEqual((r.status, r.header("X-Backend")), (200, "o2"), f"request {i}")
            self.assertLess(times[-1], 1.5 * h.SLOW, f"request {i} took {times[-1]:.2f}s")
        self.assertGreater(max(times), 0.45, f"no request tried the hanging backend: {times}")
        for i in range(2):
            t0 = time.monotonic()
            r = h.get(addr, f"/only-hang?i={i}", timeout=5)
            elapsed = time.monotonic() - t0
            self.assertIn(r.status, (503, 504), f"only-hang request {i}: {r!r}")
            self.assertGreater(elapsed, 0.45)
            self.assertLess(elapsed, 1.5 * h.SLOW, f"only-hang request {i} took {elapsed:.2f}s")
        t.check_alive()


if __name__ == "__main__":
    unittest.main()
