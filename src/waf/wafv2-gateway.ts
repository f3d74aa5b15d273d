/**
 * WafGateway over AWS WAFv2 IP sets. Every write is read-modify-write: GetIPSet → merge only
 * the pending changes → UpdateIPSet with that LockToken, through one IpSetWriter per set, so
 * concurrent incidents share writes. A stale token (WAFOptimisticLockException) means someone
 * else wrote in between: re-read and re-apply just the pending changes, so their addresses
 * survive. Addresses the perimeter did not ask to remove are never dropped.
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
import { IP_SET_CAPACITY, managedSetName } from './names';
import { canonical, IpSetWriter, WafError, type SetOp, type SetRef, type WriterStats } from './ip-set-writer';
import { UNLIMITED, type WriteLimiter } from './write-limiter';

export interface Wafv2GatewayOptions {
  client: WAFV2Client;
  scope: 'REGIONAL' | 'CLOUDFRONT';
  setPrefix: string;
  /** Re-reads allowed for lock conflicts within one write before the error goes to the callers. */
  lockRetries: number;
  /** The account's write rate, shared with every other WAF writer of the process; none: unlimited. */
  limiter?: WriteLimiter;
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
  private readonly limiter: WriteLimiter;
  /** Reads, writes, lock conflicts and changes carried, over all managed sets. */
  readonly stats: WriterStats = { reads: 0, writes: 0, lockConflicts: 0, changes: 0 };

  constructor(private readonly options: Wafv2GatewayOptions) {
    this.limiter = options.limiter ?? UNLIMITED();
  }

  apply(action: SetAction, cidrs: string[], options: CallOptions = {}): Promise<SetChangeResult> {
    return this.changeEach(action, { kind: 'add', cidrs }, options);
  }

  release(action: SetAction, cidrs: string[], options: CallOptions = {}): Promise<SetChangeResult> {
    return this.changeEach(action, { kind: 'remove', cidrs }, options);
  }

  async check(action: SetAction, cidrs: string[], options: CallOptions = {}): Promise<CheckResult> {
    const result: CheckResult = { present: [], absent: [] };
    for (const [family, wanted] of groupByFamily(cidrs)) {
      const name = managedSetName(this.options.setPrefix, action, family);
      const addresses = await this.withSet(name, (ref) => this.read(ref, options));
      const have = new Set(addresses.map(canonical));
      for (const c of wanted) (have.has(c) ? result.present : result.absent).push(c);
    }
    return result;
  }

  /** The addresses a managed set holds now, as AWS reports them. */
  async addresses(name: string): Promise<string[]> {
    return this.withSet(name, (ref) => this.read(ref));
  }

  /**
   * One change per address family, each through its set's writer: concurrent callers share
   * writes, and this call settles when the writes holding its changes have succeeded.
   */
  private async changeEach(action: SetAction, op: SetOp, { signal }: CallOptions): Promise<SetChangeResult> {
    const total: SetChangeResult = { setsWritten: [], changed: [], unchanged: [], lockConflicts: 0 };
    for (const [family, cidrs] of groupByFamily(op.cidrs)) {
      const name = managedSetName(this.options.setPrefix, action, family);
      const result = await this.writer(name).submit({ kind: op.kind, cidrs }, signal);
      if (result.written) total.setsWritten.push(name);
      total.changed.push(...result.changed);
      total.unchanged.push(...result.unchanged);
      total.lockConflicts += result.lockConflicts;
    }
    return total;
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

  private async read(ref: SetRef, { signal }: CallOptions = {}): Promise<string[]> {
    const out = await this.options.client.send(new GetIPSetCommand({ ...ref, Scope: this.options.scope }), {
      abortSignal: signal,
    });
    return out.IPSet?.Addresses ?? [];
  }

  private async resolve(name: string): Promise<SetRef> {
    const cached = this.sets.get(name);
    if (cached) return cached;
    let marker: string | undefined;
    do {
      const page = await this.options.client.send(
        new ListIPSetsCommand({ Scope: this.options.scope, Limit: 100, NextMarker: marker }),
      );
      for (const s of page.IPSets ?? []) this.remember(s);
      marker = page.IPSets?.length ? page.NextMarker : undefined;
    } while (marker && !this.sets.has(name));
    const found = this.sets.get(name);
    if (!found) {
      throw new WafError(
        'WAFNonexistentItemException',
        `IP set ${name} (${this.options.scope}) does not exist; run \`perimeter waf init\``,
      );
    }
    return found;
  }

  private remember(summary: IPSetSummary): void {
    if (summary.Name && summary.Id) this.sets.set(summary.Name, { Name: summary.Name, Id: summary.Id });
  }
}
