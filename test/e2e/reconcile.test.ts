/**
 * The reconciler against the real stack: an address left behind by an incident terminated by
 * hand is removed, an address someone deleted from the set while its incident holds it is put
 * back, and an address someone else added is left as found. Assertions read the emulator's sets
 * and the reconciler run's own history.
 */
import { ensureReconcileSchedule, reconcileNow, reconcileScheduleId } from '../../src/client/reconcile';
import { startRemediation, waitUntilSettled } from '../../src/client/remediation';
import { addressPool, buildDetection, openTestStack, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;
let worker: Awaited<ReturnType<TestStack['startWorker']>>;
const pool = addressPool('203.0.122', '2001:db8:9');

beforeAll(async () => {
  stack = await openTestStack();
  worker = await stack.startWorker({ log: () => undefined });
});
afterAll(() => stack?.close());

async function block(ip: string): Promise<string> {
  const [started] = await startRemediation(stack, buildDetection({ targets: [ip], ttlMs: 600_000 }));
  if (!started) throw new Error('no incident');
  await waitUntilSettled(stack.client, started.workflowId, 15_000);
  return started.workflowId;
}

async function summaries(workflowId: string): Promise<string[]> {
  const history = await stack.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .filter((e) => e.activityTaskScheduledEventAttributes)
    .map((e) => Buffer.from(e.userMetadata?.summary?.data ?? new Uint8Array()).toString());
}

describe('reconciler', () => {
  it('removes what a terminated incident left, restores what a held incident lost, and leaves others alone', async () => {
    const orphan = pool.v4();
    const lost = pool.v4();
    const foreign = pool.v4();
    const terminated = await block(orphan);
    await stack.client.workflow.getHandle(terminated).terminate('operator mistake');
    const holder = await block(lost);
    // Someone edits the set by hand: takes out a held address, puts in one of their own.
    await stack.gateway.release('block', [`${lost}/32`]);
    await stack.gateway.apply('block', [`${foreign}/32`]);
    expect(await stack.setContents('block')).toEqual(
      expect.arrayContaining([`${orphan}/32`, `${foreign}/32`]),
    );

    const report = await reconcileNow(stack.client, stack.config);
    expect(report.removed).toEqual([`${orphan}/32`]);
    expect(report.restored).toEqual([`${lost}/32`]);
    expect(report.foreign).toContain(`${foreign}/32 (block)`);
    expect(worker.metrics.repairs.get({ kind: 'removed', action: 'block' })).toBe(1);
    expect(worker.metrics.repairs.get({ kind: 'restored', action: 'block' })).toBe(1);
    const after = await stack.setContents('block');
    expect(after).not.toContain(`${orphan}/32`);
    expect(after).toEqual(expect.arrayContaining([`${lost}/32`, `${foreign}/32`]));

    const runs = [];
    for await (const wf of stack.client.workflow.list({
      query: `WorkflowType = 'reconcile' AND TaskQueue = '${stack.config.temporal.taskQueue}'`,
    }))
      runs.push(wf.workflowId);
    expect(runs).toHaveLength(1);
    const told = await summaries(runs[0] ?? '');
    expect(told).toEqual([
      '"compare the managed sets with the open incidents"',
      `"restore ${lost}/32 to the block set (held by ${holder})"`,
      `"remove ${orphan}/32 from the block set (left by ended ${terminated})"`,
    ]);

    // Healed: a second run finds nothing to do.
    const again = await reconcileNow(stack.client, stack.config);
    expect(again).toMatchObject({ restored: [], removed: [] });
  });

  it('runs on a Temporal Schedule that skips overlapping runs', async () => {
    expect(await ensureReconcileSchedule(stack.client, stack.config)).toBe('created');
    expect(await ensureReconcileSchedule(stack.client, stack.config)).toBe('updated');
    const handle = stack.client.schedule.getHandle(reconcileScheduleId(stack.config));
    try {
      const described = await handle.describe();
      expect(described.spec.intervals?.[0]?.every).toBe(stack.config.reconcileEveryMs);
      expect(described.policies.overlap).toBe('SKIP');
      await handle.trigger();
      const run = await waitFor(
        'a scheduled run',
        async () => (await handle.describe()).info.recentActions[0],
      );
      const result = await stack.client.workflow.getHandle(run.action.workflow.workflowId).result();
      expect(result).toMatchObject({ restored: [], removed: [] });
    } finally {
      await handle.delete();
    }
  });
});
