import { SharedRead } from '../../src/waf/shared-read';

/** A fetch whose calls the test answers one by one; each answer is the call's number. */
function controlled() {
  const pending: Array<{ n: number; resolve: (v: number) => void; reject: (e: Error) => void }> = [];
  let calls = 0;
  const fetch = () =>
    new Promise<number>((resolve, reject) => {
      calls++;
      pending.push({ n: calls, resolve, reject });
    });
  const answer = async () => {
    const next = pending.shift();
    if (!next) throw new Error('no call in flight');
    next.resolve(next.n);
    await new Promise((r) => setImmediate(r)); // let the queued read start
  };
  return { fetch, answer, pending, calls: () => calls };
}

it('answers a lone caller with a read of its own', async () => {
  const c = controlled();
  const shared = new SharedRead(c.fetch);
  const first = shared.get();
  await c.answer();
  await expect(first).resolves.toBe(1);
  const second = shared.get();
  await c.answer();
  await expect(second).resolves.toBe(2);
  expect(c.calls()).toBe(2);
});

it('never hands a caller a read that was already under way when it asked', async () => {
  const c = controlled();
  const shared = new SharedRead(c.fetch);
  const early = shared.get();
  const late = [shared.get(), shared.get(), shared.get()];
  expect(c.calls()).toBe(1);
  await c.answer();
  await expect(early).resolves.toBe(1);
  expect(c.calls()).toBe(2); // the three who asked meanwhile share the next read
  await c.answer();
  await expect(Promise.all(late)).resolves.toEqual([2, 2, 2]);
  expect(c.calls()).toBe(2);
});

it('passes a failed read to its callers and reads afresh for the next', async () => {
  const c = controlled();
  const shared = new SharedRead(c.fetch);
  const failing = shared.get();
  const queued = shared.get();
  c.pending.shift()?.reject(new Error('ThrottlingException'));
  await expect(failing).rejects.toThrow('ThrottlingException');
  await new Promise((r) => setImmediate(r));
  await c.answer();
  await expect(queued).resolves.toBe(2);
});

it('lets a caller stop waiting without cancelling the read for the others', async () => {
  const c = controlled();
  const shared = new SharedRead(c.fetch);
  const abort = new AbortController();
  const gaveUp = shared.get(abort.signal);
  const joined = shared.get(); // joins the read queued behind the first
  abort.abort(new Error('deadline'));
  await expect(gaveUp).rejects.toThrow('deadline');
  await c.answer();
  await c.answer();
  await expect(joined).resolves.toBe(2);
  expect(c.calls()).toBe(2);
  expect(() => shared.get(abort.signal)).toThrow('deadline');
});
