/** `perimeter` — the command line. Every command goes through src/client, like detectors do. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import { ConfigError, loadConfig } from '../config';
import { loadPolicy } from '../policy/policy';
import {
  decideRemediation,
  extendRemediation,
  IncidentEndedError,
  incidentStatus,
  listRemediations,
  releaseRemediation,
  resolveIncidentId,
  startRemediation,
  waitUntilSettled,
} from '../client/remediation';
import { DurationError, formatDuration } from '../domain/durations';
import type { ApprovalMode } from '../../workflows/definitions';
import { PolicyError, REMEDIATION_ACTIONS } from '../domain/policy';
import { TargetError } from '../domain/targets';
import { configuredWaf } from '../waf/client';
import { ensureWebAcl, initManagedWaf } from '../waf/provision';
import { wafHealth } from '../waf/status';
import { compareLedger, formatReport, readLedger, type LiveWaf } from '../ledger/verify';
import { LedgerError } from '../ledger/ledger';
import { ensureReconcileSchedule, reconcileNow, reconcileScheduleId } from '../client/reconcile';
import { duration, print } from './args';
import { cliConfig, incidentUrl, whoAmI, withTemporal } from './context';
import { NoSuchPatchError, patchCommand } from './patch';
import { patchRuleTable, remediationTable, setTable, timeline } from './format';
import type * as DevCommand from './dev';
import type * as DemoCommand from './demo';
import type * as DetectCommand from './detect';
import type * as IngestModule from '../ingest/server';
import type * as WorkerModule from '../worker';
import type * as WorkerSdk from '@temporalio/worker';
import type * as DevServices from '../dev/services';
import type * as SlackAppModule from '../slack/app';
import type * as TemporalClientModule from '../client/temporal';

/**
 * Loads a module on first use. The worker SDK behind `dev`, `demo` and `worker` takes a third
 * of a second to load, which every other command would otherwise pay. (A plain require: the
 * TypeScript loader keeps dynamic import() as native ESM, which cannot resolve these paths.)
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const lazy = <T>(id: string): T => require(id) as T;

/**
 * The Temporal SDK runtime's own metrics (workflow and activity task latencies, cache, polls),
 * exported on a loopback port that the worker's `/metrics` serves together with its own.
 */
async function installSdkMetrics(): Promise<string> {
  const { Runtime } = lazy<typeof WorkerSdk>('@temporalio/worker');
  const { freePort } = lazy<typeof DevServices>('../dev/services');
  const port = await freePort();
  Runtime.install({ telemetryOptions: { metrics: { prometheus: { bindAddress: `127.0.0.1:${port}` } } } });
  return `http://127.0.0.1:${port}/metrics`;
}

/** A refusal the user can act on: printed without a stack trace, exit code 2. */
class UsageError extends Error {}

function count(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError(`"${value}" is not a positive whole number`);
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535)
    throw new InvalidArgumentError(`"${value}" is not a TCP port`);
  return n;
}

function provisionOptions() {
  return configuredWaf(cliConfig().waf).provision;
}

export function buildProgram(): Command {
  const program = new Command('perimeter')
    .description('Self-Healing Perimeter: durable, reversible AWS WAF remediations on Temporal')
    .showHelpAfterError();

  program
    .command('dev')
    .description('run the local stack: Temporal dev server + Web UI, WAF emulator, worker (Ctrl-C stops all)')
    .option('--temporal-port <port>', 'Temporal gRPC port', port, 7233)
    .option('--ui-port <port>', 'Temporal Web UI port', port, 8233)
    .option('--waf-port <port>', 'WAF emulator port', port, 5000)
    .option(
      '--slack-port <port>',
      'Slack app port, when SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET are set',
      port,
      3000,
    )
    .option('--ingest-port <port>', 'ingest endpoint port (POST /v1/detections)', port, 8088)
    .action(async (o: DevCommand.DevOptions) => lazy<typeof DevCommand>('./dev').runDev(o));

  program
    .command('demo')
    .description('run the local stack and a short scripted attack scenario')
    .option('--keep', 'keep the stack running after the scenario (default when run in a terminal)')
    .option('--no-keep', 'stop when the scenario ends')
    .action(async (o: { keep?: boolean }) =>
      lazy<typeof DemoCommand>('./demo').runDemo({
        keep: o.keep ?? (process.stdout.isTTY && !process.env.CI),
      }),
    );

  program
    .command('slack')
    .description('run the Slack approval app alone (production): Bolt over HTTP at /slack/events')
    .option('--port <port>', 'HTTP port', port, 3000)
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .action(async (o: { port: number; host: string }) => {
      const config = loadConfig(process.env);
      const { connectTemporal } = lazy<typeof TemporalClientModule>('../client/temporal');
      const { createSlackApp } = lazy<typeof SlackAppModule>('../slack/app');
      const { client } = await connectTemporal(config);
      const slackApp = createSlackApp(config, client);
      await slackApp.start(o.port, o.host);
      console.error(
        slackApp.socketMode
          ? 'Slack app connected over Socket Mode'
          : `Slack app listening on http://${o.host}:${o.port}/slack/events`,
      );
    });

  program
    .command('worker')
    .description('run the worker alone (production)')
    .option(
      '--with-schedules',
      "create or update the reconciler's Temporal Schedule (PERIMETER_RECONCILE_EVERY)",
    )
    .action(async (o: { withSchedules?: boolean }) => {
      const config = loadConfig(process.env);
      if (o.withSchedules) {
        await withTemporal(config, async (client) => {
          const done = await ensureReconcileSchedule(client, config);
          console.error(
            `reconciler schedule ${reconcileScheduleId(config)} ${done}: every ${formatDuration(config.reconcileEveryMs)}`,
          );
        });
      }
      // Loaded on demand: the worker SDK is heavy, and the other commands should start fast.
      const { createPerimeterWorker } = lazy<typeof WorkerModule>('../worker');
      const sdkMetricsUrl = config.metrics.port === undefined ? undefined : await installSdkMetrics();
      const perimeter = await createPerimeterWorker(config, sdkMetricsUrl ? { sdkMetricsUrl } : {});
      console.error(`worker polling task queue "${config.temporal.taskQueue}" on ${config.temporal.address}`);
      if (perimeter.metricsUrl) console.error(`metrics on ${perimeter.metricsUrl}`);
      const p = perimeter.policy.current();
      console.error(
        `policy: ${p.source}, ${p.allowlist.length} allowlist entries${p.dryRun ? ', DRY-RUN (the WAF is never written)' : ''}`,
      );
      await perimeter.worker.run();
      await perimeter.close();
    });

  const waf = program.command('waf').description('the managed WAF resources');
  waf
    .command('init')
    .description('create or adopt the managed IP sets and their web ACL rules (idempotent)')
    .option('--create-web-acl', 'create the web ACL (default action Allow) when it does not exist')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean; createWebAcl?: boolean }) => {
      if (o.createWebAcl) await ensureWebAcl(provisionOptions());
      const report = await initManagedWaf(provisionOptions());
      if (o.json) return print(report);
      print(`web ACL ${report.webAcl}`);
      print(
        `  IP sets created: ${report.createdSets.join(', ') || 'none'}; adopted: ${report.adoptedSets.length}`,
      );
      print(
        `  rules added: ${report.addedRules.join(', ') || 'none'}; adopted: ${report.adoptedRules.length}`,
      );
    });
  waf
    .command('status')
    .description(
      'the managed IP sets (every shard) with their fill, the web ACL references, and the virtual-patch rules',
    )
    .option('--json', 'machine-readable output: {sets, references, patchRules, warnings}')
    .action(async (o: { json?: boolean }) => {
      const config = cliConfig();
      const waf = configuredWaf(config.waf);
      const health = await wafHealth(waf.provision, config.waf.shardFill);
      const patchRules = await waf.patches.list().catch(() => []);
      if (o.json) return print({ ...health, patchRules });
      print(setTable(health.sets));
      print(`\nweb ACL references: ${health.references.used}/${health.references.limit}`);
      print(`\n${patchRuleTable(patchRules)}`);
      for (const w of health.warnings) print(`WARNING: ${w}`);
    });

  program
    .command('block')
    .description('start (or join) the incident workflow for each target')
    .argument('<targets...>', 'IP addresses or CIDRs')
    .requiredOption('--ttl <duration>', 'how long the remediation holds, e.g. 15m, 1h, 7d', duration)
    .addOption(
      new Option('--action <action>', 'what the WAF does').choices(REMEDIATION_ACTIONS).default('block'),
    )
    .option(
      '--observe <duration>',
      'dry-run window in the count set first (default PERIMETER_DEFAULT_OBSERVE)',
      duration,
    )
    .option('--reason <text>', 'why, for the timeline', 'manual block')
    .addOption(
      new Option('--approval <mode>', 'slack: wait for a person to approve (Slack or `perimeter approve`)')
        .choices(['none', 'slack'])
        .default('none'),
    )
    .option('--json', 'wait until applied, then print {workflowId, targets, expiresAt} (one line per target)')
    .action(
      async (
        targets: string[],
        o: {
          ttl: number;
          action: string;
          observe?: number;
          reason: string;
          approval: string;
          json?: boolean;
        },
      ) => {
        const config = cliConfig();
        await withTemporal(config, async (client) => {
          const started = await startRemediation(
            { client, config },
            {
              targets,
              action: o.action,
              ttlMs: o.ttl,
              ...(o.observe !== undefined ? { observeMs: o.observe } : {}),
              reason: o.reason,
              approval: o.approval as ApprovalMode,
              detector: 'cli',
              requestedBy: whoAmI(),
              evidence: { classes: {} },
            },
          );
          for (const s of started) {
            if (!o.json) {
              if (s.joined) {
                const expiry = s.incident.expiresAt ? `, expires ${s.incident.expiresAt}` : '';
                print(
                  `${s.target}: joined the open incident ${s.workflowId} (${s.incident.action}, ${s.incident.state}${expiry})`,
                );
                print('  its action and expiry stand; use `perimeter extend` to hold it longer');
              } else {
                print(`${s.target}: ${s.action} for ${formatDuration(s.ttlMs)} → ${s.workflowId}`);
              }
              print(`  ${incidentUrl(config, s.workflowId)}`);
              continue;
            }
            const wait = (o.observe ?? config.policy.defaultObserveMs) + 60_000;
            const status = await waitUntilSettled(client, s.workflowId, wait);
            console.log(
              JSON.stringify({
                workflowId: s.workflowId,
                joined: s.joined,
                targets: status.targets,
                expiresAt: status.expiresAt ?? null,
                state: status.state,
              }),
            );
          }
        });
      },
    );

  program.addCommand(patchCommand());

  program
    .command('detect')
    .description(
      'read access logs, start an incident for each source that crosses a rule, and report virtual-patch matches in WAF logs to their patch',
    )
    .argument('<files...>', 'log files (AWS WAF JSON lines, ALB, or nginx/Apache combined)')
    .addOption(
      new Option('--format <format>', 'log format')
        .choices(['auto', 'aws-waf', 'alb', 'combined'])
        .default('auto'),
    )
    .option('--follow', 'keep reading what is appended, across rotation (like tail -F)')
    .option('--from-start', 'with --follow: read what the files already hold first')
    .option('--config <file>', 'detector config (YAML or JSON): rules, thresholds, windows, actions')
    .option('--test', 'start nothing: report what each line matched and which incidents would start')
    .option('--json', 'machine-readable output: with --test one object per line, then a summary')
    .option('--threshold <n>', 'attack requests within the window that start an incident (default 5)', count)
    .option('--window <duration>', 'sliding window (default 60s)', duration)
    .option('--ttl <duration>', 'how long remediations hold (default PERIMETER_DEFAULT_TTL)', duration)
    .option('--observe <duration>', 'dry-run window first (default PERIMETER_DEFAULT_OBSERVE)', duration)
    .addOption(
      new Option('--approval <mode>', 'slack: a person approves each incident').choices(['none', 'slack']),
    )
    .addOption(new Option('--action <action>', 'what the WAF does').choices(REMEDIATION_ACTIONS))
    .option('--no-progress', 'no progress line on stderr')
    .action(async (files: string[], o: Record<string, unknown>) => {
      const detect = lazy<typeof DetectCommand>('./detect');
      const { window, ttl, observe, ...rest } = o as { window?: number; ttl?: number; observe?: number };
      const stats = await detect.runDetect(files, {
        ...(rest as DetectCommand.DetectOptions),
        ...(window !== undefined ? { windowMs: window } : {}),
        ...(ttl !== undefined ? { ttlMs: ttl } : {}),
        ...(observe !== undefined ? { observeMs: observe } : {}),
      });
      if (stats.lines === 0 && !o.follow) process.stderr.write('perimeter: the files hold no lines\n');
    });

  program
    .command('ingest')
    .description(
      'serve POST /v1/detections for WAF alarms, scanners and SIEMs (bearer tokens: PERIMETER_INGEST_TOKENS)',
    )
    .option('--port <port>', 'listen port (default PERIMETER_INGEST_PORT)', port)
    .option('--host <host>', 'listen address (default PERIMETER_INGEST_HOST)')
    .action(async (o: { port?: number; host?: string }) => {
      const config = cliConfig();
      const { startIngestServer } = lazy<typeof IngestModule>('../ingest/server');
      const { connectTemporal } = lazy<typeof TemporalClientModule>('../client/temporal');
      const { client, connection } = await connectTemporal(config);
      const server = await startIngestServer({
        client,
        config,
        listen: { host: o.host ?? config.ingest.host, port: o.port ?? config.ingest.port },
        log: (line) => console.log(line),
      });
      console.log(
        `ingest: POST ${server.url}/v1/detections (${config.ingest.clients.length} clients); Ctrl-C stops`,
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await server.close();
      await connection.close();
    });

  program
    .command('policy')
    .description('the policy file: allowlists and the dry-run switch')
    .command('check')
    .description('validate a policy file before deploying it (exit 2 with file:line: field: reason)')
    .argument('<file>')
    .option('--json', 'print the policy as loaded')
    .action((file: string, o: { json?: boolean }) => {
      const policy = loadPolicy(cliConfig(), file);
      if (o.json) return print(policy);
      print(
        `${file}: valid — ${policy.allowlist.length} allowlist entries${policy.dryRun ? ', dry-run on' : ''}`,
      );
      const lines = [
        policy.identity
          ? `identity: ${policy.identity.source}${policy.identity.url ? ` ${policy.identity.url}` : ''}`
          : '',
        policy.actions.length ? `actions: ${policy.actions.length} context rules` : '',
        policy.repeatOffenders
          ? `repeat offenders: within ${formatDuration(policy.repeatOffenders.lookback)}, TTLs ${policy.repeatOffenders.ttls.map(formatDuration).join(' → ')}`
          : '',
        policy.approvals ? `approvals: ${policy.approvals.rules.length} rules` : '',
        policy.caps ? `caps: ${JSON.stringify(policy.caps)}` : '',
      ];
      for (const line of lines.filter(Boolean)) print(`  ${line}`);
      const now = Date.now();
      for (const e of policy.allowlist) {
        const expiry =
          e.expiresAt === undefined
            ? ''
            : e.expiresAt > now
              ? ` (until ${new Date(e.expiresAt).toISOString()})`
              : ' (EXPIRED)';
        print(`  ${e.cidr.padEnd(20)} ${e.comment}${expiry}`);
      }
    });

  program
    .command('unblock')
    .description('release a remediation now')
    .argument('<target-or-workflow-id>')
    .option('--reason <text>', 'why, for the timeline')
    .action(async (id: string, o: { reason?: string }) => {
      const config = cliConfig();
      await withTemporal(config, async (client) => {
        const r = await releaseRemediation(client, id, {
          by: whoAmI(),
          ...(o.reason ? { reason: o.reason } : {}),
        });
        print(
          r.accepted ? `${r.workflowId}: ${r.state}` : `${r.workflowId}: nothing to do, already ${r.state}`,
        );
      });
    });

  for (const [name, description] of [
    ['approve', 'approve a remediation that waits for approval'],
    ['deny', 'deny a remediation that waits for approval: nothing is applied'],
  ] as const) {
    const command = program
      .command(name)
      .description(description)
      .argument('<target-or-workflow-id>')
      .option(
        '--as <approver>',
        'the approver identity to decide as (a Slack user ID when approvers are configured)',
      );
    if (name === 'approve') command.option('--challenge', 'apply a challenge instead of the block');
    command.action(async (id: string, o: { as?: string; challenge?: boolean }) => {
      const config = cliConfig();
      await withTemporal(config, async (client) => {
        const decision = name === 'deny' ? 'deny' : o.challenge ? 'approve-challenge' : 'approve';
        const r = await decideRemediation(client, id, { decision, by: o.as ?? whoAmI() });
        print(`${r.workflowId}: ${decision === 'deny' ? 'denied' : 'approved'} by ${r.by} — now ${r.state}`);
      });
    });
  }

  program
    .command('extend')
    .description('add time to a remediation')
    .argument('<target-or-workflow-id>')
    .requiredOption('--ttl <duration>', 'time to add to the current expiry', duration)
    .action(async (id: string, o: { ttl: number }) => {
      const config = cliConfig();
      await withTemporal(config, async (client) => {
        const r = await extendRemediation(client, id, { by: whoAmI(), byMs: o.ttl });
        print(
          r.expiresAt
            ? `${r.workflowId}: now expires ${r.expiresAt}`
            : `${r.workflowId}: TTL now ${formatDuration(r.ttlMs)}, counted from when the remediation is applied`,
        );
      });
    });

  program
    .command('reconcile')
    .description('compare the managed sets with the open incidents now, and repair the drift')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const config = cliConfig();
      await withTemporal(config, async (client) => {
        const r = await reconcileNow(client, config);
        if (o.json) return print(r);
        print(`${r.openIncidents} open incidents, ${r.inSets} addresses in the managed sets`);
        print(`restored: ${r.restored.join(', ') || 'none'}`);
        print(`removed (left by ended incidents): ${r.removed.join(', ') || 'none'}`);
        if (r.skipped.length > 0) print(`skipped: ${r.skipped.join(', ')}`);
        if (r.foreign.length > 0) print(`left as found (not the perimeter's): ${r.foreign.join(', ')}`);
      });
    });

  const ledger = program.command('ledger').description('the IaC ledger (PERIMETER_LEDGER_PATH)');
  ledger
    .command('verify')
    .description(
      'compare the ledger with the live managed sets and virtual-patch rules; exit 1 on differences',
    )
    .option('--json', 'machine-readable output: {differences, ledger, waf}')
    .action(async (o: { json?: boolean }) => {
      const config = cliConfig();
      if (!config.ledger) throw new UsageError('no ledger configured: set PERIMETER_LEDGER_PATH');
      const state = await readLedger(config.ledger.path);
      const waf = configuredWaf(config.waf);
      const addresses = Object.fromEntries(
        await Promise.all(
          REMEDIATION_ACTIONS.map(async (action) => [action, await waf.gateway.holdings(action)] as const),
        ),
      ) as LiveWaf['addresses'];
      const rules = await waf.patches.list();
      const patches = rules
        .filter((r) => r.action !== undefined && r.action !== 'count')
        .map((r) => r.findingId);
      const report = compareLedger(state, { addresses, patches }, config.waf.setPrefix);
      print(o.json ? report : formatReport(report));
      if (report.differences.length > 0) process.exitCode = 1;
    });

  program
    .command('list')
    .description('active remediations')
    .option('--json', 'machine-readable output')
    .action(async (o: { json?: boolean }) => {
      const config = cliConfig();
      await withTemporal(config, async (client) => {
        const items = await listRemediations(client);
        print(o.json ? items : remediationTable(items));
      });
    });

  program
    .command('show')
    .description("an incident's timeline: detection, observation, approval, apply, release")
    .argument('<target-or-workflow-id>')
    .option('--json', 'machine-readable output')
    .action(async (id: string, o: { json?: boolean }) => {
      const config = cliConfig();
      await withTemporal(config, async (client) => {
        const status = await incidentStatus(client, id);
        const workflowId = resolveIncidentId(id);
        print(
          o.json
            ? { workflowId, ...status }
            : `${timeline(workflowId, status)}\n\n  ${incidentUrl(config, workflowId)}`,
        );
      });
    });

  return program;
}

/** Maps the errors a person can act on to one clear line; anything else keeps its stack. */
export function explain(err: unknown): { message: string; code: number } {
  if (err instanceof PolicyError) return { message: `refused: ${err.problems.join('\n         ')}`, code: 2 };
  if (
    err instanceof Error &&
    ['DetectorConfigError', 'DetectUsageError', 'ConfigFileError', 'PatchUsageError'].includes(err.name)
  )
    return { message: err.message, code: 2 };
  if (err instanceof TargetError || err instanceof DurationError || err instanceof UsageError) {
    return { message: err.message, code: 2 };
  }
  if (err instanceof ConfigError || err instanceof IncidentEndedError || err instanceof LedgerError)
    return { message: err.message, code: 2 };
  if (err instanceof WorkflowUpdateFailedError) {
    return { message: `refused: ${(err.cause as Error | undefined)?.message ?? err.message}`, code: 2 };
  }
  if (err instanceof NoSuchPatchError) return { message: err.message, code: 1 };
  if (err instanceof WorkflowNotFoundError)
    return { message: `no such incident: ${err.workflowId}`, code: 1 };
  if (err instanceof WorkflowFailedError) {
    const cause = err.cause as (Error & { type?: string; cause?: Error & { type?: string } }) | undefined;
    const root = cause?.cause ?? cause;
    return { message: `incident failed: ${root?.type ?? root?.name}: ${root?.message}`, code: 1 };
  }
  return { message: err instanceof Error ? (err.stack ?? err.message) : String(err), code: 1 };
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const { message, code } = explain(err);
    console.error(`perimeter: ${message}`);
    process.exitCode = code;
  }
}
