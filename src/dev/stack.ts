/**
 * The embedded local stack behind `perimeter dev` and `npm run demo`: the real Temporal dev
 * server (SQLite history under the state folder, so incidents survive a restart), the WAF
 * emulator seeded with the managed web ACL and IP sets, and the worker — all on 127.0.0.1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type Config } from '../config';
import { connectTemporal } from '../client/temporal';
import { incidentStatus, listRemediations } from '../client/remediation';
import { ensureReconcileSchedule, reconcileScheduleId } from '../client/reconcile';
import { formatDuration } from '../domain/durations';
import { isSetAction } from '../domain/policy';
import { configuredWaf } from '../waf/client';
import { ensureWebAcl, initManagedWaf, type InitReport } from '../waf/provision';
import { createPerimeterWorker, type PerimeterWorker } from '../worker';
import { devAddressesFile, type DevAddresses } from './addresses';
import { assertPortFree } from './services';
import { startTemporalServer, type TemporalServer } from './temporal-server';
import { startWafEmulator, type WafEmulator } from './waf-emulator';

export interface DevStackOptions {
  temporalPort: number;
  uiPort: number;
  wafPort: number;
  /** The caller's environment; addresses of the local services override it. */
  env: Record<string, string | undefined>;
  log: (line: string) => void;
}

export interface DevStack {
  config: Config;
  temporal: TemporalServer;
  waf: WafEmulator;
  worker: PerimeterWorker;
  provisioned: InitReport;
  stop(): Promise<void>;
}

/**
 * The emulator keeps its sets in memory while Temporal keeps incidents on disk: after a restart
 * of the local stack, put every open incident's targets back where the incident says they are.
 */
async function restoreEmulatorState(config: Config): Promise<number> {
  const { gateway, patches } = configuredWaf(config.waf);
  const { client, connection } = await connectTemporal(config);
  try {
    let restored = 0;
    for (const incident of await listRemediations(client)) {
      if (incident.kind === 'vpatch') {
        const { patch } = await incidentStatus(client, incident.workflowId);
        if (!patch?.spec || !patch.ruleAction) continue;
        await patches.apply(patch.spec, patch.ruleAction);
        restored++;
        continue;
      }
      const set =
        incident.state === 'observing' ? 'count' : incident.state === 'active' ? incident.action : undefined;
      if (!set || !isSetAction(set) || incident.targets.length === 0) continue;
      await gateway.apply(set, incident.targets);
      restored++;
    }
    return restored;
  } finally {
    await connection.close();
  }
}

/** The reconciler runs on a Temporal Schedule in the local stack too. */
async function scheduleReconciler(config: Config, log: (line: string) => void): Promise<void> {
  const { client, connection } = await connectTemporal(config);
  try {
    await ensureReconcileSchedule(client, config);
    log(
      `reconciler scheduled every ${formatDuration(config.reconcileEveryMs)} (${reconcileScheduleId(config)})`,
    );
  } finally {
    await connection.close();
  }
}

export async function startDevStack(options: DevStackOptions): Promise<DevStack> {
  const base = loadConfig(options.env);
  const stateDir = path.resolve(base.stateDir);
  const logs = path.join(stateDir, 'logs');
  await assertPortFree(options.temporalPort, 'Temporal gRPC; use --temporal-port');
  await assertPortFree(options.uiPort, 'Temporal Web UI; use --ui-port');
  await assertPortFree(options.wafPort, 'WAF emulator; use --waf-port');

  options.log(`starting Temporal dev server on 127.0.0.1:${options.temporalPort} …`);
  const temporal = await startTemporalServer({
    port: options.temporalPort,
    uiPort: options.uiPort,
    dbFile: path.join(stateDir, 'temporal.db'),
    logFile: path.join(logs, 'temporal.log'),
    namespace: base.temporal.namespace,
  });
  let waf: WafEmulator | undefined;
  try {
    options.log(`starting WAF emulator on 127.0.0.1:${options.wafPort} …`);
    waf = await startWafEmulator({ port: options.wafPort, logFile: path.join(logs, 'waf-emulator.log') });
    const addresses: Omit<DevAddresses, 'pid'> = {
      TEMPORAL_ADDRESS: temporal.address,
      AWS_ENDPOINT_URL_WAFV2: waf.endpoint,
      PERIMETER_TEMPORAL_UI_URL: temporal.uiUrl ?? '',
    };
    const config = loadConfig({ ...options.env, ...addresses });
    const { provision } = configuredWaf(config.waf);
    await ensureWebAcl(provision);
    const provisioned = await initManagedWaf(provision);
    const restored = await restoreEmulatorState(config);
    if (restored > 0) options.log(`re-applied ${restored} open remediation(s) to the fresh WAF emulator`);
    options.log('starting worker …');
    const worker = await createPerimeterWorker(config);
    const running = worker.worker.run();
    await scheduleReconciler(config, options.log);
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(devAddressesFile(stateDir), JSON.stringify({ pid: process.pid, ...addresses }, null, 2));
    const emulator = waf;
    return {
      config,
      temporal,
      waf: emulator,
      worker,
      provisioned,
      async stop() {
        fs.rmSync(devAddressesFile(stateDir), { force: true });
        if (worker.worker.getState() === 'RUNNING') worker.worker.shutdown();
        await running.catch(() => undefined);
        await worker.close();
        await Promise.all([emulator.stop(), temporal.stop()]);
      },
    };
  } catch (err) {
    await waf?.stop();
    await temporal.stop();
    throw err;
  }
}
