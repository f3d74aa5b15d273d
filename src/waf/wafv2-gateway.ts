/**
 * WafGateway over AWS WAFv2 IP sets. Every write is read-modify-write: GetIPSet → merge only
 * the pending changes → UpdateIPSet with that LockToken, through one IpSetWriter per set, so
 * concurrent incidents share writes. A stale token (WAFOptimisticLockException) means someone
 * else wrote in between: re-read and re-apply just the pending changes, so their addresses
 * survive. Addresses the perimeter did not ask to remove are never dropped.
 *
 * Past `shardFill` addresses a set is full: new addresses go to the next shard
 * (`<prefix>-<action>-<family>-1`, `-2`, …), created and linked into the web ACL on first use.
 * Removals free room that later additions fill, first shard first.
 */
import {
  GetIPSetCommand,
  ListIPSetsCommand,
  type IPSetSummary,
  type WAFV2Client,
} from '@aws-sdk/client-wafv2';
import type { SetAction } from '../domain/policy';
import { parseTarget, type IpFamily } from '../domain/targets';
import type { CallOptions, CheckResult, SetChangeResult, WafGateway } from './gateway';
import { IP_FAMILIES, IP_SET_CAPACITY, managedSetName, parseManagedSetName } from './names';
import {
  canonical,
  IpSetWriter,
  WafError,
  type OpResult,
  type SetRef,
  type WriterStats,
} from './ip-set-writer';
import { initManagedWaf } from './provision';
import { SharedRead } from './shared-read';
import { UNLIMITED, type WriteLimiter } from './write-limiter';

export interface Wafv2GatewayOptions {
  client: WAFV2Client;
  scope: 'REGIONAL' | 'CLOUDFRONT';
  setPrefix: string;
  /** Re-reads allowed for lock conflicts within one write before the error goes to the callers. */
  lockRetries: number;
  /** The account's write rate, shared with every other WAF writer of the process; none: unlimited. */
  limiter?: WriteLimiter;
  /** Addresses a set takes before new ones go to the next shard (at most AWS's 10,000). */
  shardFill?: number;
  /** The web ACL new shards are linked into; without it a full set refuses more addresses. */
  webAcl?: string;
}

export { WafError };

function groupByFamily(cidrs: string[]): Map<IpFamily, string[]> {
  const groups = new Map<IpFamily, string[]>();
  for (const cidr of cidrs) {
    const target = parseTarget(cidr);
    const list = groups.get(target.family) ?? [];
    if (list.includes(target.cidr)) continue;
    list.push(target.cidr);
    groups.set(target.family, list);
  }
  return groups;
}

export class Wafv2Gateway implements WafGateway {
  private readonly sets = new Map<string, SetRef>();
  private readonly writers = new Map<string, IpSetWriter>();
  /** The account's IP sets, listed afresh for whoever asks; concurrent callers share a listing. */
  private readonly listing = new SharedRead(() => this.listPages());
  /** Fresh reads of each set (by ID), shared by concurrent checks. */
  private readonly reads = new Map<string, SharedRead<string[]>>();
  /** Routing of additions, one at a time per action and family, so shards fill in order. */
  private readonly routing = new Map<string, Promise<unknown>>();
  private readonly limiter: WriteLimiter;
  private readonly fill: number;
  /** Reads, writes, lock conflicts and changes carried, over all managed sets. */
  readonly stats: WriterStats = { reads: 0, writes: 0, lockConflicts: 0, changes: 0 };

  constructor(private readonly options: Wafv2GatewayOptions) {
    this.limiter = options.limiter ?? UNLIMITED();
    this.fill = Math.min(options.shardFill ?? IP_SET_CAPACITY, IP_SET_CAPACITY);
  }

  async apply(
    action: SetAction,
    cidrs: string[],
    { signal, adds }: CallOptions = {},
  ): Promise<SetChangeResult> {
    const total = emptyResult();
    for (const [family, wanted] of groupByFamily(cidrs)) {
      const { submitted, unchanged } = await this.serialized(`${action}-${family}`, () =>
        this.route(action, family, wanted, { signal, adds }),
      );
      total.unchanged.push(...unchanged);
      addUp(total, await Promise.all(submitted), true);
    }
    return total;
  }

  async release(action: SetAction, cidrs: string[], { signal }: CallOptions = {}): Promise<SetChangeResult> {
    const total = emptyResult();
    for (const [family, wanted] of groupByFamily(cidrs)) {
      const shards = await this.shards(action, family, true);
      // Queued in the same turn order as additions: an add and a release of one address keep their order.
      const submitted = await this.serialized(`${action}-${family}`, async () =>
        shards.map((name) =>
          this.writer(name)
            .submit({ kind: 'remove', cidrs: wanted }, signal)
            .then((result) => ({ name, result })),
        ),
      );
      const results = await Promise.all(submitted);
      addUp(total, results, false);
      const gone = new Set(results.flatMap((r) => r.result.changed));
      total.unchanged.push(...wanted.filter((c) => !gone.has(c)));
    }
    total.changed = [...new Set(total.changed)];
    return total;
  }

  async check(action: SetAction, cidrs: string[], options: CallOptions = {}): Promise<CheckResult> {
    const result: CheckResult = { present: [], absent: [] };
    for (const [family, wanted] of groupByFamily(cidrs)) {
      // Read fresh, not from a writer's memory: what someone else added must show as theirs. The
      // shards known already are read while the sets are listed again (another worker may have
      // opened one); any new one is read once the listing shows it.
      const reads = new Map<string, Promise<string[]>>();
      const read = (name: string) => {
        if (reads.has(name)) return;
        const addresses = this.withSet(name, (ref) => this.read(ref, options));
        addresses.catch(() => undefined); // awaited below; not unhandled if the listing fails first
        reads.set(name, addresses);
      };
      this.knownShards(action, family).forEach(read);
      (await this.shards(action, family, true)).forEach(read);
      const have = new Set((await Promise.all(reads.values())).flat().map(canonical));
      for (const c of wanted) (have.has(c) ? result.present : result.absent).push(c);
    }
    return result;
  }

  /** Every address the action's sets hold now (all families and shards), read fresh, canonical. */
  async holdings(action: SetAction): Promise<string[]> {
    const all: string[] = [];
    for (const family of IP_FAMILIES) {
      for (const name of await this.shards(action, family, true)) {
        all.push(...(await this.withSet(name, (ref) => this.read(ref))).map(canonical));
      }
    }
    return [...new Set(all)];
  }

  /** The addresses a managed set holds now, as AWS reports them. */
  async addresses(name: string): Promise<string[]> {
    return this.withSet(name, (ref) => this.read(ref));
  }

  /**
   * Decides which shard takes each new address — the first with room, opening the next when all
   * are full — and queues the additions. Addresses already in a shard stay where they are.
   */
  private async route(action: SetAction, family: IpFamily, cidrs: string[], { signal, adds }: CallOptions) {
    const shards = await this.shards(action, family);
    // An address a shard already holds goes back to that shard (its writer confirms it with a
    // fresh read before calling it a no-op), so no address lands in two shards.
    const home = new Map<string, string>();
    for (const name of shards)
      for (const c of await this.writer(name).holding(cidrs)) if (!home.has(c)) home.set(c, name);
    const submitted: Array<Promise<{ name: string; result: OpResult }>> = [];
    const byHome = new Map<string, string[]>();
    for (const c of cidrs) {
      const name = home.get(c);
      if (name) byHome.set(name, [...(byHome.get(name) ?? []), c]);
    }
    for (const [name, take] of byHome) {
      submitted.push(
        this.writer(name)
          .submit({ kind: 'add', cidrs: take, ...(adds ? { watch: adds } : {}) }, signal)
          .then((result) => ({ name, result })),
      );
    }
    let rest = cidrs.filter((c) => !home.has(c));
    for (let shard = 0; rest.length > 0; shard++) {
      const name = shards[shard] ?? (await this.openShard(action, family, shard));
      const room = this.fill - (await this.writer(name).load());
      if (room <= 0) continue;
      const take = rest.slice(0, room);
      rest = rest.slice(room);
      submitted.push(
        this.writer(name)
          .submit({ kind: 'add', cidrs: take, ...(adds ? { watch: adds } : {}) }, signal)
          .then((result) => ({ name, result })),
      );
    }
    return { submitted, unchanged: [] as string[] };
  }

  /** The action and family's shards, by number: `[…-0, …-1, …]`. */
  private async shards(action: SetAction, family: IpFamily, fresh = false): Promise<string[]> {
    // Another worker may have opened a shard since this one last looked: whatever removes or
    // checks addresses must see every shard, or an address in a new one would be missed.
    if (fresh) await this.listAll();
    await this.resolve(managedSetName(this.options.setPrefix, action, family)); // shard 0 must exist
    return this.knownShards(action, family);
  }

  /** The shards this gateway knows of, by number, without asking AWS. */
  private knownShards(action: SetAction, family: IpFamily): string[] {
    const found: Array<{ shard: number; name: string }> = [];
    for (const name of this.sets.keys()) {
      const parsed = parseManagedSetName(this.options.setPrefix, name);
      if (parsed?.action === action && parsed.family === family) found.push({ shard: parsed.shard, name });
    }
    return found.sort((a, b) => a.shard - b.shard).map((f) => f.name);
  }

  /** Creates the next shard (or adopts one made by another worker) and links it into the web ACL. */
  private async openShard(action: SetAction, family: IpFamily, shard: number): Promise<string> {
    const name = managedSetName(this.options.setPrefix, action, family, shard);
    const { webAcl } = this.options;
    if (!webAcl) {
      throw new WafError(
        'WAFLimitsExceededException',
        `${managedSetName(this.options.setPrefix, action, family)} is full and no web ACL is configured to link a new shard into`,
      );
    }
    await initManagedWaf(
      {
        client: this.options.client,
        scope: this.options.scope,
        setPrefix: this.options.setPrefix,
        webAcl,
        lockRetries: this.options.lockRetries,
        limiter: this.limiter,
      },
      [{ action, family, shard, name }],
    );
    this.sets.delete(name);
    await this.resolve(name);
    return name;
  }

  private serialized<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const turn = (this.routing.get(key) ?? Promise.resolve()).then(fn);
    this.routing.set(
      key,
      turn.catch(() => undefined),
    );
    return turn;
  }

  private writer(name: string): IpSetWriter {
    let writer = this.writers.get(name);
    if (!writer) {
      writer = new IpSetWriter({
        client: this.options.client,
        scope: this.options.scope,
        resolve: (fresh) => {
          if (fresh) this.sets.delete(name);
          return this.resolve(name);
        },
        limiter: this.limiter,
        lockRetries: this.options.lockRetries,
        capacity: IP_SET_CAPACITY,
        stats: this.stats,
      });
      this.writers.set(name, writer);
    }
    return writer;
  }

  /**
   * Runs `fn` on the set's cached reference; when the cached ID no longer exists (the set was
   * deleted and re-created under the same name), looks the name up again and retries once —
   * only a set missing by name is reported as missing.
   */
  private async withSet<T>(name: string, fn: (ref: SetRef) => Promise<T>): Promise<T> {
    const wasCached = this.sets.has(name);
    const ref = await this.resolve(name);
    try {
      return await fn(ref);
    } catch (err) {
      if ((err as Error).name !== 'WAFNonexistentItemException' || !wasCached) throw err;
      this.sets.delete(name);
      return fn(await this.resolve(name));
    }
  }

  private read(ref: SetRef, { signal }: CallOptions = {}): Promise<string[]> {
    let shared = this.reads.get(ref.Id);
    if (!shared) {
      shared = new SharedRead(async () => {
        const out = await this.options.client.send(
          new GetIPSetCommand({ ...ref, Scope: this.options.scope }),
        );
        return out.IPSet?.Addresses ?? [];
      });
      this.reads.set(ref.Id, shared);
    }
    return shared.get(signal);
  }

  private async resolve(name: string): Promise<SetRef> {
    const cached = this.sets.get(name);
    if (cached) return cached;
    await this.listAll();
    const found = this.sets.get(name);
    if (!found) {
      throw new WafError(
        'WAFNonexistentItemException',
        `IP set ${name} (${this.options.scope}) does not exist; run \`perimeter waf init\``,
      );
    }
    return found;
  }

  /** Every IP set of the account and scope, remembered by name; concurrent callers share one listing. */
  private listAll(): Promise<void> {
    return this.listing.get();
  }

  private async listPages(): Promise<void> {
    let marker: string | undefined;
    do {
      const page = await this.options.client.send(
        new ListIPSetsCommand({ Scope: this.options.scope, Limit: 100, NextMarker: marker }),
      );
      for (const s of page.IPSets ?? []) this.remember(s);
      marker = page.IPSets?.length ? page.NextMarker : undefined;
    } while (marker);
  }

  private remember(summary: IPSetSummary): void {
    if (summary.Name && summary.Id) this.sets.set(summary.Name, { Name: summary.Name, Id: summary.Id });
  }
}

function emptyResult(): SetChangeResult {
  return { setsWritten: [], changed: [], unchanged: [], lockConflicts: 0 };
}

/** Sums per-shard results; a release's "unchanged" is worked out over all shards by the caller. */
function addUp(
  total: SetChangeResult,
  results: Array<{ name: string; result: OpResult }>,
  withUnchanged: boolean,
): void {
  for (const { name, result } of results) {
    if (result.written && !total.setsWritten.includes(name)) total.setsWritten.push(name);
    total.changed.push(...result.changed);
    if (withUnchanged) total.unchanged.push(...result.unchanged);
    total.lockConflicts += result.lockConflicts;
  }
}
