#!/usr/bin/env bash
# W_NOOP_1M (noop over [0, 1,000,000), no state file) with two binaries, in
# ABBA order (A B B A, PAIRS times) so a drift in the shared machine's speed
# falls on both: each run starts a fresh coordinator and one worker
# (--procs 1 --threads 2 --async 256), runs the job on thread and on async
# slots, checks all 1,000,000 results (value == index) and prints the job's
# own wall, submit -> results checked, and the coordinator's peak RSS; then
# the medians per binary and model and B/A ratios. STATE=1: the coordinator
# keeps a state file (a fresh one per run), as `brigade up` does.
# Usage: [STATE=1] bench/noop-abba.sh BIN_A BIN_B [PAIRS]
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/noop-abba.sh BIN_A BIN_B [PAIRS]}
B=${2:?usage: bench/noop-abba.sh BIN_A BIN_B [PAIRS]}
PAIRS=${3:-5}
PORT=${PORT:-7731}
URL=http://127.0.0.1:$PORT
N=1000000
OUT=$(mktemp)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; rm -f "$OUT"' EXIT
now() { date +%s.%N; }

run() { # $1 = label (A|B), $2 = binary
  local bin=$2
  local state=()
  if [ "${STATE:-0}" = 1 ]; then rm -f /tmp/noop-abba.db*; state=(--state /tmp/noop-abba.db); fi
  "$bin" coordinator --listen 127.0.0.1:$PORT "${state[@]}" > /tmp/noop-abba.c.log 2>&1 & local C=$!
  PIDS=("$C")
  for _ in $(seq 1 300); do "$bin" status --coordinator $URL > /dev/null 2>&1 && break; sleep 0.05; done
  "$bin" worker --coordinator $URL --procs 1 --threads 2 --async 256 > /tmp/noop-abba.w.log 2>&1 & local W=$!
  PIDS+=("$W")
  for _ in $(seq 1 300); do
    "$bin" workers --coordinator $URL --format json 2>/dev/null | grep -q worker_id && break; sleep 0.05
  done
  local job=0
  for model in thread async; do
    local t0 t1 ok wall
    t0=$(now)
    "$bin" submit noop --range "0..$N" --model $model --wait --coordinator $URL > /tmp/noop-abba.s.log 2>&1 ||
      { cat /tmp/noop-abba.s.log >&2; exit 1; }
    job=$((job + 1))
    ok=$("$bin" results $job --format csv --coordinator $URL | awk -F, 'NR > 1 && $1 == $2 {n++} END {print n + 0}')
    t1=$(now)
    [ "$ok" = "$N" ] || { echo "$1 job $job: only $ok of $N results correct" >&2; exit 1; }
    wall=$("$bin" job $job --format json --coordinator $URL | tr ',' '\n' | awk -F: '/"wall_s"/ {print $2}')
    echo "$1 $model $wall $(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}') $(awk '$1 == "VmHWM:" {print $2}' /proc/$C/status)" | tee -a "$OUT"
  done
  cleanup; PIDS=()
}

echo "label model job_wall_s submit_to_checked_s coordinator_peak_kb"
for _ in $(seq 1 "$PAIRS"); do
  run A "$A"; run B "$B"; run B "$B"; run A "$A"
done
echo
echo "medians over $((2 * PAIRS)) runs each (A = $A, B = $B):"
for model in thread async; do
  for col in 3 4 5; do
    for l in A B; do
      awk -v l=$l -v m=$model -v c=$col '$1 == l && $2 == m {print $c}' "$OUT" | sort -g |
        awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}' > "$OUT.$l"
    done
    name=$(echo "job_wall_s submit_to_checked_s coordinator_peak_kb" | cut -d' ' -f$((col - 2)))
    echo "$model $name: A $(cat "$OUT.A")  B $(cat "$OUT.B")  B/A $(awk -v a="$(cat "$OUT.A")" -v b="$(cat "$OUT.B")" 'BEGIN {printf "%.3f", b / a}')"
  done
done
rm -f "$OUT.A" "$OUT.B"
