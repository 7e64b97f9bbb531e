#!/usr/bin/env bash
# Stop a control plane started by up.sh and delete its state dir.
#
# Usage: down.sh STATE_DIR [--keep-state]
#
# Kills only the PIDs listed in STATE_DIR/pids, and only if that process's command
# line still mentions STATE_DIR (guards against PID reuse). SIGTERM in reverse start
# order, SIGKILL after 10 s. The state dir is removed only if it carries up.sh's
# marker file, unless --keep-state or MLOPS_K8S_KEEP_STATE=1.
set -uo pipefail

STATE=${1:-${MLOPS_K8S_STATE:-}}
[ -n "$STATE" ] || { echo "usage: down.sh STATE_DIR [--keep-state]" >&2; exit 2; }
KEEP=${MLOPS_K8S_KEEP_STATE:-0}
[ "${2:-}" = --keep-state ] && KEEP=1
[ -d "$STATE" ] || exit 0
STATE=$(cd "$STATE" && pwd)
PIDS=$STATE/pids

ours() { # ours <pid>: alive and started for this state dir
  local pid=$1
  [ "$pid" != "$$" ] && [ "$pid" != "$PPID" ] || return 1   # never the watchdog running us
  [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$STATE"
}

if [ -f "$PIDS" ]; then
  # reverse order: watchdog, kwok, scheduler, controller-manager, apiserver, etcd
  mapfile -t lines < <(tac "$PIDS")
  victims=()
  for l in "${lines[@]}"; do
    pid=${l##* }
    [[ $pid =~ ^[0-9]+$ ]] || continue
    if ours "$pid"; then kill -TERM "$pid" 2>/dev/null && victims+=("$pid"); fi
  done
  deadline=$((SECONDS + 10))
  for pid in "${victims[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null && ours "$pid"; then kill -KILL "$pid" 2>/dev/null; fi
  done
fi

if [ "$KEEP" != 1 ] && [ -f "$STATE/.mlops-k8s-state" ]; then
  rm -rf -- "$STATE"
fi
