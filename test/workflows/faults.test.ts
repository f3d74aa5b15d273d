/**
 * The incident workflow when things go wrong at the worst moment: slow or failing WAF writes,
 * cancellation mid-write, a stand-down before validation ends, an address someone else put
 * in the set, a detection landing on an incident that is releasing. Faults are injected in
 * front of the real gateway (the WAF emulator stays the source of truth).
 */
import { InterceptingCall, type Interceptor } from '@grpc/grpc-js';
import { Context } from '@temporalio/activity';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import type { Activities } from '../../activities';
import { incidentStatus, releaseRemediation, startRemediation } from '../../src/client/remediation';
import { connectionInterceptors } from '../../src/client/temporal';
import type { WafGateway } from '../../src/waf/gateway';
import { searchAttributes, statusQuery } from '../../workflows/definitions';
import type { remediate } from '../../workflows/remediate';
import { addressPool, buildDetection, openTestStack, waitFor, type TestStack } from '../helpers/stack';

const pool = addressPool('198.51.100', '2001:db8:3');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Knobs the tests turn: every worker call reads them at call time. */
const faults = {
  applyDelayMs: 0,
  applyFailures: 0,
  /** Writes that land, but whose answer is lost (the activity fails after the write). */
  applyAnswersLost: 0,
  releaseDelayMs: 0,
  releaseFailures: 0,
  validateDelayMs: 0,
  /** A retry of the prepare step finds that a person must now decide (the policy's answer changed). */
  approvalOnRetry: false,
  onValidate: (): void => undefined,
  /** Called as a write reaches the gateway (before any delay). */
  onApply: (): void => undefined,
};
let releaseCalls = 0;

function faultyGateway(inner: WafGateway): WafGateway {
  return {
    async apply(action, cidrs, options) {
      faults.onApply();
      if (faults.applyFailures > 0) {
        faults.applyFailures--;
        throw Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
      }
      if (faults.applyDelayMs) await sleep(faults.applyDelayMs);
      const result = await inner.apply(action, cidrs, options);
      if (faults.applyAnswersLost > 0) {
        faults.applyAnswersLost--;
        throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' });
      }
      return result;
    },
    async release(action, cidrs, options) {
      releaseCalls++;
      if (faults.releaseFailures > 0) {
        faults.releaseFailures--;
        throw Object.assign(new Error('User is not authorized to perform wafv2:UpdateIPSet'), {
          name: 'AccessDeniedException',
        });
      }
      if (faults.releaseDelayMs) await sleep(faults.releaseDelayMs);
      return inner.release(action, cidrs, options);
    },
    check: (action, cidrs, options) => inner.check(action, cidrs, options),
  };
}

function slowValidation(a: Activities): Activities {
  return {
    ...a,
    async validateRemediation(input) {
      faults.onValidate();
      if (faults.validateDelayMs) await sleep(faults.validateDelayMs);
      return a.validateRemediation(input);
    },
    async prepareRemediation(input) {
      faults.onValidate();
      if (faults.validateDelayMs) await sleep(faults.validateDelayMs);
      const retry = Context.current().info.attempt > 1;
      return a.prepareRemediation(faults.approvalOnRetry && retry ? { ...input, approval: 'slack' } : input);
    },
  };
}

let stack: TestStack;
beforeAll(async () => {
  stack = await openTestStack();
  await stack.startWorker({ wrapGateway: faultyGateway, wrapActivities: slowValidation });
});
afterAll(() => stack?.close());
afterEach(() =>
  Object.assign(faults, {
    applyDelayMs: 0,
    applyFailures: 0,
    applyAnswersLost: 0,
    releaseDelayMs: 0,
    releaseFailures: 0,
    validateDelayMs: 0,
    approvalOnRetry: false,
    onValidate: () => undefined,
    onApply: () => undefined,
  }),
);

const deps = () => ({ client: stack.client, config: stack.config });
const handleOf = (id: string) => stack.client.workflow.getHandle<typeof remediate>(id);

it('leaves nothing behind when released while the policy check is still running', async () => {
  // The checks run inside the workflow task: the release is taken once they have finished.
  faults.validateDelayMs = 1_500;
  const ip = pool.v4();
  const validating = new Promise<void>((resolve) => (faults.onValidate = resolve));
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
  await validating;
  const r = await releaseRemediation(stack.client, ip, { by: 'oncall', reason: 'known scanner we pay for' });
  expect(r).toMatchObject({ accepted: true });
  expect(['released', 'stood-down']).toContain(r.state);
  const result = await handleOf(s!.workflowId).result();
  expect(result.timeline.map((t) => t.message).join('\n')).toMatch(/oncall/);
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  expect(await stack.setContents('count')).not.toContain(`${ip}/32`);
});

/** Resolves as the next write reaches the WAF (the gateway), while it is still in flight. */
function nextWrite(): Promise<void> {
  return new Promise((resolve) => (faults.onApply = resolve));
}

it('leaves nothing behind when cancelled while the block is being written', async () => {
  faults.applyDelayMs = 1_500;
  const ip = pool.v4();
  const writing = nextWrite();
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
  // The first add runs inside the task that started the incident: the cancellation arrives
  // while it is in flight and takes effect once it has landed.
  await writing;
  await handleOf(s!.workflowId).cancel();
  await expect(handleOf(s!.workflowId).result()).rejects.toBeInstanceOf(WorkflowFailedError);
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  await sleep(2_000); // a write that was still in flight would have landed by now
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  expect((await handleOf(s!.workflowId).query(statusQuery)).state).toBe('released');
});

it('keeps retrying a release that AWS refuses (e.g. a lost permission) until it succeeds', async () => {
  const ip = pool.v4();
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 1_000 }));
  await waitFor('block', async () => (await stack.setContents('block')).includes(`${ip}/32`));
  const before = releaseCalls;
  faults.releaseFailures = 2;
  const result = await handleOf(s!.workflowId).result();
  expect(result.state).toBe('released');
  expect(releaseCalls - before).toBe(3);
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  // Those attempts fit the quick release in the task the TTL timer woke: no activity was needed
  // (nor for the add, made in the task that started the incident).
  const history = await handleOf(s!.workflowId).fetchHistory();
  const scheduled = history.events?.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
  expect(scheduled?.filter(Boolean)).toEqual([]);
});

it('hands a release that keeps failing to an activity, shown as releasing, retried until it succeeds', async () => {
  const ip = pool.v4();
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 1_000 }));
  await waitFor('block', async () => (await stack.setContents('block')).includes(`${ip}/32`));
  const before = releaseCalls;
  faults.releaseFailures = 5; // three quick attempts, then the activity's first two
  await waitFor('releasing in the visibility store', async () => {
    const d = await handleOf(s!.workflowId).describe();
    return d.typedSearchAttributes.get(searchAttributes.state) === 'releasing';
  });
  expect(await stack.setContents('block')).toContain(`${ip}/32`);
  const result = await handleOf(s!.workflowId).result();
  expect(result.state).toBe('released');
  expect(releaseCalls - before).toBe(6);
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  expect(result.timeline.map((t) => t.message).join('\n')).toMatch(
    /release from the block set not done yet \(.*not authorized.*\): retrying/,
  );
  const history = await handleOf(s!.workflowId).fetchHistory();
  const scheduled = history.events?.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
  expect(scheduled?.filter(Boolean)).toEqual(['removeFromIpSet']);
});

it('retries a throttled write, then blocks and releases as usual', async () => {
  faults.applyFailures = 2;
  const ip = pool.v4();
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 1_500 }));
  await waitFor('block', async () => (await stack.setContents('block')).includes(`${ip}/32`));
  expect((await handleOf(s!.workflowId).result()).state).toBe('released');
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});

it('shows an accepted release at once, so a detection arriving meanwhile starts a fresh incident', async () => {
  faults.applyDelayMs = 1_500;
  const ip = pool.v4();
  const writing = nextWrite();
  const [first] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
  await writing;
  const firstRun = (await handleOf(first!.workflowId).describe()).runId;
  // Asked while the block is being written; taken once it has landed, and slow to finish.
  faults.releaseDelayMs = 3_000;
  const releasing = releaseRemediation(stack.client, ip, { by: 'oncall' });
  await waitFor('releasing', async () => (await incidentStatus(stack.client, ip)).state === 'releasing');
  faults.applyDelayMs = 0;
  faults.releaseDelayMs = 0;
  const [fresh] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
  expect(fresh?.joined).toBe(false);
  expect(await releasing).toMatchObject({ accepted: true, state: 'released' });
  expect((await handleOf(first!.workflowId).describe()).runId).not.toBe(firstRun);
  await waitFor('blocked by the fresh incident', async () =>
    (await stack.setContents('block')).includes(`${ip}/32`),
  );
  await releaseRemediation(stack.client, ip, { by: 'jest' });
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});

it('never removes an address it found already in the set', async () => {
  const ip = pool.v4();
  await stack.gateway.apply('block', [`${ip}/32`]); // put there by someone else
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 1_000 }));
  const result = await handleOf(s!.workflowId).result();
  expect(result.state).toBe('released');
  expect(result.timeline.map((t) => t.message).join('\n')).toMatch(
    /not added by this incident \(left as found\)/,
  );
  expect(await stack.setContents('block')).toContain(`${ip}/32`);
  await stack.gateway.release('block', [`${ip}/32`]);
});

it('releases a block whose first write landed but whose answer was lost', async () => {
  const ip = pool.v4();
  faults.applyAnswersLost = 1;
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 1_500 }));
  await waitFor('block', async () => (await stack.setContents('block')).includes(`${ip}/32`));
  const result = await handleOf(s!.workflowId).result();
  expect(result.state).toBe('released');
  // The retry found its own earlier write in the set: still this incident's, so released.
  expect(result.timeline.map((t) => t.message).join('\n')).not.toMatch(/left as found/);
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});

it("leaves someone else's address as found when the first write's answer was lost", async () => {
  const [ip, fresh] = [pool.v4(), pool.v4()];
  await stack.gateway.apply('block', [`${ip}/32`]); // put there by someone else
  faults.applyAnswersLost = 1;
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip, fresh], ttlMs: 1_500 }));
  const result = await handleOf(s!.workflowId).result();
  expect(result.state).toBe('released');
  // The retry knew its lost write had added only the other address: that one is released.
  expect(result.timeline.map((t) => t.message).join('\n')).toMatch(
    new RegExp(`left as found\\): ${ip.replace(/\./g, '\\.')}/32$`, 'm'),
  );
  const after = await stack.setContents('block');
  expect(after).toContain(`${ip}/32`);
  expect(after).not.toContain(`${fresh}/32`);
  await stack.gateway.release('block', [`${ip}/32`]);
});

it('takes back a first write whose answer was lost when the retried step no longer lets it stand', async () => {
  const ip = pool.v4();
  faults.applyAnswersLost = 1;
  faults.approvalOnRetry = true;
  const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
  await waitFor(
    'awaiting approval',
    async () => (await incidentStatus(stack.client, ip)).state === 'awaiting-approval',
  );
  // Nobody has approved a block: the write that landed unanswered was taken back.
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  expect((await incidentStatus(stack.client, ip)).held ?? {}).toEqual({});
  await releaseRemediation(stack.client, ip, { by: 'jest' });
  await handleOf(s!.workflowId).result();
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});

it('tells a started incident from the signal-with-start answer; only a repeat asks the server', async () => {
  const calls: string[] = [];
  const counted: Interceptor = (options, nextCall) => {
    calls.push(options.method_definition.path.split('/').pop() ?? '');
    return new InterceptingCall(nextCall(options));
  };
  const address = stack.config.temporal.address;
  const connection = await Connection.connect({
    address,
    interceptors: [counted, ...connectionInterceptors()],
  });
  // A connection without the reader (the SDK's defaults): the describe tells started from joined.
  const plain = await Connection.connect({ address });
  const counting = {
    client: new Client({ connection, namespace: stack.config.temporal.namespace }),
    config: stack.config,
  };
  const describes = () => calls.filter((c) => c === 'DescribeWorkflowExecution').length;
  try {
    const [ip, other] = [pool.v4(), pool.v4()];
    const [first] = await startRemediation(counting, buildDetection({ targets: [ip], ttlMs: 60_000 }));
    expect(first).toMatchObject({ joined: false, incident: { state: 'validating' } });
    expect(calls).toContain('SignalWithStartWorkflowExecution');
    expect(describes()).toBe(0);
    await waitFor('active', async () => (await incidentStatus(stack.client, ip)).state === 'active');
    const [again] = await startRemediation(counting, buildDetection({ targets: [ip], ttlMs: 60_000 }));
    expect(again).toMatchObject({ joined: true, incident: { state: 'active' } });
    expect(describes()).toBe(1);
    // Detections do not each ask the visibility store for campaigns: one read serves them all.
    const lists = () => calls.filter((c) => c === 'ListWorkflowExecutions').length;
    const listed = lists();
    const burst = [pool.v4(), pool.v4(), pool.v4()];
    await Promise.all(
      burst.map((t) => startRemediation(counting, buildDetection({ targets: [t], ttlMs: 60_000 }))),
    );
    expect(lists() - listed).toBeLessThanOrEqual(1);
    const viaPlain = {
      client: new Client({ connection: plain, namespace: stack.config.temporal.namespace }),
      config: stack.config,
    };
    const [fresh] = await startRemediation(viaPlain, buildDetection({ targets: [other], ttlMs: 60_000 }));
    const [repeat] = await startRemediation(viaPlain, buildDetection({ targets: [other], ttlMs: 60_000 }));
    expect([fresh?.joined, repeat?.joined]).toEqual([false, true]);
    for (const target of [ip, other, ...burst])
      await releaseRemediation(stack.client, target, { by: 'jest' });
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  } finally {
    await connection.close();
    await plain.close();
  }
});

it('reports a repeat detection as joined, and starts afresh when the open incident is releasing', async () => {
  const ip = pool.v4();
  const [first] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
  expect(first?.joined).toBe(false);
  await waitFor('active', async () => (await incidentStatus(stack.client, ip)).state === 'active');
  const [again] = await startRemediation(
    deps(),
    buildDetection({ targets: [ip], ttlMs: 120_000, action: 'captcha' }),
  );
  expect(again).toMatchObject({ joined: true, incident: { action: 'block', state: 'active' } });

  faults.releaseDelayMs = 1_500;
  const releasing = releaseRemediation(stack.client, ip, { by: 'oncall' });
  await waitFor('releasing', async () => {
    const d = await handleOf(first!.workflowId).describe();
    return d.typedSearchAttributes.get(searchAttributes.state) === 'releasing';
  });
  const firstRun = (await handleOf(first!.workflowId).describe()).runId;
  const [fresh] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
  expect(fresh?.joined).toBe(false);
  await releasing;
  expect((await handleOf(first!.workflowId).describe()).runId).not.toBe(firstRun);
  faults.releaseDelayMs = 0;
  await waitFor('block again', async () => (await stack.setContents('block')).includes(`${ip}/32`));
  await releaseRemediation(stack.client, ip, { by: 'jest' });
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});
