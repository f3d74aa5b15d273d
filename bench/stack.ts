/** A throw-away local stack for benchmarks: in-memory Temporal, the WAF emulator, one worker. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig, type Config } from '../src/config';
import { freePort } from '../src/dev/services';
import { startTemporalServer } from '../src/dev/temporal-server';
import { startWafEmulator } from '../src/dev/waf-emulator';
import { configuredWaf } from '../src/waf/client';
import { ensureWebAcl, initManagedWaf } from '../src/waf/provision';
import type { Wafv2Gateway } from '../src/waf/wafv2-gateway';
import { createPerimeterWorker } from '../src/worker';

export interface BenchStack {
  env: Record<string, string>;
  config: Config;
  client: Client;
  gateway: Wafv2Gateway;
  stop(): Promise<void>;
}

export async function startBenchStack(
  options: { dynamicConfig?: Record<string, string | number> } = {},
): Promise<BenchStack> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-bench-'));
  const [temporal, waf] = await Promise.all([
    freePort().then((port) =>
      startTemporalServer({
        port,
        logFile: path.join(dir, 'temporal.log'),
        dynamicConfig: options.dynamicConfig ?? {},
      }),
    ),
    freePort().then((port) => startWafEmulator({ port, logFile: path.join(dir, 'waf.log') })),
  ]);
  const env = {
    TEMPORAL_ADDRESS: temporal.address,
    AWS_ENDPOINT_URL_WAFV2: waf.endpoint,
    PERIMETER_STATE_DIR: dir,
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const config = loadConfig(env);
  const { gateway, provision } = configuredWaf(config.waf);
  await ensureWebAcl(provision);
  await initManagedWaf(provision);
  const worker = await createPerimeterWorker(config);
  const running = worker.worker.run();
  const connection = await Connection.connect({ address: temporal.address });
  return {
    env,
    config,
    client: new Client({ connection }),
    gateway,
    async stop() {
      worker.worker.shutdown();
      await running;
      await worker.close();
      await connection.close();
      await Promise.all([temporal.stop(), waf.stop()]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
