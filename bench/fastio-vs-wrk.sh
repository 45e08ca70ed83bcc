#!/usr/bin/env bash
# Issue 5's W_FASTIO figure: brigade on async slots (32 in flight on one event
# loop) against `wrk -t1 -c32` on the same target, in the same run.
#
# Starts `brigade io-target`, a coordinator and one worker (--async 32) on
# 127.0.0.1 (free ports), then alternates, ROUNDS times:
#   wrk -t1 -c32 -d5s TARGET/fast                         (wrk's requests/s)
#   brigade submit http-get --range 0..TASKS --arg expect-len=1024
#     --model async --wait                                (brigade's tasks/s)
# The worker's 32 async slots are the cap, as wrk's 32 connections are: the
# event loop never has more than 32 GETs in flight. (A job cap,
# --max-in-flight 32, would be stricter than wrk: it counts tasks travelling
# between coordinator and worker too, so fewer than 32 would be in flight.)
# Every brigade job must succeed with all TASKS results equal to 1024 (checked
# from `brigade results`); a wrong result stops the script. Prints each pair,
# then the medians and their ratio (target: >= 0.6).
#
# On a machine others load, a single-threaded wrk gets a smaller share of the
# cores than brigade's several threads, so the rate ratio flatters brigade.
# The script also prints CPU time per request, which the load moves much
# less: wrk's own plus the target's, against coordinator + worker + target
# for the LONG_TASKS job (clock ticks of /proc, so short jobs are too coarse).
#
# Usage: cargo build --release --locked && bench/fastio-vs-wrk.sh
#   B=path/to/brigade  ROUNDS=3  TASKS=5000 (W_FASTIO)  LONG_TASKS=50000 (a
#   second, steady-state job per round, as long as wrk's 5 s; 0 skips it)
#   TARGET_BIN=path/to/other/brigade (whose io-target to run; default $B)
#   TARGET=http://HOST:PORT (an already running target, e.g. nginx; serves /fast)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-./target/release/brigade}
ROUNDS=${ROUNDS:-3}
TASKS=${TASKS:-5000}
LONG_TASKS=${LONG_TASKS:-50000}
TARGET_BIN=${TARGET_BIN:-$B}
TARGET=${TARGET:-}
[ -x "$B" ] || { echo "no $B: run cargo build --release --locked first" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  echo "installing wrk" >&2
  apt-get install -y wrk >/dev/null
fi

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

# Waits (up to 10 s) for a server's first line naming its URL.
url_of() {
  local file=$1
  for _ in $(seq 1000); do
    local u
    u=$(grep -o -m1 'http://[0-9.]*:[0-9]*' "$file" 2>/dev/null || true)
    if [ -n "$u" ]; then echo "$u"; return; fi
    sleep 0.01
  done
  echo "no URL in $file:" >&2; cat "$file" >&2; exit 1
}

TARGET_PID=
if [ -z "$TARGET" ]; then
  "$TARGET_BIN" io-target --listen 127.0.0.1:0 >"$TMP/target" 2>&1 & PIDS+=($!)
  TARGET_PID=$!
  TARGET=$(url_of "$TMP/target")
fi
"$B" coordinator --listen 127.0.0.1:0 >"$TMP/coord" 2>&1 & PIDS+=($!)
COORD=$(url_of "$TMP/coord")
"$B" worker --coordinator "$COORD" --procs 1 --threads 2 --async 32 >"$TMP/worker" 2>&1 & PIDS+=($!)
WORKER_PID=$!
COORD_PID=${PIDS[-2]}
for _ in $(seq 1000); do
  "$B" workers --coordinator "$COORD" --format json 2>/dev/null | grep -q '"async_slots":32' && break
  sleep 0.01
done
echo "target $TARGET, coordinator $COORD, 1 worker (32 async slots); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# Runs one job of $1 tasks; prints its tasks/s (from the coordinator's wall_s)
# after checking every result.
brigade_rate() {
  local n=$1 out id wall ok
  out=$("$B" submit http-get --range "0..$n" --arg "url=$TARGET/fast" --arg expect-len=1024 \
    --model async --wait --format json --coordinator "$COORD" 2>"$TMP/submit")
  id=$(grep -o '"job_id":[0-9]*' <<<"$out" | cut -d: -f2)
  wall=$(grep -o '"wall_s":[0-9.]*' <<<"$out" | cut -d: -f2)
  if ! grep -q '"state":"succeeded"' <<<"$out"; then
    echo "brigade job failed: $out" >&2; exit 1
  fi
  ok=$("$B" results "$id" --format csv --coordinator "$COORD" | awk -F, 'NR>1 && $2==1024 {ok++} END {print ok+0}')
  if [ "$ok" != "$n" ]; then
    echo "job $id: only $ok of $n results are 1024" >&2; exit 1
  fi
  awk -v n="$n" -v w="$wall" 'BEGIN {printf "%.0f", n / w}'
}

# CPU seconds (user + system) the given processes have used so far.
cpu_s() {
  local t=0 p
  for p in "$@"; do
    [ -n "$p" ] || continue
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.3f", t / hz}'
}

# Prints wrk's requests/s; leaves wrk's + the target's CPU µs per request in
# $TMP/wrk_cpu_last.
wrk_rate() {
  local before after
  before=$(cpu_s "$TARGET_PID")
  (
    wrk -t1 -c32 -d5s "$TARGET/fast" >"$TMP/wrk_out"
    times >"$TMP/wrk_times" # 2nd line: this subshell's children, i.e. wrk
  )
  after=$(cpu_s "$TARGET_PID")
  awk -v b="$before" -v a="$after" -v tf="$TMP/wrk_times" '
    /requests in/ {n = $1}
    /Requests\/sec/ {rate = $2}
    END {
      getline t < tf; getline t < tf; split(t, c, " ");
      u = c[1]; s = c[2]; sub(/s$/, "", u); sub(/s$/, "", s);
      split(u, um, "m"); split(s, sm, "m");
      cpu = um[1] * 60 + um[2] + sm[1] * 60 + sm[2] + (a - b);
      printf "%.1f\n", cpu / n * 1e6 > "'"$TMP/wrk_cpu_last"'";
      printf "%.0f", rate
    }' "$TMP/wrk_out"
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

brigade_rate 1024 >/dev/null # warm-up: opens the loop's 32 connections
for r in $(seq "$ROUNDS"); do
  w=$(wrk_rate); echo "$w" >>"$TMP/wrk"
  s=$(brigade_rate "$TASKS"); echo "$s" >>"$TMP/short"
  line="round $r: wrk $w req/s, brigade W_FASTIO ($TASKS tasks) $s tasks/s ($(awk -v a="$s" -v b="$w" 'BEGIN {printf "%.2f", a/b}')x)"
  wc=$(cat "$TMP/wrk_cpu_last"); echo "$wc" >>"$TMP/wrk_cpu"
  line="$line; CPU per request: wrk+target $wc us"
  if [ "$LONG_TASKS" -gt 0 ]; then
    before=$(cpu_s "$COORD_PID" "$WORKER_PID" "$TARGET_PID")
    l=$(brigade_rate "$LONG_TASKS"); echo "$l" >>"$TMP/long"
    after=$(cpu_s "$COORD_PID" "$WORKER_PID" "$TARGET_PID")
    bc=$(awk -v a="$after" -v b="$before" -v n="$LONG_TASKS" 'BEGIN {printf "%.1f", (a - b) / n * 1e6}')
    echo "$bc" >>"$TMP/brigade_cpu"
    line="$line; $LONG_TASKS tasks $l tasks/s ($(awk -v a="$l" -v b="$w" 'BEGIN {printf "%.2f", a/b}')x), brigade+target $bc us"
  fi
  echo "$line"
done
W=$(median <"$TMP/wrk")
S=$(median <"$TMP/short")
echo "median: wrk -t1 -c32 $W req/s; brigade async W_FASTIO $S tasks/s; ratio $(awk -v a="$S" -v b="$W" 'BEGIN {printf "%.2f", a/b}') (target >= 0.6)"
if [ "$LONG_TASKS" -gt 0 ]; then
  L=$(median <"$TMP/long")
  echo "median: brigade async $LONG_TASKS tasks $L tasks/s; ratio $(awk -v a="$L" -v b="$W" 'BEGIN {printf "%.2f", a/b}')"
  WC=$(median <"$TMP/wrk_cpu")
  BC=$(median <"$TMP/brigade_cpu")
  echo "median CPU per request$([ -z "$TARGET_PID" ] && echo " (target not counted: not started here)"): wrk+target $WC us, brigade+target $BC us; ratio wrk/brigade $(awk -v a="$WC" -v b="$BC" 'BEGIN {printf "%.2f", a/b}')"
fi
echo "all brigade results verified (every value 1024); load now $(cut -d' ' -f1-3 /proc/loadavg)"
