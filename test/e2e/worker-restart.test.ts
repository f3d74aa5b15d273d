/**
 * Durability: the worker process is killed (SIGKILL) while a block is held; a new worker
 * process picks the incident up from Temporal and releases the block when the TTL ends.
 */
import type { ChildProcess } from 'node:child_process';
import { startRemediation, waitUntilSettled } from '../../src/client/remediation';
import type { remediate } from '../../workflows/remediate';
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

function startWorkerProcess() {
  const worker = spawnCli(['worker'], stack.env);
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
