#!/usr/bin/env bash
# Issue 5's end-to-end throughput and memory figures, with real processes on
# 127.0.0.1 (release build; every run's results are checked):
#   1. W_NOOP_1M (noop over [0, 1,000,000)) and W_NOOP 20k, coordinator + 1
#      worker (--procs 1 --threads 2 --async 256), thread and async slots,
#      alternating, REPS times: wall from `submit` to every result checked in
#      the client (`brigade results`), and the job's own wall time;
#   2. peak RSS (VmHWM) of coordinator + 2 workers (default slots) running
#      W_NOOP 20k on thread and on async slots, with and without the idle
#      executor children the workers keep for process tasks;
#   3. coordinator memory per queued task: a 10,000,000-task noop job
#      submitted with no worker attached (RSS after minus before).
# Usage: cargo build --release && bench/throughput.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-./target/release/brigade}
REPS=${1:-3}
PORT=${PORT:-7701}
URL=http://127.0.0.1:$PORT
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

now() { date +%s.%N; }
wait_workers() { # $1 = count
  for _ in $(seq 1 100); do
    [ "$($B workers --coordinator $URL --format json 2>/dev/null | grep -o '"worker_id"' | wc -l)" -ge "$1" ] && return 0
    sleep 0.1
  done
  echo "workers did not join" >&2; exit 1
}
start_coordinator() {
  $B coordinator --listen 127.0.0.1:$PORT > /tmp/brigade-throughput.c.log 2>&1 &
  C=$!; PIDS+=("$C")
  for _ in $(seq 1 100); do $B status --coordinator $URL >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "coordinator did not start" >&2; exit 1
}
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
# The job's results in the client, checked: noop returns the task's index.
check_results() { # $1 = job id, $2 = tasks
  local ok
  ok=$($B results "$1" --format csv --coordinator $URL | awk -F, 'NR > 1 && $1 == $2 {n++} END {print n + 0}')
  [ "$ok" = "$2" ] || { echo "job $1: only $ok of $2 results correct" >&2; exit 1; }
}
job_wall() { $B job "$1" --format json --coordinator $URL | tr ',' '\n' | awk -F: '/"wall_s"/ {print $2}'; }

echo "## 1. end-to-end throughput (coordinator + 1 worker: --procs 1 --threads 2 --async 256)"
start_coordinator
$B worker --coordinator $URL --procs 1 --threads 2 --async 256 > /tmp/brigade-throughput.w.log 2>&1 &
W=$!; PIDS+=("$W")
wait_workers 1
job=0
for tasks in 1000000 20000; do
  for rep in $(seq 1 "$REPS"); do
    for model in thread async; do
      t0=$(now)
      $B submit noop --range "0..$tasks" --model $model --wait --coordinator $URL > /dev/null 2>&1
      job=$((job + 1))
      check_results $job "$tasks"
      t1=$(now)
      awk -v n="$tasks" -v m=$model -v r="$rep" -v a="$t0" -v b="$t1" -v w="$(job_wall $job)" 'BEGIN {
        printf "noop %8d  %-6s rep %d  submit->results checked %.3f s (%9.0f tasks/s)  job wall %.3f s (%9.0f tasks/s)\n",
          n, m, r, b - a, n / (b - a), w, n / w }'
    done
  done
done
echo "CPU seconds over all runs: coordinator $(awk '{print ($14 + $15) / 100}' /proc/$C/stat), worker $(awk '{print ($14 + $15) / 100}' /proc/$W/stat)"
cleanup; PIDS=()

echo "## 2. peak RSS, coordinator + 2 workers (default slots), W_NOOP 20k"
for model in thread async; do
  start_coordinator
  $B worker --coordinator $URL > /tmp/brigade-throughput.w1.log 2>&1 & W1=$!; PIDS+=("$W1")
  $B worker --coordinator $URL > /tmp/brigade-throughput.w2.log 2>&1 & W2=$!; PIDS+=("$W2")
  wait_workers 2
  $B submit noop --range 0..20000 --model $model --wait --coordinator $URL > /dev/null 2>&1
  check_results 1 20000
  c=$(kb $C VmHWM); w1=$(kb $W1 VmHWM); w2=$(kb $W2 VmHWM)
  ex=0; for p in $(pgrep -P "$W1") $(pgrep -P "$W2"); do ex=$((ex + $(kb "$p" VmHWM))); done
  echo "$model: coordinator ${c} kB + workers ${w1} + ${w2} kB = $(( (c + w1 + w2) / 1024 )) MB; idle executor children add $((ex / 1024)) MB of RSS (mostly the shared binary's pages)"
  cleanup; PIDS=()
done

echo "## 3. coordinator memory per queued task (10,000,000-task job, no worker)"
start_coordinator
before=$(kb $C VmRSS)
$B submit noop --range 0..10000000 --model thread --coordinator $URL > /dev/null
sleep 0.5 # the submission is acknowledged; let the allocator settle before reading RSS
after=$(kb $C VmRSS)
awk -v a="$before" -v b="$after" 'BEGIN { printf "RSS %d kB -> %d kB: %.3f bytes per queued task\n", a, b, (b - a) * 1024 / 1e7 }'
