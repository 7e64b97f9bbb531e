#!/usr/bin/env bash
# A local stand-in for the `node:20-slim` base image, made from this machine's
# files with `docker import` (no registry is reachable, nothing is pulled).
# It has a tag of its own, never `node:20-slim`: an image named like the
# official one but holding something else would make every size and
# behaviour measured on it look like the official image's. Tests and
# benchmarks build FROM it through MLOPS_BASE_IMAGE (test/env/docker.ts).
#
#   test/env/docker/base-image.sh            create the image unless a good one has the tag
#   test/env/docker/base-image.sh --force    rebuild it even so
#
# An image with the tag is reused only if it is labelled as this stand-in
# (org.mlops.standin=true), its label org.mlops.node-version is v20.x, and
# its node binary says v20.x; otherwise it is rebuilt. Building needs the
# host's Node to be 20 (it is copied in): any other version is an error.
#
# Contents: the host's Node 20 binary (`command -v node`) as /usr/local/bin/node,
# npm + corepack from the global node_modules as /usr/local/lib/node_modules,
# every .so of libc6 (librt, libresolv, gconv, ...) plus node's other shared
# libraries (libstdc++, libgcc_s), dash as /bin/sh, busybox applets (apt
# `busybox`), /etc/ssl/certs (with the local proxy CA in ca-certificates.crt),
# nsswitch.conf `hosts: files dns`, users root and node (1000:1000), /tmp 1777.
# Config: NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt,
# NPM_CONFIG_UPDATE_NOTIFIER=false (not in the official image: saves a registry
# request per npm call and its stderr notice), the official
# image's docker-entrypoint.sh, CMD ["node"].
#
# Needs root (files in the image are owned by root, /home/node by 1000) and a
# running engine (engine.sh up). Honours DOCKER_HOST.
# stdout: `image=<tag>` and `id=<sha256:...>` lines; progress and timings go to stderr.
#
# Settings: MLOPS_BASE_TAG (mlops-test/node:20-slim-standin; never node:*),
# MLOPS_NODE_BIN (command -v node).
set -euo pipefail

TAG=${MLOPS_BASE_TAG:-mlops-test/node:20-slim-standin}
NODE_BIN=$(readlink -f "${MLOPS_NODE_BIN:-$(command -v node)}")
FORCE=0
[ "${1:-}" = --force ] && FORCE=1

log() { echo "base-image.sh: $*" >&2; }
fail() { log "error: $*"; exit 1; }
now_ms() { date +%s%3N; }

case "$TAG" in
  node:* | library/node:* | docker.io/node:* | docker.io/library/node:*)
    fail "MLOPS_BASE_TAG=$TAG is the official image's name; the stand-in needs a tag of its own" ;;
esac

# Why an image with the tag cannot be reused, or nothing when it can.
unusable() {
  local labels version
  labels=$(docker image inspect --format '{{index .Config.Labels "org.mlops.standin"}} {{index .Config.Labels "org.mlops.node-version"}}' "$TAG" 2>/dev/null) \
    || { echo "absent"; return; }
  case "$labels" in
    "true v20."*) ;;
    *) echo "not this stand-in, or not Node 20 (labels org.mlops.standin, org.mlops.node-version: '$labels')"; return ;;
  esac
  version=$(docker run --rm --pull=never --network host --entrypoint /usr/local/bin/node "$TAG" --version 2>/dev/null) \
    || { echo "its node binary does not run"; return; }
  case "$version" in
    v20.*) ;;
    *) echo "its node binary is $version, not Node 20"; return ;;
  esac
}

if [ "$FORCE" = 0 ]; then
  why=$(unusable)
  if [ -z "$why" ]; then
    log "$TAG already present (Node 20 stand-in)"
    echo "image=$TAG"
    echo "id=$(docker image inspect --format '{{.Id}}' "$TAG")"
    exit 0
  fi
  [ "$why" = absent ] || log "rebuilding $TAG: $why"
fi

NODE_VERSION=$("$NODE_BIN" --version)
case "$NODE_VERSION" in
  v20.*) ;;
  *) fail "$NODE_BIN is $NODE_VERSION, not Node 20: a stand-in for node:20-slim needs Node 20 on the host (MLOPS_NODE_BIN names another binary)" ;;
esac
NODE_MODULES=$(dirname "$(dirname "$NODE_BIN")")/lib/node_modules
[ -d "$NODE_MODULES/npm" ] || NODE_MODULES=$("$NODE_BIN" "$(command -v npm)" root -g)
[ -d "$NODE_MODULES/npm" ] || fail "npm not found next to $NODE_BIN"

if ! command -v busybox >/dev/null 2>&1; then
  log "installing busybox (apt)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox >&2; }
fi
BUSYBOX=$(readlink -f "$(command -v busybox)")

t0=$(now_ms)
ROOT=$(mktemp -d /tmp/mlops-base-image.XXXXXX)
trap 'rm -rf "$ROOT"' EXIT

# --- layout: Debian bookworm is usr-merged --------------------------------------
mkdir -p "$ROOT"/usr/{bin,sbin,lib/x86_64-linux-gnu,lib64,local/bin,local/lib} \
  "$ROOT"/{etc/ssl,root,home/node,tmp,proc,sys,dev,run,var/tmp}
ln -s usr/bin "$ROOT/bin"
ln -s usr/sbin "$ROOT/sbin"
ln -s usr/lib "$ROOT/lib"
ln -s usr/lib64 "$ROOT/lib64"

# Copy a host file to the same path under the usr-merged root (follows symlinks
# for the content, keeps the name that was asked for).
put() {
  local src=$1 rel=${2:-$1}
  rel=${rel#/}
  case "$rel" in bin/* | sbin/* | lib/* | lib64/*) rel=usr/$rel ;; esac
  mkdir -p "$ROOT/$(dirname "$rel")"
  cp -L --preserve=mode "$src" "$ROOT/$rel"
}

# --- shared libraries: all of libc6, plus whatever node/dash/busybox link to ----
while read -r f; do
  [ -e "$f" ] && [ ! -d "$f" ] && put "$f"
done < <(dpkg -L libc6 | grep -E '\.so(\.[0-9]+)*$')
for bin in "$NODE_BIN" /bin/dash "$BUSYBOX"; do
  while read -r lib; do put "$lib"; done < <(ldd "$bin" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u)
done

# --- programs ---------------------------------------------------------------------
put "$NODE_BIN" /usr/local/bin/node
cp -a "$NODE_MODULES" "$ROOT/usr/local/lib/node_modules"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
[ -d "$NODE_MODULES/corepack" ] && ln -s ../lib/node_modules/corepack/dist/corepack.js "$ROOT/usr/local/bin/corepack"
put /bin/dash /usr/bin/dash
ln -s dash "$ROOT/usr/bin/sh"
put "$BUSYBOX" /usr/bin/busybox
# Every applet as a symlink, except sh (dash is /bin/sh) and any name already taken.
while read -r applet; do
  name=${applet##*/}
  [ "$name" = sh ] && continue
  rel=$applet
  case "$rel" in bin/* | sbin/*) rel=usr/$rel ;; esac
  [ -e "$ROOT/$rel" ] || [ -L "$ROOT/$rel" ] && continue
  [ -e "$ROOT/usr/local/bin/$name" ] && continue
  mkdir -p "$ROOT/$(dirname "$rel")"
  ln -s /usr/bin/busybox "$ROOT/$rel"
done < <("$BUSYBOX" --list-full)

# The official image's entrypoint: `docker run node:20-slim -e '...'` runs node.
cat >"$ROOT/usr/local/bin/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
EOF
chmod 755 "$ROOT/usr/local/bin/docker-entrypoint.sh"

# --- /etc -------------------------------------------------------------------------
# Certificates as plain files (the host's are symlinks into /usr/share/ca-certificates).
cp -rL /etc/ssl/certs "$ROOT/etc/ssl/certs"
[ -s "$ROOT/etc/ssl/certs/ca-certificates.crt" ] || fail "no /etc/ssl/certs/ca-certificates.crt on the host"
cat >"$ROOT/etc/nsswitch.conf" <<'EOF'
passwd:         files
group:          files
shadow:         files
hosts:          files dns
networks:       files
protocols:      files
services:       files
EOF
cat >"$ROOT/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
node:x:1000:1000::/home/node:/bin/sh
EOF
cat >"$ROOT/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
node:x:1000:
EOF
cat >"$ROOT/etc/shadow" <<'EOF'
root:*:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
node:!:19000:0:99999:7:::
EOF
chmod 640 "$ROOT/etc/shadow"
for f in /etc/protocols /etc/services /etc/host.conf; do [ -f "$f" ] && put "$f"; done
# Docker bind-mounts hosts, hostname and resolv.conf; empty files keep the paths stable.
: >"$ROOT/etc/hosts"
: >"$ROOT/etc/hostname"
: >"$ROOT/etc/resolv.conf"
printf 'NAME="mlops node:20-slim stand-in"\nID=debian\nVERSION_ID=12\n' >"$ROOT/etc/os-release"

chmod 1777 "$ROOT/tmp" "$ROOT/var/tmp"
chmod 700 "$ROOT/root"
chown 1000:1000 "$ROOT/home/node"
chmod 755 "$ROOT/home/node"

# --- import -----------------------------------------------------------------------
t1=$(now_ms)
id=$(tar -C "$ROOT" --numeric-owner -cf - . | docker import \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=${NODE_VERSION#v}" \
  --change "ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt" \
  --change "ENV NPM_CONFIG_UPDATE_NOTIFIER=false" \
  --change "LABEL org.mlops.standin=true org.mlops.standin-for=node:20-slim org.mlops.node-version=$NODE_VERSION org.opencontainers.image.description=\"stand-in for node:20-slim, not the official image: host Node $NODE_VERSION copied into a Debian slim root\"" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  --message "mlops stand-in for node:20-slim (host files, Node $NODE_VERSION)" \
  - "$TAG")
t2=$(now_ms)
size=$(docker image inspect --format '{{.Size}}' "$TAG")
log "built $TAG ($id): staging $((t1 - t0)) ms, import $((t2 - t1)) ms, total $((t2 - t0)) ms, size $((size / 1000000)) MB"
echo "image=$TAG"
echo "id=$id"
