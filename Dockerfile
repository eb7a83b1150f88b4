# nixcas in a container: `docker compose up` (see docker-compose.yml).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY routes ./routes
COPY config ./config
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
VOLUME /var/lib/nixcas
EXPOSE 5000
ENTRYPOINT ["node", "dist/src/cli.js"]
CMD ["serve", "--listen", "0.0.0.0:5000", "--store", "file:///var/lib/nixcas"]
