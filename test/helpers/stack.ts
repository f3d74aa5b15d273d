/**
 * Per-file access to the run's shared Temporal dev server and WAF emulator. Every test file
 * gets its own task queue, web ACL and IP-set prefix, so files run in parallel without
 * resetting each other's state.
 */
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { connectTemporal } from '../../src/client/temporal';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig, type Config } from '../../src/config';
import { incidentStatus, startRemediation, type Detection } from '../../src/client/remediation';
import { configuredWaf } from '../../src/waf/client';
import { managedSetName } from '../../src/waf/names';
import { ensureWebAcl, initManagedWaf } from '../../src/waf/provision';
import type { Wafv2Gateway } from '../../src/waf/wafv2-gateway';
import { createPerimeterWorker, type PerimeterWorker, type WorkerExtras } from '../../src/worker';
import type { SetAction } from '../../src/domain/policy';

let runtimeInstalled = false;

function required(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run the tests through jest (global-setup starts the stack)`);
  return value;
}

/** A short unique name part: lowercase letters and digits. */
export function uniqueName(label: string): string {
  return `${label}${randomUUID().slice(0, 8)}`;
}

/** The environment a perimeter process would get, pointing at this run's services. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const name = uniqueName('t');
  return {
    TEMPORAL_ADDRESS: required('PERIMETER_TEST_TEMPORAL_ADDRESS'),
    AWS_ENDPOINT_URL_WAFV2: required('PERIMETER_TEST_WAF_ENDPOINT'),
    AWS_REGION: 'us-east-1',
    PERIMETER_TASK_QUEUE: `perimeter-${name}`,
    PERIMETER_SET_PREFIX: `p${name}`,
    PERIMETER_WEB_ACL: `acl${name}`,
    PERIMETER_STATE_DIR: `${required('PERIMETER_TEST_DIR')}/${name}`,
    // Tests share one emulator and time nothing: AWS's 1 write/s would only slow them down.
    // The throttle has tests of its own.
    PERIMETER_WAF_WRITE_RATE: '500',
    ...overrides,
  };
}

export interface TestStack {
  env: Record<string, string>;
  config: Config;
  client: Client;
  gateway: Wafv2Gateway;
  /** The addresses a managed set holds, as the emulator reports them. */
  setContents(action: SetAction, family?: 'ipv4' | 'ipv6'): Promise<string[]>;
  startWorker(
    extras?: Omit<WorkerExtras, 'workflowBundle'>,
  ): Promise<PerimeterWorker & { stop(): Promise<void> }>;
  close(): Promise<void>;
}

/** Provisions this file's web ACL and IP sets in the emulator and connects a client. */
export async function openTestStack(overrides: Record<string, string> = {}): Promise<TestStack> {
  if (!runtimeInstalled) {
    // Some tests fail workflows on purpose; their WARN-level logs would only be noise here.
    Runtime.install({ logger: new DefaultLogger('ERROR') });
    runtimeInstalled = true;
  }
  const env = testEnv(overrides);
  const config = loadConfig(env);
  const { gateway, provision } = configuredWaf(config.waf);
  await ensureWebAcl(provision);
  await initManagedWaf(provision);
  const { client, connection } = await connectTemporal(config);
  const workers: Array<{ stop(): Promise<void> }> = [];
  return {
    env,
    config,
    client,
    gateway,
    setContents: (action, family = 'ipv4') =>
      gateway.addresses(managedSetName(config.waf.setPrefix, action, family)),
    async startWorker(extras = {}) {
      const w = await createPerimeterWorker(config, {
        ...extras,
        workflowBundle: { codePath: required('PERIMETER_TEST_BUNDLE') },
      });
      const running = w.worker.run();
      const handle = {
        ...w,
        async stop() {
          if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
          await running;
          await w.close();
        },
      };
      workers.push(handle);
      return handle;
    },
    async close() {
      for (const w of workers) await w.stop().catch(() => undefined);
      await connection.close();
    },
  };
}

/** Test data builder for detections. */
export function buildDetection(overrides: Partial<Detection> = {}): Detection {
  return {
    targets: ['203.0.113.42'],
    action: 'block',
    ttlMs: 3_000,
    observeMs: 0,
    reason: 'sqli probes',
    detector: 'test-detector',
    requestedBy: 'jest',
    evidence: { classes: { sqli: 5 }, samples: ['GET /?q=1%27%20OR%201=1'] },
    ...overrides,
  };
}

/** Polls `probe` until it returns a truthy value; fails with `what` after the deadline. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  timeoutMs = 15_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * Workflow IDs are per target and the Temporal namespace is shared by all test files, so each
 * file draws its addresses from its own block to never join another file's incident.
 */
export function addressPool(v4Base: string, v6Base: string) {
  let next = 1;
  return {
    v4: () => `${v4Base}.${next++}`,
    v6: () => `${v6Base}:${(next++).toString(16)}::/64`,
  };
}

/** Starts an incident that needs approval and waits until it is waiting for one. */
export async function startAwaitingApproval(
  stack: TestStack,
  ip: string,
  extra: Partial<Detection> = {},
  config: Config = stack.config,
): Promise<string> {
  const [started] = await startRemediation(
    { client: stack.client, config },
    buildDetection({ targets: [ip], ttlMs: 60_000, approval: 'slack', ...extra }),
  );
  if (!started) throw new Error('no incident started');
  await waitFor(
    'awaiting approval',
    async () => (await incidentStatus(stack.client, ip)).state === 'awaiting-approval',
  );
  return started.workflowId;
}
