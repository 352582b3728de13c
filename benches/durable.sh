#!/usr/bin/env bash
# Durable storage: cold start and disk bytes per node, gun-relay (sled, file)
# and genuine Gun.js (radisk) side by side in one run (no timed assertions;
# numbers only):
#
#   bash benches/durable.sh              # NODES=100000 REPS=5 RELAYS="gunjs sled file"
#
# For each relay, on an empty data dir:
#  1. load NODES 10-field nodes with the shared driver
#     (../shared/bench/coldread.js load: 4 connections, 2,000 puts in flight,
#     every put acked; souls cold/00000000 …);
#  2. stop it (SIGTERM; Gun.js 3 s after the last ack, as shared/bench does, so
#     radisk's 250 ms write batches are on disk), then measure the data dir:
#     apparent bytes (du -sb) and allocated bytes (du -s), per node;
#  3. cold start, REPS times each: spawn the relay and time until the reply to
#     a get for a stored soul (a different random one each time) carried all
#     10 fields; "listen" is until its WebSocket accepted. Twice: with the data
#     files in the page cache ("warm"), and with them evicted first ("evicted",
#     posix_fadvise DONTNEED on every file of the data dir only, so nothing else
#     on the machine is touched: the relay then reads from the device).
# Prints one JSON line per measurement and a table (medians, [min-max]).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NODES="${NODES:-100000}"
REPS="${REPS:-5}"
RELAYS="${RELAYS:-gunjs sled file}"
PORT="${PORT:-37260}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gun-rs-durable.XXXXXX")"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
trap 'stop; rm -rf "$WORK"' EXIT

# The command that runs relay $1 on data dir $2.
relay_cmd() {
    case "$1" in
        gunjs) echo node "$BENCH/relay.js" --port "$PORT" --radisk true --dir "$2" ;;
        sled | file) echo "$RELAY_BIN" --log warn --port "$PORT" --data "$2" --store "$1" ;;
    esac
}

wait_port() {
    for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0; sleep 0.1; done
    echo "relay did not listen on $PORT" >&2
    return 1
}

# Evicts the page cache of every file under $1 (fsync first: only clean pages go).
evict() {
    python3 - "$1" <<'PY'
import os, sys
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        p = os.path.join(root, f)
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
PY
}

# One cold start: spawns the relay, times the first get of a stored soul.
cat >"$WORK/coldstart.js" <<'JS'
'use strict';
const { spawn } = require('child_process');
const WebSocket = require('ws');
const [port, soul, fields, ...cmd] = process.argv.slice(2);
const F = Number(fields);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function connect(url) {
  return new Promise((res) => {
    const ws = new WebSocket(url);
    ws.once('open', () => res(ws));
    ws.once('error', () => res(null));
  });
}
function parse(d) {
  try { const v = JSON.parse(d.toString()); return Array.isArray(v) ? v : [v]; } catch (e) { return []; }
}
(async () => {
  const t0 = now();
  const child = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  let ws = null;
  while (!ws) {
    if (now() - t0 > 120000) throw new Error('relay did not accept a connection in 120 s');
    ws = await connect(`ws://127.0.0.1:${port}/gun`);
    if (!ws) await sleep(2);
  }
  const tOpen = now();
  const id = 'cs' + Math.random().toString(36).slice(2) + 'x';
  const got = new Set();
  const ok = await new Promise((res) => {
    const timer = setTimeout(() => res(false), 30000);
    ws.on('message', (d) => {
      for (const m of parse(d)) {
        if (m['@'] !== id) continue;
        const n = m.put && m.put[soul];
        if (n) for (const k of Object.keys(n)) if (k !== '_') got.add(k);
        if (got.size >= F) { clearTimeout(timer); res(true); }
      }
    });
    ws.send(JSON.stringify({ '#': id, get: { '#': soul } }));
  });
  const tData = now();
  ws.terminate();
  child.kill('SIGTERM');
  await exited;
  console.log(JSON.stringify({ listenMs: +(tOpen - t0).toFixed(1), firstGetMs: +(tData - t0).toFixed(1), fields: got.size, ok }));
  process.exit(0);
})().catch((e) => { console.error(e.message); process.exit(2); });
JS

RESULTS="$WORK/results.jsonl"
: >"$RESULTS"
for relay in $RELAYS; do
    dir="$WORK/$relay"
    echo "== $relay: loading $NODES nodes" >&2
    # shellcheck disable=SC2046
    $(relay_cmd "$relay" "$dir") >>"$WORK/$relay.log" 2>&1 &
    PID=$!
    wait_port
    sleep 0.3
    t0=$(date +%s.%N)
    load="$(node coldread.js load --url "ws://127.0.0.1:$PORT/gun" --nodes "$NODES" --window 2000 | grep '^RESULT' | sed 's/^RESULT //' || echo null)"
    t1=$(date +%s.%N)
    [[ "$relay" == gunjs ]] && sleep 3
    stop
    sync
    apparent="$(du -sb "$dir" | cut -f1)"
    allocated="$(du -s --block-size=1 "$dir" | cut -f1)"
    files="$(find "$dir" -type f | wc -l)"
    printf '{"relay":"%s","measure":"disk","nodes":%s,"loadSecs":%.1f,"apparentBytes":%s,"allocatedBytes":%s,"files":%s,"apparentPerNode":%d,"allocatedPerNode":%d,"load":%s}\n' \
        "$relay" "$NODES" "$(echo "$t1 - $t0" | bc)" "$apparent" "$allocated" "$files" \
        $((apparent / NODES)) $((allocated / NODES)) "${load:-null}" | tee -a "$RESULTS"
    for cache in warm evicted; do
        for rep in $(seq 1 "$REPS"); do
            i=$(( (rep * 7919 + ${#relay} * 104729 + ${#cache} * 1299709) % NODES ))
            soul="$(printf 'cold/%08d' "$i")"
            [[ "$cache" == evicted ]] && evict "$dir"
            # shellcheck disable=SC2046
            r="$(node "$WORK/coldstart.js" "$PORT" "$soul" 10 $(relay_cmd "$relay" "$dir") 2>>"$WORK/$relay.log" || echo '{"ok":false}')"
            printf '{"relay":"%s","measure":"coldstart","cache":"%s","rep":%s,"soul":"%s","result":%s}\n' \
                "$relay" "$cache" "$rep" "$soul" "$r" | tee -a "$RESULTS"
        done
    done
done

echo
echo "disk per node ($NODES nodes of 10 fields, ~470-byte put frames):"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
for (const r of rows.filter((r) => r.measure === "disk"))
  console.log(`  ${r.relay.padEnd(6)} ${String(r.apparentPerNode).padStart(5)} B/node apparent, ${String(r.allocatedPerNode).padStart(5)} B/node allocated, ${r.files} files; load ${r.loadSecs} s (${r.load ? Math.round(r.load.putsPerSec) : "?"} acked puts/s)`);
console.log("cold start, process spawn -> first get answered with all 10 fields (median [min-max] ms):");
for (const relay of [...new Set(rows.map((r) => r.relay))]) {
  for (const cache of ["warm", "evicted"]) {
    const c = rows.filter((r) => r.relay === relay && r.measure === "coldstart" && r.cache === cache);
    const ok = c.filter((r) => r.result.ok);
    if (!c.length) continue;
    const g = ok.map((r) => r.result.firstGetMs), l = ok.map((r) => r.result.listenMs);
    console.log(`  ${relay.padEnd(6)} ${cache.padEnd(8)} first get ${med(g)} [${Math.min(...g)}-${Math.max(...g)}]  listen ${med(l)} [${Math.min(...l)}-${Math.max(...l)}]  ok ${ok.length}/${c.length}`);
  }
}
' "$RESULTS"
cp "$RESULTS" "${OUT:-${TMPDIR:-/tmp}}/durable-results.jsonl" 2>/dev/null || true
