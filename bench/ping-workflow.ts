/** The baseline: an empty workflow that runs one empty activity, on the same dev server. */
import { proxyActivities } from '@temporalio/workflow';

const { pong } = proxyActivities<{ pong(id: string): Promise<void> }>({ startToCloseTimeout: '10s' });

export async function ping(id: string): Promise<void> {
  await pong(id);
}

export async function empty(): Promise<void> {
  // Starts and completes: the server's raw rate of workflows.
}
