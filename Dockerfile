# syntax=docker/dockerfile:1

# Debian (glibc) rather than Alpine: Temporal's native core-bridge and the
# bcrypt prebuilds target glibc.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
# package.json's allowScripts field (which install scripts may run) is only
# honoured by npm 11; Node 20 ships npm 10, which would run every script.
RUN npm install -g npm@11 && npm cache clean --force

FROM base AS build
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

# Production dependencies are installed in their own stage so the runtime
# image never contains dev dependencies or the npm cache.
FROM base AS prod-deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
# The worker's default build id (docs/upgrades.md): docker build --build-arg GIT_COMMIT=$(git rev-parse HEAD)
ARG GIT_COMMIT=
ENV NODE_ENV=production GIT_COMMIT=${GIT_COMMIT}
WORKDIR /app
# Files stay root-owned: the app runs as `node` and only needs to read them.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER node
EXPOSE 3000
CMD ["node", "dist/api/main.js"]
