#!/usr/bin/env bash
# Instructions the coordinator spends per task, counted by valgrind's
# callgrind (repeatable on a noisy machine): the coordinator runs under
# callgrind, one native worker (--procs 1 --threads 2 --async 0) and the
# client run a TASKS-task noop job on thread slots, then the same with a
# 1-task job; the difference divided by TASKS-1 is printed.
# Usage: cargo build --release && bench/coordinator-callgrind.sh [BIN] [TASKS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-./target/release/brigade}
N=${2:-200000}
PORT=${PORT:-7711}
URL=http://127.0.0.1:$PORT

count() { # $1 = tasks; prints the coordinator's instruction count
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$B" coordinator --listen 127.0.0.1:$PORT > "$out" 2>&1 &
  local C=$!
  for _ in $(seq 1 1200); do "$B" status --coordinator $URL > /dev/null 2>&1 && break; sleep 0.1; done
  "$B" worker --coordinator $URL --procs 1 --threads 2 --async 0 > /dev/null 2>&1 &
  local W=$!
  for _ in $(seq 1 1200); do
    "$B" workers --coordinator $URL --format json 2>/dev/null | grep -q worker_id && break; sleep 0.1
  done
  if ! "$B" submit noop --range "0..$1" --model thread --wait --coordinator $URL > /dev/null 2>&1; then
    echo "the $1-task job did not succeed (coordinator or worker not up in 120 s?)" >&2
    kill $W $C 2>/dev/null || true
    return 1
  fi
  kill $W; wait $W 2>/dev/null || true
  kill -TERM $C; wait $C 2>/dev/null || true
  awk '/Collected/ {print $4}' "$out"
  rm -f "$out"
}
base=$(count 1) || exit 1
full=$(count "$N") || exit 1
echo "coordinator: $full instructions for $N tasks, $base for 1: $(( (full - base) / (N - 1) )) per task"
