/**
 * The detector config file (YAML or JSON): which attack classes count, how many requests in
 * which sliding window make an incident, and what that incident does. Validated with zod; an
 * error names the file, the line and the field.
 */
import { z } from 'zod';
import { durationText } from '../domain/duration-schema';
import { ConfigFileError, fieldPath, readConfigFile } from '../config-file';
import { REMEDIATION_ACTIONS, type RemediationAction } from '../domain/policy';
import { ATTACK_CLASSES, type AttackClass } from './types';

const duration = durationText;
const positiveDuration = duration.refine((ms) => ms > 0, 'must be longer than 0s');
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,59}$/, 'letters, digits, ".", "-" and "_" only');
const threshold = z.number().int().min(1).max(1_000_000);
const action = z.enum(REMEDIATION_ACTIONS);
const approval = z.enum(['none', 'slack']);
/** `ip`, or `header:<name>`: count per header value (an API key, a User-Agent) and act on its sources. */
const key = z
  .string()
  .regex(/^(ip|header:[A-Za-z0-9-]{1,64})$/, 'expected "ip" or "header:<header-name>"')
  .transform((k) => k.toLowerCase());

const ruleSchema = z.strictObject({
  name,
  /** Attack classes this rule counts; all of them when left out. */
  classes: z.array(z.enum(ATTACK_CLASSES)).min(1).optional(),
  key: key.default('ip'),
  threshold: threshold.optional(),
  window: positiveDuration.optional(),
  ttl: positiveDuration.optional(),
  observe: duration.optional(),
  action: action.optional(),
  approval: approval.optional(),
});

const schema = z.strictObject({
  /** The detector's name: shown in incidents, and part of campaign IDs. */
  detector: name.default('log-detector'),
  defaults: z
    .strictObject({
      threshold: threshold.default(5),
      window: positiveDuration.default(60_000),
      ttl: positiveDuration.optional(),
      observe: duration.optional(),
      action: action.default('block'),
      approval: approval.default('none'),
    })
    .prefault({}),
  rules: z
    .array(ruleSchema)
    .min(1)
    .default([{ name: 'attacks', key: 'ip' }]),
  /**
   * Pass the log's user name (combined `%u`) to the policy's identity lookup. Off by default:
   * nginx fills it from any Basic Authorization header, verified or not.
   */
  trustLoggedUser: z.boolean().default(false),
  campaign: z
    .strictObject({
      /** This many sources crossing one rule together become one campaign incident. */
      minSources: z.number().int().min(2).default(10),
      /** How long crossings wait to be grouped once a rule is busy (the first one never waits). */
      hold: duration.default(2_000),
      /** Larger bursts are split into several campaigns. */
      maxTargets: z.number().int().min(2).max(5_000).default(1_000),
    })
    .prefault({}),
});

export interface DetectorRule {
  name: string;
  classes: readonly AttackClass[];
  /** `ip` or `header:<lower-case name>`. */
  key: string;
  threshold: number;
  windowMs: number;
  /** Undefined: the worker's default TTL / observation window. */
  ttlMs?: number;
  observeMs?: number;
  action: RemediationAction;
  approval: 'none' | 'slack';
}

export interface DetectorConfig {
  detector: string;
  trustLoggedUser: boolean;
  rules: DetectorRule[];
  campaign: { minSources: number; holdMs: number; maxTargets: number };
}

/** What command-line flags set: they win over the file, for every rule. */
export interface DetectorOverrides {
  threshold?: number;
  windowMs?: number;
  ttlMs?: number;
  observeMs?: number;
  action?: RemediationAction;
  approval?: 'none' | 'slack';
}

export class DetectorConfigError extends Error {
  override name = 'DetectorConfigError';
}

export function parseDetectorConfig(raw: unknown, overrides: DetectorOverrides = {}, where = 'config') {
  const parsed = schema.safeParse(raw ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${where}: ${fieldPath(i.path)}: ${i.message}`);
    throw new DetectorConfigError(problems.join('\n'));
  }
  return resolve(parsed.data, overrides);
}

function resolve(file: z.infer<typeof schema>, o: DetectorOverrides): DetectorConfig {
  const d = file.defaults;
  const rules = file.rules.map((r): DetectorRule => {
    const ttlMs = o.ttlMs ?? r.ttl ?? d.ttl;
    const observeMs = o.observeMs ?? r.observe ?? d.observe;
    return {
      name: r.name,
      classes: r.classes ?? ATTACK_CLASSES,
      key: r.key,
      threshold: o.threshold ?? r.threshold ?? d.threshold,
      windowMs: o.windowMs ?? r.window ?? d.window,
      ...(ttlMs !== undefined ? { ttlMs } : {}),
      ...(observeMs !== undefined ? { observeMs } : {}),
      action: o.action ?? r.action ?? d.action,
      approval: o.approval ?? r.approval ?? d.approval,
    };
  });
  const names = new Set<string>();
  for (const r of rules) {
    if (names.has(r.name)) throw new DetectorConfigError(`rule name "${r.name}" is used twice`);
    names.add(r.name);
  }
  const { minSources, hold, maxTargets } = file.campaign;
  return {
    detector: file.detector,
    trustLoggedUser: file.trustLoggedUser,
    rules,
    campaign: { minSources, holdMs: hold, maxTargets },
  };
}

/** Reads a YAML or JSON detector config; errors carry the file name and line. */
export function loadDetectorConfig(path: string | undefined, overrides: DetectorOverrides = {}) {
  if (!path) return parseDetectorConfig({}, overrides);
  try {
    return resolve(readConfigFile(path, schema, 'detector config'), overrides);
  } catch (err) {
    if (err instanceof ConfigFileError) throw new DetectorConfigError(err.message);
    throw err;
  }
}
