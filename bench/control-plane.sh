#!/usr/bin/env bash
# Control-plane benchmark: a real `ward server run` (SQLite) with 10,000
# registered agents; prints server RSS, agent-list latency and renewal
# throughput over mutual TLS. Release build; takes a while the first time.
#
#   bench/control-plane.sh                      # defaults
#   WARD_BENCH_AGENTS=50000 bench/control-plane.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --locked -p ward --bench control_plane "$@"
