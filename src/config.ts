/**
 * The one place configuration is read and validated. Callers pass an environment map
 * (normally `process.env`); nothing else in the project reads `process.env`.
 */
import { z } from 'zod';
import { formatDuration } from './domain/durations';
import { toMilliseconds } from './domain/duration-schema';
import { parseTarget } from './domain/targets';

const duration = (fallback: string) => z.string().default(fallback).transform(toMilliseconds);

const prefixLength = (fallback: number, max: number) =>
  z.coerce.number().int().min(1).max(max).default(fallback);

const namePart = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,60}$/, 'letters, digits, "-" and "_" only, at most 60 characters');

const configObject = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Where people open incidents; used for links in output and messages. */
  PERIMETER_TEMPORAL_UI_URL: z.url().default('http://127.0.0.1:8233'),
  AWS_REGION: z.string().min(1).default('us-east-1'),
  /** The WAFv2 endpoint override (the local emulator); unset means real AWS. */
  AWS_ENDPOINT_URL_WAFV2: z.url().optional(),
  PERIMETER_TASK_QUEUE: z.string().min(1).default('perimeter'),
  PERIMETER_WAF_SCOPE: z.enum(['REGIONAL', 'CLOUDFRONT']).default('REGIONAL'),
  PERIMETER_SET_PREFIX: namePart.default('perimeter'),
  PERIMETER_WEB_ACL: namePart.default('perimeter'),
  PERIMETER_DEFAULT_TTL: duration('1h'),
  PERIMETER_MAX_TTL: duration('7d'),
  PERIMETER_DEFAULT_OBSERVE: duration('0s'),
  PERIMETER_MAX_OBSERVE: duration('1h'),
  PERIMETER_MIN_PREFIX_V4: prefixLength(16, 32),
  PERIMETER_MIN_PREFIX_V6: prefixLength(48, 128),
  /** Slack user IDs allowed to approve or deny (comma-separated). Empty: anyone who can reach Temporal. */
  PERIMETER_SLACK_APPROVERS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  /** How long an approval request waits for a person. */
  PERIMETER_APPROVAL_TIMEOUT: duration('15m'),
  /** What happens when nobody answers in time. */
  PERIMETER_APPROVAL_DEFAULT: z.enum(['deny', 'approve']).default('deny'),
  /** Bolt's conventional variables; without a bot token, approvals go through the CLI. */
  SLACK_BOT_TOKEN: z.string().min(1).optional(),
  SLACK_SIGNING_SECRET: z.string().min(1).optional(),
  SLACK_APP_TOKEN: z.string().min(1).optional(),
  /** Points the Slack Web API elsewhere (tests, proxies). */
  SLACK_API_URL: z.url().optional(),
  PERIMETER_SLACK_CHANNEL: z.string().min(1).optional(),
  /** A Slack user group whose members may also decide. */
  PERIMETER_SLACK_APPROVER_GROUP: z.string().min(1).optional(),
  /** Where the local stack keeps its SQLite history, logs and address file. */
  PERIMETER_STATE_DIR: z.string().min(1).default('.perimeter'),
  /**
   * Ingest clients and their bearer tokens: `name=token,name=token`. Each token at least 24
   * characters. Without any, `perimeter ingest` refuses to start.
   */
  PERIMETER_INGEST_TOKENS: z
    .string()
    .default('')
    .transform((v, ctx) => {
      const clients: Array<{ name: string; token: string }> = [];
      for (const pair of v
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean)) {
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const token = pair.slice(eq + 1).trim();
        if (eq < 1 || !/^[A-Za-z0-9_.-]{1,40}$/.test(name)) {
          ctx.addIssue({ code: 'custom', message: 'expected name=token pairs separated by commas' });
        } else if (token.length < 24) {
          ctx.addIssue({ code: 'custom', message: `the token for "${name}" is shorter than 24 characters` });
        } else clients.push({ name, token });
      }
      return clients;
    }),
  PERIMETER_INGEST_HOST: z.string().min(1).default('127.0.0.1'),
  PERIMETER_INGEST_PORT: z.coerce.number().int().min(1).max(65535).default(8088),
  /** Detections one client may send per minute. */
  PERIMETER_INGEST_RATE: z.coerce.number().int().min(1).max(100_000).default(120),
  /** Largest request body accepted, in bytes. */
  PERIMETER_INGEST_MAX_BODY: z.coerce.number().int().min(1_024).max(10_485_760).default(65_536),
  /** The policy file (YAML or JSON): allowlists, dry-run. */
  PERIMETER_POLICY: z.string().min(1).optional(),
  /** CIDRs never remediated, merged into the policy's allowlist (comma-separated). */
  PERIMETER_ALLOWLIST: z
    .string()
    .default('')
    .transform((v, ctx) => {
      const out: string[] = [];
      for (const item of v
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean)) {
        try {
          out.push(parseTarget(item).cidr);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      }
      return out;
    }),
  /** Global log-only mode: incidents run in full, the WAF is never written. */
  PERIMETER_DRY_RUN: z.stringbool().default(false),
  /**
   * WAF writes per second for the account and region (AWS allows about one): every write of
   * this process waits its turn; concurrent changes to one set share a write meanwhile.
   */
  PERIMETER_WAF_WRITE_RATE: z.coerce.number().positive().max(1_000).default(1),
  /**
   * Workflows a worker keeps in memory between their steps. Incidents asleep on their TTL beyond
   * this are evicted and replayed from history when they wake: memory stays bounded.
   */
  PERIMETER_WORKER_CACHE: z.coerce.number().int().min(10).max(100_000).default(250),
  /** Where the worker serves Prometheus metrics (`/metrics`); unset: no endpoint. */
  PERIMETER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  PERIMETER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** How often the reconciler compares the managed sets with the open incidents (a Temporal Schedule). */
  PERIMETER_RECONCILE_EVERY: duration('5m'),
  /** Addresses a managed IP set takes before new ones go to the next shard (AWS's limit is 10,000). */
  PERIMETER_SET_SHARD_FILL: z.coerce.number().int().min(1).max(10_000).default(9_500),
  /** Virtual-patch rules take the first free web ACL priority at or above this one. */
  PERIMETER_VPATCH_PRIORITY: z.coerce.number().int().min(0).max(1_000_000).default(100),
  /** The web ACL's WCU budget; a patch that would exceed it is refused (AWS's default is 1,500). */
  PERIMETER_WEB_ACL_CAPACITY: z.coerce.number().int().min(1).max(5_000).default(1_500),
  /** How long a virtual patch holds when the request names no TTL (a fix usually ships within days). */
  PERIMETER_VPATCH_DEFAULT_TTL: duration('7d'),
  /** The longest a virtual patch may hold before it must be asked for again. */
  PERIMETER_VPATCH_MAX_TTL: duration('30d'),
  /** The IaC ledger: a git working copy (its top directory) that records every applied and released change. */
  PERIMETER_LEDGER_PATH: z.string().min(1).optional(),
  /** Where ledger commits are pushed (a URL or a path); unset: they stay in the working copy. */
  PERIMETER_LEDGER_REMOTE: z.string().min(1).optional(),
  /** The branch the ledger commits to and pushes; default: the working copy's current branch. */
  PERIMETER_LEDGER_BRANCH: z
    .string()
    .regex(/^(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$/, 'a git branch name')
    .optional(),
  /** The longest wait between pushes to a remote that keeps failing (the wait doubles up to this). */
  PERIMETER_LEDGER_RETRY_MAX: duration('5m'),
  /** Retry budget for one WAF write's lock conflicts inside a single activity attempt. */
  PERIMETER_WAF_LOCK_RETRIES: z.coerce.number().int().min(0).max(50).default(8),
});

/** Every variable the project reads. */
export const CONFIG_VARIABLES = Object.keys(configObject.shape);

export const configSchema = configObject.superRefine((env, ctx) => {
  if (env.PERIMETER_WAF_SCOPE === 'CLOUDFRONT' && env.AWS_REGION !== 'us-east-1') {
    ctx.addIssue({
      code: 'custom',
      path: ['AWS_REGION'],
      message: 'CLOUDFRONT scope is only served from us-east-1; set AWS_REGION=us-east-1',
    });
  }
  if (env.PERIMETER_MAX_TTL <= 0) {
    ctx.addIssue({ code: 'custom', path: ['PERIMETER_MAX_TTL'], message: 'must be greater than zero' });
  }
  if (env.PERIMETER_DEFAULT_TTL <= 0 || env.PERIMETER_DEFAULT_TTL > env.PERIMETER_MAX_TTL) {
    ctx.addIssue({
      code: 'custom',
      path: ['PERIMETER_DEFAULT_TTL'],
      message: `must be greater than zero and at most PERIMETER_MAX_TTL (${formatDuration(env.PERIMETER_MAX_TTL)})`,
    });
  }
  if (
    env.SLACK_BOT_TOKEN &&
    env.PERIMETER_SLACK_APPROVERS.length === 0 &&
    !env.PERIMETER_SLACK_APPROVER_GROUP
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['PERIMETER_SLACK_APPROVERS'],
      message:
        'with Slack configured, name who may approve (PERIMETER_SLACK_APPROVERS or PERIMETER_SLACK_APPROVER_GROUP)',
    });
  }
  if (env.PERIMETER_APPROVAL_TIMEOUT <= 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['PERIMETER_APPROVAL_TIMEOUT'],
      message: 'must be greater than zero',
    });
  }
  if (env.SLACK_BOT_TOKEN && !env.PERIMETER_SLACK_CHANNEL) {
    ctx.addIssue({
      code: 'custom',
      path: ['PERIMETER_SLACK_CHANNEL'],
      message: 'required with SLACK_BOT_TOKEN',
    });
  }
  if (
    env.PERIMETER_VPATCH_DEFAULT_TTL <= 0 ||
    env.PERIMETER_VPATCH_DEFAULT_TTL > env.PERIMETER_VPATCH_MAX_TTL
  ) {
    ctx.addIssue({
      code: 'custom',
      path: ['PERIMETER_VPATCH_DEFAULT_TTL'],
      message: `must be greater than zero and at most PERIMETER_VPATCH_MAX_TTL (${formatDuration(env.PERIMETER_VPATCH_MAX_TTL)})`,
    });
  }
  for (const key of ['PERIMETER_LEDGER_REMOTE', 'PERIMETER_LEDGER_BRANCH'] as const) {
    if (env[key] && !env.PERIMETER_LEDGER_PATH) {
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message: 'needs PERIMETER_LEDGER_PATH (the working copy)',
      });
    }
  }
  if (env.PERIMETER_DEFAULT_OBSERVE > env.PERIMETER_MAX_OBSERVE) {
    ctx.addIssue({
      code: 'custom',
      path: ['PERIMETER_DEFAULT_OBSERVE'],
      message: 'must be at most PERIMETER_MAX_OBSERVE',
    });
  }
});

export interface Config {
  temporal: { address: string; namespace: string; uiUrl: string; taskQueue: string };
  waf: {
    region: string;
    endpoint: string | undefined;
    scope: 'REGIONAL' | 'CLOUDFRONT';
    setPrefix: string;
    webAcl: string;
    lockRetries: number;
    /** WAF writes per second for the account and region. */
    writesPerSecond: number;
    /** Addresses per set before the next shard is opened. */
    shardFill: number;
    /** First web ACL priority virtual patches may take. */
    patchPriority: number;
    /** The web ACL's WCU budget. */
    capacityLimit: number;
  };
  patches: { defaultTtlMs: number; maxTtlMs: number };
  reconcileEveryMs: number;
  /** The IaC ledger; undefined: changes are not recorded in git. */
  ledger:
    { path: string; remote: string | undefined; branch: string | undefined; retryMaxMs: number } | undefined;
  /** Workflows a worker keeps cached. */
  workerCache: number;
  metrics: { host: string; port: number | undefined };
  stateDir: string;
  policyFile: string | undefined;
  allowlist: string[];
  dryRun: boolean;
  ingest: {
    clients: Array<{ name: string; token: string }>;
    host: string;
    port: number;
    ratePerMinute: number;
    maxBodyBytes: number;
  };
  approval: { approvers: string[]; approverGroup?: string; timeoutMs: number; onTimeout: 'deny' | 'approve' };
  slack: {
    botToken: string | undefined;
    signingSecret: string | undefined;
    appToken: string | undefined;
    apiUrl: string | undefined;
    channel: string | undefined;
    approverGroup: string | undefined;
  };
  policy: {
    defaultTtlMs: number;
    maxTtlMs: number;
    defaultObserveMs: number;
    maxObserveMs: number;
    minPrefixV4: number;
    minPrefixV6: number;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  // Empty strings mean "unset", as they do for most shells' `FOO= cmd`.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return {
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      uiUrl: e.PERIMETER_TEMPORAL_UI_URL.replace(/\/$/, ''),
      taskQueue: e.PERIMETER_TASK_QUEUE,
    },
    waf: {
      region: e.AWS_REGION,
      endpoint: e.AWS_ENDPOINT_URL_WAFV2,
      scope: e.PERIMETER_WAF_SCOPE,
      setPrefix: e.PERIMETER_SET_PREFIX,
      webAcl: e.PERIMETER_WEB_ACL,
      lockRetries: e.PERIMETER_WAF_LOCK_RETRIES,
      writesPerSecond: e.PERIMETER_WAF_WRITE_RATE,
      shardFill: e.PERIMETER_SET_SHARD_FILL,
      patchPriority: e.PERIMETER_VPATCH_PRIORITY,
      capacityLimit: e.PERIMETER_WEB_ACL_CAPACITY,
    },
    patches: { defaultTtlMs: e.PERIMETER_VPATCH_DEFAULT_TTL, maxTtlMs: e.PERIMETER_VPATCH_MAX_TTL },
    reconcileEveryMs: e.PERIMETER_RECONCILE_EVERY,
    ledger: e.PERIMETER_LEDGER_PATH
      ? {
          path: e.PERIMETER_LEDGER_PATH,
          remote: e.PERIMETER_LEDGER_REMOTE,
          branch: e.PERIMETER_LEDGER_BRANCH,
          retryMaxMs: e.PERIMETER_LEDGER_RETRY_MAX,
        }
      : undefined,
    workerCache: e.PERIMETER_WORKER_CACHE,
    metrics: { host: e.PERIMETER_METRICS_HOST, port: e.PERIMETER_METRICS_PORT },
    stateDir: e.PERIMETER_STATE_DIR,
    policyFile: e.PERIMETER_POLICY,
    allowlist: e.PERIMETER_ALLOWLIST,
    dryRun: e.PERIMETER_DRY_RUN,
    ingest: {
      clients: e.PERIMETER_INGEST_TOKENS,
      host: e.PERIMETER_INGEST_HOST,
      port: e.PERIMETER_INGEST_PORT,
      ratePerMinute: e.PERIMETER_INGEST_RATE,
      maxBodyBytes: e.PERIMETER_INGEST_MAX_BODY,
    },
    slack: {
      botToken: e.SLACK_BOT_TOKEN,
      signingSecret: e.SLACK_SIGNING_SECRET,
      appToken: e.SLACK_APP_TOKEN,
      apiUrl: e.SLACK_API_URL,
      channel: e.PERIMETER_SLACK_CHANNEL,
      approverGroup: e.PERIMETER_SLACK_APPROVER_GROUP,
    },
    approval: {
      approvers: e.PERIMETER_SLACK_APPROVERS,
      ...(e.PERIMETER_SLACK_APPROVER_GROUP ? { approverGroup: e.PERIMETER_SLACK_APPROVER_GROUP } : {}),
      timeoutMs: e.PERIMETER_APPROVAL_TIMEOUT,
      onTimeout: e.PERIMETER_APPROVAL_DEFAULT,
    },
    policy: {
      defaultTtlMs: e.PERIMETER_DEFAULT_TTL,
      maxTtlMs: e.PERIMETER_MAX_TTL,
      defaultObserveMs: e.PERIMETER_DEFAULT_OBSERVE,
      maxObserveMs: e.PERIMETER_MAX_OBSERVE,
      minPrefixV4: e.PERIMETER_MIN_PREFIX_V4,
      minPrefixV6: e.PERIMETER_MIN_PREFIX_V6,
    },
  };
}
