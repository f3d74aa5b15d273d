/**
 * The policy file (YAML or JSON, `PERIMETER_POLICY`) and what the environment adds to it
 * (`PERIMETER_ALLOWLIST`, `PERIMETER_DRY_RUN`): the ranges that are never remediated, and the
 * global log-only switch. Validated with zod; errors name the file, line and field.
 */
import { z } from 'zod';
import type { Config } from '../config';
import { readConfigFile } from '../config-file';
import { parseTarget, TargetError } from '../domain/targets';
import type { AllowEntry } from '../domain/allowlist';

const cidr = z.string().superRefine((text, ctx) => {
  try {
    parseTarget(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof TargetError ? err.message : String(err) });
  }
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
});

export interface Policy {
  allowlist: AllowEntry[];
  dryRun: boolean;
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
  return {
    allowlist,
    dryRun: config.dryRun || file.dryRun,
    source: [path ?? 'no policy file', config.allowlist.length ? '+ PERIMETER_ALLOWLIST' : '']
      .filter(Boolean)
      .join(' '),
  };
}
