#!/usr/bin/env bash
# Many connections (issue 15): gun-relay and a genuine Gun.js relay in the same run,
# each loaded by gun-load (crates/gun-load): N raw Gun wire clients spread over
# several 127.0.0.x source addresses, each subscribed to one soul of its own and
# one shared soul, then one write to the shared soul. Reports per relay: clients
# connected, accept rate per block, relay RSS per connection (VmRSS), forwarded
# gets per client, fan-out p50/p99 (one RESULT JSON line each).
#
#   bash benches/conns.sh                          # CONNS=100000 RELAYS="gun-rs gunjs"
#   CONNS=20000 RELAYS=gun-rs bash benches/conns.sh
#   SETTLE_SECS=12 CONNS=9000 RELAYS=gun-rs bash benches/conns.sh   # RSS after the dedup window
#
# Both relays keep data in memory (gun-relay --store memory, Gun.js radisk off):
# this measures connections, not storage. Gun.js is given GUNJS_MAX_SECS (default
# 300) to accept its clients and is stopped earlier when no connection completes
# for 60 s; what it reached is reported.
#
# Kernel and process limits: the script raises what it can (it may run as root)
# and says what it could not; it never fails for that. A process needs one file
# descriptor per connection: when the hard RLIMIT_NOFILE cannot be raised to
# CONNS (a container without CAP_SYS_RESOURCE), the run uses as many connections
# as the limit allows and says so.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONNS="${CONNS:-100000}"
RELAYS="${RELAYS:-gun-rs gunjs}"
SOURCES="${SOURCES:-8}"
# Accept rate is reported per BLOCK connections.
BLOCK="${BLOCK:-10000}"
# Outside the ephemeral port range: a port some client socket holds in TIME_WAIT
# cannot be bound.
PORT="${PORT:-22765}"
GUNJS_MAX_SECS="${GUNJS_MAX_SECS:-300}"
# Quiet seconds (no frame but keep-alives) before RSS is read: 3 by default; 12 reads it
# after the relay's 9 s dedup window, when the gets' routes have expired.
SETTLE_SECS="${SETTLE_SECS:-3}"
OUT="${OUT:-${TMPDIR:-/tmp}/gun-rs-conns/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"
(cd "$ROOT" && cargo build --release -p gun-load) >&2
LOAD_BIN="$ROOT/target/release/gun-load"
trap stop EXIT

echo "=== limits"
# sysctl NAME MIN: raise NAME to MIN if it is lower; say what it is.
want_sysctl() {
    local name="$1" min="$2" cur
    cur="$(sysctl -n "$name" 2>/dev/null || echo "?")"
    if [[ "$cur" =~ ^[0-9]+$ ]] && ((cur < min)); then
        if sysctl -qw "$name=$min" 2>/dev/null; then
            echo "$name: raised $cur -> $min"
        else
            echo "$name: $cur (wanted >= $min; cannot set it here)"
        fi
    else
        echo "$name: $cur"
    fi
}
want_sysctl net.core.somaxconn 4096
want_sysctl net.ipv4.tcp_max_syn_backlog 4096
want_sysctl fs.file-max $((4 * CONNS))
want_sysctl fs.nr_open $((CONNS + 4096))
echo "net.ipv4.ip_local_port_range: $(sysctl -n net.ipv4.ip_local_port_range 2>/dev/null | tr '\t' ' ')" \
    "(per source address; clients use $SOURCES sources)"
need=$((CONNS + 1024))
if (($(ulimit -Hn) < need)); then
    ulimit -Hn "$need" 2>/dev/null || true
fi
if (($(ulimit -Sn) < need)); then
    ulimit -Sn "$(($(ulimit -Hn) < need ? $(ulimit -Hn) : need))" 2>/dev/null || true
fi
nofile="$(ulimit -Sn)"
echo "RLIMIT_NOFILE: soft $nofile, hard $(ulimit -Hn)"
RUN_CONNS="$CONNS"
if ((nofile < need)); then
    RUN_CONNS=$((nofile - 1024))
    echo "NOTE: the file descriptor limit ($nofile) cannot be raised to $need here:" \
        "running $RUN_CONNS connections instead of $CONNS"
fi

ready() {
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "relay did not start; log:" >&2
    tail -20 "$1" >&2
    return 1
}

for relay in $RELAYS; do
    case "$relay" in
        gun-rs)
            echo "=== gun-relay: $RUN_CONNS clients"
            "$RELAY_BIN" --log warn --port "$PORT" --store memory \
                --max-connections $((RUN_CONNS + 100)) >"$OUT/gun-rs.log" 2>&1 &
            PID=$!
            ready "$OUT/gun-rs.log"
            "$LOAD_BIN" --url "ws://127.0.0.1:$PORT/gun" --conns "$RUN_CONNS" --sources "$SOURCES" \
                --relay-pid "$PID" --label gun-relay --stall-secs 60 --block "$BLOCK" \
                --settle-secs "$SETTLE_SECS" \
                | tee "$OUT/gun-rs.result"
            ;;
        gunjs)
            echo "=== genuine Gun.js relay: up to $RUN_CONNS clients, at most ${GUNJS_MAX_SECS}s to connect"
            mkdir -p "$OUT/gunjs-data"
            node relay.js --port "$PORT" --radisk false --dir "$OUT/gunjs-data" >"$OUT/gunjs.log" 2>&1 &
            PID=$!
            ready "$OUT/gunjs.log"
            "$LOAD_BIN" --url "ws://127.0.0.1:$PORT/gun" --conns "$RUN_CONNS" --sources "$SOURCES" \
                --relay-pid "$PID" --label gunjs --stall-secs 60 --block "$BLOCK" \
                --settle-secs "$SETTLE_SECS" \
                --max-connect-secs "$GUNJS_MAX_SECS" --settle-max-secs 60 \
                | tee "$OUT/gunjs.result"
            ;;
        *)
            echo "unknown relay $relay (gun-rs, gunjs)" >&2
            exit 2
            ;;
    esac
    stop
done
echo "results in $OUT"
