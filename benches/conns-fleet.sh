#!/usr/bin/env bash
# Many connections past one process's file descriptor limit (issue 15): a fleet
# of RELAYS gun-relay processes on one machine holds CONNS clients between them.
#
#   bash benches/conns-fleet.sh                    # CONNS=100000 RELAYS=6
#   CONNS=30000 RELAYS=2 bash benches/conns-fleet.sh
#
# Relay 0 listens on PORT; relays 1.. listen on PORT+1.. and dial relay 0
# (`--peer`), so a write through relay 0 reaches the others as from a full peer
# and each pushes it to its own subscribers. One gun-load instance per relay
# opens CONNS/RELAYS clients to it (all instances at once, over 8 127.0.0.x
# source addresses), each subscribed to a soul of its own and to one soul shared
# by every client of the fleet (same --run-id). When every instance is quiet,
# the instance on relay 0 writes the shared soul once; every client records when
# the write reaches it (the instances meet in a directory: --sync-dir).
#
# Reported: per relay, gun-load's RESULT line; for the fleet, clients connected,
# the fleet's accept rate (clients / the slowest instance's connect time), the
# relays' RSS per connection (sum of their growth / clients), forwarded gets per
# client, and the fan-out p50/p99/max over every client of every relay.
#
# Why a fleet: one process can hold at most RLIMIT_NOFILE sockets. Where the hard
# limit cannot be raised (a container without CAP_SYS_RESOURCE: 20,000 here),
# 100,000 clients need several relays (and several load processes).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONNS="${CONNS:-100000}"
RELAYS="${RELAYS:-6}"
PORT="${PORT:-23765}"
SOURCES="${SOURCES:-8}"
OUT="${OUT:-${TMPDIR:-/tmp}/gun-rs-conns-fleet/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
cargo build --release -p gun-relay -p gun-load --manifest-path "$ROOT/Cargo.toml" >&2
RELAY_BIN="${RELAY_BIN:-$ROOT/target/release/gun-relay}"
LOAD_BIN="$ROOT/target/release/gun-load"
export GUN_RELAY_MAX_CONNECTIONS_PER_IP=0 GUN_RELAY_MAX_MESSAGES_PER_SEC=0

PER=$(((CONNS + RELAYS - 1) / RELAYS))
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
nofile="$(ulimit -Sn)"
echo "=== fleet: $RELAYS relays x $PER clients (RLIMIT_NOFILE soft $nofile, hard $(ulimit -Hn))"
if ((PER + 1024 > nofile)); then
    echo "error: $PER clients per process need RLIMIT_NOFILE >= $((PER + 1024)); use more RELAYS" >&2
    exit 2
fi
sysctl -qw net.ipv4.tcp_max_syn_backlog=4096 2>/dev/null || true

PIDS=()
LOADS=()
cleanup() {
    for p in "${LOADS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${LOADS[@]}" "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

ready() {
    local port="$1" log="$2"
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "relay on $port did not start; log:" >&2
    tail -20 "$log" >&2
    return 1
}

for i in $(seq 0 $((RELAYS - 1))); do
    port=$((PORT + i))
    peer=()
    ((i == 0)) || peer=(--peer "ws://127.0.0.1:$PORT/gun")
    "$RELAY_BIN" --log warn --port "$port" --store memory \
        --max-connections $((PER + RELAYS + 100)) "${peer[@]}" >"$OUT/relay$i.log" 2>&1 &
    PIDS+=($!)
    ready "$port" "$OUT/relay$i.log"
done
# Let the relays' links to relay 0 come up.
sleep 2

RUN_ID="fleet$(date +%s)"
SYNC="$OUT/sync"
mkdir -p "$SYNC"
for i in $(seq 0 $((RELAYS - 1))); do
    role=()
    ((i == 0)) || role=(--follower)
    "$LOAD_BIN" --url "ws://127.0.0.1:$((PORT + i))/gun" --conns "$PER" --sources "$SOURCES" \
        --relay-pid "${PIDS[$i]}" --label "relay$i" --run-id "$RUN_ID" --sync-dir "$SYNC" \
        --instances "$RELAYS" --stall-secs 60 --block "$((PER / 4 > 0 ? PER / 4 : 1))" \
        --settle-max-secs 180 "${role[@]}" >"$OUT/load$i.result" 2>"$OUT/load$i.log" &
    LOADS+=($!)
done
status=0
for p in "${LOADS[@]}"; do wait "$p" || status=1; done
LOADS=()
for i in $(seq 0 $((RELAYS - 1))); do
    echo "--- relay $i"
    tail -3 "$OUT/load$i.log"
    grep '^RESULT' "$OUT/load$i.result" || { echo "no result (see $OUT/load$i.log)"; status=1; }
done
python3 - "$OUT" "$RELAYS" <<'EOF'
import json, sys, os
out, n = sys.argv[1], int(sys.argv[2])
rs = []
for i in range(n):
    for line in open(os.path.join(out, f"load{i}.result")):
        if line.startswith("RESULT "):
            rs.append(json.loads(line[7:]))
arr = []
for i in range(n):
    f = os.path.join(out, "sync", f"arrivals.relay{i}")
    if os.path.exists(f):
        arr += [int(x) for x in open(f).read().split()]
arr.sort()
def pct(p):
    if not arr: return None
    k = max(1, min(len(arr), -(-len(arr) * p // 1))) - 1
    return round(arr[int(k)] / 1000, 1)
conns = sum(r["connected"] for r in rs)
open_at = sum(r["fanout"]["openAtWrite"] for r in rs)
grow = sum((r["rssIdleMB"] or 0) - (r["rssStartMB"] or 0) for r in rs)
slowest = max(r["connectSecs"] for r in rs)
print("FLEET " + json.dumps({
    "relays": n,
    "connected": conns,
    "failed": sum(r["failed"] for r in rs),
    "acceptPerSec": round(conns / max(slowest, 0.001)),
    "connectSecsSlowest": slowest,
    "relayRssStartMB": round(sum(r["rssStartMB"] or 0 for r in rs), 1),
    "relayRssIdleMB": round(sum(r["rssIdleMB"] or 0 for r in rs), 1),
    "rssPerConnBytes": round(grow * 1024 * 1024 / max(conns, 1)),
    "forwardedGetsPerClient": round(sum(r["forwardedGets"] for r in rs) / max(conns, 1), 2),
    "fanout": {"openAtWrite": open_at, "reached": len(arr),
               "p50ms": pct(0.5), "p99ms": pct(0.99), "maxMs": (round(arr[-1] / 1000, 1) if arr else None)},
}))
EOF
echo "results in $OUT"
exit $status
