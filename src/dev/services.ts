/**
 * Child services of the local stack (Temporal dev server, WAF emulator). Each is started so
 * that it dies with its parent: Linux's parent-death signal is set before exec, and the parent
 * also stops its children on exit. Nothing is left running behind a test or `perimeter dev`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Project root (this file lives in src/dev/). */
export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
export const TOOLS_BIN = path.join(PROJECT_ROOT, '.tools', 'venv', 'bin');

export function toolPath(name: string): string {
  const file = path.join(TOOLS_BIN, name);
  if (!fs.existsSync(file)) {
    throw new Error(
      `${name} is not installed in ${TOOLS_BIN}; run \`npm run setup\` (or \`npm run demo\`) first`,
    );
  }
  return file;
}

// prctl(PR_SET_PDEATHSIG, SIGTERM) survives exec: the service gets SIGTERM when we die.
const EXEC_WITH_PARENT_DEATH_SIGNAL = [
  'import ctypes, os, signal, sys',
  'ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)',
  'os.execv(sys.argv[1], sys.argv[1:])',
].join('\n');

export interface Service {
  name: string;
  pid: number;
  logFile: string;
  /** Resolves with the exit code (null when signalled) once the process has ended. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/** `command args` run so that it gets SIGTERM when this process dies, however it dies. */
export function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  return [toolPath('python3'), ['-c', EXEC_WITH_PARENT_DEATH_SIGNAL, command, ...args]];
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGTERM');
});

export function startService(
  name: string,
  command: string,
  args: string[],
  options: { logFile: string; env?: NodeJS.ProcessEnv },
): Service {
  fs.mkdirSync(path.dirname(options.logFile), { recursive: true });
  const log = fs.openSync(options.logFile, 'a');
  const child = spawn(...withParentDeathSignal(command, args), {
    stdio: ['ignore', log, log],
    env: options.env ?? process.env,
  });
  fs.closeSync(log);
  if (child.pid === undefined) throw new Error(`could not start ${name}`);
  running.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    });
  });
  return {
    name,
    pid: child.pid,
    logFile: options.logFile,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/**
 * A free loopback port for a service about to start, taken from below the kernel's ephemeral
 * range: a port handed out by the kernel (`listen(0)`, or an outgoing connection) can be taken
 * again by anyone before the service binds it, and the Temporal dev server itself binds several
 * such ports for its internal services while the WAF emulator starts beside it. Ports below that
 * range go only to those who ask for them by number. Never the same port twice in one process.
 */
export async function freePort(): Promise<number> {
  const [low, high] = ephemeralRange();
  const top = low > 11_024 ? low - 1 : 65_535;
  const bottom = low > 11_024 ? Math.max(1_024, top - 10_000) : high + 1;
  for (let attempt = 0; attempt < 100 && bottom < top; attempt++) {
    const port = bottom + Math.floor(Math.random() * (top - bottom + 1));
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  return kernelPort();
}

const handedOut = new Set<number>();

function ephemeralRange(): [number, number] {
  try {
    const [low, high] = fs
      .readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low && high) return [low, high];
  } catch {
    // not Linux: the IANA dynamic range
  }
  return [49_152, 65_535];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Fails fast when something already listens on the port, with a message that says which. */
export async function assertPortFree(port: number, what: string): Promise<void> {
  if (!(await canListen(port))) throw new Error(`port ${port} (${what}) is already in use on 127.0.0.1`);
}

/** Polls `probe` until it succeeds, the service dies, or the deadline passes. */
export async function waitUntilReady(
  service: Service,
  probe: () => Promise<unknown>,
  timeoutMs: number,
): Promise<void> {
  let dead = false;
  void service.exited.then(() => (dead = true));
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (dead) break;
    try {
      await probe();
      return;
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const tail = fs.existsSync(service.logFile) ? fs.readFileSync(service.logFile, 'utf8').slice(-2_000) : '';
  await service.stop();
  throw new Error(
    `${service.name} ${dead ? 'exited' : 'did not become ready'} (last error: ${String(lastError)}); log ${service.logFile}:\n${tail}`,
  );
}
