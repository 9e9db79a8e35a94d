#!/usr/bin/env python3
"""bench/report.py: helpers for bench/run.sh (Python 3 standard library only).

  report.py parse-wrk FILE
      Parses `wrk --latency` output and prints one line:
      "RPS REQUESTS P50_US P99_US NON2XX SOCKET_ERRORS" (fails if the output is incomplete).

  report.py instructions WORK N1 N2 PROXY...
      The instructions mode's table: user-space instructions per request for each proxy and
      scenario, from the callgrind dumps in WORK, and each proxy's count divided by torii's.

  report.py parse-ab FILE CSV RAW [--size N]
      Parses the output of `ab -k -e CSV -g RAW` and prints one line:
      "RPS REQUESTS P50_US P90_US P99_US P999_US NON2XX FAILED KEEPALIVE". p50/p90/p99 are
      ab's own per-request percentiles from its -e table (microsecond resolution; ab takes
      the sorted request times' element at index (int)(0.5 + n * p / 100)); p99.9 is the
      nearest-rank percentile of the -g per-request dump's ttime column, which ab writes in
      whole milliseconds. None is corrected for coordinated omission. Fails if the output is
      incomplete, the dump does not hold one line per completed request, or (--size) the
      document length ab saw is not N.

  report.py pairs RUNS A B METRIC LABEL_A LABEL_B [COL:LABEL ...]
      Reads whitespace-separated runs (a header line "round proxy variant COL ...", lines
      starting with # ignored) and prints a markdown table: per proxy, the median of METRIC
      for variants A and B, B - A (and in %), and the medians of the other COLs for B
      (fastopen, early and mtls modes).

  report.py table RUNS_TSV [--duration S] [--conns N]
      Reads the per-run records written by run.sh (tab separated:
      scenario proxy round rps requests p50_us p99_us cpu_s non2xx sock_errors)
      and prints, per scenario and proxy: median req/s, median p50/p99, proxy CPU use,
      requests per proxy CPU-second (sum of requests / sum of CPU seconds over all rounds),
      errors, and torii's ratios to nginx and HAProxy.

  report.py balance-table RUNS_TSV [--duration S] [--conns N] [--slow-ms MS]
      Reads balance mode's per-run records (tab separated: proxy algorithm round rps requests
      p50_us p99_us cpu_s non2xx sock_errors slow_requests all_requests [busy P, busy L
      [ab_rps ab_requests ab_p50_us ab_p90_us ab_p99_us ab_p999_us ab_non2xx ab_failed
      ab_keepalive ab_slow_requests ab_all_requests ab_busy_P ab_busy_L]]; algorithm rr or
      lc) and prints, per proxy and algorithm: from ab's runs (when recorded) median req/s,
      per-request p50, p90, p99 and p99.9, the slow origin's share of the requests, errors;
      from wrk's runs median req/s, p50 and p99 (corrected for coordinated omission), the
      slow share, errors; then per proxy the ratio of the median p99s, round robin /
      least_conn, from each tool.

  report.py ratelimit-table RUNS_TSV [--duration S] [--conns N]
      Reads ratelimit mode's per-run records (tab separated: proxy limit round rps requests
      p50_us p99_us cpu_s non2xx sock_errors [busy P, busy L]; limit off or on) and prints,
      per proxy and limit: median req/s, p50 and p99, proxy CPU use, requests per proxy
      CPU-second, errors; then per proxy the limit's overhead, 1 - (req/CPU-s on / off), over
      all rounds and round by round (each round's "on" run against the same round's "off").

  report.py compress-table RUNS_TSV --sizes SIZES_TSV [--duration S] [--conns N] [--level L]
      Reads compress mode's per-run records (tab separated: proxy round rps requests p50_us
      p99_us cpu_s non2xx sock_errors busy_p busy_l bytes_read) and the compressed sizes
      check-gzip recorded, and prints per proxy: median req/s, p50 and p99, proxy CPU use,
      requests per proxy CPU-second, the gzip body size, the bytes wrk read per response,
      errors; then torii's ratios to nginx and HAProxy (req/s and req per CPU-second).

  report.py check-gzip --name NAME --addr HOST:PORT --path PATH --reference HOST:PORT
                       [--count K] [--record FILE]
      GETs PATH from the origin (--reference, no compression) and then K times from the
      proxy over one keep-alive connection (and once more on a fresh one) with
      "Accept-Encoding: gzip": each answer must be 200 with Content-Encoding: gzip and a
      body that gunzips to the origin's exact bytes. Prints one line; with --record, appends
      "NAME plain_bytes gzip_min gzip_max framing vary" (tab separated) to FILE. Exits 1 on
      the first failure, with the reason.

  report.py wrk-read FILE
      Prints the bytes wrk read ("N requests in Ts, X.YZMB read"), as a whole number.

  report.py origin-requests HOST:PORT...
      Prints the sum of the torii-origins' request counts (GET /__stats).

  report.py header HOST:PORT PATH NAME
      GETs PATH and prints the value of the response header NAME; exits 1 if it is absent
      or the status is not 200.

  report.py haproxy-table SOCKET TABLE
      Prints HAProxy's "show table TABLE" from its stats socket SOCKET.
"""
import glob
import gzip
import http.client
import json
import os
import zlib
import re
import socket
import statistics
import sys

_UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0, "h": 3_600_000_000.0}


def _latency_us(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"bad latency value {text!r}")
    return float(m.group(1)) * _UNITS_US[m.group(2)]


def parse_wrk(text):
    """Returns (rps, requests, p50_us, p99_us, non2xx, socket_errors) from wrk --latency output."""
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    reqs = re.search(r"^\s*(\d+) requests in ", text, re.M)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if not (rps and reqs and p50 and p99):
        raise ValueError("incomplete wrk output (no Requests/sec, request count or percentiles)")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    sock_errors = sum(int(x) for x in sock.groups()) if sock else 0
    return (float(rps.group(1)), int(reqs.group(1)), _latency_us(p50.group(1)),
            _latency_us(p99.group(1)), int(non2xx.group(1)) if non2xx else 0, sock_errors)


def parse_h2load(text):
    """(rps, requests, mean_us, max_us, non2xx, errors) from h2load's output."""
    rps = re.search(r"^finished in [^,]+, ([0-9.]+) req/s", text, re.M)
    done = re.search(r"^requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored, (\d+) timeout", text, re.M)
    codes = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    req = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.M)
    if not (rps and done and codes and req):
        raise ValueError("incomplete h2load output")
    errors = int(done.group(3)) + int(done.group(4)) + int(done.group(5))
    non2xx = int(codes.group(2)) + int(codes.group(3)) + int(codes.group(4))
    return (float(rps.group(1)), int(done.group(2)), _latency_us(req.group(3)),
            _latency_us(req.group(2)), non2xx, errors)


def parse_ab(text, csv_text, raw_path, size=None):
    """Returns (rps, requests, p50_us, p90_us, p99_us, p999_us, non2xx, failed, keepalive)
    from ab's report, its -e CSV table and its -g per-request dump (see the module doc)."""
    rps = re.search(r"^Requests per second:\s+([0-9.]+)", text, re.M)
    complete = re.search(r"^Complete requests:\s+(\d+)", text, re.M)
    failed = re.search(r"^Failed requests:\s+(\d+)", text, re.M)
    keepalive = re.search(r"^Keep-Alive requests:\s+(\d+)", text, re.M)
    doclen = re.search(r"^Document Length:\s+(\d+) bytes", text, re.M)
    if not (rps and complete and failed and keepalive and doclen):
        raise ValueError("incomplete ab output (no requests per second, complete, failed or "
                         "Keep-Alive request count, or document length)")
    if size is not None and int(doclen.group(1)) != size:
        raise ValueError(f"ab saw {doclen.group(1)}-byte documents, expected {size}")
    n = int(complete.group(1))
    if n == 0:
        raise ValueError("ab completed no request")
    non2xx = re.search(r"^Non-2xx responses:\s+(\d+)", text, re.M)
    pct = {}
    for line in csv_text.splitlines()[1:]:
        if line.strip():
            k, v = line.split(",")
            pct[int(k)] = float(v) * 1000.0  # ms -> us
    if not all(k in pct for k in (50, 90, 99)):
        raise ValueError("ab's -e table lacks the 50, 90 or 99 % rows")
    # -g: "starttime seconds ctime dtime ttime wait", one line per completed request.
    counts = {}
    lines = 0
    with open(raw_path) as f:
        header = f.readline().rstrip("\n").split("\t")
        if header[-2:] != ["ttime", "wait"]:
            raise ValueError(f"unexpected ab -g header {header!r}")
        for line in f:
            ttime = int(line.rsplit("\t", 2)[1])
            counts[ttime] = counts.get(ttime, 0) + 1
            lines += 1
    if lines != n:
        raise ValueError(f"ab's -g dump holds {lines} requests, its report {n}")
    rank = -(-n * 999 // 1000)  # nearest rank: ceil(0.999 n)
    seen = 0
    for ms in sorted(counts):
        seen += counts[ms]
        if seen >= rank:
            p999 = ms * 1000.0
            break
    return (float(rps.group(1)), n, pct[50], pct[90], pct[99], p999,
            int(non2xx.group(1)) if non2xx else 0, int(failed.group(1)), int(keepalive.group(1)))


def _fmt_lat(us):
    if us >= 1_000_000:
        return f"{us / 1_000_000:.2f}s"
    if us >= 1000:
        return f"{us / 1000:.2f}ms"
    return f"{us:.0f}us"


def _fmt_ratio(a, b):
    return f"x{a / b:.2f}" if a and b else "n/a"


SCENARIO_TITLES = {
    "small": "100-byte responses (GET /?size=100)",
    "large": "100 KiB responses (GET /?size=102400)",
    "h2tls-small": "HTTP/2 over TLS 1.3, 100-byte responses",
    "h2tls-4k": "HTTP/2 over TLS 1.3, 4 KiB responses",
    "h2c-small": "h2c (prior knowledge), 100-byte responses",
    "h2c-4k": "h2c (prior knowledge), 4 KiB responses",
}
PROXY_ORDER = ["torii", "nginx", "haproxy"]


def table(path, duration, conns):
    runs = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            sc, px, rnd, rps, reqs, p50, p99, cpu, non2xx, sock = f[:10]
            busy_p, busy_l = (float(f[10]), float(f[11])) if len(f) >= 12 else (0.0, 0.0)
            runs.append(dict(scenario=sc, proxy=px, round=int(rnd), rps=float(rps),
                             requests=int(reqs), p50=float(p50), p99=float(p99), cpu=float(cpu),
                             non2xx=int(non2xx), sock=int(sock), busy_p=busy_p, busy_l=busy_l))
    out = []
    scenarios = list(dict.fromkeys(r["scenario"] for r in runs))
    for sc in scenarios:
        mine = [r for r in runs if r["scenario"] == sc]
        proxies = [p for p in PROXY_ORDER if any(r["proxy"] == p for r in mine)]
        proxies += sorted({r["proxy"] for r in mine} - set(proxies))
        rounds = max(r["round"] for r in mine)
        out.append(f"Scenario {sc}: {SCENARIO_TITLES.get(sc, sc)}, {conns} keep-alive connections, "
                   f"{rounds} round(s) x {duration}s per proxy, interleaved")
        hdr = (f"  {'proxy':<8} {'req/s (median)':>15} {'p50':>9} {'p99':>9} {'proxy CPU':>10} "
               f"{'req/CPU-s':>10} {'errors':>7} {'CPU busy P/L':>13}   per-round req/s")
        out.append(hdr)
        out.append("  " + "-" * (len(hdr) - 2))
        summary = {}
        for px in proxies:
            rs = sorted((r for r in mine if r["proxy"] == px), key=lambda r: r["round"])
            med_rps = statistics.median(r["rps"] for r in rs)
            med_p50 = statistics.median(r["p50"] for r in rs)
            med_p99 = statistics.median(r["p99"] for r in rs)
            total_req = sum(r["requests"] for r in rs)
            total_cpu = sum(r["cpu"] for r in rs)
            cpu_pct = 100.0 * total_cpu / (duration * len(rs)) if duration else 0.0
            per_cpu = total_req / total_cpu if total_cpu > 0 else 0.0
            errors = sum(r["non2xx"] + r["sock"] for r in rs)
            busy = f"{statistics.median(r['busy_p'] for r in rs):.0f}%/" \
                   f"{statistics.median(r['busy_l'] for r in rs):.0f}%"
            summary[px] = (med_rps, per_cpu, rs)
            out.append(f"  {px:<8} {med_rps:>15,.0f} {_fmt_lat(med_p50):>9} {_fmt_lat(med_p99):>9} "
                       f"{cpu_pct:>9.0f}% {per_cpu:>10,.0f} {errors:>7} {busy:>13}   "
                       + " ".join(f"{r['rps']:,.0f}" for r in rs))
        if "torii" in summary:
            t_rps, t_cpu, t_rs = summary["torii"]
            for peer in (p for p in proxies if p != "torii"):
                p_rps, p_cpu, p_rs = summary[peer]
                # Each round's ratio of the two proxies' req per CPU-second: rounds run back to
                # back, so a ratio within one round is less exposed to the host's drift.
                by_round = []
                for r in t_rs:
                    pr = [x for x in p_rs if x["round"] == r["round"]]
                    if r["cpu"] > 0 and pr and pr[0]["cpu"] > 0 and pr[0]["requests"] > 0:
                        by_round.append((r["requests"] / r["cpu"]) /
                                        (pr[0]["requests"] / pr[0]["cpu"]))
                per_round = ""
                if by_round:
                    per_round = (f"   per round: median x{statistics.median(by_round):.2f} ("
                                 + " ".join(f"x{x:.2f}" for x in by_round) + ")")
                out.append(f"  torii / {peer:<8} req/s {_fmt_ratio(t_rps, p_rps):>6}   "
                           f"req per CPU-second {_fmt_ratio(t_cpu, p_cpu):>6}" + per_round)
        out.append("")
    out.append("proxy CPU = proxy CPU seconds (utime+stime, all its processes) / wall seconds of "
               "the runs; 100% = the one core it is pinned to.")
    out.append("errors = wrk non-2xx/3xx responses + socket errors, summed over the rounds.")
    out.append("CPU busy P/L = median share of the run during which the proxy's CPU / the load CPU "
               "(wrk + origin) was busy with anything,\n  other tenants included: L near 100% "
               "means wrk + origin, not the proxy, set req/s; req/CPU-s is then the figure\n"
               "  that compares the proxies.")
    return "\n".join(out)


ALGO_TITLES = {"rr": "round robin", "lc": "least_conn"}
ALGO_DIRECTIVES = {
    "torii": {"rr": 'algorithm = "round_robin"', "lc": 'algorithm = "least_conn"'},
    "nginx": {"rr": "(default)", "lc": "least_conn;"},
    "haproxy": {"rr": "balance roundrobin", "lc": "balance leastconn"},
}


def balance_table(path, duration, conns, slow_ms):
    runs = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            px, algo, rnd, rps, reqs, p50, p99, cpu, non2xx, sock, slow, total = f[:12]
            busy_p, busy_l = (float(f[12]), float(f[13])) if len(f) >= 14 else (0.0, 0.0)
            run = dict(proxy=px, algo=algo, round=int(rnd), rps=float(rps),
                       requests=int(reqs), p50=float(p50), p99=float(p99), cpu=float(cpu),
                       non2xx=int(non2xx), sock=int(sock), slow=int(slow), total=int(total),
                       busy_p=busy_p, busy_l=busy_l, ab=None)
            if len(f) >= 27:
                a = f[14:27]
                run["ab"] = dict(rps=float(a[0]), requests=int(a[1]), p50=float(a[2]),
                                 p90=float(a[3]), p99=float(a[4]), p999=float(a[5]),
                                 non2xx=int(a[6]), failed=int(a[7]), keepalive=int(a[8]),
                                 slow=int(a[9]), total=int(a[10]), busy_p=float(a[11]),
                                 busy_l=float(a[12]))
            runs.append(run)
    if not runs:
        return "no runs recorded"
    proxies = [p for p in PROXY_ORDER if any(r["proxy"] == p for r in runs)]
    proxies += sorted({r["proxy"] for r in runs} - set(proxies))
    rounds = max(r["round"] for r in runs)
    has_ab = all(r["ab"] is not None for r in runs)
    out = [f"Balance: GET /?size=100 over 3 origins, one of them delaying every response by "
           f"{slow_ms:g} ms; {conns} keep-alive connections, {rounds} round(s) x {duration:g}s "
           f"per (proxy, algorithm){' and tool' if has_ab else ''}, interleaved"]

    def share(rs):
        slow, total = sum(r["slow"] for r in rs), sum(r["total"] for r in rs)
        return f"{100.0 * slow / total:.2f}%" if total else "n/a"

    def busy(rs):
        return (f"{statistics.median(r['busy_p'] for r in rs):.0f}%/"
                f"{statistics.median(r['busy_l'] for r in rs):.0f}%")

    def groups():
        for px in proxies:
            for algo in ("rr", "lc"):
                rs = sorted((r for r in runs if r["proxy"] == px and r["algo"] == algo),
                            key=lambda r: r["round"])
                if rs:
                    yield px, algo, rs

    def label(px, algo):
        directive = ALGO_DIRECTIVES.get(px, {}).get(algo, algo)
        return f"  {px:<8} {ALGO_TITLES.get(algo, algo):<12} {directive:<28} "

    ab_p99s, wrk_p99s = {}, {}
    if has_ab:
        out.append("")
        out.append(f"Per-request latency, NOT corrected for coordinated omission (ab -k -c{conns} "
                   f"-t{duration:g}: each request timed from its send to its last byte)")
        hdr = (f"  {'proxy':<8} {'algorithm':<12} {'directive':<28} {'req/s (median)':>15} "
               f"{'p50':>9} {'p90':>9} {'p99':>9} {'p99.9':>9} {'slow share':>10} {'errors':>7} "
               f"{'CPU busy P/L':>13}   per-round p99")
        out.append(hdr)
        out.append("  " + "-" * (len(hdr) - 2))
        for px, algo, rs in groups():
            ab = [r["ab"] for r in rs]
            med = {k: statistics.median(a[k] for a in ab) for k in ("rps", "p50", "p90", "p99", "p999")}
            errors = sum(a["non2xx"] + a["failed"] for a in ab)
            ab_p99s[(px, algo)] = med["p99"]
            out.append(label(px, algo)
                       + f"{med['rps']:>15,.0f} {_fmt_lat(med['p50']):>9} {_fmt_lat(med['p90']):>9} "
                       f"{_fmt_lat(med['p99']):>9} {_fmt_lat(med['p999']):>9} {share(ab):>10} "
                       f"{errors:>7} {busy(ab):>13}   "
                       + " ".join(_fmt_lat(a["p99"]) for a in ab))
        out.append("")
        out.append(f"wrk's latency, corrected for coordinated omission (wrk -t1 -c{conns} "
                   f"-d{duration:g}s --latency: wrk adds the samples a connection stalled on a "
                   f"slow response did not send)")
    hdr = (f"  {'proxy':<8} {'algorithm':<12} {'directive':<28} {'req/s (median)':>15} {'p50':>9} "
           f"{'p99':>9} {'slow share':>10} {'errors':>7} {'CPU busy P/L':>13}   per-round p99")
    out.append(hdr)
    out.append("  " + "-" * (len(hdr) - 2))
    for px, algo, rs in groups():
        med_rps = statistics.median(r["rps"] for r in rs)
        med_p50 = statistics.median(r["p50"] for r in rs)
        med_p99 = statistics.median(r["p99"] for r in rs)
        errors = sum(r["non2xx"] + r["sock"] for r in rs)
        wrk_p99s[(px, algo)] = med_p99
        out.append(label(px, algo)
                   + f"{med_rps:>15,.0f} {_fmt_lat(med_p50):>9} {_fmt_lat(med_p99):>9} "
                   f"{share(rs):>10} {errors:>7} {busy(rs):>13}   "
                   + " ".join(_fmt_lat(r["p99"]) for r in rs))
    out.append("")
    out.append("p99 round robin / p99 least_conn (medians over the rounds):")

    def ratio(p99s, px):
        rr, lc = p99s.get((px, "rr")), p99s.get((px, "lc"))
        text = f"{_fmt_ratio(rr, lc):>7}"
        if rr and lc:
            text += f" ({_fmt_lat(rr)} / {_fmt_lat(lc)})"
        return text

    for px in proxies:
        line = f"  {px:<8} "
        if has_ab:
            line += f"per request (ab) {ratio(ab_p99s, px):<31} "
        line += f"wrk, corrected {ratio(wrk_p99s, px)}"
        out.append(line)
    out.append("")
    out.append("slow share = requests the slow origin received / requests all three received "
               "during that tool's runs (their /__stats counts).")
    if has_ab:
        out.append("ab: p50/p90/p99 from ab's -e table (microseconds); p99.9 from its -g dump, "
                   "which holds whole milliseconds; errors = non-2xx\n"
                   "  responses + failed requests (connect, receive, length, exceptions); requests "
                   "still in flight when -t ends are not counted.")
    out.append("wrk: errors = non-2xx/3xx responses + socket errors. Errors are summed over the "
               "rounds; req/s and percentiles are medians over the rounds.")
    return "\n".join(out)


LIMIT_TITLES = {"off": "no limit", "on": "limit, not hit"}
LIMIT_DIRECTIVES = {
    "torii": 'rate_limit = "per_ip"',
    "nginx": "limit_req zone=per_ip nodelay",
    "haproxy": "track-sc0 src + deny if",
}


def ratelimit_table(path, duration, conns):
    runs = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            px, limit, rnd, rps, reqs, p50, p99, cpu, non2xx, sock = f[:10]
            busy_p, busy_l = (float(f[10]), float(f[11])) if len(f) >= 12 else (0.0, 0.0)
            runs.append(dict(proxy=px, limit=limit, round=int(rnd), rps=float(rps),
                             requests=int(reqs), p50=float(p50), p99=float(p99), cpu=float(cpu),
                             non2xx=int(non2xx), sock=int(sock), busy_p=busy_p, busy_l=busy_l))
    if not runs:
        return "no runs recorded"
    proxies = [p for p in PROXY_ORDER if any(r["proxy"] == p for r in runs)]
    proxies += sorted({r["proxy"] for r in runs} - set(proxies))
    rounds = max(r["round"] for r in runs)
    out = [f"Rate limit not hit: GET /?size=100, {conns} keep-alive connections, {rounds} round(s) "
           f"x {duration:g}s per (proxy, limit), interleaved"]
    hdr = (f"  {'proxy':<8} {'limit':<15} {'directive':<30} {'req/s (median)':>15} {'p50':>9} "
           f"{'p99':>9} {'proxy CPU':>15} {'req/CPU-s':>10} {'errors':>7} {'CPU busy P/L':>13}"
           f"   per-round req/CPU-s")
    out.append(hdr)
    out.append("  " + "-" * (len(hdr) - 2))

    def per_cpu(rs):
        cpu = sum(r["cpu"] for r in rs)
        return sum(r["requests"] for r in rs) / cpu if cpu > 0 else 0.0

    summary = {}
    for px in proxies:
        for limit in ("off", "on"):
            rs = sorted((r for r in runs if r["proxy"] == px and r["limit"] == limit),
                        key=lambda r: r["round"])
            if not rs:
                continue
            med_rps = statistics.median(r["rps"] for r in rs)
            med_p50 = statistics.median(r["p50"] for r in rs)
            med_p99 = statistics.median(r["p99"] for r in rs)
            total_cpu = sum(r["cpu"] for r in rs)
            cpu_pct = 100.0 * total_cpu / (duration * len(rs)) if duration else 0.0
            errors = sum(r["non2xx"] + r["sock"] for r in rs)
            busy = f"{statistics.median(r['busy_p'] for r in rs):.0f}%/" \
                   f"{statistics.median(r['busy_l'] for r in rs):.0f}%"
            summary[(px, limit)] = (per_cpu(rs), med_p50, med_p99, rs)
            directive = LIMIT_DIRECTIVES.get(px, "?") if limit == "on" else "-"
            out.append(f"  {px:<8} {LIMIT_TITLES.get(limit, limit):<15} {directive:<30} "
                       f"{med_rps:>15,.0f} {_fmt_lat(med_p50):>9} {_fmt_lat(med_p99):>9} "
                       f"{f'{total_cpu:.2f}s ({cpu_pct:.0f}%)':>15} {per_cpu(rs):>10,.0f} "
                       f"{errors:>7} {busy:>13}   "
                       + " ".join(f"{per_cpu([r]):,.0f}" for r in rs))
    out.append("")
    for px in proxies:
        off, on = summary.get((px, "off")), summary.get((px, "on"))
        if not (off and on and off[0] > 0):
            continue
        overhead = 100.0 * (1.0 - on[0] / off[0])
        by_round = []
        for r_on in on[3]:
            r_off = [r for r in off[3] if r["round"] == r_on["round"]]
            if r_off and per_cpu(r_off) > 0:
                by_round.append(100.0 * (1.0 - per_cpu([r_on]) / per_cpu(r_off)))
        spread = ""
        if len(by_round) >= 2:
            se = statistics.stdev(by_round) / len(by_round) ** 0.5
            spread = (f" (median {statistics.median(by_round):+.1f}%, mean "
                      f"{statistics.mean(by_round):+.1f}% +- {se:.1f}% s.e.)")
        out.append(f"  {px:<8} limit overhead (1 - req/CPU-s on / off): {overhead:+6.1f}%   "
                   f"per round: " + " ".join(f"{o:+.1f}%" for o in by_round) + spread
                   + f"   p50 {_fmt_lat(off[1])} -> {_fmt_lat(on[1])}, "
                   f"p99 {_fmt_lat(off[2])} -> {_fmt_lat(on[2])}")
    out.append("")
    out.append("proxy CPU = the proxy's CPU seconds (utime+stime, all its processes) summed over "
               "the rounds (and, in brackets, / wall\n  seconds of the runs: 100% = the one core "
               "it is pinned to); req/CPU-s = requests / those CPU seconds.")
    out.append("overhead > 0: the limit costs that share of the requests per CPU-second; < 0 is "
               "noise in the limit's favour. Per round:\n  each round's \"on\" run against the "
               "same round's \"off\" run; their spread (s.e. = standard error of the mean) "
               "is the\n  resolution of the overall figure.")
    out.append("errors = wrk non-2xx/3xx responses + socket errors, summed over the rounds (any "
               "non-2xx stops the run: a limit was hit).")
    return "\n".join(out)


def compress_table(path, sizes_path, duration, conns, level):
    runs = []
    with open(path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            px, rnd, rps, reqs, p50, p99, cpu, non2xx, sock, busy_p, busy_l, nread = f[:12]
            runs.append(dict(proxy=px, round=int(rnd), rps=float(rps), requests=int(reqs),
                             p50=float(p50), p99=float(p99), cpu=float(cpu), non2xx=int(non2xx),
                             sock=int(sock), busy_p=float(busy_p), busy_l=float(busy_l),
                             read=int(nread)))
    sizes = {}
    with open(sizes_path) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            px, plain, gmin, gmax, framing, vary = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
            sizes[px] = dict(plain=int(plain), gmin=int(gmin), gmax=int(gmax), framing=framing,
                             vary=vary)
    if not runs:
        return "no runs recorded"
    proxies = [p for p in PROXY_ORDER if any(r["proxy"] == p for r in runs)]
    proxies += sorted({r["proxy"] for r in runs} - set(proxies))
    rounds = max(r["round"] for r in runs)
    plain = next((v["plain"] for v in sizes.values()), 0)
    out = [f"gzip on the fly, level {level}: GET /?size={plain}&text=1 ({plain:,} bytes of "
           f"English-like text/plain), Accept-Encoding: gzip, {conns} keep-alive connections, "
           f"{rounds} round(s) x {duration:g}s per proxy, interleaved"]
    hdr = (f"  {'proxy':<8} {'req/s (median)':>15} {'p50':>9} {'p99':>9} {'proxy CPU':>15} "
           f"{'req/CPU-s':>10} {'gzip body':>17} {'read/resp':>10} {'errors':>7} "
           f"{'CPU busy P/L':>13}   per-round req/CPU-s")
    out.append(hdr)
    out.append("  " + "-" * (len(hdr) - 2))

    def per_cpu(rs):
        cpu = sum(r["cpu"] for r in rs)
        return sum(r["requests"] for r in rs) / cpu if cpu > 0 else 0.0

    summary = {}
    for px in proxies:
        rs = sorted((r for r in runs if r["proxy"] == px), key=lambda r: r["round"])
        med_rps = statistics.median(r["rps"] for r in rs)
        med_p50 = statistics.median(r["p50"] for r in rs)
        med_p99 = statistics.median(r["p99"] for r in rs)
        total_cpu = sum(r["cpu"] for r in rs)
        cpu_pct = 100.0 * total_cpu / (duration * len(rs)) if duration else 0.0
        reqs = sum(r["requests"] for r in rs)
        read = sum(r["read"] for r in rs) / reqs if reqs else 0.0
        errors = sum(r["non2xx"] + r["sock"] for r in rs)
        busy = f"{statistics.median(r['busy_p'] for r in rs):.0f}%/" \
               f"{statistics.median(r['busy_l'] for r in rs):.0f}%"
        sz = sizes.get(px)
        if sz:
            g = f"{sz['gmin']:,}" if sz["gmin"] == sz["gmax"] else f"{sz['gmin']:,}-{sz['gmax']:,}"
            gz = f"{g} ({sz['plain'] / sz['gmax']:.2f}x)"
        else:
            gz = "n/a"
        summary[px] = (med_rps, per_cpu(rs), rs)
        out.append(f"  {px:<8} {med_rps:>15,.0f} {_fmt_lat(med_p50):>9} {_fmt_lat(med_p99):>9} "
                   f"{f'{total_cpu:.2f}s ({cpu_pct:.0f}%)':>15} {per_cpu(rs):>10,.0f} {gz:>17} "
                   f"{read:>10,.0f} {errors:>7} {busy:>13}   "
                   + " ".join(f"{per_cpu([r]):,.0f}" for r in rs))
    out.append("")
    if "torii" in summary:
        t_rps, t_cpu, t_rs = summary["torii"]
        for peer in (p for p in proxies if p != "torii"):
            p_rps, p_cpu, p_rs = summary[peer]
            by_round = []
            for r in t_rs:
                pr = [x for x in p_rs if x["round"] == r["round"]]
                if pr and per_cpu(pr) > 0:
                    by_round.append(per_cpu([r]) / per_cpu(pr))
            out.append(f"  torii / {peer:<8} req/s {_fmt_ratio(t_rps, p_rps):>6}   "
                       f"req per CPU-second {_fmt_ratio(t_cpu, p_cpu):>6}   per round: "
                       + " ".join(f"x{x:.2f}" for x in by_round))
        out.append("")
    out.append("proxy CPU = the proxy's CPU seconds (utime+stime, all its processes) summed over "
               "the rounds (and, in brackets, / wall\n  seconds of the runs: 100% = the one core "
               "it is pinned to); req/CPU-s = requests / those CPU seconds.")
    out.append("gzip body = the compressed body's size in the checks before the runs (the "
               "origin's bytes / it); read/resp = bytes wrk read\n  per response during the "
               "runs (status line, headers and chunk framing included).")
    out.append("errors = wrk non-2xx/3xx responses + socket errors, summed over the rounds (any "
               "non-2xx stops the run).")
    framings = ", ".join(f"{px} {sizes[px]['framing']}" + (f" (Vary: {sizes[px]['vary']})"
                                                          if sizes[px]["vary"] else " (no Vary)")
                         for px in proxies if px in sizes)
    if framings:
        out.append(f"framing of the compressed responses: {framings}.")
    return "\n".join(out)


def _fetch(conn, path, headers):
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    return resp.status, resp, resp.read()


def check_gzip(name, addr, path, reference, count, record):
    rhost, rport = reference.rsplit(":", 1)
    rc = http.client.HTTPConnection(rhost, int(rport), timeout=10)
    st, _, expected = _fetch(rc, path, {"User-Agent": "torii-bench-check"})
    rc.close()
    if st != 200 or not expected:
        raise ValueError(f"the origin answered {st} with {len(expected)} bytes for {path}")
    host, port = addr.rsplit(":", 1)
    hdrs = {"User-Agent": "torii-bench-check", "Accept-Encoding": "gzip"}
    sizes, framing, vary = [], set(), set()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    for i in range(count + 1):
        if i == count:  # one more on a fresh connection
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
        st, resp, body = _fetch(conn, path, hdrs)
        where = f"{name}: request {i + 1} GET {path} (Accept-Encoding: gzip)"
        if st != 200:
            raise ValueError(f"{where} answered {st}; headers {resp.getheaders()}")
        ce = (resp.getheader("Content-Encoding") or "").strip().lower()
        if ce != "gzip":
            raise ValueError(f"{where}: Content-Encoding {ce or '(none)'!r}, expected gzip; "
                             f"{len(body)} bytes; headers {resp.getheaders()}")
        try:
            plain = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{where}: the body ({len(body)} bytes) does not gunzip: {e}")
        if plain != expected:
            at = next((j for j in range(min(len(plain), len(expected)))
                       if plain[j] != expected[j]), min(len(plain), len(expected)))
            raise ValueError(f"{where}: gunzipped {len(plain)} bytes, the origin's are "
                             f"{len(expected)}; first difference at byte {at}")
        sizes.append(len(body))
        te = resp.getheader("Transfer-Encoding")
        cl = resp.getheader("Content-Length")
        framing.add(f"Transfer-Encoding: {te}" if te else
                    f"Content-Length" if cl else "close-delimited")
        vary.add(resp.getheader("Vary") or "")
    conn.close()
    fr = " / ".join(sorted(framing))
    va = " / ".join(sorted(vary))
    if record:
        with open(record, "a") as f:
            f.write(f"{name}\t{len(expected)}\t{min(sizes)}\t{max(sizes)}\t{fr}\t{va}\n")
    g = f"{min(sizes)}" if min(sizes) == max(sizes) else f"{min(sizes)}-{max(sizes)}"
    return (f"{name}: {count + 1} x 200, Content-Encoding: gzip, {fr}, Vary: {va or '(none)'}; "
            f"gzip body {g} bytes, gunzips to the origin's {len(expected)} bytes "
            f"({len(expected) / max(sizes):.2f}x)")


_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4}


def wrk_read(text):
    m = re.search(r"^\s*\d+ requests in [^,]+,\s+([0-9.]+)([KMGT]?B) read", text, re.M)
    if not m:
        raise ValueError("no 'N requests in T, X read' line")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def header_value(addr, path, name):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", path, headers={"User-Agent": "torii-bench-check"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status != 200:
        raise ValueError(f"{addr}{path}: status {resp.status}")
    return resp.getheader(name)


def haproxy_table(sock_path, table_name):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(f"show table {table_name}\n".encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def origin_requests(addrs):
    total = 0
    for addr in addrs:
        host, port = addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/__stats")
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        if resp.status != 200:
            raise ValueError(f"{addr}: /__stats answered {resp.status}")
        total += int(json.loads(body)["requests"])
    return total


def pairs_table(path, a, b, metric, label_a, label_b, also):
    """Per proxy, the median of column `metric` for variants `a` and `b` of the runs in `path`
    (a header line "round proxy variant COL..." names the columns), their difference, and the
    median of each column in `also` (COL:LABEL) for variant `b`."""
    rows, cols = [], None
    with open(path) as f:
        for line in f:
            fields = line.split()
            if not fields or line.startswith("#"):
                continue
            if fields[0] == "round":
                cols = fields
            else:
                rows.append(dict(zip(cols, fields)))
    if cols is None:
        raise ValueError("no header line (round proxy variant ...)")
    by = {}
    for r in rows:
        by.setdefault((r["proxy"], r["variant"]), []).append(r)

    def med(proxy, variant, col):
        return statistics.median(float(r[col]) for r in by[(proxy, variant)])

    extra = [c.split(":", 1) for c in also]
    out = [f"| proxy | {label_a} | {label_b} | change |" + "".join(f" {lbl} |" for _, lbl in extra),
           "|---|---:|---:|---:|" + "---:|" * len(extra)]
    for proxy in dict.fromkeys(r["proxy"] for r in rows):
        if (proxy, a) not in by or (proxy, b) not in by:
            continue
        va, vb = med(proxy, a, metric), med(proxy, b, metric)
        out.append(f"| {proxy} | {va:.0f} | {vb:.0f} | {vb - va:+.0f} ({(vb - va) / va * 100:+.0f}%) |" +
                   "".join(f" {med(proxy, b, col):.2f} |" for col, _ in extra))
    return "\n".join(out)


def parse_strace_c(text):
    """strace -c's summary: {syscall: calls}, its "total" row included ({} without a table)."""
    calls = {}
    for line in text.splitlines():
        f = line.split()
        # "% time  seconds  usecs/call  calls  [errors]  syscall"; the errors column may be empty.
        if len(f) < 5 or not f[0].replace(".", "", 1).isdigit():
            continue
        name = f[-1]
        count = f[3]
        if count.isdigit():
            calls[name] = int(count)
    return calls


def parse_perf_count(text, event):
    """The count `perf stat -x,` printed for `event` (None when absent or not counted: no
    permission for the tracepoint, or no such event on this kernel)."""
    for line in text.splitlines():
        f = line.split(",")
        if len(f) > 2 and event in f[2]:
            return int(f[0]) if f[0].isdigit() else None
    return None


def syscalls_table(work, n1, n2, proxies):
    """Per-request system calls and io_uring operations, by difference of two request counts,
    from the strace -c and perf stat files run.sh's syscalls mode left in `work`."""
    out = ["| proxy | system calls / request | io_uring operations / request | the largest, per request |",
           "|---|---:|---:|---|"]
    def parsed(kind, p, n, parse):
        with open(f"{work}/{kind}-{p}-{n}.txt") as f:
            return parse(f.read())

    def sqes(text):
        return parse_perf_count(text, "io_uring_submit_req")

    for p in proxies:
        try:
            a, b = (parsed("strace", p, n, parse_strace_c) for n in (n1, n2))
            qa, qb = (parsed("perf", p, n, sqes) for n in (n1, n2))
        except OSError as e:
            out.append(f"| {p} | (no data: {e}) | | |")
            continue
        span = n2 - n1
        names = set(a) | set(b)
        names.discard("total")
        per = {n: (b.get(n, 0) - a.get(n, 0)) / span for n in names}
        total = sum(per.values())
        top = sorted(((v, n) for n, v in per.items() if v >= 0.005), reverse=True)[:5]
        ops = "n/a" if qa is None or qb is None else f"{(qb - qa) / span:.2f}"
        out.append(f"| {p} | {total:.2f} | {ops} | " +
                   ", ".join(f"{n} {v:.2f}" for v, n in top) + " |")
    return "\n".join(out)


def callgrind_total(path):
    """The instruction count of one callgrind dump (its "summary:" line)."""
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise ValueError(f"{path}: no summary line")


def instructions_table(work, n1, n2, proxies):
    """User-space instructions per request, by difference of two request counts, from the
    callgrind dumps run.sh's instructions mode left in `work` (callgrind-NAME-SCENARIO.PID.K:
    K = 1 after `n1` requests, 2 after `n2`)."""
    scenarios = os.environ.get("INSTR_SCENARIOS", "proxy hit4k").split()
    out = ["| proxy | " + " | ".join(f"{s}: instructions / request" for s in scenarios) +
           " | " + " | ".join(f"{s}: ÷ torii" for s in scenarios) + " |",
           "|---|" + "---:|" * (2 * len(scenarios))]
    per = {}
    for p in proxies:
        for sc in scenarios:
            name = f"{p}-{sc}"
            try:
                totals = []
                for k in (1, 2):
                    files = glob.glob(f"{work}/callgrind-{name}.*.{k}")
                    if not files:
                        raise ValueError(f"no dump {k}")
                    totals.append(sum(callgrind_total(f) for f in files))
                per[(p, sc)] = (totals[1] - totals[0]) / (n2 - n1)
            except (OSError, ValueError):
                per[(p, sc)] = None
    for p in proxies:
        cells = []
        for sc in scenarios:
            v = per[(p, sc)]
            cells.append("n/a" if v is None else f"{v:,.0f}")
        for sc in scenarios:
            v, t = per[(p, sc)], per.get(("torii", sc))
            cells.append("n/a" if v is None or not t else f"{v / t:.2f}")
        out.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv):
    load_parsers = {"parse-wrk": parse_wrk, "parse-h2load": parse_h2load}
    if len(argv) >= 2 and argv[0] in load_parsers:
        with open(argv[1]) as f:
            try:
                vals = load_parsers[argv[0]](f.read())
            except ValueError as e:
                print(f"report.py: {argv[1]}: {e}", file=sys.stderr)
                return 1
        print("%.2f %d %.1f %.1f %d %d" % vals)
        return 0
    if len(argv) >= 4 and argv[0] == "parse-ab":
        size = None
        if len(argv) == 6 and argv[4] == "--size":
            size = int(argv[5])
        elif len(argv) != 4:
            print("report.py: parse-ab FILE CSV RAW [--size N]", file=sys.stderr)
            return 2
        try:
            with open(argv[1]) as f, open(argv[2]) as c:
                vals = parse_ab(f.read(), c.read(), argv[3], size)
        except (OSError, ValueError) as e:
            print(f"report.py: {argv[1]}: {e}", file=sys.stderr)
            return 1
        print("%.2f %d %.1f %.1f %.1f %.1f %d %d %d" % vals)
        return 0
    if len(argv) >= 4 and argv[0] == "instructions":
        print(instructions_table(argv[1], int(argv[2]), int(argv[3]), argv[4:]))
        return 0
    if len(argv) >= 4 and argv[0] == "syscalls":
        print(syscalls_table(argv[1], int(argv[2]), int(argv[3]), argv[4:]))
        return 0
    tables = {
        # subcommand: (function, its options beyond --duration/--conns with their types)
        "table": (lambda f, o: table(f, o["duration"], o["conns"]), {}),
        "balance-table": (lambda f, o: balance_table(f, o["duration"], o["conns"], o["slow_ms"]),
                          {"slow_ms": float}),
        "ratelimit-table": (lambda f, o: ratelimit_table(f, o["duration"], o["conns"]), {}),
        "compress-table": (lambda f, o: compress_table(f, o["sizes"], o["duration"], o["conns"],
                                                       o["level"]),
                           {"level": int, "sizes": str}),
    }
    if len(argv) >= 2 and argv[0] in tables:
        render, extra = tables[argv[0]]
        types = {"duration": float, "conns": int, **extra}
        opts = {"duration": 0.0, "conns": 0, "slow_ms": 0.0, "level": 0, "sizes": None}
        args = argv[2:]
        while args:
            key = args[0][2:].replace("-", "_") if args[0].startswith("--") else ""
            if key not in types or len(args) < 2:
                print(f"report.py: unknown option {args[0]}", file=sys.stderr)
                return 2
            opts[key] = types[key](args[1])
            args = args[2:]
        if argv[0] == "compress-table" and opts["sizes"] is None:
            print("report.py: compress-table needs --sizes", file=sys.stderr)
            return 2
        print(render(argv[1], opts))
        return 0
    if len(argv) >= 1 and argv[0] == "check-gzip":
        opts = {"--name": "proxy", "--addr": None, "--path": None, "--reference": None,
                "--count": "10", "--record": None}
        args = argv[1:]
        while args:
            if args[0] not in opts or len(args) < 2:
                print(f"report.py: bad option {args[0]}", file=sys.stderr)
                return 2
            opts[args[0]] = args[1]
            args = args[2:]
        if not (opts["--addr"] and opts["--path"] and opts["--reference"]):
            print("report.py: check-gzip needs --addr, --path and --reference", file=sys.stderr)
            return 2
        try:
            print(check_gzip(opts["--name"], opts["--addr"], opts["--path"], opts["--reference"],
                             int(opts["--count"]), opts["--record"]))
        except (OSError, ValueError, http.client.HTTPException) as e:
            print(f"{opts['--name']}: {e}")
            return 1
        return 0
    if len(argv) == 2 and argv[0] == "wrk-read":
        with open(argv[1]) as f:
            try:
                print(wrk_read(f.read()))
            except ValueError as e:
                print(f"report.py: {argv[1]}: {e}", file=sys.stderr)
                return 1
        return 0
    if len(argv) == 4 and argv[0] == "header":
        try:
            value = header_value(argv[1], argv[2], argv[3])
        except (OSError, ValueError, http.client.HTTPException) as e:
            print(f"report.py: {e}", file=sys.stderr)
            return 1
        if value is None:
            return 1
        print(value)
        return 0
    if len(argv) == 3 and argv[0] == "haproxy-table":
        try:
            print(haproxy_table(argv[1], argv[2]), end="")
        except OSError as e:
            print(f"report.py: {argv[1]}: {e}", file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 6 and argv[0] == "pairs":
        # pairs RUNS A B METRIC LABEL_A LABEL_B [COL:LABEL ...]
        try:
            print(pairs_table(argv[1], argv[2], argv[3], argv[4], argv[5], argv[6], argv[7:]))
        except (OSError, ValueError, KeyError, IndexError) as e:
            print(f"report.py: {argv[1]}: {e}", file=sys.stderr)
            return 1
        return 0
    if len(argv) >= 2 and argv[0] == "origin-requests":
        try:
            print(origin_requests(argv[1:]))
        except (OSError, ValueError, KeyError) as e:
            print(f"report.py: {e}", file=sys.stderr)
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
