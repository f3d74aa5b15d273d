/**
 * Contextual decisions, in pure code: who the target is (identity), how often it offended
 * before, and what the policy makes of that — the action, the TTL, whether a person approves.
 * Every change is explained in one line, shown in the incident.
 */
import { formatDuration } from '../domain/durations';
import type { RemediationAction } from '../domain/policy';
import { parseTarget } from '../domain/targets';
import type { Policy } from './policy';

export interface IdentityHints {
  user?: string;
  session?: string;
  apiKey?: string;
}

export interface IdentityContext {
  principal?: string;
  authenticated: boolean;
  reputation: number;
  /** Where it came from; `fallback` means the identity service could not be asked. */
  source: 'static' | 'http' | 'fallback';
  note?: string;
}

export interface AssessInput {
  targets: string[];
  action: RemediationAction;
  ttlMs: number;
  approval: 'none' | 'slack';
  identity?: IdentityHints;
}

export interface Assessment {
  action: RemediationAction;
  ttlMs: number;
  approval: 'none' | 'slack';
  approvalTimeoutMs?: number;
  approvalDefault?: 'deny' | 'approve';
  identity?: IdentityContext;
  /** Earlier incidents for the target within the look-back window. */
  offences?: number;
  /** One line per policy decision, e.g. "challenge instead of block: authenticated user u-42, reputation 91". */
  explanations: string[];
}

export function describeIdentity(id: IdentityContext): string {
  const who = id.authenticated ? `authenticated user ${id.principal ?? '(unnamed)'}` : 'anonymous';
  return `${who}, reputation ${id.reputation}${id.source === 'fallback' ? ' (fallback)' : ''}`;
}

const ordinal = (n: number) =>
  `${n}${n % 10 === 1 && n !== 11 ? 'st' : n % 10 === 2 && n !== 12 ? 'nd' : n % 10 === 3 && n !== 13 ? 'rd' : 'th'}`;

export function assess(
  input: AssessInput,
  policy: Policy,
  maxTtlMs: number,
  found: { identity?: IdentityContext; offences?: number },
  random: () => number = Math.random,
): Assessment {
  const out: Assessment = {
    action: input.action,
    ttlMs: input.ttlMs,
    approval: input.approval,
    explanations: [],
  };
  const { identity, offences } = found;
  if (identity) {
    out.identity = identity;
    if (identity.note) out.explanations.push(identity.note);
    const rule = policy.actions.find(
      (r) =>
        (r.when.authenticated === undefined || r.when.authenticated === identity.authenticated) &&
        (r.when.minReputation === undefined || identity.reputation >= r.when.minReputation) &&
        (r.when.maxReputation === undefined || identity.reputation <= r.when.maxReputation),
    );
    if (rule && rule.action !== out.action) {
      out.explanations.push(`${rule.action} instead of ${out.action}: ${describeIdentity(identity)}`);
      out.action = rule.action;
    } else if (rule) {
      out.explanations.push(`${rule.action}: ${describeIdentity(identity)}`);
    }
    if (rule?.approval === 'slack' && out.approval === 'none') {
      out.approval = 'slack';
      out.explanations.push(`approval required: ${describeIdentity(identity)}`);
    }
  }
  const repeat = policy.repeatOffenders;
  if (repeat && offences !== undefined) {
    out.offences = offences;
    const nth = offences + 1;
    const ladder = repeat.ttls[Math.min(nth, repeat.ttls.length) - 1] ?? out.ttlMs;
    const within = `${ordinal(nth)} offence within ${formatDuration(repeat.lookback)}`;
    if (nth > 1 && ladder > out.ttlMs) {
      const jittered = Math.round(ladder * (1 + repeat.jitter * random()));
      const ttl = Math.min(jittered, policy.caps?.maxTtl ?? maxTtlMs, maxTtlMs);
      out.explanations.push(`${within}: TTL ${formatDuration(ttl)} instead of ${formatDuration(out.ttlMs)}`);
      out.ttlMs = ttl;
    } else {
      out.explanations.push(`${within}: TTL ${formatDuration(out.ttlMs)} as requested`);
    }
  }
  const approvals = policy.approvals;
  if (approvals && out.approval === 'none') {
    const widest = Math.min(...input.targets.map((t) => ipv4Width(t)));
    const rule = approvals.rules.find(
      (r) =>
        (r.action === undefined || r.action === out.action) &&
        (r.widerThan === undefined || widest <= r.widerThan) &&
        (r.minTargets === undefined || input.targets.length >= r.minTargets) &&
        (r.minReputation === undefined || (identity?.reputation ?? 0) >= r.minReputation),
    );
    if (rule) {
      out.approval = 'slack';
      const why = [
        rule.action ? `${out.action}` : '',
        rule.widerThan ? `a /${widest} (as wide as /${rule.widerThan} or wider)` : '',
        rule.minTargets ? `${input.targets.length} targets` : '',
        rule.minReputation ? `reputation ${identity?.reputation ?? 0}` : '',
      ].filter(Boolean);
      out.explanations.push(`approval required by policy: ${why.join(', ')}`);
    }
  }
  if (out.approval === 'slack' && approvals) {
    if (approvals.timeout !== undefined) out.approvalTimeoutMs = approvals.timeout;
    if (approvals.default) out.approvalDefault = approvals.default;
  }
  return out;
}

/** A target's width on the IPv4 scale: an IPv6 /120 counts as an IPv4 /24. */
function ipv4Width(cidr: string): number {
  const t = parseTarget(cidr);
  return t.family === 'ipv4' ? t.prefix : t.prefix - 96;
}
