/** The lock file that lets workers sharing one ledger working copy take turns. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LockBusy, withFileLock } from '../../src/ledger/lock';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-lock-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('runs holders one at a time and removes the file after each', async () => {
  const file = path.join(dir, 'ledger.lock');
  let inside = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 5 }, (_, i) =>
      withFileLock(file, async () => {
        inside++;
        most = Math.max(most, inside);
        await sleep(10);
        order.push(i);
        inside--;
      }),
    ),
  );
  expect(most).toBe(1);
  expect(order.sort()).toEqual([0, 1, 2, 3, 4]);
  expect(fs.existsSync(file)).toBe(false);
});

it('releases the lock when the holder throws', async () => {
  const file = path.join(dir, 'ledger.lock');
  await expect(withFileLock(file, () => Promise.reject(new Error('git failed')))).rejects.toThrow(
    'git failed',
  );
  expect(fs.existsSync(file)).toBe(false);
  await expect(withFileLock(file, () => Promise.resolve('next'))).resolves.toBe('next');
});

it('gives up after the wait, naming the holder, and leaves a live lock in place', async () => {
  const file = path.join(dir, 'ledger.lock');
  fs.writeFileSync(file, 'pid 4242 on worker-2 since 2026-11-22T10:00:00.000Z\n');
  const err = (await withFileLock(file, () => Promise.resolve(), { waitMs: 100 }).catch(
    (e: unknown) => e,
  )) as LockBusy;
  expect(err).toBeInstanceOf(LockBusy);
  expect(err.message).toContain('pid 4242 on worker-2');
  expect(fs.existsSync(file)).toBe(true);
});

it('takes over a lock file left by a process that is gone', async () => {
  const file = path.join(dir, 'ledger.lock');
  fs.writeFileSync(file, 'pid 1 on crashed\n');
  const old = new Date(Date.now() - 10_000);
  fs.utimesSync(file, old, old);
  await expect(
    withFileLock(file, () => Promise.resolve('took over'), { waitMs: 100, staleMs: 5_000 }),
  ).resolves.toBe('took over');
  expect(fs.existsSync(file)).toBe(false);
});

it('keeps a long-held lock fresh so nobody takes it over', async () => {
  const file = path.join(dir, 'ledger.lock');
  let second = false;
  await withFileLock(
    file,
    async () => {
      const other = withFileLock(
        file,
        () => {
          second = true;
          return Promise.resolve();
        },
        { waitMs: 300, staleMs: 200 },
      ).catch((e: unknown) => e);
      await sleep(250); // past staleMs: only the heartbeat keeps the file young
      expect(second).toBe(false);
      expect(await other).toBeInstanceOf(LockBusy);
    },
    { staleMs: 200 },
  );
});
