#!/usr/bin/env bash
# Writes what deploy/docker-compose.yml mounts at /secrets: a CA and the
# coordinator's TLS certificate (names: coordinator, localhost, 127.0.0.1),
# the auth file of hashed tokens, and the tokens themselves (worker.token for
# the worker containers, client.token and admin.token for you).
#
# Usage: deploy/make-secrets.sh [DIR]        (DIR: deploy/secrets)
#   BRIGADE_BIN  the brigade binary (target/release/brigade, else target/debug/brigade,
#                else `brigade` on PATH)
#   BRIGADE_SAN  more names the coordinator is reached by, space-separated
# Refuses to overwrite an existing DIR's certificates. The containers run as
# uid 10001: run as root and the files are given to that uid (mode 0600);
# otherwise they are made readable by all (0644) with a warning.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-deploy/secrets}"

if [ -n "${BRIGADE_BIN:-}" ]; then
    bin="$BRIGADE_BIN"
elif [ -x target/release/brigade ]; then
    bin=target/release/brigade
elif [ -x target/debug/brigade ]; then
    bin=target/debug/brigade
else
    bin="$(command -v brigade)" || { echo "make-secrets.sh: no brigade binary (set BRIGADE_BIN)" >&2; exit 1; }
fi

sans=(--san coordinator)
for s in ${BRIGADE_SAN:-}; do sans+=(--san "$s"); done
"$bin" certs --out "$dir" "${sans[@]}" >/dev/null
for role in worker client admin; do
    "$bin" token create --role "$role" --name "$role" --auth-file "$dir/auth" 2>/dev/null >"$dir/$role.token"
    chmod 600 "$dir/$role.token"
done
# The containers (uid 10001) read the coordinator's key, the auth file and
# the worker token.
shared=("$dir/coordinator-key.pem" "$dir/auth" "$dir/worker.token")
if [ "$(id -u)" = 0 ]; then
    chown 10001 "${shared[@]}"
else
    chmod 644 "${shared[@]}"
    echo "make-secrets.sh: not root, so the coordinator key, auth file and worker token in $dir are readable by every local user (the containers run as uid 10001)" >&2
fi
echo "wrote $dir: ca.pem, coordinator.pem + key, auth, worker.token, client.token, admin.token" >&2
