/**
 * The virtual-patch workflow: a narrow WAF rule in front of one vulnerable endpoint, from the
 * finding until the code fix ships. It reads as the incident's steps with a rule for a target:
 * validate, observe (the rule in Count), ask, apply (the rule blocks), hold (until `fixDeployed`
 * or the TTL), remove the rule, record.
 */
import {
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  proxyActivities,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { IncidentStatus, PatchRuleAction, VirtualPatchInput } from './definitions';
import { formatDuration } from './durations';
import { applyOptions, releaseOptions, validateOptions } from './activity-options';
import { PatchIncident } from './patch-incident';
import { ask, failIfRefused, finish, hold, record, recordsInBackground, tellApprover } from './steps';

const { validateVirtualPatch } = proxyActivities<Activities>(validateOptions);
const { placePatchRule } = proxyActivities<Activities>(applyOptions);
const { removePatchRule } = proxyActivities<Activities>(releaseOptions);

export async function virtualPatch(input: VirtualPatchInput): Promise<IncidentStatus> {
  const patch = new PatchIncident(input);
  patch.listen();
  let next: 'release' | 'continue-as-new' = 'release';
  try {
    if (!input.resumed) {
      patch.note('detect', `${input.detector}: ${input.reason} (requested by ${input.requestedBy})`);
      patch.publish();
      await validate(patch); // 1
      if ((await observe(patch)) === 'stand-down') return await finish(patch); // 2
      if ((await ask(patch)) === 'denied') {
        await removeRule(patch); // 3
        return await finish(patch);
      }
      await apply(patch); // 4
    }
    next = await hold(patch); // 5: until the TTL, a release, or the fix deployed
  } catch (err) {
    patch.endedBy = isCancellation(err) ? 'patch cancelled' : `patch failed: ${(err as Error).message}`;
    throw err;
  } finally {
    if (next === 'release') {
      await CancellationScope.nonCancellable(async () => {
        await release(patch); // 6
        await patch.settleNotices();
      });
    }
  }
  if (next === 'continue-as-new') {
    return continueAsNew<typeof virtualPatch>({ ...input, resumed: patch.carryOverPatch() });
  }
  return finish(patch);
}

async function validate(patch: PatchIncident): Promise<void> {
  const { request } = patch.patchInput;
  try {
    const checked = await validateVirtualPatch.executeWithOptions(
      { ...validateOptions, summary: `policy check: virtual patch ${request.findingId}` },
      [request],
    );
    patch.spec = checked.spec;
    patch.rule = checked.rule;
    patch.summary = checked.summary;
    patch.limits = checked.limits;
    if (checked.dryRun) patch.markDryRun();
    patch.ledger = checked.ledger ?? false;
    for (const note of checked.notes ?? []) patch.note('validate', note);
  } catch (err) {
    failIfRefused(patch, err);
  }
  patch.policyNotes = [`virtual patch: ${patch.summary} (rule ${patch.rule})`];
  patch.note('validate', `rule ${patch.rule}: ${patch.summary}, for up to ${formatDuration(patch.ttlMs)}`);
}

/** Dry run: the rule sits in the web ACL in Count mode, labelling matches; detectors report them as sightings. */
async function observe(patch: PatchIncident): Promise<'proceed' | 'stand-down'> {
  const { observeMs } = patch.patchInput.request;
  if (patch.releaseRequest) return 'stand-down';
  if (observeMs <= 0) {
    patch.note('observe', 'no observation window requested');
    return 'proceed';
  }
  await placeRule(patch, 'count');
  patch.enter(
    'observing',
    'observe',
    `rule in Count mode (labels, does not block) for ${formatDuration(observeMs)}`,
  );
  const stoodDown = await condition(() => patch.releaseRequest !== undefined, observeMs, {
    summary: `observation window ${formatDuration(observeMs)}`,
  });
  const { requests, sightings } = patch.evidence;
  patch.note('observe', `window closed: ${requests} matching requests in ${sightings} sightings`);
  if (stoodDown) {
    await removeRule(patch);
    return 'stand-down';
  }
  return 'proceed';
}

async function apply(patch: PatchIncident): Promise<void> {
  const { action } = patch;
  patch.enter('applying', 'apply', `switching rule ${patch.rule} to ${action}`);
  await placeRule(patch, action);
  patch.appliedAt = Date.now();
  patch.expiresAt = patch.appliedAt + patch.ttlMs;
  patch.enter(
    'active',
    'apply',
    `rule ${patch.rule} ${action}s until ${new Date(patch.expiresAt).toISOString()} or the fix ships`,
  );
  if (patch.decision) {
    const until = new Date(patch.expiresAt).toISOString();
    tellApprover(patch, { kind: 'decided', decision: patch.decision, state: 'active', action, until });
  }
  const entry = patch.ledgerEntry();
  if (entry) {
    const background = recordsInBackground(patch);
    const recorded = record(patch, 'applied', entry); // 7
    if (!background) await recorded;
  }
}

async function release(patch: PatchIncident): Promise<void> {
  if (!patch.placed) return;
  patch.enter('releasing', 'release', `removing rule ${patch.rule}`);
  await removeRule(patch);
  patch.releasedAt = Date.now();
  const request = patch.releaseRequest;
  const why = patch.endedBy ?? (request ? `${request.reason} (${request.by})` : 'TTL ended');
  // Only a rule that was applied (blocking) is in the ledger; one only ever counting is not.
  const entry = patch.ledgerEntry();
  if (entry) await record(patch, 'released', entry); // 7
  patch.enter('released', 'release', `rule removed: ${why}`);
  tellApprover(patch, { kind: 'released', at: new Date().toISOString(), why });
}

function dryRunFlag(patch: PatchIncident): { dryRun?: true } {
  return patch.dryRun ? { dryRun: true } : {};
}

async function placeRule(patch: PatchIncident, action: PatchRuleAction): Promise<void> {
  const spec = patch.spec;
  if (!spec) throw new Error('the patch was not validated');
  // Recorded before the write: a write that lands but whose answer is lost must still be removed.
  patch.placed = action;
  // Not cancellable: cancelling mid-write would let it land after the release step ran.
  const result = await CancellationScope.nonCancellable(() =>
    placePatchRule.executeWithOptions({ ...applyOptions, summary: `rule ${patch.rule} → ${action}` }, [
      { spec, action, ...dryRunFlag(patch) },
    ]),
  );
  if (result.priority !== undefined) patch.priority = result.priority;
  if (result.capacity) {
    const { wcu, limit, source } = result.capacity;
    patch.note(
      action === 'count' ? 'observe' : 'apply',
      `web ACL capacity ${wcu}/${limit} WCU with the patch (${source}); rule priority ${result.priority}`,
    );
  }
}

async function removeRule(patch: PatchIncident): Promise<void> {
  if (!patch.placed) return;
  await removePatchRule.executeWithOptions({ ...releaseOptions, summary: `remove rule ${patch.rule}` }, [
    { findingId: patch.findingId, ...dryRunFlag(patch) },
  ]);
  patch.placed = undefined;
}
