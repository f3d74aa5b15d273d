/**
 * Approval: the incident waits for a person's decision through the `decide` Update (the path
 * Slack buttons and `perimeter approve/deny` take), and only configured approvers may decide.
 */
import { WorkflowUpdateFailedError } from '@temporalio/client';
import {
  decideRemediation,
  incidentStatus,
  releaseRemediation,
  waitUntilSettled,
  type Detection,
} from '../../src/client/remediation';
import type { remediate } from '../../workflows/remediate';
import { addressPool, openTestStack, startAwaitingApproval, type TestStack } from '../helpers/stack';

const pool = addressPool('192.0.2', '2001:db8:4');
let stack: TestStack;

beforeAll(async () => {
  stack = await openTestStack({
    PERIMETER_SLACK_APPROVERS: 'U_ALICE,U_BOB',
    PERIMETER_APPROVAL_TIMEOUT: '2m',
  });
  await stack.startWorker();
});
afterAll(() => stack?.close());

const deps = (timeoutMs?: number, onTimeout?: 'deny' | 'approve') => ({
  client: stack.client,
  config: {
    ...stack.config,
    approval: {
      ...stack.config.approval,
      ...(timeoutMs ? { timeoutMs } : {}),
      ...(onTimeout ? { onTimeout } : {}),
    },
  },
});
const handleOf = (id: string) => stack.client.workflow.getHandle<typeof remediate>(id);

async function awaitingApproval(ip: string, extra: Partial<Detection> = {}, d = deps()) {
  return { workflowId: await startAwaitingApproval(stack, ip, extra, d.config) };
}

it('applies nothing until an approver approves, then blocks', async () => {
  const ip = pool.v4();
  const s = await awaitingApproval(ip);
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  const r = await decideRemediation(stack.client, ip, { decision: 'approve', by: 'U_ALICE' });
  expect(r).toMatchObject({ decision: 'approve', by: 'U_ALICE', byDefault: false, state: 'active' });
  expect(await stack.setContents('block')).toContain(`${ip}/32`);
  const status = await incidentStatus(stack.client, ip);
  expect(status.timeline.map((t) => t.message)).toContain('approved by U_ALICE');
  await releaseRemediation(stack.client, s.workflowId, { by: 'jest' });
});

it('stands down on deny, leaving the count set as it was', async () => {
  const ip = pool.v4();
  const s = await awaitingApproval(ip, { observeMs: 500 });
  expect(await stack.setContents('count')).toContain(`${ip}/32`);
  const r = await decideRemediation(stack.client, ip, { decision: 'deny', by: 'U_BOB' });
  expect(r).toMatchObject({ decision: 'deny', state: 'stood-down' });
  const result = await handleOf(s.workflowId).result();
  expect(result.timeline.at(-1)?.message).toBe('denied by U_BOB; nothing was applied');
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  expect(await stack.setContents('count')).not.toContain(`${ip}/32`);
});

it('refuses a decision from someone who is not an approver, and changes nothing', async () => {
  const ip = pool.v4();
  const s = await awaitingApproval(ip);
  const attempt = decideRemediation(stack.client, ip, { decision: 'approve', by: 'U_MALLORY' });
  await expect(attempt).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
  await expect(attempt).rejects.toMatchObject({
    cause: { message: 'U_MALLORY is not authorised to approve or deny' },
  });
  const status = await incidentStatus(stack.client, ip);
  expect(status.state).toBe('awaiting-approval');
  expect(status.decision).toBeUndefined();
  await decideRemediation(stack.client, s.workflowId, { decision: 'deny', by: 'U_ALICE' });
});

it('answers a second click truthfully and keeps the first decision', async () => {
  const ip = pool.v4();
  const s = await awaitingApproval(ip);
  await decideRemediation(stack.client, ip, { decision: 'approve-challenge', by: 'U_ALICE' });
  expect(await stack.setContents('challenge')).toContain(`${ip}/32`);
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  const second = decideRemediation(stack.client, ip, { decision: 'deny', by: 'U_BOB' });
  await expect(second).rejects.toMatchObject({
    cause: { message: 'already decided: approved as challenge by U_ALICE' },
  });
  expect((await incidentStatus(stack.client, ip)).action).toBe('challenge');
  await releaseRemediation(stack.client, s.workflowId, { by: 'jest' });
  expect(await stack.setContents('challenge')).not.toContain(`${ip}/32`);
});

it('applies the default when nobody answers: deny unless configured to approve', async () => {
  const denied = pool.v4();
  const d = await awaitingApproval(denied, {}, deps(1_500));
  const result = await handleOf(d.workflowId).result();
  expect(result).toMatchObject({
    state: 'stood-down',
    decision: { decision: 'deny', by: 'timeout', byDefault: true },
  });
  expect(result.timeline.map((t) => t.message)).toContain('expired: no answer in 1.5s — default deny');
  expect(await stack.setContents('block')).not.toContain(`${denied}/32`);

  const approved = pool.v4();
  const a = await awaitingApproval(approved, {}, deps(1_500, 'approve'));
  const active = await waitUntilSettled(stack.client, a.workflowId, 15_000);
  expect(active).toMatchObject({ state: 'active', decision: { decision: 'approve', byDefault: true } });
  expect(await stack.setContents('block')).toContain(`${approved}/32`);
  await releaseRemediation(stack.client, a.workflowId, { by: 'jest' });
  const late = decideRemediation(stack.client, a.workflowId, { decision: 'deny', by: 'U_ALICE' });
  await expect(late).rejects.toThrow(/has already ended \(released\)/);
});

it('stands down when released while waiting for approval', async () => {
  const ip = pool.v4();
  const s = await awaitingApproval(ip);
  expect(await releaseRemediation(stack.client, ip, { by: 'oncall' })).toMatchObject({
    accepted: true,
    state: 'stood-down',
  });
  expect((await handleOf(s.workflowId).result()).appliedAt).toBeUndefined();
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});
