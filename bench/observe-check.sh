#!/usr/bin/env bash
# Checks the coordinator's HTTP port as an operator would: installs Debian's
# prometheus (for promtool) and chromium if missing, starts `brigade up` with
# --http-listen on loopback, runs jobs (one long enough to be running during
# the screenshot), runs `promtool check metrics` on a scrape and takes a
# headless screenshot of the dashboard.
#
#   bench/observe-check.sh [OUT_DIR]     (default /tmp/brigade-observe)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/brigade-observe}
mkdir -p "$out"
bin=${BRIGADE_BIN:-target/debug/brigade}
[ -x "$bin" ] || cargo build -p brigade
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    echo "missing ${need[*]} (apt-get install -y ${need[*]} as root); continuing without them" >&2
  fi
fi

grpc=127.0.0.1:$((20000 + RANDOM % 5000))
http=127.0.0.1:$((25000 + RANDOM % 5000))
"$bin" up --workers 2 --state :memory: --listen "$grpc" --http-listen "$http" >"$out/up.log" 2>&1 &
up=$!
trap 'kill "$up" 2>/dev/null; wait "$up" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://$http/metrics" >/dev/null && break
  sleep 0.1
done
export BRIGADE_COORDINATOR=http://$grpc
"$bin" submit sum-squares --range 0..20000000 --chunk 500000 --wait >/dev/null
"$bin" submit noop --range 0..50000 --chunk 1 --model async --wait >/dev/null
# A job with a poison task (it aborts its executor): failures by message.
"$bin" submit spin --range 0..4 --arg ms=1 --arg crash-index=2 --model process \
  --max-attempts 2 --wait >/dev/null 2>&1 || true
# Still running while the page is looked at.
"$bin" submit sleep --range 0..4000 --arg ms=1500 --model async >/dev/null

curl -sf "http://$http/metrics" >"$out/metrics.txt"
echo "scrape: $(wc -l <"$out/metrics.txt") lines in $out/metrics.txt"
if command -v promtool >/dev/null; then
  if promtool check metrics <"$out/metrics.txt"; then
    echo "promtool check metrics: no problems"
  else
    echo "promtool check metrics: problems above" >&2
    exit 1
  fi
else
  echo "promtool missing: scrape not checked"
fi
if command -v chromium >/dev/null; then
  sleep 3   # a few seconds of tasks/s history for the chart
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --screenshot="$out/dashboard.png" --window-size=1400,1000 --virtual-time-budget=3000 \
    "http://$http/" >/dev/null 2>&1
  echo "screenshot: $out/dashboard.png"
else
  echo "chromium missing: no screenshot"
fi
