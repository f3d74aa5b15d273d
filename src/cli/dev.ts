/** `perimeter dev`: the whole local stack in one process tree, until Ctrl-C. */
import { randomBytes } from 'node:crypto';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { startDevStack, type DevStack } from '../dev/stack';
import { allManagedSets } from '../waf/names';
import { connectTemporal } from '../client/temporal';
import { createSlackApp } from '../slack/app';
import { startIngestServer, type IngestServer } from '../ingest/server';
import { cliEnv } from './context';

export interface DevOptions {
  temporalPort: number;
  uiPort: number;
  wafPort: number;
  /** Serves the Slack app here when Slack is configured. */
  slackPort?: number;
  /** Serves the ingest endpoint here. */
  ingestPort?: number;
  /** The environment to configure from; default: this process's. */
  env?: Record<string, string | undefined>;
}

export async function startAndAnnounce(options: DevOptions): Promise<DevStack> {
  const env = options.env ?? cliEnv();
  // The worker's start-up chatter (bundling, state changes) hides the stack's own summary.
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const stack = await startDevStack({ ...options, env, log: (line) => console.log(`[dev] ${line}`) });
  const { config } = stack;
  const sets = allManagedSets(config.waf.setPrefix).map((s) => s.name);
  console.log(
    [
      '',
      'Self-Healing Perimeter — local stack is up (127.0.0.1)',
      `  Temporal Web UI   ${stack.temporal.uiUrl}`,
      `  Temporal gRPC     ${stack.temporal.address}   (namespace ${config.temporal.namespace}, task queue ${config.temporal.taskQueue})`,
      `  WAF emulator      ${stack.waf.endpoint}   (web ACL "${config.waf.webAcl}", ${config.waf.scope})`,
      `  managed IP sets   ${sets.join(', ')}`,
      `  state & logs      ${config.stateDir}`,
      '',
      'Other `perimeter` commands in this folder find this stack by themselves; elsewhere use:',
      `  export TEMPORAL_ADDRESS=${stack.temporal.address} AWS_ENDPOINT_URL_WAFV2=${stack.waf.endpoint}`,
      '',
    ].join('\n'),
  );
  return stack;
}

/** Stops the stack once, on the first of SIGINT / SIGTERM; resolves when all is down. */
export function stopOnSignal(stack: DevStack, before?: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.log(`\n[dev] ${signal}: stopping worker, WAF emulator and Temporal …`);
      void (before ? before() : Promise.resolve())
        .catch(() => undefined)
        .then(() => stack.stop())
        .then(() => {
          console.log('[dev] stopped');
          resolve();
        });
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

export async function runDev(options: DevOptions): Promise<void> {
  const stack = await startAndAnnounce(options);
  const { slack } = stack.config;
  let stopSlack: (() => Promise<void>) | undefined;
  if (slack.botToken && (slack.signingSecret || slack.appToken)) {
    const { client, connection } = await connectTemporal(stack.config);
    const app = createSlackApp(stack.config, client);
    const slackPort = options.slackPort ?? 3000;
    await app.start(slackPort);
    console.log(
      app.socketMode
        ? '  Slack app         connected over Socket Mode'
        : `  Slack app         http://127.0.0.1:${slackPort}/slack/events`,
    );
    stopSlack = async () => {
      await app.stop();
      await connection.close();
    };
  } else {
    console.log(
      '  Slack app         not configured (no SLACK_BOT_TOKEN): approve with `perimeter approve <id>`',
    );
  }
  const ingest = await startDevIngest(stack, options.ingestPort ?? 8088);
  console.log('Ctrl-C stops everything.');
  await stopOnSignal(stack, async () => {
    await ingest.close();
    await stopSlack?.();
  });
}

/**
 * The ingest endpoint beside the local stack. Without PERIMETER_INGEST_TOKENS it makes a token
 * for this run only, and prints it: the endpoint is never open without one.
 */
async function startDevIngest(stack: DevStack, port: number): Promise<IngestServer> {
  let { config } = stack;
  let token: string | undefined;
  if (config.ingest.clients.length === 0) {
    token = randomBytes(24).toString('hex');
    config = { ...config, ingest: { ...config.ingest, clients: [{ name: 'local', token }] } };
  }
  const { client, connection } = await connectTemporal(config);
  const start = (listenPort: number) =>
    startIngestServer({
      client,
      config,
      listen: { host: '127.0.0.1', port: listenPort },
      log: (line) => console.log(`[ingest] ${line}`),
    });
  // A busy port must not take the whole local stack down: any free port will do.
  const server = await start(port).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EADDRINUSE') throw err;
    return start(0);
  });
  console.log(`  Ingest endpoint   POST ${server.url}/v1/detections`);
  if (token) console.log(`                    Authorization: Bearer ${token}   (this run only)`);
  return {
    url: server.url,
    close: async () => {
      await server.close();
      await connection.close();
    },
  };
}
