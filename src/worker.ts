/**
 * Composition root: config → clients → createActivities → Worker. The only place that wires
 * real AWS and Temporal clients to the activities.
 */
import { Client, Connection } from '@temporalio/client';
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
import { incidentUrl } from './client/temporal';
import { notifierFor } from './slack/notifier';
import type { Config } from './config';
import { configuredWaf } from './waf/client';

export interface PerimeterWorker {
  worker: Worker;
  connection: NativeConnection;
  policy: PolicyStore;
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
}

export async function createPerimeterWorker(
  config: Config,
  extras: WorkerExtras = {},
): Promise<PerimeterWorker> {
  const log = extras.log ?? ((line: string) => console.error(`[worker] ${line}`));
  const policy = new PolicyStore(config, log); // throws on a broken policy: never start on one
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const client = new Client({
    connection: await Connection.connect({ address: config.temporal.address }),
    namespace: config.temporal.namespace,
  });
  const { gateway, patches } = configuredWaf(config.waf);
  const built = createActivities({
    waf: extras.wrapGateway ? extras.wrapGateway(gateway) : gateway,
    dryRunWaf: new DryRunGateway(log),
    patches,
    dryRunPatches: new DryRunPatchGateway(config.waf.setPrefix, log),
    setPrefix: config.waf.setPrefix,
    maxPatchTtlMs: config.patches.maxTtlMs,
    policy: () => policy.current(),
    countOffences: offenceCounter(client),
    approval: config.approval,
    notifier: notifierFor(config),
    incidentUrl: (workflowId) => incidentUrl(config, workflowId),
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
  return {
    worker,
    connection,
    policy,
    async close() {
      unwatch();
      // Not awaited to the end: a worker that stops must not hang on a release in flight.
      await Promise.race([enforcing, new Promise((r) => setTimeout(r, 2_000).unref())]);
      await client.connection.close();
      await connection.close();
    },
  };
}
