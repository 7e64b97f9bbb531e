# The loader image of the model-load pattern: an initContainer that runs
# `mlops model pull NAME@VERSION --to /workdir/model.onnx`. No ONNX Runtime.
# Build with: mlops image build loader
ARG BASE_IMAGE=node:20-slim

FROM ${BASE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only, without install scripts. The loader never runs a model,
# serves HTTP or builds images: ONNX Runtime, the HTTP server and the Docker client go,
# with everything only they need; so do the Kubernetes and GCS clients' packages, whose code
# is already in dist/vendor/ as one bundle each (scripts/vendor.js).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm uninstall --omit=dev --ignore-scripts --no-audit --no-fund onnxruntime-node fastify dockerode tar-fs @balena/dockerignore \
      @kubernetes/client-node @google-cloud/storage google-auth-library \
 && rm -rf /root/.npm /tmp/*

FROM ${BASE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production MLOPS_LOG_FORMAT=json
COPY --from=deps /app/node_modules ./node_modules
COPY package.json oclif.manifest.json ./
COPY schemas ./schemas
COPY bin/run.js ./bin/run.js
COPY dist ./dist
USER 1000:1000
ENTRYPOINT ["node", "/app/bin/run.js", "model", "pull"]
