#!/usr/bin/env bash
# Stop a control plane started by up.sh and delete its state dir.
#
# Usage: down.sh STATE_DIR [--keep-state]
#
# Kills only the PIDs listed in STATE_DIR/pids, and only if that process's command
# line still mentions STATE_DIR (guards against PID reuse). Stops clients first,
# then kube-apiserver, then etcd (SIGTERM, SIGKILL after a short grace). The state dir is removed only if it carries up.sh's
# marker file, unless --keep-state or MLOPS_K8S_KEEP_STATE=1.
set -uo pipefail

STATE=${1:-${MLOPS_K8S_STATE:-}}
[ -n "$STATE" ] || { echo "usage: down.sh STATE_DIR [--keep-state]" >&2; exit 2; }
KEEP=${MLOPS_K8S_KEEP_STATE:-0}
[ "${2:-}" = --keep-state ] && KEEP=1
[ -d "$STATE" ] || exit 0
STATE=$(cd "$STATE" && pwd)
PIDS=$STATE/pids

running() { # running <pid>: exists and is not a zombie (zombies of these detached
  # processes are reaped by PID 1 only after a second or two; kill -0 still succeeds)
  local st
  st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ]
}
ours() { # ours <pid>: alive and started for this state dir
  local pid=$1
  [ "$pid" != "$$" ] && [ "$pid" != "$PPID" ] || return 1   # never the watchdog running us
  running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE"
}

stop() { # stop <name...>: SIGTERM those components, SIGKILL after $GRACE s
  local victims=() name pid
  for name in "$@"; do
    pid=$(awk -v n="$name" '$1==n{print $2}' "$PIDS")
    [[ $pid =~ ^[0-9]+$ ]] || continue
    if ours "$pid"; then kill -TERM "$pid" 2>/dev/null && victims+=("$pid"); fi
  done
  local deadline
  deadline=$(echo "$(date +%s.%N) + $GRACE" | bc)
  for pid in "${victims[@]}"; do
    while running "$pid" && [ "$(echo "$(date +%s.%N) < $deadline" | bc)" = 1 ]; do sleep 0.05; done
    if ours "$pid"; then kill -KILL "$pid" 2>/dev/null; fi
  done
}

# The state is thrown away, so a graceful shutdown buys nothing: give each tier a
# short grace period (MLOPS_K8S_STOP_GRACE, default 2 s), in dependency order.
GRACE=${MLOPS_K8S_STOP_GRACE:-2}
if [ -f "$PIDS" ]; then
  stop watchdog kwok kube-scheduler kube-controller-manager
  stop kube-apiserver
  stop etcd
fi

if [ "$KEEP" != 1 ] && [ -f "$STATE/.mlops-k8s-state" ]; then
  rm -rf -- "$STATE"
fi
