#!/usr/bin/env bash
# Stop a real node started by up.sh and remove what it made.
#
# Usage: down.sh NODE_STATE_DIR [--keep-state]
#        down.sh --leftovers      (only what a node killed with its state gone can leave:
#                                  the bridge and empty kubepods cgroups)
#
# Only processes this node started are ended, by PID: the kubelet and containerd
# listed in NODE_STATE_DIR/pids (checked against their command line, so a reused
# PID is never hit), then the containers' shims (processes in the node's private
# mount namespace) and the containers' processes (in the kubepods cgroups this
# kubelet made). Mounts lived only in that namespace and vanish with it.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN=${MLOPS_TEST_CACHE:-$HOME/.cache/mlops-test}/k8s-v1.36.3/bin
STATE="" KEEP=0 LOCKED=0 LEFTOVERS=0
for arg in "$@"; do
  case "$arg" in
    --keep-state) KEEP=1 ;;
    --locked) LOCKED=1 ;;
    --leftovers) LEFTOVERS=1 ;;
    *) STATE=$arg ;;
  esac
done
if [ $LOCKED = 0 ]; then exec 8>>/tmp/mlops-real-node.lock; flock -w 60 8 || true; fi

remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  return 0
}
if [ $LEFTOVERS = 1 ]; then
  bridge=${MLOPS_NODE_BRIDGE:-mlopsbr0}
  ip link show "$bridge" >/dev/null 2>&1 && ip link del "$bridge" && echo "removed the bridge $bridge left by an earlier run" >&2
  remove_cgroups
  exit 0
fi

[ -n "$STATE" ] && [ -d "$STATE" ] || exit 0
STATE=$(cd "$STATE" && pwd)
[ -f "$STATE/.mlops-node-state" ] || { echo "$STATE is not a node state dir" >&2; exit 1; }
running() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1; [ -n "$st" ] && [ "$st" != Z ]; }
pid_of() { # pid_of <name>: its PID if it still runs and is this node's
  local pid; pid=$(awk -v n="$1" '$1==n{print $2}' "$STATE/pids" 2>/dev/null)
  [[ $pid =~ ^[0-9]+$ ]] && [ "$pid" != $$ ] && [ "$pid" != "$PPID" ] && running "$pid" || return 1
  if [ "$1" != watchdog ]; then tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE" || return 1; fi
  echo "$pid"
}
stop() { # stop <pid> <grace seconds>
  kill -TERM "$1" 2>/dev/null
  for _ in $(seq 1 $(($2 * 20))); do running "$1" || return 0; sleep 0.05; done
  kill -KILL "$1" 2>/dev/null
  for _ in $(seq 1 40); do running "$1" || return 0; sleep 0.05; done
}

if pid=$(pid_of watchdog); then kill -TERM "$pid" 2>/dev/null; fi
if pid=$(pid_of kubelet); then stop "$pid" 5; fi
NS=""
if pid=$(pid_of containerd); then
  NS=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null || true)
  CTR=("$BIN/ctr" -a "$STATE/containerd.sock" -n k8s.io)
  for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  for t in $("${CTR[@]}" tasks ls -q 2>/dev/null); do "${CTR[@]}" tasks delete -f "$t" >/dev/null 2>&1; done
  stop "$pid" 5
fi
# Whatever is left in the node's mount namespace (shims), then in its pods' cgroups.
if [ -n "$NS" ] && [ "$NS" != "$(readlink /proc/self/ns/mnt)" ]; then
  for p in /proc/[0-9]*; do [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$NS" ] && kill -KILL "${p#/proc/}" 2>/dev/null; done
fi
for f in $(find /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs 2>/dev/null); do
  for p in $(cat "$f" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
done
sleep 0.3
remove_cgroups
[ -s "$STATE/bridge" ] && ip link del "$(cat "$STATE/bridge")" 2>/dev/null
[ -f "$STATE/made-var-lib-cni" ] && rmdir /var/lib/cni 2>/dev/null
[ "$(cat /tmp/mlops-real-node.owner 2>/dev/null)" = "$STATE" ] && : >/tmp/mlops-real-node.owner
if [ $KEEP = 0 ]; then
  # The namespace's mounts are gone with its last process; a busy one is retried briefly.
  for _ in 1 2 3 4 5; do rm -rf -- "$STATE" 2>/dev/null && break; sleep 0.2; done
fi
echo "real node stopped ($STATE)" >&2
