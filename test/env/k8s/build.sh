#!/usr/bin/env bash
# Build (once) the binaries for a real Kubernetes control plane used by tests:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes v1.36.3)
#   kubelet                                                          (same module: the real node)
#   etcd                                                             (go.etcd.io/etcd/server/v3, 3.6.x)
#   kwok                                                             (sigs.k8s.io/kwok v0.8.0)
#   containerd, containerd-shim-runc-v2, ctr                         (containerd v2.2.9: the real node)
# into ${MLOPS_TEST_CACHE:-$HOME/.cache/mlops-test}/k8s-v1.36.3/bin.
#
# Idempotent: a binary that already exists is skipped. Only the Go module proxy is
# needed. Safe to run concurrently (flock). Nothing is written inside the repo.
#
# Env:
#   MLOPS_TEST_CACHE          cache root (default $HOME/.cache/mlops-test)
#   MLOPS_K8S_ETCD_VERSION    etcd server module version (default v3.6.8 = what k8s 1.36.3 pins)
#   MLOPS_K8S_NO_KUBECTL=1    do not build kubectl (only needed for debugging/proving)
#   MLOPS_K8S_KEEP_GOCACHE=1  keep the private Go build cache after a complete build
#   MLOPS_K8S_BUILD_NICE      nice level (default 10); GOFLAGS gets -p=${MLOPS_K8S_BUILD_PAR:-2}
set -euo pipefail

K8S_VERSION=v1.36.3
K8S_MINOR=36
STAGING_VERSION=v0.36.3
ETCD_VERSION=${MLOPS_K8S_ETCD_VERSION:-v3.6.8}
KWOK_VERSION=v0.8.0
CONTAINERD_VERSION=${MLOPS_CONTAINERD_VERSION:-v2.2.9}

CACHE_ROOT=${MLOPS_TEST_CACHE:-$HOME/.cache/mlops-test}
CACHE=$CACHE_ROOT/k8s-$K8S_VERSION
BIN=$CACHE/bin
SRC=$CACHE/src
LOG=$CACHE/build-times.log
mkdir -p "$BIN" "$SRC"

NICE=(nice -n "${MLOPS_K8S_BUILD_NICE:-10}")
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-} -p=${MLOPS_K8S_BUILD_PAR:-2} -buildvcs=false -trimpath"
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
# A private build cache: makes the cold build reproducible/measurable and lets us
# drop several GB once every binary exists.
export GOCACHE=$CACHE/go-build

log() { printf '[k8s-build] %s\n' "$*" >&2; }

exec 9>"$CACHE/.build.lock"
flock 9

want=(kube-apiserver kube-controller-manager kube-scheduler kubelet etcd kwok containerd containerd-shim-runc-v2 ctr)
[ "${MLOPS_K8S_NO_KUBECTL:-}" = 1 ] || want+=(kubectl)
missing=()
for b in "${want[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
# kwok's PortForward/ClusterPortForward CRDs (up.sh creates them; kwok --enable-crds watches them)
KWOK_CRDS=(portforwards clusterportforwards)
kwok_files_ok() {
  [ -s "$CACHE/kwok-stages.yaml" ] || return 1
  local c; for c in "${KWOK_CRDS[@]}"; do [ -s "$CACHE/kwok-crd-$c.yaml" ] || return 1; done
}
if [ ${#missing[@]} -eq 0 ] && kwok_files_ok; then
  log "all binaries present in $BIN"
  exit 0
fi
log "to build: ${missing[*]:-(none; kwok stages/CRDs only)}"

timed() { # timed <name> <cmd...>: run, record wall time
  local name=$1; shift
  local t0=$SECONDS
  "$@"
  local dt=$((SECONDS - t0))
  printf '%s\t%s\t%ss\n' "$(date -u +%FT%TZ)" "$name" "$dt" >>"$LOG"
  log "$name: ${dt}s"
}

has() { [[ " ${missing[*]} " == *" $1 "* ]]; }

# ---------------------------------------------------------------- kubernetes
K8S_SRC=$SRC/kubernetes
prepare_k8s_module() {
  [ -f "$K8S_SRC/.ready" ] && grep -q cmd/kubelet "$K8S_SRC/tools.go" && return 0
  rm -rf "$K8S_SRC"; mkdir -p "$K8S_SRC"
  # Read k8s.io/kubernetes' own go.mod to find every staging module it replaces
  # with ./staging/src/k8s.io/<name>. Only the ones it also *requires* (as v0.0.0)
  # are replaced here: k8s.io/sample-cli-plugin is in its replace block but not
  # required, and v0.36.3 of it is not served by proxy.golang.org (403).
  local gomod
  gomod=$(cd "$K8S_SRC" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "cannot download k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
  local staged required
  staged=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*#\1#p' "$gomod" | sort -u)
  required=$(sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) v0\.0\.0$#\1#p' "$gomod" | sort -u)
  {
    echo "module mlops.test/k8s-$K8S_VERSION"
    echo
    echo "go $(sed -n 's/^go //p' "$gomod")"
    sed -n '/^godebug /p' "$gomod"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    comm -12 <(echo "$staged") <(echo "$required") | while read -r m; do
      echo "	$m => $m $STAGING_VERSION"
    done
    echo ")"
  } >"$K8S_SRC/go.mod"
  cat >"$K8S_SRC/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  (cd "$K8S_SRC" && "${NICE[@]}" go mod tidy)
  touch "$K8S_SRC/.ready"
}

build_k8s() { # build_k8s <name>
  local name=$1
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$K8S_MINOR -X k8s.io/component-base/version.gitTreeState=clean"
  (cd "$K8S_SRC" && "${NICE[@]}" go build -ldflags "$ld" -o "$BIN/.$name.tmp" "k8s.io/kubernetes/cmd/$name")
  mv -f "$BIN/.$name.tmp" "$BIN/$name"
}

if has kube-apiserver || has kube-controller-manager || has kube-scheduler || has kubectl || has kubelet; then
  timed "k8s-modules(download+tidy)" prepare_k8s_module
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
    has "$b" && timed "$b" build_k8s "$b"
  done
fi

# ---------------------------------------------------------------------- etcd
ETCD_SRC=$SRC/etcd-$ETCD_VERSION
build_etcd() {
  # go.etcd.io/etcd/server/v3's go.mod has replace directives (../api etc.), so
  # `go install go.etcd.io/etcd/server/v3@...` is refused. A wrapper module that
  # calls etcdmain.Main works: replaces in dependencies are ignored and the
  # sibling modules resolve from the proxy at the same version.
  if [ ! -f "$ETCD_SRC/.ready" ]; then
    rm -rf "$ETCD_SRC"; mkdir -p "$ETCD_SRC"
    cat >"$ETCD_SRC/go.mod" <<GOMOD
module mlops.test/etcd

go 1.24

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/api/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 $ETCD_VERSION
	go.etcd.io/etcd/client/v3 $ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 $ETCD_VERSION
)
GOMOD
    cat >"$ETCD_SRC/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    (cd "$ETCD_SRC" && "${NICE[@]}" go mod tidy)
    touch "$ETCD_SRC/.ready"
  fi
  (cd "$ETCD_SRC" && "${NICE[@]}" go build -ldflags "-s -w" -o "$BIN/.etcd.tmp" .)
  mv -f "$BIN/.etcd.tmp" "$BIN/etcd"
}
has etcd && timed "etcd($ETCD_VERSION)" build_etcd

# ---------------------------------------------------------------------- kwok
build_kwok() {
  local tmp; tmp=$(mktemp -d "$CACHE/.kwok.XXXXXX")
  GOBIN=$tmp "${NICE[@]}" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  mv -f "$tmp/kwok" "$BIN/kwok"; rmdir "$tmp"
}
has kwok && timed "kwok($KWOK_VERSION)" build_kwok

# ---------------------------------------------------------------- containerd
# containerd v2 (Debian's 1.6 is too old for kubelet 1.36's CRI), its runc shim and
# ctr, static: no cgo, btrfs snapshotter left out. Its go.mod has no replace
# directives, so go install works.
build_containerd() {
  local tmp; tmp=$(mktemp -d "$CACHE/.containerd.XXXXXX")
  GOBIN=$tmp "${NICE[@]}" go install -tags no_btrfs \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" \
    "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION"
  local b; for b in containerd containerd-shim-runc-v2 ctr; do mv -f "$tmp/$b" "$BIN/$b"; done
  rmdir "$tmp"
}
if has containerd || has containerd-shim-runc-v2 || has ctr; then
  timed "containerd($CONTAINERD_VERSION)" build_containerd
fi

# The kwok binary embeds no Stages: without a config it exits with "no stages
# found" (kwokctl normally passes them). Assemble the same defaults kwokctl uses
# (node-fast + heartbeat-with-lease + pod-fast) from the module source.
# Also copy the PortForward/ClusterPortForward CRDs (kustomize/crd/bases): up.sh POSTs
# them as application/yaml (one document each) before starting kwok --enable-crds=...
if ! kwok_files_ok; then
  kdir=$(cd "$SRC" && go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  [ -d "$kdir/kustomize" ] || { log "cannot download sigs.k8s.io/kwok@$KWOK_VERSION"; exit 1; }
  if [ ! -s "$CACHE/kwok-stages.yaml" ]; then
    st=$kdir/kustomize/stage
    {
      for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
               pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
        echo "---"; cat "$st/$f"
      done
    } >"$CACHE/.kwok-stages.yaml.tmp"
    mv -f "$CACHE/.kwok-stages.yaml.tmp" "$CACHE/kwok-stages.yaml"
    log "wrote $CACHE/kwok-stages.yaml"
  fi
  for c in "${KWOK_CRDS[@]}"; do
    # drop the leading "---" line: the apiserver's YAML decoder takes exactly one document
    sed '/^---$/d' "$kdir/kustomize/crd/bases/kwok.x-k8s.io_$c.yaml" >"$CACHE/.kwok-crd-$c.yaml.tmp"
    mv -f "$CACHE/.kwok-crd-$c.yaml.tmp" "$CACHE/kwok-crd-$c.yaml"
  done
  log "wrote $CACHE/kwok-crd-{$(IFS=,; echo "${KWOK_CRDS[*]}")}.yaml"
fi

for b in "${want[@]}"; do [ -x "$BIN/$b" ] || { log "missing $b after build"; exit 1; }; done
if [ "${MLOPS_K8S_KEEP_GOCACHE:-}" != 1 ]; then
  log "removing private Go build cache $GOCACHE ($(du -sh "$GOCACHE" 2>/dev/null | cut -f1))"
  rm -rf "$GOCACHE"
fi
log "done: $(ls "$BIN" | tr '\n' ' ')"
