/**
 * Steps the incident and virtual-patch workflows share: ask a person, hold for the TTL, and
 * finish — with the approval message kept up to date along the way.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  patched,
  proxyActivities,
  TimeoutFailure,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { Activities, LedgerInput, MessageUpdate } from '../activities';
import type { ApprovalPolicy, IncidentStatus, LedgerWhat } from './definitions';
import { targetList } from './target-list';
import { formatDuration } from './durations';
import type { Incident } from './incident';
import { ErrorTypes } from './failure-types';

/** Approval messages: retried while they matter, never in the way of the incident itself. */
const noticeOptions: ActivityOptions = {
  startToCloseTimeout: '10s',
  scheduleToCloseTimeout: '10m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s' },
};
const { postApprovalRequest, updateApprovalMessage } = proxyActivities<Activities>(noticeOptions);

/** Ledger commits: retried while git is busy or slow; a working copy that cannot be used is final. */
const ledgerOptions: ActivityOptions = {
  startToCloseTimeout: '1m',
  scheduleToCloseTimeout: '15m',
  retry: {
    initialInterval: '1s',
    backoffCoefficient: 2,
    maximumInterval: '1m',
    nonRetryableErrorTypes: [ErrorTypes.LedgerUnavailable],
  },
};
const { recordInLedger } = proxyActivities<Activities>(ledgerOptions);

/**
 * Step 7: the applied, extended or released change, committed to the IaC ledger. The WAF is the
 * enforcement and the ledger the record: commits queue behind each other and run beside the
 * incident (the hold's timer does not wait for git), and one that fails is noted in the timeline
 * while the incident goes on. The returned promise settles when this commit is done or noted.
 */
export function record(
  incident: Incident,
  op: 'applied' | 'extended' | 'released',
  what: LedgerWhat,
): Promise<void> {
  if (!incident.ledger) return Promise.resolve();
  const { workflowId, runId } = workflowInfo();
  const kind = what.kind === 'ip' ? what.action : 'rule';
  // An extension is a change of its own each time: the new expiry names it.
  const key = op === 'extended' ? `${kind}/${incident.expiresAt ?? 0}` : kind;
  const target =
    what.kind === 'ip' ? `${what.action} ${targetList(what.cidrs)}` : `rule for ${what.findingId}`;
  if (op !== 'released') incident.recordedExpiry = incident.expiresAt;
  // Taken now, not when the commit's turn comes: each commit says what was true when it happened.
  const base = {
    op,
    changeId: `${workflowId}/${runId}/${op}/${key}`,
    workflowId,
    reason: incident.input.reason,
    approver: approverOf(incident),
    createdAt: new Date(incident.appliedAt ?? Date.now()).toISOString(),
    expiresAt: new Date(incident.expiresAt ?? Date.now()).toISOString(),
  };
  const input: LedgerInput =
    what.kind === 'ip'
      ? { ...base, kind: 'ip', action: what.action, cidrs: what.cidrs }
      : {
          ...base,
          kind: 'patch',
          findingId: what.findingId,
          spec: what.spec as unknown as Record<string, unknown>,
          priority: what.priority,
          action: what.action,
        };
  // Not cancellable: a cancelled incident still releases, and its record must say so.
  return incident.recordInOrder(() =>
    CancellationScope.nonCancellable(() =>
      recordInLedger.executeWithOptions({ ...ledgerOptions, summary: `ledger: ${target} ${op}` }, [input]),
    ).then(
      (result) =>
        incident.note(
          'record',
          result.commit
            ? `ledger: ${target} ${op} in commit ${result.commit.slice(0, 12)}`
            : `ledger: ${target} ${op}: already as recorded, nothing to commit`,
        ),
      (err: unknown) =>
        incident.note('record', `ledger: ${target} ${op} NOT recorded: ${failureReason(err)}`),
    ),
  );
}

/** Why the ledger activity failed for good, in a line: a timeout names the last attempt's error too. */
function failureReason(err: unknown): string {
  const cause = (err as { cause?: Error }).cause ?? (err as Error);
  if (cause instanceof TimeoutFailure) {
    const last = (cause as { cause?: Error }).cause?.message;
    return `gave up after ${ledgerOptions.scheduleToCloseTimeout} of retries${last ? ` (last: ${last})` : ''}`;
  }
  return cause.message;
}

/** An extension not yet in the ledger is queued for it; the commit's promise when one was. */
export function recordExpiry(incident: Incident): Promise<void> | undefined {
  const entry = incident.ledgerEntry();
  if (!incident.ledger || !entry || incident.expiresAt === incident.recordedExpiry) return undefined;
  return record(incident, 'extended', entry);
}

/**
 * Whether ledger commits run beside the incident (true for every incident started since) or, as
 * runs begun before that change did and must when replayed, one by one in its path.
 */
export function recordsInBackground(incident: Incident): boolean {
  return incident.ledger && patched('ledger-background');
}

/** Who let the change through, in the ledger's words. */
function approverOf(incident: Incident): string {
  const d = incident.decision;
  if (!d) return incident.approval === 'none' ? 'none (no approval required)' : 'none';
  return d.byDefault ? `${d.by} (no answer in time: policy default)` : d.by;
}

/**
 * A person decides — Approve, Approve as challenge, or Deny — through the `decide` Update
 * (Slack buttons, `perimeter approve`); nobody answering in time applies the policy's default.
 */
export async function ask(incident: Incident): Promise<'approved' | 'denied'> {
  const { approval, approvalPolicy } = incident;
  if (approval === 'none' || !approvalPolicy) {
    incident.note('approve', 'no approval required (approval: none)');
    return 'approved';
  }
  if (incident.releaseRequest) return 'denied';
  const wait = formatDuration(approvalPolicy.timeoutMs);
  incident.waited = true;
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

/**
 * Durable TTL: survives worker restarts; `extend` moves the expiry, `release` ends it early.
 * When the history grows long (steady sightings), hands over to a fresh run instead.
 */
export async function hold(incident: Incident): Promise<'release' | 'continue-as-new'> {
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
    if (!incident.releaseRequest) {
      if (recordsInBackground(incident)) void recordExpiry(incident);
      else {
        // As runs begun before: only an extension made during this wait, and in the incident's path.
        const entry = incident.ledgerEntry();
        if (incident.expiresAt !== expiry && entry) await record(incident, 'extended', entry);
      }
    }
    if (workflowInfo().continueAsNewSuggested && !incident.releaseRequest) {
      // The new run starts with the ledger up to date: what is queued is committed first.
      await condition(
        () => (allHandlersFinished() && incident.recordsSettled()) || incident.releaseRequest !== undefined,
      );
      const extendedMeanwhile = recordsInBackground(incident) && recordExpiry(incident) !== undefined;
      if (!incident.releaseRequest && !extendedMeanwhile) {
        incident.note('hold', `history is long: continuing in a new run (run ${incident.run + 1})`);
        return 'continue-as-new';
      }
    }
  }
  incident.note('hold', incident.releaseRequest ? 'hold ended early by request' : 'TTL ended');
  return 'release';
}

export async function finish(incident: Incident): Promise<IncidentStatus> {
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
export function tellApprover(incident: Incident, outcome: MessageUpdate['outcome']): void {
  if (incident.approval === 'none') return;
  const { workflowId } = workflowInfo();
  incident.track(() =>
    (incident.posted ?? Promise.resolve()).then(() => {
      const ref = incident.approvalMessage;
      if (!ref) return undefined;
      return updateApprovalMessage.executeWithOptions(
        { ...noticeOptions, summary: `approval message: ${outcome.kind}` },
        [{ ref, workflowId, outcome }],
      );
    }),
  );
}

/** The policy's refusal, from an activity (as the cause of its failure) or a local activity (as itself). */
function refusal(err: unknown): ApplicationFailure | undefined {
  const cause = err instanceof ApplicationFailure ? err : (err as { cause?: unknown }).cause;
  return cause instanceof ApplicationFailure && cause.type === ErrorTypes.PolicyRejected ? cause : undefined;
}

export function isRefusal(err: unknown): boolean {
  return refusal(err) !== undefined;
}

/** A policy refusal from the validate step: the incident reads as rejected and fails with the reason. Anything else is rethrown. */
export function failIfRefused(incident: Incident, err: unknown): never {
  const cause = refusal(err);
  if (cause) {
    incident.enter('rejected', 'validate', `refused: ${cause.message}`);
    throw ApplicationFailure.create({
      type: ErrorTypes.PolicyRejected,
      message: cause.message,
      nonRetryable: true,
    });
  }
  throw err;
}
