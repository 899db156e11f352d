#!/usr/bin/env bash
# Revocation benchmark: how fast does revoking an agent take effect at every
# proxy?
#
# On loopback: one `ward server run` (SQLite), PROXIES proxies (agents p00,
# p01, ...) in front of one shared fixed-200 upstream, and the proxy of the
# agent "victim", through whose outbound listener the probes enter. A probe
# driver (bench/revocation/probe.py) keeps live traffic flowing from the
# victim to every proxy (one request every PROBE_MS per target) plus a little
# background traffic between the other agents; then it runs
# `ward agent revoke victim` and measures, per proxy, from the API
# acknowledgement (the command returning) to the send time of the first probe
# that proxy refused as `403 urn:ward:problem:revoked` (with no success
# after it). Prints p50/p90/p99/max, the bounds and the probe resolution (the
# measurement's error bar), as a cross-check the time of each proxy's own
# log line saying it applied the revocation, and the receipt time: when the
# last proxy's report that it enforces the revocation reached the server. Target: p99 < 200 ms. Exit 1 when
# some proxy did not enforce within TIMEOUT_S. About 30 s with the defaults.
# Results are CPU-bound on a small machine: run it on an otherwise idle one.
#
#   bench/revocation.sh                                  # release build
#   WARD_BIN=target/debug/ward bench/revocation.sh        # any build
#   PROXIES=10 PROBE_MS=2 KEEP_WORK=1 bench/revocation.sh
#
# Environment (defaults in brackets):
#   WARD_BIN        the ward binary [target/release/ward; build it with
#                   `cargo build --release -p ward`]
#   PROXIES         proxies that must enforce the revocation [50]
#   PROBE_MS        probe interval per proxy, ms; probes go out on this schedule
#                   whether or not earlier ones were answered (achieved gaps
#                   are printed: they are the measurement's error bar) [5]
#   MAX_INFLIGHT    probes in flight per proxy at most [16]
#   WARMUP_S        seconds of steady traffic before the revoke [3]
#   TIMEOUT_S       a proxy that has not enforced this long after the
#                   acknowledgement counts as a failure [10]
#   BACKGROUND_RPS  background requests/s between the other agents, 0 = off [20]
#   PORT_BASE       ports PORT_BASE .. PORT_BASE+5+3*PROXIES on 127.0.0.1 [19000]
#   READY_TIMEOUT   seconds to wait for anything to come up [60]
#   ADMIN_JOBS      concurrent `ward agent register` / `token create` calls [4]
#   KEEP_WORK       1 = keep the work dir (logs, state, probes.csv) [0]
#
# Needs: bash, curl, python3 (stdlib only), pgrep. Writes only under a work
# dir in ${TMPDIR:-/tmp}; the admin CLI runs with XDG_CONFIG_HOME inside it,
# so ~/.config/ward is left alone. Listens on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/bench/revocation

PROXIES=${PROXIES:-50}
PROBE_MS=${PROBE_MS:-5}
MAX_INFLIGHT=${MAX_INFLIGHT:-16}
WARMUP_S=${WARMUP_S:-3}
TIMEOUT_S=${TIMEOUT_S:-10}
BACKGROUND_RPS=${BACKGROUND_RPS:-20}
PORT_BASE=${PORT_BASE:-19000}
READY_TIMEOUT=${READY_TIMEOUT:-60}
ADMIN_JOBS=${ADMIN_JOBS:-4}
KEEP_WORK=${KEEP_WORK:-0}
WARD_BIN=${WARD_BIN:-target/release/ward}
[[ $WARD_BIN == /* ]] || WARD_BIN=$ROOT/$WARD_BIN

BENCH_NAME=revocation.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

bench_args "$@"

for v in PROXIES PORT_BASE READY_TIMEOUT TIMEOUT_S ADMIN_JOBS MAX_INFLIGHT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: expected a positive integer"
done
for v in PROBE_MS WARMUP_S BACKGROUND_RPS; do
    [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "$v=${!v}: expected a number"
done
[[ $PROBE_MS =~ [1-9] ]] || die "PROBE_MS must be > 0"
PORT_TOP=$((PORT_BASE + 5 + 3 * PROXIES))
((PORT_TOP < 65536)) || die "PORT_BASE=$PORT_BASE with PROXIES=$PROXIES: ports past 65535"

for tool in curl python3 pgrep; do
    command -v "$tool" >/dev/null || die "$tool is required"
done
if [[ ! -x $WARD_BIN ]]; then
    die "no ward binary at $WARD_BIN: build it with \`cargo build --release -p ward\` (or set WARD_BIN=target/debug/ward)"
fi
"$WARD_BIN" proxy run --help >/dev/null 2>&1 ||
    die "$WARD_BIN has no \`ward proxy run\`: rebuild it with \`cargo build --release -p ward\`"

scrub_ward_env

# --- ports ------------------------------------------------------------------

SERVER_PORT=$PORT_BASE
UPSTREAM_PORT=$((PORT_BASE + 1))
WIDTH=2
((PROXIES <= 100)) || WIDTH=${#PROXIES}
NAMES=(victim)
for ((i = 0; i < PROXIES; i++)); do NAMES+=("$(printf "p%0${WIDTH}d" "$i")"); done
declare -A OUT IN ADMIN
for ((i = 0; i < ${#NAMES[@]}; i++)); do
    # victim: base+3..5; p00: base+6..8; ...
    OUT[${NAMES[i]}]=$((PORT_BASE + 3 + 3 * i))
    IN[${NAMES[i]}]=$((PORT_BASE + 4 + 3 * i))
    ADMIN[${NAMES[i]}]=$((PORT_BASE + 5 + 3 * i))
done

check_ports "$PORT_BASE" "$PORT_TOP"

# --- processes and clean-up -------------------------------------------------

work_dir ward-revocation
DATA=$WORK/server
CONN=(--server "127.0.0.1:$SERVER_PORT" --client-config "$DATA/admin/client.toml")

# --- control plane ----------------------------------------------------------

log "work dir $WORK; binary $WARD_BIN ($("$WARD_BIN" --version 2>/dev/null || echo '?'))"
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

ward_admin "$WORK/logs/policy.log" policy push "$HERE/policy"

# Register every agent and create its join token, ADMIN_JOBS at a time.
prepare() { # NAME
    local name=$1 team=bench-mesh
    [[ $name == victim ]] && team=bench-victim
    ward_admin "$WORK/logs/register-$name.log" agent register "$name" --team "$team"
    ward_admin "$WORK/logs/token-$name.log" token create --agent "$name"
    mv "$WORK/logs/token-$name.log.out" "$WORK/tokens/$name"
}
log "registering ${#NAMES[@]} agents and creating their join tokens"
batch=()
for name in "${NAMES[@]}"; do
    prepare "$name" &
    batch+=("$!")
    if ((${#batch[@]} >= ADMIN_JOBS)) || [[ $name == "${NAMES[-1]}" ]]; then
        for p in "${batch[@]}"; do wait "$p" || die "registering agents failed (see above)"; done
        batch=()
    fi
done

# --- upstream and proxies ---------------------------------------------------

start upstream "$WORK/logs/upstream.log" python3 "$HERE/upstream.py" "127.0.0.1:$UPSTREAM_PORT"
for ((i = 0; ; i++)); do
    alive upstream
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$UPSTREAM_PORT/" 2>/dev/null && break
    ((i < READY_TIMEOUT * 10)) || die "upstream not answering after ${READY_TIMEOUT}s"
    sleep 0.1
done

log "starting ${#NAMES[@]} proxies"
t_proxies=$SECONDS
for name in "${NAMES[@]}"; do
    # The join token goes through the environment, not argv (ps shows argv).
    start "$name" "$WORK/logs/$name.log" env WARD_JOIN_TOKEN="$(<"$WORK/tokens/$name")" \
        "$WARD_BIN" proxy run --server "127.0.0.1:$SERVER_PORT" --bundle "$DATA/bundle.json" \
        --agent "$name" --upstream "127.0.0.1:$UPSTREAM_PORT" --state-dir "$WORK/state/$name" \
        --outbound "127.0.0.1:${OUT[$name]}" --inbound "127.0.0.1:${IN[$name]}" \
        --admin "127.0.0.1:${ADMIN[$name]}" --workers 1
done
pending=("${NAMES[@]}")
while ((${#pending[@]})); do
    left=()
    for name in "${pending[@]}"; do
        alive "$name"
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:${ADMIN[$name]}/readyz" 2>/dev/null || left+=("$name")
    done
    pending=("${left[@]+"${left[@]}"}")
    ((${#pending[@]})) || break
    if ((SECONDS - t_proxies > READY_TIMEOUT)); then
        tail -n 20 "${LOG_OF[${pending[0]}]}" >&2 || true
        die "${#pending[@]} proxies not ready after ${READY_TIMEOUT}s (${pending[*]:0:5} ...); log of ${pending[0]} above"
    fi
    sleep 0.2
done
rss_kib=0
for name in "${NAMES[@]}"; do
    r=$(ps -o rss= -p "${PID_OF[$name]}" 2>/dev/null | awk '{s += $1} END {print s + 0}')
    rss_kib=$((rss_kib + r))
done
log "${#NAMES[@]} proxies ready after $((SECONDS - t_proxies)) s; their RSS: $((rss_kib / 1024)) MiB in total"

# --- measurement ------------------------------------------------------------

targets=$(
    IFS=,
    echo "${NAMES[*]:1}"
)
background=()
for ((i = 1; i < ${#NAMES[@]}; i++)); do
    j=$((i % PROXIES + 1)) # p00 -> p01 -> ... -> last -> p00
    background+=("127.0.0.1:${OUT[${NAMES[i]}]}=${NAMES[j]}")
done
bg_list=$(
    IFS=,
    echo "${background[*]}"
)
label=$WARD_BIN
[[ $WARD_BIN == "$ROOT"/* ]] && label=${WARD_BIN#"$ROOT"/}

rc=0
python3 "$HERE/probe.py" --victim-outbound "127.0.0.1:${OUT[victim]}" --targets "$targets" \
    --background "$bg_list" --background-rps "$BACKGROUND_RPS" --probe-ms "$PROBE_MS" \
    --warmup "$WARMUP_S" --timeout "$TIMEOUT_S" --ready-timeout "$READY_TIMEOUT" \
    --max-inflight "$MAX_INFLIGHT" --csv "$WORK/probes.csv" --log-dir "$WORK/logs" --binary-label "$label" \
    --ack-file "$WORK/ack-ms" \
    --host-note "$(nproc 2>/dev/null || echo '?') CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?') before the probes" \
    --revoke-display "ward agent revoke victim --reason bench" \
    -- "$WARD_BIN" agent revoke victim --reason bench "${CONN[@]}" || rc=$?

# The receipts: when the server knew every connected proxy enforced it
# (each proxy reports the revision it applied; applied_at is the server's
# time of the first report covering the revocation's revision).
if [[ -s $WORK/ack-ms ]]; then
    "$WARD_BIN" proxy list --output json "${CONN[@]}" >"$WORK/proxies.json" 2>/dev/null &&
        python3 - "$WORK/ack-ms" "$WORK/proxies.json" <<'PY' || log "could not read the receipts"
import json, sys
ack = float(open(sys.argv[1]).read())
# The victim's own proxy is revoked with it: its receipts are refused.
proxies = [p for p in json.load(open(sys.argv[2])) if p.get("connected") and p["agent"] != "victim"]
rev = max(p["revision"] for p in proxies)
done = [p for p in proxies if p["revision"] >= rev]
last = max(p["applied_at"] for p in done) - ack
print(f"receipts: {len(done)} of {len(proxies)} connected proxies reported revision {rev}; "
      f"the last receipt reached the server {last:.0f} ms after the acknowledgement")
PY
fi

case $rc in
0) ;;
1) log "some proxies did not enforce the revocation; logs in $WORK/logs (KEEP_WORK=1 keeps them)" ;;
*) log "the probe driver failed (exit $rc); logs in $WORK/logs (KEEP_WORK=1 keeps them)" ;;
esac
exit "$rc"
