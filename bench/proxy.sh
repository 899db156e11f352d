#!/usr/bin/env bash
# Data-plane benchmark: Ward's proxy vs nginx vs HAProxy, in one run.
#
# Every peer is the same two-proxy sidecar mesh on loopback:
#
#   oha -> proxy A (plain HTTP, 127.0.0.1) -> mutual TLS 1.3 -> proxy B
#       -> upstream (plain HTTP, 127.0.0.1)
#
# One worker per proxy; one shared fixed-200 upstream (nginx, one worker,
# `return 200 "ok\n"`). Measured with oha, per peer: keep-alive HTTP/1.1
# req/s, HTTP/2 (4 connections x 8 streams) req/s, a new connection per
# request, added latency p50/p90/p99 at a fixed 1,000 req/s (minus the
# direct-to-upstream figure) and idle / loaded RSS. Prints one table with a
# column per peer and the ratios Ward/HAProxy and Ward/nginx. About 3 minutes
# with the defaults (plus installing nginx, HAProxy and oha if missing).
#
#   bench/proxy.sh                                   # everything
#   WARD_ONLY_PEERS=1 bench/proxy.sh                 # nginx and HAProxy only
#   PEERS=ward bench/proxy.sh                        # Ward only (while tuning)
#   DURATION=30s bench/proxy.sh                      # longer measurements
#   WARD_BIN=/path/to/ward KEEP_WORK=1 bench/proxy.sh
#   WARD_PROXY_BIN=target/sidecar/release/ward bench/proxy.sh   # sidecar build
#
# Environment (defaults in brackets):
#   WARD_BIN         the ward binary [target/release/ward; build it with
#                    `cargo build --release -p ward`]
#   WARD_PROXY_BIN   the ward binary the two proxies run [WARD_BIN]; e.g. the
#                    sidecar build, without the server: `cargo build --release
#                    -p ward --no-default-features --target-dir target/sidecar`
#   WARD_ONLY_PEERS  1 = skip Ward, bench nginx and HAProxy only [0]
#   PEERS            which meshes to bench, any of: ward haproxy nginx
#                    [ward haproxy nginx]; the direct baseline always runs
#   WARD_HOOK        a command run once the Ward mesh is up, with the two
#                    proxies' pids in WARD_PIDS and the client port in
#                    WARD_URL (e.g. to attach `perf record`) [none]
#   DURATION         length of each measurement, oha -z syntax (10s, 1m) [10s]
#   WARMUP           warm-up before each peer's measurements [2s]
#   CONNECTIONS      connections of the keep-alive / new-connection runs [32]
#   RATE             fixed rate of the latency run, req/s [1000]
#   LATENCY_CONNECTIONS  connections of the latency run [16]
#   PORT_BASE        ports PORT_BASE+80 .. PORT_BASE+143 on 127.0.0.1 [18000]
#   HAPROXY_MTLS_ALPN  ALPN of HAProxy's A->B hop: h2 or http/1.1 [h2]
#   READY_TIMEOUT    seconds to wait for anything to come up [60]
#   KEEP_WORK        1 = keep the work dir (configs, logs, oha JSON) [0]
#
# Needs: bash, curl, openssl, python3; installs nginx and haproxy with
# apt-get (Debian/Ubuntu, root or sudo) and oha with `cargo install --locked`
# (unlocked, its newest dependencies need a newer rustc) when they
# are missing. Listens on 127.0.0.1 only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=proxy.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
TEMPLATES=$ROOT/bench/proxy

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
RATE=${RATE:-1000}
LATENCY_CONNECTIONS=${LATENCY_CONNECTIONS:-16}
PORT_BASE=${PORT_BASE:-18000}
HAPROXY_MTLS_ALPN=${HAPROXY_MTLS_ALPN:-h2}
READY_TIMEOUT=${READY_TIMEOUT:-60}
KEEP_WORK=${KEEP_WORK:-0}
WARD_ONLY_PEERS=${WARD_ONLY_PEERS:-0}
PEERS=${PEERS:-ward haproxy nginx}
WARD_HOOK=${WARD_HOOK:-}
for p in $PEERS; do
    case $p in ward | haproxy | nginx) ;; *) die "PEERS: unknown peer '$p' (expected ward, haproxy, nginx)" ;; esac
done
[[ $WARD_ONLY_PEERS == 1 ]] && PEERS=${PEERS//ward/}
wanted() { [[ " $PEERS " == *" $1 "* ]]; }
WARD_BIN=${WARD_BIN:-target/release/ward}
[[ $WARD_BIN == /* ]] || WARD_BIN=$ROOT/$WARD_BIN
WARD_PROXY_BIN=${WARD_PROXY_BIN:-$WARD_BIN}
[[ $WARD_PROXY_BIN == /* ]] || WARD_PROXY_BIN=$ROOT/$WARD_PROXY_BIN

# Ports (all on 127.0.0.1).
UPSTREAM_PORT=$((PORT_BASE + 80))      # fixed-200 upstream, HTTP/1.1
UPSTREAM_H2_PORT=$((PORT_BASE + 81))   # same server, h2c (direct HTTP/2 baseline)
NGINX_A_PORT=$((PORT_BASE + 110))
NGINX_A_H2_PORT=$((PORT_BASE + 111))   # nginx 1.22: h2c needs its own listener
NGINX_B_PORT=$((PORT_BASE + 112))
HAPROXY_A_PORT=$((PORT_BASE + 120))
HAPROXY_B_PORT=$((PORT_BASE + 122))
WARD_SERVER_PORT=$((PORT_BASE + 130))
WARD_CLIENT_OUT=$((PORT_BASE + 131))   # what oha hits
WARD_CLIENT_IN=$((PORT_BASE + 132))
WARD_CLIENT_ADMIN=$((PORT_BASE + 133))
WARD_API_OUT=$((PORT_BASE + 141))
WARD_API_IN=$((PORT_BASE + 142))       # the mTLS hop ends here
WARD_API_ADMIN=$((PORT_BASE + 143))


# --- arguments and settings -------------------------------------------------

bench_args "$@"

# oha -z syntax -> whole seconds (for the outer `timeout` bound).
seconds() {
    local d=$1
    case $d in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
    esac
}
for v in DURATION WARMUP; do
    [[ ${!v} =~ ^[0-9]+(ms|s|m|h)?$ ]] || die "$v=${!v}: expected a duration like 10s or 1m"
done
for v in CONNECTIONS RATE LATENCY_CONNECTIONS PORT_BASE READY_TIMEOUT; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v=${!v}: expected a positive integer"
done
((PORT_BASE + 200 < 65536)) || die "PORT_BASE=$PORT_BASE: too high"
case $HAPROXY_MTLS_ALPN in h2 | http/1.1) ;; *) die "HAPROXY_MTLS_ALPN must be h2 or http/1.1" ;; esac
DURATION_S=$(seconds "$DURATION")
WARMUP_S=$(seconds "$WARMUP")

# --- processes and clean-up -------------------------------------------------

trap cleanup EXIT
trap 'echo >&2; die "interrupted"' INT TERM

forget() { # drop PIDs from STARTED once stopped
    local s p keep=() drop
    for s in "${STARTED[@]}"; do
        drop=0
        for p in "$@"; do [[ $s == "$p" ]] && drop=1; done
        ((drop)) || keep+=("$s")
    done
    STARTED=("${keep[@]+"${keep[@]}"}")
}

# died PID LOGFILE WHAT: fail with the log's tail if PID is gone.
died() {
    kill -0 "$1" 2>/dev/null && return 0
    tail -n 20 "$2" >&2 || true
    die "$3 exited early (log above: $2)"
}

# wait_http URL PID LOGFILE WHAT [CURL ARGS...]: poll until URL answers 2xx.
wait_http() {
    local url=$1 pid=$2 logfile=$3 what=$4 i
    shift 4
    for ((i = 0; i < READY_TIMEOUT * 5; i++)); do
        died "$pid" "$logfile" "$what"
        curl -fsS -o /dev/null --max-time 2 "$@" "$url" 2>/dev/null && return 0
        sleep 0.2
    done
    tail -n 20 "$logfile" >&2 || true
    die "$what did not answer $url within ${READY_TIMEOUT}s (log above: $logfile)"
}

# --- prerequisites ----------------------------------------------------------

for tool in curl openssl python3 pgrep timeout; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

if wanted ward; then
    if [[ ! -x $WARD_BIN ]]; then
        die "no ward binary at $WARD_BIN: build it with \`cargo build --release -p ward\` (or set WARD_BIN), or run with WARD_ONLY_PEERS=1 to bench nginx and HAProxy only"
    fi
    "$WARD_BIN" server run --help >/dev/null 2>&1 ||
        die "$WARD_BIN has no \`ward server run\` (a sidecar build?): rebuild it with \`cargo build --release -p ward\`, and give the sidecar build as WARD_PROXY_BIN"
    "$WARD_PROXY_BIN" proxy run --help >/dev/null 2>&1 ||
        die "$WARD_PROXY_BIN has no \`ward proxy run\`: rebuild it with \`cargo build --release -p ward\`"
fi

export PATH=$PATH:/usr/sbin:/sbin:${CARGO_HOME:-$HOME/.cargo}/bin
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
    command -v apt-get >/dev/null || die "nginx and haproxy are needed; install them (no apt-get here)"
    SUDO=()
    if [[ $(id -u) != 0 ]]; then
        command -v sudo >/dev/null || die "installing nginx and haproxy needs root or sudo"
        SUDO=(sudo)
    fi
    log "installing nginx and haproxy (apt-get)"
    "${SUDO[@]}" apt-get update >&2
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y nginx haproxy >&2
fi
if ! command -v oha >/dev/null; then
    command -v cargo >/dev/null || die "oha is needed: install Rust (cargo) or oha itself"
    log "installing oha (cargo install --locked oha; a few minutes)"
    cargo install --locked oha >&2
fi
OHA_HELP=$(oha --help)
if grep -q -- '--output-format' <<<"$OHA_HELP"; then
    OHA_JSON=(--output-format json)
elif grep -q -- '--json' <<<"$OHA_HELP"; then
    OHA_JSON=(--json)
else
    die "this oha ($(oha --version)) has no JSON output; install a newer one (cargo install --locked oha)"
fi
OHA=(oha --no-tui "${OHA_JSON[@]}")

# Every port must be free before anything starts.
python3 - "$UPSTREAM_PORT" "$UPSTREAM_H2_PORT" "$NGINX_A_PORT" "$NGINX_A_H2_PORT" \
    "$NGINX_B_PORT" "$HAPROXY_A_PORT" "$HAPROXY_B_PORT" "$WARD_SERVER_PORT" \
    "$WARD_CLIENT_OUT" "$WARD_CLIENT_IN" "$WARD_CLIENT_ADMIN" "$WARD_API_OUT" \
    "$WARD_API_IN" "$WARD_API_ADMIN" <<'EOF' || die "ports in use (pick another PORT_BASE)"
import socket, sys
busy = []
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    # Like the servers: TIME_WAIT leftovers of a previous run do not count.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        busy.append(port)
    finally:
        s.close()
if busy:
    print("proxy.sh: ports already in use on 127.0.0.1: " + " ".join(map(str, busy)), file=sys.stderr)
    sys.exit(1)
EOF

LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ward-proxy-bench.XXXXXX")
chmod 711 "$WORK" # nginx workers run as another user when started by root
RESULTS=$WORK/results
CERTS=$WORK/certs
mkdir -p "$RESULTS" "$CERTS"
MTLS_CHECKS=()
SKIPPED=()
log "work dir: $WORK"

# --- certificates for the nginx and HAProxy peers ---------------------------
# EC P-256 CA; server leaf for proxy B (b.bench.test, 127.0.0.1); client leaf
# for proxy A. Ward issues its own SVIDs and does not use these.

make_certs() {
    local c=$CERTS
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$c/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$c/ca.key" -sha256 -days 2 -subj "/CN=Ward bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$c/ca.pem"
    leaf() { # NAME CN EXTENSIONS
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$c/$1.key" 2>/dev/null
        openssl req -new -key "$c/$1.key" -subj "/CN=$2" -out "$c/$1.csr"
        printf '%s\n' "$3" >"$c/$1.ext"
        openssl x509 -req -in "$c/$1.csr" -CA "$c/ca.pem" -CAkey "$c/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
            -days 2 -sha256 -extfile "$c/$1.ext" -out "$c/$1.pem" 2>/dev/null
        cat "$c/$1.pem" "$c/$1.key" >"$c/$1.combined.pem" # HAProxy's `crt` format
    }
    leaf server b.bench.test "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:b.bench.test,IP:127.0.0.1"
    leaf client a.bench.test "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=DNS:a.bench.test"
    openssl verify -CAfile "$c/ca.pem" "$c/server.pem" "$c/client.pem" >/dev/null ||
        die "generated certificates do not verify"
    # A client certificate from no trusted CA: proxy B must refuse it too.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj "/CN=a.bench.test" -keyout "$c/rogue.key" -out "$c/rogue.pem" 2>/dev/null
}

# render TEMPLATE OUT DIR: fill the @PLACEHOLDERS@ of a config template.
render() {
    sed -e "s|@DIR@|$3|g" -e "s|@CERTS@|$CERTS|g" \
        -e "s|@UPSTREAM_PORT@|$UPSTREAM_PORT|g" -e "s|@UPSTREAM_H2_PORT@|$UPSTREAM_H2_PORT|g" \
        -e "s|@A_PORT@|${A_PORT:-}|g" -e "s|@A_H2_PORT@|${A_H2_PORT:-}|g" -e "s|@B_PORT@|${B_PORT:-}|g" \
        -e "s|@MTLS_ALPN@|$HAPROXY_MTLS_ALPN|g" "$1" >"$2"
    if grep -n '@[A-Z_0-9]*@' "$2" >&2; then die "unfilled placeholder in $2"; fi
}

# start_nginx NAME TEMPLATE: render, check and start one nginx (master +
# one worker) in the foreground; sets LAST_PID (the master).
start_nginx() {
    local dir=$WORK/$1
    mkdir -p "$dir/tmp"
    render "$TEMPLATES/$2" "$dir/nginx.conf" "$dir"
    nginx -t -q -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf" ||
        die "nginx rejects $dir/nginx.conf"
    start "$1" "$dir/stdout.log" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf"
}

# start_haproxy NAME TEMPLATE: one HAProxy process (nbthread 1) in the
# foreground; sets LAST_PID.
start_haproxy() {
    local dir=$WORK/$1
    mkdir -p "$dir"
    render "$TEMPLATES/$2" "$dir/haproxy.cfg" "$dir"
    haproxy -c -q -f "$dir/haproxy.cfg" || die "haproxy rejects $dir/haproxy.cfg"
    start "$1" "$dir/haproxy.log" haproxy -db -f "$dir/haproxy.cfg"
}

# --- measuring --------------------------------------------------------------

# rss_kib PID...: sum of VmRSS (KiB) into RSS_KIB, without forking.
rss_kib() {
    local p k v _
    RSS_KIB=0
    for p in "$@"; do
        [[ -r /proc/$p/status ]] || continue
        while read -r k v _; do
            if [[ $k == VmRSS: ]]; then RSS_KIB=$((RSS_KIB + v)); fi
        done <"/proc/$p/status" || true
    done
}

# sampler OUT PID...: write the highest summed VmRSS, every 0.2 s, to OUT.
sampler() {
    local out=$1 max=0
    shift
    while :; do
        rss_kib "$@"
        if ((RSS_KIB > max)); then
            max=$RSS_KIB
            echo "$max" >"$out"
        fi
        sleep 0.2
    done
}

# cpu_ticks PID...: user + system clock ticks of the processes (all their
# threads) into CPU_TICKS.
cpu_ticks() {
    local p line rest
    CPU_TICKS=0
    for p in "$@"; do
        [[ -r /proc/$p/stat ]] || continue
        read -r line <"/proc/$p/stat" || continue
        rest=${line##*) } # the command name may hold spaces; fields after it
        read -ra f <<<"$rest"
        CPU_TICKS=$((CPU_TICKS + f[11] + f[12])) # utime, stime (fields 14, 15)
    done
}

# oha_run PEER TEST OHA-ARGS...: one bounded measurement, JSON to
# RESULTS/PEER.TEST.json (empty if oha failed).
oha_run() {
    local peer=$1 test=$2 out=$RESULTS/$1.$2.json
    shift 2
    if ! timeout --foreground --kill-after=5 $((DURATION_S + 60)) "${OHA[@]}" -z "$DURATION" "$@" \
        >"$out" 2>"$RESULTS/$peer.$test.err"; then
        warn "oha failed for $peer/$test: $(tail -n 3 "$RESULTS/$peer.$test.err" | tr '\n' ' ')"
        : >"$out"
    fi
}

# ward_metric PORT NAME: a sample's value from a Ward admin listener (0 if
# absent).
ward_metric() {
    local v
    v=$(curl -fsS --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2; exit }') || true
    echo "${v:-0}"
}

# measure PEER H1_URL H2_PORT PIDS: the four load runs and the RSS figures.
# HTTP/1.1 runs send `Host: api` to H1_URL; the HTTP/2 run asks for
# http://api/ connected to 127.0.0.1:H2_PORT, so :authority is `api` (nginx
# answers 400 to a Host header beside :authority). PIDS: space-separated
# proxy processes whose RSS is summed (with their children).
measure() {
    local peer=$1 h1=$2 h2port=$3 pids=$4
    local hdr=(-H "Host: api") h2=(--connect-to "api:80:127.0.0.1:$h2port" http://api/)
    local all sampler_pid idle loaded
    # Belt and braces for Ward: name the target explicitly too.
    if [[ $peer == ward ]]; then h2=(-H "ward-target: api" "${h2[@]}"); fi
    local pid_list=()
    read -ra pid_list <<<"$pids"
    mapfile -t all < <(descendants "${pid_list[@]+"${pid_list[@]}"}")

    if [[ $peer != direct ]]; then
        sleep 1
        rss_kib "${all[@]}"
        idle=$RSS_KIB
        echo 0 >"$RESULTS/$peer.rss.max"
        sampler "$RESULTS/$peer.rss.max" "${all[@]}" &
        sampler_pid=$!
        STARTED+=("$sampler_pid")
    fi

    log "warm-up ($WARMUP): $peer"
    timeout --foreground --kill-after=5 $((WARMUP_S + 60)) "${OHA[@]}" -z "$WARMUP" -c "$CONNECTIONS" \
        "${hdr[@]}" "$h1" >/dev/null 2>&1 || warn "warm-up failed for $peer"
    log "keep-alive HTTP/1.1 (c=$CONNECTIONS, $DURATION): $peer"
    local ticks_before
    if [[ $peer != direct ]]; then cpu_ticks "${all[@]}"; fi
    ticks_before=${CPU_TICKS:-0}
    oha_run "$peer" ka -c "$CONNECTIONS" "${hdr[@]}" "$h1"
    if [[ $peer != direct ]]; then
        cpu_ticks "${all[@]}"
        printf '{"ticks": %d, "hz": %d}\n' $((CPU_TICKS - ticks_before)) "$(getconf CLK_TCK)" \
            >"$RESULTS/$peer.ka.cpu.json"
    fi
    log "HTTP/2 (4 x 8 streams, $DURATION): $peer"
    oha_run "$peer" h2 --http2 -c 4 -p 8 "${h2[@]}"
    log "new connection per request (c=$CONNECTIONS, $DURATION): $peer"
    oha_run "$peer" nc --disable-keepalive -c "$CONNECTIONS" "${hdr[@]}" "$h1"
    log "latency at $RATE req/s (c=$LATENCY_CONNECTIONS, $DURATION): $peer"
    oha_run "$peer" lat -q "$RATE" --latency-correction -c "$LATENCY_CONNECTIONS" "${hdr[@]}" "$h1"

    if [[ $peer != direct ]]; then
        stop "$sampler_pid"
        forget "$sampler_pid"
        loaded=$(cat "$RESULTS/$peer.rss.max")
        rss_kib "${all[@]}"
        ((RSS_KIB > loaded)) && loaded=$RSS_KIB
        printf '{"idle": %d, "loaded": %d, "pids": "%s"}\n' "$idle" "$loaded" "${all[*]}" \
            >"$RESULTS/$peer.rss.json"
        log "RSS $peer: idle $((idle / 1024)) MiB, loaded $((loaded / 1024)) MiB (pids ${all[*]})"
    fi
}

# through PEER URL HEADER-ARGS...: one request through the mesh must give 200.
through() {
    local peer=$1 url=$2 code i
    shift 2
    for ((i = 0; i < 50; i++)); do
        code=$(curl -sS -o "$WORK/$peer.body" -w '%{http_code}' --max-time 5 "$@" "$url" 2>/dev/null || true)
        [[ $code == 200 ]] && return 0
        sleep 0.2
    done
    die "$peer: a request through the mesh ($url) got HTTP ${code:-none}, not 200: $(head -c 300 "$WORK/$peer.body" 2>/dev/null)"
}

# mtls_check PEER PORT: proxy B must refuse a client without a certificate
# (and, for nginx/HAProxy, accept one with the bench client certificate).
mtls_check() {
    local peer=$1 port=$2 code rc=0 how url="https://b.bench.test:$2/"
    local res=(--resolve "b.bench.test:$port:127.0.0.1") trust=(--cacert "$CERTS/ca.pem")
    if [[ $peer == ward ]]; then
        # Ward's proxy has a certificate from Ward's CA: only the client side
        # of the handshake matters here.
        url="https://127.0.0.1:$port/" res=() trust=(-k)
    fi
    code=$(curl -sS -o "$WORK/$peer.nocert" -w '%{http_code}' --max-time 5 "${trust[@]}" \
        "${res[@]+"${res[@]}"}" "$url" 2>"$WORK/$peer.nocert.err") || rc=$?
    if [[ $code == 2* ]]; then
        die "$peer: proxy B (127.0.0.1:$port) answered $code to a client without a certificate"
    fi
    # Not listening or no answer is no proof of anything.
    case $rc in 6 | 7 | 28) die "$peer: proxy B (127.0.0.1:$port) unreachable: $(head -n1 "$WORK/$peer.nocert.err")" ;; esac
    if ((rc)); then
        how="refused in the TLS handshake ($(head -n1 "$WORK/$peer.nocert.err" | cut -c1-100 | sed 's/ *$//'))"
    else
        how="refused with HTTP $code ($(grep -o '<title>[^<]*' "$WORK/$peer.nocert" | head -n1 | sed 's/<title>//'))"
    fi
    if [[ $peer != ward ]]; then
        code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "${trust[@]}" \
            --cert "$CERTS/client.pem" --key "$CERTS/client.key" "${res[@]}" "$url") ||
            die "$peer: proxy B refused the bench client certificate"
        [[ $code == 200 ]] || die "$peer: proxy B answered $code with the bench client certificate"
        rc=0
        code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "${trust[@]}" \
            --cert "$CERTS/rogue.pem" --key "$CERTS/rogue.key" "${res[@]}" "$url" 2>/dev/null) || rc=$?
        [[ $code != 2* ]] || die "$peer: proxy B accepted a client certificate from an unknown CA"
        if ((rc)); then how="$how; self-signed client certificate: refused (curl exit $rc)"; else
            how="$how; self-signed client certificate: refused with HTTP $code"; fi
        how="$how; bench client certificate: HTTP 200"
    fi
    MTLS_CHECKS+=("$peer proxy B, no client certificate: $how")
    log "mTLS check $peer: no client certificate -> $how"
}

HDR=(-H "Host: api")

# --- the upstream and the direct baseline -----------------------------------

log "certificates (EC P-256 CA, server and client leaves)"
make_certs

log "upstream: nginx, one worker, return 200 (127.0.0.1:$UPSTREAM_PORT, h2c :$UPSTREAM_H2_PORT)"
start_nginx upstream upstream.nginx.conf
UPSTREAM_PID=$LAST_PID
wait_http "http://127.0.0.1:$UPSTREAM_PORT/" "$UPSTREAM_PID" "$WORK/upstream/error.log" "upstream nginx"
measure direct "http://127.0.0.1:$UPSTREAM_PORT/" "$UPSTREAM_H2_PORT" ""

# --- Ward -------------------------------------------------------------------

bench_ward() {
    local wd=$WORK/ward server_pid api_pid client_pid token_api token_client
    mkdir -p "$wd" "$WORK/xdg"
    # Nothing from the caller's environment may redirect the server or CLI.
    unset WARD_CONFIG WARD_DATA_DIR WARD_STORE WARD_LISTEN WARD_SVID_TTL WARD_POLICY_DIR \
        WARD_CLIENT_CONFIG WARD_SERVER
    export XDG_CONFIG_HOME=$WORK/xdg WARD_LOG=${WARD_BENCH_LOG:-warn}
    ward_admin() {
        WARD_CLIENT_CONFIG=$wd/data/admin/client.toml WARD_SERVER=127.0.0.1:$WARD_SERVER_PORT \
            "$WARD_BIN" "$@" 2>>"$wd/admin.log"
    }

    log "ward: server init + run (127.0.0.1:$WARD_SERVER_PORT)"
    "$WARD_BIN" server init --data-dir "$wd/data" --trust-domain bench.test >>"$wd/admin.log" 2>&1 ||
        { cat "$wd/admin.log" >&2; die "ward server init failed"; }
    start ward-server "$wd/server.log" "$WARD_BIN" server run --data-dir "$wd/data" --listen "127.0.0.1:$WARD_SERVER_PORT"
    server_pid=$LAST_PID
    local i
    for ((i = 0; ; i++)); do
        died "$server_pid" "$wd/server.log" "ward server"
        ward_admin server status >/dev/null && break
        ((i < READY_TIMEOUT * 5)) || die "ward server did not come up within ${READY_TIMEOUT}s ($wd/server.log, $wd/admin.log)"
        sleep 0.2
    done

    log "ward: agents client and api, policy bench-allow, join tokens"
    ward_admin agent register client >/dev/null || die "ward agent register client failed ($wd/admin.log)"
    ward_admin agent register api >/dev/null || die "ward agent register api failed ($wd/admin.log)"
    # Where "api" is reached (its inbound listener); harmless if the proxy
    # also reports it when it enrolls.
    ward_admin agent update api --endpoint "127.0.0.1:$WARD_API_IN" >/dev/null ||
        die "ward agent update api --endpoint failed ($wd/admin.log)"
    ward_admin agent update client --endpoint "127.0.0.1:$WARD_CLIENT_IN" >/dev/null ||
        die "ward agent update client --endpoint failed ($wd/admin.log)"
    ward_admin policy push "$TEMPLATES/ward-policy" >/dev/null || die "ward policy push failed ($wd/admin.log)"
    token_api=$(ward_admin token create --agent api) || die "ward token create --agent api failed ($wd/admin.log)"
    token_client=$(ward_admin token create --agent client) || die "ward token create --agent client failed ($wd/admin.log)"

    # proxy_run NAME TOKEN OUT IN ADMIN
    proxy_run() {
        mkdir -p "$wd/$1"
        start "ward-$1" "$wd/$1.log" "$WARD_PROXY_BIN" proxy run --server "127.0.0.1:$WARD_SERVER_PORT" \
            --bundle "$wd/data/bundle.json" --agent "$1" --join-token "$2" \
            --upstream "127.0.0.1:$UPSTREAM_PORT" --state-dir "$wd/$1" \
            --outbound "127.0.0.1:$3" --inbound "127.0.0.1:$4" --admin "127.0.0.1:$5" --workers 1
    }
    log "ward: proxy api (in :$WARD_API_IN -> upstream :$UPSTREAM_PORT) and proxy client (out :$WARD_CLIENT_OUT)"
    proxy_run api "$token_api" "$WARD_API_OUT" "$WARD_API_IN" "$WARD_API_ADMIN"
    api_pid=$LAST_PID
    proxy_run client "$token_client" "$WARD_CLIENT_OUT" "$WARD_CLIENT_IN" "$WARD_CLIENT_ADMIN"
    client_pid=$LAST_PID
    wait_http "http://127.0.0.1:$WARD_API_ADMIN/readyz" "$api_pid" "$wd/api.log" "ward proxy api"
    wait_http "http://127.0.0.1:$WARD_CLIENT_ADMIN/readyz" "$client_pid" "$wd/client.log" "ward proxy client"
    through ward "http://127.0.0.1:$WARD_CLIENT_OUT/" "${HDR[@]}"
    mtls_check ward "$WARD_API_IN"
    if [[ -n $WARD_HOOK ]]; then
        log "ward: running WARD_HOOK"
        WARD_PIDS="$client_pid $api_pid" WARD_URL="http://127.0.0.1:$WARD_CLIENT_OUT/" \
            bash -c "$WARD_HOOK" || warn "WARD_HOOK failed"
    fi

    # Proxy B audits every call; its figures count only if shipping to the
    # server's log kept up (the spool's backlog stays flat under load).
    local shipped_before backlog shipped_after
    shipped_before=$(ward_metric "$WARD_API_ADMIN" ward_proxy_audit_shipped_records_total)
    measure ward "http://127.0.0.1:$WARD_CLIENT_OUT/" "$WARD_CLIENT_OUT" "$client_pid $api_pid"
    backlog=$(ward_metric "$WARD_API_ADMIN" ward_proxy_audit_backlog_records)
    shipped_after=$(ward_metric "$WARD_API_ADMIN" ward_proxy_audit_shipped_records_total)
    log "ward: audit records shipped to the server's log during the runs: $((${shipped_after%.*} - ${shipped_before%.*})); spool backlog at the end: ${backlog%.*}"
    ((${backlog%.*} <= 20000)) || warn "ward: the audit spool's backlog is ${backlog%.*} records: shipping fell behind, so Ward's figures leave part of its audit work out"
    stop "$client_pid" "$api_pid" "$server_pid"
    forget "$client_pid" "$api_pid" "$server_pid"
}

if wanted ward; then
    bench_ward
else
    log "ward: skipped (PEERS=$PEERS)"
    SKIPPED+=(ward)
fi

# --- HAProxy ----------------------------------------------------------------

bench_haproxy() {
    log "haproxy: A :$HAPROXY_A_PORT -> mTLS ($HAPROXY_MTLS_ALPN) -> B :$HAPROXY_B_PORT -> upstream"
    A_PORT=$HAPROXY_A_PORT B_PORT=$HAPROXY_B_PORT start_haproxy haproxy-b haproxy-b.cfg
    HB=$LAST_PID
    A_PORT=$HAPROXY_A_PORT B_PORT=$HAPROXY_B_PORT start_haproxy haproxy-a haproxy-a.cfg
    HA=$LAST_PID
    wait_http "http://127.0.0.1:$HAPROXY_A_PORT/" "$HA" "$WORK/haproxy-a/haproxy.log" "haproxy A"
    died "$HB" "$WORK/haproxy-b/haproxy.log" "haproxy B"
    through haproxy "http://127.0.0.1:$HAPROXY_A_PORT/" "${HDR[@]}"
    mtls_check haproxy "$HAPROXY_B_PORT"
    measure haproxy "http://127.0.0.1:$HAPROXY_A_PORT/" "$HAPROXY_A_PORT" "$HA $HB"
    stop "$HA" "$HB"
    forget "$HA" "$HB"
}
if wanted haproxy; then bench_haproxy; else SKIPPED+=(haproxy); fi

# --- nginx ------------------------------------------------------------------

bench_nginx() {
    log "nginx: A :$NGINX_A_PORT (h2c :$NGINX_A_H2_PORT) -> mTLS (http/1.1) -> B :$NGINX_B_PORT -> upstream"
    A_PORT=$NGINX_A_PORT A_H2_PORT=$NGINX_A_H2_PORT B_PORT=$NGINX_B_PORT start_nginx nginx-b nginx-b.conf
    NB=$LAST_PID
    A_PORT=$NGINX_A_PORT A_H2_PORT=$NGINX_A_H2_PORT B_PORT=$NGINX_B_PORT start_nginx nginx-a nginx-a.conf
    NA=$LAST_PID
    wait_http "http://127.0.0.1:$NGINX_A_PORT/" "$NA" "$WORK/nginx-a/error.log" "nginx A"
    died "$NB" "$WORK/nginx-b/error.log" "nginx B"
    through nginx "http://127.0.0.1:$NGINX_A_PORT/" "${HDR[@]}"
    mtls_check nginx "$NGINX_B_PORT"
    measure nginx "http://127.0.0.1:$NGINX_A_PORT/" "$NGINX_A_H2_PORT" "$NA $NB"
    stop "$NA" "$NB"
    forget "$NA" "$NB"
}
if wanted nginx; then bench_nginx; else SKIPPED+=(nginx); fi

# --- report -----------------------------------------------------------------

ward_version=skipped
if wanted ward; then
    ward_version=$("$WARD_BIN" --version 2>/dev/null || echo "?")
    [[ $WARD_PROXY_BIN == "$WARD_BIN" ]] || ward_version+=", proxies: $WARD_PROXY_BIN"
fi
BENCH_META_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
BENCH_META_HOST="$(nproc) CPUs, $(uname -sr), load average $LOADAVG_START at start, $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) at end" \
BENCH_META_OHA=$(oha --version 2>/dev/null | head -n1) \
BENCH_META_NGINX=$(nginx -v 2>&1 | head -n1 | sed 's/^nginx version: //') \
BENCH_META_HAPROXY=$(haproxy -v 2>/dev/null | head -n1) \
BENCH_META_WARD=$ward_version \
BENCH_META_SETTINGS="DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS RATE=$RATE LATENCY_CONNECTIONS=$LATENCY_CONNECTIONS HAPROXY_MTLS_ALPN=$HAPROXY_MTLS_ALPN; upstream: nginx, 1 worker, return 200" \
BENCH_META_ALPN=$HAPROXY_MTLS_ALPN \
BENCH_META_SKIPPED="${SKIPPED[*]+"${SKIPPED[*]}"}" \
BENCH_META_MTLS=$(printf '%s\n' "${MTLS_CHECKS[@]+"${MTLS_CHECKS[@]}"}") \
    python3 - "$RESULTS/meta.json" "$CONNECTIONS" "$RATE" <<'EOF'
import json, os, sys
e = lambda k: os.environ.get("BENCH_META_" + k, "")
json.dump({
    "date": e("DATE"), "host": e("HOST"), "oha": e("OHA"), "nginx": e("NGINX"),
    "haproxy": e("HAPROXY"), "ward": e("WARD"), "settings": e("SETTINGS"),
    "connections": int(sys.argv[2]), "rate": int(sys.argv[3]), "haproxy_alpn": e("ALPN"),
    "skipped": e("SKIPPED").split(),
    "mtls_checks": [l for l in e("MTLS").splitlines() if l],
}, open(sys.argv[1], "w"), indent=1)
EOF
stop "$UPSTREAM_PID"
forget "$UPSTREAM_PID"
python3 "$TEMPLATES/report.py" "$RESULTS"
