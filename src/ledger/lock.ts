/**
 * One writer at a time per working copy, across processes: workers that share a working copy
 * (one volume mounted into every replica) take turns through a lock file in its git directory.
 * Only local git commands run under it, so it is held for milliseconds; a lock file nobody has
 * touched for `staleMs` is left over from a crash and is taken over.
 */
import fs from 'node:fs/promises';
import os from 'node:os';

export interface FileLockOptions {
  /** Give up waiting after this long (the caller's attempt fails and is retried). */
  waitMs?: number;
  /** A lock file older than this, never refreshed, belongs to a process that is gone. */
  staleMs?: number;
}

export class LockBusy extends Error {
  constructor(
    readonly file: string,
    readonly holder: string,
  ) {
    super(`the ledger working copy is locked (${file}: ${holder || 'no holder named'})`);
    this.name = 'LockBusy';
  }
}

export async function withFileLock<T>(
  file: string,
  fn: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  const waitMs = options.waitMs ?? 30_000;
  const staleMs = options.staleMs ?? 120_000;
  const deadline = Date.now() + waitMs;
  let delay = 5;
  for (;;) {
    try {
      const handle = await fs.open(file, 'wx');
      try {
        await handle.writeFile(`pid ${process.pid} on ${os.hostname()} since ${new Date().toISOString()}\n`);
      } finally {
        await handle.close();
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const stat = await fs.stat(file).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > staleMs) {
      await fs.rm(file, { force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      const holder = await fs.readFile(file, 'utf8').catch(() => '');
      throw new LockBusy(file, holder.trim());
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
  // Held longer than expected (a slow disk): keep it fresh so nobody takes it over.
  const heartbeat = setInterval(() => {
    const now = new Date();
    void fs.utimes(file, now, now).catch(() => undefined);
  }, staleMs / 4);
  heartbeat.unref();
  try {
    return await fn();
  } finally {
    clearInterval(heartbeat);
    await fs.rm(file, { force: true });
  }
}
