#!/usr/bin/env bash
# Instructions per durable put (issue 14), counted, not timed: gun-relay runs
# under valgrind's callgrind (every thread, sled's included) while the shared
# node driver (../shared/bench/wsload.js, 4 clients x 64 puts in flight, new
# 10-field nodes, --mode ack) writes to it. The count covers the steady state
# only: once the relay has acked WARM puts (default 25,000: past the engine's
# 20,000-soul cache, whose warm-up reads a written soul back, and past a full
# dedup table), the counters are zeroed (`callgrind_control -z`); the result is
# the instructions from then to the end of the load divided by the acks sent in
# that window (`acks_out` of /stats).
#
# A count does not depend on what else the machine runs, so two builds can be
# compared on a busy machine where acks/s and CPU per put cannot:
#
#   bash benches/put-instructions.sh                       # this tree's relay
#   BASELINE_RELAY_BIN=/path/to/older/gun-relay bash benches/put-instructions.sh
#   STORE=memory SECS=60 REPS=2 bash benches/put-instructions.sh
#
# Under callgrind the relay runs ~50x slower, so its group commits are smaller
# than at full speed (more sled work per put): the count is for comparing
# builds, not a prediction of CPU time. (Before 2026-12-07 the script counted
# the whole run, warm-up included: those figures are ~20 % higher and not
# comparable with these.)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STORE="${STORE:-sled}"
SECS="${SECS:-45}"
WARM="${WARM:-25000}"
REPS="${REPS:-1}"
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIPPED: put-instructions.sh: valgrind not installed (apt-get install valgrind)"
    exit 0
fi
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
OUT="$(mktemp -d)"
trap 'stop; rm -rf "$OUT"' EXIT

acks_out() {
    curl -fsS "http://127.0.0.1:$1/stats" |
        node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).now.acks_out))'
}

# count BIN: prints "acks instructions" for the steady-state window of one run.
count() {
    local bin="$1" port data acks0 acks1 load up=
    port=$((30000 + RANDOM % 20000))
    data="$(mktemp -d "$OUT/data.XXXX")"
    # --fair-sched: sled's thread pool spin-waits at start, which valgrind's
    # default lock can starve (the relay once spun at 100 % for minutes).
    valgrind --tool=callgrind --fair-sched=yes --callgrind-out-file="$OUT/cg.out" \
        "$bin" --log warn --port "$port" --data "$data" --store "$STORE" \
        >"$OUT/relay.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 600); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }
        sleep 0.2
    done
    if [[ -z "$up" ]]; then
        echo "ERROR: put-instructions.sh: the relay did not listen within 120 s under callgrind" >&2
        tail -5 "$OUT/relay.log" >&2
        exit 1
    fi
    node wsload.js --url "ws://127.0.0.1:$port/gun" --clients 4 --window 64 \
        --secs "$SECS" --warmup 2 --mode ack >"$OUT/load.out" 2>&1 &
    load=$!
    acks0=0
    while kill -0 "$load" 2>/dev/null; do
        acks0="$(acks_out "$port")"
        numeric "$acks0" && ((acks0 >= WARM)) && break
        sleep 1
    done
    if ! numeric "$acks0" || ((acks0 < WARM)); then
        echo "ERROR: put-instructions.sh: the load ended after $acks0 acks, before WARM=$WARM (raise SECS)" >&2
        exit 1
    fi
    callgrind_control -z "$PID" >/dev/null 2>&1
    acks0="$(acks_out "$port")"
    wait "$load" || true
    sleep 1
    acks1="$(acks_out "$port")"
    # SIGINT: callgrind writes its counts as the relay exits normally.
    kill -INT "$PID"
    wait "$PID" 2>/dev/null || true
    PID=
    local ir
    # The last dump (at exit) holds what was counted since the zeroing.
    ir="$(cat "$OUT"/cg.out* | awk '/^summary:|^totals:/ {v=$2} END {print v}')"
    rm -rf "$data" "$OUT"/cg.out*
    echo "$((acks1 - acks0)) $ir"
}

numeric() { [[ "$1" =~ ^[0-9]+$ ]]; }

measure() {
    local name="$1" bin="$2" acks ir
    for _ in $(seq 1 "$REPS"); do
        read -r acks ir <<<"$(count "$bin")"
        numeric "$acks" && numeric "$ir" && ((acks > 0)) ||
            { echo "ERROR: no count under load (acks='$acks', instructions='$ir')" >&2; exit 1; }
        awk -v n="$name" -v a="$acks" -v i="$ir" -v s="$STORE" 'BEGIN {
            printf "%-10s store=%s acks=%d instructions=%.0f per-ack=%.0f\n", n, s, a, i, i / a }'
    done
}

echo "=== instructions per acked put (callgrind; 4 x 64 puts in flight for ${SECS}s, counted after ${WARM} acks)"
measure gun-relay "$RELAY_BIN"
if [[ -n "${BASELINE_RELAY_BIN:-}" ]]; then
    measure baseline "$BASELINE_RELAY_BIN"
fi
