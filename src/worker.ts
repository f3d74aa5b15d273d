/**
 * Composition root: config → clients → createActivities → Worker. The only place that wires
 * real AWS and Temporal clients to the activities.
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities, type Activities } from '../activities';
import type { WafGateway } from './waf/gateway';
import { incidentUrl } from './client/temporal';
import { notifierFor } from './slack/notifier';
import type { Config } from './config';
import { configuredWaf } from './waf/client';

export interface PerimeterWorker {
  worker: Worker;
  connection: NativeConnection;
}

export interface WorkerExtras {
  /** A pre-built workflow bundle (tests build one per run instead of one per worker). */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Puts something in front of the WAF gateway: fault and delay injection in tests. */
  wrapGateway?: (gateway: WafGateway) => WafGateway;
  /** Puts something in front of the activities: fault and delay injection in tests. */
  wrapActivities?: (activities: Activities) => Activities;
}

export async function createPerimeterWorker(
  config: Config,
  extras: WorkerExtras = {},
): Promise<PerimeterWorker> {
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const { gateway } = configuredWaf(config.waf);
  const built = createActivities({
    waf: extras.wrapGateway ? extras.wrapGateway(gateway) : gateway,
    notifier: notifierFor(config),
    incidentUrl: (workflowId) => incidentUrl(config, workflowId),
    limits: {
      maxTtlMs: config.policy.maxTtlMs,
      maxObserveMs: config.policy.maxObserveMs,
      minPrefixV4: config.policy.minPrefixV4,
      minPrefixV6: config.policy.minPrefixV6,
    },
  });
  const activities = extras.wrapActivities ? extras.wrapActivities(built) : built;
  const worker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    activities,
    // After a worker dies, its cached workflows' next tasks wait this long before any other
    // worker may take them: keep it short so a TTL that fires meanwhile is released on time.
    stickyQueueScheduleToStartTimeout: '3s',
    ...(extras.workflowBundle
      ? { workflowBundle: extras.workflowBundle }
      : { workflowsPath: require.resolve('../workflows') }),
  });
  return { worker, connection };
}
