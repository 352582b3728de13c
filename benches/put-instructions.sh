#!/usr/bin/env bash
# Instructions per durable put (issue 14), counted, not timed: gun-relay runs
# under valgrind's callgrind (every thread, sled's included) while the shared
# node driver (../shared/bench/wsload.js, 4 clients x 64 puts in flight, new
# 10-field nodes, --mode ack) writes to it; the result is the relay's total
# instruction count divided by the acks it sent (`acks_out` of /stats), minus
# the count of the same relay started and stopped with no load.
#
# A count does not depend on what else the machine runs, so two builds can be
# compared on a busy machine where acks/s and CPU per put cannot:
#
#   bash benches/put-instructions.sh                       # this tree's relay
#   BASELINE_RELAY_BIN=/path/to/older/gun-relay bash benches/put-instructions.sh
#   STORE=memory SECS=8 REPS=2 bash benches/put-instructions.sh
#
# Under callgrind the relay runs ~50x slower, so its group commits are smaller
# than at full speed (more sled work per put): the count is for comparing
# builds, not a prediction of CPU time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STORE="${STORE:-sled}"
SECS="${SECS:-8}"
REPS="${REPS:-1}"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIPPED: put-instructions.sh: valgrind not installed (apt-get install valgrind)"
    exit 0
fi
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
OUT="$(mktemp -d)"
trap 'stop; rm -rf "$OUT"' EXIT

# count BIN LOAD: prints "acks instructions" for one callgrind run.
count() {
    local bin="$1" load="$2" port data acks
    port=$((30000 + RANDOM % 20000))
    data="$(mktemp -d "$OUT/data.XXXX")"
    # --fair-sched: sled's thread pool spin-waits at start, which valgrind's
    # default lock can starve (the relay once spun at 100 % for minutes).
    valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$OUT/cg.out" \
        "$bin" --log warn --port "$port" --data "$data" --store "$STORE" \
        >"$OUT/relay.log" 2>&1 &
    PID=$!
    local up=
    for _ in $(seq 1 600); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }
        sleep 0.2
    done
    if [[ -z "$up" ]]; then
        echo "ERROR: put-instructions.sh: the relay did not listen within 120 s under callgrind" >&2
        tail -5 "$OUT/relay.log" >&2
        exit 1
    fi
    if [[ "$load" == 1 ]]; then
        node wsload.js --url "ws://127.0.0.1:$port/gun" --clients 4 --window 64 \
            --secs "$SECS" --warmup 2 --mode ack >"$OUT/load.out" 2>&1
    else
        sleep 3
    fi
    sleep 1
    acks="$(curl -fsS "http://127.0.0.1:$port/stats" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).now.acks_out))')"
    # SIGINT: callgrind writes its counts as the relay exits normally.
    kill -INT "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
    local ir
    ir="$(callgrind_annotate "$OUT/cg.out" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}')"
    rm -rf "$data" "$OUT/cg.out"
    echo "$acks $ir"
}

numeric() { [[ "$1" =~ ^[0-9]+$ ]]; }

measure() {
    local name="$1" bin="$2" idle acks ir
    read -r _ idle <<<"$(count "$bin" 0)"
    numeric "$idle" || { echo "ERROR: no instruction count for the idle relay" >&2; exit 1; }
    for _ in $(seq 1 "$REPS"); do
        read -r acks ir <<<"$(count "$bin" 1)"
        numeric "$acks" && numeric "$ir" && ((acks > 0)) ||
            { echo "ERROR: no count under load (acks='$acks', instructions='$ir')" >&2; exit 1; }
        awk -v n="$name" -v a="$acks" -v i="$ir" -v z="$idle" -v s="$STORE" 'BEGIN {
            printf "%-10s store=%s acks=%d instructions=%d idle=%d per-ack=%.0f\n", n, s, a, i, z, (i - z) / a }'
    done
}

echo "=== instructions per acked put (callgrind; ${SECS}s of 4 x 64 puts in flight)"
measure gun-relay "$RELAY_BIN"
if [[ -n "${BASELINE_RELAY_BIN:-}" ]]; then
    measure baseline "$BASELINE_RELAY_BIN"
fi
