import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';

/** A Temporal client for the configured address and namespace. Close `connection` when done. */
export async function connectTemporal(config: Config): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '5s' });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), connection };
}

/** The incident's page in the Temporal Web UI. */
export function incidentUrl(config: Config, workflowId: string): string {
  const ns = encodeURIComponent(config.temporal.namespace);
  return `${config.temporal.uiUrl}/namespaces/${ns}/workflows/${encodeURIComponent(workflowId)}`;
}
