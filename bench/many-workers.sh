#!/usr/bin/env bash
# Issue 18 §1: a coordinator with many linked workers (release build, real
# processes on 127.0.0.1). For each N in the arguments (default 10 100 1000):
#   - N workers as `brigade worker --count` links (--procs 0 --threads 1
#     --async 1 each): 80% in processes A (at most 1,000 links each: a link
#     takes ~6 file descriptors in its process), 10% in process K, 10% in
#     process S;
#   - coordinator RSS before any worker, idle with N linked, and peak (VmHWM);
#   - idle coordinator CPU: utime + stime from /proc/PID/stat over IDLE_S
#     seconds (default 10) with nothing polling it, as % of one core;
#   - W_NOOP_1M on thread slots across them: the job's own wall time and
#     tasks/s, the CPU seconds of the coordinator and of the worker
#     processes, every result checked (value == index), and fairness: tasks
#     per worker (the results' worker column) max / min over all N;
#   - fairness again with 20 ms sleep tasks (40 per worker), where the
#     simulated workers' CPU is not the bound;
#   - mass loss, twice, each during a sleep job (20 ms tasks) and after a
#     fifth of it is done: process K (10% of the links) SIGKILLed (its
#     connections close), then process S (10%) SIGSTOPped (silent: only the
#     lease timeout finds it). Time from the signal until /metrics counts
#     all of them lost (their leases taken back in that same step) and until
#     `brigade workers` lists the rest; the job then ends with every result
#     exact.
# Defaults: lease timeout 3000 ms, heartbeat 500 ms (COORD_ARGS to change).
# COORD_B=path runs that binary as the coordinator (a before/after of the
# coordinator alone); ONLY_IDLE=1 stops after the idle figures.
# Usage: cargo build --release && bench/many-workers.sh [N...]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-./target/release/brigade}
COORD_B=${COORD_B:-$B}
read -r -a SIZES <<< "${*:-10 100 1000}"
IDLE_S=${IDLE_S:-10}
TASKS=${TASKS:-1000000}
COORD_ARGS=${COORD_ARGS:-}
# Every simulated link connects from 127.0.0.1: lift the per-peer connection
# limit (1,024 by default) where the coordinator has one.
if $COORD_B coordinator --help 2>/dev/null | grep -q -- --max-connections-per-peer; then
  COORD_ARGS="--max-connections-per-peer 0 $COORD_ARGS"
fi
LOG=${LOG:-/tmp/brigade-many-workers}
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2> /dev/null || true; done
  for p in "${PIDS[@]}"; do { wait "$p"; } 2> /dev/null || true; done
  PIDS=()
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
linked() { $B workers --coordinator "$URL" --format json | grep -o '"worker_id"' | wc -l; }
wait_linked() { # $1 = count, $2 = seconds
  local until; until=$(awk -v t="$(now)" -v s="$2" 'BEGIN {printf "%.3f", t + s}')
  while [ "$(linked)" != "$1" ]; do
    if awk -v t="$(now)" -v u="$until" 'BEGIN {exit !(t > u)}'; then echo "only $(linked) of $1 workers linked" >&2; exit 1; fi
    sleep 0.1
  done
}
# The sum of every sample of /metrics whose name (with labels) starts with $1.
metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" 'index($1, m) == 1 {s += $2} END {print s + 0}'; }
field() { tr ',' '\n' | awk -F: -v k="\"$1\"" '$1 == k {gsub(/"/, "", $2); print $2; exit}'; }
# Tasks per worker in a results CSV on stdin: "K of N workers ran tasks; max, min, max/min".
fairness() { # $1 = N
  awk -F, -v n="$1" 'NR > 1 {c[$5]++} END {
    min = -1; max = 0; for (w in c) { k++; if (c[w] > max) max = c[w]; if (min < 0 || c[w] < min) min = c[w] }
    if (k < n) min = 0
    printf "%d of %d workers ran tasks; tasks per worker max %d, min %d, max/min %s", k, n, max, min, (min > 0 ? sprintf("%.2f", max / min) : "inf") }'
}
exact() { # $1 = job id: rows with value == index
  $B results "$1" --format csv --coordinator "$URL" | awk -F, 'NR > 1 && $1 == $2 {n++} END {print n + 0}'
}

# Signals $3 (a process holding $2 links) during a sleep job and times how
# long the coordinator takes to count them lost ($4: the loss cause).
lose() { # $1 = label, $2 = links, $3 = pid, $4 = signal, $5 = cause, $6 = workers left
  local tasks=$(( n * 150 )) id losses0 returned0 expired0 tk tl tw state retries ok
  id=$($B submit sleep --range 0..$tasks --arg ms=20 --model thread --format json --coordinator "$URL" 2> /dev/null | field job_id)
  until [ "$($B job "$id" --format json --coordinator "$URL" | field tasks_done)" -ge $(( tasks / 5 )) ]; do sleep 0.05; done
  losses0=$(metric "brigade_worker_losses_total{cause=\"$5\"}")
  returned0=$(metric brigade_leases_returned); expired0=$(metric brigade_leases_expired)
  tk=$(now); kill "-$4" "$3"
  if [ "$4" = KILL ]; then wait "$3" 2> /dev/null || true; fi
  until [ "$(metric "brigade_worker_losses_total{cause=\"$5\"}")" -ge $(( losses0 + $2 )) ]; do sleep 0.005; done
  tl=$(now)
  until [ "$(linked)" = "$6" ]; do sleep 0.01; done
  tw=$(now)
  returned=$(( $(metric brigade_leases_returned) - returned0 )); expired=$(( $(metric brigade_leases_expired) - expired0 ))
  local job; job=$($B job "$id" --wait --format json --coordinator "$URL" 2> /dev/null)
  state=$(echo "$job" | field state); retries=$(echo "$job" | field retries); ok=$(exact "$id")
  [ "$state" = succeeded ] && [ "$ok" = "$tasks" ] || { echo "N=$n: sleep job $state, $ok of $tasks right" >&2; exit 1; }
  awk -v k="$tk" -v l="$tl" -v w="$tw" -v n="$2" -v r="$returned" -v e="$expired" -v q="$retries" -v t="$tasks" -v what="$1" 'BEGIN {
    printf "%s: %d links; all counted lost after %.0f ms (%d leases taken back: %d returned, %d expired), `workers` lists the rest after %.0f ms; job succeeded, %d of %d results exact, %d retries\n",
      what, n, 1000 * (l - k), r + e, r, e, 1000 * (w - k), t, t, q }'
}

for n in "${SIZES[@]}"; do
  part=$(( n / 10 )); main=$(( n - 2 * part ))
  PORT=$(free_port); URL=http://127.0.0.1:$PORT; HTTP=127.0.0.1:$(free_port)
  # shellcheck disable=SC2086
  $COORD_B coordinator --listen 127.0.0.1:$PORT --http-listen "$HTTP" $COORD_ARGS > "$LOG.$n.coordinator.log" 2>&1 &
  C=$!; PIDS+=("$C")
  for _ in $(seq 1 100); do $B status --coordinator "$URL" > /dev/null 2>&1 && break; sleep 0.05; done
  kill -0 $C
  rss0=$(kb $C VmRSS)
  t0=$(now)
  links() { $B worker --coordinator "$URL" --count "$1" --name "$2" --procs 0 --threads 1 --async 1 > "$LOG.$n.$2.log" 2>&1 & }
  AS=()
  for ((i = 0; i < main; i += 1000)); do
    links $(( main - i < 1000 ? main - i : 1000 )) "a$(( i / 1000 + 1 ))"; AS+=("$!"); PIDS+=("$!")
  done
  A=${AS[0]}
  links $part k; K=$!; PIDS+=("$K")
  links $part s; S=$!; PIDS+=("$S")
  wait_linked "$n" 120
  t1=$(now)
  sleep 2
  rss_idle=$(kb $C VmRSS)
  c0=$(ticks $C); s0=$(now); sleep "$IDLE_S"; c1=$(ticks $C); s1=$(now)
  echo "== N=$n workers ($main in ${#AS[@]} process(es) A, $part in K, $part in S; --procs 0 --threads 1 --async 1 each); coordinator $COORD_B; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  awk -v a="$t0" -v b="$t1" -v r0="$rss0" -v r="$rss_idle" -v n="$n" 'BEGIN {
    printf "linked in %.2f s; coordinator RSS %d kB before, %d kB idle with N linked (%.1f kB per worker)\n", b - a, r0, r, (r - r0) / n }'
  awk -v c0="$c0" -v c1="$c1" -v s0="$s0" -v s1="$s1" -v hz="$hz" -v n="$n" 'BEGIN {
    cpu = (c1 - c0) / hz; printf "idle coordinator CPU: %.2f s over %.1f s = %.2f%% of one core (%.1f us per worker per second)\n", cpu, s1 - s0, 100 * cpu / (s1 - s0), 1e6 * cpu / (s1 - s0) / n }'
  echo "worker processes: A $(kb $A VmRSS) kB RSS, $(ls /proc/$A/task | wc -l) threads; K $(kb $K VmRSS) kB, $(ls /proc/$K/task | wc -l) threads"
  [ -n "${ONLY_IDLE:-}" ] && { cleanup; continue; }

  # W_NOOP_1M across them.
  workers_ticks() { local t=0 p; for p in "${AS[@]}" $K $S; do t=$(( t + $(ticks "$p") )); done; echo $t; }
  c0=$(ticks $C); w0=$(workers_ticks); s0=$(now)
  out=$($B submit noop --range 0..$TASKS --model thread --wait --format json --coordinator "$URL" 2> /dev/null)
  s1=$(now); c1=$(ticks $C); w1=$(workers_ticks)
  id=$(echo "$out" | field job_id); wall=$(echo "$out" | field wall_s)
  ok=$(exact "$id")
  [ "$ok" = "$TASKS" ] || { echo "N=$n: only $ok of $TASKS noop results right" >&2; exit 1; }
  awk -v t="$TASKS" -v w="$wall" -v a="$s0" -v b="$s1" -v c0="$c0" -v c1="$c1" -v w0="$w0" -v w1="$w1" -v hz="$hz" 'BEGIN {
    printf "W_NOOP_1M: job wall %.3f s = %.0f tasks/s (submit->end %.3f s); CPU s: coordinator %.2f, worker processes %.2f; ", w, t / w, b - a, (c1 - c0) / hz, (w1 - w0) / hz }'
  $B results "$id" --format csv --coordinator "$URL" | fairness "$n"; echo
  echo "coordinator peak RSS (VmHWM) $(kb $C VmHWM) kB"

  # Fairness where the machine is not the bound: 20 ms tasks, 40 per slot.
  out=$($B submit sleep --range 0..$(( n * 40 )) --arg ms=20 --model thread --wait --format json --coordinator "$URL" 2> /dev/null)
  id=$(echo "$out" | field job_id); wall=$(echo "$out" | field wall_s)
  [ "$(exact "$id")" = $(( n * 40 )) ] || { echo "N=$n: sleep results wrong" >&2; exit 1; }
  awk -v w="$wall" -v i="$(awk -v n="$n" 'BEGIN {print 0.02 * 40}')" -v t=$(( n * 40 )) 'BEGIN {
    printf "20 ms tasks: %d exact, wall %.2f s (ideal %.2f s); ", t, w, i }'
  $B results "$id" --format csv --coordinator "$URL" | fairness "$n"; echo

  lose "SIGKILL of process K" $part $K KILL disconnected $(( n - part ))
  lose "SIGSTOP of process S" $part $S STOP silent $main
  echo "links that heard nothing from the coordinator for a lease timeout (and linked again): $(cat "$LOG.$n".a*.log | grep -c 'no word from the coordinator' || true)"
  cleanup
done
