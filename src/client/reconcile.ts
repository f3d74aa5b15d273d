/**
 * The reconciler's Temporal Schedule, and a run on demand (`perimeter reconcile`).
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Config } from '../config';
import type { ReconcileReport } from '../../workflows/reconcile';

export type { ReconcileReport };

/** One schedule per deployment (task queue), so several can share a namespace. */
export function reconcileScheduleId(config: Config): string {
  return `perimeter/reconcile/${config.temporal.taskQueue}`;
}

/**
 * Creates the reconciler's schedule, or brings an existing one up to date with the configured
 * interval. Overlapping runs are skipped: a slow run is never stacked on.
 */
export async function ensureReconcileSchedule(
  client: Client,
  config: Config,
): Promise<'created' | 'updated'> {
  const scheduleId = reconcileScheduleId(config);
  const spec = { intervals: [{ every: config.reconcileEveryMs }] };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: 'reconcile',
    workflowId: scheduleId,
    taskQueue: config.temporal.taskQueue,
    args: [],
    staticSummary: 'reconcile the managed WAF sets with the open incidents',
  };
  try {
    await client.schedule.create({
      scheduleId,
      spec,
      action,
      policies: { overlap: ScheduleOverlapPolicy.SKIP },
      memo: { purpose: 'the perimeter heals drift and orphans in its managed sets' },
    });
    return 'created';
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(scheduleId).update((previous) => ({ ...previous, spec, action }));
    return 'updated';
  }
}

/** Runs the reconciler once, now, and returns its report. */
export async function reconcileNow(client: Client, config: Config): Promise<ReconcileReport> {
  return client.workflow.execute('reconcile', {
    workflowId: `${reconcileScheduleId(config)}/manual-${new Date().toISOString()}`,
    taskQueue: config.temporal.taskQueue,
    args: [],
    staticSummary: 'reconcile the managed WAF sets with the open incidents (on demand)',
  });
}
