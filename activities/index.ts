/**
 * createActivities(deps): thin adapters from workflow intent to src/ services. The worker wires
 * the real dependencies; tests wire the same functions to the WAF emulator.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { checkRemediation, PolicyError, type PolicyLimits, type SetAction } from '../src/domain/policy';
import type { CheckResult, SetChangeResult, WafGateway } from '../src/waf/gateway';
import { ErrorTypes, toApplicationFailure } from './errors';
import { allowlisted, allowlistMessage } from '../src/domain/allowlist';
import { parseTarget } from '../src/domain/targets';
import { AddJournal, type AddTry } from '../src/waf/add-journal';
import type { Policy } from '../src/policy/policy';
import { assessRemediation, type AssessDeps } from '../src/policy/assess';
import { withCaps } from '../src/policy/policy';
import type { AssessInput, Assessment } from '../src/policy/context';
import type { ApprovalPolicy } from '../workflows/definitions';

export type { AssessInput };

/** What the policy decided, with the approval settings to use when a person must decide. */
export type ContextDecision = Omit<Assessment, 'approvalTimeoutMs' | 'approvalDefault'> & {
  approvalPolicy?: ApprovalPolicy;
};
import type { DecisionRecord } from '../workflows/definitions';
import {
  checkPatch,
  describePatch,
  patchRuleName,
  type PatchRequest,
  type PatchSpec,
} from '../src/domain/virtual-patch';
import type { PatchChangeResult, PatchGateway } from '../src/waf/patch-gateway';
import { buildPatchRule, needsPatternSet, type PatchRuleAction } from '../src/waf/patch-rules';
import type { IpChange, LedgerChange, PatchChange } from '../src/ledger/state';
import { LedgerError, type RecordResult } from '../src/ledger/ledger';
import { decisionOutcome, type ApprovalRequest } from '../src/slack/messages';
import type { ApprovalNotifier, MessageRef } from '../src/slack/notifier';

export interface ActivityDeps {
  waf: WafGateway;
  /** Used instead of `waf` for incidents validated under the global dry-run switch. */
  dryRunWaf: WafGateway;
  limits: PolicyLimits;
  /** Virtual-patch rules in the web ACL, and their log-only twin for dry-run patches. */
  patches: PatchGateway;
  dryRunPatches: PatchGateway;
  /** The WAF resource prefix: patch rules are named from it. */
  setPrefix: string;
  /** The longest a virtual patch may hold. */
  maxPatchTtlMs: number;
  /** The policy in force now (it can change while incidents run). */
  policy: () => Policy;
  /** Earlier incidents for a target (the visibility store). */
  countOffences: AssessDeps['countOffences'];
  /** The worker's approval settings, for incidents the policy sends to a person. */
  approval: ApprovalPolicy;
  notifier: ApprovalNotifier;
  /** The incident's page in the Temporal Web UI, for messages. */
  incidentUrl: (workflowId: string) => string;
  /** Told how long a remediation took to reach the WAF (seconds), by action. */
  onApplied?: (action: SetAction, seconds: number) => void;
  /** The IaC ledger (a git working copy), when one is configured. */
  ledger?: { record(change: LedgerChange): Promise<RecordResult> };
}

/** What a workflow reports to the ledger; a patch's rule is written out by the activity. */
export type LedgerInput =
  | IpChange
  | (Omit<PatchChange, 'rule' | 'ruleName'> & {
      priority: number;
      /** The rule's action in the web ACL; absent in histories from before it was passed: block. */
      action?: PatchRuleAction;
    });

export type ApprovalNotice = Omit<ApprovalRequest, 'url'>;

export interface MessageUpdate {
  ref: MessageRef;
  workflowId: string;
  outcome:
    | { kind: 'decided'; decision: DecisionRecord; state: string; action: string; until?: string }
    | { kind: 'released'; at: string; why: string };
}

export interface ValidateInput {
  targets: string[];
  action: string;
  ttlMs: number;
  observeMs: number;
}

export interface ValidatedRemediation {
  /** Normalised CIDRs, duplicates removed. */
  targets: string[];
  /** The caps the workflow keeps applying after validation (extend, …). */
  limits: PolicyLimits;
  /** Log-only: the incident runs in full, and its WAF writes only log. Absent means false. */
  dryRun?: boolean;
  /** Each applied and released change is recorded in the IaC ledger. Absent means false. */
  ledger?: boolean;
  /** What the policy changed about the request (targets widened, …). */
  notes?: string[];
}

/** What `prepareRemediation` needs: the request, and who approves and who is behind the target. */
export interface PrepareInput extends ValidateInput {
  approval: AssessInput['approval'];
  identity?: AssessInput['identity'];
  /**
   * Add the targets in the same step when the policy lets the request stand exactly as asked
   * (same targets, same action, no approval): the incident's first task then needs no second
   * step. Only ever asked for with no observation window.
   */
  thenAdd?: { startedAt: number; mayHaveWritten?: true };
}

export interface PreparedRemediation {
  validated: ValidatedRemediation;
  context: ContextDecision;
  /** Present when the step also added the targets (see `PrepareInput.thenAdd`). */
  added?: AddResult & { action: SetAction };
}

/** What an add did, and what it found there (used by prepared incidents). */
export interface AddResult extends SetChangeResult {
  /**
   * The CIDRs the set held before this incident's first write: someone else's, never to be
   * removed by it. Known exactly on the first attempt, from the state the write itself was made
   * against; a retry cannot tell its own earlier write from someone else's and reports none.
   */
  others?: string[];
}

export interface ValidatedPatch {
  spec: PatchSpec;
  /** The rule's name in the web ACL. */
  rule: string;
  /** One line for people. */
  summary: string;
  limits: PolicyLimits;
  dryRun?: boolean;
  ledger?: boolean;
  notes?: string[];
}

export interface PatchRuleInput {
  spec: PatchSpec;
  action: PatchRuleAction;
  dryRun?: boolean;
}

export interface PatchRemoveInput {
  findingId: string;
  dryRun?: boolean;
}

export interface SetChangeInput {
  action: SetAction;
  cidrs: string[];
  /** The incident was validated in dry-run mode: only log. Fixed per incident, so a switch flipped mid-incident never strands a block. */
  dryRun?: boolean;
  /** When the incident started (epoch ms): the window of exposure is measured from here. */
  startedAt?: number;
  /**
   * An earlier try of this add may have written it (the workflow task that ran it as a local
   * activity did not finish): what is in the set now may be the incident's own write, so the add
   * reports no `others`.
   */
  mayHaveWritten?: true;
}

/**
 * The signal a WAF call of this attempt runs under: the activity's cancellation, and its
 * deadline less a margin — a write must not start (or be left running) after Temporal has given
 * up on the attempt, or it could land after the incident has released the address.
 */
function attemptSignal(): AbortSignal {
  const { cancellationSignal, info } = Context.current();
  const budget = Math.max(1_000, info.startToCloseTimeoutMs - 2_000);
  return AbortSignal.any([cancellationSignal, AbortSignal.timeout(budget)]);
}

async function wafCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw toApplicationFailure(err);
  }
}

function isPolicyRefusal(err: unknown): boolean {
  return err instanceof ApplicationFailure && err.type === ErrorTypes.PolicyRejected;
}

/** Whether the string is an address or range the WAF could hold (targets are not yet validated). */
function isTarget(cidr: string): boolean {
  try {
    parseTarget(cidr);
    return true;
  } catch {
    return false;
  }
}

function policyRejected(message: string, problems: string[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorTypes.PolicyRejected,
    message,
    nonRetryable: true,
    details: [problems],
  });
}

export function createActivities(deps: ActivityDeps) {
  const gateway = (input: { dryRun?: boolean }) => (input.dryRun ? deps.dryRunWaf : deps.waf);
  /** What this worker's adds may have written, per incident run: see `othersFound`. */
  const journal = new AddJournal();

  /** Policy check with the worker's limits; a refusal is permanent and says why. */
  function validateRemediation(input: ValidateInput): ValidatedRemediation {
    const policy = deps.policy();
    const limits = withCaps(deps.limits, policy);
    try {
      const checked = checkRemediation(input, limits, policy.allowlist);
      return {
        targets: checked.targets.map((t) => t.cidr),
        limits,
        ...(checked.notes.length > 0 ? { notes: checked.notes } : {}),
        ...(policy.dryRun ? { dryRun: true } : deps.ledger ? { ledger: true } : {}),
      };
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      throw policyRejected(err.message, err.problems);
    }
  }

  /**
   * The policy's view of this target: identity (an unreachable service falls back, and says
   * so), earlier offences, and what they change — action, TTL, approval — each explained.
   */
  async function assessContext(input: AssessInput): Promise<ContextDecision> {
    const a = await assessRemediation(
      { policy: deps.policy, maxTtlMs: deps.limits.maxTtlMs, countOffences: deps.countOffences },
      input,
    );
    const { approvalTimeoutMs, approvalDefault, ...rest } = a;
    return a.approval === 'slack'
      ? {
          ...rest,
          approvalPolicy: {
            ...deps.approval,
            ...(approvalTimeoutMs !== undefined ? { timeoutMs: approvalTimeoutMs } : {}),
            ...(approvalDefault ? { onTimeout: approvalDefault } : {}),
          },
        }
      : rest;
  }

  /** Adds the CIDRs to the action's managed IP sets (read-modify-write with the lock token). */
  async function add(input: SetChangeInput): Promise<AddResult> {
    // The policy may have changed since validation: an allowlisted range is never written.
    if (input.action !== 'count') {
      for (const cidr of input.cidrs) {
        const target = parseTarget(cidr);
        const allowed = allowlisted(target, deps.policy().allowlist);
        if (allowed) throw policyRejected(allowlistMessage(target, allowed), []);
      }
    }
    const { info } = Context.current();
    const runId = info.workflowExecution?.runId;
    const firstAttempt = info.attempt === 1 && !input.mayHaveWritten;
    // Only a local add is judged from memory (see `othersFound`): only its tries are all kept here.
    const begun =
      info.isLocal && runId !== undefined ? journal.begin(runId, input.action, firstAttempt) : undefined;
    const first = firstAttempt && !begun?.earlier;
    const tried = begun?.entry;
    const result = await wafCall(() =>
      gateway(input).apply(input.action, input.cidrs, {
        signal: attemptSignal(),
        ...(tried ? { adds: tried } : {}),
      }),
    );
    if (tried && runId !== undefined) journal.done(runId, input.action);
    if (input.startedAt !== undefined && input.action !== 'count' && !input.dryRun) {
      deps.onApplied?.(input.action, (Date.now() - input.startedAt) / 1000);
    }
    return { ...result, others: othersFound(input, first, tried, result.unchanged) };
  }

  /**
   * The prepare step ends without its add, and the incident takes nothing as written. An earlier
   * try of the step may have made that add all the same (its answer lost): take it back. What
   * to take back is what this process's memory says those tries were sent to add; without that
   * memory (a replay, or entries dropped), every address they were asked to add — one someone
   * else had put there goes too, which is better than leaving a block nobody holds.
   */
  async function takeBackEarlierAdd(input: PrepareInput, dryRunNow: boolean): Promise<void> {
    const { info } = Context.current();
    if (info.attempt === 1 && !input.thenAdd?.mayHaveWritten) return; // no earlier try
    const action = input.action as SetAction;
    const runId = info.workflowExecution?.runId;
    const recorded = runId === undefined ? undefined : journal.recorded(runId, action);
    // Recorded writes were real ones (a dry-run write sends nothing): undone on the real WAF.
    const [cidrs, dryRun] =
      recorded === undefined || input.thenAdd?.mayHaveWritten
        ? [input.targets.filter(isTarget), dryRunNow]
        : [recorded?.sentAddresses() ?? [], false];
    if (cidrs.length === 0) return;
    await wafCall(() => gateway({ dryRun }).release(action, cidrs, { signal: attemptSignal() }));
    if (runId !== undefined) journal.done(runId, action);
  }

  /**
   * Of the addresses an add found already in the set, those someone else put there. On the
   * first try, all of them. On a retry of a local add (its earlier tries all ran in this process,
   * with no replay between: an answer lost, a write timed out), or on a local add after one of
   * the same run that failed here, those no earlier try was sent to add, as this process
   * remembers. Otherwise an earlier try, perhaps on another worker, may have written any of
   * them: none, and the incident claims them all (taking someone's address out with its own at
   * the end is better than leaving its own behind).
   */
  function othersFound(
    input: SetChangeInput,
    first: boolean,
    tried: AddTry | undefined,
    present: string[],
  ): string[] {
    if (first) return present;
    if (input.mayHaveWritten || !tried) return []; // `tried`: a local add's memory
    return tried.notAdded(present) ?? [];
  }

  return {
    async validateRemediation(input: ValidateInput): Promise<ValidatedRemediation> {
      return validateRemediation(input);
    },

    assessContext,

    /**
     * Everything the incident reads before its first write, in one step: the policy check and
     * the context — and, when asked and the request stands as it was made, the add itself.
     */
    async prepareRemediation(input: PrepareInput): Promise<PreparedRemediation> {
      const { approval, identity, thenAdd, ...request } = input;
      let validated: ValidatedRemediation;
      let context: ContextDecision;
      try {
        validated = validateRemediation(request);
        context = await assessContext({
          targets: validated.targets,
          action: input.action as AssessInput['action'],
          ttlMs: input.ttlMs,
          approval,
          ...(identity ? { identity } : {}),
        });
      } catch (err) {
        // A refusal ends the step, and the incident counts on nothing having been written.
        if (thenAdd && isPolicyRefusal(err)) await takeBackEarlierAdd(input, deps.policy().dryRun);
        throw err;
      }
      const asked =
        context.action === input.action &&
        context.approval === 'none' &&
        validated.targets.length === input.targets.length &&
        validated.targets.every((t, i) => t === input.targets[i]);
      if (!thenAdd || !asked) {
        // So does an answer that no longer lets the request stand as made.
        if (thenAdd) await takeBackEarlierAdd(input, validated.dryRun === true);
        return { validated, context };
      }
      const action = input.action as SetAction;
      const added = await add({
        action,
        cidrs: validated.targets,
        startedAt: thenAdd.startedAt,
        ...(validated.dryRun ? { dryRun: true } : {}),
        ...(thenAdd.mayHaveWritten ? { mayHaveWritten: true } : {}),
      });
      return { validated, context, added: { ...added, action } };
    },

    /**
     * Which of the CIDRs the action's sets already hold. Read before adding: what was there
     * before belongs to someone else, and the incident must leave it as found.
     */
    async checkIpSet(input: SetChangeInput): Promise<CheckResult> {
      return wafCall(() => gateway(input).check(input.action, input.cidrs, { signal: attemptSignal() }));
    },

    /** Adds the CIDRs to the action's managed IP sets (read-modify-write with the lock token). */
    addToIpSet: add,

    /** The patch against the worker's caps; a refusal is permanent and says why. */
    async validateVirtualPatch(request: PatchRequest): Promise<ValidatedPatch> {
      const limits = { ...withCaps(deps.limits, deps.policy()), maxTtlMs: deps.maxPatchTtlMs };
      try {
        const spec = checkPatch(request, limits);
        return {
          spec,
          rule: patchRuleName(deps.setPrefix, spec.findingId),
          summary: describePatch(spec),
          limits,
          ...(deps.policy().dryRun ? { dryRun: true } : deps.ledger ? { ledger: true } : {}),
        };
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        throw policyRejected(err.message, err.problems);
      }
    },

    /** Puts the patch's rule in the web ACL with this action (read-modify-write with the lock token). */
    async placePatchRule(input: PatchRuleInput): Promise<PatchChangeResult> {
      const patches = input.dryRun ? deps.dryRunPatches : deps.patches;
      return wafCall(() => patches.apply(input.spec, input.action, { signal: attemptSignal() }));
    },

    /** Takes the patch's rule (and its pattern set) out; already gone is a no-op. Always retryable. */
    async removePatchRule(input: PatchRemoveInput): Promise<PatchChangeResult> {
      const patches = input.dryRun ? deps.dryRunPatches : deps.patches;
      try {
        return await patches.release(input.findingId, { signal: attemptSignal() });
      } catch (err) {
        // No web ACL by that name holds no rule to remove.
        if ((err as Error).name === ErrorTypes.WafNotProvisioned) {
          return { rule: patchRuleName(deps.setPrefix, input.findingId), written: false, lockConflicts: 0 };
        }
        throw toApplicationFailure(err, { alwaysRetryable: true });
      }
    },

    /**
     * Commits the change to the IaC ledger; a retry of the same change commits nothing new. A
     * ledger that cannot be used as configured (a missing path, an unwritable file) fails for
     * good, saying why; one that may clear up (unrelated edits, another worker's lock, a remote
     * away) is retried. The WAF side has already happened and stays as it is.
     */
    async recordInLedger(input: LedgerInput): Promise<RecordResult> {
      if (!deps.ledger) {
        // Validated on a worker with a ledger: another worker of the fleet may have it configured.
        throw ApplicationFailure.create({
          type: ErrorTypes.LedgerNotReady,
          message: 'this worker has no ledger configured (PERIMETER_LEDGER_PATH)',
        });
      }
      const change: LedgerChange =
        input.kind === 'ip'
          ? input
          : (() => {
              const { priority, action, ...rest } = input;
              const spec = rest.spec as unknown as PatchSpec;
              const ruleName = patchRuleName(deps.setPrefix, spec.findingId);
              // A patch with regexes keeps them in a pattern set of the rule's name.
              const patternSet = needsPatternSet(spec) ? `pattern-set:${ruleName}` : undefined;
              return {
                ...rest,
                ruleName,
                rule: {
                  ...buildPatchRule(deps.setPrefix, spec, action ?? 'block', priority, patternSet),
                  ...(patternSet
                    ? { RegexPatternSet: { Name: ruleName, Patterns: spec.patterns ?? [] } }
                    : {}),
                },
              };
            })();
      try {
        return await deps.ledger.record(change);
      } catch (err) {
        if (err instanceof LedgerError) {
          throw ApplicationFailure.create({
            type: err.final ? ErrorTypes.LedgerUnavailable : ErrorTypes.LedgerNotReady,
            message: err.message,
            nonRetryable: err.final,
          });
        }
        throw err;
      }
    },

    /** Shows the approval request (Slack, or the worker log); null when there is no message to edit later. */
    async postApprovalRequest(notice: ApprovalNotice): Promise<MessageRef | null> {
      return (
        (await deps.notifier.requestApproval({ ...notice, url: deps.incidentUrl(notice.workflowId) })) ?? null
      );
    },

    /** Replaces the approval message with what happened: decided, expired, released. */
    async updateApprovalMessage({ ref, workflowId, outcome }: MessageUpdate): Promise<void> {
      const text =
        outcome.kind === 'decided'
          ? decisionOutcome(workflowId, {
              ...outcome.decision,
              state: outcome.state,
              action: outcome.action,
              ...(outcome.until ? { expiresAt: outcome.until } : {}),
            })
          : `Released at ${outcome.at.slice(11, 16)} UTC: ${outcome.why} (${workflowId})`;
      await deps.notifier.update(ref, text);
    },

    /**
     * Removes the CIDRs from the action's managed IP sets; already gone is a no-op. Every
     * failure stays retryable — an access error fixed by an operator must not strand a block.
     */
    async removeFromIpSet(input: SetChangeInput): Promise<SetChangeResult> {
      try {
        return await gateway(input).release(input.action, input.cidrs, { signal: attemptSignal() });
      } catch (err) {
        // A set missing by name (the gateway re-checks a stale ID first) holds nothing to release.
        if ((err as Error).name === ErrorTypes.WafNotProvisioned) {
          return { setsWritten: [], changed: [], unchanged: input.cidrs, lockConflicts: 0 };
        }
        throw toApplicationFailure(err, { alwaysRetryable: true });
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
