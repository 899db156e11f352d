# Shared by the benchmark scripts (bench/revocation.sh, bench/mcp.sh,
# bench/proxy.sh): logging, --help, the WARD_* scrub, the port check,
# background processes with clean-up on exit, and admin CLI calls.
# Source it after setting BENCH_NAME, WARD_BIN and KEEP_WORK.
#
# shellcheck shell=bash

log() { printf '== %s\n' "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$BENCH_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

# bench_args "$@": --help prints the script's header comment; settings come
# from the environment, so anything else is refused.
bench_args() {
    case ${1:-} in
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    "") ;;
    *) die "no arguments expected (settings come from the environment; see --help)" ;;
    esac
}

# scrub_ward_env [KEEP...]: settings of the user's shell must not reach the
# ward commands (WARD_SERVER, WARD_CLIENT_CONFIG, WARD_JOIN_TOKEN, ...);
# WARD_LOG and WARD_LOG_FORMAT are kept for debugging, and KEEP... too.
scrub_ward_env() {
    local v k keep
    while read -r v; do
        keep=0
        for k in WARD_LOG WARD_LOG_FORMAT "$@"; do [[ $v == "$k" ]] && keep=1; done
        if [[ $v == WARD_BIN ]]; then
            export -n WARD_BIN
        elif ((!keep)); then
            unset "$v"
        fi
    done < <(compgen -e | grep '^WARD_' || true)
}

# check_ports LO HI: every port in LO..HI on 127.0.0.1 is free.
check_ports() {
    python3 - "$1" "$2" <<'EOF' || die "ports in use (pick another PORT_BASE)"
import socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
busy = []
for port in range(lo, hi + 1):
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
    print(f"busy ports in {lo}..{hi}: {busy[:20]}", file=sys.stderr)
    sys.exit(1)
EOF
}

STARTED=() # every background process the script started (and still runs)
WORK=""
declare -A PID_OF LOG_OF

# shellcheck disable=SC2317 # reached through the EXIT trap
descendants() { # PID... -> the PIDs and all their descendants
    local p c
    for p in "$@"; do
        echo "$p"
        for c in $(pgrep -P "$p" 2>/dev/null || true); do descendants "$c"; done
    done
}

# shellcheck disable=SC2317 # reached through the EXIT trap
stop() { # PID...: SIGTERM (and children), wait up to 5 s, then SIGKILL
    local all=() p i alive
    [[ $# -gt 0 ]] || return 0
    mapfile -t all < <(descendants "$@")
    for p in "${all[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for p in "${all[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "${all[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((${#STARTED[@]})); then
        log "stopping ${#STARTED[@]} processes"
        stop "${STARTED[@]}"
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if [[ $KEEP_WORK == 1 || ($rc -ne 0 && ${KEEP_WORK_ON_ERROR:-0} == 1) ]]; then
            log "work dir kept: $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}

# work_dir PREFIX: make the work dir (WORK), with logs/, state/, tokens/ and
# xdg/ (the admin CLI's XDG_CONFIG_HOME, so ~/.config/ward is left alone),
# and clean up on exit or interruption.
work_dir() {
    trap cleanup EXIT
    trap 'echo >&2; die "interrupted"' INT TERM
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    mkdir -p "$WORK/logs" "$WORK/state" "$WORK/tokens" "$WORK/xdg"
    export XDG_CONFIG_HOME=$WORK/xdg
}

# start NAME LOGFILE CMD...: run CMD in the background, remember it (its
# PID also in LAST_PID).
start() {
    local name=$1 logfile=$2
    shift 2
    "$@" >"$logfile" 2>&1 &
    LAST_PID=$!
    STARTED+=("$!")
    PID_OF[$name]=$!
    LOG_OF[$name]=$logfile
}

# alive NAME: fail with the tail of its log if the process is gone.
alive() {
    kill -0 "${PID_OF[$1]}" 2>/dev/null && return 0
    tail -n 20 "${LOG_OF[$1]}" >&2 || true
    die "$1 exited early (log above: ${LOG_OF[$1]}; KEEP_WORK=1 keeps it)"
}

# ward_admin LOGFILE ARGS...: one admin CLI call against the server in CONN;
# on failure show its output.
ward_admin() {
    local logfile=$1
    shift
    if ! "$WARD_BIN" "$@" "${CONN[@]}" >"$logfile.out" 2>"$logfile"; then
        cat "$logfile.out" "$logfile" >&2 || true
        die "\`ward $*\` failed (output above)"
    fi
}
