#!/usr/bin/env python3
"""Turn the oha JSON files and RSS samples of bench/proxy.sh into one table.

Usage: report.py RESULTS_DIR   (reads RESULTS_DIR/meta.json, PEER.TEST.json,
PEER.rss.json; prints the table on stdout). Called by bench/proxy.sh.
"""

import json
import os
import sys

TESTS = [
    # (test id, row label, unit)
    ("ka", "keep-alive HTTP/1.1, c={conns} (req/s)", "rps"),
    ("h2", "HTTP/2, 4 conns x 8 streams (req/s)", "rps"),
    ("nc", "new connection per request, c={conns} (req/s)", "rps"),
]
PCTS = [("p50", "p50"), ("p90", "p90"), ("p99", "p99")]


def load(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def check(doc, rate=None):
    """Problems with one oha run: non-2xx answers, errors, missed rate."""
    problems = []
    codes = doc.get("statusCodeDistribution") or {}
    bad = {c: n for c, n in codes.items() if not str(c).startswith("2")}
    if bad:
        problems.append("non-2xx " + ", ".join(f"{c}x{n}" for c, n in sorted(bad.items())))
    errors = {
        e: n
        for e, n in (doc.get("errorDistribution") or {}).items()
        # oha cancels what is in flight at the -z deadline: not a failure.
        if "aborted due to deadline" not in e
    }
    if errors:
        problems.append("errors " + "; ".join(f"{e} x{n}" for e, n in errors.items()))
    ok = sum(n for c, n in codes.items() if str(c).startswith("2"))
    if ok == 0:
        problems.append("no successful response")
    if rate:
        secs = (doc.get("summary") or {}).get("total") or 0
        got = ok / secs if secs else 0
        if got < 0.95 * rate:
            problems.append(f"reached only {got:.0f} of {rate} req/s")
    return problems


def ok_rps(doc):
    """Successful (2xx) responses per second over the whole run."""
    codes = doc.get("statusCodeDistribution") or {}
    ok = sum(n for c, n in codes.items() if str(c).startswith("2"))
    secs = (doc.get("summary") or {}).get("total") or 0
    return ok / secs if secs else None


def pct_ms(doc, key):
    v = (doc.get("latencyPercentiles") or {}).get(key)
    return None if v is None else v * 1000.0


def main():
    results = sys.argv[1]
    meta = load(os.path.join(results, "meta.json")) or {}
    conns = meta.get("connections", "?")
    rate = int(meta.get("rate", 1000))
    peers = ["direct", "ward", "haproxy", "nginx"]
    skipped = set(meta.get("skipped", []))
    notes = []
    cells = {}  # (row, peer) -> value (float) or None
    flags = {}  # (row, peer) -> bool
    rows = []

    def note(peer, label, problems):
        notes.append(f"{peer}, {label}: " + "; ".join(problems))

    for test, label, _ in TESTS:
        row = label.format(conns=conns)
        rows.append((row, "higher"))
        for p in peers:
            doc = load(os.path.join(results, f"{p}.{test}.json"))
            if doc is None:
                cells[(row, p)] = None
                if p not in skipped:
                    flags[(row, p)] = True
                    note(p, row, ["oha failed (see its .err file)"])
                continue
            problems = check(doc)
            if problems:
                flags[(row, p)] = True
                note(p, row, problems)
            cells[(row, p)] = ok_rps(doc)

    direct_lat = load(os.path.join(results, "direct.lat.json"))
    for key, name in PCTS:
        row = f"added latency {name} @ {rate} req/s (ms)"
        rows.append((row, "lower"))
        base = pct_ms(direct_lat, key) if direct_lat else None
        cells[(row, "direct")] = base  # the baseline itself, absolute
        if direct_lat and key == "p50":
            problems = check(direct_lat, rate)
            if problems:
                note("direct", f"latency @ {rate} req/s", problems)
        for p in peers[1:]:
            doc = load(os.path.join(results, f"{p}.lat.json"))
            if doc is None or base is None:
                cells[(row, p)] = None
                if p not in skipped and doc is None and key == "p50":
                    note(p, f"latency @ {rate} req/s", ["oha failed (see its .err file)"])
                flags[(row, p)] = p not in skipped
                continue
            problems = check(doc, rate)
            if problems:
                flags[(row, p)] = True
                if key == "p50":
                    note(p, f"latency @ {rate} req/s", problems)
            v = pct_ms(doc, key)
            cells[(row, p)] = None if v is None else v - base

    # CPU time both proxies spent per keep-alive request: on a shared 2-core
    # box, req/s also measures what oha and the upstream left over; this
    # measures the proxies' own cost.
    row = "proxies' CPU per keep-alive request (us)"
    rows.append((row, "lower"))
    cells[(row, "direct")] = None
    for p in peers[1:]:
        cpu = load(os.path.join(results, f"{p}.ka.cpu.json"))
        doc = load(os.path.join(results, f"{p}.ka.json"))
        codes = (doc or {}).get("statusCodeDistribution") or {}
        n = sum(v for c, v in codes.items() if str(c).startswith("2"))
        if cpu and n and cpu.get("hz"):
            cells[(row, p)] = cpu["ticks"] / cpu["hz"] / n * 1e6
        else:
            cells[(row, p)] = None

    for kind, name in (("idle", "idle RSS (MiB)"), ("loaded", "loaded RSS, peak (MiB)")):
        rows.append((name, "lower"))
        cells[(name, "direct")] = None
        for p in peers[1:]:
            doc = load(os.path.join(results, f"{p}.rss.json"))
            kib = doc.get(kind) if doc else None
            cells[(name, p)] = None if kib is None else kib / 1024.0

    def fmt(row, p):
        if p in skipped:
            return "skipped"
        v = cells.get((row, p))
        if v is None:
            return "-" if p == "direct" and ("RSS" in row or "CPU" in row) else "fail"
        if "req/s" in row.split("(")[-1]:
            s = f"{v:,.0f}"
        elif "ms" in row.split("(")[-1]:
            s = f"{v:.3f}"
        else:
            s = f"{v:.1f}"
        return s + (" !" if flags.get((row, p)) else "")

    def ratio(row, a, b):
        if a in skipped or b in skipped:
            return "-"
        x, y = cells.get((row, a)), cells.get((row, b))
        if x is None or y is None or y == 0:
            return "-"
        return f"{x / y:.2f}x"

    header = ["metric", "direct", "ward", "haproxy", "nginx", "ward/haproxy", "ward/nginx"]
    table = [header]
    for row, _ in rows:
        table.append(
            [row]
            + [fmt(row, p) for p in peers]
            + [ratio(row, "ward", "haproxy"), ratio(row, "ward", "nginx")]
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(r):
        return "  ".join(
            (c.ljust(widths[i]) if i == 0 else c.rjust(widths[i])) for i, c in enumerate(r)
        )

    print(
        "Ward proxy benchmark: oha -> proxy A (plain HTTP) -> mTLS 1.3 -> proxy B -> "
        "fixed-200 upstream, all on 127.0.0.1"
    )
    for k in ("date", "host", "oha", "nginx", "haproxy", "ward", "settings"):
        if meta.get(k):
            print(f"  {k}: {meta[k]}")
    print()
    print(line(table[0]))
    print(line(["-" * w for w in widths]))
    for r in table[1:]:
        print(line(r))
    print()
    print("direct = the upstream alone, no proxy (its latency rows are the absolute")
    print("  baseline that the peers' \"added latency\" subtracts). Ratios: Ward / peer;")
    print("  req/s: higher is better; latency and RSS: lower is better.")
    print("new connection per request: a new TCP connection oha -> proxy A for every")
    print("  request; the mTLS hop A -> B stays pooled (Ward's proxy has no switch to")
    print("  stop pooling, so no peer gets one).")
    print("HTTP/2: h2c (prior knowledge) into proxy A (nginx 1.22: on a second port);")
    print(f"  the A -> B hop: Ward HTTP/2, HAProxy {meta.get('haproxy_alpn', 'h2')}, nginx HTTP/1.1 (its")
    print("  only upstream protocol), all pooled. Ward decides (Cedar) and audits every")
    print("  call; nginx and HAProxy log nothing. Upstream: nginx, 1 worker, return 200.")
    print("RSS: VmRSS summed over both proxy processes (nginx: master + worker of A")
    print("  and of B); loaded = highest sum sampled every 0.2 s during the load runs.")
    print("CPU per request: user + system time of both proxy processes (all threads)")
    print("  during the keep-alive run, divided by its 2xx answers (10 ms tick")
    print("  resolution); unlike req/s, it does not depend on what oha and the")
    print("  upstream take of the 2 cores.")
    for m in meta.get("mtls_checks", []):
        print(f"mTLS check: {m}")
    if notes:
        print()
        print("! = the run had a problem:")
        for n in notes:
            print(f"  {n}")


if __name__ == "__main__":
    main()
