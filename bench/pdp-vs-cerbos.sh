#!/usr/bin/env bash
# Policy decision throughput: Ward's AuthZEN endpoint vs the Cerbos PDP, in
# one run, with equivalent policies and the same load generator.
#
#   oha -> Ward proxy admin listener  POST /access/v1/evaluation   (AuthZEN 1.0)
#   oha -> Cerbos                     POST /api/check/resources    (Cerbos API)
#
# Ward: a `ward server run` (SQLite) with agents "caller" (team "callers")
# and "target", the policy bench/pdp-vs-cerbos/ward.cedar pushed, and the
# proxy of "target", whose admin listener answers AuthZEN from the engine
# it enforces (the caller's team comes from the registry, as in a real
# decision). Cerbos: `cerbos server` on a disk store with the equivalent
# bench/pdp-vs-cerbos/cerbos-policies/agent.yaml (the principal's role comes
# in the request), telemetry and audit off. Both answer over plain HTTP/1.1
# keep-alive on 127.0.0.1 and use both cores; each gets a warm-up, then
# DURATION of load from CONNECTIONS connections; both answers are checked
# (allow and deny) before the load. Prints req/s and latency for each and
# the ratio. Target: Ward ≥ 10× Cerbos's throughput. About 40 s.
#
#   cargo build --release -p ward && bench/pdp-vs-cerbos.sh
#   DURATION=30s CONNECTIONS=64 bench/pdp-vs-cerbos.sh
#
# Environment (defaults in brackets):
#   WARD_BIN      the ward binary [target/release/ward]
#   CERBOS_BIN    the cerbos binary [on PATH, else npm-installed once into
#                 CERBOS_DIR from the @cerbos/cerbos-linux-x64 package]
#   CERBOS_DIR    where that install is cached [~/.cache/ward-bench/cerbos]
#   DURATION      load per PDP, oha -z syntax [10s]
#   WARMUP        warm-up per PDP [2s]
#   CONNECTIONS   concurrent keep-alive connections [32]
#   PORT_BASE     ports PORT_BASE .. PORT_BASE+9 on 127.0.0.1 [17000]
#   READY_TIMEOUT seconds to wait for anything to come up [60]
#   KEEP_WORK     1 = keep the work dir (logs, oha output) [0]
#
# Needs: bash, curl, python3, npm (for Cerbos, once) and oha (installed with
# `cargo install --locked oha` when missing). Listens on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/bench/pdp-vs-cerbos
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
PORT_BASE=${PORT_BASE:-17000}
READY_TIMEOUT=${READY_TIMEOUT:-60}
KEEP_WORK=${KEEP_WORK:-0}
CERBOS_DIR=${CERBOS_DIR:-$HOME/.cache/ward-bench/cerbos}
WARD_BIN=${WARD_BIN:-target/release/ward}
[[ $WARD_BIN == /* ]] || WARD_BIN=$ROOT/$WARD_BIN

SERVER_PORT=$PORT_BASE
OUT_PORT=$((PORT_BASE + 1))
IN_PORT=$((PORT_BASE + 2))
ADMIN_PORT=$((PORT_BASE + 3))
CERBOS_HTTP=$((PORT_BASE + 4))
CERBOS_GRPC=$((PORT_BASE + 5))
UPSTREAM_PORT=$((PORT_BASE + 6))

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'pdp-vs-cerbos.sh: error: %s\n' "$*" >&2; exit 1; }

# --- tools --------------------------------------------------------------------

[[ -x $WARD_BIN ]] || die "no ward binary at $WARD_BIN: build it with \`cargo build --release -p ward\` or set WARD_BIN"
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required"
if ! command -v oha >/dev/null; then
    log "installing oha (cargo install --locked oha)"
    cargo install --locked oha >&2 || die "could not install oha"
fi
if [[ -z ${CERBOS_BIN:-} ]]; then
    if command -v cerbos >/dev/null; then
        CERBOS_BIN=$(command -v cerbos)
    else
        CERBOS_BIN=$CERBOS_DIR/node_modules/@cerbos/cerbos-linux-x64/cerbos-linux-x64
        if [[ ! -x $CERBOS_BIN ]]; then
            command -v npm >/dev/null || die "npm is needed to install Cerbos (or set CERBOS_BIN)"
            log "installing Cerbos into $CERBOS_DIR (npm @cerbos/cerbos-linux-x64)"
            mkdir -p "$CERBOS_DIR"
            npm install --prefix "$CERBOS_DIR" --no-audit --no-fund @cerbos/cerbos-linux-x64 >&2 ||
                die "npm could not install @cerbos/cerbos-linux-x64"
        fi
    fi
fi
[[ -x $CERBOS_BIN ]] || die "no cerbos binary at $CERBOS_BIN"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ward-pdp-bench.XXXXXX")
mkdir -p "$WORK/logs" "$WORK/xdg" "$WORK/policy"
export XDG_CONFIG_HOME=$WORK/xdg
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ $KEEP_WORK == 1 ]]; then log "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'die "interrupted"' INT TERM

wait_http() { # WHAT URL
    local i
    for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
        curl -fsS -o /dev/null --max-time 1 "$2" 2>/dev/null && return 0
        sleep 0.1
    done
    die "$1 not answering at $2 after ${READY_TIMEOUT}s (logs in $WORK/logs; KEEP_WORK=1 keeps them)"
}

# --- Ward -----------------------------------------------------------------------

DATA=$WORK/data
CONN=(--server "127.0.0.1:$SERVER_PORT" --client-config "$DATA/admin/client.toml")
ward() { "$WARD_BIN" "$@" "${CONN[@]}" >>"$WORK/logs/admin.log" 2>&1 || die "\`ward $*\` failed (see $WORK/logs/admin.log)"; }
log "Ward: server, agents, policy, the target's proxy"
"$WARD_BIN" server init --data-dir "$DATA" --trust-domain bench.test >"$WORK/logs/init.log" 2>&1 ||
    die "ward server init failed: $(tail -n 5 "$WORK/logs/init.log")"
"$WARD_BIN" server run --data-dir "$DATA" --listen "127.0.0.1:$SERVER_PORT" >"$WORK/logs/server.log" 2>&1 &
PIDS+=("$!")
for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
    grep -qs 'listening on' "$WORK/logs/server.log" && break
    sleep 0.1
done
grep -qs 'listening on' "$WORK/logs/server.log" || die "ward server not listening (see $WORK/logs/server.log)"
cp "$HERE/ward.cedar" "$WORK/policy/main.cedar"
ward policy push "$WORK/policy"
ward agent register caller --team callers
ward agent register target
token=$("$WARD_BIN" token create --agent target "${CONN[@]}" 2>>"$WORK/logs/admin.log") || die "token create failed"
# A placeholder upstream: nothing is forwarded in this benchmark.
python3 -m http.server --bind 127.0.0.1 "$UPSTREAM_PORT" >/dev/null 2>&1 &
PIDS+=("$!")
WARD_JOIN_TOKEN=$token "$WARD_BIN" proxy run --server "127.0.0.1:$SERVER_PORT" --bundle "$DATA/bundle.json" \
    --agent target --upstream "127.0.0.1:$UPSTREAM_PORT" --state-dir "$WORK/proxy" \
    --outbound "127.0.0.1:$OUT_PORT" --inbound "127.0.0.1:$IN_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
    >"$WORK/logs/proxy.log" 2>&1 &
PIDS+=("$!")
wait_http "Ward's proxy" "http://127.0.0.1:$ADMIN_PORT/readyz"

# --- Cerbos -----------------------------------------------------------------------

cat >"$WORK/cerbos.yaml" <<YAML
server:
  httpListenAddr: "127.0.0.1:$CERBOS_HTTP"
  grpcListenAddr: "127.0.0.1:$CERBOS_GRPC"
storage:
  driver: disk
  disk:
    directory: "$HERE/cerbos-policies"
    watchForChanges: false
telemetry:
  disabled: true
audit:
  enabled: false
YAML
log "Cerbos $("$CERBOS_BIN" --version 2>/dev/null | head -n 1 || echo '?'): server"
CERBOS_NO_TELEMETRY=1 "$CERBOS_BIN" server --config="$WORK/cerbos.yaml" >"$WORK/logs/cerbos.log" 2>&1 &
PIDS+=("$!")
wait_http "Cerbos" "http://127.0.0.1:$CERBOS_HTTP/_cerbos/health"

# --- the same questions to both ------------------------------------------------------

ward_q() { # ACTION
    printf '{"subject":{"type":"agent","id":"caller"},"action":{"name":"%s"},"resource":{"type":"agent","id":"target"}}' "$1"
}
cerbos_q() { # ACTION
    printf '{"requestId":"bench","principal":{"id":"caller","roles":["callers"]},"resources":[{"actions":["%s"],"resource":{"kind":"agent","id":"target"}}]}' "$1"
}
WARD_URL=http://127.0.0.1:$ADMIN_PORT/access/v1/evaluation
CERBOS_URL=http://127.0.0.1:$CERBOS_HTTP/api/check/resources
check() { # ACTION EXPECTED(true|false)
    local w c
    w=$(curl -fsS -H 'content-type: application/json' -d "$(ward_q "$1")" "$WARD_URL") || die "Ward did not answer"
    c=$(curl -fsS -H 'content-type: application/json' -d "$(cerbos_q "$1")" "$CERBOS_URL") || die "Cerbos did not answer"
    python3 - "$1" "$2" "$w" "$c" <<'PY' || die "the two PDPs do not agree with the expected decision (answers above)"
import json, sys
action, expected, w, c = sys.argv[1], sys.argv[2] == "true", json.loads(sys.argv[3]), json.loads(sys.argv[4])
ward = w["decision"]
cerbos = c["results"][0]["actions"][action] == "EFFECT_ALLOW"
if ward != expected or cerbos != expected:
    print(f"{action}: expected {expected}, Ward {ward} ({w}), Cerbos {cerbos} ({c})", file=sys.stderr)
    sys.exit(1)
PY
}
check GET true
check DELETE false
log "both PDPs allow GET and deny DELETE"

run() { # NAME URL BODY
    oha -z "$WARMUP" -c "$CONNECTIONS" --no-tui -m POST -T application/json -d "$3" "$2" >/dev/null 2>&1 || true
    oha -z "$DURATION" -c "$CONNECTIONS" --no-tui --output-format json -m POST -T application/json -d "$3" "$2" \
        >"$WORK/$1.json" 2>"$WORK/logs/oha-$1.log" || die "oha failed against $1 (see $WORK/logs/oha-$1.log)"
}
# Ward audits every decision: the proxy spools it, then ships it to the
# server's log. A figure taken while shipping falls behind would leave part
# of that work out, so the backlog is read from the proxy's metrics.
ward_metric() { # NAME
    curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'
}
log "load: $DURATION per PDP, $CONNECTIONS keep-alive connections, after $WARMUP of warm-up"
shipped_before=$(ward_metric ward_proxy_audit_shipped_records_total)
run ward "$WARD_URL" "$(ward_q GET)"
backlog_after=$(ward_metric ward_proxy_audit_backlog_records)
shipped_after=$(ward_metric ward_proxy_audit_shipped_records_total)
run cerbos "$CERBOS_URL" "$(cerbos_q GET)"

python3 - "$WORK/ward.json" "$WORK/cerbos.json" "$DURATION" "$CONNECTIONS" "$(nproc 2>/dev/null || echo '?')" <<'PY'
import json, sys
w, c = (json.load(open(p)) for p in sys.argv[1:3])
def row(name, d):
    s, lp = d["summary"], d["latencyPercentiles"]
    ok = sum(v for k, v in d.get("statusCodeDistribution", {}).items() if k.startswith("2"))
    total = sum(d.get("statusCodeDistribution", {}).values())
    return name, s["requestsPerSec"], lp["p50"] * 1e3, lp["p99"] * 1e3, ok, total
rows = [row("Ward (AuthZEN, proxy admin listener)", w), row("Cerbos (check/resources)", c)]
print(f"PDP throughput — one run, {sys.argv[3]} each, {sys.argv[4]} keep-alive connections, {sys.argv[5]} CPUs, loopback")
print(f"  {'PDP':<38}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}   2xx / answers")
for name, rps, p50, p99, ok, total in rows:
    print(f"  {name:<38}{rps:>10,.0f}{p50:>10.3f}{p99:>10.3f}   {ok:,} / {total:,}")
ratio = rows[0][1] / rows[1][1] if rows[1][1] else float("inf")
print(f"  Ward / Cerbos: {ratio:.2f}x   target >= 10x: {'met' if ratio >= 10 else 'NOT met'}")
PY
python3 - "${shipped_before:-?}" "${shipped_after:-?}" "${backlog_after:-?}" "$WORK/ward.json" <<'PY'
import json, sys
try:
    before, after, backlog = (int(float(v)) for v in sys.argv[1:4])
except ValueError:
    print("  Ward audit: the proxy's metrics could not be read")
    sys.exit(0)
rps = json.load(open(sys.argv[4]))["summary"]["requestsPerSec"]
print(f"  Ward audit: {after - before:,} records shipped to the server's log during warm-up and load;"
      f" spool backlog at the end: {backlog:,} ({backlog / rps if rps else 0:.1f} s of decisions)")
if rps and backlog > 2 * rps:
    print("  warning: shipping fell behind the decisions; Ward's figure leaves part of its audit work out")
PY
