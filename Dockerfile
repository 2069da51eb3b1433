# The pipeline's workers (and CLI) as images. Two targets:
#   cpu  Node 20 with native TensorFlow for the CPU (@tensorflow/tfjs-node; where its libtensorflow
#        download fails the build continues and the pure-JS backend runs, ten times slower)
#   gpu  the same with @tensorflow/tfjs-node-gpu rebuilt for CUDA 12 (TensorFlow 2.18.1 from PyPI)
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

# CUDA 12 without a CUDA base image: cli/provision-tfjs-node-gpu.sh (npm run setup:gpu) builds
# tfjs-node-gpu's binding against the TensorFlow 2.18.1 wheel and unpacks its nvidia-*-cu12
# wheels beside it (found by RUNPATH); only the driver (libcuda.so.1) comes from the host, through
# the NVIDIA Container Toolkit. The full bookworm image brings gcc, make, python3 and Node headers.
FROM node:20-bookworm AS gpu
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production PNEUMOGAN_BACKEND=tensorflow-gpu PNEUMOGAN_CACHE_DIR=/app/.cache
COPY --from=cpu /app /app
RUN bash cli/provision-tfjs-node-gpu.sh /app && rm -rf /app/.cache/wheels-gpu
USER node
CMD ["node", "--import", "tsx", "workers/gpu.ts"]
