#!/usr/bin/env bash
# The project's single test command (the README points here):
#
#     bash scripts/test.sh
#
# Sections run in order and stop at the first failure. Each section prints
# what it runs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

section() { printf '\n=== %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

# --- 1. Node dependencies for interop/ (Gun.js reference peers) --------------
section "npm dependencies (interop/)"
if [[ ! -f interop/package.json || ! -f interop/package-lock.json ]]; then
    echo "error: interop/package.json and interop/package-lock.json are required" >&2
    echo "       (the Gun.js interop harness); one of them is missing." >&2
    exit 1
fi
# npm ci writes node_modules/.package-lock.json; reinstall when it is absent or
# older than the committed lockfile.
if [[ ! -f interop/node_modules/.package-lock.json \
    || interop/package-lock.json -nt interop/node_modules/.package-lock.json ]]; then
    run npm ci --prefix interop --no-audit --no-fund
else
    echo "interop/node_modules is up to date with interop/package-lock.json"
fi

# --- 1b. PostgreSQL: gun-store-postgres and relay fleets on it -----------------
# Installs Debian's `postgresql` package when its server binaries are absent
# (like Chromium below), then runs the store's tests (the conformance suite, HAM
# ties against gun-ham, the change feed, a lost database) and the relay tests
# on PostgreSQL (a two-relay fleet, a 10 s database outage, a database restart,
# the Jepsen-style 3-relay fleet with SIGKILLs). Each test binary starts its own
# throw-away server (initdb into a temp dir as the `postgres` user, a free
# loopback port); with CI=true a missing PostgreSQL fails them instead of
# skipping. Section 2 leaves these out (--exclude / the postgres-tests feature).
section "PostgreSQL (gun-store-postgres, relay fleets)"
pg_bin_found() {
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}
if ! pg_bin_found; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        run apt-get update
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql
    fi
    if ! pg_bin_found; then
        echo "error: the PostgreSQL tests need Debian's postgresql package (initdb, pg_ctl), and it" >&2
        echo "       could not be installed (needs root and apt-get). Install it with:" >&2
        echo "         apt-get install -y postgresql" >&2
        exit 1
    fi
fi
run cargo test -p gun-store-postgres --all-targets
run cargo test -p gun-relay --features postgres-tests --test postgres

# --- 2. Rust unit, integration, example and bench-as-test targets ------------
section "cargo test (all targets)"
# The examples are run as binaries by crates/gun/tests/examples.rs (and the
# README's program, examples/quickstart.rs, by crates/gun/tests/readme.rs):
# build them as such (test builds of examples are not). The `webrtc` example is
# built and run in the WebRTC section.
run cargo build -p gun --examples --features server
run cargo test --workspace --all-targets --exclude gun-store-postgres

# --- 3. Rust doctests (not covered by --all-targets) -------------------------
section "cargo test (doctests)"
run cargo test --workspace --doc

# --- 3b. WebRTC (gun-net-webrtc; its `webrtc` feature is off by default) -------
# Unit tests of the signalling, the two-process test (two gun-rtc-peer processes
# meet through the gun-relay binary built above, connect over loopback, the
# relay is killed, writes still flow), and the facade's `webrtc` option.
section "WebRTC transport (features gun-rtc-peer/webrtc, gun/webrtc)"
run cargo build -p gun-relay
run cargo test -p gun-net-webrtc --features webrtc --all-targets
run cargo test -p gun-rtc-peer --features webrtc --all-targets
run cargo test -p gun --features webrtc --test webrtc
run cargo build -p gun --features webrtc,server --example webrtc
run cargo test -p gun --features webrtc,server --test examples webrtc

# --- 3c. deploy/gun-relay.service: systemd-analyze verify --------------------
# The unit's ExecStart is /usr/local/bin/gun-relay, which verify needs to exist:
# a copy whose ExecStart is the gun-relay built above is verified instead.
section "systemd unit (deploy/gun-relay.service)"
if command -v systemd-analyze >/dev/null 2>&1; then
    relay_bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/gun-relay"
    unit_dir="$(mktemp -d)"
    sed "s|^ExecStart=/usr/local/bin/gun-relay|ExecStart=$relay_bin|" \
        deploy/gun-relay.service >"$unit_dir/gun-relay.service"
    if ! grep -qxF "ExecStart=$relay_bin" "$unit_dir/gun-relay.service"; then
        echo "error: deploy/gun-relay.service has no ExecStart=/usr/local/bin/gun-relay line" >&2
        exit 1
    fi
    # verify exits 0 on mere warnings (an unknown key, a bad value ignored):
    # any line about our unit fails the check too.
    printf '+ systemd-analyze verify %s\n' "$unit_dir/gun-relay.service"
    verify_rc=0
    verify_out="$(systemd-analyze verify "$unit_dir/gun-relay.service" 2>&1)" || verify_rc=$?
    [[ -n "$verify_out" ]] && printf '%s\n' "$verify_out"
    rm -rf "$unit_dir"
    if [[ $verify_rc != 0 ]] || grep -q 'gun-relay\.service' <<<"$verify_out"; then
        echo "error: systemd-analyze verify found problems in deploy/gun-relay.service" >&2
        exit 1
    fi
else
    echo "SKIPPED: systemd-analyze not available"
fi

# --- 4. Wire interop of gun-relay with genuine Gun.js --------------------------
# The shared conformance kit against gun-relay (sled and file stores) and our
# node tests in interop/relay/ (about a minute and a half). --no-build expects
# the debug gun-relay binary, the gun-interop-peer test harness
# and gun-rtc-peer, built here. Without ../shared/interop (a bare clone) the
# parts that need it print SKIPPED and the rest runs.
section "relay interop with Gun.js (scripts/relay-interop.sh)"
run cargo build -p gun-relay
run cargo build -p gun-interop-peer
run cargo build -p gun-rtc-peer --features webrtc --bin gun-rtc-peer
run bash scripts/relay-interop.sh --no-build

# --- 5. Browser tests: examples/web-chat in headless Chromium --------------------
# Genuine Gun.js + SEA in Chromium (driven by playwright-core from interop/)
# against gun-relay --static examples/web-chat; see interop/browser/chat.test.js.
# And WebRTC: Gun.js pages with lib/webrtc.js and a gun-rs peer (gun-rtc-peer)
# connect through gun-relay, then talk with the relay stopped
# (interop/browser/webrtc.test.js).
# Screenshots go to target/browser-screenshots/.
section "browser tests (interop/browser/)"
if [[ ! -x /usr/bin/chromium ]]; then
    if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
        run apt-get update
        run env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends chromium chromium-driver
    fi
    if [[ ! -x /usr/bin/chromium ]]; then
        echo "error: the browser tests need Chromium at /usr/bin/chromium, and it could not be" >&2
        echo "       installed (needs root and apt-get). Install it with:" >&2
        echo "         apt-get install -y chromium chromium-driver" >&2
        exit 1
    fi
fi
run cargo build -p gun-relay
run cargo build -p gun-rtc-peer --features webrtc --bin gun-rtc-peer
run npm ci --prefix examples/web-chat --no-audit --no-fund
run node --test interop/browser/

section "scripts/test.sh: all sections passed"
