/**
 * The embedded local stack behind `perimeter dev` and `npm run demo`: the real Temporal dev
 * server (SQLite history under the state folder, so incidents survive a restart), the WAF
 * emulator seeded with the managed web ACL and IP sets, and the worker — all on 127.0.0.1.
 */
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig, type Config } from '../config';
import { createWafClient } from '../waf/client';
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
    const provision = {
      client: createWafClient(config.waf),
      scope: config.waf.scope,
      setPrefix: config.waf.setPrefix,
      webAcl: config.waf.webAcl,
    };
    await ensureWebAcl(provision);
    const provisioned = await initManagedWaf(provision);
    options.log('starting worker …');
    const worker = await createPerimeterWorker(config);
    const running = worker.worker.run();
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
        await worker.connection.close();
        await Promise.all([emulator.stop(), temporal.stop()]);
      },
    };
  } catch (err) {
    await waf?.stop();
    await temporal.stop();
    throw err;
  }
}
