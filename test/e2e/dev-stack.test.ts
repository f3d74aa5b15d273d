/**
 * `perimeter dev` as a user runs it: the whole local stack on chosen ports, found by the other
 * commands without any address set, incidents surviving a restart, and nothing left running
 * after Ctrl-C (SIGINT).
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/dev/services';
import { runCli, spawnCli } from '../helpers/cli';
import { waitFor } from '../helpers/stack';

const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-dev-'));
// Only the state folder: the commands must find the stack through it.
const env = { PERIMETER_STATE_DIR: stateDir };
let dev: (ChildProcess & { output(): string }) | undefined;

afterAll(() => {
  if (dev && dev.exitCode === null) dev.kill('SIGKILL');
  fs.rmSync(stateDir, { recursive: true, force: true });
});

function childPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((l) => Number(l.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

/** Running, as opposed to gone or a zombie waiting to be reaped. */
function running(pid: number): boolean {
  try {
    const state = execFileSync('ps', ['-o', 'stat=', '-p', String(pid)], { encoding: 'utf8' }).trim();
    return state !== '' && !state.startsWith('Z');
  } catch {
    return false; // ps exits non-zero when there is no such process
  }
}

async function startDev(ports: string[]) {
  const child = spawnCli(['dev', ...ports], env);
  await waitFor('the stack to come up', async () => child.output().includes('local stack is up'), 90_000);
  return child;
}

async function stopDev(child: ChildProcess) {
  const services = childPids(child.pid ?? 0);
  expect(services.length).toBeGreaterThanOrEqual(2); // Temporal and the WAF emulator
  child.kill('SIGINT');
  await waitFor('dev to exit', async () => child.exitCode !== null, 30_000);
  expect(child.exitCode).toBe(0);
  await waitFor('the services to be gone', async () => services.every((pid) => !running(pid)), 5_000);
}

type SetStatus = Array<{ name: string; addresses: number }>;

it('runs the stack on the given ports, keeps incidents across a restart, and stops everything on Ctrl-C', async () => {
  const ports = [
    ...['--temporal-port', String(await freePort())],
    ...['--ui-port', String(await freePort())],
    ...['--waf-port', String(await freePort())],
  ];
  dev = await startDev(ports);
  expect(dev.output()).toContain('perimeter-block-ipv4-0');
  const uiUrl = /Temporal Web UI\s+(http:\/\/127\.0\.0\.1:\d+)/.exec(dev.output())?.[1] ?? 'missing';
  expect((await fetch(uiUrl)).ok).toBe(true);

  const blocked = await runCli(['block', '192.0.2.55', '--ttl', '10m', '--json'], env);
  expect(blocked.code).toBe(0);
  expect(JSON.parse(blocked.stdout)).toMatchObject({ targets: ['192.0.2.55/32'], state: 'active' });
  await stopDev(dev);

  dev = await startDev(ports);
  const list = await runCli(['list', '--json'], env);
  expect(JSON.parse(list.stdout)).toEqual([
    expect.objectContaining({ targets: ['192.0.2.55/32'], state: 'active', action: 'block' }),
  ]);
  const status = (JSON.parse((await runCli(['waf', 'status', '--json'], env)).stdout) as { sets: SetStatus })
    .sets;
  expect(status.find((s) => s.name === 'perimeter-block-ipv4-0')?.addresses).toBe(1);

  expect((await runCli(['unblock', '192.0.2.55'], env)).code).toBe(0);
  const after = (JSON.parse((await runCli(['waf', 'status', '--json'], env)).stdout) as { sets: SetStatus })
    .sets;
  expect(after.find((s) => s.name === 'perimeter-block-ipv4-0')?.addresses).toBe(0);
  await stopDev(dev);
  expect(fs.existsSync(path.join(stateDir, 'dev.json'))).toBe(false);
}, 150_000); // two full stack start-ups and shutdowns: about 40 s alone, longer beside another suite
