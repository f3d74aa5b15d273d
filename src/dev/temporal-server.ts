/** The real Temporal dev server (`temporal server start-dev`) from the project-local tools. */
import { Connection } from '@temporalio/client';
import path from 'node:path';
import { SEARCH_ATTRIBUTE_TYPES } from '../../workflows/definitions';
import { startService, toolPath, waitUntilReady, type Service } from './services';

export interface TemporalServerOptions {
  port: number;
  /** Omit to run headless (tests). */
  uiPort?: number;
  /** SQLite file; omit for an in-memory server that forgets everything when it stops. */
  dbFile?: string;
  logFile: string;
  namespace?: string;
  /** `--dynamic-config-value` pairs, e.g. lower history limits in tests. */
  dynamicConfig?: Record<string, string | number | boolean>;
}

export interface TemporalServer extends Service {
  address: string;
  uiUrl: string | undefined;
}

/**
 * The dev server re-reads its search attribute definitions from its database on every request
 * that carries search attributes (so that attributes added while it runs are seen at once). Ours
 * are all registered when it starts (`--search-attribute` below), and every incident carries
 * them on its start and its upserts: reading them once a minute, as a production server does,
 * cost about a third of its CPU per incident.
 */
const SERVER_DEFAULTS: Record<string, string | number | boolean> = {
  'system.forceSearchAttributesCacheRefreshOnRead': false,
};

export async function startTemporalServer(options: TemporalServerOptions): Promise<TemporalServer> {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--log-level',
    'warn',
  ];
  if (options.uiPort !== undefined) args.push('--ui-port', String(options.uiPort), '--ui-disable-news-fetch');
  else args.push('--headless');
  if (options.dbFile) args.push('--db-filename', path.resolve(options.dbFile));
  if (options.namespace && options.namespace !== 'default') args.push('--namespace', options.namespace);
  const dynamicConfig = { ...SERVER_DEFAULTS, ...options.dynamicConfig };
  for (const [key, value] of Object.entries(dynamicConfig)) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  for (const [key, type] of Object.entries(SEARCH_ATTRIBUTE_TYPES))
    args.push('--search-attribute', `${key}=${type}`);

  const service = startService('temporal', toolPath('temporal'), args, { logFile: options.logFile });
  const address = `127.0.0.1:${options.port}`;
  await waitUntilReady(
    service,
    async () => {
      const connection = await Connection.connect({ address, connectTimeout: '1s' });
      try {
        await connection.workflowService.describeNamespace({ namespace: options.namespace ?? 'default' });
      } finally {
        await connection.close();
      }
    },
    60_000,
  );
  return {
    ...service,
    address,
    uiUrl: options.uiPort !== undefined ? `http://127.0.0.1:${options.uiPort}` : undefined,
  };
}
