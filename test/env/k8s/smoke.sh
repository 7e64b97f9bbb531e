#!/usr/bin/env bash
# Prove the control plane from up.sh works: as admin, create a 2-replica Deployment
# and wait for availableReplicas=2 (pods scheduled onto the kwok node, marked
# Running/Ready by kwok); as the restricted user, get/list succeed and a patch is 403.
# Uses only curl + jq (no kubectl).
#
# Usage: smoke.sh [STATE_DIR]   without STATE_DIR: up.sh, smoke, down.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T0=$(date +%s.%N)
el() { echo "$(date +%s.%N) - $T0" | bc; }

OWN=0
if [ $# -ge 1 ]; then STATE=$1; else
  STATE=$("$HERE/up.sh" | jq -r .stateDir); OWN=1
  trap '"$HERE/down.sh" "$STATE"' EXIT
fi
SERVER=$(jq -r .server "$STATE/cluster.json")
PKI=$STATE/pki
as() { # as <admin|restricted> <method> <path> [body] [content-type]: prints body, then HTTP code on last line
  curl -sS --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/$1.crt" --key "$PKI/$1.key" \
    -X "$2" -H "Content-Type: ${5:-application/json}" ${4:+--data-binary "$4"} -w '\n%{http_code}' "$SERVER$3"
}
code() { tail -n1; }
fail() { echo "SMOKE FAIL: $*" >&2; exit 1; }

NS=default DEP=smoke-$RANDOM
t_create=$(el)
c=$(as admin POST /apis/apps/v1/namespaces/$NS/deployments "$(cat <<JSON
{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"$DEP"},
 "spec":{"replicas":2,"selector":{"matchLabels":{"app":"$DEP"}},
  "template":{"metadata":{"labels":{"app":"$DEP"}},
   "spec":{"containers":[{"name":"main","image":"registry.invalid/mlops/nothing:1"}]}}}}
JSON
)" | code)
[ "$c" = 201 ] || fail "create deployment: HTTP $c"
echo "created deployment $NS/$DEP"

deadline=$((SECONDS + 60))
while :; do
  avail=$(as admin GET /apis/apps/v1/namespaces/$NS/deployments/$DEP | sed '$d' | jq -r '.status.availableReplicas // 0')
  [ "$avail" = 2 ] && break
  [ $SECONDS -lt $deadline ] || fail "availableReplicas=$avail after 60s"
  sleep 0.1
done
printf 'deployment %s availableReplicas=2 after %.2fs (%.2fs since smoke start)\n' "$DEP" \
  "$(echo "$(el) - $t_create" | bc)" "$(el)"
as admin GET "/api/v1/namespaces/$NS/pods?labelSelector=app%3D$DEP" | sed '$d' |
  jq -r '.items[] | "  pod \(.metadata.name) node=\(.spec.nodeName) phase=\(.status.phase) ready=\(.status.conditions[]? | select(.type=="Ready") | .status) ip=\(.status.podIP)"'

c=$(as restricted GET /apis/apps/v1/namespaces/$NS/deployments/$DEP | code)
[ "$c" = 200 ] || fail "restricted get: HTTP $c"
echo "restricted get deployment: HTTP $c"
c=$(as restricted GET /apis/apps/v1/deployments | code)
[ "$c" = 200 ] || fail "restricted list: HTTP $c"
echo "restricted list deployments (all namespaces): HTTP $c"
out=$(as restricted PATCH /apis/apps/v1/namespaces/$NS/deployments/$DEP '{"spec":{"replicas":3}}' application/merge-patch+json)
c=$(echo "$out" | code)
[ "$c" = 403 ] || fail "restricted patch: expected 403, got HTTP $c"
echo "restricted patch deployment: HTTP $c: $(echo "$out" | sed '$d' | jq -r .message)"
c=$(as restricted GET /api/v1/namespaces/$NS/pods | code)
[ "$c" = 403 ] || fail "restricted list pods: expected 403, got HTTP $c"
echo "restricted list pods: HTTP $c"

c=$(as admin DELETE /apis/apps/v1/namespaces/$NS/deployments/$DEP | code)
[ "$c" = 200 ] || fail "delete: HTTP $c"
echo "SMOKE OK ($(printf '%.2f' "$(el)")s)"
