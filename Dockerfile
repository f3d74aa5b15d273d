# The perimeter image: the worker, CLI, Slack app, ingest endpoint and detectors share it.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
COPY bin ./bin
COPY src ./src
COPY workflows ./workflows
COPY activities ./activities
COPY examples ./examples
COPY tsconfig.json ./
USER node
ENTRYPOINT ["node", "bin/perimeter.js"]
CMD ["worker"]
