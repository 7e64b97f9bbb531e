# The loader image of the model-load pattern: an initContainer that runs
# `mlops model pull NAME@VERSION --to /workdir/model.onnx`. No ONNX Runtime.
# Build with: mlops image build loader
ARG BASE_IMAGE=node:20-slim

# No node_modules: the build bundles the CLI with its dependencies (dist/, scripts/bundle.js),
# and the pull loads none of the native addons that stay outside the bundle. Nothing is
# downloaded while the image builds.
FROM ${BASE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production MLOPS_LOG_FORMAT=json
COPY package.json oclif.manifest.json ./
COPY schemas ./schemas
COPY bin/run.js ./bin/run.js
COPY dist ./dist
USER 1000:1000
ENTRYPOINT ["node", "/app/bin/run.js", "model", "pull"]
