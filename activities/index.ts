/**
 * createActivities(deps): thin adapters from workflow intent to src/ services. The worker wires
 * the real dependencies; tests wire the same functions to the WAF emulator.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { checkRemediation, PolicyError, type PolicyLimits, type SetAction } from '../src/domain/policy';
import type { WafGateway, SetChangeResult } from '../src/waf/gateway';
import { ErrorTypes, toApplicationFailure } from './errors';

export interface ActivityDeps {
  waf: WafGateway;
  limits: PolicyLimits;
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
}

export interface SetChangeInput {
  action: SetAction;
  cidrs: string[];
}

export interface AddResult extends SetChangeResult {
  /**
   * The CIDRs this incident may remove later: those it added. An address already in the set
   * on the first attempt belongs to someone else and is never released by this incident; on a
   * retry "already present" may be our own earlier write that timed out, so it counts as ours.
   */
  owned: string[];
}

async function wafCall(call: () => Promise<SetChangeResult>): Promise<SetChangeResult> {
  try {
    return await call();
  } catch (err) {
    throw toApplicationFailure(err);
  }
}

export function createActivities(deps: ActivityDeps) {
  return {
    /** Policy check with the worker's limits; a refusal is permanent and says why. */
    async validateRemediation(input: ValidateInput): Promise<ValidatedRemediation> {
      try {
        const checked = checkRemediation(input, deps.limits);
        return { targets: checked.targets.map((t) => t.cidr), limits: deps.limits };
      } catch (err) {
        if (!(err instanceof PolicyError)) throw err;
        throw ApplicationFailure.create({
          type: ErrorTypes.PolicyRejected,
          message: err.message,
          nonRetryable: true,
          details: [err.problems],
        });
      }
    },

    /** Adds the CIDRs to the action's managed IP sets (read-modify-write with the lock token). */
    async addToIpSet(input: SetChangeInput): Promise<AddResult> {
      const result = await wafCall(() => deps.waf.apply(input.action, input.cidrs));
      const firstAttempt = Context.current().info.attempt === 1;
      return { ...result, owned: firstAttempt ? result.changed : [...result.changed, ...result.unchanged] };
    },

    /**
     * Removes the CIDRs from the action's managed IP sets; already gone is a no-op. Every
     * failure stays retryable — an access error fixed by an operator must not strand a block.
     */
    async removeFromIpSet(input: SetChangeInput): Promise<SetChangeResult> {
      try {
        return await deps.waf.release(input.action, input.cidrs);
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
