# The generic API image of the model-load pattern: runs `mlops serve` on the
# model that the loader put in /workdir. Build with: mlops image build api
ARG BASE_IMAGE=node:20-slim

FROM ${BASE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The build bundles the CLI with its dependencies (dist/, scripts/bundle.js); what serve needs
# from node_modules is ONNX Runtime, a native addon, and its one runtime dependency. So: the
# production dependencies without install scripts (onnxruntime-node's would fetch CUDA
# libraries), then only those two packages kept, with only the runtime binaries of the image's
# platform: TARGETARCH (amd64 or arm64; BuildKit sets it, mlops image build passes it), else the
# architecture this stage runs on, which is the target's (no stage here runs on the build platform).
ARG TARGETARCH
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir /keep && for name in onnxruntime-node onnxruntime-common; do mv node_modules/$name /keep/; done \
 && rm -rf node_modules && mv /keep node_modules \
 && arch=${TARGETARCH:-$(uname -m)} && case "$arch" in amd64|x86_64) keep=x64 ;; arm64|aarch64) keep=arm64 ;; \
      *) echo "ONNX Runtime has no Linux build for $arch (amd64 and arm64 only)" >&2; exit 1 ;; esac \
 && cd node_modules/onnxruntime-node/bin/napi-v* && rm -rf darwin win32 \
 && for dir in linux/*; do [ "$dir" = "linux/$keep" ] || rm -rf "$dir"; done \
 && test -f "linux/$keep/onnxruntime_binding.node" \
 && rm -rf /root/.npm /tmp/*

FROM ${BASE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production MODEL_FILEPATH=/workdir/model.onnx PORT=8000 MLOPS_LOG_FORMAT=json
COPY --from=deps /app/node_modules ./node_modules
COPY package.json oclif.manifest.json ./
COPY schemas ./schemas
COPY bin/run.js ./bin/run.js
COPY dist ./dist
USER 1000:1000
EXPOSE 8000
ENTRYPOINT ["node", "/app/bin/run.js", "serve"]
