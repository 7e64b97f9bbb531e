#!/usr/bin/env bash
# End-to-end proof of the Docker test environment, with the Docker CLI:
#   engine up, base image, (a) build with npm install + run as USER node,
#   (b) two containers sharing a named volume, (c) a container reaching a
#   server on the host's 127.0.0.1, (d) registry with basic auth: wrong
#   credentials refused, push, pull, digest read back.
# Leaves the engine and the node:20-slim stand-in in place; removes everything else it made.
#   test/env/docker/prove.sh
set -euo pipefail
D=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/mlops-docker-prove.XXXXXX)
export DOCKER_CONFIG=$WORK/docker-config   # keep docker login out of ~/.docker
export DOCKER_BUILDKIT=0                    # classic builder (see README.md)
mkdir -p "$DOCKER_CONFIG"
RUN=(docker run --rm --network host --pull=never)
HTTP_PID=""
cleanup() {
  [ -n "$HTTP_PID" ] && kill "$HTTP_PID" 2>/dev/null || true
  MLOPS_REGISTRY_STATE=$WORK/registry "$D/registry.sh" down 2>/dev/null || true
  docker image rm -f mlops-prove/leftpad:1 >/dev/null 2>&1 || true
  docker volume rm -f mlops-prove-workdir >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { echo; echo "== $*"; }
ms() { date +%s%3N; }

step "engine"
"$D/engine.sh" up
step "base image"
BASE=$("$D/base-image.sh" | sed -n 's/^image=//p')

step "(a) docker build --network host: npm install from the registry, USER node"
mkdir -p "$WORK/a"
cat >"$WORK/a/Dockerfile" <<EOF
FROM $BASE
WORKDIR /app
RUN npm init -y >/dev/null && npm install --no-audit --no-fund left-pad && chown -R node:node /app
USER node
CMD ["node", "-e", "console.log(require('left-pad')('x',3))"]
EOF
t=$(ms)
docker build -q --network host -t mlops-prove/leftpad:1 "$WORK/a" 2>/dev/null
echo "build: $(( $(ms) - t )) ms"
out=$("${RUN[@]}" mlops-prove/leftpad:1)
echo "run output: [$out]"
[ "$out" = "  x" ]
who=$("${RUN[@]}" mlops-prove/leftpad:1 id)
echo "id: $who"
case "$who" in uid=1000\(node\)*) ;; *) exit 1 ;; esac

step "(b) two containers share a named volume (initContainer + emptyDir)"
t=$(ms)
docker volume create mlops-prove-workdir >/dev/null
"${RUN[@]}" -v mlops-prove-workdir:/workdir "$BASE" \
  sh -c 'echo "written by the init container" >/workdir/model.txt && chown -R 1000:1000 /workdir'
got=$("${RUN[@]}" --user node -v mlops-prove-workdir:/workdir "$BASE" cat /workdir/model.txt)
echo "second container read: [$got] ($(( $(ms) - t )) ms for the pair)"
[ "$got" = "written by the init container" ]

step "(c) container reaches a server on the host's 127.0.0.1"
mkdir -p "$WORK/www" && echo "hello from the host" >"$WORK/www/index.txt"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$WORK/www" >"$WORK/http.log" 2>&1 &
HTTP_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/index.txt" >/dev/null && break; sleep 0.05; done
got=$("${RUN[@]}" "$BASE" node -e "fetch('http://127.0.0.1:$PORT/index.txt').then(r=>r.text()).then(t=>process.stdout.write(t))")
echo "node fetch from the container: [$got]"
[ "$got" = "hello from the host" ]
got=$("${RUN[@]}" "$BASE" wget -qO- "http://127.0.0.1:$PORT/index.txt")
echo "busybox wget from the container: [$got]"
kill "$HTTP_PID"; HTTP_PID=""

step "(d) registry with basic auth"
eval "$(MLOPS_REGISTRY_STATE=$WORK/registry MLOPS_REGISTRY_USER=tester MLOPS_REGISTRY_PASSWORD=right-password "$D/registry.sh" up)"
REF=$REGISTRY/mlops-prove/leftpad:1
docker tag mlops-prove/leftpad:1 "$REF"
if echo wrong-password | docker login "$REGISTRY" -u tester --password-stdin >/dev/null 2>&1; then
  echo "wrong credentials were accepted"; exit 1
fi
echo "wrong credentials: refused"
if docker push "$REF" >/dev/null 2>&1; then echo "push without login was accepted"; exit 1; fi
echo "push without login: refused"
echo "$REGISTRY_PASSWORD" | docker login "$REGISTRY" -u "$REGISTRY_USER" --password-stdin >/dev/null 2>&1
t=$(ms)
pushed=$(docker push "$REF" | sed -n 's/.*digest: \(sha256:[0-9a-f]*\).*/\1/p')
echo "pushed $REF digest $pushed ($(( $(ms) - t )) ms)"
remote=$(curl -s -u "$REGISTRY_USER:$REGISTRY_PASSWORD" -o /dev/null -D - \
  -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
  "http://$REGISTRY/v2/mlops-prove/leftpad/manifests/1" | tr -d '\r' | sed -n 's/^Docker-Content-Digest: //Ip')
echo "registry says $remote"
[ "$pushed" = "$remote" ]
docker image rm "$REF" >/dev/null
docker pull -q "$REF" >/dev/null
echo "pulled back: $(docker image inspect --format '{{index .RepoDigests 0}}' "$REF")"
docker image rm "$REF" >/dev/null
docker logout "$REGISTRY" >/dev/null

echo; echo "ALL PROOFS PASSED"
