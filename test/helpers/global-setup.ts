/**
 * Starts one real Temporal dev server (in memory, headless) and one WAF emulator on free
 * loopback ports for the whole run, and bundles the workflows once. Test files find them
 * through the environment variables set here; global-teardown stops them (and they die with
 * this process in any case).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { freePort } from '../../src/dev/services';
import { startTemporalServer } from '../../src/dev/temporal-server';
import { startWafEmulator } from '../../src/dev/waf-emulator';

export default async function globalSetup(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-test-'));
  const [temporalPort, wafPort] = [await freePort(), await freePort()];
  const [temporal, waf, bundle] = await Promise.all([
    startTemporalServer({
      port: temporalPort,
      logFile: path.join(dir, 'temporal.log'),
      // Low enough that a test can make an incident's history "long" (continue-as-new) in
      // a few hundred signals; far above what any other test's incident records.
      dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 300 },
    }),
    startWafEmulator({ port: wafPort, logFile: path.join(dir, 'waf-emulator.log') }),
    bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows'), logger: quietLogger }),
  ]);
  const bundlePath = path.join(dir, 'workflow-bundle.js');
  fs.writeFileSync(bundlePath, bundle.code);
  process.env.PERIMETER_TEST_TEMPORAL_ADDRESS = temporal.address;
  process.env.PERIMETER_TEST_WAF_ENDPOINT = waf.endpoint;
  process.env.PERIMETER_TEST_BUNDLE = bundlePath;
  process.env.PERIMETER_TEST_DIR = dir;
  (globalThis as Record<string, unknown>).__perimeterServices = [temporal, waf];
}

const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (m: string) => console.warn(m),
  error: (m: string) => console.error(m),
};
