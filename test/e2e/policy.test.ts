/**
 * Policy against the real stack: allowlisted targets are refused before anything starts, a
 * policy change releases a running incident early, an invalid file keeps the old policy, and
 * global dry-run runs incidents in full without touching the WAF.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { incidentStatus, listRemediations, startRemediation } from '../../src/client/remediation';
import { PolicyError } from '../../src/domain/policy';
import { ipWorkflowId } from '../../workflows/definitions';
import { buildDetection, openTestStack, uniqueName, waitFor, type TestStack } from '../helpers/stack';

const dir = process.env.PERIMETER_TEST_DIR ?? '/tmp';
const policyPath = join(dir, `${uniqueName('policy')}.yaml`);
let stack: TestStack;
let dryStack: TestStack;
let contextStack: TestStack;
const contextPolicy = join(dir, `${uniqueName('context')}.yaml`);
const workerLog: string[] = [];

beforeAll(async () => {
  writeFileSync(policyPath, 'allowlist:\n  - { cidr: 203.0.119.0/28, comment: "health checkers" }\n');
  stack = await openTestStack({ PERIMETER_POLICY: policyPath, PERIMETER_ALLOWLIST: '203.0.119.200' });
  await stack.startWorker({ log: (l) => workerLog.push(l), policyPollMs: 100 });
  dryStack = await openTestStack({ PERIMETER_DRY_RUN: 'true' });
  await dryStack.startWorker({ log: (l) => workerLog.push(l) });
  writeFileSync(
    contextPolicy,
    [
      'identity:',
      '  source: static',
      '  entries:',
      '    - { match: { user: u-42 }, principal: u-42, authenticated: true, reputation: 91 }',
      'actions:',
      '  - { when: { authenticated: true, minReputation: 70 }, action: challenge }',
      '  - { when: { authenticated: false }, action: block }',
      'repeatOffenders: { lookback: 1h, ttls: [1s, 1s, 20m] }',
    ].join('\n'),
  );
  contextStack = await openTestStack({ PERIMETER_POLICY: contextPolicy });
  await contextStack.startWorker({ log: (l) => workerLog.push(l) });
});
afterAll(async () => {
  await stack?.close();
  await dryStack?.close();
  await contextStack?.close();
});

describe('allowlists', () => {
  it('refuses allowlisted targets at the client, from the file and the environment, and starts nothing', async () => {
    for (const target of ['203.0.119.5', '203.0.119.200', '203.0.119.0/24']) {
      await expect(startRemediation(stack, buildDetection({ targets: [target] }))).rejects.toThrow(
        PolicyError,
      );
    }
    await expect(startRemediation(stack, buildDetection({ targets: ['203.0.119.5'] }))).rejects.toThrow(
      /allowlisted \(203\.0\.119\.0\/28: health checkers\)/,
    );
    const open = await listRemediations(stack.client);
    expect(open.filter((r) => r.targets.some((t) => t.startsWith('203.0.119.')))).toEqual([]);
  });

  it('releases a running incident early when a policy change allowlists its target', async () => {
    const [started] = await startRemediation(
      stack,
      buildDetection({ targets: ['203.0.119.50'], ttlMs: 600_000 }),
    );
    await waitFor('the block', async () => (await stack.setContents('block')).includes('203.0.119.50/32'));

    writeFileSync(
      policyPath,
      [
        'allowlist:',
        '  - { cidr: 203.0.119.0/28, comment: "health checkers" }',
        '  - { cidr: 203.0.119.48/29, comment: "new partner range" }',
      ].join('\n'),
    );
    await waitFor(
      'the early release',
      async () => !(await stack.setContents('block')).includes('203.0.119.50/32'),
    );
    const status = await waitFor('released', async () => {
      const s = await incidentStatus(stack.client, started?.workflowId ?? '');
      return s.state === 'released' ? s : undefined;
    });
    expect(status.timeline.map((t) => t.message).join('\n')).toMatch(
      /policy change: 203\.0\.119\.50\/32 is now allowlisted \(203\.0\.119\.48\/29: new partner range\)/,
    );
  });

  it('keeps the old policy when the new file is invalid', async () => {
    writeFileSync(policyPath, 'allowlist:\n  - { cidr: 203.0.119.0/28 }\n');
    await waitFor('the refused reload', async () =>
      workerLog.some((l) => /previous one stays in force/.test(l)),
    );
    // The worker's validate step still refuses the allowlisted range (no client-side check here).
    const handle = await stack.client.workflow.start('remediate', {
      taskQueue: stack.config.temporal.taskQueue,
      workflowId: ipWorkflowId('203.0.119.3/32'),
      args: [
        {
          targets: ['203.0.119.3'],
          action: 'block',
          ttlMs: 60_000,
          observeMs: 0,
          approval: 'none',
          reason: 'test',
          detector: 'jest',
          requestedBy: 'jest',
        },
      ],
    });
    await expect(handle.result()).rejects.toThrow();
    expect((await handle.query('status')) as { state: string }).toMatchObject({ state: 'rejected' });
    expect(await stack.setContents('block')).not.toContain('203.0.119.3/32');
  });
});

describe('global dry-run', () => {
  it('runs the incident in full — observe, apply, hold, release — and leaves the WAF untouched', async () => {
    const [started] = await startRemediation(
      dryStack,
      buildDetection({ targets: ['203.0.119.100'], ttlMs: 1_500, observeMs: 500 }),
    );
    const id = started?.workflowId ?? '';
    const listed = await waitFor('listed as dry-run', async () =>
      (await listRemediations(dryStack.client)).find((r) => r.workflowId === id && r.dryRun),
    );
    expect(listed.dryRun).toBe(true);
    const final = await dryStack.client.workflow.getHandle(id).result();
    expect(final).toMatchObject({ state: 'released', dryRun: true });
    const steps = (final as { timeline: Array<{ step: string; message: string }> }).timeline;
    expect(steps.map((t) => t.step)).toEqual(expect.arrayContaining(['observe', 'apply', 'hold', 'release']));
    expect(steps.find((t) => /DRY-RUN/.test(t.message))).toBeDefined();
    for (const action of ['count', 'block'] as const) expect(await dryStack.setContents(action)).toEqual([]);
    expect(workerLog).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/dry-run: would add 203\.0\.119\.100\/32 to the block set/),
      ]),
    );
  });
});

describe('context: identity and repeat offenders', () => {
  it('challenges a reputable authenticated user instead of blocking, and explains why', async () => {
    const [started] = await startRemediation(
      contextStack,
      buildDetection({ targets: ['203.0.119.160'], ttlMs: 600_000, identity: { user: 'u-42' } }),
    );
    const status = await waitFor('applied', async () => {
      const s = await incidentStatus(contextStack.client, started?.workflowId ?? '');
      return s.state === 'active' ? s : undefined;
    });
    expect(status.action).toBe('challenge');
    expect(status.policy).toEqual([
      'challenge instead of block: authenticated user u-42, reputation 91',
      '1st offence within 1h: TTL 10m as requested',
    ]);
    expect(await contextStack.setContents('challenge')).toContain('203.0.119.160/32');
    expect(await contextStack.setContents('block')).not.toContain('203.0.119.160/32');
  });

  it('gives the third offence within the look-back the escalated TTL', async () => {
    const target = '203.0.119.170';
    for (let n = 1; n <= 2; n++) {
      const [run] = await startRemediation(contextStack, buildDetection({ targets: [target], ttlMs: 1_000 }));
      const final = (await contextStack.client.workflow.getHandle(run?.workflowId ?? '').result()) as {
        state: string;
        ttlMs: number;
      };
      expect(final).toMatchObject({ state: 'released', ttlMs: 1_000 });
      // The closed run must be visible before the next one counts it.
      await waitFor(`offence ${n} visible`, async () => {
        const count = await contextStack.client.workflow.count(
          `PerimeterTarget = '${target}/32' AND ExecutionStatus != 'Running' AND PerimeterState = 'released'`,
        );
        return count.count >= n;
      });
    }
    const [third] = await startRemediation(contextStack, buildDetection({ targets: [target], ttlMs: 1_000 }));
    const status = await waitFor('applied', async () => {
      const s = await incidentStatus(contextStack.client, third?.workflowId ?? '');
      return s.state === 'active' ? s : undefined;
    });
    expect(status.ttlMs).toBe(20 * 60_000);
    expect(status.policy).toEqual([
      'block: anonymous, reputation 0',
      '3rd offence within 1h: TTL 20m instead of 1s',
    ]);
    expect(Date.parse(status.expiresAt ?? '') - Date.parse(status.appliedAt ?? '')).toBe(20 * 60_000);
  });
});
