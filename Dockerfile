# Dockerfile — ringstream in a container: a build stage with the compiler (the io_uring
# addon) and the dev dependencies (TypeScript), and a slim runtime stage that runs as the
# unprivileged `node` user with its data in a volume.
#
#   docker build -t ringstream .
#   docker run -p 4437:4437 -v ringstream-data:/data ringstream
#
# io_uring under Docker: the default seccomp profile of Docker 25 and later refuses
# io_uring_setup (EPERM), and ringstream then runs on node:fs by itself, which its startup
# line says (`io=fs (io_uring refused: …)`). To run on io_uring, allow the three io_uring
# system calls with a seccomp profile of your own (`--security-opt seccomp=profile.json`)
# or, on a trusted host, `--security-opt seccomp=unconfined`; the host kernel must not set
# kernel.io_uring_disabled. `--io uring` refuses to start instead of falling back.

FROM node:20-bookworm AS build
WORKDIR /src
COPY . .
# npm ci builds the addon (scripts/install.mjs) and the TypeScript (prepare); then only the
# runtime dependencies stay.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production RINGSTREAM_HOST=0.0.0.0 RINGSTREAM_DATA_DIR=/data RINGSTREAM_LOG_FORMAT=json
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
COPY --from=build /src/build/Release/ringstream.node ./build/Release/ringstream.node
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 4437
# SIGTERM: live reads are answered, a final checkpoint written (give it `--stop-timeout 30`).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD ["node", "-e", "fetch('http://127.0.0.1:4437/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/ringstream.js"]
