#!/usr/bin/env bash
# Builds the `brigade` container image without pulling anything: no base image,
# no registry. The image's root filesystem is only
#   /usr/local/bin/brigade             the binary (debug info stripped)
#   the shared libraries `ldd` lists    at the paths the binary asks for
#   the dynamic loader                  (its ELF interpreter)
#   /etc/passwd, /etc/group, /etc/nsswitch.conf, /tmp, /data (owned by uid 10001)
# packed into a tarball and turned into an image with `docker import`.
# The entrypoint is `brigade`; the container runs as uid 10001.
#
# Usage:
#   deploy/build-image.sh                      # cargo build --release --locked; tags brigade:latest and brigade:VERSION
#   deploy/build-image.sh --binary PATH        # use this binary instead of building (e.g. target/debug/brigade)
#   deploy/build-image.sh --image NAME:TAG     # tag only NAME:TAG (tests use a throwaway name)
#   deploy/build-image.sh --keep-debug         # do not strip debug info from the binary
set -euo pipefail
cd "$(dirname "$0")/.."

binary=""
image=""
strip_debug=1
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
        --image) image="${2:?--image needs NAME:TAG}"; shift 2 ;;
        --keep-debug) strip_debug=0; shift ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-image.sh: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the docker daemon is not reachable (is it running, may this user use it?)"
command -v ldd >/dev/null 2>&1 || die "ldd is missing (it lists the shared libraries to copy)"

if [ -z "$binary" ]; then
    say "cargo build --release --locked"
    cargo build --release --locked
    binary="${CARGO_TARGET_DIR:-target}/release/brigade"
fi
[ -x "$binary" ] || die "no executable at $binary"

version="$("$binary" --version | awk '{print $2}')"
[ -n "$version" ] || die "could not read the version from '$binary --version'"
if [ -z "$image" ]; then
    tags=("brigade:latest" "brigade:$version")
else
    tags=("$image")
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/brigade-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/data"

say "collecting $binary and its shared libraries"
if [ "$strip_debug" = 1 ] && command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$root/usr/local/bin/brigade" "$binary"
else
    cp "$binary" "$root/usr/local/bin/brigade"
fi
chmod 0755 "$root/usr/local/bin/brigade"

# ldd prints `name => /path (addr)` for libraries, `/path (addr)` for the
# loader, `name (addr)` for the vDSO and `name => not found` for a missing one.
ldd_out="$(ldd "$binary" 2>&1)" || {
    case "$ldd_out" in
        *"not a dynamic executable"*|*"statically linked"*) ldd_out="" ;;
        *) die "ldd $binary failed: $ldd_out" ;;
    esac
}
if printf '%s\n' "$ldd_out" | grep -q 'not found'; then
    die "ldd cannot find some libraries of $binary:
$ldd_out"
fi
libs="$(printf '%s\n' "$ldd_out" | awk '
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }')"
for lib in $libs; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"          # the file itself, under the name the binary asks for
    printf '    %s\n' "$lib" >&2
done

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
brigade:x:10001:10001:brigade:/data:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
brigade:x:10001:
EOF
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"

# Everything root-owned except /data (the state volume starts as a copy of it)
# and a world-writable /tmp; fixed mtimes so the same inputs give the same tar.
tarflags=(--numeric-owner --sort=name --mtime=@0 --format=gnu)
tar -C "$root" "${tarflags[@]}" --owner=0 --group=0 --exclude=./data --exclude=./tmp -cf "$work/rootfs.tar" .
chmod 1777 "$root/tmp"
tar -C "$root" "${tarflags[@]}" --owner=0 --group=0 -rf "$work/rootfs.tar" ./tmp
tar -C "$root" "${tarflags[@]}" --owner=10001 --group=10001 -rf "$work/rootfs.tar" ./data

old_id="$(docker image inspect -f '{{.Id}}' "${tags[0]}" 2>/dev/null || true)"
say "docker import -> ${tags[*]}"
docker import \
    --change 'ENTRYPOINT ["/usr/local/bin/brigade"]' \
    --change 'ENV PATH=/usr/local/bin' \
    --change 'USER 10001:10001' \
    --change 'WORKDIR /data' \
    --change 'EXPOSE 7070' \
    --change "LABEL org.opencontainers.image.title=brigade org.opencontainers.image.version=$version" \
    --message "brigade $version (no base image)" \
    "$work/rootfs.tar" "${tags[0]}" >/dev/null
for t in "${tags[@]:1}"; do
    docker tag "${tags[0]}" "$t"
done
new_id="$(docker image inspect -f '{{.Id}}' "${tags[0]}")"
# The image this replaced, if nothing else names or uses it now.
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ] \
    && [ "$(docker image inspect -f '{{len .RepoTags}}' "$old_id" 2>/dev/null)" = 0 ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
fi

# Smoke: the image runs.
docker run --rm --network none "${tags[0]}" --version >/dev/null \
    || die "the image ${tags[0]} does not run '$binary --version'"

size="$(docker image inspect -f '{{.Size}}' "${tags[0]}")"
printf 'built %s (%s), %s MB\n' "${tags[*]}" "${new_id#sha256:}" "$(( (size + 524288) / 1048576 ))"
