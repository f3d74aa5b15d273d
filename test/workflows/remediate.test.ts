/**
 * The incident workflow on the real Temporal dev server, with the real activities writing to
 * the WAF emulator. Assertions are on the emulator's set contents and the workflow's state and
 * history.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure, WorkflowNotFoundError } from '@temporalio/common';
import {
  extendRemediation,
  incidentStatus,
  releaseRemediation,
  startRemediation,
  waitUntilSettled,
} from '../../src/client/remediation';
import { PolicyError } from '../../src/domain/policy';
import type { remediate } from '../../workflows/remediate';
import { ipWorkflowId, sightingSignal, statusQuery } from '../../workflows/definitions';
import { addressPool, buildDetection, openTestStack, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;
const pool = addressPool('203.0.113', '2001:db8:1');

beforeAll(async () => {
  stack = await openTestStack();
  await stack.startWorker();
});
afterAll(() => stack?.close());

const deps = () => ({ client: stack.client, config: stack.config });

describe('remediate workflow', () => {
  it('blocks the target for the TTL and then releases it', async () => {
    const ip = pool.v4();
    const [started] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 3_000 }));
    expect(started?.workflowId).toBe(ipWorkflowId(`${ip}/32`));
    await waitFor('block in the emulator', async () =>
      (await stack.setContents('block')).includes(`${ip}/32`),
    );
    const active = await incidentStatus(stack.client, ip);
    expect(active.state).toBe('active');
    const appliedAt = Date.parse(active.appliedAt ?? '');

    const result = await stack.client.workflow.getHandle<typeof remediate>(started!.workflowId).result();
    expect(result.state).toBe('released');
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    expect(Date.parse(result.releasedAt ?? '') - appliedAt).toBeGreaterThanOrEqual(3_000);
    expect(result.timeline.map((t) => t.step)).toEqual(
      expect.arrayContaining(['detect', 'validate', 'observe', 'approve', 'apply', 'hold', 'release']),
    );

    // The Temporal UI tells the story: every step and the TTL timer carry a summary. The reads
    // before the add with the add itself (one step, in the task that started the incident) and
    // the release the TTL timer wakes are each a marker of a local activity; nothing needed an
    // activity task.
    const history = await stack.client.workflow.getHandle(started!.workflowId).fetchHistory();
    const events = history.events ?? [];
    const timers = events
      .filter((e) => e.timerStartedEventAttributes)
      .map((e) => Buffer.from(e.userMetadata?.summary?.data ?? new Uint8Array()).toString());
    expect(timers.some((s) => s.startsWith('"TTL: block until'))).toBe(true);
    const local = events
      .filter((e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity')
      .map((e) => Buffer.from(e.userMetadata?.summary?.data ?? new Uint8Array()).toString());
    expect(local).toEqual([
      `"policy check, context and add: block ${ip}/32"`,
      `"remove ${ip}/32 from block set"`,
    ]);
    const scheduled = events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name);
    expect(scheduled.filter(Boolean)).toEqual([]);
    // Search attributes are written when they change and someone can see it: active, released
    // (and the SDK's own record of the workflow's version).
    expect(events.filter((e) => e.upsertWorkflowSearchAttributesEventAttributes)).toHaveLength(3);
    expect(events.length).toBeLessThanOrEqual(25);
  });

  it('joins a repeat detection to the open incident instead of blocking twice', async () => {
    const ip = pool.v4();
    const detection = buildDetection({ targets: [ip], ttlMs: 30_000 });
    const [first] = await startRemediation(deps(), detection);
    await waitUntilSettled(stack.client, first!.workflowId, 15_000);
    const [second] = await startRemediation(deps(), { ...detection, evidence: { classes: { xss: 3 } } });
    expect(second?.workflowId).toBe(first?.workflowId);

    const status = await waitFor('second sighting', async () => {
      const s = await incidentStatus(stack.client, ip);
      return s.evidence.sightings === 2 ? s : undefined;
    });
    expect(status.evidence.byClass).toEqual({ sqli: 5, xss: 3 });
    expect((await stack.setContents('block')).filter((a) => a === `${ip}/32`)).toHaveLength(1);
    const history = await stack.client.workflow.getHandle(first!.workflowId).fetchHistory();
    const writes = (history.events ?? []).filter((e) =>
      /\badd\b/.test(Buffer.from(e.userMetadata?.summary?.data ?? new Uint8Array()).toString()),
    );
    expect(writes).toHaveLength(1); // one write for two detections
    const runs = [];
    for await (const wf of stack.client.workflow.list({ query: `WorkflowId = '${first!.workflowId}'` }))
      runs.push(wf);
    expect(runs).toHaveLength(1);
    await releaseRemediation(stack.client, ip, { by: 'jest' });
  });

  it('starts a fresh incident for a detection arriving as the open one expires', async () => {
    const ip = pool.v4();
    const [first] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 2_000 }));
    const active = await waitUntilSettled(stack.client, first!.workflowId, 15_000);
    expect(active.state).toBe('active');
    const firstRun = (await stack.client.workflow.getHandle(first!.workflowId).describe()).runId;
    // Within the margin of its expiry: the incident is about to release in its timer's task, so
    // the detection must not join it (its evidence would go with it).
    const [again] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 30_000 }));
    expect(again).toMatchObject({ joined: false, workflowId: first!.workflowId });
    const fresh = await stack.client.workflow.getHandle(first!.workflowId).describe();
    expect(fresh.runId).not.toBe(firstRun);
    const previous = await stack.client.workflow
      .getHandle<typeof remediate>(first!.workflowId, firstRun)
      .result();
    expect(previous.state).toBe('released');
    await waitUntilSettled(stack.client, first!.workflowId, 15_000);
    expect((await stack.setContents('block')).filter((a) => a === `${ip}/32`)).toHaveLength(1);
    await releaseRemediation(stack.client, ip, { by: 'jest' });
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  });

  it('observes in the count set first, then moves the target to the block set', async () => {
    const ip = pool.v4();
    const [s] = await startRemediation(
      deps(),
      buildDetection({ targets: [ip], observeMs: 2_000, ttlMs: 30_000 }),
    );
    await waitFor('count entry', async () => (await stack.setContents('count')).includes(`${ip}/32`));
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    await stack.client.workflow.getHandle(s!.workflowId).signal(sightingSignal, {
      at: new Date().toISOString(),
      detector: 'test-detector',
      classes: { sqli: 7 },
    });
    const active = await waitUntilSettled(stack.client, s!.workflowId, 15_000);
    expect(active.state).toBe('active');
    expect(active.evidence.requests).toBe(12);
    expect(await stack.setContents('block')).toContain(`${ip}/32`);
    expect(await stack.setContents('count')).not.toContain(`${ip}/32`);
    await releaseRemediation(stack.client, ip, { by: 'jest' });
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  });

  it('stands down when released during the observation window, never blocking', async () => {
    const ip = pool.v4();
    const [s] = await startRemediation(
      deps(),
      buildDetection({ targets: [ip], observeMs: 30_000, ttlMs: 60_000 }),
    );
    await waitFor('count entry', async () => (await stack.setContents('count')).includes(`${ip}/32`));
    const r = await releaseRemediation(stack.client, ip, { by: 'oncall', reason: 'false positive' });
    expect(r).toMatchObject({ accepted: true, state: 'stood-down' });
    const result = await stack.client.workflow.getHandle<typeof remediate>(s!.workflowId).result();
    expect(result.state).toBe('stood-down');
    expect(result.appliedAt).toBeUndefined();
    expect(await stack.setContents('count')).not.toContain(`${ip}/32`);
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  });

  it('extends within the cap, refuses past it, and releases early on request', async () => {
    const ip = pool.v4();
    const [s] = await startRemediation(
      deps(),
      buildDetection({ targets: [ip], ttlMs: 60_000, action: 'captcha' }),
    );
    const active = await waitUntilSettled(stack.client, s!.workflowId, 15_000);
    expect(await stack.setContents('captcha')).toContain(`${ip}/32`);

    const extended = await extendRemediation(stack.client, ip, { by: 'jest', byMs: 60_000 });
    expect(Date.parse(extended.expiresAt ?? '') - Date.parse(active.expiresAt ?? '')).toBe(60_000);
    const tooLong = extendRemediation(stack.client, ip, { by: 'jest', byMs: 8 * 86_400_000 });
    await expect(tooLong).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    await expect(tooLong).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/exceeds the maximum of 7d/) },
    });
    expect((await incidentStatus(stack.client, ip)).expiresAt).toBe(extended.expiresAt);

    expect(await releaseRemediation(stack.client, ip, { by: 'oncall' })).toMatchObject({
      accepted: true,
      state: 'released',
    });
    expect(await stack.setContents('captcha')).not.toContain(`${ip}/32`);
    expect(await releaseRemediation(stack.client, ip, { by: 'oncall' })).toMatchObject({
      accepted: false,
      state: 'released',
    });
  });

  it('still releases the block when the incident is cancelled', async () => {
    const ip = pool.v4();
    const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 60_000 }));
    await waitUntilSettled(stack.client, s!.workflowId, 15_000);
    const handle = stack.client.workflow.getHandle(s!.workflowId);
    await handle.cancel();
    await expect(handle.result()).rejects.toBeInstanceOf(WorkflowFailedError);
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    const status = await handle.query(statusQuery);
    expect(status.state).toBe('released');
    expect(status.timeline.at(-1)?.message).toMatch(/released: incident cancelled/);
  });

  it('puts IPv6 targets in the ipv6 set only', async () => {
    const cidr = pool.v6();
    const [s] = await startRemediation(deps(), buildDetection({ targets: [cidr], ttlMs: 60_000 }));
    await waitUntilSettled(stack.client, s!.workflowId, 15_000);
    expect(await stack.setContents('block', 'ipv6')).toContain(cidr);
    expect(await stack.setContents('block', 'ipv4')).toEqual([]);
    await releaseRemediation(stack.client, cidr, { by: 'jest' });
    expect(await stack.setContents('block', 'ipv6')).not.toContain(cidr);
  });

  it('continues a long hold in a new run without releasing, and keeps its story', async () => {
    const ip = pool.v4();
    const [s] = await startRemediation(deps(), buildDetection({ targets: [ip], ttlMs: 120_000 }));
    await waitUntilSettled(stack.client, s!.workflowId, 15_000);
    const handle = stack.client.workflow.getHandle<typeof remediate>(s!.workflowId);
    const firstRun = (await handle.describe()).runId;
    let sent = 0;
    while ((await handle.describe()).runId === firstRun) {
      if (sent >= 1_000) throw new Error('no continue-as-new after 1000 sightings');
      await Promise.all(
        Array.from({ length: 25 }, () =>
          handle.signal(sightingSignal, {
            at: new Date().toISOString(),
            detector: 'test-detector',
            classes: { sqli: 1 },
          }),
        ),
      );
      sent += 25;
    }
    const status = await waitFor('status from the new run', () => handle.query(statusQuery));
    expect(status.state).toBe('active');
    expect(status.timeline.map((t) => t.message)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^block in place until/),
        expect.stringMatching(/continuing in a new run/),
      ]),
    );
    expect(await stack.setContents('block')).toContain(`${ip}/32`);
    expect(await releaseRemediation(stack.client, ip, { by: 'jest' })).toMatchObject({
      accepted: true,
      state: 'released',
    });
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    const final = await handle.result();
    expect(final.evidence.sightings).toBeGreaterThan(100);
  });

  it.each([
    [{ targets: ['203.0.113.999'] }, /is not an IP address or CIDR/],
    [{ targets: ['0.0.0.0/0'] }, /whole IPv4 internet/],
    [{ targets: ['::/0'] }, /whole IPv6 internet/],
    [{ targets: ['198.0.0.0/12'] }, /widest allowed IPv4 prefix is \/16/],
    [{ targets: ['2001:db8::/40'] }, /widest allowed IPv6 prefix is \/48/],
    [{ targets: ['192.168.0.10'] }, /private/],
    [{ targets: ['127.0.0.1'] }, /loopback/],
    [{ targets: ['fe80::1'] }, /link-local/],
    [{ ttlMs: 0 }, /TTL must be greater than zero/],
    [{ ttlMs: 30 * 86_400_000 }, /exceeds the maximum of 7d/],
    [{ action: 'drop' }, /unknown action "drop"/],
  ])('refuses %p and starts nothing', async (change, message) => {
    const detection = buildDetection({ targets: ['203.0.113.250'], ...change });
    await expect(startRemediation(deps(), detection)).rejects.toThrow(PolicyError);
    await expect(startRemediation(deps(), detection)).rejects.toThrow(message);
    await expect(
      stack.client.workflow.getHandle(ipWorkflowId('203.0.113.250/32')).describe(),
    ).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(await stack.setContents('block')).not.toContain('203.0.113.250/32');
  });

  /** A private address straight to the workflow, past the client's own policy check; how it ended. */
  async function startPastTheClient(ip: string): Promise<unknown> {
    const handle = await stack.client.workflow.start('remediate', {
      workflowId: `perimeter/ip/${ip}/32-${Date.now()}`,
      taskQueue: stack.config.temporal.taskQueue,
      args: [
        {
          ...buildDetection(),
          targets: [ip],
          action: 'block',
          ttlMs: 1_000,
          observeMs: 0,
          approval: 'none',
        },
      ],
    });
    return handle.result().catch((err: unknown) => err);
  }

  it('re-checks policy in the workflow: a request that skips the client fails as PolicyRejected', async () => {
    const failure = await startPastTheClient('10.9.9.9');
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const cause = (failure as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect((cause as ApplicationFailure).type).toBe('PolicyRejected');
    expect(await stack.setContents('block')).not.toContain('10.9.9.9/32');
  });

  it('a refused request leaves an address someone else put in the set where it was', async () => {
    await stack.gateway.apply('block', ['10.9.9.8/32']); // not the perimeter's: a person's, another tool's
    const failure = await startPastTheClient('10.9.9.8');
    expect((failure as WorkflowFailedError).cause).toMatchObject({ type: 'PolicyRejected' });
    expect(await stack.setContents('block')).toContain('10.9.9.8/32');
    await stack.gateway.release('block', ['10.9.9.8/32']);
  });
});
