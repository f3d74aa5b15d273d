/**
 * Time from a detection to the address being in the WAF emulator's block set, measured from
 * outside (polling GetIPSet every 5 ms), two ways in one run:
 *   - `perimeter block` as a user runs it (process start included);
 *   - startRemediation() from a detector that already holds a Temporal client.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { releaseRemediation, startRemediation } from '../src/client/remediation';
import { percentile, type BenchStack } from './stack';

const BIN = path.resolve(__dirname, '..', 'bin', 'perimeter.js');

async function untilPresent(stack: BenchStack, cidr: string, startedAt: number): Promise<number> {
  for (;;) {
    if ((await stack.gateway.check('block', [cidr])).present.length > 0) return performance.now() - startedAt;
    if (performance.now() - startedAt > 30_000) throw new Error(`${cidr} never appeared`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function runCli(stack: BenchStack, args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...stack.env },
      stdio: 'ignore',
    });
    child.on('exit', resolve);
  });
}

export interface LatencyResult {
  runs: number;
  cliMs: number[];
  clientMs: number[];
}

export async function measureBlockLatency(stack: BenchStack, runs: number): Promise<LatencyResult> {
  const result: LatencyResult = { runs, cliMs: [], clientMs: [] };
  const deps = { client: stack.client, config: stack.config };
  await runCli(stack, ['--help']); // warm the TypeScript transform cache, as any second run would be
  for (let i = 0; i < runs; i++) {
    const cliIp = `198.51.100.${i + 1}`;
    const t0 = performance.now();
    const exit = runCli(stack, ['block', cliIp, '--ttl', '10m', '--reason', 'bench']);
    result.cliMs.push(await untilPresent(stack, `${cliIp}/32`, t0));
    if ((await exit) !== 0) throw new Error('perimeter block failed');

    const ip = `203.0.113.${i + 1}`;
    const t1 = performance.now();
    await startRemediation(deps, {
      targets: [ip],
      ttlMs: 600_000,
      observeMs: 0,
      reason: 'bench',
      detector: 'bench',
      requestedBy: 'bench',
    });
    result.clientMs.push(await untilPresent(stack, `${ip}/32`, t1));
  }
  for (let i = 0; i < runs; i++) {
    await releaseRemediation(stack.client, `198.51.100.${i + 1}`, { by: 'bench' });
    await releaseRemediation(stack.client, `203.0.113.${i + 1}`, { by: 'bench' });
  }
  return result;
}

export function summarise(name: string, values: number[]): string {
  const f = (v: number) => `${v.toFixed(0)} ms`;
  return `${name.padEnd(34)} p50 ${f(percentile(values, 50)).padStart(8)}   p90 ${f(percentile(values, 90)).padStart(8)}   max ${f(Math.max(...values)).padStart(8)}`;
}
