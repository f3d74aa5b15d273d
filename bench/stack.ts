/** A throw-away local stack for benchmarks: in-memory Temporal, the WAF emulator, one worker. */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { connectTemporal } from '../src/client/temporal';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { loadConfig, type Config } from '../src/config';
import { freePort, withParentDeathSignal } from '../src/dev/services';
import { startTemporalServer } from '../src/dev/temporal-server';
import { startWafEmulator } from '../src/dev/waf-emulator';
import { configuredWaf } from '../src/waf/client';
import { ensureWebAcl, initManagedWaf } from '../src/waf/provision';
import type { Wafv2Gateway } from '../src/waf/wafv2-gateway';
import { createPerimeterWorker } from '../src/worker';
import { startThrottleProxy, type ThrottleProxy } from './throttle-proxy';

export interface BenchStack {
  env: Record<string, string>;
  config: Config;
  client: Client;
  /** Straight to the emulator (no throttle): for reading sets while measuring. */
  gateway: Wafv2Gateway;
  /** The AWS-like write throttle the worker talks through, when asked for. */
  throttle: ThrottleProxy | undefined;
  /** The worker's process ID when it runs as its own process (for its memory). */
  workerPid: number | undefined;
  stop(): Promise<void>;
}

export interface BenchStackOptions {
  dynamicConfig?: Record<string, string | number>;
  /** Put a write throttle of this many writes per second in front of the emulator. */
  throttleWritesPerSecond?: number;
  /** Run the worker as `perimeter worker` in its own process. */
  workerProcess?: boolean;
  env?: Record<string, string>;
}

const BIN = path.resolve(__dirname, '..', 'bin', 'perimeter.js');

let runtimeInstalled = false;

export async function startBenchStack(options: BenchStackOptions = {}): Promise<BenchStack> {
  // Once per process, before its first worker: each section's stack reuses it.
  if (!runtimeInstalled) Runtime.install({ logger: new DefaultLogger('ERROR') });
  runtimeInstalled = true;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-bench-'));
  // What has been started, undone last first: by `stop()`, or at once when a later step fails (a
  // bench whose emulator cannot start must not hang on the Temporal server it already started).
  const undo: Array<() => Promise<unknown>> = [async () => fs.rmSync(dir, { recursive: true, force: true })];
  const undoAll = async () => {
    let failure: unknown;
    for (const step of undo.splice(0).reverse()) await step().catch((err: unknown) => (failure ??= err));
    if (failure !== undefined) throw failure;
  };
  try {
    const started = await Promise.allSettled([
      freePort().then((port) =>
        startTemporalServer({
          port,
          logFile: path.join(dir, 'temporal.log'),
          dynamicConfig: options.dynamicConfig ?? {},
        }),
      ),
      freePort().then((port) => startWafEmulator({ port, logFile: path.join(dir, 'waf.log') })),
    ]);
    for (const service of started) if (service.status === 'fulfilled') undo.push(() => service.value.stop());
    const [temporalStart, wafStart] = started;
    if (temporalStart.status === 'rejected') throw temporalStart.reason;
    if (wafStart.status === 'rejected') throw wafStart.reason;
    const [temporal, waf] = [temporalStart.value, wafStart.value];
    const throttle = options.throttleWritesPerSecond
      ? await startThrottleProxy(waf.endpoint, options.throttleWritesPerSecond)
      : undefined;
    if (throttle) undo.push(() => throttle.close());
    const env: Record<string, string> = {
      TEMPORAL_ADDRESS: temporal.address,
      AWS_ENDPOINT_URL_WAFV2: throttle?.endpoint ?? waf.endpoint,
      PERIMETER_STATE_DIR: dir,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...(options.throttleWritesPerSecond
        ? { PERIMETER_WAF_WRITE_RATE: String(options.throttleWritesPerSecond) }
        : {}),
      ...options.env,
    };
    const config = loadConfig(env);
    // Set-up and reads go straight to the emulator at its own pace: the AWS-like rate (the
    // throttle's, or the 1 write/s default) is for the worker, and provisioning the sets behind
    // it would cost a second per write before anything is measured.
    const direct = configuredWaf(
      loadConfig({ ...env, AWS_ENDPOINT_URL_WAFV2: waf.endpoint, PERIMETER_WAF_WRITE_RATE: '1000' }).waf,
    );
    await ensureWebAcl(direct.provision);
    await initManagedWaf(direct.provision);

    let workerPid: number | undefined;
    if (options.workerProcess) {
      // Ended with this process however it ends (a bench cut short must not leave its worker).
      const child: ChildProcess = spawn(...withParentDeathSignal(process.execPath, [BIN, 'worker']), {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      workerPid = child.pid;
      undo.push(async () => {
        if (child.exitCode !== null || child.signalCode !== null) return; // died already: nothing to wait for
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGINT');
        await exited;
      });
      await new Promise<void>((resolve, reject) => {
        let said = '';
        child.stderr?.on('data', (d: Buffer) => {
          said += d.toString();
          if (said.includes('worker polling')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`the worker exited (${code}): ${said}`)));
      });
    } else {
      const worker = await createPerimeterWorker(config, { log: () => undefined });
      const running = worker.worker.run();
      undo.push(async () => {
        worker.worker.shutdown();
        await running;
        await worker.close();
      });
    }
    const { client, connection } = await connectTemporal(config);
    undo.push(() => connection.close());
    return {
      env,
      config,
      client,
      gateway: direct.gateway,
      throttle,
      workerPid,
      stop: undoAll,
    };
  } catch (err) {
    await undoAll().catch(() => undefined); // the first failure is the one to report
    throw err;
  }
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}
