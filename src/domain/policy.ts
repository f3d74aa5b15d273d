/**
 * The invariants every remediation request must meet before anything is started or written:
 * valid targets, a known action, a TTL within the cap. Pure code: the client runs it before
 * starting a workflow, and the workflow's validate step runs it again with the worker's limits.
 */
import { checkTarget, TargetError, widen, type PrefixLimits, type Target } from './targets';
import { checkTtl, formatDuration } from './durations';
import { allowlisted, allowlistMessage, type AllowEntry } from './allowlist';

export { checkTtl };

/** What a remediation does to matching requests. `count` is the observation (dry-run) set. */
export const REMEDIATION_ACTIONS = ['block', 'challenge', 'captcha'] as const;
export type RemediationAction = (typeof REMEDIATION_ACTIONS)[number];
export const SET_ACTIONS = ['count', ...REMEDIATION_ACTIONS] as const;
export type SetAction = (typeof SET_ACTIONS)[number];

export interface PolicyLimits extends PrefixLimits {
  maxTtlMs: number;
  maxObserveMs: number;
  /** Narrower targets are widened to this prefix (attackers rotate inside an IPv6 /64). */
  narrowestV4?: number;
  narrowestV6?: number;
}

export interface RemediationRequest {
  targets: string[];
  action: string;
  ttlMs: number;
  observeMs: number;
}

export interface CheckedRemediation {
  targets: Target[];
  /** What the policy changed about the request, one line each (targets widened, …). */
  notes: string[];
  action: RemediationAction;
  ttlMs: number;
  observeMs: number;
}

/** Every problem found in one request, so a person can fix them all at once. */
export class PolicyError extends Error {
  override name = 'PolicyError';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

export function isSetAction(value: string): value is SetAction {
  return (SET_ACTIONS as readonly string[]).includes(value);
}

export function isRemediationAction(value: string): value is RemediationAction {
  return (REMEDIATION_ACTIONS as readonly string[]).includes(value);
}

/**
 * One target against everything the policy says about targets: validity, width, reserved and
 * allowlisted ranges, and widening to the narrowest prefix. Throws TargetError with the reason.
 */
export function checkPolicyTarget(
  input: string,
  limits: PolicyLimits,
  allowlist: readonly AllowEntry[] = [],
): { target: Target; note?: string } {
  const given = checkTarget(input, limits);
  const narrowest = given.family === 'ipv4' ? limits.narrowestV4 : limits.narrowestV6;
  const target = narrowest === undefined ? given : widen(given, narrowest);
  const allowed = allowlisted(target, allowlist);
  if (allowed) throw new TargetError(input, allowlistMessage(target, allowed));
  if (target === given) return { target };
  return {
    target,
    note: `${given.cidr} widened to ${target.cidr} (narrowest remediated prefix /${narrowest})`,
  };
}

export function checkRemediation(
  request: RemediationRequest,
  limits: PolicyLimits,
  allowlist: readonly AllowEntry[] = [],
): CheckedRemediation {
  const problems: string[] = [];
  const notes: string[] = [];
  const targets: Target[] = [];
  if (request.targets.length === 0) problems.push('no target given');
  for (const input of request.targets) {
    try {
      const { target, note } = checkPolicyTarget(input, limits, allowlist);
      if (note) notes.push(note);
      if (!targets.some((t) => t.cidr === target.cidr)) targets.push(target);
    } catch (err) {
      if (!(err instanceof TargetError)) throw err;
      problems.push(err.message);
    }
  }
  if (!isRemediationAction(request.action)) {
    problems.push(`unknown action "${request.action}" (expected one of ${REMEDIATION_ACTIONS.join(', ')})`);
  }
  const ttlProblem = checkTtl(request.ttlMs, limits.maxTtlMs);
  if (ttlProblem) problems.push(ttlProblem);
  if (!Number.isFinite(request.observeMs) || request.observeMs < 0) {
    problems.push('observation window must be zero or more');
  } else if (request.observeMs > limits.maxObserveMs) {
    problems.push(
      `observation window ${formatDuration(request.observeMs)} exceeds the maximum of ${formatDuration(limits.maxObserveMs)}`,
    );
  }
  if (problems.length > 0) throw new PolicyError(problems);
  return {
    targets,
    notes,
    action: request.action as RemediationAction,
    ttlMs: request.ttlMs,
    observeMs: request.observeMs,
  };
}
