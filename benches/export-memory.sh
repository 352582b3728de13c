#!/usr/bin/env bash
# Memory and first byte of the online export (GET /admin/export) and the
# offline `export` subcommand of gun-relay on sled, with N stored nodes of 10
# fields (default 200,000: 179 MiB of JSON Lines).
#
#   bash benches/export-memory.sh [N]
#   BASELINE_RELAY_BIN=/path/to/older/gun-relay bash benches/export-memory.sh
#
# For each binary: the relay's RSS sampled every 0.5 s while curl reads the
# export at 40 MB/s, curl's time to the first byte and in all at full speed,
# then the offline export's max RSS (/usr/bin/time) with the relay stopped.
# Needs node with interop/node_modules (npm ci --prefix interop) and curl.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-200000}"
export NODE_PATH="$ROOT/interop/node_modules"
if [[ ! -d "$NODE_PATH/ws" ]]; then
    echo "SKIPPED: export-memory.sh: run npm ci --prefix interop first" >&2
    exit 0
fi
(cd "$ROOT" && cargo build --release -p gun-relay) >&2
export GUN_RELAY_MAX_MESSAGES_PER_SEC=0 GUN_RELAY_MAX_CONNECTIONS_PER_IP=0

run() {
    local bin=$1 dir port pid samples=()
    dir="$(mktemp -d)"
    port=$((20000 + RANDOM % 20000))
    "$bin" --log warn --port "$port" --data "$dir" --store sled --admin-token bench >/dev/null 2>&1 &
    pid=$!
    sleep 1
    node "$ROOT/benches/fill-nodes.js" "ws://127.0.0.1:$port/gun" "$N"
    sleep 2
    local url="http://127.0.0.1:$port/admin/export" auth="Authorization: Bearer bench"
    curl -s --limit-rate 40M -H "$auth" "$url" -o /dev/null &
    local cpid=$!
    for _ in $(seq 1 10); do
        sleep 0.5
        samples+=("$(($(awk '/VmRSS/ {print $2}' "/proc/$pid/status") / 1024))")
    done
    wait "$cpid"
    local timing
    timing="$(curl -s -o /dev/null -w 'first byte %{time_starttransfer} s, all %{time_total} s, %{size_download} bytes' -H "$auth" "$url")"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    local offline
    offline="$( { /usr/bin/time -f '%M KB max RSS, %e s' "$bin" --data "$dir" --store sled export --out /dev/null; } 2>&1 | tail -1)"
    echo "$(basename "$bin"): online: RSS MB every 0.5 s: ${samples[*]}; $timing; offline export: $offline"
    rm -rf "$dir"
}

[[ -z "${BASELINE_RELAY_BIN:-}" ]] || run "$BASELINE_RELAY_BIN"
run "$ROOT/target/release/gun-relay"
