#!/usr/bin/env bash
# Smoke test of the compose cluster: coordinator + 3 workers on a private
# network (TLS and worker tokens, secrets from deploy/make-secrets.sh in a
# temp dir), W_CPU submitted from this host with a client token through the
# coordinator's port on 127.0.0.1, the exact total checked, everything
# removed again (down -v).
#
# Usage: deploy/compose-smoke.sh [--build]
#   BRIGADE_IMAGE  image to run (brigade:latest; built with deploy/build-image.sh
#                  when missing, or always with --build)
#   BRIGADE_BIN    client binary on this host (target/release/brigade, else
#                  `brigade` on PATH, else the image itself on the host network)
set -euo pipefail
cd "$(dirname "$0")/.."

build=0
[ "${1:-}" = "--build" ] && build=1

die() { printf 'compose-smoke.sh: %s\n' "$*" >&2; exit 1; }
say() { printf '==> %s\n' "$*" >&2; }

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the docker daemon is not reachable"
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    die "neither 'docker compose' nor 'docker-compose' is available"
fi

export BRIGADE_IMAGE="${BRIGADE_IMAGE:-brigade:latest}"
if [ "$build" = 1 ] || ! docker image inspect "$BRIGADE_IMAGE" >/dev/null 2>&1; then
    if [ "$BRIGADE_IMAGE" = brigade:latest ]; then
        deploy/build-image.sh
    else
        deploy/build-image.sh --image "$BRIGADE_IMAGE"
    fi
fi

project="brigade-smoke-$$"
dc() { "${compose[@]}" -p "$project" -f deploy/docker-compose.yml "$@"; }
export BRIGADE_PORT=0    # a free port on 127.0.0.1
export BRIGADE_WORKER_ARGS="--procs 2 --threads 2 --async 64"
unset BRIGADE_COORDINATOR_ARGS

secrets="$(mktemp -d)"
ok=0
cleanup() {
    if [ "$ok" != 1 ]; then
        dc logs --no-color --tail 40 >&2 || true
    fi
    dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
    rm -rf "$secrets"
}
trap cleanup EXIT

if [ -n "${BRIGADE_BIN:-}" ] || [ -x target/release/brigade ] || [ -x target/debug/brigade ] || command -v brigade >/dev/null 2>&1; then
    chmod 755 "$secrets"
    deploy/make-secrets.sh "$secrets/s"
else
    die "deploy/make-secrets.sh needs a brigade binary on this host (set BRIGADE_BIN)"
fi
export BRIGADE_SECRETS="$secrets/s"

say "${compose[*]} -p $project up -d --scale worker=3"
dc up -d --scale worker=3
port="$(dc port coordinator 7070 | tail -n1)"
port="${port##*:}"
[ -n "$port" ] || die "the coordinator published no port"
url="https://127.0.0.1:$port"

if [ -n "${BRIGADE_BIN:-}" ]; then
    client=("$BRIGADE_BIN")
elif [ -x target/release/brigade ]; then
    client=(target/release/brigade)
elif command -v brigade >/dev/null 2>&1; then
    client=(brigade)
else
    client=(docker run --rm --network host -e BRIGADE_TOKEN_FILE -e BRIGADE_TLS_CA -v "$BRIGADE_SECRETS:$BRIGADE_SECRETS:ro" "$BRIGADE_IMAGE")
fi
export BRIGADE_TOKEN_FILE="$BRIGADE_SECRETS/client.token" BRIGADE_TLS_CA="$BRIGADE_SECRETS/ca.pem"

say "waiting for 3 workers at $url"
for _ in $(seq 1 300); do
    n="$(timeout 10 "${client[@]}" workers --format csv --coordinator "$url" 2>/dev/null | tail -n +2 | grep -c . || true)"
    [ "$n" = 3 ] && break
    sleep 0.2
done
[ "$n" = 3 ] || die "only ${n:-0} of 3 workers linked to the coordinator within 60 s"

say "W_CPU: sum-squares 0..60000000 in chunks of 1500000"
out="$(timeout 180 "${client[@]}" submit sum-squares --range 0..60000000 --chunk 1500000 --wait --coordinator "$url")"
total="$(printf '%s\n' "$out" | tail -n1)"
expected=71999998200000010000000
[ "$total" = "$expected" ] || die "total $total, expected $expected"
ok=1
printf 'compose smoke ok: 3 workers, W_CPU total %s\n' "$total"
