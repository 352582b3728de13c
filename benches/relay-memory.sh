#!/usr/bin/env bash
# Relay memory with 100k stored nodes, genuine Gun.js (radisk) and gun-relay
# (sled, file) in the same run:
#
#   bash benches/relay-memory.sh            # NODES=100000 RELAYS="sled file gunjs" by default
#
# For each relay: start it on an empty data dir, load NODES 10-field nodes with
# the shared driver (../shared/bench/coldread.js load: 4 connections, 2,000
# puts in flight, every put acked), then read the relay's RSS (VmRSS and
# VmHWM from /proc) right after the last ack and again after 12 s (Gun.js's
# dedup entries expire after 9 s), and the data dir's size on disk. Prints one
# JSON line per relay.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODES="${NODES:-100000}"
PORT="${PORT:-37250}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gun-rs-mem.XXXXXX")"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
trap 'stop; rm -rf "$WORK"' EXIT

kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

measure() {
    local name="$1" dir="$2"
    shift 2
    "$@" >>"$WORK/$name.log" 2>&1 &
    PID=$!
    for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
    sleep 0.3
    local start_kb t0 t1
    start_kb="$(kb "$PID" VmRSS)"
    t0=$(date +%s.%N)
    node coldread.js load --url "ws://127.0.0.1:$PORT/gun" --nodes "$NODES" --window 2000 \
        | grep '^RESULT' >"$WORK/$name.load" || true
    t1=$(date +%s.%N)
    local loaded_kb hwm_kb settled_kb disk
    loaded_kb="$(kb "$PID" VmRSS)"
    sleep 12
    settled_kb="$(kb "$PID" VmRSS)"
    hwm_kb="$(kb "$PID" VmHWM)"
    stop
    disk="$(du -s --block-size=1 "$dir" | cut -f1)"
    printf '{"relay":"%s","nodes":%s,"loadSecs":%.1f,"rssStartMB":%.1f,"rssLoadedMB":%.1f,"rssSettledMB":%.1f,"rssPeakMB":%.1f,"rssPerNodeBytes":%d,"diskBytesPerNode":%d,"load":%s}\n' \
        "$name" "$NODES" "$(echo "$t1 - $t0" | bc)" \
        "$(echo "$start_kb / 1024" | bc -l)" "$(echo "$loaded_kb / 1024" | bc -l)" \
        "$(echo "$settled_kb / 1024" | bc -l)" "$(echo "$hwm_kb / 1024" | bc -l)" \
        $(((settled_kb - start_kb) * 1024 / NODES)) $((disk / NODES)) \
        "$(sed 's/^RESULT //' "$WORK/$name.load" | head -1 | grep . || echo null)"
}

for relay in ${RELAYS:-sled file gunjs}; do
    case "$relay" in
        sled | file) measure "gun-relay-$relay" "$WORK/$relay" "$RELAY_BIN" --log warn --port "$PORT" --data "$WORK/$relay" --store "$relay" ;;
        gunjs) measure gunjs-radisk "$WORK/gunjs" node relay.js --port "$PORT" --radisk true --dir "$WORK/gunjs" ;;
        *) echo "unknown relay $relay (sled, file, gunjs)" >&2; exit 2 ;;
    esac
done
