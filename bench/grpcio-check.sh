#!/usr/bin/env bash
# A stock gRPC client against `brigade up`: Python's grpcio health check and
# reflection listing (bench/python/grpc_stock_check.py), in a venv of its
# own (pip from PyPI). Prints what the client saw; exits non-zero if a check
# fails. Usage: cargo build --release && bench/grpcio-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
B=$(realpath "${B:-./target/release/brigade}")
VENV=${VENV:-/tmp/brigade-grpcio-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q grpcio grpcio-health-checking grpcio-reflection
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$dir" && exec "$B" up --listen "127.0.0.1:$port" --workers 1 > up.log 2>&1) &
up=$!
trap 'kill $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do "$B" health --coordinator "http://127.0.0.1:$port" > /dev/null 2>&1 && break; sleep 0.1; done
"$VENV/bin/python" bench/python/grpc_stock_check.py "127.0.0.1:$port"
