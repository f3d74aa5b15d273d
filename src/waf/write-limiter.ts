/**
 * AWS WAF allows about one write per second per account and region (UpdateIPSet, UpdateWebACL,
 * … together). One token bucket per process keeps every writer under it; waiting callers are
 * served in order, so no writer starves.
 */
export class WriteLimiter {
  private tokens: number;
  private at: number;
  /**
   * A fifth under the limit: AWS counts arrivals, and on a loaded machine requests reach the
   * wire with a jitter of a few hundred milliseconds (a tenth under still drew throttles).
   */
  private readonly rate: number;
  private queue: Promise<void> = Promise.resolve();
  /** Writes allowed through, and how long callers waited in all. */
  readonly stats = { granted: 0, waitedMs: 0 };

  /**
   * @param perSecond sustained writes per second (`Infinity`: no limit)
   * @param burst writes allowed back to back after a quiet spell
   */
  constructor(
    readonly perSecond: number,
    private readonly burst = 1,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.at = now();
    this.rate = perSecond * 0.8;
  }

  /**
   * Called just before the request leaves, after work done since `take()` (merging a large set
   * takes a while): the next caller's interval counts from here, not from when this one was let in.
   */
  sending(): void {
    if (!Number.isFinite(this.perSecond)) return;
    this.at = this.now();
    this.tokens = Math.min(this.tokens, 0);
  }

  /** Resolves when the caller may write. */
  take(): Promise<void> {
    const turn = this.queue.then(() => this.wait());
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  private async wait(): Promise<void> {
    if (!Number.isFinite(this.perSecond)) {
      this.stats.granted++;
      return;
    }
    const started = this.now();
    for (;;) {
      const now = this.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.rate);
      this.at = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        this.stats.granted++;
        this.stats.waitedMs += now - started;
        return;
      }
      const ms = ((1 - this.tokens) / this.rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(1, Math.ceil(ms))));
    }
  }
}

/** No limit: for tools and tests that talk to an emulator directly. */
export const UNLIMITED = (): WriteLimiter => new WriteLimiter(Infinity);
