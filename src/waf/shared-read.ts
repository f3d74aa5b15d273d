/**
 * Reads that many callers share without any of them getting a stale answer: a caller joins the
 * read that starts next, never one already under way (which might have been answered before a
 * write the caller knows of). While a read is in flight, everyone who asks waits for the one
 * queued behind it, so a burst of checks costs about one call per round trip instead of one each.
 */
export class SharedRead<T> {
  private running: Promise<T> | undefined;
  private queued: Promise<T> | undefined;

  constructor(private readonly fetch: () => Promise<T>) {}

  /** A result read after this call was made; `signal` stops waiting for it (the read goes on for others). */
  get(signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    let result: Promise<T>;
    if (!this.running) {
      result = this.start();
    } else {
      const settled = () => undefined;
      this.queued ??= this.running.then(settled, settled).then(() => {
        this.queued = undefined;
        return this.start();
      });
      result = this.queued;
    }
    return signal ? abandonOnAbort(result, signal) : result;
  }

  private start(): Promise<T> {
    const read = this.fetch();
    this.running = read;
    const done = () => {
      if (this.running === read) this.running = undefined;
    };
    read.then(done, done);
    return read;
  }
}

function abandonOnAbort<T>(result: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    result.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}
