/**
 * Sliding-window counts of attack requests per key (a source address, or a header value), in
 * the log's own time so a replayed file behaves like the live traffic it recorded. Only keys
 * with recent attacks are kept: memory follows the attackers, not the traffic.
 */
import type { AttackClass } from './types';

const MAX_SAMPLES = 3;
const MAX_SOURCES = 5_000;

export interface WindowEvidence {
  requests: number;
  byClass: Partial<Record<AttackClass, number>>;
  samples: string[];
  firstAt: number;
  lastAt: number;
  /** Addresses seen under this key (itself, for a per-address key). */
  sources: Set<string>;
  /** The last principal the log named for these requests (combined's remote user). */
  user?: string;
}

interface Entry {
  at: number;
  classes: readonly AttackClass[];
  source: string;
}

class KeyWindow {
  private entries: Entry[] = [];
  private head = 0;
  private readonly lastSeen = new Map<string, number>();
  readonly evidence: WindowEvidence;

  constructor(at: number) {
    this.evidence = { requests: 0, byClass: {}, samples: [], firstAt: at, lastAt: at, sources: new Set() };
  }

  add(at: number, classes: readonly AttackClass[], source: string, sample: string, user?: string): void {
    const e = this.evidence;
    if (user) e.user = user;
    this.entries.push({ at, classes, source });
    this.lastSeen.set(source, Math.max(this.lastSeen.get(source) ?? at, at));
    e.requests++;
    for (const c of classes) e.byClass[c] = (e.byClass[c] ?? 0) + 1;
    if (e.samples.length < MAX_SAMPLES) e.samples.push(sample);
    if (e.sources.size < MAX_SOURCES || e.sources.has(source)) e.sources.add(source);
    if (at < e.firstAt) e.firstAt = at;
    if (at > e.lastAt) e.lastAt = at;
  }

  /** Drops entries older than the window; returns how many remain. */
  prune(cutoff: number): number {
    const { entries, evidence } = this;
    while (this.head < entries.length && (entries[this.head]?.at ?? Infinity) < cutoff) {
      const old = entries[this.head++] as Entry;
      evidence.requests--;
      // A source whose last request has left the window is no longer part of this key's evidence.
      if ((this.lastSeen.get(old.source) ?? Infinity) <= old.at) {
        this.lastSeen.delete(old.source);
        evidence.sources.delete(old.source);
      }
      for (const c of old.classes) evidence.byClass[c] = (evidence.byClass[c] ?? 1) - 1;
    }
    if (this.head > 1_024 && this.head * 2 > entries.length) {
      this.entries = entries.slice(this.head);
      this.head = 0;
    }
    const first = this.entries[this.head];
    if (first) evidence.firstAt = first.at;
    return this.entries.length - this.head;
  }
}

export class SlidingWindows {
  private readonly windows = new Map<string, KeyWindow>();
  private lastSweep = -Infinity;

  constructor(readonly windowMs: number) {}

  get size(): number {
    return this.windows.size;
  }

  /** Counts one attack request; returns the key's evidence within the window, this request included. */
  add(
    key: string,
    at: number,
    classes: readonly AttackClass[],
    source: string,
    sample: string,
    user?: string,
  ): WindowEvidence {
    let w = this.windows.get(key);
    if (!w) {
      w = new KeyWindow(at);
      this.windows.set(key, w);
    }
    w.add(at, classes, source, sample, user);
    w.prune(at - this.windowMs);
    this.sweep(at);
    return w.evidence;
  }

  /** Forgets a key: once it became an incident, its evidence travels there. */
  delete(key: string): void {
    this.windows.delete(key);
  }

  /** Every window length or so, drops keys with nothing left inside the window. */
  private sweep(now: number): void {
    if (now - this.lastSweep < this.windowMs) return;
    this.lastSweep = now;
    for (const [key, w] of this.windows) if (w.prune(now - this.windowMs) === 0) this.windows.delete(key);
  }
}
