/**
 * The incident workflow: one per target (or campaign), read top to bottom as the seven steps
 * in ARCHITECTURE.md — validate, observe, ask, apply, hold, release, record.
 */
import {
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  workflowInfo,
  type ActivityOptions,
  type LocalActivityOptions,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { formatDuration } from './durations';
import {
  addLocalOptions,
  applyOptions,
  quickReleaseOptions,
  readLocalOptions,
  releaseOptions,
  validateLocalOptions,
  validateOptions,
} from './activity-options';
import type { SetAction } from '../src/domain/policy';
import type { IncidentStatus, RemediationInput } from './definitions';
import type { ContextDecision, ValidatedRemediation } from '../activities';
import { Incident } from './incident';
import { targetList } from './target-list';
import {
  ask,
  failIfRefused,
  finish,
  hold,
  isRefusal,
  record,
  recordsInBackground,
  tellApprover,
} from './steps';

/**
 * How each step runs. Lean runs (see `Incident.lean`) run the steps that only read — the policy
 * checks and the look at the set — as local activities: a marker in the history each, no task
 * round trip; prepared runs (`Incident.prepared`) make the policy reads one local activity and
 * skip the look, learning from the add itself what was there before. Adds stay activities: in
 * lean runs an add is scheduled only once the look before it is in the history (so a task
 * re-run after a crash cannot mistake the incident's own write for someone else's). A release
 * at the end of the TTL is tried first as a local activity in the task the timer wakes; one
 * that fails, and a release by request, failure or cancellation, commits the `releasing` state
 * and runs as an activity, retried without end and showing its attempts.
 */
const STEPS = {
  validateRemediation: { options: validateOptions, local: validateLocalOptions },
  assessContext: { options: validateOptions, local: validateLocalOptions },
  prepareRemediation: { options: validateOptions, local: validateLocalOptions },
  checkIpSet: { options: applyOptions, local: readLocalOptions },
  addToIpSet: { options: applyOptions, local: undefined },
  removeFromIpSet: { options: releaseOptions, local: undefined },
} satisfies Record<string, { options: ActivityOptions; local: LocalActivityOptions | undefined }>;
type Step = keyof typeof STEPS;

const activities = proxyActivities<Activities>(validateOptions);
const localActivities = proxyLocalActivities<Activities>(validateLocalOptions);

/** Runs one step with its options and a summary for the Temporal UI. */
function run<K extends Step>(
  incident: Incident,
  step: K,
  summary: string,
  input: Parameters<Activities[K]>[0],
): Promise<Awaited<ReturnType<Activities[K]>>> {
  const { options, local } = STEPS[step];
  const args = [input] as Parameters<Activities[K]>;
  if (incident.lean && local) {
    const fn = localActivities[step] as unknown as StepFunction<K, LocalActivityOptions>;
    return fn.executeWithOptions({ ...local, summary }, args);
  }
  const fn = activities[step] as unknown as StepFunction<K, ActivityOptions>;
  return fn.executeWithOptions({ ...options, summary }, args);
}

interface StepFunction<K extends Step, O> {
  executeWithOptions(
    options: O,
    args: Parameters<Activities[K]>,
  ): Promise<Awaited<ReturnType<Activities[K]>>>;
}

export async function remediate(input: RemediationInput): Promise<IncidentStatus> {
  const incident = new Incident(input);
  // Newest first: a run records only the first of these that is new to it.
  if (patched('add-with-prepare'))
    incident.keepHistoryShort({ prepared: true, localFirstAdd: true, addWithPrepare: true });
  else if (patched('local-first-add')) incident.keepHistoryShort({ prepared: true, localFirstAdd: true });
  else if (patched('prepared-steps')) incident.keepHistoryShort({ prepared: true });
  else if (patched('local-steps')) incident.keepHistoryShort();
  incident.listen();
  incident.markFirstTask();
  /** What this incident put in which set; the release step removes exactly these, nothing else. */
  const held: Held = new Map(Object.entries(input.resumed?.held ?? {}) as Array<[SetAction, string[]]>);
  incident.held = held; // shown by the status query
  let next: 'release' | 'continue-as-new' = 'release';
  try {
    if (!input.resumed) {
      incident.note('detect', `${input.detector}: ${input.reason} (requested by ${input.requestedBy})`);
      incident.publish();
      if (incident.prepared)
        await prepare(incident, held); // 1 and 1b in one step (and 4's write, when nothing comes between)
      else {
        await validate(incident); // 1
        // 1b: identity, history, approval rules (lean runs are newer than that step's patch)
        if (incident.lean || patched('policy-context')) await weighContext(incident);
      }
      if ((await observe(incident, held)) === 'stand-down') return await finish(incident); // 2
      if ((await ask(incident)) === 'denied') {
        await removeFrom(incident, held, 'count'); // 3
        return await finish(incident);
      }
      await apply(incident, held); // 4
    }
    next = await hold(incident); // 5
  } catch (err) {
    incident.endedBy = isCancellation(err)
      ? 'incident cancelled'
      : `incident failed: ${(err as Error).message}`;
    throw err;
  } finally {
    if (next === 'release') {
      await CancellationScope.nonCancellable(async () => {
        await release(incident, held); // 6
        await incident.settleNotices(); // the approval message learns the outcome even on failure
      });
    }
  }
  if (next === 'continue-as-new') {
    // A long hold with steady evidence outgrows one history; the next run keeps holding.
    return continueAsNew<typeof remediate>({
      ...input,
      resumed: incident.carryOver(Object.fromEntries(held)),
    });
  }
  return finish(incident);
}

async function validate(incident: Incident): Promise<void> {
  const { input } = incident;
  try {
    const checked = await run(
      incident,
      'validateRemediation',
      `policy check: ${input.action} ${targetList(input.targets)}`,
      { targets: input.targets, action: input.action, ttlMs: input.ttlMs, observeMs: input.observeMs },
    );
    takeValidated(incident, checked);
  } catch (err) {
    failIfRefused(incident, err);
  }
}

function takeValidated(incident: Incident, checked: ValidatedRemediation): void {
  const { input } = incident;
  incident.targets = checked.targets;
  incident.limits = checked.limits;
  if (checked.dryRun) incident.markDryRun();
  incident.ledger = checked.ledger ?? false;
  for (const note of checked.notes ?? []) incident.note('validate', `policy: ${note}`);
  incident.note(
    'validate',
    `policy allows ${input.action} of ${targetList(incident.targets, 20)} for ${formatDuration(input.ttlMs)}`,
  );
}

/** The policy's view of who the target is and how often it offended: action, TTL, approval. */
async function weighContext(incident: Incident): Promise<void> {
  const { input } = incident;
  const decided = await run(incident, 'assessContext', 'policy: identity, earlier offences, approval rules', {
    targets: incident.targets,
    action: incident.action,
    ttlMs: incident.ttlMs,
    approval: incident.approval,
    ...(input.identity ? { identity: input.identity } : {}),
  });
  takeContext(incident, decided);
}

function takeContext(incident: Incident, decided: ContextDecision): void {
  incident.action = decided.action;
  incident.ttlMs = decided.ttlMs;
  if (decided.approval === 'slack' && incident.approval === 'none' && decided.approvalPolicy) {
    incident.approval = 'slack';
    incident.approvalPolicy = decided.approvalPolicy;
  }
  incident.policyNotes = decided.explanations;
  for (const line of decided.explanations) incident.note('validate', `policy: ${line}`);
  incident.publish();
}

/**
 * Steps 1 and 1b as one local activity. In the live first task of a run with no observation
 * window and no approval asked for, the same step also makes the first write, if the policy lets
 * the request stand as it was made: one step and one marker where there were two.
 */
async function prepare(incident: Incident, held: Held): Promise<void> {
  const { input } = incident;
  const addNow =
    incident.addWithPrepare &&
    incident.addsLocally() &&
    input.observeMs <= 0 &&
    incident.approval === 'none' &&
    !incident.releaseRequest;
  const what = `${input.action} ${targetList(input.targets)}`;
  // Recorded before the write, as for any add: a write that lands but whose answer is lost
  // must still be released.
  if (addNow) held.set(input.action, input.targets);
  try {
    const request = {
      targets: input.targets,
      action: input.action,
      ttlMs: input.ttlMs,
      observeMs: input.observeMs,
      approval: incident.approval,
      ...(input.identity ? { identity: input.identity } : {}),
    };
    const prepared = addNow
      ? // Not cancellable, like any write (see `write`): a cancellation takes effect at the next step.
        await CancellationScope.nonCancellable(() =>
          localActivities.prepareRemediation.executeWithOptions(
            { ...addLocalOptions, summary: `policy check, context and add: ${what}` },
            [{ ...request, thenAdd: localAddInput(incident) }],
          ),
        )
      : await run(incident, 'prepareRemediation', `policy check and context: ${what}`, request);
    if (addNow && !prepared.added) held.delete(input.action); // the policy changed the request: nothing written
    incident.firstAdd = prepared.added;
    takeValidated(incident, prepared.validated);
    takeContext(incident, prepared.context);
  } catch (err) {
    // A refusal comes before any write.
    if (addNow && isRefusal(err)) held.delete(input.action);
    failIfRefused(incident, err);
  }
}

/** Dry run: the targets sit in the count set while detectors keep reporting sightings. */
async function observe(incident: Incident, held: Held): Promise<'proceed' | 'stand-down'> {
  const { observeMs } = incident.input;
  if (incident.releaseRequest) return 'stand-down'; // asked to stand down while validating
  if (observeMs <= 0) {
    incident.note('observe', 'no observation window requested');
    return 'proceed';
  }
  await addTo(incident, held, 'count');
  incident.waited = true;
  incident.enter('observing', 'observe', `counting (not blocking) for ${formatDuration(observeMs)}`);
  const stoodDown = await condition(() => incident.releaseRequest !== undefined, observeMs, {
    summary: `observation window ${formatDuration(observeMs)}`,
  });
  const { requests, sightings } = incident.evidence;
  incident.note('observe', `window closed: ${requests} attack requests in ${sightings} sightings`);
  if (stoodDown) {
    await removeFrom(incident, held, 'count');
    return 'stand-down';
  }
  return 'proceed';
}

async function apply(incident: Incident, held: Held): Promise<void> {
  const { action } = incident;
  // An add written within this task shows nobody `applying` (the search attributes are written
  // when the task completes): one upsert less.
  incident.enter('applying', 'apply', `applying ${action}`, { publish: !incident.addsLocally() });
  await addTo(incident, held, action);
  incident.appliedAt = Date.now();
  incident.expiresAt = incident.appliedAt + incident.ttlMs;
  // Leave the count set only once the remediation is in place, so nothing slips through unseen.
  await removeFrom(incident, held, 'count');
  incident.enter('active', 'apply', `${action} in place until ${new Date(incident.expiresAt).toISOString()}`);
  const added = held.get(action) ?? [];
  if (added.length > 0) {
    const background = recordsInBackground(incident);
    const recorded = record(incident, 'applied', { kind: 'ip', action, cidrs: added }); // 7
    if (!background) await recorded;
  }
  if (incident.decision) {
    const until = new Date(incident.expiresAt).toISOString();
    tellApprover(incident, { kind: 'decided', decision: incident.decision, state: 'active', action, until });
  }
}

async function release(incident: Incident, held: Held): Promise<void> {
  if (held.size === 0) return;
  const removed = [...held.entries()];
  if (!(await releaseQuickly(incident, held))) {
    incident.enter('releasing', 'release', `releasing ${[...held.keys()].join(', ')}`);
    for (const [action] of [...held.entries()]) await removeFrom(incident, held, action);
  }
  incident.releasedAt = Date.now();
  const request = incident.releaseRequest;
  const why = incident.endedBy ?? (request ? `${request.reason} (${request.by})` : 'TTL ended');
  for (const [action, cidrs] of removed) {
    // The count set is the observation window's, not a remediation: the ledger does not hold it.
    if (action !== 'count' && cidrs.length > 0)
      await record(incident, 'released', { kind: 'ip', action, cidrs }); // 7
  }
  incident.enter('released', 'release', `released: ${why}`);
  tellApprover(incident, { kind: 'released', at: new Date().toISOString(), why });
}

/**
 * A prepared run whose TTL ended releases in the workflow task the timer wakes, as local
 * activities: the incident reads as releasing to queries and Updates meanwhile, and clients take
 * an incident past its expiry as ending. False when that was not tried or did not finish: what
 * is still held then goes the activity way.
 */
async function releaseQuickly(incident: Incident, held: Held): Promise<boolean> {
  // A release by request was shown as releasing when it was asked for: that must reach the
  // visibility store before the release runs, as it does when the activity is scheduled.
  if (!incident.prepared || incident.endedBy !== undefined || incident.releaseRequest) return false;
  incident.enter('releasing', 'release', `releasing ${[...held.keys()].join(', ')}`, { publish: false });
  for (const [action, cidrs] of [...held.entries()]) {
    try {
      if (cidrs.length > 0) {
        await localActivities.removeFromIpSet.executeWithOptions(
          { ...quickReleaseOptions, summary: `remove ${targetList(cidrs)} from ${action} set` },
          [{ action, cidrs, ...dryRunFlag(incident) }],
        );
      }
      held.delete(action);
    } catch (err) {
      incident.note(
        'release',
        `release from the ${action} set not done yet (${(err as Error).message}): retrying`,
      );
      return false;
    }
  }
  return true;
}

/** Present only when set, so incidents outside dry-run schedule exactly what they always did. */
function dryRunFlag(incident: Incident): { dryRun?: true } {
  return incident.dryRun ? { dryRun: true } : {};
}

/** What this incident put in which set: exactly what it may take out again. */
type Held = Map<SetAction, string[]>;

async function addTo(incident: Incident, held: Held, action: SetAction): Promise<void> {
  if (incident.prepared) return addReportingOthers(incident, held, action);
  const cidrs = incident.targets;
  // What is already there belongs to someone else (a person, another tool): never ours to remove.
  const { present } = await run(incident, 'checkIpSet', `check ${action} set for ${targetList(cidrs)}`, {
    action,
    cidrs,
    ...dryRunFlag(incident),
  });
  const owned = cidrs.filter((c) => !present.includes(c));
  leftAsFound(incident, action, present);
  // Recorded before the write: a write that lands but whose answer is lost must still be released.
  held.set(action, owned);
  if (owned.length === 0) return;
  await write(incident, action, owned);
}

/**
 * The add of a prepared run: no look first. The write is made against the set as it is (its
 * lock token proves that), so its answer says exactly what was there before — someone else's,
 * left as found. Until that answer, the incident holds every target it asked for: a write that
 * lands but whose answer is lost is released all the same.
 */
async function addReportingOthers(incident: Incident, held: Held, action: SetAction): Promise<void> {
  const cidrs = incident.targets;
  held.set(action, cidrs);
  const { others = [] } = incident.takeFirstAdd(action) ?? (await write(incident, action, cidrs));
  leftAsFound(incident, action, others);
  held.set(
    action,
    cidrs.filter((c) => !others.includes(c)),
  );
}

function leftAsFound(incident: Incident, action: SetAction, present: string[]): void {
  if (present.length === 0) return;
  incident.note(
    'apply',
    `already in the ${action} set, not added by this incident (left as found): ${targetList(present, 20)}`,
  );
}

/**
 * What a local add in the run's first task sends besides its targets: when the incident started
 * (the window of exposure is measured from there), and whether an earlier try may have written.
 */
function localAddInput(incident: Incident): { startedAt: number; mayHaveWritten?: true } {
  return {
    startedAt: workflowInfo().runStartTime.getTime(),
    ...(incident.localAddMayHaveWritten() ? { mayHaveWritten: true as const } : {}),
  };
}

function write(incident: Incident, action: SetAction, cidrs: string[]) {
  const input = {
    action,
    cidrs,
    ...dryRunFlag(incident),
    // The window of exposure is measured from the incident's start (adds happen in its first run).
    startedAt: workflowInfo().runStartTime.getTime(),
  };
  const summary = `add ${targetList(cidrs)} to ${action} set`;
  // Not cancellable: cancelling mid-write would let the write land after the release step ran.
  // The incident's cancellation takes effect at the next step, and then releases this.
  return CancellationScope.nonCancellable(() => {
    if (incident.addsLocally()) {
      // Early in the incident, before it has waited for anything: written at once, in the task,
      // no round trip. Should the task that ran it fail or time out after the write landed, the
      // next attempt is not a first attempt and claims what it finds (below, or as a replay).
      return localActivities.addToIpSet.executeWithOptions({ ...addLocalOptions, summary }, [
        { ...input, ...localAddInput(incident) },
      ]);
    }
    // A run whose first task did not start cleanly may follow an attempt whose local add landed.
    const claim =
      incident.localFirstAdd && !incident.startedCleanly() ? { mayHaveWritten: true as const } : {};
    return run(incident, 'addToIpSet', summary, { ...input, ...claim });
  });
}

async function removeFrom(incident: Incident, held: Held, action: SetAction): Promise<void> {
  const cidrs = held.get(action);
  if (cidrs === undefined) return;
  if (cidrs.length > 0) {
    await run(incident, 'removeFromIpSet', `remove ${targetList(cidrs)} from ${action} set`, {
      action,
      cidrs,
      ...dryRunFlag(incident),
    });
  }
  held.delete(action);
}
