#!/usr/bin/env bash
# Fuzz smoke test: build every cargo-fuzz target in fuzz/ and run each one for
# ${FUZZ_SECONDS:-30} seconds. Fails on the first crash, panic or timeout and
# leaves the input that caused it in fuzz/artifacts/TARGET/.
#
# Needs cargo-fuzz (`cargo install --locked cargo-fuzz --version 0.13.2`).
# cargo-fuzz passes nightly-only flags (-Zsanitizer=address, sancov passes);
# only stable Rust is installed here, so RUSTC_BOOTSTRAP=1 lets stable accept them.
#
# Reproduce a failure:
#   cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/crash-...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
# Shared with the rest of the workspace's build output (one dir to cache/clean).
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-$ROOT/target/fuzz}"
TARGETS=(put_parse frame_parse merge_converge)

export RUSTC_BOOTSTRAP=1
cd "$ROOT/fuzz"

echo "+ cargo fuzz build (targets: ${TARGETS[*]})"
cargo fuzz build --target-dir "$FUZZ_TARGET_DIR"

mkdir -p "$FUZZ_TARGET_DIR/logs"
for t in "${TARGETS[@]}"; do
    # corpus/$t is the writable (git-ignored) corpus; seeds/$t, when present,
    # holds committed starting inputs; dicts/$t.dict the tokens of the format.
    corpora=("corpus/$t")
    mkdir -p "corpus/$t"
    [[ -d "seeds/$t" ]] && corpora+=("seeds/$t")
    opts=("-max_total_time=$FUZZ_SECONDS" -timeout=10 -print_final_stats=1)
    [[ -f "dicts/$t.dict" ]] && opts+=("-dict=dicts/$t.dict")

    log="$FUZZ_TARGET_DIR/logs/$t.log"
    echo "+ cargo fuzz run $t ${corpora[*]} -- ${opts[*]}   (log: $log)"
    if ! cargo fuzz run --target-dir "$FUZZ_TARGET_DIR" "$t" "${corpora[@]}" -- "${opts[@]}" >"$log" 2>&1; then
        tail -n 150 "$log"
        echo "FUZZ FAILURE in target '$t' (full log: $log; crashing input in fuzz/artifacts/$t/)" >&2
        exit 1
    fi
    grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" || true
done
echo "fuzz smoke: ${#TARGETS[@]} targets x ${FUZZ_SECONDS}s, no failure"
