/**
 * The virtual-patch workflow when things go wrong at the worst moment: a rule write that lands
 * but whose answer is lost, a denial after the dry run, cancellation while observing, the fix
 * reported before validation has finished. Faults are injected in front of the real activities;
 * the WAF emulator's stored rules are the source of truth.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { Activities } from '../../activities';
import { decideRemediation, incidentStatus } from '../../src/client/remediation';
import { retireVirtualPatch, startVirtualPatch, type PatchFinding } from '../../src/client/virtual-patch';
import { configuredWaf } from '../../src/waf/client';
import { patchWorkflowId } from '../../workflows/definitions';
import { openTestStack, uniqueName, waitFor, type TestStack } from '../helpers/stack';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Knobs the tests turn; the worker's activities read them at call time. */
const faults = { loseBlockAnswer: false, validateDelayMs: 0 };
const placed: string[] = [];

function faulty(a: Activities): Activities {
  return {
    ...a,
    async validateVirtualPatch(request) {
      if (faults.validateDelayMs) await sleep(faults.validateDelayMs);
      return a.validateVirtualPatch(request);
    },
    async placePatchRule(input) {
      placed.push(`${input.spec.findingId}:${input.action}`);
      const result = await a.placePatchRule(input);
      if (faults.loseBlockAnswer && input.action === 'block') {
        // The write landed; its answer did not, and the error says not to try again.
        throw ApplicationFailure.create({
          type: 'WAFInvalidParameterException',
          message: 'answer lost',
          nonRetryable: true,
        });
      }
      return result;
    },
  };
}

let stack: TestStack;
let rules: ReturnType<typeof configuredWaf>['patches'];
beforeAll(async () => {
  stack = await openTestStack();
  rules = configuredWaf(stack.config.waf).patches;
  await stack.startWorker({ wrapActivities: faulty, log: () => undefined });
});
afterAll(() => stack?.close());
afterEach(() => Object.assign(faults, { loseBlockAnswer: false, validateDelayMs: 0 }));

function finding(overrides: Partial<PatchFinding> = {}): PatchFinding {
  return {
    findingId: uniqueName('F-'),
    path: '/api/search',
    field: 'query:q',
    kind: 'sqli',
    ttlMs: 60_000,
    observeMs: 0,
    reason: 'fault test',
    detector: 'jest',
    requestedBy: 'jest',
    ...overrides,
  };
}

const stateOf = async (id: string) => (await incidentStatus(stack.client, id)).state;

describe('virtual patch faults', () => {
  it('removes a rule whose write landed but whose answer was lost', async () => {
    faults.loseBlockAnswer = true;
    const f = finding();
    const started = await startVirtualPatch(stack, f);
    const failure = await stack.client.workflow
      .getHandle(started.workflowId)
      .result()
      .catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(placed).toContain(`${f.findingId}:block`);
    expect(await rules.check(f.findingId)).toBeUndefined();
    expect(await stateOf(started.workflowId)).toBe('released');
  });

  it('takes the Count rule out again when the patch is denied after the dry run', async () => {
    const f = finding({ observeMs: 800, approval: 'slack' });
    const started = await startVirtualPatch(stack, f);
    await waitFor(
      'awaiting approval',
      async () => (await stateOf(started.workflowId)) === 'awaiting-approval',
    );
    expect((await rules.check(f.findingId))?.action).toBe('count');
    await decideRemediation(stack.client, started.workflowId, { decision: 'deny', by: 'U-oncall' });
    await stack.client.workflow.getHandle(started.workflowId).result();
    expect(await rules.check(f.findingId)).toBeUndefined();
    expect(await stateOf(started.workflowId)).toBe('stood-down');
    expect(placed.filter((p) => p.startsWith(`${f.findingId}:`))).toEqual([`${f.findingId}:count`]);
  });

  it('takes the Count rule out when cancelled while observing', async () => {
    const f = finding({ observeMs: 30_000 });
    const started = await startVirtualPatch(stack, f);
    await waitFor('counting', async () => (await rules.check(f.findingId))?.action === 'count');
    const handle = stack.client.workflow.getHandle(started.workflowId);
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    expect(await rules.check(f.findingId)).toBeUndefined();
  });

  it('places nothing when the fix is reported before validation has finished', async () => {
    faults.validateDelayMs = 1_500;
    const f = finding();
    const started = await startVirtualPatch(stack, f);
    await retireVirtualPatch(stack.client, f.findingId, { commit: 'early1', by: 'ci' });
    const final = await stack.client.workflow.getHandle(patchWorkflowId(f.findingId)).result();
    expect(final.state).toBe('stood-down');
    expect(final.patch?.fix).toMatchObject({ commit: 'early1' });
    expect(placed.filter((p) => p.startsWith(`${f.findingId}:`))).toEqual([]);
    expect(await rules.check(f.findingId)).toBeUndefined();
    expect(started.joined).toBe(false);
  });
});
