#!/usr/bin/env bash
# W_NOOP_1M (noop over [0, 1,000,000), chunk 1) with the durable store off and
# on, alternating, twice, on thread and async slots: coordinator + 1 worker
# (--procs 1 --threads 2 --async 256) on this machine. Every run's 1,000,000
# results are checked (value == index). Prints wall time and the
# coordinator's peak RSS. Usage: cargo build --release && bench/store-on-off.sh
set -euo pipefail
cd "$(dirname "$0")/.." 
B=${B:-./target/release/brigade}
run() { # $1 = state arg or empty
  local port=$2
  $B coordinator --listen 127.0.0.1:$port $1 > /tmp/sb.c 2>&1 & local C=$!
  sleep 0.3
  $B worker --coordinator http://127.0.0.1:$port --procs 1 --threads 2 --async 256 > /tmp/sb.w 2>&1 & local W=$!
  sleep 0.5
  local out; out=$($B submit noop --range 0..1000000 --model $3 --wait --format json --coordinator http://127.0.0.1:$port)
  local n; n=$($B results 1 --format csv --coordinator http://127.0.0.1:$port | awk -F, 'NR>1 && $1==$2 {ok++} END {print ok+0}')
  echo "$4 $3 wall_s=$(echo "$out" | tr ',' '\n' | grep wall_s | cut -d: -f2) verified=$n/1000000 rss_coord_kb=$(grep VmHWM /proc/$C/status | awk '{print $2}')"
  kill $W; wait $W 2>/dev/null || true; kill $C; wait $C 2>/dev/null || true
}
rm -f /tmp/sb.db*
for rep in 1 2; do
  for model in async thread; do
    run "" 7601 $model off
    rm -f /tmp/sb.db*; run "--state /tmp/sb.db" 7602 $model on
  done
done
