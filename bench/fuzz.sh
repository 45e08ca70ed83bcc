#!/usr/bin/env bash
# Runs each cargo-fuzz target in fuzz/ for a bounded time (SECURITY.md
# records the runs). Needs a nightly toolchain; installs cargo-fuzz if it is
# missing; skips with a message when there is no nightly.
# Usage: bench/fuzz.sh [SECONDS per target, default 60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(link_messages admission inputs)

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "skipped: no nightly toolchain (rustup toolchain install nightly), which cargo-fuzz needs"
    exit 0
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
for t in "${TARGETS[@]}"; do
    echo "==> $t for ${SECS}s"
    # -rss_limit_mb: an input that makes a decoder allocate without bound
    # is a finding too.
    log=$(mktemp)
    status=0
    cargo +nightly fuzz run "$t" -- -max_total_time="$SECS" -rss_limit_mb=2048 > "$log" 2>&1 || status=$?
    grep -E "^(#[0-9]+ *DONE|Done [0-9]+ runs|==[0-9]+==|SUMMARY|Test unit written)" "$log" || true
    rm -f "$log"
    if [ "$status" -ne 0 ]; then
        echo "$t: FAILED (exit $status); the crashing input is under fuzz/artifacts/$t/"
        exit 1
    fi
    echo "$t: no crash in ${SECS}s"
done
