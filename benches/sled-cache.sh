#!/usr/bin/env bash
# sled's page cache against the relay's memory and durable write rate (no timed
# assertions; numbers only):
#
#   bash benches/sled-cache.sh                 # SECS=40 SIZES="128 256 512 0" ORDER="random sequential"
#
# For each cache size (MiB, 0 = sled's own 1 GiB) and each soul order, one
# gun-relay on an empty sled store takes SECS seconds of the shared driver's
# durable load (../shared/bench/wsload.js: 4 connections x 256 puts in flight,
# 10-field nodes, every put acked):
#   sequential: wsload.js as it is (each connection writes ascending souls, so
#               sled only ever touches the right edge of its tree);
#   random:     the same driver with 6 random characters put before each
#               soul's counter (a copy made here with sed), so writes land all
#               over the tree, as the random souls of Gun.js apps do, and the
#               tree outgrows the cache.
# Prints the acks of every 4 s (the rate falls as the tree outgrows the cache),
# then the run's acks/s, relay CPU and peak RSS.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${SECS:-40}"
SIZES="${SIZES:-128 256 512 0}"
ORDER="${ORDER:-random sequential}"
PORT="${PORT:-37270}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gun-rs-sled-cache.XXXXXX")"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
trap 'stop; rm -rf "$WORK"' EXIT

# The random-soul driver: wsload.js with its souls prefixed by random text.
sed -e "s#require('./lib/#require('$BENCH/lib/#g" \
    -e "s#const soul = 'bench/' + prefix#const soul = 'bench/' + C.randStr(6) + prefix#" \
    "$BENCH/wsload.js" >"$WORK/wsrand.js"
grep -q "C.randStr(6) + prefix" "$WORK/wsrand.js" || {
    echo "sled-cache.sh: wsload.js changed; cannot make the random-soul driver" >&2
    exit 1
}

acks() {
    curl -s "http://127.0.0.1:$PORT/stats" | node -e \
        'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).now.acks_out))'
}

for order in $ORDER; do
    driver="$BENCH/wsload.js"
    [[ "$order" == random ]] && driver="$WORK/wsrand.js"
    for mb in $SIZES; do
        rm -rf "$WORK/data"
        "$RELAY_BIN" --log warn --port "$PORT" --data "$WORK/data" --store sled --sled-cache-mb "$mb" >/dev/null 2>&1 &
        PID=$!
        for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
        node "$driver" --url "ws://127.0.0.1:$PORT/gun" --clients 4 --window 256 --secs "$SECS" \
            --warmup 1 --mode ack --relay-pid "$PID" >"$WORK/result.txt" &
        load=$!
        prev=0
        steps=""
        for _ in $(seq 1 $((SECS / 4))); do
            sleep 4
            now=$(acks)
            steps="$steps $(((now - prev) / 4000))k"
            prev=$now
        done
        wait "$load"
        result=$(grep '^RESULT ' "$WORK/result.txt" | sed 's/^RESULT //')
        summary=$(node -e 'const r=JSON.parse(process.argv[1]); console.log(`acks/s ${Math.round(r.opsPerSec)}, relay CPU ${Math.round(r.relay.cpuPct)} %, RSS max ${Math.round(r.relay.rssMaxMB)} MB`)' "$result")
        echo "$order souls, --sled-cache-mb $mb: every 4 s:$steps | $summary"
        stop
    done
done
