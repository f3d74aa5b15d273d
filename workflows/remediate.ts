/**
 * The incident workflow: one per target (or campaign), read top to bottom as the seven steps
 * in ARCHITECTURE.md — validate, observe, ask, apply, hold, release, record.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  proxyActivities,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities, MessageUpdate } from '../activities';
import { formatDuration } from './durations';
import { ErrorTypes, NON_RETRYABLE_WAF_ERRORS } from './failure-types';
import type { SetAction } from '../src/domain/policy';
import type { ApprovalPolicy, IncidentStatus, RemediationInput } from './definitions';
import { Incident } from './incident';
import { targetList } from './target-list';

const validateOptions: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: {
    initialInterval: '200ms',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [ErrorTypes.PolicyRejected],
  },
};
/** Writes that put a remediation in place: retried a while, then the incident fails (and cleans up). */
const applyOptions: ActivityOptions = {
  startToCloseTimeout: '30s',
  // Time-boxed rather than counted: a burst can queue behind AWS's write rate for minutes.
  scheduleToCloseTimeout: '10m',
  retry: {
    initialInterval: '200ms',
    backoffCoefficient: 2,
    maximumInterval: '10s',
    nonRetryableErrorTypes: NON_RETRYABLE_WAF_ERRORS,
  },
};
/** Writes that take a remediation away: retried until they succeed — nothing is left behind. */
const releaseOptions: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1m' },
};

const { validateRemediation, assessContext } = proxyActivities<Activities>(validateOptions);
const { checkIpSet, addToIpSet } = proxyActivities<Activities>(applyOptions);
const { removeFromIpSet } = proxyActivities<Activities>(releaseOptions);
/** Approval messages: retried while they matter, never in the way of the incident itself. */
const noticeOptions: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '10m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
};
const { postApprovalRequest, updateApprovalMessage } = proxyActivities<Activities>(noticeOptions);

export async function remediate(input: RemediationInput): Promise<IncidentStatus> {
  const incident = new Incident(input);
  incident.listen();
  /** What this incident put in which set; the release step removes exactly these, nothing else. */
  const held: Held = new Map(Object.entries(input.resumed?.held ?? {}) as Array<[SetAction, string[]]>);
  let next: 'release' | 'continue-as-new' = 'release';
  try {
    if (!input.resumed) {
      incident.note('detect', `${input.detector}: ${input.reason} (requested by ${input.requestedBy})`);
      incident.publish();
      await validate(incident); // 1
      if (patched('policy-context')) await weighContext(incident); // 1b: identity, history, approval rules
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
  record(incident); // 7
  return finish(incident);
}

async function validate(incident: Incident): Promise<void> {
  const { input } = incident;
  try {
    const checked = await validateRemediation.executeWithOptions(
      { ...validateOptions, summary: `policy check: ${input.action} ${targetList(input.targets)}` },
      [{ targets: input.targets, action: input.action, ttlMs: input.ttlMs, observeMs: input.observeMs }],
    );
    incident.targets = checked.targets;
    incident.limits = checked.limits;
    if (checked.dryRun) incident.markDryRun();
    for (const note of checked.notes ?? []) incident.note('validate', `policy: ${note}`);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof ApplicationFailure && cause.type === ErrorTypes.PolicyRejected) {
      incident.enter('rejected', 'validate', `refused: ${cause.message}`);
      throw ApplicationFailure.create({
        type: ErrorTypes.PolicyRejected,
        message: cause.message,
        nonRetryable: true,
      });
    }
    throw err;
  }
  incident.note(
    'validate',
    `policy allows ${input.action} of ${targetList(incident.targets, 20)} for ${formatDuration(input.ttlMs)}`,
  );
}

/** The policy's view of who the target is and how often it offended: action, TTL, approval. */
async function weighContext(incident: Incident): Promise<void> {
  const { input } = incident;
  const decided = await assessContext.executeWithOptions(
    { ...validateOptions, summary: 'policy: identity, earlier offences, approval rules' },
    [
      {
        targets: incident.targets,
        action: incident.action,
        ttlMs: incident.ttlMs,
        approval: incident.approval,
        ...(input.identity ? { identity: input.identity } : {}),
      },
    ],
  );
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

/** Dry run: the targets sit in the count set while detectors keep reporting sightings. */
async function observe(incident: Incident, held: Held): Promise<'proceed' | 'stand-down'> {
  const { observeMs } = incident.input;
  if (incident.releaseRequest) return 'stand-down'; // asked to stand down while validating
  if (observeMs <= 0) {
    incident.note('observe', 'no observation window requested');
    return 'proceed';
  }
  await addTo(incident, held, 'count');
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

/**
 * A person decides — Approve, Approve as challenge, or Deny — through the `decide` Update
 * (Slack buttons, `perimeter approve`); nobody answering in time applies the policy's default.
 */
async function ask(incident: Incident): Promise<'approved' | 'denied'> {
  const { approval, approvalPolicy } = incident;
  if (approval === 'none' || !approvalPolicy) {
    incident.note('approve', 'no approval required (approval: none)');
    return 'approved';
  }
  if (incident.releaseRequest) return 'denied';
  const wait = formatDuration(approvalPolicy.timeoutMs);
  incident.enter(
    'awaiting-approval',
    'approve',
    `waiting up to ${wait} for approval (then: ${approvalPolicy.onTimeout})`,
  );
  // Posted alongside the wait, not before it: Slack being down must not hold up the timeout path.
  incident.posted = requestApproval(incident, approvalPolicy);
  await condition(
    () => incident.decision !== undefined || incident.releaseRequest !== undefined,
    approvalPolicy.timeoutMs,
    { summary: `approval: up to ${wait}, then ${approvalPolicy.onTimeout}` },
  );
  incident.cancelPosting();
  if (incident.releaseRequest) return 'denied';
  if (!incident.decision) {
    const decision = approvalPolicy.onTimeout === 'approve' ? 'approve' : 'deny';
    incident.decision = {
      decision,
      by: 'timeout',
      at: new Date().toISOString(),
      byDefault: true,
      waitedMs: approvalPolicy.timeoutMs,
    };
    incident.note('approve', `expired: no answer in ${wait} — default ${approvalPolicy.onTimeout}`);
  }
  if (incident.decision.decision === 'deny') return 'denied';
  if (incident.decision.decision === 'approve-challenge') incident.action = 'challenge';
  return 'approved';
}

async function apply(incident: Incident, held: Held): Promise<void> {
  const { action } = incident;
  incident.enter('applying', 'apply', `applying ${action}`);
  await addTo(incident, held, action);
  incident.appliedAt = Date.now();
  incident.expiresAt = incident.appliedAt + incident.ttlMs;
  // Leave the count set only once the remediation is in place, so nothing slips through unseen.
  await removeFrom(incident, held, 'count');
  incident.enter('active', 'apply', `${action} in place until ${new Date(incident.expiresAt).toISOString()}`);
  if (incident.decision) {
    const until = new Date(incident.expiresAt).toISOString();
    tellApprover(incident, { kind: 'decided', decision: incident.decision, state: 'active', action, until });
  }
}

/**
 * Durable TTL: survives worker restarts; `extend` moves the expiry, `release` ends it early.
 * When the history grows long (steady sightings), hands over to a fresh run instead.
 */
async function hold(incident: Incident): Promise<'release' | 'continue-as-new'> {
  while (!incident.releaseRequest && incident.expiresAt !== undefined) {
    const expiry = incident.expiresAt;
    const remaining = expiry - Date.now();
    if (remaining <= 0) break;
    await condition(
      () =>
        incident.releaseRequest !== undefined ||
        incident.expiresAt !== expiry ||
        workflowInfo().continueAsNewSuggested,
      remaining,
      { summary: `TTL: ${incident.action} until ${new Date(expiry).toISOString()}` },
    );
    if (workflowInfo().continueAsNewSuggested && !incident.releaseRequest) {
      await condition(() => allHandlersFinished() || incident.releaseRequest !== undefined);
      if (!incident.releaseRequest) {
        incident.note('hold', `history is long: continuing in a new run (run ${incident.run + 1})`);
        return 'continue-as-new';
      }
    }
  }
  incident.note('hold', incident.releaseRequest ? 'hold ended early by request' : 'TTL ended');
  return 'release';
}

async function release(incident: Incident, held: Held): Promise<void> {
  if (held.size === 0) return;
  incident.enter('releasing', 'release', `releasing ${[...held.keys()].join(', ')}`);
  for (const action of [...held.keys()]) await removeFrom(incident, held, action);
  incident.releasedAt = Date.now();
  const request = incident.releaseRequest;
  const why = incident.endedBy ?? (request ? `${request.reason} (${request.by})` : 'TTL ended');
  incident.enter('released', 'release', `released: ${why}`);
  tellApprover(incident, { kind: 'released', at: new Date().toISOString(), why });
}

/** Ledger seam: the IaC ledger records applied and released changes here. */
function record(_incident: Incident): void {
  // Intentionally empty until the git ledger exists; the timeline is the record meanwhile.
}

async function finish(incident: Incident): Promise<IncidentStatus> {
  if (incident.state !== 'released') {
    const { decision, releaseRequest } = incident;
    const why = releaseRequest
      ? `stood down by ${releaseRequest.by}`
      : decision?.decision === 'deny'
        ? decision.byDefault
          ? 'denied by default: no answer in time'
          : `denied by ${decision.by}`
        : 'stood down';
    incident.enter('stood-down', 'approve', `${why}; nothing was applied`);
    tellApprover(
      incident,
      decision
        ? { kind: 'decided', decision, state: 'stood-down', action: incident.action }
        : { kind: 'released', at: new Date().toISOString(), why: `${why}; nothing was applied` },
    );
  }
  await incident.settleNotices();
  await condition(allHandlersFinished);
  return incident.status();
}

/** Posts the approval request (Slack, or the worker log); remembers the message to edit later. */
function requestApproval(incident: Incident, approvalPolicy: ApprovalPolicy): Promise<void> {
  // Its own scope: once someone has decided, a post still retrying is pointless and is cancelled.
  const scope = new CancellationScope();
  incident.cancelPosting = () => scope.cancel();
  return scope.run(() =>
    postApprovalRequest
      .executeWithOptions(
        {
          ...noticeOptions,
          scheduleToCloseTimeout: approvalPolicy.timeoutMs,
          summary: 'post approval request',
        },
        [
          {
            workflowId: workflowInfo().workflowId,
            targets: incident.targets,
            action: incident.action,
            ttlMs: incident.ttlMs,
            detector: incident.input.detector,
            reason: incident.input.reason,
            evidence: incident.evidence,
            timeoutMs: approvalPolicy.timeoutMs,
            onTimeout: approvalPolicy.onTimeout,
            ...(incident.policyNotes.length > 0 ? { policy: incident.policyNotes } : {}),
          },
        ],
      )
      .then(
        (ref) => void (incident.approvalMessage = ref ?? undefined),
        () => undefined,
      ),
  );
}

/** Writes the outcome into the approval message, if there is one; never holds up the incident. */
function tellApprover(incident: Incident, outcome: MessageUpdate['outcome']): void {
  if (incident.approval === 'none') return;
  const { workflowId } = workflowInfo();
  incident.track(() =>
    incident.posted.then(() => {
      const ref = incident.approvalMessage;
      if (!ref) return undefined;
      return updateApprovalMessage.executeWithOptions(
        { ...noticeOptions, summary: `approval message: ${outcome.kind}` },
        [{ ref, workflowId, outcome }],
      );
    }),
  );
}

/** Present only when set, so incidents outside dry-run schedule exactly what they always did. */
function dryRunFlag(incident: Incident): { dryRun?: true } {
  return incident.dryRun ? { dryRun: true } : {};
}

/** What this incident put in which set: exactly what it may take out again. */
type Held = Map<SetAction, string[]>;

async function addTo(incident: Incident, held: Held, action: SetAction): Promise<void> {
  const cidrs = incident.targets;
  // What is already there belongs to someone else (a person, another tool): never ours to remove.
  const { present } = await checkIpSet.executeWithOptions(
    { ...applyOptions, summary: `check ${action} set for ${targetList(cidrs)}` },
    [{ action, cidrs, ...dryRunFlag(incident) }],
  );
  const owned = cidrs.filter((c) => !present.includes(c));
  if (present.length > 0) {
    incident.note(
      'apply',
      `already in the ${action} set, not added by this incident (left as found): ${targetList(present, 20)}`,
    );
  }
  // Recorded before the write: a write that lands but whose answer is lost must still be released.
  held.set(action, owned);
  if (owned.length === 0) return;
  // Not cancellable: cancelling mid-write would let the write land after the release step ran.
  // The incident's cancellation takes effect at the next step, and then releases this.
  await CancellationScope.nonCancellable(() =>
    addToIpSet.executeWithOptions({ ...applyOptions, summary: `add ${targetList(owned)} to ${action} set` }, [
      { action, cidrs: owned, ...dryRunFlag(incident) },
    ]),
  );
}

async function removeFrom(incident: Incident, held: Held, action: SetAction): Promise<void> {
  const cidrs = held.get(action);
  if (cidrs === undefined) return;
  if (cidrs.length > 0) {
    await removeFromIpSet.executeWithOptions(
      { ...releaseOptions, summary: `remove ${targetList(cidrs)} from ${action} set` },
      [{ action, cidrs, ...dryRunFlag(incident) }],
    );
  }
  held.delete(action);
}
