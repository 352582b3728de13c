#!/usr/bin/env bash
# Runs the shared Gun.js load drivers (../shared/bench) against genuine Gun.js
# and against gun-relay in the same run, then prints both summaries.
#
#   bash benches/relay-vs-gunjs.sh [SUITE...]      # default: relay fanout
#   REPS=3 bash benches/relay-vs-gunjs.sh relay coldread
#   BASELINE_RELAY_BIN=/path/to/older/gun-relay bash benches/relay-vs-gunjs.sh relay
#                                   # also an older gun-relay build, same run
#   ECHO=1 bash benches/relay-vs-gunjs.sh relay   # also the bare echo server first
#   POSTGRES=1 bash benches/relay-vs-gunjs.sh relay
#                                   # also gun-relay on PostgreSQL (a throw-away server,
#                                   # fsync on; benches/pg.sh), radisk=true -> postgres
#
# Suites are those of ../shared/bench/bench.sh (relay, relaybatch, fanout,
# coldread, ...). gun-relay is built in release mode; radisk=true maps to our
# durable default store (sled), radisk=false to the memory store.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="${GUN_BENCH_KIT:-$ROOT/../shared/bench}"
OUT="${OUT:-${TMPDIR:-/tmp}/gun-rs-bench/$(date +%Y%m%d-%H%M%S)}"
export REPS="${REPS:-1}"
SUITES=("$@")
[[ ${#SUITES[@]} -gt 0 ]] || SUITES=(relay fanout)
if [[ ! -d "$BENCH" ]]; then
    echo "SKIPPED: relay-vs-gunjs.sh: ../shared/bench not found (CI has it)"
    exit 0
fi

(cd "$ROOT" && cargo build --release -p gun-relay)
RELAY_BIN="$ROOT/target/release/gun-relay"
# The load drivers are many connections from one address sending as fast as
# they can: the public-relay limits (per-IP connections, messages per second)
# would measure the limits, not the relay. Variables, so that older builds
# without these flags ignore them.
export GUN_RELAY_MAX_CONNECTIONS_PER_IP=0 GUN_RELAY_MAX_MESSAGES_PER_SEC=0

if [[ "${POSTGRES:-0}" == 1 ]]; then
    # shellcheck source=benches/pg.sh
    source "$ROOT/benches/pg.sh"
    start_pg
    trap stop_pg EXIT
fi

if [[ "${ECHO:-0}" == 1 ]]; then
    echo "=== echo: bare WebSocket echo server (the socket limit of the drivers)"
    OUT="$OUT/echo" RELAY_NAME=echo bash "$BENCH/bench.sh" echo
fi
for suite in "${SUITES[@]}"; do
    echo "=== $suite: genuine Gun.js"
    OUT="$OUT/gunjs" RELAY_NAME=gunjs bash "$BENCH/bench.sh" "$suite"
    echo "=== $suite: gun-relay"
    OUT="$OUT/rust" RELAY_NAME=gun-relay \
        RELAY_CMD="$RELAY_BIN --log warn --port {PORT} --data {DIR} --store \$( [ {RADISK} = true ] && echo sled || echo memory )" \
        bash "$BENCH/bench.sh" "$suite"
    if [[ "${POSTGRES:-0}" == 1 ]]; then
        echo "=== $suite: gun-relay on PostgreSQL ($PG_URL; a fresh schema per start)"
        OUT="$OUT/postgres" RELAY_NAME=gun-relay-postgres \
            RELAY_CMD="$RELAY_BIN --log warn --port {PORT} --data {DIR} \$( [ {RADISK} = true ] && echo --store postgres --postgres-url $PG_URL --postgres-schema b\$(date +%s%N) || echo --store memory )" \
            bash "$BENCH/bench.sh" "$suite"
    fi
    if [[ -n "${BASELINE_RELAY_BIN:-}" ]]; then
        echo "=== $suite: gun-relay baseline ($BASELINE_RELAY_BIN)"
        OUT="$OUT/baseline" RELAY_NAME=gun-relay-baseline \
            RELAY_CMD="$BASELINE_RELAY_BIN --log warn --port {PORT} --data {DIR} --store \$( [ {RADISK} = true ] && echo sled || echo memory )" \
            bash "$BENCH/bench.sh" "$suite"
    fi
done
(cd "$BENCH" && source lib/deps.sh && NODE_PATH="$(gun_interop_deps "$PWD")/node_modules" && export NODE_PATH \
    && echo "### genuine Gun.js" && node summarize.js "$OUT/gunjs" \
    && echo "### gun-relay" && node summarize.js "$OUT/rust" \
    && { [[ "${POSTGRES:-0}" != 1 ]] || { echo "### gun-relay on PostgreSQL" && node summarize.js "$OUT/postgres"; }; } \
    && { [[ -z "${BASELINE_RELAY_BIN:-}" ]] || { echo "### gun-relay baseline" && node summarize.js "$OUT/baseline"; }; } \
    && { [[ "${ECHO:-0}" != 1 ]] || { echo "### bare echo server" && node summarize.js "$OUT/echo"; }; })
echo "raw results: $OUT"
