#!/usr/bin/env python3
"""Probe driver of bench/revocation.sh: live traffic, the revocation, the report.

    probe.py --victim-outbound HOST:PORT --targets p00,p01,... [options] -- REVOKE COMMAND...

For every target a probe loop sends `GET /probe` with `Host: <target>` through
the victim's proxy (outbound listener) on a fixed schedule, one every
--probe-ms whether or not earlier ones were answered (up to --max-inflight at
once, each on its own keep-alive HTTP/1.1 connection; when the machine cannot
keep up the gaps grow, and the report prints them). Every probe is recorded
with its monotonic send and receive times, status and, for a 403, the problem
`type`.

Phases: (1) readiness — each target must answer one probe 2xx within
--ready-timeout; (2) --warmup seconds of steady traffic; (3) the revoke command
runs (in a thread, so probing never pauses); t_launch is taken just before it
starts, t_ack just after it returns: the API acknowledged the revocation;
(4) probing goes on until every target refuses the victim as revoked and has
kept refusing for --settle seconds, or --timeout seconds after t_ack.

Enforcement at a target: the send time of the first probe answered
`403 urn:ward:problem:revoked` after which no probe succeeded (2xx). Latency =
that send time - t_ack, 0 when it is earlier (the target already refused when
the command returned). The true moment the target began refusing lies between
the send time of its last accepted probe (it was accepted after it was sent)
and the receipt of its first refused one; both bounds are printed too.
Writes every probe to --csv; exit 0 when every target enforced within
--timeout, 1 when some did not, 3 when the set-up failed (not ready, revoke
command failed).
"""

import argparse
import asyncio
import csv
import json
import math
import subprocess
import sys
import os
import re
import time
from datetime import datetime, timezone

now = time.monotonic  # CLOCK_MONOTONIC on Linux: same clock in every thread


# The proxy's watcher logs this (warn level) once it has applied a view that
# refuses a peer with open connections, and has cut them.
APPLIED_MARK = "connections of refused peers closed"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


class Client:
    """One keep-alive HTTP/1.1 connection; reconnects after any error."""

    def __init__(self, addr, host_header, timeout):
        self.addr = addr
        self.request = (
            f"GET /probe HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: ward-revocation-bench\r\n\r\n"
        ).encode()
        self.timeout = timeout
        self.reader = self.writer = None

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def _read(self):
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    # trailers (none expected): read up to the empty line
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            body = b"".join(parts)
        else:
            body = await self.reader.read()  # until close
            self.close()
        if headers.get("connection", "").lower() == "close":
            self.close()
        kind = ""
        if status == 403 or "problem+json" in headers.get("content-type", ""):
            try:
                kind = json.loads(body).get("type", "")
                kind = kind.rsplit(":", 1)[-1]
            except (ValueError, AttributeError):
                kind = "?"
        return status, kind

    async def probe(self):
        """-> (send time, receive time, status (0 = transport error), kind)."""
        t_send = now()
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.wait_for(
                    asyncio.open_connection(*self.addr), self.timeout
                )
                t_send = now()
            self.writer.write(self.request)
            status, kind = await asyncio.wait_for(self._read(), self.timeout)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as e:
            self.close()
            return t_send, now(), 0, type(e).__name__
        return t_send, now(), status, kind


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def ms(x):
    return f"{x * 1000:8.1f}"


class Bench:
    def __init__(self, args):
        self.a = args
        self.interval = args.probe_ms / 1000
        self.records = {t: [] for t in args.targets}  # target -> [(send, recv, status, kind)]
        self.ready = set()
        self.revoked_since = {}  # target -> recv time of the first revoked answer in the current run of them
        self.stop = False
        self.t_ack = None
        self.bg = []  # (send, recv, status, kind, src, dst)
        self.wall_ack = None

    def record(self, target, rec):
        self.records[target].append(rec)
        status, kind = rec[2], rec[3]
        if 200 <= status < 300:
            self.ready.add(target)
            self.revoked_since.pop(target, None)
        elif status == 403 and kind == "revoked":
            self.revoked_since.setdefault(target, rec[1])
        # a transport error or a 5xx says nothing: keep the current run

    async def probe_loop(self, target):
        addr = hostport(self.a.victim_outbound)
        timeout = self.a.request_timeout
        # Until the target first answers 2xx (its proxy enrolled, the
        # victim's proxy learnt its endpoint): one probe at a time.
        first = Client(addr, target, timeout)
        while not self.stop and target not in self.ready:
            rec = await first.probe()
            self.record(target, rec)
            if not 200 <= rec[2] < 300:
                await asyncio.sleep(0.1)
        # Then on a fixed schedule: a probe every `interval`, whether or not
        # earlier ones have been answered (up to --max-inflight at once, each
        # on its own keep-alive connection), so a slow answer (a connection
        # cut while a probe was on it) does not leave a hole in the schedule.
        idle = [first]
        slots = asyncio.Semaphore(self.a.max_inflight)
        pending = set()

        async def one(client):
            try:
                self.record(target, await client.probe())
            finally:
                idle.append(client)
                slots.release()

        next_send = now()
        while not self.stop:
            delay = next_send - now()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            if self.stop:
                slots.release()
                break
            client = idle.pop() if idle else Client(addr, target, timeout)
            task = asyncio.create_task(one(client))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_send = max(next_send + self.interval, now())
        await asyncio.gather(*pending)
        for c in idle:
            c.close()

    async def background_loop(self):
        pairs = self.a.background
        if not pairs or self.a.background_rps <= 0:
            return
        clients = [Client(hostport(src), dst, self.a.request_timeout) for src, dst in pairs]
        gap = 1 / self.a.background_rps
        i = 0
        next_send = now()
        while not self.stop:
            delay = next_send - now()
            if delay > 0:
                await asyncio.sleep(delay)
            k = i % len(pairs)
            rec = await clients[k].probe()
            self.bg.append(rec + pairs[k])
            i += 1
            next_send = max(next_send + gap, now())
        for c in clients:
            c.close()

    def revoke(self):
        cmd = self.a.revoke
        t_launch = now()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            t_ack = now()
            self.wall_ack = time.time()  # to place the proxies' log lines
            if self.a.ack_file:
                # The receipts (server clock, same host) are compared to it.
                with open(self.a.ack_file, "w") as f:
                    f.write(f"{self.wall_ack * 1000:.3f}\n")
            return t_launch, t_ack, p.returncode, (p.stdout + p.stderr).strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            return t_launch, now(), -1, str(e)

    async def run(self):
        a = self.a
        loop = asyncio.get_running_loop()
        tasks = [asyncio.create_task(self.probe_loop(t)) for t in a.targets]
        bg_task = asyncio.create_task(self.background_loop())

        # (1) readiness: one 2xx per target.
        t_start = now()
        log(f"probing {len(a.targets)} targets through the victim's proxy until each answers 200")
        while len(self.ready) < len(a.targets):
            if now() - t_start > a.ready_timeout:
                self.stop = True
                await asyncio.gather(*tasks, bg_task)
                missing = sorted(set(a.targets) - self.ready)
                print(f"error: {len(missing)} target(s) never answered 2xx within {a.ready_timeout:.0f} s:", file=sys.stderr)
                for t in missing[:10]:
                    last = self.records[t][-1] if self.records[t] else None
                    print(f"  {t}: last answer {last[2] if last else '-'} {last[3] if last else ''}", file=sys.stderr)
                return 3
            await asyncio.sleep(0.05)
        log(f"all {len(a.targets)} targets answer 200 after {now() - t_start:.1f} s; {a.warmup:.0f} s of steady traffic")

        # (2) steady traffic.
        t_warm = now()
        await asyncio.sleep(a.warmup)
        t_pre_end = now()

        # (3) revoke, without pausing the probes.
        log("revoking the victim: " + " ".join(a.revoke_display or a.revoke))
        t_launch, t_ack, rc, output = await loop.run_in_executor(None, self.revoke)
        self.t_ack = t_ack
        if rc != 0:
            self.stop = True
            await asyncio.gather(*tasks, bg_task)
            print(f"error: the revoke command failed (exit {rc}):\n{output}", file=sys.stderr)
            return 3
        stamp = datetime.fromtimestamp(self.wall_ack, tz=timezone.utc).strftime("%H:%M:%S.%f")
        log(f"revoke acknowledged after {(t_ack - t_launch) * 1000:.1f} ms, at {stamp} UTC: "
            + (output.splitlines()[0] if output else ""))

        # (4) until every target has refused for `settle` seconds, or the bound.
        while True:
            t = now()
            if t - t_ack > a.timeout:
                break
            if len(self.revoked_since) == len(a.targets) and all(
                t - since >= a.settle for since in self.revoked_since.values()
            ):
                break
            await asyncio.sleep(0.02)
        self.stop = True
        await asyncio.gather(*tasks, bg_task)
        t_end = now()
        self.write_csv(t_ack)
        return self.report(t_warm, t_pre_end, t_launch, t_ack, t_end, output)

    def write_csv(self, t0):
        if not self.a.csv:
            return
        with open(self.a.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["stream", "source", "target", "send_ms_after_ack", "recv_ms_after_ack", "status", "kind"])
            for target, recs in self.records.items():
                for s, r, st, k in recs:
                    w.writerow(["probe", "victim", target, f"{(s - t0) * 1000:.3f}", f"{(r - t0) * 1000:.3f}", st, k])
            for s, r, st, k, src, dst in self.bg:
                w.writerow(["background", src, dst, f"{(s - t0) * 1000:.3f}", f"{(r - t0) * 1000:.3f}", st, k])

    def applied_from_logs(self):
        """target -> seconds from the ack to the proxy's own log line saying
        it cut the revoked peer's connections (it applied the revocation)."""
        out = {}
        if not self.a.log_dir or self.wall_ack is None:
            return out
        for target in self.a.targets:
            try:
                with open(os.path.join(self.a.log_dir, f"{target}.log"), errors="replace") as f:
                    for line in f:
                        if APPLIED_MARK in line:
                            stamp = ANSI.sub("", line).split()[0]
                            t = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
                            out[target] = t - self.wall_ack
                            break
            except (OSError, ValueError, IndexError):
                continue
        return out

    def report(self, t_warm, t_pre_end, t_launch, t_ack, t_end, output):
        a = self.a
        n = len(a.targets)
        est, lower, upper, from_launch, step = [], [], [], [], []
        early = 0
        failed = {}
        flaps = 0
        other = {}  # non-2xx, non-revoked answers after the launch: "502", "403 denied", "error" ...
        pre = [0, 0]  # steady window: probes, non-2xx
        gaps = []
        for target, recs in self.records.items():
            recs.sort()  # recorded as answered; analysed in send order
            last_ok = None
            for i, (s, r, st, k) in enumerate(recs):
                if 200 <= st < 300:
                    last_ok = i
                if t_warm <= s < t_pre_end:
                    pre[0] += 1
                    pre[1] += not (200 <= st < 300)
                if s >= t_launch and not (200 <= st < 300) and not (st == 403 and k == "revoked"):
                    key = "transport error (" + k + ")" if st == 0 else f"{st} {k}".strip()
                    other[key] = other.get(key, 0) + 1
                if i and s >= t_launch - 1:
                    gaps.append(s - recs[i - 1][0])
            # accepted although sent after a probe refused as revoked: the
            # target let the victim back in (or reordered the two)
            seen_revoked = False
            for s, r, st, k in recs:
                if st == 403 and k == "revoked":
                    seen_revoked = True
                elif 200 <= st < 300 and seen_revoked:
                    flaps += 1
            start = 0 if last_ok is None else last_ok + 1
            first = next((i for i in range(start, len(recs)) if recs[i][2] == 403 and recs[i][3] == "revoked"), None)
            if first is None or recs[first][0] - t_ack > a.timeout:
                tail = recs[-3:]
                failed[target] = ", ".join(f"{st} {k}".strip() for _, _, st, k in tail) or "no probes"
                continue
            s, r = recs[first][0], recs[first][1]
            if s < t_ack:
                early += 1
            est.append(max(0.0, s - t_ack))
            from_launch.append(max(0.0, s - t_launch))
            upper.append(max(0.0, r - t_ack))
            lower.append(max(0.0, recs[last_ok][0] - t_ack) if last_ok is not None else 0.0)
            if first:
                step.append(s - recs[first - 1][0])

        total = sum(len(r) for r in self.records.values())
        window = t_end - t_warm
        out = []
        p = out.append
        p(f"Ward revocation benchmark — {n} proxies (+ the victim's), binary {a.binary_label}")
        if a.host_note:
            p(f"  host: {a.host_note}")
        p(f"  probes: victim -> each proxy, every {a.probe_ms:g} ms per target (at most "
          f"{a.max_inflight} in flight); {total / window:,.0f} probes/s achieved in total ({total:,} probes)")
        if gaps:
            p(f"  probe resolution (gap between a target's probes, from 1 s before the revoke): "
              f"p50 {pct(gaps, 50) * 1000:.1f} ms, p99 {pct(gaps, 99) * 1000:.1f} ms, max {max(gaps) * 1000:.1f} ms")
        p(f"  before the revoke: {pre[0]:,} probes in {t_pre_end - t_warm:.1f} s, {pre[1]} not 2xx")
        p(f"  revoke command: {(t_ack - t_launch) * 1000:.1f} ms from launch to return "
          f"(includes the CLI's process start-up, config loading and mTLS handshake)")
        p(f"  enforced within {a.timeout:g} s: {n - len(failed)}/{n}"
          + (f"; {early} already refusing before the command returned (counted as 0 ms)" if early else ""))
        p("")
        p("  enforcement latency, ms (nearest-rank)         p50      p90      p99      max"
          + ("   (p99 = max below 100 proxies)" if 0 < len(est) < 100 else ""))
        if est:
            rows = [
                ("from API ack: send of first refused probe", est),
                ("  lower bound: send of last accepted probe", lower),
                ("  upper bound: receipt of first refused", upper),
                ("from command launch: send of first refused", from_launch),
            ]
            applied = self.applied_from_logs()
            if applied:
                rows.append(("cross-check: the proxy's own log line", list(applied.values())))
            for label, v in rows:
                p(f"  {label:<44}" + " ".join(ms(pct(v, q)) for q in (50, 90, 99)) + " " + ms(max(v)))
            if applied:
                p(f"  cross-check: {len(applied)}/{n} proxies logged applying it (cut the victim's connections), "
                  f"earliest {min(applied.values()) * 1000:.1f} ms; wall clock, to the ms")
        if step:
            p(f"  error bar: gap before the enforcing probe p50 {pct(step, 50) * 1000:.1f} ms, "
              f"p99 {pct(step, 99) * 1000:.1f} ms, max {max(step) * 1000:.1f} ms; send times are used, so a")
            p("  probe's transit adds nothing; the true moment lies between the lower and upper bounds")
        if other:
            p("  other answers after the launch (not counted as enforcement): "
              + ", ".join(f"{v} x {k}" for k, v in sorted(other.items(), key=lambda kv: -kv[1])))
        if flaps:
            p(f"  WARNING: {flaps} probe(s) accepted although sent after one refused as revoked")
        if self.bg:
            bad = sum(1 for rec in self.bg if not (200 <= rec[2] < 300))
            after = [rec for rec in self.bg if rec[0] >= t_ack]
            bad_after = sum(1 for rec in after if not (200 <= rec[2] < 300))
            p(f"  background traffic between other agents: {len(self.bg)} requests, {bad} not 2xx "
              f"({len(after)} after the revoke, {bad_after} not 2xx)")
        if est:
            verdict = "met" if pct(est, 99) < 0.2 else "MISSED"
            p(f"  target p99 < 200 ms: {verdict} (p99 {pct(est, 99) * 1000:.1f} ms)")
        if failed:
            p(f"  FAILED: {len(failed)} target(s) never refused the victim as revoked within {a.timeout:g} s:")
            for t, last in sorted(failed.items())[:20]:
                p(f"    {t}: last answers {last}")
        print("\n".join(out), flush=True)
        return 1 if failed else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victim-outbound", required=True, help="HOST:PORT of the victim proxy's outbound listener")
    ap.add_argument("--targets", required=True, help="comma-separated agent names to probe")
    ap.add_argument("--background", default="", help="comma-separated SRC_OUTBOUND=DST_AGENT pairs")
    ap.add_argument("--background-rps", type=float, default=0)
    ap.add_argument("--probe-ms", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--timeout", type=float, default=10, help="enforcement bound after the ack, s")
    ap.add_argument("--settle", type=float, default=0.5, help="how long every target must keep refusing, s")
    ap.add_argument("--ready-timeout", type=float, default=60)
    ap.add_argument("--request-timeout", type=float, default=5)
    ap.add_argument("--max-inflight", type=int, default=16, help="probes in flight per target")
    ap.add_argument("--host-note", default="", help="a line about the machine, printed as is")
    ap.add_argument("--csv", default="")
    ap.add_argument("--log-dir", default="", help="the proxies' logs, TARGET.log, for the cross-check")
    ap.add_argument("--binary-label", default="ward")
    ap.add_argument("--ack-file", default="", help="write the acknowledgement's wall-clock time (unix ms) here")
    ap.add_argument("--revoke-display", default="", help="the revoke command as shown in progress lines")
    ap.add_argument("revoke", nargs="+", help="the revoke command (after --)")
    a = ap.parse_args()
    a.targets = [t for t in a.targets.split(",") if t]
    a.background = [tuple(x.split("=", 1)) for x in a.background.split(",") if x]
    a.revoke_display = a.revoke_display.split() if a.revoke_display else None
    if not a.targets or a.probe_ms <= 0:
        ap.error("need targets and a positive --probe-ms")
    # The revoke runs in a thread: let it take the GIL back soon after the
    # command returns so t_ack is not late by a whole 5 ms switch interval.
    sys.setswitchinterval(0.0005)
    try:
        return asyncio.run(Bench(a).run())
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
