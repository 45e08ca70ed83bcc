#!/usr/bin/env bash
# Issue 12's figures for jobs with inputs, with real processes on 127.0.0.1
# (release build; every result is checked):
#   1. (only with BEFORE=path/to/older/brigade) W_NOOP_1M before/after:
#      bench/throughput.sh 1 with B=$BEFORE and B=$B alternately, PAIRS pairs
#      (default 5, in ABBA order); its W_NOOP_1M lines and the after/before
#      ratios of each pair, with their median;
#   2. inputs throughput: LINES lines (default 1,000,000) through `echo`, from
#      a file to every result in hand as JSON lines, for each chunk K in
#      CHUNKS (default "1 64"), REPS times (default 3), each on a fresh
#      coordinator + 1 worker (--procs 1 --threads 2 --async 256):
#        t0; brigade submit echo --inputs FILE --chunk K
#            brigade results ID --follow --format jsonl > out; t1
#      then every row is checked against the file (index order, each task's
#      output = its K lines joined by newlines) after the clock stopped; and
#      once per K with the results fetched after the job ended (submit --wait,
#      then results without --follow);
#   3. peak RSS (VmHWM) in those runs: the submit CLI, the results CLI, the
#      coordinator and the worker; and the submit CLI again on a file 4x as
#      long (its memory must not grow with the file).
# Usage: cargo build --release && [BEFORE=/tmp/brigade-before] [PARTS="1 2 3"] bench/inputs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-./target/release/brigade}
B=$(realpath "$B")
LINES=${LINES:-1000000}
CHUNKS=${CHUNKS:-"1 64"}
REPS=${REPS:-3}
PAIRS=${PAIRS:-5}
PARTS=${PARTS:-"1 2 3"}
PORT=${PORT:-7711}
URL=http://127.0.0.1:$PORT
WORK=$(mktemp -d /tmp/brigade-inputs-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'cleanup; rm -rf "$WORK"' EXIT

now() { date +%s.%N; }
kb() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
start_cluster() {
  $B coordinator --listen 127.0.0.1:$PORT > "$WORK/c.log" 2>&1 &
  C=$!; PIDS+=("$C")
  for _ in $(seq 1 100); do $B status --coordinator $URL > /dev/null 2>&1 && break; sleep 0.05; done
  $B worker --coordinator $URL --procs 1 --threads 2 --async 256 > "$WORK/w.log" 2>&1 &
  W=$!; PIDS+=("$W")
  for _ in $(seq 1 100); do
    [ "$($B workers --coordinator $URL --format json | grep -o '"worker_id"' | wc -l)" -ge 1 ] && return 0
    sleep 0.05
  done
  echo "the worker did not join" >&2; exit 1
}
stop_cluster() { cleanup; PIDS=(); }
# Peak RSS (kB) and CPU seconds of a command, printed on fd 3; its stdout
# stays its own.
peak() { /usr/bin/time -f "%M %U %S" -o "$WORK/peak" "$@"; cat "$WORK/peak" >&3; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

echo "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg), $($B --version)"

part() { [[ " $PARTS " == *" $1 "* ]]; }

if [ -n "${BEFORE:-}" ] && part 1; then
  echo "## 1. W_NOOP_1M before ($BEFORE) / after ($B): bench/throughput.sh 1, $PAIRS pairs (ABBA order)"
  for pair in $(seq 1 "$PAIRS"); do
    sides="before after"; [ $((pair % 2)) = 0 ] && sides="after before"
    for side in $sides; do
      bin=$B; [ $side = before ] && bin=$(realpath "$BEFORE")
      B=$bin bench/throughput.sh 1 2>&1 | awk -v s=$side -v p="$pair" '/^noop  1000000/ {print "pair " p " " s ": " $0}'
    done
  done | tee "$WORK/ab.txt"
  python3 - "$WORK/ab.txt" <<'EOF'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r"pair (\d+) (\w+): noop +1000000 +(\w+) .*checked [\d.]+ s \( *(\d+) tasks/s\) +job wall [\d.]+ s \( *(\d+) tasks/s\)", line)
    if m:
        pair, side, model, e2e, job = m.groups()
        runs[(int(pair), side, model)] = (int(e2e), int(job))
for model in ("thread", "async"):
    pairs = sorted({p for (p, _, m) in runs if m == model})
    e2e = [runs[(p, "after", model)][0] / runs[(p, "before", model)][0] for p in pairs]
    job = [runs[(p, "after", model)][1] / runs[(p, "before", model)][1] for p in pairs]
    print("%s: after/before, submit->results checked: %s (median %.2f); the job's own wall: %s (median %.2f)" % (
        model, " ".join("%.2f" % r for r in e2e), statistics.median(e2e),
        " ".join("%.2f" % r for r in job), statistics.median(job)))
EOF
fi

# The inputs: LINES restaurant names with a random suffix.
python3 - "$WORK/lines.txt" "$LINES" <<'EOF'
import random, sys
random.seed(12)
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write("restaurant %d %06x\n" % (i, random.getrandbits(24)))
EOF

if part 2; then
echo "## 2. inputs throughput: $LINES lines through echo, file -> every result in hand as JSON lines"
echo "inputs file: $(wc -l < "$WORK/lines.txt") lines, $(( $(stat -c %s "$WORK/lines.txt") / 1024 / 1024 )) MiB"
check() { # $1 = results, $2 = chunk
  python3 - "$WORK/lines.txt" "$1" "$2" <<'EOF'
import json, sys
lines = [l.rstrip("\n") for l in open(sys.argv[1]) if l.strip()]
k = int(sys.argv[3])
n = 0
for n, row in enumerate(open(sys.argv[2])):
    v = json.loads(row)
    want = "\n".join(lines[n * k:(n + 1) * k])
    if v["index"] != n or v["value"] != want:
        sys.exit(f"row {n}: {row[:200]!r}, expected index {n} and {want[:80]!r}")
else:
    n += 1
tasks = (len(lines) + k - 1) // k
if n != tasks:
    sys.exit(f"{n} rows for {tasks} tasks")
EOF
}
# One run: $1 = chunk, $2 = rep, $3 = follow (results stream while the job
# runs) or after (submit --wait, then every result once the job ended).
run_inputs() {
  local K=$1 rep=$2 mode=$3 wait="" follow="--follow"
  [ "$mode" = after ] && { wait="--wait"; follow=""; }
  start_cluster
  t0=$(now)
  sub=$( { peak $B submit echo --inputs "$WORK/lines.txt" --chunk "$K" $wait --format json --coordinator $URL > "$WORK/sub.json"; } 3>&1 )
  id=$(grep -o '"job_id":[0-9]*' "$WORK/sub.json" | cut -d: -f2)
  t1=$(now)
  res=$( { peak $B results "$id" $follow --format jsonl --coordinator $URL > "$WORK/out.jsonl"; } 3>&1 )
  t2=$(now)
  c=$(kb "$C" VmHWM); w=$(kb "$W" VmHWM); ccpu=$(cpu_s "$C"); wcpu=$(cpu_s "$W")
  model=$($B job "$id" --format json --coordinator $URL | python3 -c '
import json, sys
j = json.load(sys.stdin)
if j["state"] != "succeeded" or j["tasks_failed"] != 0:
    sys.exit("job %s: %s, %s failed: %s" % (j["job_id"], j["state"], j["tasks_failed"], j["error"]))
print(j["model"])')
  stop_cluster
  check "$WORK/out.jsonl" "$K"
  awk -v k="$K" -v r="$rep" -v n="$LINES" -v a="$t0" -v b="$t1" -v e="$t2" -v s="$sub" -v q="$res" -v c="$c" -v w="$w" -v m="$model" -v how="$mode" -v cc="$ccpu" -v wc="$wcpu" 'BEGIN {
    split(s, S, " "); split(q, Q, " ")
    printf "chunk %3d %-6s rep %d (%s slots): %.3f s (submit %.3f s) = %7.0f lines/s, every row checked\n", k, how, r, m, e - a, b - a, n / (e - a)
    printf "    peak RSS MB: submit %.1f, results %.1f, coordinator %.1f, worker %.1f; CPU s: submit %.2f, results %.2f, coordinator %.2f, worker %.2f\n",
      S[1] / 1024, Q[1] / 1024, c / 1024, w / 1024, S[2] + S[3], Q[2] + Q[3], cc, wc }'
}
for K in $CHUNKS; do
  for rep in $(seq 1 "$REPS"); do run_inputs "$K" "$rep" follow; done
done
echo "(the same, results fetched once the job ended: submit --wait, then results)"
for K in $CHUNKS; do run_inputs "$K" 1 after; done
fi

if part 3; then
echo "## 3. the submit CLI's peak RSS against the file's size"
for mult in 1 4; do
  for _ in $(seq 1 "$mult"); do cat "$WORK/lines.txt"; done > "$WORK/big.txt"
  start_cluster
  sub=$( { peak $B submit echo --inputs "$WORK/big.txt" --chunk 64 --format json --coordinator $URL > "$WORK/sub.json"; } 3>&1 )
  tasks=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tasks_total"])' "$WORK/sub.json")
  stop_cluster
  lines=$(( LINES * mult ))
  [ "$tasks" = $(( (lines + 63) / 64 )) ] || { echo "submit of $lines lines made $tasks tasks" >&2; exit 1; }
  echo "$lines lines ($(( $(stat -c %s "$WORK/big.txt") / 1024 / 1024 )) MiB): submit CLI peak RSS $(awk -v s="$sub" 'BEGIN {split(s, S, " "); printf "%.1f", S[1] / 1024}') MB"
done
rm -f "$WORK/big.txt"
fi
