#!/usr/bin/env bash
# A local image registry (Debian `docker-registry`, distribution 2.8) on 127.0.0.1.
#
#   test/env/docker/registry.sh up     start it (installs the package if missing)
#   test/env/docker/registry.sh down   stop the one `up` started, delete its storage
#
# stdout: `REGISTRY=127.0.0.1:<port>` (and `REGISTRY_USER=` / `REGISTRY_PASSWORD=`
# when auth is on); progress goes to stderr.
#
# Settings (environment):
#   MLOPS_REGISTRY_STATE     folder for config, storage, htpasswd, pid, log (/tmp/mlops-registry)
#   MLOPS_REGISTRY_PORT      port on 127.0.0.1 (5000; a free port is chosen if it is taken)
#   MLOPS_REGISTRY_USER      with MLOPS_REGISTRY_PASSWORD: turn on htpasswd basic auth
#   MLOPS_REGISTRY_PASSWORD  (needs apache2-utils for htpasswd, installed if missing)
#   MLOPS_REGISTRY_TOKEN_REALM  instead of htpasswd: bearer-token auth, as Docker Hub, GCR and
#                            Artifact Registry use it; the realm is the token server's URL
#   MLOPS_REGISTRY_TOKEN_CERT   the PEM certificate whose key signs the tokens (issuer
#                            mlops-test-issuer, service mlops-test-registry)
#
# The Docker daemon treats 127.0.0.0/8 registries as insecure (plain HTTP) by
# default, so `docker push 127.0.0.1:<port>/x:1` works without daemon config.
# `docker login` writes credentials to $DOCKER_CONFIG/config.json (default
# ~/.docker): point DOCKER_CONFIG at a temp folder in tests.
set -euo pipefail

STATE=${MLOPS_REGISTRY_STATE:-/tmp/mlops-registry}
PORT=${MLOPS_REGISTRY_PORT:-5000}
USER_NAME=${MLOPS_REGISTRY_USER:-}
PASSWORD=${MLOPS_REGISTRY_PASSWORD:-}
PIDFILE=$STATE/registry.pid

log() { echo "registry.sh: $*" >&2; }
now_ms() { date +%s%3N; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "$@" >&2; }
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

our_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q docker-registry || return 1
  echo "$pid"
}

up() {
  if pid=$(our_pid); then
    log "registry already running (pid $pid)"
    cat "$STATE/env"
    return 0
  fi
  command -v docker-registry >/dev/null 2>&1 || apt_install docker-registry
  rm -rf "$STATE"
  mkdir -p "$STATE/data"

  local auth="" auth_desc=none
  if [ -n "${MLOPS_REGISTRY_TOKEN_REALM:-}" ]; then
    [ -f "${MLOPS_REGISTRY_TOKEN_CERT:-}" ] || { log "MLOPS_REGISTRY_TOKEN_REALM needs MLOPS_REGISTRY_TOKEN_CERT"; return 1; }
    auth_desc="bearer tokens from $MLOPS_REGISTRY_TOKEN_REALM"
    auth="auth:
  token:
    realm: $MLOPS_REGISTRY_TOKEN_REALM
    service: mlops-test-registry
    issuer: mlops-test-issuer
    rootcertbundle: $MLOPS_REGISTRY_TOKEN_CERT"
  elif [ -n "$USER_NAME" ]; then
    [ -n "$PASSWORD" ] || { log "MLOPS_REGISTRY_USER needs MLOPS_REGISTRY_PASSWORD"; return 1; }
    command -v htpasswd >/dev/null 2>&1 || apt_install apache2-utils
    # distribution only accepts bcrypt entries (-B).
    htpasswd -Bbn "$USER_NAME" "$PASSWORD" >"$STATE/htpasswd" 2>/dev/null
    auth_desc="htpasswd, user $USER_NAME"
    auth="auth:
  htpasswd:
    realm: mlops-test
    path: $STATE/htpasswd"
  fi

  if port_busy "$PORT"; then
    log "127.0.0.1:$PORT is taken; choosing a free port"
    PORT=$(free_port)
  fi

  cat >"$STATE/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: $STATE/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$PORT
  secret: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  headers:
    X-Content-Type-Options: [nosniff]
$auth
EOF

  local t0
  t0=$(now_ms)
  # OTEL/bugsnag/notifications are not configured: the registry contacts nothing.
  setsid docker-registry serve "$STATE/config.yml" >"$STATE/registry.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"

  local code deadline=$(( $(date +%s) + 20 ))
  while :; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PORT/v2/" || true)
    [ "$code" = 200 ] || [ "$code" = 401 ] && break
    if ! kill -0 "$pid" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then
      log "registry did not come up; last lines of $STATE/registry.log:"
      tail -n 20 "$STATE/registry.log" >&2
      down
      return 1
    fi
    sleep 0.05
  done
  {
    echo "REGISTRY=127.0.0.1:$PORT"
    if [ -n "$USER_NAME" ]; then
      echo "REGISTRY_USER=$USER_NAME"
      echo "REGISTRY_PASSWORD=$PASSWORD"
    fi
  } >"$STATE/env"
  log "registry pid $pid on 127.0.0.1:$PORT (auth: $auth_desc) after $(( $(now_ms) - t0 )) ms; /v2/ -> $code"
  cat "$STATE/env"
}

down() {
  local pid
  if pid=$(our_pid); then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    log "stopped registry pid $pid"
  else
    log "no registry started by this script is running"
  fi
  rm -rf "$STATE"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
