#!/usr/bin/env bash
# `brigade results ID` in each output format, timed as a user runs it: a
# coordinator (no state file) and one worker (--procs 0 --threads 2
# --async 256) on 127.0.0.1, one W_NOOP_1M job (noop over [0, 1,000,000),
# thread slots), then `time brigade results 1 --format F > /dev/null` for
# csv, json and jsonl, alternating, REPS rounds. With OLD=path/to/brigade
# each round also runs that binary's `results` (the same coordinator
# serves both), so a before/after comparison shares one machine state.
# Every format's output is checked once: csv and jsonl hold 1,000,000 rows
# with value == index, json is one array of them.
# Usage: cargo build --release && [OLD=/tmp/brigade-before] bench/results-format.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-./target/release/brigade}
OLD=${OLD:-}
REPS=${1:-5}
# A port nobody holds now (another coordinator on a fixed port would answer instead).
PORT=${PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
URL=http://127.0.0.1:$PORT
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

$B coordinator --listen 127.0.0.1:$PORT > /tmp/brigade-results-format.c.log 2>&1 &
C=$!; PIDS+=("$C")
for _ in $(seq 1 100); do $B status --coordinator $URL > /dev/null 2>&1 && break; sleep 0.05; done
kill -0 $C || { echo "the coordinator did not start: $(cat /tmp/brigade-results-format.c.log)" >&2; exit 1; }
$B worker --coordinator $URL --procs 0 --threads 2 --async 256 > /tmp/brigade-results-format.w.log 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
  [ "$($B workers --coordinator $URL --format json | grep -o '"worker_id"' | wc -l)" -ge 1 ] && break
  sleep 0.1
done
$B submit noop --range 0..1000000 --model thread --wait --coordinator $URL > /dev/null

# Each format read back once and checked row by row (value == index).
out=$(mktemp); trap 'rm -f "$out"; cleanup' EXIT
for bin in $B $OLD; do
  $bin results 1 --format csv --coordinator $URL > "$out"
  n=$(awk -F, 'NR > 1 && $1 == $2 {n++} END {print n + 0}' "$out")
  [ "$n" = 1000000 ] || { echo "$bin csv: $n of 1000000 rows right" >&2; exit 1; }
  $bin results 1 --format jsonl --coordinator $URL > "$out"
  n=$(grep -c '^{"attempts":1,"cpu_ms":[0-9.e-]*,"index":\([0-9]*\),"input":"\1\.\.[0-9]*","model":"thread","output":\1,"value":"\1","wall_ms":[0-9.e-]*,"worker":"[^"]*"}$' "$out" || true)
  [ "$n" = 1000000 ] || { echo "$bin jsonl: $n of 1000000 rows right" >&2; exit 1; }
  $bin results 1 --format json --coordinator $URL | python3 -c '
import json, sys
rows = json.load(sys.stdin)
assert len(rows) == 1000000 and all(r["index"] == r["output"] == int(r["value"]) for r in rows)'
  cmp <($bin results 1 --format json --coordinator $URL | python3 -c 'import json, sys; [print(json.dumps(r, separators=(",", ":"))) for r in json.load(sys.stdin)]') \
      <(python3 -c 'import json, sys; [print(json.dumps(json.loads(l), separators=(",", ":"))) for l in open(sys.argv[1])]' "$out") \
    || { echo "$bin: json and jsonl rows differ" >&2; exit 1; }
done
echo "every format checked: 1,000,000 rows, value == index"

for rep in $(seq 1 "$REPS"); do
  for bin in $B $OLD; do
    for format in csv json jsonl; do
      s=$( { /usr/bin/time -f '%e %U %S %M' $bin results 1 --format $format --coordinator $URL > /dev/null; } 2>&1 )
      echo "$s" | awk -v r="$rep" -v f="$format" -v b="$bin" '{
        printf "rep %d  %-28s %-5s  wall %.2f s  user %.2f s  sys %.2f s  max RSS %d kB\n", r, b, f, $1, $2, $3, $4 }'
    done
  done
done
