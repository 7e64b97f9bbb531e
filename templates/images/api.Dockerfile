# The generic API image of the model-load pattern: runs `mlops serve` on the
# model that the loader put in /workdir. Build with: mlops image build api
ARG BASE_IMAGE=node:20-slim

FROM ${BASE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The build bundles the CLI with its dependencies (dist/, scripts/bundle.js); what serve needs
# from node_modules is ONNX Runtime, a native addon, and its one runtime dependency. So: the
# production dependencies without install scripts (onnxruntime-node's would fetch CUDA
# libraries), then only those two packages kept, with only the linux/x64 runtime binaries.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir /keep && for name in onnxruntime-node onnxruntime-common; do mv node_modules/$name /keep/; done \
 && rm -rf node_modules && mv /keep node_modules \
 && rm -rf node_modules/onnxruntime-node/bin/napi-v*/darwin node_modules/onnxruntime-node/bin/napi-v*/win32 node_modules/onnxruntime-node/bin/napi-v*/linux/arm64 \
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
