/**
 * The policy file (YAML or JSON, `PERIMETER_POLICY`) and what the environment adds to it
 * (`PERIMETER_ALLOWLIST`, `PERIMETER_DRY_RUN`): the ranges that are never remediated, and the
 * global log-only switch. Validated with zod; errors name the file, line and field.
 */
import { dirname, resolve as resolvePath } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config';
import { readConfigFile } from '../config-file';
import { parseTarget, TargetError } from '../domain/targets';
import type { AllowEntry } from '../domain/allowlist';
import { durationText } from '../domain/duration-schema';
import { REMEDIATION_ACTIONS } from '../domain/policy';

const cidr = z.string().superRefine((text, ctx) => {
  try {
    parseTarget(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof TargetError ? err.message : String(err) });
  }
});

const reputation = z.number().int().min(0).max(100);
const context = z.strictObject({
  principal: z.string().max(200).optional(),
  authenticated: z.boolean(),
  reputation,
});

const identityEntries = z.array(
  context.extend({
    match: z.strictObject({
      user: z.string().optional(),
      session: z.string().optional(),
      apiKey: z.string().optional(),
      ip: z.string().optional(),
    }),
  }),
);

const identitySchema = z
  .strictObject({
    /** `static`: a list in this file; `http`: POST the hints to `url`, expect a context back. */
    source: z.enum(['static', 'http']),
    /** For `static`: who is who, matched by user, session, API key or address. */
    entries: identityEntries.default([]),
    /** For `static`: more entries from their own YAML or JSON file (relative to the policy file). */
    file: z.string().min(1).optional(),
    url: z.url().optional(),
    timeout: durationText.default(2_000),
    /** Used when the service cannot be reached; stated in the incident. */
    fallback: context.default({ authenticated: false, reputation: 0 }),
  })
  .refine((i) => i.source !== 'http' || i.url !== undefined, {
    message: 'source http needs a url',
    path: ['url'],
  });

const actionRuleSchema = z.strictObject({
  when: z.strictObject({
    authenticated: z.boolean().optional(),
    minReputation: reputation.optional(),
    maxReputation: reputation.optional(),
  }),
  action: z.enum(REMEDIATION_ACTIONS),
  /** `slack`: this kind of target always needs a person. */
  approval: z.enum(['none', 'slack']).optional(),
});

const repeatSchema = z.strictObject({
  /** How far back earlier incidents for the same target count. */
  lookback: durationText,
  /** TTL for the 1st, 2nd, 3rd… offence within the look-back; the last repeats. Capped by the maximum TTL. */
  ttls: z.array(durationText).min(1),
  /** Spread TTLs by up to this fraction, so a returning botnet does not come back all at once. */
  jitter: z.number().min(0).max(0.5).default(0),
});

const approvalsSchema = z.strictObject({
  rules: z.array(
    z.strictObject({
      action: z.enum(REMEDIATION_ACTIONS).optional(),
      /** The target's prefix is this wide or wider (IPv4 prefix length; IPv6 uses +96). */
      widerThan: z.number().int().min(1).max(32).optional(),
      minTargets: z.number().int().min(1).optional(),
      minReputation: reputation.optional(),
    }),
  ),
  timeout: durationText.optional(),
  default: z.enum(['deny', 'approve']).optional(),
});

const capsSchema = z.strictObject({
  maxTtl: durationText.optional(),
  /** Widest prefixes that may be remediated (tighter than PERIMETER_MIN_PREFIX_V4/V6 only). */
  widestV4: z.number().int().min(1).max(32).optional(),
  widestV6: z.number().int().min(1).max(128).optional(),
  /** Narrower targets are widened to these prefixes, e.g. 64 to block an IPv6 host's whole /64. */
  narrowestV4: z.number().int().min(1).max(32).optional(),
  narrowestV6: z.number().int().min(1).max(128).optional(),
  maxCampaignTargets: z.number().int().min(1).optional(),
});

export const policyFileSchema = z.strictObject({
  /** Own egress, health checkers, partners, monitoring: never remediated. */
  allowlist: z
    .array(
      z.strictObject({
        cidr,
        comment: z.string().min(1, 'say whose range this is').max(200),
        /** The entry lapses at this time (ISO 8601). */
        expires: z.iso.datetime({ offset: true }).optional(),
      }),
    )
    .default([]),
  /** Log-only: every incident runs in full, but the WAF is never written. */
  dryRun: z.boolean().default(false),
  identity: identitySchema.optional(),
  /** Context → action, first match wins; no match keeps the detection's action. */
  actions: z.array(actionRuleSchema).default([]),
  repeatOffenders: repeatSchema.optional(),
  /** Which detections need a person, first match wins. */
  approvals: approvalsSchema.optional(),
  caps: capsSchema.optional(),
});

export type PolicyFile = z.output<typeof policyFileSchema>;

export interface Policy {
  allowlist: AllowEntry[];
  dryRun: boolean;
  identity: PolicyFile['identity'];
  actions: PolicyFile['actions'];
  repeatOffenders: PolicyFile['repeatOffenders'];
  approvals: PolicyFile['approvals'];
  caps: PolicyFile['caps'];
  /** Where it came from, for logs: the file, and whether the environment added to it. */
  source: string;
}

/** The policy in `path` (or none), merged with the environment's additions. */
export function loadPolicy(config: Config, path = config.policyFile): Policy {
  const file = path ? readConfigFile(path, policyFileSchema, 'policy') : policyFileSchema.parse({});
  const allowlist: AllowEntry[] = file.allowlist.map((e) => ({
    cidr: parseTarget(e.cidr).cidr,
    comment: e.comment,
    ...(e.expires ? { expiresAt: Date.parse(e.expires) } : {}),
  }));
  for (const c of config.allowlist) allowlist.push({ cidr: c, comment: 'PERIMETER_ALLOWLIST' });
  let identity = file.identity;
  if (identity?.file && path) {
    const entries = readConfigFile(
      resolvePath(dirname(path), identity.file),
      identityEntries,
      'identity file',
    );
    identity = { ...identity, entries: [...identity.entries, ...entries] };
  }
  return {
    allowlist,
    dryRun: config.dryRun || file.dryRun,
    identity,
    actions: file.actions,
    repeatOffenders: file.repeatOffenders,
    approvals: file.approvals,
    caps: file.caps,
    source: [path ?? 'no policy file', config.allowlist.length ? '+ PERIMETER_ALLOWLIST' : '']
      .filter(Boolean)
      .join(' '),
  };
}

/** The configured limits, tightened by the policy's caps (a policy can narrow, never widen them). */
export function withCaps<
  L extends {
    maxTtlMs: number;
    minPrefixV4: number;
    minPrefixV6: number;
    narrowestV4?: number;
    narrowestV6?: number;
  },
>(limits: L, policy: Pick<Policy, 'caps'>): L {
  const caps = policy.caps;
  if (!caps) return limits;
  return {
    ...limits,
    maxTtlMs: Math.min(limits.maxTtlMs, caps.maxTtl ?? Infinity),
    minPrefixV4: Math.max(limits.minPrefixV4, caps.widestV4 ?? 0),
    minPrefixV6: Math.max(limits.minPrefixV6, caps.widestV6 ?? 0),
    // Never widened past the widest allowed prefix.
    ...(caps.narrowestV4 !== undefined
      ? { narrowestV4: Math.max(caps.narrowestV4, limits.minPrefixV4, caps.widestV4 ?? 0) }
      : {}),
    ...(caps.narrowestV6 !== undefined
      ? { narrowestV6: Math.max(caps.narrowestV6, limits.minPrefixV6, caps.widestV6 ?? 0) }
      : {}),
  };
}
