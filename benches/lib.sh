# Shared by the relay benchmark scripts (durable.sh, relay-memory.sh); sourced
# after they set ROOT. Moves into the shared drivers' folder with their node
# dependencies on NODE_PATH, builds the release gun-relay (RELAY_BIN), and
# defines `stop`, which stops the relay whose PID is in $PID (SIGTERM, then
# SIGKILL after 30 s).
BENCH="${GUN_BENCH_KIT:-$ROOT/../shared/bench}"
# A bare clone has no shared drivers (they sit beside the repo): say so and stop
# without failing, before building anything.
if [[ ! -f "$BENCH/lib/deps.sh" ]]; then
    echo "SKIPPED: $(basename "$0"): ../shared/bench not found (CI has it)"
    exit 0
fi
cd "$BENCH"
# shellcheck disable=SC1091
source lib/deps.sh
NODE_PATH="$(gun_interop_deps "$PWD")/node_modules"
export NODE_PATH

# Built from the repository (not with --manifest-path from here): cargo reads
# .cargo/config.toml (the allocator's build settings) from the current directory.
(cd "$ROOT" && cargo build --release -p gun-relay) >&2
RELAY_BIN="$ROOT/target/release/gun-relay"
# The load drivers are many connections from one address sending as fast as
# they can: the public-relay limits (per-IP connections, messages per second)
# would measure the limits, not the relay. Variables, so that older builds
# without these flags ignore them.
export GUN_RELAY_MAX_CONNECTIONS_PER_IP=0 GUN_RELAY_MAX_MESSAGES_PER_SEC=0

PID=
stop() {
    [[ -n "$PID" ]] || return 0
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
}
