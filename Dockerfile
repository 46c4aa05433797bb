# syntax=docker/dockerfile:1
# activesync-edge, the Node runtime as a container image (README: Containers, footprint and round trips → Container deployment).
#   docker build -t activesync-edge .
#   docker run -p 8080:8080 -e IMAP_HOST=imap.example.com -v ase-state:/var/lib/activesync-edge activesync-edge

# ---- build: all dependencies, the compiled server in dist/, then only the production dependencies kept
FROM node:22-slim AS build
WORKDIR /app
# better-sqlite3 is a native addon: npm compiles it when no prebuilt binary for this platform can be downloaded.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY scripts ./scripts
COPY src ./src
COPY infra ./infra
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: node, the production dependencies (the compiled better-sqlite3 among them) and dist/; no sources, no tsx
FROM node:22-slim AS runtime
ENV NODE_ENV=production \
  PORT=8080 \
  STATE_DIR=/var/lib/activesync-edge
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
# The state (SQLite sync state, device records) lives on a volume the unprivileged user owns.
RUN mkdir -p /var/lib/activesync-edge && chown node:node /var/lib/activesync-edge
VOLUME ["/var/lib/activesync-edge"]
USER node
EXPOSE 8080
# Healthy when the server answers an ActiveSync OPTIONS at all (401 without credentials is an answer; 5xx is not).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/Microsoft-Server-ActiveSync`,{method:'OPTIONS'}).then((r)=>process.exit(r.status<500?0:1),()=>process.exit(1))"]
# SIGTERM (docker stop) ends the server cleanly: it stops its IMAP watchers and closes the state store.
# A young generation of 2 MB semi-spaces instead of V8's 16 MB: about 6 MB less RSS at idle (bench/footprint.ts).
CMD ["node", "--max-semi-space-size=2", "dist/node.js"]
