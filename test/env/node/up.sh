#!/usr/bin/env bash
# Join a REAL node to a control plane started by ../k8s/up.sh: kubelet v1.36.3,
# containerd v2 and Debian's runc, with a bridge CNI network of its own.
#
# Usage: up.sh CONTROL_PLANE_STATE_DIR [NODE_STATE_DIR]
#   (default NODE_STATE_DIR: a new mktemp -d under /tmp; kept short: unix socket paths)
#
# stdout: one line of JSON (also NODE_STATE_DIR/node.json):
#   {"stateDir","nodeName","taint","containerdSocket","ctr","certsDir","bridge",
#    "gateway","subnet","startupSeconds"}
# stderr: progress. Logs: NODE_STATE_DIR/logs/*.log. PIDs: NODE_STATE_DIR/pids.
# Stop with: down.sh NODE_STATE_DIR (by PID only; removes what up.sh made).
#
# How it stays out of the host's way:
# - containerd and the kubelet run in a private mount namespace in which
#   /run/containerd (where containerd v2 puts shim sockets, as the Docker engine's
#   containerd does), /var/log and /var/lib/cni are private: the Docker engine's
#   socket and state are never touched, and every mount they make vanishes with them.
# - Pods get a bridge (MLOPS_NODE_BRIDGE, default mlopsbr0) on MLOPS_NODE_SUBNET
#   (default 10.199.0.0/24) with no default route, no masquerade, no port mapping and
#   no iptables rule: pods reach each other and the node's address on the bridge
#   (the gateway), nothing else. A server pods need listens on the gateway address.
# - The node is tainted mlops.io/real-node=true:NoSchedule, so the fast tests' pods
#   stay on kwok's node; real-node pods tolerate the taint and select the node.
# - One real node per machine at a time (it owns the kubepods cgroups): a lock
#   refuses a second one, and a node left by a killed run is stopped first.
#
# Env:
#   MLOPS_TEST_CACHE    cache root (binaries from ../k8s/build.sh)
#   MLOPS_K8S_NO_BUILD  fail instead of building missing binaries
#   MLOPS_NODE_WATCH_PID=N  start a watchdog that runs down.sh when PID N exits
#   MLOPS_NODE_TIMEOUT  seconds to wait for the node to be Ready (default 120)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S_VERSION=v1.36.3
CACHE=${MLOPS_TEST_CACHE:-$HOME/.cache/mlops-test}/k8s-$K8S_VERSION
BIN=$CACHE/bin
NODE=${MLOPS_NODE_NAME:-real-node-0}
BRIDGE=${MLOPS_NODE_BRIDGE:-mlopsbr0}
SUBNET=${MLOPS_NODE_SUBNET:-10.199.0.0/24}
TIMEOUT=${MLOPS_NODE_TIMEOUT:-120}
TAINT=mlops.io/real-node=true:NoSchedule
PAUSE_IMAGE=localhost/mlops-test/pause:1
T0=$(date +%s.%N)
log() { printf '[node-up %5.1fs] %s\n' "$(echo "$(date +%s.%N) - $T0" | bc)" "$*" >&2; }

CP=$(cd "${1:?usage: up.sh CONTROL_PLANE_STATE_DIR [NODE_STATE_DIR]}" && pwd)
[ -f "$CP/cluster.json" ] || { echo "$CP has no cluster.json: start ../k8s/up.sh first" >&2; exit 1; }
SERVER=$(jq -r .server "$CP/cluster.json")

# ------------------------------------------------------------ prerequisites
for b in kubelet containerd containerd-shim-runc-v2 ctr; do
  if [ ! -x "$BIN/$b" ]; then
    [ "${MLOPS_K8S_NO_BUILD:-}" = 1 ] && { echo "missing $BIN/$b (run $HERE/../k8s/build.sh)" >&2; exit 1; }
    "$HERE/../k8s/build.sh" >&2
    break
  fi
done
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "$@" >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "$@" >&2; }
}
RUNC=$(command -v runc || true)
[ -n "$RUNC" ] || { apt_install runc; RUNC=$(command -v runc); }
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || apt_install containernetworking-plugins
command -v gcc >/dev/null || apt_install gcc libc6-dev

# ------------------------------------------------------------ one node per machine
# The node owns the kubepods cgroups and the bridge: one per machine. The lock covers
# start and stop; /tmp/mlops-real-node.owner names the running node's state dir.
exec 8>>/tmp/mlops-real-node.lock
flock -w 60 8 || { echo "another real node is starting or stopping on this machine" >&2; exit 1; }
OWNER=/tmp/mlops-real-node.owner
if [ -s "$OWNER" ] && [ -d "$(cat "$OWNER")" ]; then
  stale=$(cat "$OWNER")
  watched=$(cat "$stale/watch-pid" 2>/dev/null || true)
  if [ -n "$watched" ] && kill -0 "$watched" 2>/dev/null; then
    echo "a real node already runs on this machine for process $watched (state $stale); stop it with $HERE/down.sh $stale" >&2
    exit 1
  fi
  log "stopping the real node a killed run left behind ($stale)"
  "$HERE/down.sh" "$stale" --locked >&2 || true
fi
"$HERE/down.sh" --leftovers --locked >&2 || true

if [ $# -ge 2 ]; then STATE=$2; mkdir -p "$STATE"; else STATE=$(mktemp -d /tmp/mlops-node.XXXXXX); fi
STATE=$(cd "$STATE" && pwd)
touch "$STATE/.mlops-node-state"
echo "$STATE" >"$OWNER"
echo "${MLOPS_NODE_WATCH_PID:-}" >"$STATE/watch-pid"
PKI=$STATE/pki LOGS=$STATE/logs
mkdir -p "$PKI" "$LOGS" "$STATE/images" "$STATE/certs.d" "$STATE/net.d" "$STATE/ipam" "$STATE/varlog" \
  "$STATE/var-lib-cni" "$STATE/containerd" "$STATE/kubelet" "$STATE/pod-logs" "$STATE/plugins"
: >"$STATE/pids"
ok=0
cleanup() { [ $ok = 1 ] || { log "start-up failed; logs in $LOGS"; tail -n 15 "$LOGS"/*.log >&2 2>/dev/null; "$HERE/down.sh" "$STATE" --keep-state --locked >&2 || true; }; }
trap cleanup EXIT

api() { # api <method> <path> [body] [content-type]: as the control plane's admin
  curl -sS --fail-with-body --max-time 10 --cacert "$CP/pki/ca.crt" --cert "$CP/pki/admin.crt" --key "$CP/pki/admin.key" \
    -X "$1" -H "Content-Type: ${4:-application/json}" ${3:+--data-binary "$3"} "$SERVER$2"
}
free_ports() {
  python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))'
}
read -r KUBELET_PORT HEALTHZ_PORT < <(free_ports)

# ------------------------------------------------------------ certs (the control plane's CA)
(
  cd "$PKI"
  cp "$CP/pki/ca.crt" ca.crt
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }
  sign() {
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    openssl x509 -req -in "$1.csr" -CA "$CP/pki/ca.crt" -CAkey "$CP/pki/ca.key" -CAcreateserial -CAserial "$PKI/ca.srl" \
      -days 30 -extfile <(printf '%s\n' "$3") -out "$1.crt" 2>/dev/null
    rm -f "$1.csr"
  }
  key serving; sign serving "/CN=$NODE" "subjectAltName=IP:127.0.0.1,DNS:$NODE
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  key client; sign client "/O=system:nodes/CN=system:node:$NODE" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature,keyEncipherment"
  chmod 600 ./*.key
)
b64() { base64 -w0 <"$1"; }
cat >"$STATE/kubelet.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: mlops-test
  cluster: {server: $SERVER, certificate-authority-data: $(b64 "$PKI/ca.crt")}
users:
- name: $NODE
  user: {client-certificate-data: $(b64 "$PKI/client.crt"), client-key-data: $(b64 "$PKI/client.key")}
contexts:
- name: node
  context: {cluster: mlops-test, user: $NODE}
current-context: node
KC
chmod 600 "$STATE/kubelet.kubeconfig"
# The test apiserver authorizes with RBAC alone (no Node authorizer): bind system:node.
api POST /apis/rbac.authorization.k8s.io/v1/clusterrolebindings '{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRoleBinding",
 "metadata":{"name":"mlops-test-node-'"$NODE"'"},
 "roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"system:node"},
 "subjects":[{"apiGroup":"rbac.authorization.k8s.io","kind":"User","name":"system:node:'"$NODE"'"}]}' >/dev/null 2>&1 || true
log "certs, kubeconfig and RBAC ready"

# ------------------------------------------------------------ the sandbox image
# registry.k8s.io cannot be reached: a static pause binary FROM scratch, as a
# docker-save archive that ctr imports (manifest.json + config + one layer).
build_pause() {
  local dir=$STATE/images/pause
  mkdir -p "$dir/rootfs" "$dir/archive"
  gcc -Os -static -o "$dir/rootfs/pause" "$HERE/pause.c"
  strip "$dir/rootfs/pause"
  tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$dir/rootfs" -cf "$dir/layer.tar" pause
  local layer; layer=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  mkdir -p "$dir/archive/$layer"; mv "$dir/layer.tar" "$dir/archive/$layer/layer.tar"
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$layer" >"$dir/config.json"
  local config; config=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
  mv "$dir/config.json" "$dir/archive/$config.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config" "$PAUSE_IMAGE" "$layer" >"$dir/archive/manifest.json"
  tar -C "$dir/archive" -cf "$STATE/images/pause.tar" .
  rm -rf "$dir"
}
build_pause
log "sandbox image built"

# ------------------------------------------------------------ containerd, CNI, kubelet configs
cat >"$STATE/containerd.toml" <<TOML
version = 3
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$STATE/containerd.sock"
[ttrpc]
  address = "$STATE/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "warn"
[metrics]
  address = ""
[plugins]
  [plugins.'io.containerd.cri.v1.images']
    snapshotter = "overlayfs"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "$PAUSE_IMAGE"
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "$STATE/certs.d"
  [plugins.'io.containerd.cri.v1.runtime']
    enable_selinux = false
    netns_mounts_under_state_dir = true
    # No CAP_SYS_RESOURCE in this VM: oom_score_adj can only be raised, and runc would fail
    # every sandbox (kubelet asks -998 for them) with "can't get final child's PID from pipe".
    restrict_oom_score_adj = true
    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = "runc"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = "$RUNC"
          Root = "$STATE/containerd/runc"
          SystemdCgroup = false
    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ["/usr/lib/cni"]
      conf_dir = "$STATE/net.d"
      max_conf_num = 1
  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
TOML
GATEWAY=$(python3 -c "import ipaddress,sys; print(next(ipaddress.ip_network(sys.argv[1]).hosts()))" "$SUBNET")
PREFIX=${SUBNET#*/}
cat >"$STATE/net.d/10-mlops.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "mlops-test",
 "plugins": [{"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "$STATE/ipam", "ranges": [[{"subnet": "$SUBNET", "gateway": "$GATEWAY"}]], "routes": []}}]}
JSON
# The bridge exists before the first pod, so a server for pods can listen on the gateway now.
ip link add "$BRIDGE" type bridge
echo "$BRIDGE" >"$STATE/bridge"
ip addr add "$GATEWAY/$PREFIX" dev "$BRIDGE"
ip link set "$BRIDGE" up
printf 'nameserver 127.0.0.1\noptions ndots:1\n' >"$STATE/resolv.conf"   # pods get no DNS server here
cat >"$STATE/kubelet-config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 and no systemd as PID 1 on these machines
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $HEALTHZ_PORT
containerRuntimeEndpoint: unix://$STATE/containerd.sock
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: AlwaysAllow}
tlsCertFile: $PKI/serving.crt
tlsPrivateKeyFile: $PKI/serving.key
resolvConf: $STATE/resolv.conf
clusterDomain: cluster.local
podLogsDir: $STATE/pod-logs
volumePluginDir: $STATE/plugins
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
nodeStatusReportFrequency: 10s
syncFrequency: 5s
fileCheckFrequency: 10s
maxPods: 30
registerWithTaints:
  - {key: mlops.io/real-node, value: "true", effect: NoSchedule}
YAML

# ------------------------------------------------------------ start, in a private mount namespace
[ -d /var/lib/cni ] || { mkdir -p /var/lib/cni && touch "$STATE/made-var-lib-cni"; }
unshare -m --propagation private -- bash -s "$STATE" "$NODE" "$BIN" 8>&- <<'INNER'
set -euo pipefail
STATE=$1 NODE=$2 BIN=$3
mount -t tmpfs -o mode=0711 mlops-run-containerd /run/containerd 2>/dev/null \
  || { mkdir -p /run/containerd && mount -t tmpfs -o mode=0711 mlops-run-containerd /run/containerd; }
mount --bind "$STATE/varlog" /var/log
mount --bind "$STATE/var-lib-cni" /var/lib/cni
export PATH=$BIN:$PATH   # this containerd's own shim first
setsid "$BIN/containerd" --config "$STATE/containerd.toml" </dev/null >"$STATE/logs/containerd.log" 2>&1 &
echo "containerd $!" >>"$STATE/pids"
for _ in $(seq 1 300); do [ -S "$STATE/containerd.sock" ] && break; sleep 0.05; done
"$BIN/ctr" -a "$STATE/containerd.sock" -n k8s.io images import --local "$STATE/images/pause.tar" >/dev/null
setsid "$BIN/kubelet" --config="$STATE/kubelet-config.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
  --root-dir="$STATE/kubelet" --hostname-override="$NODE" --cloud-provider=external \
  --node-labels=mlops.io/node=real --v=1 </dev/null >"$STATE/logs/kubelet.log" 2>&1 &
echo "kubelet $!" >>"$STATE/pids"
INNER
log "containerd and kubelet started ($(tr '\n' ' ' <"$STATE/pids"))"

# ------------------------------------------------------------ play the cloud controller
# With --cloud-provider=external the kubelet reports only a Hostname address (a
# loopback node IP is refused) and adds the uninitialized taint: set InternalIP
# 127.0.0.1, where the apiserver reaches the kubelet, and lift that taint.
deadline=$((SECONDS + TIMEOUT))
alive() { local pid; pid=$(awk -v n="$1" '$1==n{print $2}' "$STATE/pids"); kill -0 "$pid" 2>/dev/null; }
until api GET "/api/v1/nodes/$NODE" >/dev/null 2>&1; do
  alive kubelet || { log "kubelet exited"; exit 1; }
  [ $SECONDS -lt $deadline ] || { log "timed out waiting for the node to register"; exit 1; }
  sleep 0.1
done
log "node $NODE registered"
api PATCH "/api/v1/nodes/$NODE/status" '{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":"'"$NODE"'"}]}}' \
  application/merge-patch+json >/dev/null
untaint() {
  local node taints
  node=$(api GET "/api/v1/nodes/$NODE") || return 1
  taints=$(jq -c '[.spec.taints[]? | select(.key != "node.cloudprovider.kubernetes.io/uninitialized")]' <<<"$node")
  api PATCH "/api/v1/nodes/$NODE" '{"spec":{"taints":'"$taints"'}}' application/merge-patch+json >/dev/null
}
ready() { api GET "/api/v1/nodes/$NODE" | jq -e '(.spec.taints // []) as $t | ($t | map(.key) | index("node.cloudprovider.kubernetes.io/uninitialized") | not) and ([.status.conditions[]? | select(.type=="Ready" and .status=="True")] | length > 0)' >/dev/null; }
until ready 2>/dev/null; do
  alive kubelet || { log "kubelet exited"; exit 1; }
  [ $SECONDS -lt $deadline ] || { log "timed out waiting for node $NODE to be Ready"; exit 1; }
  untaint 2>/dev/null || true
  sleep 0.2
done
log "node $NODE Ready"

if [ -n "${MLOPS_NODE_WATCH_PID:-}" ]; then
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done; exec "$2" "$3"' \
    watchdog "$MLOPS_NODE_WATCH_PID" "$HERE/down.sh" "$STATE" </dev/null >/dev/null 2>&1 8>&- &
  echo "watchdog $!" >>"$STATE/pids"
fi

STARTUP=$(echo "$(date +%s.%N) - $T0" | bc)
jq -nc --arg stateDir "$STATE" --arg nodeName "$NODE" --arg taint "$TAINT" \
  --arg containerdSocket "$STATE/containerd.sock" --arg ctr "$BIN/ctr" --arg certsDir "$STATE/certs.d" \
  --arg bridge "$BRIDGE" --arg gateway "$GATEWAY" --arg subnet "$SUBNET" \
  --argjson startupSeconds "$(printf '%.2f' "$STARTUP")" '$ARGS.named' | tee "$STATE/node.json"
ok=1
log "real node up in ${STARTUP}s (state $STATE)"
