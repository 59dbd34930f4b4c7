# wicket: multi-stage build. Native modules (better-sqlite3, ssh2's crypto
# binding, node-pty) compile in the builder; the runtime image has no compiler.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY protocols ./protocols
COPY recordings ./recordings
COPY web ./web
COPY bench ./bench
RUN npm ci && npm prune --omit=dev

# Runtime: bash (shell targets start through it), util-linux's setpriv (shell
# targets with `user:`), sftp-server (sftp to shell targets).
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates tini util-linux openssh-sftp-server \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/wicket --shell /usr/sbin/nologin wicket
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/web/public ./web/public
COPY package.json ./
COPY examples ./examples
RUN mkdir -p /etc/wicket /var/lib/wicket/data && chown -R wicket:wicket /var/lib/wicket
USER wicket
ENV WICKET_CONFIG=/etc/wicket/wicket.yaml NODE_ENV=production
VOLUME ["/etc/wicket", "/var/lib/wicket/data"]
# postgres, mysql, ssh, web
EXPOSE 15432 13306 2222 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/dist/src/cli/main.js"]
CMD ["serve"]
