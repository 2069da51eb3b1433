# The pipeline's workers (and CLI) as images. Two targets:
#   cpu  Node 20 with native TensorFlow for the CPU (@tensorflow/tfjs-node; where its libtensorflow
#        download fails the build continues and the pure-JS backend runs, ten times slower)
#   gpu  the same on CUDA 11.8 + cuDNN 8, what @tensorflow/tfjs-node-gpu 4.22 is built for
# Build: docker compose build (docker-compose.yml), or docker build --target cpu -t pneumogan-worker .
# Not built or run on the machines this project is developed on (no container engine there).

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS cpu
WORKDIR /app
ENV NODE_ENV=production PNEUMOGAN_CACHE_DIR=/app/.cache
COPY package.json package-lock.json ./
# Optional dependencies (the native TensorFlow packages) may fail to download; npm carries on.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY . .
# The image's own unprivileged user (uid 1000 in the node images).
USER node
CMD ["node", "--import", "tsx", "workers/orchestration.ts"]

FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04 AS gpu
# Node from the official image (its binaries need glibc >= 2.28; Ubuntu 22.04 has 2.35).
COPY --from=cpu /usr/local/bin/node /usr/local/bin/node
COPY --from=cpu /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
  && useradd --uid 1000 --create-home node
WORKDIR /app
ENV NODE_ENV=production PNEUMOGAN_BACKEND=tensorflow-gpu PNEUMOGAN_CACHE_DIR=/app/.cache
COPY --from=cpu /app /app
USER node
CMD ["node", "--import", "tsx", "workers/gpu.ts"]
