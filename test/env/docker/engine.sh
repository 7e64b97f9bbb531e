#!/usr/bin/env bash
# A real Docker engine for the tests, without a network bridge.
#
#   test/env/docker/engine.sh up     install docker.io if dockerd is missing, start dockerd
#                                   (or reuse one that already answers /_ping), wait for /_ping
#   test/env/docker/engine.sh down   stop the dockerd that `up` started (only that one)
#   test/env/docker/engine.sh status print whether the socket answers, exit 0/1
#
# stdout carries only machine-readable lines (`DOCKER_HOST=...`, `started=...`);
# progress and timings go to stderr, so a mocha setup can parse stdout.
#
# Settings (environment):
#   MLOPS_DOCKER_SOCK     socket path                      (/var/run/docker.sock)
#   MLOPS_DOCKER_ROOT     dockerd --data-root              (/var/lib/docker, keeps images between runs)
#   MLOPS_DOCKER_STATE    pidfile + log folder             (/tmp/mlops-docker)
#   MLOPS_DOCKER_STORAGE  force a storage driver (overlay2 | vfs); default: dockerd picks (overlay2 here)
#   MLOPS_DOCKER_NICE     niceness for dockerd and, by inheritance, containerd, builds and containers (0)
#   MLOPS_DOCKER_TIMEOUT  seconds to wait for /_ping       (60)
#
# The daemon never gets a bridge or iptables rules (--iptables=false --bridge=none):
# every build and container must use host networking (docker build --network host,
# docker run --network host, dockerode NetworkMode 'host').
set -euo pipefail

SOCK=${MLOPS_DOCKER_SOCK:-/var/run/docker.sock}
DATA_ROOT=${MLOPS_DOCKER_ROOT:-/var/lib/docker}
STATE=${MLOPS_DOCKER_STATE:-/tmp/mlops-docker}
NICE=${MLOPS_DOCKER_NICE:-0}
TIMEOUT=${MLOPS_DOCKER_TIMEOUT:-60}
PIDFILE=$STATE/dockerd.pid
LOG=$STATE/dockerd.log

log() { echo "engine.sh: $*" >&2; }
now_ms() { date +%s%3N; }

ping_ok() {
  [ -S "$SOCK" ] || return 1
  [ "$(curl -s --max-time 2 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null)" = OK ]
}

# Our recorded PID, if that process is still a dockerd (guards against PID reuse).
our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q dockerd || return 1
  echo "$pid"
}

install_engine() {
  command -v dockerd >/dev/null 2>&1 && return 0
  local t0
  t0=$(now_ms)
  log "dockerd missing: apt-get install docker.io"
  export DEBIAN_FRONTEND=noninteractive
  # Once per machine: a marker avoids repeating apt-get update on every run.
  if [ ! -f "$STATE/apt-updated" ]; then
    apt-get update -qq >&2
    touch "$STATE/apt-updated"
  fi
  # --no-install-recommends: skips apparmor (this kernel has no LSM), needrestart, git.
  # /usr/sbin/policy-rc.d (exit 101) keeps the package from starting a service.
  apt-get install -y -qq --no-install-recommends docker.io >&2
  log "installed docker.io in $(( $(now_ms) - t0 )) ms"
}

up() {
  mkdir -p "$STATE"
  if ping_ok; then
    if pid=$(our_pid); then
      # Started by an earlier `up`, maybe another test run's on this machine: `down` is that run's to do.
      log "dockerd (pid $pid, started by an earlier up) already answers on $SOCK: reusing it"
      echo "started=no"
    else
      log "a daemon already answers on $SOCK: reusing it, not starting another"
      echo "started=no"
    fi
    echo "DOCKER_HOST=unix://$SOCK"
    return 0
  fi

  install_engine

  if pid=$(our_pid); then
    log "our dockerd (pid $pid) is running but does not answer; stopping it first"
    down
  fi
  # A stale socket file from a killed daemon is fine: dockerd unlinks it before listening.
  # dockerd's own pidfile and exec root live in $STATE, so a stale /var/run/docker.pid
  # from another installation does not block it.

  local args=(
    --iptables=false --ip6tables=false --bridge=none --ip-masq=false
    --host "unix://$SOCK"
    --data-root "$DATA_ROOT"
    --exec-root "$STATE/exec"
    --pidfile "$STATE/dockerd.self.pid"
    # No port publishing without a bridge, so no docker-proxy processes.
    --userland-proxy=false
  )
  [ -n "${MLOPS_DOCKER_STORAGE:-}" ] && args+=(--storage-driver "$MLOPS_DOCKER_STORAGE")

  local t0
  t0=$(now_ms)
  : >"$LOG"
  # setsid: own session, so the daemon outlives this script and its terminal.
  # (In a background job setsid does not fork, so $! is dockerd itself.)
  nice -n "$NICE" setsid dockerd "${args[@]}" >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"

  local deadline=$(( $(date +%s) + TIMEOUT ))
  until ping_ok; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "dockerd exited during start; last lines of $LOG:"
      tail -n 30 "$LOG" >&2
      rm -f "$PIDFILE"
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "dockerd did not answer /_ping within ${TIMEOUT}s; last lines of $LOG:"
      tail -n 30 "$LOG" >&2
      down
      return 1
    fi
    sleep 0.1
  done
  log "dockerd pid $pid answers on $SOCK after $(( $(now_ms) - t0 )) ms (log: $LOG)"
  echo "started=ours"
  echo "DOCKER_HOST=unix://$SOCK"
}

down() {
  local pid
  if ! pid=$(our_pid); then
    rm -f "$PIDFILE"
    log "no dockerd started by this script is running"
    return 0
  fi
  local t0
  t0=$(now_ms)
  kill -TERM "$pid"
  # dockerd stops its containers (10 s grace each) and its managed containerd.
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "dockerd pid $pid still alive after 30 s: SIGKILL"
    kill -KILL "$pid" || true
  fi
  rm -f "$PIDFILE"
  # dockerd leaves the bind mount of the host network namespace behind
  # ($STATE/exec/netns/default); without this, rm -rf of $STATE fails with EBUSY.
  awk -v p="$STATE/exec/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  log "stopped dockerd pid $pid in $(( $(now_ms) - t0 )) ms"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if ping_ok; then echo "DOCKER_HOST=unix://$SOCK"; else exit 1; fi ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
