#!/usr/bin/env bash
# Fan-out latency across a fleet on PostgreSQL vs within one relay, in one run:
#
#   bash benches/fleet.sh          # SUBS=10 PUTS=300 INTERVAL=20 REPS=3
#
# Starts a throw-away PostgreSQL (benches/pg.sh, fsync on) and two release
# gun-relays on it (--store postgres, one schema), and one gun-relay on sled
# for reference. For each case, REPS runs of benches/fleet-fanout.js: one
# writer and SUBS subscribers (raw ws clients), a put every INTERVAL ms;
# per-delivery latency (first arrival at a subscriber - send time):
#   sled, within one relay     writer and subscribers on the sled relay
#   postgres, within one relay writer and subscribers on relay A
#   postgres, across relays    writer on relay A, subscribers on relay B (LISTEN/NOTIFY)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUBS="${SUBS:-10}" PUTS="${PUTS:-300}" INTERVAL="${INTERVAL:-20}" REPS="${REPS:-3}"
PA=37281 PB=37282 PS=37283
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gun-fleet.XXXXXX")"
# shellcheck source=benches/pg.sh
source "$ROOT/benches/pg.sh"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    stop_pg
    rm -rf "$WORK"
}
trap cleanup EXIT
(cd "$ROOT" && cargo build --release -p gun-relay)
BIN="$ROOT/target/release/gun-relay"
export GUN_RELAY_MAX_CONNECTIONS_PER_IP=0 GUN_RELAY_MAX_MESSAGES_PER_SEC=0 NODE_PATH="$ROOT/interop/node_modules"
start_pg
"$BIN" --log warn --port $PA --data "$WORK/a" --store postgres --postgres-url "$PG_URL" --postgres-schema fleet & PIDS+=($!)
"$BIN" --log warn --port $PB --data "$WORK/b" --store postgres --postgres-url "$PG_URL" --postgres-schema fleet & PIDS+=($!)
"$BIN" --log warn --port $PS --data "$WORK/s" --store sled & PIDS+=($!)
for port in $PA $PB $PS; do
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done
sleep 1
run_case() {
    local name="$1" w="$2" s="$3"
    for _ in $(seq 1 "$REPS"); do
        printf '%s\t' "$name"
        node "$ROOT/benches/fleet-fanout.js" --writer "ws://127.0.0.1:$w/gun" --subs-url "ws://127.0.0.1:$s/gun" \
            --subs "$SUBS" --puts "$PUTS" --interval "$INTERVAL"
    done
}
run_case "sled, within one relay" $PS $PS
run_case "postgres, within one relay" $PA $PA
run_case "postgres, across relays" $PA $PB
