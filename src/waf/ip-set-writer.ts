/**
 * One writer per managed IP set and worker process: a group commit. Changes queue while a write
 * is in flight (or waits for the account's write rate); the next write carries all of them, and
 * each caller's promise settles only when the write holding its change has succeeded. A lock
 * conflict re-reads the set and re-applies exactly the pending changes, so other writers'
 * addresses survive. After its own write the writer keeps the set as written and the
 * `NextLockToken`, and skips the read next time; someone else's write in between shows up as a
 * lock conflict.
 */
import { GetIPSetCommand, UpdateIPSetCommand, type WAFV2Client } from '@aws-sdk/client-wafv2';
import { parseTarget } from '../domain/targets';
import type { AddWatcher } from './gateway';
import type { WriteLimiter } from './write-limiter';

export class WafError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

export interface SetRef {
  Name: string;
  Id: string;
}

export interface SetOp {
  kind: 'add' | 'remove';
  /** Normalised CIDRs. */
  cidrs: string[];
  /** An add's: told what each write carrying it adds, and when one was refused (see gateway.ts). */
  watch?: AddWatcher;
}

export interface OpResult {
  /** Whether a write carried this change (false: nothing to change). */
  written: boolean;
  changed: string[];
  unchanged: string[];
  /** Lock conflicts the write holding this change went through. */
  lockConflicts: number;
}

export interface WriterStats {
  reads: number;
  writes: number;
  lockConflicts: number;
  /** Changes carried by writes: writes ≪ changes is the point. */
  changes: number;
}

interface Pending {
  op: SetOp;
  signal: AbortSignal | undefined;
  resolve: (result: OpResult) => void;
  reject: (err: unknown) => void;
}

/** What one caller's change did to the set, or why it was refused. */
type Outcome = { changed: string[]; unchanged: string[] } | { refused: number };

interface SetState {
  addresses: string[];
  /** Each address's canonical form, in the same order (computed once per read, kept per write). */
  keys: string[];
  /** The canonical forms, for membership. */
  index: Set<string>;
  lockToken: string;
  description: string | undefined;
}

function setState(
  addresses: string[],
  keys: string[],
  lockToken: string,
  description: string | undefined,
): SetState {
  return { addresses, keys, index: new Set(keys), lockToken, description };
}

export interface IpSetWriterOptions {
  client: WAFV2Client;
  scope: 'REGIONAL' | 'CLOUDFRONT';
  /** The set's name and ID; `fresh` looks the name up again (the set was re-created). */
  resolve: (fresh: boolean) => Promise<SetRef>;
  limiter: WriteLimiter;
  lockRetries: number;
  capacity: number;
  stats: WriterStats;
}

/** How many times the SDK sent the request that failed with `err` (it retries timeouts once). */
function sdkAttempts(err: unknown): number {
  return (err as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
}

/** Canonical form for comparing entries that AWS may store in another spelling. */
export function canonical(entry: string): string {
  try {
    return parseTarget(entry).cidr;
  } catch {
    return entry;
  }
}

export class IpSetWriter {
  private queue: Pending[] = [];
  private running = false;
  /** Addresses in add requests not yet settled: room the set must keep for them. */
  private pendingAdds = 0;
  /** The set as this writer last read or wrote it, with the token for the next write. */
  private cache: SetState | undefined;

  constructor(private readonly o: IpSetWriterOptions) {}

  submit(op: SetOp, signal?: AbortSignal): Promise<OpResult> {
    signal?.throwIfAborted();
    const adds = op.kind === 'add' ? op.cidrs.length : 0;
    this.pendingAdds += adds;
    return new Promise<OpResult>((resolve, reject) => {
      this.queue.push({ op, signal, resolve, reject });
      void this.pump();
    }).finally(() => (this.pendingAdds -= adds));
  }

  /** The set's addresses as this writer last wrote them, or as read now. */
  async contents(): Promise<string[]> {
    return (await this.known()).addresses;
  }

  /** Which of these canonical CIDRs the set holds, as this writer last wrote it or as read now. */
  async holding(cidrs: string[]): Promise<string[]> {
    const { index } = await this.known();
    return cidrs.filter((c) => index.has(c));
  }

  private async known(): Promise<SetState> {
    // A read is as good as a write's answer: its lock token lets the next write skip reading again.
    this.cache ??= await this.read(await this.o.resolve(false));
    return this.cache;
  }

  /** An upper bound of the set's size once the queued changes are written. */
  async load(): Promise<number> {
    return (await this.contents()).length + this.pendingAdds;
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) await this.commit(this.queue.splice(0));
    } finally {
      this.running = false;
    }
  }

  /** Writes one batch (and whatever joins it while it waits for the write rate). */
  private async commit(batch: Pending[]): Promise<void> {
    let conflicts = 0;
    let throttled = 0;
    let fresh = false;
    let fromRead = false;
    /** Per caller, what a refused write may have changed all the same (see below): the caller's. */
    const mayHaveChanged = new Map<Pending, Set<string>>();
    for (;;) {
      batch = this.dropAborted(batch);
      if (batch.length === 0) return;
      let state: SetState;
      let ref: SetRef;
      try {
        ref = await this.o.resolve(fresh);
        fromRead = this.cache === undefined;
        state = this.cache ??= await this.read(ref);
      } catch (err) {
        if (this.retryAsMissing(err, fresh)) {
          fresh = true;
          continue;
        }
        return this.fail(batch, err);
      }
      let merged = this.merge(state, batch);
      if (merged.changed) {
        await this.o.limiter.take();
        // Changes that arrived while waiting ride along; callers that gave up meanwhile do not.
        batch = this.dropAborted([...batch, ...this.queue.splice(0)]);
        merged = this.merge(state, batch);
      }
      if (!merged.changed) {
        // "Nothing to do" is only trusted from a fresh read: someone may have changed the set
        // since this writer last saw it, and a stale no-op would leave an address unblocked.
        if (!fromRead) {
          this.cache = undefined;
          continue;
        }
        return this.settle(batch, merged.outcomes, false, conflicts, mayHaveChanged);
      }
      // What this write changes for each caller (callers whose change it carries).
      const carried = batch.flatMap((p, i) => {
        const o = merged.outcomes[i];
        return o && !('refused' in o) && o.changed.length > 0 ? [{ p, cidrs: o.changed }] : [];
      });
      // Before the write leaves: should its answer be lost, each caller knows what it may have added.
      for (const { p, cidrs } of carried) p.op.watch?.sending(cidrs);
      try {
        this.o.limiter.sending();
        const out = await this.o.client.send(
          new UpdateIPSetCommand({
            ...ref,
            Scope: this.o.scope,
            Addresses: merged.next,
            LockToken: state.lockToken,
            // UpdateIPSet replaces every mutable field: carry the description over, or it is wiped.
            Description: state.description,
          }),
        );
        this.o.stats.writes++;
        this.o.stats.changes += batch.length;
        this.cache = out.NextLockToken
          ? setState(merged.next, merged.keys, out.NextLockToken, state.description)
          : undefined;
        return this.settle(batch, merged.outcomes, true, conflicts, mayHaveChanged);
      } catch (err) {
        this.cache = undefined;
        // Refused outright, this write changed nothing; any other failure may have followed its
        // landing. So may a refusal of the SDK's own second send (its first timed out or lost its
        // answer, and may have landed, spending the token): what it carried stays the callers'.
        if (['WAFOptimisticLockException', 'ThrottlingException'].includes((err as Error).name)) {
          for (const { p, cidrs } of carried) {
            if (sdkAttempts(err) <= 1) p.op.watch?.refused(cidrs);
            else mayHaveChanged.set(p, new Set([...(mayHaveChanged.get(p) ?? []), ...cidrs]));
          }
        }
        if ((err as Error).name === 'WAFOptimisticLockException' && conflicts < this.o.lockRetries) {
          conflicts++;
          this.o.stats.lockConflicts++;
          // Two writers that collided would collide again in lock-step; spread them out.
          await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * conflicts));
          continue;
        }
        if ((err as Error).name === 'ThrottlingException' && throttled < this.o.lockRetries) {
          // AWS saw writes closer together than our bucket meant (jitter under load, or another
          // writer on the account): wait for the next turn and try the same batch again.
          throttled++;
          await this.o.limiter.take();
          continue;
        }
        if (this.retryAsMissing(err, fresh)) {
          fresh = true;
          continue;
        }
        return this.fail(batch, err);
      }
    }
  }

  /** A stale cached ID (the set was re-created under the same name) is looked up again, once. */
  private retryAsMissing(err: unknown, alreadyFresh: boolean): boolean {
    if ((err as Error).name !== 'WAFNonexistentItemException' || alreadyFresh) return false;
    this.cache = undefined;
    return true;
  }

  /**
   * Applies the batch's changes in order to the set, and says what each caller's change did.
   * An add that would overflow the set is refused on its own (WAFLimitsExceededException); the
   * rest go ahead.
   */
  private merge(
    state: SetState,
    batch: Pending[],
  ): { next: string[]; keys: string[]; changed: boolean; outcomes: Outcome[] } {
    // The set's canonical forms are known from the read (or the last write): a batch costs its
    // own changes plus one copy of the list, not a parse of every address in the set.
    const next = [...state.addresses];
    const keys = [...state.keys];
    const added = new Set<string>();
    const removed = new Set<string>();
    const present = (c: string) => added.has(c) || (state.index.has(c) && !removed.has(c));
    let changed = false;
    const outcomes = batch.map((p): Outcome => {
      const { kind, cidrs } = p.op;
      if (kind === 'add') {
        const add = cidrs.filter((c) => !present(c));
        if (next.length + add.length > this.o.capacity) return { refused: add.length };
        for (const c of add) {
          added.add(c);
          next.push(c);
          keys.push(c);
        }
        changed ||= add.length > 0;
        return { changed: add, unchanged: cidrs.filter((c) => !add.includes(c)) };
      }
      const gone = cidrs.filter((c) => present(c));
      if (gone.length > 0) {
        const drop = new Set(gone);
        let kept = 0;
        for (let i = 0; i < next.length; i++) {
          if (drop.has(keys[i] ?? '')) continue;
          next[kept] = next[i] ?? '';
          keys[kept] = keys[i] ?? '';
          kept++;
        }
        next.length = kept;
        keys.length = kept;
        for (const c of gone) {
          added.delete(c);
          removed.add(c);
        }
        changed = true;
      }
      return { changed: gone, unchanged: cidrs.filter((c) => !gone.includes(c)) };
    });
    return { next, keys, changed, outcomes };
  }

  /** Settles every caller with what its own change did (outcomes are in batch order). */
  private settle(
    batch: Pending[],
    outcomes: Outcome[],
    written: boolean,
    lockConflicts: number,
    mayHaveChanged: Map<Pending, Set<string>>,
  ): void {
    batch.forEach((p, i) => {
      const maybe = mayHaveChanged.get(p);
      const found = outcomes[i];
      // Found in the set, but perhaps because of a write of this batch that was answered with a refusal.
      const o =
        maybe && found && !('refused' in found)
          ? {
              changed: [...found.changed, ...found.unchanged.filter((c) => maybe.has(c))],
              unchanged: found.unchanged.filter((c) => !maybe.has(c)),
            }
          : found;
      if (!o || 'refused' in o) {
        const n = o?.refused ?? p.op.cidrs.length;
        p.reject(
          new WafError(
            'WAFLimitsExceededException',
            `adding ${n} addresses would exceed the ${this.o.capacity}-address limit of one IP set`,
          ),
        );
        return;
      }
      p.resolve({ written: written && o.changed.length > 0, ...o, lockConflicts });
    });
  }

  private fail(batch: Pending[], err: unknown): void {
    for (const p of batch) p.reject(err);
  }

  /** Past a caller's deadline no write may carry its change: it could land after the caller gave up. */
  private dropAborted(batch: Pending[]): Pending[] {
    return batch.filter((p) => {
      if (!p.signal?.aborted) return true;
      p.reject(p.signal.reason ?? new Error('aborted'));
      return false;
    });
  }

  private async read(ref: SetRef): Promise<SetState> {
    const out = await this.o.client.send(new GetIPSetCommand({ ...ref, Scope: this.o.scope }));
    this.o.stats.reads++;
    if (!out.LockToken)
      throw new WafError('WAFInternalErrorException', `GetIPSet ${ref.Name} returned no lock token`);
    const addresses = out.IPSet?.Addresses ?? [];
    return setState(addresses, addresses.map(canonical), out.LockToken, out.IPSet?.Description || undefined);
  }
}
