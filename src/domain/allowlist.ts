/**
 * Allowlisted ranges: never remediated. A target that overlaps one either way is refused — a
 * block on a /16 that holds our own egress would block us as surely as one on the egress itself.
 */
import { overlaps, parseTarget, type Target } from './targets';

export interface AllowEntry {
  cidr: string;
  /** Whose range it is: shown in every refusal. */
  comment: string;
  /** Epoch ms after which the entry no longer applies. */
  expiresAt?: number;
}

const parsed = new Map<string, Target>();
function targetOf(cidr: string): Target {
  let t = parsed.get(cidr);
  if (!t) {
    t = parseTarget(cidr);
    if (parsed.size < 10_000) parsed.set(cidr, t);
  }
  return t;
}

/** The first live allowlist entry that `target` overlaps. */
export function allowlisted(
  target: Target,
  allowlist: readonly AllowEntry[],
  now = Date.now(),
): AllowEntry | undefined {
  return allowlist.find(
    (e) => (e.expiresAt === undefined || e.expiresAt > now) && overlaps(targetOf(e.cidr), target),
  );
}

export function allowlistMessage(target: Target, entry: AllowEntry): string {
  return `${target.cidr} is allowlisted (${entry.cidr}: ${entry.comment}); allowlisted ranges are never remediated`;
}
