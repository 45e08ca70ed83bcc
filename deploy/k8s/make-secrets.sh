#!/usr/bin/env bash
# Writes deploy/k8s/secrets.yaml: the Secrets deploy/k8s/brigade.yaml mounts,
#   brigade-coordinator   ca.pem, coordinator.pem, coordinator-key.pem, auth
#   brigade-worker        ca.pem, worker.token
# from what deploy/make-secrets.sh makes (kept in deploy/k8s/secrets/, with
# client.token and admin.token for you), the coordinator's certificate also
# naming coordinator.brigade.svc and coordinator.brigade.svc.cluster.local.
# No kubectl needed. Usage: deploy/k8s/make-secrets.sh [DIR]   (DIR: deploy/k8s/secrets)
#   BRIGADE_SECRETS_YAML  where to write the Secrets (deploy/k8s/secrets.yaml)
#   BRIGADE_BIN, BRIGADE_SAN  as for deploy/make-secrets.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${1:-$here/secrets}"
BRIGADE_SAN="coordinator.brigade.svc coordinator.brigade.svc.cluster.local ${BRIGADE_SAN:-}" \
    "$here/../make-secrets.sh" "$dir"
b64() { base64 -w0 < "$dir/$1"; }
secret() { # $1 = name, then the files
    local name=$1; shift
    printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: brigade\ntype: Opaque\ndata:\n' "$name"
    for f in "$@"; do printf '  %s: %s\n' "$f" "$(b64 "$f")"; done
}
out="${BRIGADE_SECRETS_YAML:-$here/secrets.yaml}"
umask 077
{
    echo "# Made by deploy/k8s/make-secrets.sh: private keys and tokens. Do not commit."
    secret brigade-coordinator ca.pem coordinator.pem coordinator-key.pem auth
    secret brigade-worker ca.pem worker.token
} > "$out"
echo "wrote $out (kubectl apply -f it); client.token and admin.token are in $dir" >&2
