/**
 * Composition root: config → clients → createActivities → Worker. The only place that wires
 * real AWS and Temporal clients to the activities.
 */
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { PolicyStore } from './policy/store';
import type { Policy } from './policy/policy';
import { releaseAllowlisted } from './policy/enforce';
import { offenceCounter } from './policy/assess';
import { DryRunGateway } from './waf/dry-run-gateway';
import { DryRunPatchGateway } from './waf/patch-gateway';
import { createActivities, type Activities } from '../activities';
import { createReconcileActivities } from '../activities/reconcile';
import type { WafGateway } from './waf/gateway';
import { connectTemporal, incidentUrl } from './client/temporal';
import { notifierFor } from './slack/notifier';
import type { Config } from './config';
import { configuredWaf, createWafClient } from './waf/client';
import { PerimeterMetrics, startMetricsServer } from './metrics';
import { listRemediations, ENDING_STATES } from './client/remediation';
import { GitLedger } from './ledger/ledger';

export interface PerimeterWorker {
  worker: Worker;
  /** The worker's own metrics (also on `/metrics` when PERIMETER_METRICS_PORT is set). */
  metrics: PerimeterMetrics;
  /** Where `/metrics` is served, when it is. */
  metricsUrl: string | undefined;
  connection: NativeConnection;
  policy: PolicyStore;
  /** The IaC ledger, when one is configured. */
  ledger: GitLedger | undefined;
  /** Stops watching the policy and closes the connections; call after the worker has stopped. */
  close(): Promise<void>;
}

export interface WorkerExtras {
  /** A pre-built workflow bundle (tests build one per run instead of one per worker). */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Puts something in front of the WAF gateway: fault and delay injection in tests. */
  wrapGateway?: (gateway: WafGateway) => WafGateway;
  /** Puts something in front of the activities: fault and delay injection in tests. */
  wrapActivities?: (activities: Activities) => Activities;
  /** Where the worker's own notes go (policy reloads, dry-run writes); stderr by default. */
  log?: (line: string) => void;
  /** How often the policy file is checked for changes. */
  policyPollMs?: number;
  /** The SDK runtime's own Prometheus exporter, served behind ours on `/metrics`. */
  sdkMetricsUrl?: string;
}

export async function createPerimeterWorker(
  config: Config,
  extras: WorkerExtras = {},
): Promise<PerimeterWorker> {
  const log = extras.log ?? ((line: string) => console.error(`[worker] ${line}`));
  const policy = new PolicyStore(config, log); // throws on a broken policy: never start on one
  // A ledger that cannot be used (missing, not git, dirty, unwritable) stops the start, saying why.
  const ledger = config.ledger ? await openLedger(config, log) : undefined;
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const { client } = await connectTemporal(config);
  const metrics = new PerimeterMetrics();
  const wafClient = createWafClient(config.waf, {
    onCall: (operation) => metrics.wafCalls.inc({ operation }),
    onLockConflict: (operation) => metrics.lockConflicts.inc({ operation }),
  });
  const { gateway, patches } = configuredWaf(config.waf, wafClient);
  const built = createActivities({
    waf: extras.wrapGateway ? extras.wrapGateway(gateway) : gateway,
    dryRunWaf: new DryRunGateway(log),
    patches,
    dryRunPatches: new DryRunPatchGateway(config.waf.setPrefix, log),
    setPrefix: config.waf.setPrefix,
    maxPatchTtlMs: config.patches.maxTtlMs,
    policy: () => policy.current(),
    countOffences: offenceCounter(client),
    ...(ledger ? { ledger } : {}),
    approval: config.approval,
    notifier: notifierFor(config),
    incidentUrl: (workflowId) => incidentUrl(config, workflowId),
    onApplied: (action, seconds) => metrics.windowOfExposure.observe({ action }, seconds),
    limits: {
      maxTtlMs: config.policy.maxTtlMs,
      maxObserveMs: config.policy.maxObserveMs,
      minPrefixV4: config.policy.minPrefixV4,
      minPrefixV6: config.policy.minPrefixV6,
    },
  });
  const reconciler = createReconcileActivities({
    client,
    taskQueue: config.temporal.taskQueue,
    waf: gateway,
    dryRun: () => policy.current().dryRun,
    log,
    onRepair: (kind, action, n) => metrics.repairs.inc({ kind, action }, n),
  });
  const activities = { ...(extras.wrapActivities ? extras.wrapActivities(built) : built), ...reconciler };
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    activities,
    // After a worker dies, its cached workflows' next tasks wait this long before any other
    // worker may take them: keep it short so a TTL that fires meanwhile is released on time.
    stickyQueueScheduleToStartTimeout: '3s',
    // Incidents sleep for hours: keep a bounded number in memory, replay the rest when they wake.
    maxCachedWorkflows: config.workerCache,
    ...(extras.workflowBundle
      ? { workflowBundle: extras.workflowBundle }
      : { workflowsPath: require.resolve('../workflows') }),
  });
  // A policy change reaches running incidents: newly allowlisted targets are released early.
  let enforcing = Promise.resolve();
  const enforce = (next: Policy) => {
    enforcing = enforcing
      .then(() => releaseAllowlisted(client, config.temporal.taskQueue, next, log))
      .then(
        () => undefined,
        (err: unknown) => log(`policy enforcement failed: ${(err as Error).message}`),
      );
  };
  policy.onChange(enforce);
  // The policy this worker starts with may allowlist what an earlier one blocked.
  enforce(policy.current());
  const unwatch = policy.watch(extras.policyPollMs);
  const served =
    config.metrics.port === undefined
      ? undefined
      : await startMetricsServer({
          metrics,
          host: config.metrics.host,
          port: config.metrics.port,
          ...(extras.sdkMetricsUrl ? { sdkExporter: extras.sdkMetricsUrl } : {}),
          refresh: () => countActive(client, config.temporal.taskQueue, metrics),
        });
  return {
    worker,
    metrics,
    metricsUrl: served?.url,
    connection,
    policy,
    ledger,
    async close() {
      unwatch();
      ledger?.close();
      await served?.close();
      // Not awaited to the end: a worker that stops must not hang on a release in flight.
      await Promise.race([enforcing, new Promise((r) => setTimeout(r, 2_000).unref())]);
      await client.connection.close();
      await connection.close();
    },
  };
}

/** Open incidents holding a remediation, by action, from Temporal's visibility (on each scrape). */
async function countActive(client: Client, taskQueue: string, metrics: PerimeterMetrics): Promise<void> {
  const counts = new Map<string, number>();
  for (const r of await listRemediations(client, { taskQueue })) {
    if (r.kind !== 'ip' || r.dryRun || ENDING_STATES.includes(r.state)) continue;
    if (r.state === 'active') counts.set(r.action, (counts.get(r.action) ?? 0) + 1);
  }
  for (const action of ['block', 'challenge', 'captcha'])
    metrics.active.set({ action }, counts.get(action) ?? 0);
}

async function openLedger(config: Config, log: (line: string) => void): Promise<GitLedger> {
  const o = config.ledger!;
  const ledger = await GitLedger.open({
    path: o.path,
    remote: o.remote,
    branch: o.branch,
    setPrefix: config.waf.setPrefix,
    retry: { initialMs: 1_000, maxMs: o.retryMaxMs },
    log,
  });
  log(
    `ledger: recording changes in ${o.path} (branch ${ledger.branch}${o.remote ? `, pushed to ${o.remote}` : ''})`,
  );
  ledger.kick(); // commits a previous worker could not push yet
  return ledger;
}
