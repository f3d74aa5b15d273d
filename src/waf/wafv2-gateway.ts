/**
 * WafGateway over AWS WAFv2 IP sets. Every write is read-modify-write: GetIPSet → merge only
 * this change → UpdateIPSet with that LockToken. A stale token (WAFOptimisticLockException)
 * means someone else wrote in between: re-read and re-apply just this change, so their
 * addresses survive. Addresses the perimeter did not ask to remove are never dropped.
 */
import {
  GetIPSetCommand,
  ListIPSetsCommand,
  UpdateIPSetCommand,
  type IPSetSummary,
  type WAFV2Client,
} from '@aws-sdk/client-wafv2';
import type { SetAction } from '../domain/policy';
import { parseTarget, type IpFamily } from '../domain/targets';
import type { CallOptions, CheckResult, SetChangeResult, WafGateway } from './gateway';
import { IP_SET_CAPACITY, managedSetName } from './names';

export interface Wafv2GatewayOptions {
  client: WAFV2Client;
  scope: 'REGIONAL' | 'CLOUDFRONT';
  setPrefix: string;
  /** Re-reads allowed for lock conflicts within one call before the error goes to the caller. */
  lockRetries: number;
}

export class WafError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

interface SetRef {
  Name: string;
  Id: string;
}

type Merge = (current: string[]) => { next: string[]; changed: string[]; unchanged: string[] };

/** Canonical form for comparing entries that AWS may store in another spelling. */
function canonical(entry: string): string {
  try {
    return parseTarget(entry).cidr;
  } catch {
    return entry;
  }
}

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

  constructor(private readonly options: Wafv2GatewayOptions) {}

  apply(action: SetAction, cidrs: string[], options: CallOptions = {}): Promise<SetChangeResult> {
    return this.changeEach(action, cidrs, options, (wanted) => (current) => {
      const have = new Set(current.map(canonical));
      const add = wanted.filter((c) => !have.has(c));
      if (current.length + add.length > IP_SET_CAPACITY) {
        throw new WafError(
          'WAFLimitsExceededException',
          `adding ${add.length} addresses would exceed the ${IP_SET_CAPACITY}-address limit of one IP set`,
        );
      }
      return { next: [...current, ...add], changed: add, unchanged: wanted.filter((c) => have.has(c)) };
    });
  }

  release(action: SetAction, cidrs: string[], options: CallOptions = {}): Promise<SetChangeResult> {
    return this.changeEach(action, cidrs, options, (wanted) => (current) => {
      const drop = new Set(wanted);
      const next = current.filter((entry) => !drop.has(canonical(entry)));
      const had = new Set(current.map(canonical));
      return {
        next,
        changed: wanted.filter((c) => had.has(c)),
        unchanged: wanted.filter((c) => !had.has(c)),
      };
    });
  }

  async check(action: SetAction, cidrs: string[], options: CallOptions = {}): Promise<CheckResult> {
    const result: CheckResult = { present: [], absent: [] };
    for (const [family, wanted] of groupByFamily(cidrs)) {
      const name = managedSetName(this.options.setPrefix, action, family);
      const { addresses } = await this.withSet(name, (ref) => this.read(ref, options));
      const have = new Set(addresses.map(canonical));
      for (const c of wanted) (have.has(c) ? result.present : result.absent).push(c);
    }
    return result;
  }

  /** The addresses a managed set holds now, as AWS reports them. */
  async addresses(name: string): Promise<string[]> {
    return (await this.withSet(name, (ref) => this.read(ref))).addresses;
  }

  private async changeEach(
    action: SetAction,
    cidrs: string[],
    options: CallOptions,
    mergeFor: (wanted: string[]) => Merge,
  ): Promise<SetChangeResult> {
    const total: SetChangeResult = { setsWritten: [], changed: [], unchanged: [], lockConflicts: 0 };
    for (const [family, wanted] of groupByFamily(cidrs)) {
      const name = managedSetName(this.options.setPrefix, action, family);
      const result = await this.withSet(name, (ref) => this.readModifyWrite(ref, mergeFor(wanted), options));
      if (result.written) total.setsWritten.push(name);
      total.changed.push(...result.changed);
      total.unchanged.push(...result.unchanged);
      total.lockConflicts += result.lockConflicts;
    }
    return total;
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

  private async readModifyWrite(ref: SetRef, merge: Merge, { signal }: CallOptions) {
    let lockConflicts = 0;
    for (;;) {
      const { addresses, lockToken, description } = await this.read(ref, { signal });
      const { next, changed, unchanged } = merge(addresses);
      if (changed.length === 0) return { written: false, changed, unchanged, lockConflicts };
      // Past the caller's deadline no write may start: it could land after the caller gave up.
      signal?.throwIfAborted();
      try {
        // UpdateIPSet replaces every mutable field: carry the description over, or it is wiped.
        await this.options.client.send(
          new UpdateIPSetCommand({
            ...ref,
            Scope: this.options.scope,
            Addresses: next,
            LockToken: lockToken,
            Description: description,
          }),
          { abortSignal: signal },
        );
        return { written: true, changed, unchanged, lockConflicts };
      } catch (err) {
        if (
          (err as Error).name !== 'WAFOptimisticLockException' ||
          lockConflicts >= this.options.lockRetries
        ) {
          throw err;
        }
        lockConflicts++;
        // Two writers that collided would collide again in lock-step; spread them out.
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * lockConflicts));
      }
    }
  }

  private async read(
    ref: SetRef,
    { signal }: CallOptions = {},
  ): Promise<{ addresses: string[]; lockToken: string; description?: string }> {
    const out = await this.options.client.send(new GetIPSetCommand({ ...ref, Scope: this.options.scope }), {
      abortSignal: signal,
    });
    if (!out.LockToken) {
      throw new WafError('WAFInternalErrorException', `GetIPSet ${ref.Name} returned no lock token`);
    }
    return {
      addresses: out.IPSet?.Addresses ?? [],
      lockToken: out.LockToken,
      ...(out.IPSet?.Description ? { description: out.IPSet.Description } : {}),
    };
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
