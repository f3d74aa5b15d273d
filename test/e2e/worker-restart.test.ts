/**
 * Durability: the worker process is killed (SIGKILL) while a block is held, or while the block's
 * first write has landed but not been answered (before its task completed, or after the worker
 * had kept the task alive past its timeout, so the next worker runs the write again in a replay);
 * a new worker process picks the incident up from Temporal and releases the block when the TTL ends.
 */
import type { ChildProcess } from 'node:child_process';
import { startRemediation, waitUntilSettled } from '../../src/client/remediation';
import type { remediate } from '../../workflows/remediate';
import { startThrottleProxy } from '../../bench/throttle-proxy';
import { spawnCli } from '../helpers/cli';
import { buildDetection, openTestStack, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;
const workers: ChildProcess[] = [];

beforeAll(async () => {
  stack = await openTestStack();
});
afterAll(async () => {
  for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await stack?.close();
});

function startWorkerProcess(env: Record<string, string> = {}) {
  const worker = spawnCli(['worker'], { ...stack.env, ...env });
  workers.push(worker);
  return worker;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve()),
  );
}

it('releases the block on time after the worker is killed and a new one starts', async () => {
  const ip = '192.0.2.200';
  const first = startWorkerProcess();
  const [started] = await startRemediation(
    { client: stack.client, config: stack.config },
    buildDetection({ targets: [ip], ttlMs: 12_000 }),
  );
  const active = await waitUntilSettled(stack.client, started!.workflowId, 30_000);
  expect(active.state).toBe('active');
  expect(await stack.setContents('block')).toContain(`${ip}/32`);
  const expiresAt = Date.parse(active.expiresAt ?? '');

  first.kill('SIGKILL');
  await exited(first);
  // A crash releases nothing: the block stays until the TTL says otherwise.
  expect(await stack.setContents('block')).toContain(`${ip}/32`);

  startWorkerProcess();
  await waitFor(
    'release after the TTL',
    async () => !(await stack.setContents('block')).includes(`${ip}/32`),
    40_000,
  );
  const releasedSeenAt = Date.now();
  expect(releasedSeenAt).toBeGreaterThanOrEqual(expiresAt);
  // "On time": the timer fires at expiry; a new worker may wait out the dead one's sticky queue (3 s).
  expect(releasedSeenAt - expiresAt).toBeLessThan(8_000);
  const result = await stack.client.workflow.getHandle<typeof remediate>(started!.workflowId).result();
  expect(result.state).toBe('released');
  expect(Date.parse(result.releasedAt ?? '')).toBeGreaterThanOrEqual(expiresAt);
});

/**
 * An incident whose first write lands but is never answered: the UpdateIPSet that carries the
 * address is written by the emulator behind a proxy that withholds its answer. Only the worker
 * started here (the one about to die) may take the incident's first task.
 */
async function withAnswerWithheld(ip: string) {
  for (const w of workers) w.kill('SIGKILL');
  await Promise.all(workers.map(exited));
  const proxy = await startThrottleProxy(stack.env.AWS_ENDPOINT_URL_WAFV2 ?? '', 100_000, {
    withholdAnswer: (body) => body.includes(`"${ip}/32"`),
  });
  const first = startWorkerProcess({ AWS_ENDPOINT_URL_WAFV2: proxy.endpoint });
  const [started] = await startRemediation(
    { client: stack.client, config: stack.config },
    buildDetection({ targets: [ip], ttlMs: 3_000 }),
  ).catch(async (err: unknown) => {
    await proxy.close();
    throw err;
  });
  const handle = stack.client.workflow.getHandle<typeof remediate>(started!.workflowId);
  return { proxy, first, handle };
}

it('releases a block whose first write landed just before the worker died', async () => {
  const ip = '192.0.2.201';
  const { proxy, first, handle } = await withAnswerWithheld(ip);
  try {
    // The add runs inside the incident's first workflow task: it lands, the worker dies before
    // it hears so, and that task never completes.
    await proxy.added(`${ip}/32`, 30_000);
    expect(await stack.setContents('block')).toContain(`${ip}/32`);
    first.kill('SIGKILL');
    await exited(first);

    // The task's next attempt, on a new worker, finds the address in the set. It cannot tell its
    // own write from someone else's, so it counts it as its own: released at the end of the TTL.
    startWorkerProcess();
    const result = await handle.result();
    expect(result.state).toBe('released');
    expect(result.timeline.map((t) => t.message).join('\n')).not.toMatch(/left as found/);
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    const events = (await handle.fetchHistory()).events ?? [];
    expect(
      events.some((e) => e.workflowTaskTimedOutEventAttributes || e.workflowTaskFailedEventAttributes),
    ).toBe(true);
    // The retry went the activity way, and claimed what it found.
    const adds = events.filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'addToIpSet',
    );
    expect(adds).toHaveLength(1);
  } finally {
    await proxy.close();
  }
}, 60_000);

it('releases a block whose write landed while its task was kept alive, after the worker died', async () => {
  const ip = '192.0.2.202';
  // The AWS client waits 10 s for the withheld answer, twice: the worker keeps the first task
  // alive meanwhile by completing it empty at 8 s (of its 10 s timeout) and taking the next.
  const { proxy, first, handle } = await withAnswerWithheld(ip);
  try {
    await proxy.added(`${ip}/32`, 30_000);
    // The task kept alive: its first part completed with nothing in it, the add still unanswered.
    await waitFor(
      'the first task kept alive',
      async () =>
        ((await handle.fetchHistory()).events ?? []).some((e) => e.workflowTaskCompletedEventAttributes),
      9_500,
    );
    first.kill('SIGKILL');
    await exited(first);
    let events = (await handle.fetchHistory()).events ?? [];
    expect(events.some((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')).toBe(
      false,
    );

    // The next worker replays that completed part and runs the add afresh as a local activity, in
    // a replay: it cannot tell its own earlier write from someone else's, so it claims the address.
    startWorkerProcess();
    const result = await handle.result();
    expect(result.state).toBe('released');
    expect(result.timeline.map((t) => t.message).join('\n')).not.toMatch(/left as found/);
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    events = (await handle.fetchHistory()).events ?? [];
    // Still the local way: no add activity was scheduled.
    expect(
      events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'addToIpSet'),
    ).toHaveLength(0);
  } finally {
    await proxy.close();
  }
}, 90_000);
