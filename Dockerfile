# syntax=docker/dockerfile:1
#
# fulcrum container image.
#
#   docker build -t fulcrum:0.1.0 .
#   docker run --rm -p 18000:18000 -p 8080:8080 \
#     -v "$PWD/examples/fulcrum.yaml:/etc/fulcrum/fulcrum.yaml:ro" fulcrum:0.1.0 \
#     --xds-address 0.0.0.0 --admin-address 0.0.0.0
#
# The example config binds 127.0.0.1 (right for `npm start`); inside a container that is
# unreachable through -p, so the two flags bind every interface of the container instead.
# A config written for containers sets server.xds.address and server.admin.address to 0.0.0.0.
#
# Two stages: the build stage has npm, the TypeScript compiler and dev
# dependencies; the runtime stage only has Node, dist/ and production
# node_modules, and no shell or package manager.

# ---- build ------------------------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app

# Manifests first so the `npm ci` layer is cached until dependencies change.
COPY package.json package-lock.json ./
# better-sqlite3 is a native addon: when its prebuilt binary cannot be fetched, node-gyp
# compiles it, which needs a toolchain (only in this stage).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
RUN npm ci

COPY . .
RUN npm run build \
 && npm prune --omit=dev

# ---- runtime ----------------------------------------------------------------
# distroless: glibc + Node 20 only, runs as uid/gid 65532 ("nonroot"), matching
# runAsUser in deploy/kubernetes. Same Debian release (12, bookworm) as the
# build stage, so native addons built there load here.
FROM gcr.io/distroless/nodejs20-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production \
    FULCRUM_DATA_DIR=/var/lib/fulcrum

COPY --from=build --chown=65532:65532 /app/package.json ./package.json
COPY --from=build --chown=65532:65532 /app/node_modules ./node_modules
COPY --from=build --chown=65532:65532 /app/dist ./dist
# fulcrum's own API (the report service) is loaded from proto/ at start; Envoy's .proto tree
# comes from node_modules/@grpc/grpc-js-xds (a production dependency).
COPY --from=build --chown=65532:65532 /app/proto ./proto

USER 65532:65532

# Writable data directory (SQLite). In Kubernetes a PersistentVolume is mounted
# here; declaring it keeps `docker run` from writing into the container layer.
VOLUME ["/var/lib/fulcrum"]

# 18000: xDS gRPC (ADS, CDS/EDS/LDS/RDS, CSDS, LRS). 8080: admin HTTP
# (REST API, /healthz, /readyz, /metrics).
EXPOSE 18000 8080

# Exec form so node is PID 1 and receives SIGTERM directly (graceful drain of
# xDS streams). Extra arguments (`docker run IMAGE --flag`, Kubernetes `args`)
# are appended after the config path.
# --max-semi-space-size=4: V8's young generation capped at 8 MiB instead of 32 MiB, ~20 MiB
# less RSS at rest (bench/RESULTS.md, "RSS at rest").
# --v8-pool-size=1: one V8 helper thread (GC, optimizing compiler) instead of four, so they never
# take every core from the event loop; on 2 cores four of them held requests behind big writes
# for 50-100 ms (bench/RESULTS.md, "engine18").
# --enable-experimental-regexp-engine: V8's linear-time regex engine, which CSDS safe_regex node
# matchers run on (a client's regex cannot backtrack for minutes); set at start because Node does
# not support setting V8 flags later, and NODE_OPTIONS may not carry it.
ENTRYPOINT ["/nodejs/bin/node", "--max-semi-space-size=4", "--v8-pool-size=1", "--enable-experimental-regexp-engine", "dist/main.js", "--config", "/etc/fulcrum/fulcrum.yaml"]
