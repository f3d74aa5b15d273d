import { Client, Connection } from '@temporalio/client';
import type { Config } from '../config';

/** A Temporal client for the configured address and namespace. Close `connection` when done. */
export async function connectTemporal(config: Config): Promise<{ client: Client; connection: Connection }> {
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: '5s' });
  return { client: new Client({ connection, namespace: config.temporal.namespace }), connection };
}
