/** What every CLI command needs: the environment (plus a running local stack's addresses), config, clients. */
import os from 'node:os';
import type { Client } from '@temporalio/client';
import { loadConfig, type Config } from '../config';
import { connectTemporal, incidentUrl } from '../client/temporal';
import { readDevAddresses } from '../dev/addresses';

/**
 * The process environment, with the addresses of a running `perimeter dev` filled in where the
 * environment does not set them — so `perimeter block` finds the local stack on any ports.
 */
export function cliEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  const dev = readDevAddresses(env.PERIMETER_STATE_DIR || '.perimeter');
  const merged: Record<string, string | undefined> = { ...env };
  for (const [key, value] of Object.entries(dev ?? {})) if (!merged[key] && value) merged[key] = value;
  return merged;
}

export function cliConfig(): Config {
  return loadConfig(cliEnv());
}

/** Who is acting, for incident timelines: user@host. */
export function whoAmI(): string {
  return `${os.userInfo().username}@${os.hostname()}`;
}

export async function withTemporal<T>(config: Config, fn: (client: Client) => Promise<T>): Promise<T> {
  let connected;
  try {
    connected = await connectTemporal(config);
  } catch (err) {
    throw new Error(
      `cannot reach Temporal at ${config.temporal.address} (${(err as Error).message}); ` +
        'start the local stack with `npx perimeter dev` or set TEMPORAL_ADDRESS',
    );
  }
  try {
    return await fn(connected.client);
  } finally {
    await connected.connection.close();
  }
}

export { incidentUrl };
