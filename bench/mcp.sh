#!/usr/bin/env bash
# MCP benchmark: the latency Ward adds to one `tools/call` of the real `mcp`
# SDK when the call goes through two Ward proxies instead of straight to the
# server, absolute and as a share of the SDK's own round trip.
#
# On loopback: one `ward server run` (SQLite), the agents "client" and
# "tools" (labels `protocol=mcp`, `tool.echo.risk=0`), the policy in
# bench/mcp/policy (client may hold an MCP session with tools and call its
# risk-0 tools), an `MCPServer` (tests/sdk/mcp_server.py, streamable HTTP)
# behind the proxy of "tools" (`--protocol mcp`: every tools/call is decided
# per tool by Cedar and audited), and the proxy of "client", whose outbound
# listener the SDK client (tests/sdk/mcp_client.py) connects to:
#
#   mcp.Client -> client's proxy -> mutual TLS 1.3 -> tools' proxy -> MCPServer
#
# Each measurement is one `mcp_client.py bench`: connect (see CLIENT_MODE), one
# untimed call, then N sequential `tools/call echo`, timed; the mean per call
# is its result. After a warm-up, ROUNDS rounds alternate direct and through
# Ward (to cancel drift); the table shows the median of each, per server
# response mode: `sse` (the SDK server's default, each POST answered with a
# text/event-stream) and `json` (`--json-response`); the server is restarted
# between modes. It also prints the decisions the proxies counted and the
# audit records shipped, to show policy and audit were on. Exit 1 when any
# call fails (with the client's and the proxies' log tails). About 1 minute
# with the defaults (a debug build on 2 busy CPUs; a release build takes
# less), plus the SDK venv's first install.
#
#   bench/mcp.sh                                      # release build
#   WARD_BIN=target/debug/ward bench/mcp.sh           # any build
#   N=2000 ROUNDS=5 MODES=json KEEP_WORK=1 bench/mcp.sh
#
# Environment (defaults in brackets):
#   WARD_BIN        the ward binary [target/release/ward; build it with
#                   `cargo build --release -p ward`]
#   N               timed tool calls per measurement [500]
#   ROUNDS          rounds of (direct, through Ward) per mode; the median is
#                   reported [3]
#   WARMUP_N        calls of the untimed warm-up, per path and mode [50]
#   MODES           server response modes to measure, of `sse json` [sse json]
#   CLIENT_MODE     the SDK client's connect mode (mcp_client.py --mode): auto
#                   (server/discover, else initialize), legacy (initialize
#                   handshake, session id, GET stream, DELETE) or 2026-07-28
#                   [auto]
#   WORKERS         worker threads per proxy, 0 = Ward's default (one per
#                   core) [0]
#   PORT_BASE       ports PORT_BASE .. PORT_BASE+8 on 127.0.0.1 [19600]
#   READY_TIMEOUT   seconds to wait for anything to come up [60]
#   BENCH_TIMEOUT   seconds one measurement may take at most [600]
#   KEEP_WORK       1 = keep the work dir (logs, state, client output) [0]
#
# Needs: bash, curl, python3 (3.10+, for the SDK venv), pgrep, timeout. The
# SDK venv (target/sdk-venv, pinned `mcp` 2.x from PyPI) is created with
# scripts/sdk-venv.sh when missing. Writes only under a work dir in
# ${TMPDIR:-/tmp} (and the venv); the admin CLI runs with XDG_CONFIG_HOME
# inside it, so ~/.config/ward is left alone. Listens on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/bench/mcp
SDK=$ROOT/tests/sdk

N=${N:-500}
ROUNDS=${ROUNDS:-3}
WARMUP_N=${WARMUP_N:-50}
MODES=${MODES:-sse json}
CLIENT_MODE=${CLIENT_MODE:-auto}
WORKERS=${WORKERS:-0}
PORT_BASE=${PORT_BASE:-19600}
READY_TIMEOUT=${READY_TIMEOUT:-60}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-600}
KEEP_WORK=${KEEP_WORK:-0}
WARD_BIN=${WARD_BIN:-target/release/ward}
[[ $WARD_BIN == /* ]] || WARD_BIN=$ROOT/$WARD_BIN

BENCH_NAME=mcp.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_args "$@"

for v in N ROUNDS WARMUP_N PORT_BASE READY_TIMEOUT BENCH_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: expected a positive integer"
done
[[ $WORKERS =~ ^[0-9]+$ ]] || die "WORKERS=$WORKERS: expected 0 (Ward's default) or a positive integer"
read -r -a MODE_LIST <<<"$MODES"
((${#MODE_LIST[@]})) || die "MODES is empty: expected some of \`sse json\`"
for m in "${MODE_LIST[@]}"; do
    [[ $m == sse || $m == json ]] || die "MODES=$MODES: unknown mode \`$m\` (expected sse and/or json)"
done
case $CLIENT_MODE in auto | legacy | 2026-07-28) ;; *) die "CLIENT_MODE=$CLIENT_MODE: expected auto, legacy or 2026-07-28" ;; esac
PORT_TOP=$((PORT_BASE + 8))
((PORT_TOP < 65536)) || die "PORT_BASE=$PORT_BASE: ports past 65535"

for tool in curl python3 pgrep timeout; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ ! -x $WARD_BIN ]]; then
    die "no ward binary at $WARD_BIN: build it with \`cargo build --release -p ward\` (or set WARD_BIN=target/debug/ward)"
fi
proxy_help=$("$WARD_BIN" proxy run --help 2>/dev/null) || proxy_help=""
[[ $proxy_help == *--protocol* ]] ||
    die "$WARD_BIN has no \`ward proxy run --protocol\`: rebuild it with \`cargo build --release -p ward\`"

# WARD_SDK_VENV is read by scripts/sdk-venv.sh, not by ward.
scrub_ward_env WARD_SDK_VENV

# --- ports ------------------------------------------------------------------

SERVER_PORT=$PORT_BASE
MCP_PORT=$((PORT_BASE + 1))
DUMMY_PORT=$((PORT_BASE + 2)) # client's --upstream: nothing listens, nothing calls it
declare -A OUT IN ADMIN
OUT[client]=$((PORT_BASE + 3)) IN[client]=$((PORT_BASE + 4)) ADMIN[client]=$((PORT_BASE + 5))
OUT[tools]=$((PORT_BASE + 6)) IN[tools]=$((PORT_BASE + 7)) ADMIN[tools]=$((PORT_BASE + 8))

check_ports "$PORT_BASE" "$PORT_TOP"

# --- the SDK venv -----------------------------------------------------------

PY=$("$ROOT/scripts/sdk-venv.sh" | tail -n1) || die "scripts/sdk-venv.sh failed (output above)"
[[ -x $PY ]] || die "scripts/sdk-venv.sh printed no python ($PY)"

# --- processes and clean-up -------------------------------------------------

work_dir ward-mcp
mkdir -p "$WORK/runs"
DATA=$WORK/server
CONN=(--server "127.0.0.1:$SERVER_PORT" --client-config "$DATA/admin/client.toml")

# halt NAME: stop a process started with `start` before the end.
halt() {
    local pid=${PID_OF[$1]} keep=() p
    stop "$pid"
    for p in "${STARTED[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    STARTED=("${keep[@]+"${keep[@]}"}")
}

# show_logs: the tails of the proxies' logs (on failure).
show_logs() {
    local name
    for name in client tools; do
        [[ -n ${LOG_OF[$name]:-} ]] || continue
        printf -- '--- last lines of the %s proxy log (%s)\n' "$name" "${LOG_OF[$name]}" >&2
        tail -n 20 "${LOG_OF[$name]}" >&2 || true
    done
}

# --- control plane ----------------------------------------------------------

VERSION=$("$WARD_BIN" --version 2>/dev/null || echo '?')
log "work dir $WORK; binary $WARD_BIN ($VERSION)"
"$WARD_BIN" server init --data-dir "$DATA" --trust-domain bench.test >"$WORK/logs/init.log" 2>&1 ||
    { cat "$WORK/logs/init.log" >&2; die "ward server init failed"; }
start server "$WORK/logs/server.log" "$WARD_BIN" server run --data-dir "$DATA" --listen "127.0.0.1:$SERVER_PORT"
for ((i = 0; ; i++)); do
    alive server
    grep -qs 'listening on' "$WORK/logs/server.log" && break
    ((i < READY_TIMEOUT * 10)) || { tail -n 20 "$WORK/logs/server.log" >&2; die "server not listening after ${READY_TIMEOUT}s"; }
    sleep 0.1
done
log "server on 127.0.0.1:$SERVER_PORT"

ward_admin "$WORK/logs/register-client.log" agent register client --team bench-mcp
ward_admin "$WORK/logs/register-tools.log" agent register tools --team bench-mcp \
    --label tool.echo.risk=0 --label protocol=mcp
ward_admin "$WORK/logs/policy.log" policy push "$HERE/policy"
for name in client tools; do
    ward_admin "$WORK/logs/token-$name.log" token create --agent "$name"
    mv "$WORK/logs/token-$name.log.out" "$WORK/tokens/$name"
done

# --- MCP server and proxies -------------------------------------------------

# mcp_server MODE: (re)start the MCP server on MCP_PORT, wait for `ready`.
mcp_server() {
    local mode=$1 extra=() i
    [[ $mode == json ]] && extra=(--json-response)
    [[ -n ${PID_OF[mcp]:-} ]] && halt mcp
    start mcp "$WORK/logs/mcp-server-$mode.log" "$PY" -u "$SDK/mcp_server.py" --port "$MCP_PORT" "${extra[@]}"
    for ((i = 0; ; i++)); do
        alive mcp
        grep -qsx 'ready' "$WORK/logs/mcp-server-$mode.log" && break
        ((i < READY_TIMEOUT * 10)) || { tail -n 20 "${LOG_OF[mcp]}" >&2; die "MCP server not ready after ${READY_TIMEOUT}s"; }
        sleep 0.1
    done
    log "MCP server ($mode responses) on 127.0.0.1:$MCP_PORT"
}
mcp_server "${MODE_LIST[0]}"

proxy_extra=()
((WORKERS == 0)) || proxy_extra=(--workers "$WORKERS")
declare -A UPSTREAM=([client]="127.0.0.1:$DUMMY_PORT" [tools]="127.0.0.1:$MCP_PORT")
declare -A PROTOCOL=([client]=http [tools]=mcp)
t_proxies=$SECONDS
for name in client tools; do
    # The join token goes through the environment, not argv (ps shows argv).
    start "$name" "$WORK/logs/$name.log" env WARD_JOIN_TOKEN="$(<"$WORK/tokens/$name")" \
        "$WARD_BIN" proxy run --server "127.0.0.1:$SERVER_PORT" --bundle "$DATA/bundle.json" \
        --agent "$name" --upstream "${UPSTREAM[$name]}" --protocol "${PROTOCOL[$name]}" \
        --state-dir "$WORK/state/$name" --outbound "127.0.0.1:${OUT[$name]}" \
        --inbound "127.0.0.1:${IN[$name]}" --admin "127.0.0.1:${ADMIN[$name]}" "${proxy_extra[@]}"
done
for name in client tools; do
    while ! curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:${ADMIN[$name]}/readyz" 2>/dev/null; do
        alive "$name"
        if ((SECONDS - t_proxies > READY_TIMEOUT)); then
            tail -n 20 "${LOG_OF[$name]}" >&2 || true
            die "the $name proxy is not ready after ${READY_TIMEOUT}s (log above)"
        fi
        sleep 0.2
    done
done
log "proxies ready after $((SECONDS - t_proxies)) s"

DIRECT_ARGS=(--mode "$CLIENT_MODE" --url "http://127.0.0.1:$MCP_PORT/mcp")
WARD_ARGS=(--mode "$CLIENT_MODE" --url "http://127.0.0.1:${OUT[client]}/mcp" --header ward-target:tools)
# note TEXT: something the report should mention (also from subshells).
note() { printf '%s\n' "$*" >>"$WORK/notes"; }

# route_ready MODE: retry one MCP call through both proxies until it works
# (the client's proxy learns the tools proxy's endpoint from the registry,
# and both must have applied the policy). Bounded by READY_TIMEOUT.
route_ready() {
    local mode=$1 t0=$SECONDS tries=0 out=$WORK/runs/ready-$1
    while :; do
        tries=$((tries + 1))
        if timeout 30 "$PY" "$SDK/mcp_client.py" "${WARD_ARGS[@]}" call echo --arg text=ready \
            >"$out.json" 2>"$out.err" && grep -q '"ok": true' "$out.json"; then
            break
        fi
        ((tries > 1)) || cat "$out.json" "$out.err" >"$out.first" 2>/dev/null || true
        alive client
        alive tools
        alive mcp
        if ((SECONDS - t0 > READY_TIMEOUT)); then
            cat "$out.json" "$out.err" >&2 || true
            show_logs
            die "no MCP call got through the two proxies within ${READY_TIMEOUT}s ($tries tries; last output above)"
        fi
        sleep 0.3
    done
    if ((tries > 1)); then
        note "$mode: the first call through Ward that worked was try $tries; the first try said: $(
            tail -c 400 "$out.first" | tr '\n' ' ')"
    fi
    log "$mode: an MCP call gets through both proxies ($tries tries)"
}

# bench LABEL N ARGS...: one `mcp_client.py bench`; prints its per_call_us.
# Fails (with the logs) when the client fails or reports errors.
bench() {
    local label=$1 n=$2 out=$WORK/runs/$1 rc=0 why
    shift 2
    timeout "$BENCH_TIMEOUT" "$PY" "$SDK/mcp_client.py" "$@" bench --tool echo --n "$n" \
        >"$out.json" 2>"$out.err" || rc=$?
    if ((rc)) || grep -qiE 'error|traceback|exception' "$out.err" ||
        ! python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["n"] == int(sys.argv[2]); print(d["per_call_us"])' \
            "$out.json" "$n" >"$out.us" 2>/dev/null; then
        printf -- '--- client stdout (%s.json)\n' "$out" >&2
        tail -n 20 "$out.json" >&2 || true
        printf -- '--- client stderr (%s.err)\n' "$out" >&2
        tail -n 40 "$out.err" >&2 || true
        show_logs
        ((rc == 124)) && die "$label: the measurement took longer than BENCH_TIMEOUT=${BENCH_TIMEOUT}s"
        why=$(grep -E '^[[:space:]|]*[[:alnum:]_.]*(Error|Exception): ' "$out.err" | tail -n1 | sed 's/^[[:space:]|]*//' || true)
        die "$label: the MCP client failed (exit $rc${why:+: $why}; output and logs above; KEEP_WORK=1 keeps them)"
    fi
    if [[ -s $out.err ]]; then
        note "$label: client stderr (no error): $(head -c 300 "$out.err" | tr '\n' ' ')"
    fi
    cat "$out.us"
}

# --- measurement ------------------------------------------------------------

HOST_BEFORE="$(nproc 2>/dev/null || echo '?') CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
RESULTS=$WORK/results.tsv
: >"$RESULTS"
t_bench=$SECONDS
first=1
for mode in "${MODE_LIST[@]}"; do
    ((first)) || mcp_server "$mode"
    first=0
    route_ready "$mode"
    log "$mode: warm-up ($WARMUP_N calls per path)"
    bench "$mode-warmup-direct" "$WARMUP_N" "${DIRECT_ARGS[@]}" >/dev/null
    bench "$mode-warmup-ward" "$WARMUP_N" "${WARD_ARGS[@]}" >/dev/null
    for ((r = 1; r <= ROUNDS; r++)); do
        d=$(bench "$mode-r$r-direct" "$N" "${DIRECT_ARGS[@]}")
        w=$(bench "$mode-r$r-ward" "$N" "${WARD_ARGS[@]}")
        printf '%s\t%s\t%s\t%s\n' "$mode" "$r" "$d" "$w" >>"$RESULTS"
        log "$mode round $r/$ROUNDS: direct $(printf '%.0f' "$d") µs/call, through Ward $(printf '%.0f' "$w") µs/call"
    done
done
bench_s=$((SECONDS - t_bench))
HOST_AFTER="load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

# --- decisions and audit ----------------------------------------------------

# Let the audit spools drain (bounded) so the shipped counts are complete.
metric() { # NAME FILE -> the sum of the samples of metric NAME (0 if none)
    awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%d\n", s }' "$2"
}
for ((i = 0; i < 100; i++)); do
    backlog=0
    for name in client tools; do
        curl -fsS --max-time 2 "http://127.0.0.1:${ADMIN[$name]}/metrics" >"$WORK/metrics-$name.txt" 2>/dev/null ||
            die "no /metrics from the $name proxy"
        backlog=$((backlog + $(metric ward_proxy_audit_backlog_records "$WORK/metrics-$name.txt")))
    done
    ((backlog == 0)) && break
    sleep 0.1
done

# --- report -----------------------------------------------------------------

label=$WARD_BIN
[[ $WARD_BIN == "$ROOT"/* ]] && label=${WARD_BIN#"$ROOT"/}
mcp_version=$("$PY" -c 'from importlib.metadata import version; print(version("mcp"))' 2>/dev/null || echo '?')
python3 - "$RESULTS" "$N" "$ROUNDS" "$WARMUP_N" "$label" "$VERSION" "$mcp_version" "$HOST_BEFORE" "$HOST_AFTER" \
    "$bench_s" "$WORKERS" "$CLIENT_MODE" <<'PY'
import statistics, sys
(results, n, rounds, warmup, binary, version, mcp_version, host_before, host_after,
 bench_s, workers, client_mode) = sys.argv[1:]
rows = {}
for line in open(results):
    mode, r, d, w = line.split("\t")
    rows.setdefault(mode, []).append((float(d), float(w)))
desc = {"sse": "sse (default)", "json": "json (--json-response)"}
print()
print(f"MCP tools/call latency, direct vs through two Ward proxies: mcp {mcp_version} SDK "
      f"mcp.Client (connect mode {client_mode}) -> MCPServer over streamable HTTP")
print(f"binary: {binary} ({version}); proxy workers: {'one per core (default)' if workers == '0' else workers}")
print(f"host: {host_before} before, {host_after} after ({bench_s} s of measurements)")
print(f"per measurement: {n} sequential `tools/call echo` on one session (after connect and one untimed call); "
      f"{rounds} alternating rounds per mode after a {warmup}-call warm-up; median of the rounds' means")
print()
head = ("server responses", "direct µs/call", "through 2 Ward proxies µs/call", "added µs/call",
        "added, % of direct")
table = [head]
for mode, pairs in rows.items():
    d = statistics.median(p[0] for p in pairs)
    w = statistics.median(p[1] for p in pairs)
    table.append((desc.get(mode, mode), f"{d:,.0f}", f"{w:,.0f}", f"{w - d:,.0f}", f"{(w - d) / d * 100:.0f} %"))
widths = [max(len(r[i]) for r in table) for i in range(len(head))]
for k, r in enumerate(table):
    print(" | ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
    if k == 0:
        print("-+-".join("-" * wd for wd in widths))
print()
for mode, pairs in rows.items():
    print(f"rounds ({mode}, direct / through Ward, µs/call): "
          + ", ".join(f"{d:.0f} / {w:.0f}" for d, w in pairs))
PY

echo
# sum NAME FILE: the sum of the samples of metric NAME (0 if none)
msum() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $NF } END { printf "%.6f\n", s }' "$2"; }
for name in tools client; do
    f=$WORK/metrics-$name.txt
    printf 'the %s proxy (its /metrics, cumulative, warm-up and readiness calls included):\n' "$name"
    grep '^ward_proxy_requests_total{' "$f" | sed 's/^/  /' || echo "  (no ward_proxy_requests_total)"
    python3 - "$(msum ward_proxy_decision_seconds_sum "$f")" "$(msum ward_proxy_decision_seconds_count "$f")" \
        "$(msum ward_proxy_upstream_seconds_sum "$f")" "$(msum ward_proxy_upstream_seconds_count "$f")" <<'PY'
import sys
ds, dc, us, uc = map(float, sys.argv[1:])
parts = []
if dc:
    parts.append(f"authenticate+decide+audit {ds / dc * 1e6:,.0f} µs")
if uc:
    parts.append(f"until its upstream's response head {us / uc * 1e6:,.0f} µs")
print("  mean per request: " + ("; ".join(parts) if parts else "(no samples)"))
PY
    printf '  audit: %s records shipped to the server, %s write failures, %s still in the spool\n' \
        "$(metric ward_proxy_audit_shipped_records_total "$f")" \
        "$(metric ward_proxy_audit_failures_total "$f")" \
        "$(metric ward_proxy_audit_backlog_records "$f")"
done

# The server's audit log: its size (signed checkpoint) and what the newest
# records are (the query returns at most 1,000).
if "$WARD_BIN" audit checkpoint "${CONN[@]}" >"$WORK/checkpoint.txt" 2>"$WORK/logs/checkpoint.log" &&
    "$WARD_BIN" audit query --limit 1000 --output json "${CONN[@]}" >"$WORK/audit.jsonl" 2>"$WORK/logs/audit-query.log"; then
    python3 - "$WORK/checkpoint.txt" "$WORK/audit.jsonl" <<'PY'
import collections, json, sys
size = "?"
for line in open(sys.argv[1]):
    if line.startswith("size"):
        size = line.split()[1]
by = collections.Counter()
n = 0
for line in open(sys.argv[2]):
    if not line.strip():
        continue
    r = json.loads(line)["record"]
    what = f"{r['action']} on {r['resource']}"
    by[(what, r["decision"])] += 1
    n += 1
print(f"server audit log: {size} entries (signed checkpoint); the {n} that `ward audit query --limit 1000` "
      "returns, by decision, action and resource:")
for (what, decision), count in sorted(by.items(), key=lambda kv: -kv[1]):
    print(f"  {count:6d}  {decision:5s}  {what}")
PY
else
    log "could not read the server's audit log (see $WORK/logs/checkpoint.log, audit-query.log)"
fi
calls=$(((WARMUP_N + 1 + ROUNDS * (N + 1)) * ${#MODE_LIST[@]}))
echo "(tools/call sent through Ward by the measurements: $calls; plus each session's set-up and the readiness calls)"

refused=$(awk '/^ward_proxy_requests_total\{/ && /decision="(deny|error)"/ { s += $NF } END { printf "%d\n", s }' \
    "$WORK/metrics-tools.txt" "$WORK/metrics-client.txt")
if ((refused)); then
    echo
    echo "note: the proxies refused or failed $refused requests (counters above); their log lines:"
    grep -hiE 'warn|error|den(y|ied)|refus' "${LOG_OF[client]}" "${LOG_OF[tools]}" | tail -n 20 | sed 's/^/  /' || true
fi
[[ ! -s $WORK/notes ]] || sed 's/^/note: /' "$WORK/notes"
