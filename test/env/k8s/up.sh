#!/usr/bin/env bash
# Start a throw-away Kubernetes control plane on 127.0.0.1 for tests:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok (one fake Node).
# kwok also serves the kubelet API of that node on 127.0.0.1:kwokPort (HTTPS), so
# pods/portforward works through the apiserver for any pod matched by a kwok
# PortForward / ClusterPortForward object (CRDs created here; see README.md).
# Binaries come from build.sh (run it first; up.sh runs it if something is missing
# unless MLOPS_K8S_NO_BUILD=1). No registry, no containers, no root needed.
#
# Usage: up.sh [STATE_DIR]      (default: a new mktemp -d under ${TMPDIR:-/tmp})
#
# stdout: one line of JSON (also written to STATE_DIR/cluster.json):
#   {"stateDir","server","kubeconfig","restrictedKubeconfig","restrictedUser",
#    "caFile","nodeName","pidFile","startupSeconds","kwokPort"}
# stderr: progress. Component logs: STATE_DIR/logs/*.log. PIDs: STATE_DIR/pids.
# Stop with: down.sh STATE_DIR   (kills only the PIDs in STATE_DIR/pids).
#
# Env:
#   MLOPS_TEST_CACHE        cache root (default $HOME/.cache/mlops-test)
#   MLOPS_K8S_NO_BUILD=1    fail instead of building missing binaries
#   MLOPS_K8S_WATCH_PID=N   also start a watchdog that runs down.sh when PID N exits
#                           (e.g. the mocha process), so a killed test run leaves nothing behind
#   MLOPS_K8S_TIMEOUT       seconds to wait for readiness (default 120)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_VERSION=v1.36.3
CACHE=${MLOPS_TEST_CACHE:-$HOME/.cache/mlops-test}/k8s-$K8S_VERSION
BIN=$CACHE/bin
TIMEOUT=${MLOPS_K8S_TIMEOUT:-120}
NODE_NAME=kwok-node-0
RESTRICTED_USER=mlops-restricted
T0=$(date +%s.%N)

log() { printf '[k8s-up %5.1fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*" >&2; }

KWOK_CRDS=(portforwards clusterportforwards)   # written by build.sh from the kwok module
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
  if [ ! -x "$BIN/$b" ] || [ ! -f "$CACHE/kwok-stages.yaml" ] ||
     [ ! -f "$CACHE/kwok-crd-${KWOK_CRDS[0]}.yaml" ] || [ ! -f "$CACHE/kwok-crd-${KWOK_CRDS[1]}.yaml" ]; then
    [ "${MLOPS_K8S_NO_BUILD:-}" = 1 ] && { echo "missing $BIN/$b (run $HERE/build.sh)" >&2; exit 1; }
    "$HERE/build.sh" >&2
    break
  fi
done

if [ $# -ge 1 ]; then
  STATE=$1; mkdir -p "$STATE"
  [ -z "$(ls -A "$STATE")" ] || { echo "state dir $STATE is not empty" >&2; exit 1; }
else
  STATE=$(mktemp -d "${TMPDIR:-/tmp}/mlops-k8s.XXXXXX")
fi
STATE=$(cd "$STATE" && pwd)
touch "$STATE/.mlops-k8s-state"   # down.sh only deletes dirs carrying this marker
PKI=$STATE/pki LOGS=$STATE/logs PIDS=$STATE/pids
mkdir -p -m 700 "$STATE/etcd"
mkdir -p "$PKI" "$LOGS" "$STATE/kwok-home" "$STATE/cert-dir"
: >"$PIDS"

ok=0
cleanup() { [ $ok = 1 ] || { log "start-up failed; logs in $LOGS"; "$HERE/down.sh" "$STATE" --keep-state >&2 || true; }; }
trap cleanup EXIT

# ------------------------------------------------------------------ ports
# Ask the kernel for free ports on 127.0.0.1 (all held open together so they differ).
read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT < <(python3 - <<'PY'
import socket
socks = []
for _ in range(6):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)
SERVER=https://127.0.0.1:$API_PORT

# -------------------------------------------------------------------- pki
# EC P-256 keys: generated in milliseconds. The apiserver accepts ES256 for
# service-account signing as well.
(
  cd "$PKI"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
  sign() { # sign <name> <subject> <extfile-content>
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile <(printf '%s\n' "$3") -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
  }
  key ca
  openssl req -x509 -new -key ca.key -subj "/CN=mlops-test-ca" -days 30 -out ca.crt \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  key apiserver
  sign apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  cli="extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  key admin;      sign admin "/O=system:masters/CN=mlops-admin" "$cli"
  # kube-apiserver -> kwok's kubelet API: client cert (kwok does not check it, but a
  # real kubelet would) and kwok's serving cert for 127.0.0.1, verified by the apiserver
  # through --kubelet-certificate-authority (without it the apiserver skips verification).
  key kubelet-client; sign kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$cli"
  key kwok; sign kwok "/CN=$NODE_NAME" "subjectAltName=IP:127.0.0.1,DNS:$NODE_NAME
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  key restricted; sign restricted "/CN=$RESTRICTED_USER" "$cli"
  key sa; openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  chmod 600 ./*.key
)
log "certs and keys generated"

b64() { base64 -w0 <"$1"; }
kubeconfig() { # kubeconfig <file> <user> <cert> <key>
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: mlops-test
  cluster:
    server: $SERVER
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$3")
    client-key-data: $(b64 "$4")
contexts:
- name: $2@mlops-test
  context: {cluster: mlops-test, user: $2, namespace: default}
current-context: $2@mlops-test
KC
  chmod 600 "$1"
}
kubeconfig "$STATE/admin.kubeconfig" mlops-admin "$PKI/admin.crt" "$PKI/admin.key"
kubeconfig "$STATE/restricted.kubeconfig" "$RESTRICTED_USER" "$PKI/restricted.crt" "$PKI/restricted.key"

# ------------------------------------------------------------- processes
start() { # start <name> <cmd...>: detached, own session, no inherited fds
  local name=$1; shift
  setsid "$@" </dev/null >"$LOGS/$name.log" 2>&1 &
  echo "$name $!" >>"$PIDS"
}
alive() { # alive <component>: running and not a zombie
  local pid st; pid=$(awk -v n="$1" '$1==n{print $2}' "$PIDS")
  st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) && [ "$st" != Z ]
}
wait_until() { # wait_until <what> <component-to-watch> <cmd...>
  local what=$1 comp=$2; shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    alive "$comp" || { log "$comp exited; tail of its log:"; tail -20 "$LOGS/$comp.log" >&2; return 1; }
    [ $SECONDS -lt $deadline ] || { log "timed out waiting for $what"; return 1; }
    sleep 0.1
  done
  log "$what"
}
api() { # api <method> <path> [json-body]: as admin
  curl -sS --fail-with-body --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$SERVER$2"
}

start etcd "$BIN/etcd" \
  --name=mlops-test \
  --data-dir="$STATE/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="mlops-test=http://127.0.0.1:$ETCD_PEER_PORT" \
  --unsafe-no-fsync \
  --log-level=warn
wait_until "etcd healthy (127.0.0.1:$ETCD_PORT)" etcd curl -sf --max-time 1 "http://127.0.0.1:$ETCD_PORT/health"

start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$API_PORT" \
  --cert-dir="$STATE/cert-dir" \
  --tls-cert-file="$PKI/apiserver.crt" \
  --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --kubelet-client-certificate="$PKI/kubelet-client.crt" \
  --kubelet-client-key="$PKI/kubelet-client.key" \
  --kubelet-certificate-authority="$PKI/ca.crt" \
  --kubelet-preferred-address-types=InternalIP \
  --authorization-mode=RBAC \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" \
  --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.96.0.0/24 \
  --endpoint-reconciler-type=none \
  --profiling=false \
  --v=0
# kwok's PortForward / ClusterPortForward CRDs: POSTed as soon as the apiserver takes them
# (~1.3 s before /readyz passes), so they are Established by the time kwok starts watching.
# 409 = created by an earlier attempt. (The YAML goes in as is: application/yaml.)
post_crds() {
  local c code
  for c in "${KWOK_CRDS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      -X POST -H 'Content-Type: application/yaml' --data-binary "@$CACHE/kwok-crd-$c.yaml" \
      "$SERVER/apis/apiextensions.k8s.io/v1/customresourcedefinitions") || return 1
    [ "$code" = 201 ] || [ "$code" = 409 ] || return 1
  done
}
wait_until "kwok CRDs created (${KWOK_CRDS[*]})" kube-apiserver post_crds
# Established, and the resource's watch cache initialized: the cache is only built on the
# first request for the resource, and until it is ready a watch gets HTTP 429, which put
# kwok's informers into a ~1 s back-off (objects created right after up.sh went unseen).
# A list with resourceVersion=0 is served from that cache: 200 means it is ready.
crds_established() {
  local c
  for c in "${KWOK_CRDS[@]}"; do
    api GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$c.kwok.x-k8s.io" |
      jq -e '.status.conditions[]? | select(.type=="Established" and .status=="True")' || return 1
    api GET "/apis/kwok.x-k8s.io/v1alpha1/$c?resourceVersion=0&limit=1" || return 1
  done
}
wait_until "kwok CRDs established, watch cache ready (${KWOK_CRDS[*]})" kube-apiserver crds_established
# The apiserver makes the first create of a custom resource sleep 2 s when its CRD became
# Established less than 2 s ago (an HA safety wait; lastTransitionTime has 1 s resolution,
# so up to ~3 s); they are created only ~1-2 s before up.sh returns, so a test's first
# (Cluster)PortForward could pay those 2 s. Backdating the condition (one status PUT per
# CRD, no spec change, so the served storage is untouched) avoids it; done while /readyz
# is still pending, so it costs nothing.
backdate_established() {
  local c crd when; when=$(date -u -d '-1 min' +%FT%TZ)
  for c in "${KWOK_CRDS[@]}"; do
    crd=$(api GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$c.kwok.x-k8s.io") &&
    api PUT "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$c.kwok.x-k8s.io/status" "$(jq -c --arg t "$when" \
      '.status.conditions |= map(if .type=="Established" then .lastTransitionTime=$t else . end)' <<<"$crd")" >/dev/null || return 1
  done
}
backdate_established || backdate_established || log "warning: could not backdate the kwok CRDs' Established condition (first create of each will take 2 s)"
wait_until "kube-apiserver ready ($SERVER)" kube-apiserver api GET /readyz

ckc=$STATE/admin.kubeconfig
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig="$ckc" \
  --bind-address=127.0.0.1 \
  --secure-port="$KCM_PORT" \
  --cert-dir="$STATE/cert-dir" \
  --leader-elect=false \
  --service-account-private-key-file="$PKI/sa.key" \
  --root-ca-file="$PKI/ca.crt" \
  --flex-volume-plugin-dir="$STATE/flexvolume" \
  --profiling=false \
  --v=0
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig="$ckc" \
  --bind-address=127.0.0.1 \
  --secure-port="$SCHED_PORT" \
  --cert-dir="$STATE/cert-dir" \
  --leader-elect=false \
  --profiling=false \
  --v=0
# kwok: HOME is redirected so a stray ~/.kwok/kwok.yaml can never be loaded.
# --server-address/--node-port: kwok serves the node's kubelet API (HTTPS and HTTP
# multiplexed on one port) on 127.0.0.1 only; --node-port is also what the node stage
# writes to status.daemonEndpoints.kubeletEndpoint.Port, where the apiserver connects.
# --enable-crds: PortForward/ClusterPortForward objects are read from the apiserver
# (watched), not from --config. Debugging handlers (/portForward/...) are on by default.
# --node-lease-duration-seconds MUST be given: without a KwokConfiguration object the
# binary's default is 0 = no node Lease, the heartbeat-with-lease stage only touches
# status every 10 min, so after ~50 s the node lifecycle controller marks the node
# NotReady and every pod Ready=False for good (deployments drop to 0 available).
start kwok env HOME="$STATE/kwok-home" "$BIN/kwok" \
  --kubeconfig="$ckc" \
  --config="$CACHE/kwok-stages.yaml" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-lease-duration-seconds=40 \
  --node-ip=127.0.0.1 \
  --node-port="$KWOK_PORT" \
  --server-address="127.0.0.1:$KWOK_PORT" \
  --tls-cert-file="$PKI/kwok.crt" \
  --tls-private-key-file="$PKI/kwok.key" \
  --enable-crds=PortForward,ClusterPortForward \
  --cidr=10.244.0.0/24

# Cluster objects the tests rely on (apiserver is ready, so this does not wait for the others).
api POST /api/v1/nodes "$(cat <<JSON
{"apiVersion":"v1","kind":"Node","metadata":{"name":"$NODE_NAME",
 "annotations":{"kwok.x-k8s.io/node":"fake","node.alpha.kubernetes.io/ttl":"0"},
 "labels":{"kubernetes.io/hostname":"$NODE_NAME","kubernetes.io/os":"linux","kubernetes.io/arch":"amd64","type":"kwok"}},
 "status":{"capacity":{"cpu":"32","memory":"256Gi","pods":"110"},"allocatable":{"cpu":"32","memory":"256Gi","pods":"110"}}}
JSON
)" >/dev/null
api POST /apis/rbac.authorization.k8s.io/v1/clusterroles '{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole",
 "metadata":{"name":"mlops-deployments-read"},
 "rules":[{"apiGroups":["apps"],"resources":["deployments"],"verbs":["get","list","watch"]}]}' >/dev/null
api POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings '{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding",
 "metadata":{"name":"mlops-deployments-read"},
 "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"mlops-deployments-read"},
 "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"'"$RESTRICTED_USER"'"}]}' >/dev/null
log "node $NODE_NAME and RBAC for $RESTRICTED_USER created"

insecure_ok() { curl -skf --max-time 1 "$1" | grep -qx ok; }
wait_until "kube-controller-manager healthy" kube-controller-manager insecure_ok "https://127.0.0.1:$KCM_PORT/healthz"
wait_until "kube-scheduler healthy" kube-scheduler insecure_ok "https://127.0.0.1:$SCHED_PORT/healthz"
node_ready() { api GET "/api/v1/nodes/$NODE_NAME" | jq -e '.status.conditions[]? | select(.type=="Ready" and .status=="True")'; }
wait_until "node $NODE_NAME Ready (kwok)" kwok node_ready
kwok_ok() { curl -sf --max-time 1 --cacert "$PKI/ca.crt" "https://127.0.0.1:$KWOK_PORT/healthz" | grep -qx ok; }
wait_until "kwok kubelet API healthy (127.0.0.1:$KWOK_PORT)" kwok kwok_ok
# Pods are refused until the ServiceAccount controller has made "default";
# a Deployment created before that backs off for seconds, so wait here.
wait_until "serviceaccount default/default exists" kube-controller-manager api GET /api/v1/namespaces/default/serviceaccounts/default

if [ -n "${MLOPS_K8S_WATCH_PID:-}" ]; then
  start watchdog bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3"' \
    watchdog "$MLOPS_K8S_WATCH_PID" "$HERE/down.sh" "$STATE"
fi

STARTUP=$(echo "$(date +%s.%N) - $T0" | bc)
jq -nc --arg stateDir "$STATE" --arg server "$SERVER" \
  --arg kubeconfig "$STATE/admin.kubeconfig" --arg restrictedKubeconfig "$STATE/restricted.kubeconfig" \
  --arg restrictedUser "$RESTRICTED_USER" --arg caFile "$PKI/ca.crt" --arg nodeName "$NODE_NAME" \
  --arg pidFile "$PIDS" --argjson startupSeconds "$(printf '%.2f' "$STARTUP")" \
  --argjson kwokPort "$KWOK_PORT" \
  '$ARGS.named' | tee "$STATE/cluster.json"
ok=1
log "control plane up in ${STARTUP}s (state $STATE)"
