/**
 * An incident's in-workflow state: evidence, timeline, expiry, and the message handlers that
 * read and change it. remediate.ts tells the story; this file keeps the books.
 */
import {
  condition,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { PolicyLimits, SetAction } from '../src/domain/policy';
import type { AddResult } from '../activities';
import { checkTtl, formatDuration } from './durations';
import { searchableTargets, targetList } from './target-list';
import type { MessageRef } from '../src/slack/notifier';
import {
  decideUpdate,
  extendUpdate,
  releaseUpdate,
  searchAttributes,
  sightingSignal,
  statusQuery,
  type ApprovalMode,
  type ApprovalPolicy,
  type DecideRequest,
  type Decision,
  type DecisionRecord,
  type Evidence,
  type RemediationAction,
  type IncidentCarryOver,
  type LedgerWhat,
  type IncidentState,
  type IncidentStatus,
  type RemediationInput,
  type Sighting,
  type TimelineEntry,
  type TimelineStep,
} from './definitions';

const MAX_SAMPLES = 10;
const FINAL_STATES: IncidentState[] = ['released', 'stood-down', 'rejected'];
const RELEASABLE_STATES: IncidentState[] = [
  'validating',
  'observing',
  'awaiting-approval',
  'applying',
  'active',
];

export function decisionText(decision: Decision): string {
  return decision === 'approve'
    ? 'approved'
    : decision === 'approve-challenge'
      ? 'approved as challenge'
      : 'denied';
}

export class Incident {
  state: IncidentState = 'validating';
  targets: string[];
  ttlMs: number;
  limits: PolicyLimits | undefined;
  /** Validated under the global dry-run switch: every WAF write of this incident only logs. */
  dryRun = false;
  /** Validated with an IaC ledger configured: applied and released changes are committed to it. */
  ledger = false;
  /** The expiry the ledger was last given: an extension records a new one. */
  recordedExpiry: number | undefined;
  /**
   * Ledger commits, one after another in the order they happened; they never hold up the WAF side.
   * Made on first use, as are `posted` and `notices`: an incident that never needs them creates no
   * promise for them (the SDK captures a stack trace for every promise a workflow makes).
   */
  private records: Promise<void> | undefined;
  private pendingRecords = 0;
  /** Whether a person decides: the detection's wish, or the policy's requirement. */
  approval: ApprovalMode;
  approvalPolicy: ApprovalPolicy | undefined;
  /** The policy's decisions about this incident, one line each. */
  policyNotes: string[] = [];
  appliedAt: number | undefined;
  expiresAt: number | undefined;
  releasedAt: number | undefined;
  /** Set by the `release` Update (or a stand-down): the hold ends at the next step. */
  releaseRequest: { by: string; reason: string } | undefined;
  /** What the incident put in which set (remediate.ts keeps it); shown by the status query. */
  held: Map<SetAction, string[]> = new Map();
  /** Why the incident ended abnormally (failure, cancellation), for the release entry. */
  endedBy: string | undefined;
  readonly timeline: TimelineEntry[] = [];
  evidence: Evidence = {
    sightings: 0,
    requests: 0,
    byClass: {},
    samples: [],
    authenticated: 0,
    detectors: [],
  };

  /** 1 for the first run; each continue-as-new adds one. */
  run = 1;
  /**
   * Set by runs that keep their history short: reads run as local activities (remediate.ts) and
   * search attributes are written only when they change.
   */
  lean = false;
  /**
   * Set by runs newer still: the reads before the first write are one local activity, an add
   * tells what was in the set before it, and a release runs as a local activity first (remediate.ts).
   */
  prepared = false;
  /**
   * Set by runs newer still: an add made in the run's first workflow task, before anything else
   * has happened, runs as a local activity (remediate.ts `write`).
   */
  localFirstAdd = false;
  /**
   * Set by runs newer still: with nothing to wait for, the step that prepares the incident also
   * makes its first write (remediate.ts `prepare`).
   */
  addWithPrepare = false;
  /** The first write, when the prepare step made it; taken by the apply step. */
  firstAdd: (AddResult & { action: SetAction }) | undefined;
  /** Set as the incident first waits (observation, approval): later adds are activities. */
  waited = false;
  /**
   * The history length of the run's first workflow task when it is that task's first attempt
   * (nothing failed or timed out before it); undefined otherwise. See `markFirstTask()`.
   */
  private firstTaskLength: number | undefined;
  private published: string | undefined;
  /** What is applied: the requested action, or a challenge when an approver chose that. */
  action: RemediationAction;
  decision: DecisionRecord | undefined;
  /** The approval request's message, once posted; outcomes are written into it. */
  approvalMessage: MessageRef | undefined;
  /** Settles when the approval request has been posted (or given up on); unset until it is asked for. */
  posted: Promise<void> | undefined;
  /** Message edits, one after another so the last word is the latest; awaited (briefly) at the end. */
  private notices: Promise<unknown> | undefined;
  private pendingNotices = 0;
  /** Cancels a still-retrying approval post once someone has decided. */
  cancelPosting: () => void = () => undefined;

  constructor(readonly input: RemediationInput) {
    this.targets = input.targets;
    this.ttlMs = input.ttlMs;
    this.action = input.action;
    this.approval = input.approval;
    this.approvalPolicy = input.approvalPolicy;
    const r = input.resumed;
    if (r) {
      this.run = r.run;
      this.targets = r.targets;
      this.limits = r.limits;
      this.ttlMs = r.ttlMs;
      this.appliedAt = r.appliedAt;
      this.expiresAt = r.expiresAt;
      this.evidence = r.evidence;
      this.action = r.action ?? input.action;
      this.decision = r.decision;
      this.approvalMessage = r.approvalMessage;
      this.dryRun = r.dryRun ?? false;
      this.ledger = r.ledger ?? false;
      // The previous run settled its ledger commits, its last expiry included, before handing over.
      this.recordedExpiry = r.expiresAt;
      this.policyNotes = r.policyNotes ?? [];
      if (r.approval) this.approval = r.approval;
      if (r.approvalPolicy) this.approvalPolicy = r.approvalPolicy;
      this.state = 'active';
      this.timeline.push(...r.timeline);
    }
  }

  carryOver(held: IncidentCarryOver['held']): IncidentCarryOver {
    if (this.limits === undefined || this.appliedAt === undefined || this.expiresAt === undefined) {
      throw new Error('only an applied incident can continue as new');
    }
    return {
      run: this.run + 1,
      targets: this.targets,
      limits: this.limits,
      ttlMs: this.ttlMs,
      appliedAt: this.appliedAt,
      expiresAt: this.expiresAt,
      held,
      evidence: this.evidence,
      timeline: this.timeline,
      action: this.action,
      decision: this.decision,
      approvalMessage: this.approvalMessage,
      ...(this.dryRun ? { dryRun: true } : {}),
      ...(this.ledger ? { ledger: true } : {}),
      ...(this.policyNotes.length > 0 ? { policyNotes: this.policyNotes } : {}),
      approval: this.approval,
      ...(this.approvalPolicy ? { approvalPolicy: this.approvalPolicy } : {}),
    };
  }

  /** Queues a ledger commit behind the earlier ones; settles when it is done (or noted as missed). */
  recordInOrder(commit: () => Promise<void>): Promise<void> {
    this.pendingRecords++;
    const done = (this.records ?? Promise.resolve()).then(commit).finally(() => void this.pendingRecords--);
    this.records = done.catch(() => undefined);
    return done;
  }

  /** No ledger commit is queued or under way. */
  recordsSettled(): boolean {
    return this.pendingRecords === 0;
  }

  /** Queues a message edit behind the earlier ones; it never holds up the remediation itself. */
  track(notice: () => Promise<unknown>): void {
    this.pendingNotices++;
    this.notices = (this.notices ?? Promise.resolve())
      .then(notice)
      .catch(() => undefined)
      .then(() => void this.pendingNotices--);
  }

  /** Gives queued message edits a little time before the incident completes; never forever. */
  async settleNotices(): Promise<void> {
    if (this.pendingNotices === 0) return;
    await condition(() => this.pendingNotices === 0, '2m');
  }

  /** Registers the signal, updates and query. Called first thing, before any await. */
  listen(): void {
    setHandler(sightingSignal, (s) => this.addSighting(s));
    setHandler(statusQuery, () => this.status());
    setHandler(
      releaseUpdate,
      async ({ by, reason }) => {
        const message = `release requested by ${by}${reason ? `: ${reason}` : ''}`;
        if (!this.requestRelease(by, reason ?? 'manual release', message)) {
          return { state: this.state, accepted: false };
        }
        await condition(() => FINAL_STATES.includes(this.state));
        return { state: this.state, accepted: true };
      },
      {
        validator: ({ by }) => {
          if (!by) throw new Error('release needs the name of who asked for it');
        },
      },
    );
    setHandler(
      decideUpdate,
      async ({ decision, by }) => {
        this.decision = { decision, by, at: new Date().toISOString(), byDefault: false };
        this.note('approve', `${decisionText(decision)} by ${by}`);
        // Answer once the decision has taken effect, so the caller can say what happened.
        await condition(() => !['awaiting-approval', 'applying'].includes(this.state));
        const expiresAt =
          this.expiresAt === undefined ? {} : { expiresAt: new Date(this.expiresAt).toISOString() };
        return { ...this.decision, state: this.state, action: this.action, ...expiresAt };
      },
      { validator: (req) => this.validateDecision(req) },
    );
    setHandler(
      extendUpdate,
      ({ by, byMs }) => {
        this.ttlMs += byMs;
        if (this.expiresAt === undefined) {
          this.note(
            'hold',
            `TTL extended by ${formatDuration(byMs)} to ${formatDuration(this.ttlMs)} by ${by}`,
          );
          this.publish();
          return { ttlMs: this.ttlMs };
        }
        this.expiresAt += byMs;
        const expiresAt = new Date(this.expiresAt).toISOString();
        this.note('hold', `extended by ${formatDuration(byMs)} by ${by}; expires ${expiresAt}`);
        this.publish();
        return { expiresAt, ttlMs: this.ttlMs };
      },
      { validator: (req) => this.validateExtend(req.byMs) },
    );
  }

  /**
   * Ends the hold (or the wait before it) at the next step; false when the incident is already
   * ending. Shown at once, so a detection arriving now starts a fresh incident instead of joining this one.
   */
  requestRelease(by: string, reason: string, message: string): boolean {
    if (!RELEASABLE_STATES.includes(this.state) || this.releaseRequest) return false;
    this.releaseRequest = { by, reason };
    this.enter('releasing', 'release', message);
    return true;
  }

  private validateDecision({ decision, by, verifiedGroup }: DecideRequest): void {
    if (this.decision) {
      const when = this.decision.byDefault ? 'by default (no answer in time)' : `by ${this.decision.by}`;
      throw new Error(`already decided: ${decisionText(this.decision.decision)} ${when}`);
    }
    if (this.state !== 'awaiting-approval' || this.releaseRequest) {
      throw new Error(`not awaiting approval: the incident is ${this.state}`);
    }
    if (!by) throw new Error('a decision needs the name of who made it');
    const { approvers = [], approverGroup } = this.approvalPolicy ?? {};
    const open = approvers.length === 0 && !approverGroup;
    const inGroup = approverGroup !== undefined && verifiedGroup === approverGroup;
    if (!open && !approvers.includes(by) && !inGroup) {
      throw new Error(`${by} is not authorised to approve or deny`);
    }
    if (!['approve', 'approve-challenge', 'deny'].includes(decision)) {
      throw new Error(`unknown decision "${decision}"`);
    }
    if (decision === 'approve-challenge' && this.action !== 'block') {
      throw new Error('"approve as challenge" applies only to blocks');
    }
  }

  private validateExtend(byMs: number): void {
    const extendable: IncidentState[] = ['observing', 'awaiting-approval', 'applying', 'active'];
    if (!extendable.includes(this.state) || this.releaseRequest || !this.limits) {
      throw new Error(
        `cannot extend: the incident is ${this.releaseRequest ? 'being released' : this.state}`,
      );
    }
    if (!Number.isFinite(byMs) || byMs <= 0) throw new Error('extension must be greater than zero');
    const expiry = this.expiresAt ?? Date.now() + this.ttlMs;
    const remaining = expiry + byMs - Date.now();
    const problem = checkTtl(remaining, this.limits.maxTtlMs, 'remaining TTL after extension');
    if (problem) throw new Error(problem);
  }

  addSighting(s: Sighting): void {
    const e = this.evidence;
    e.sightings++;
    for (const [cls, n] of Object.entries(s.classes)) {
      if (!Number.isFinite(n) || n < 0) continue;
      e.byClass[cls] = (e.byClass[cls] ?? 0) + n;
      e.requests += n;
    }
    e.authenticated += s.authenticated ?? 0;
    if (!e.detectors.includes(s.detector)) e.detectors.push(s.detector);
    for (const line of s.samples ?? []) if (e.samples.length < MAX_SAMPLES) e.samples.push(line);
    const first = s.firstAt ?? s.at;
    if (!e.firstSeen || first < e.firstSeen) e.firstSeen = first;
    if (!e.lastSeen || s.at > e.lastSeen) e.lastSeen = s.at;
  }

  note(step: TimelineStep, message: string): void {
    this.timeline.push({ at: new Date().toISOString(), step, message });
  }

  /**
   * `publish: false` changes what the status query and the Update validators see, and leaves
   * the search attributes as they are (the next publish writes them).
   */
  enter(state: IncidentState, step: TimelineStep, message: string, { publish = true } = {}): void {
    // Once a release is accepted the incident reads as releasing until it has ended.
    const ending = state === 'releasing' || FINAL_STATES.includes(state);
    this.state = this.releaseRequest && !ending ? 'releasing' : state;
    this.note(step, message);
    if (publish) this.publish();
  }

  /**
   * Keep this run's history short (see `lean`). The search attributes the run was started with
   * count as written: the client sets the same state and targets the first publish would.
   */
  keepHistoryShort({ prepared = false, localFirstAdd = false, addWithPrepare = false } = {}): void {
    this.lean = true;
    this.prepared = prepared;
    this.localFirstAdd = localFirstAdd;
    this.addWithPrepare = addWithPrepare;
    const started = workflowInfo().typedSearchAttributes;
    const state = started.get(searchAttributes.state);
    const targets = started.get(searchAttributes.target);
    if (state !== undefined && targets !== undefined) {
      const expiresAt = started.get(searchAttributes.expiresAt);
      this.published = JSON.stringify(attributeList(state, targets, expiresAt?.getTime()));
    }
  }

  /**
   * Called once the handlers are set, before any await. A new run's first task sees in its
   * history the start, the signals sent with or before it, the task's scheduling and its start:
   * any other length means something else happened first — an earlier attempt of this task that
   * failed or timed out (and may have written), a cancellation, a retry or reset of the run.
   * Each signal so far is one sighting (a new run's evidence starts empty).
   */
  markFirstTask(): void {
    const info = workflowInfo();
    const signals = this.evidence.sightings;
    const clean = !this.input.resumed && info.attempt === 1 && info.historyLength === 3 + signals;
    this.firstTaskLength = clean ? info.historyLength : undefined;
  }

  /**
   * Whether an add made now runs as a local activity: in a run whose first task started as its
   * first attempt, before the incident has waited for anything (an observation window, an
   * approval). Decided from the history, so a replay takes the same path.
   */
  addsLocally(): boolean {
    return this.localFirstAdd && this.firstTaskLength !== undefined && !this.waited;
  }

  /**
   * Whether a local add scheduled now may follow an earlier try of it that wrote: true unless
   * this is the live first attempt of the run's first task (a replay runs a local add afresh
   * only when the task that ran it did not finish; a longer history means the worker kept a
   * slow task alive, when nothing is assumed).
   */
  localAddMayHaveWritten(): boolean {
    const info = workflowInfo();
    return info.unsafe.isReplaying || info.historyLength !== this.firstTaskLength;
  }

  /** The prepare step's write to the action's set, once: what the apply step would otherwise write. */
  takeFirstAdd(action: SetAction): AddResult | undefined {
    const added = this.firstAdd;
    if (added?.action !== action) return undefined;
    this.firstAdd = undefined;
    return added;
  }

  /** Whether the run's first task was, when it started, its first attempt (see `markFirstTask`). */
  startedCleanly(): boolean {
    return this.firstTaskLength !== undefined;
  }

  /** What the ledger holds for this incident while it is applied (an extension rewrites it). */
  ledgerEntry(): LedgerWhat | undefined {
    const cidrs = this.held.get(this.action) ?? [];
    return cidrs.length > 0 ? { kind: 'ip', action: this.action, cidrs } : undefined;
  }

  /** Search attributes and current details: what the Temporal UI and `perimeter list` show. */
  publish(): void {
    setCurrentDetails(this.details().filter(Boolean).join('\n\n'));
    const attributes = attributeList(this.state, searchableTargets(this.targets), this.expiresAt);
    if (this.lean) {
      // Each upsert is a history event: write only what changed.
      const key = JSON.stringify(attributes);
      if (key === this.published) return;
      this.published = key;
    }
    upsertSearchAttributes(attributes);
  }

  /** The Temporal UI's "current details": a few lines that say where the incident stands. */
  protected details(): string[] {
    const last = this.timeline[this.timeline.length - 1];
    return [
      `**${this.state}${this.dryRun ? ' (dry-run)' : ''}** — ${this.action} ${targetList(this.targets)}`,
      this.expiresAt !== undefined
        ? `expires ${new Date(this.expiresAt).toISOString()}`
        : `TTL ${formatDuration(this.ttlMs)}`,
      `evidence: ${this.evidence.requests} requests in ${this.evidence.sightings} sightings`,
      ...this.policyNotes.map((n) => `policy: ${n}`),
      last ? `last: ${last.message}` : '',
    ];
  }

  /** Shown wherever the incident is: its timeline, details, memo (for `perimeter list`) and status. */
  markDryRun(): void {
    this.dryRun = true;
    upsertMemo({ dryRun: true });
    this.note('validate', 'DRY-RUN: the WAF is not changed; every write of this incident is only logged');
  }

  status(): IncidentStatus {
    const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());
    return {
      state: this.state,
      targets: this.targets,
      action: this.action,
      approval: this.approval,
      ...(this.policyNotes.length > 0 ? { policy: this.policyNotes } : {}),
      decision: this.decision,
      reason: this.input.reason,
      detector: this.input.detector,
      ttlMs: this.ttlMs,
      observeMs: this.input.observeMs,
      appliedAt: iso(this.appliedAt),
      expiresAt: iso(this.expiresAt),
      releasedAt: iso(this.releasedAt),
      evidence: this.evidence,
      timeline: this.timeline,
      ...(this.dryRun ? { dryRun: true } : {}),
      ...(this.held.size > 0 ? { held: Object.fromEntries(this.held) } : {}),
    };
  }
}

/** The search attributes an incident keeps up to date (its action and detector are set at start). */
function attributeList(state: string, targets: string[], expiresAt: number | undefined) {
  return [
    { key: searchAttributes.state, value: state },
    { key: searchAttributes.target, value: targets },
    ...(expiresAt !== undefined ? [{ key: searchAttributes.expiresAt, value: new Date(expiresAt) }] : []),
  ];
}
