/** The worker's side of a contextual decision: ask for identity and history, then decide. */
import type { Client } from '@temporalio/client';
import { assess, type AssessInput, type Assessment, type IdentityContext } from './context';
import { lookupIdentity } from './identity';
import type { Policy } from './policy';

export interface AssessDeps {
  policy: () => Policy;
  maxTtlMs: number;
  /** Earlier incidents for `cidr` that ended after `sinceMs`. */
  countOffences: (cidr: string, sinceMs: number) => Promise<number>;
}

export async function assessRemediation(deps: AssessDeps, input: AssessInput): Promise<Assessment> {
  const policy = deps.policy();
  const [target] = input.targets;
  // Identity and history are about one actor; a campaign keeps the detection's own terms.
  if (!target || input.targets.length > 1) return assess(input, policy, deps.maxTtlMs, {});
  let identity: IdentityContext | undefined;
  if (policy.identity) {
    const ip = target.replace(/\/(32|128)$/, '');
    identity = await lookupIdentity(policy.identity, { ...input.identity, ip });
  }
  let offences: number | undefined;
  let unknownHistory: string | undefined;
  if (policy.repeatOffenders) {
    try {
      offences = await deps.countOffences(target, Date.now() - policy.repeatOffenders.lookback);
    } catch (err) {
      // The remediation must not wait on history: count none, and say so.
      offences = 0;
      unknownHistory = `earlier offences could not be counted (${(err as Error).message}): treated as a first offence`;
    }
  }
  const decided = assess(input, policy, deps.maxTtlMs, {
    ...(identity ? { identity } : {}),
    ...(offences !== undefined ? { offences } : {}),
  });
  if (unknownHistory) decided.explanations.unshift(unknownHistory);
  return decided;
}

/** Counts, in the visibility store, closed incidents for the target that were applied and released. */
export function offenceCounter(client: Client) {
  return async (cidr: string, sinceMs: number): Promise<number> => {
    const query = [
      `WorkflowType = 'remediate'`,
      `ExecutionStatus != 'Running'`,
      `PerimeterTarget = '${cidr.replace(/'/g, '')}'`,
      `PerimeterState = 'released'`,
      `CloseTime > '${new Date(sinceMs).toISOString()}'`,
    ].join(' AND ');
    return (await client.workflow.count(query)).count;
  };
}
