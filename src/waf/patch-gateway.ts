/**
 * Virtual-patch rules in the managed web ACL, with the verbs every backend has: apply (add the
 * rule, or change its action), release (take it out), check. Every web ACL write is
 * read-modify-write with the LockToken; a stale token means someone else wrote in between, so
 * the ACL is re-read and only this rule's change re-applied — rules the perimeter does not own
 * are carried over untouched and their priorities never reused.
 */
import {
  CheckCapacityCommand,
  CreateRegexPatternSetCommand,
  DeleteRegexPatternSetCommand,
  GetRegexPatternSetCommand,
  GetWebACLCommand,
  ListRegexPatternSetsCommand,
  UpdateRegexPatternSetCommand,
  UpdateWebACLCommand,
  type Rule,
  type WAFV2Client,
  type WebACL,
} from '@aws-sdk/client-wafv2';
import { parsePatchRuleName, patchRuleName, type PatchSpec } from '../domain/virtual-patch';
import type { CallOptions } from './gateway';
import {
  buildPatchRule,
  estimateCapacity,
  needsPatternSet,
  ruleActionName,
  type PatchRuleAction,
} from './patch-rules';
import { findWebAcl, webAclUpdate } from './provision';
import { WafError } from './ip-set-writer';
import type { WriteLimiter } from './write-limiter';

export interface PatchRuleState {
  findingId: string;
  rule: string;
  action: PatchRuleAction | undefined;
  priority: number;
}

export interface PatchChangeResult {
  rule: string;
  /** False when the web ACL already was as wanted. */
  written: boolean;
  priority?: number;
  lockConflicts: number;
  /** The web ACL's capacity after the change, when it was checked (adding a rule). */
  capacity?: { wcu: number; limit: number; source: 'CheckCapacity' | 'estimate' };
}

export interface PatchGateway {
  /** Puts the patch's rule in the web ACL with this action; already so is a no-op. */
  apply(spec: PatchSpec, action: PatchRuleAction, options?: CallOptions): Promise<PatchChangeResult>;
  /** Takes the patch's rule (and its pattern set) out; already gone is a no-op. */
  release(findingId: string, options?: CallOptions): Promise<PatchChangeResult>;
  /** The patch's rule as the web ACL holds it, if it does. */
  check(findingId: string, options?: CallOptions): Promise<PatchRuleState | undefined>;
}

export interface Wafv2PatchGatewayOptions {
  client: WAFV2Client;
  scope: 'REGIONAL' | 'CLOUDFRONT';
  setPrefix: string;
  webAcl: string;
  lockRetries: number;
  /** Patch rules take the first free priority at or above this one. */
  basePriority: number;
  /** The web ACL's WCU budget (AWS's default is 1,500). */
  capacityLimit: number;
  /** The account's write rate, shared with the IP-set writers; none: unlimited. */
  limiter?: WriteLimiter;
}

interface AclRef {
  Name: string;
  Id: string;
}

/** JSON with keys in one order, for telling whether a stored rule is already what we want. */
function stable(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, x]) => x !== undefined && x !== null)
          .sort(([a], [b]) => a.localeCompare(b)),
      );
    }
    return v;
  });
}

/** Errors that mean the endpoint does not offer an operation (an emulator), not that the request is wrong. */
function notOffered(err: unknown): boolean {
  const e = err as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  // An answer that is not the API's JSON at all (an emulator's error page) also means "not here".
  if (e.name === 'SyntaxError' && status !== undefined && status >= 400) return true;
  return (
    status === 404 ||
    status === 501 ||
    /not ?implemented|unknown ?operation|InvalidAction/i.test(`${e.name ?? ''} ${e.message ?? ''}`)
  );
}

export class Wafv2PatchGateway implements PatchGateway {
  private acl: AclRef | undefined;

  constructor(private readonly o: Wafv2PatchGatewayOptions) {}

  async apply(
    spec: PatchSpec,
    action: PatchRuleAction,
    { signal }: CallOptions = {},
  ): Promise<PatchChangeResult> {
    const name = patchRuleName(this.o.setPrefix, spec.findingId);
    const regexSetArn = needsPatternSet(spec)
      ? await this.ensurePatternSet(name, spec.patterns ?? [], signal)
      : undefined;
    let capacity: PatchChangeResult['capacity'];
    const result = await this.modifyAcl(signal, async (webAcl, rules) => {
      const index = rules.findIndex((r) => r.Name === name);
      const existing = rules[index];
      const priority = existing?.Priority ?? this.freePriority(rules);
      const wanted = buildPatchRule(this.o.setPrefix, spec, action, priority, regexSetArn);
      if (existing && stable(existing) === stable(wanted)) return { rules: undefined, priority };
      const next = existing ? rules.map((r, i) => (i === index ? wanted : r)) : [...rules, wanted];
      if (!existing) capacity = await this.checkCapacity(webAcl, next, wanted, signal);
      return { rules: next, priority };
    });
    return { rule: name, ...result, ...(capacity ? { capacity } : {}) };
  }

  async release(findingId: string, { signal }: CallOptions = {}): Promise<PatchChangeResult> {
    const name = patchRuleName(this.o.setPrefix, findingId);
    const result = await this.modifyAcl(signal, async (_webAcl, rules) => {
      const kept = rules.filter((r) => r.Name !== name);
      return { rules: kept.length === rules.length ? undefined : kept };
    });
    if (result.written && (await this.check(findingId, { signal }))) {
      // An update that dropped the last rule of an ACL is ignored by some emulators; never report a
      // rule as removed while the WAF still enforces it.
      throw new WafError(
        'WAFRuleNotRemoved',
        `rule ${name} is still in web ACL ${this.o.webAcl} after removing it`,
      );
    }
    await this.deletePatternSet(name, signal);
    return { rule: name, ...result };
  }

  async check(findingId: string, { signal }: CallOptions = {}): Promise<PatchRuleState | undefined> {
    const name = patchRuleName(this.o.setPrefix, findingId);
    return (await this.list({ signal })).find((r) => r.rule === name);
  }

  /** Every patch rule the web ACL holds (rules of other owners are not listed). */
  async list({ signal }: CallOptions = {}): Promise<PatchRuleState[]> {
    const { webAcl } = await this.readAcl(signal);
    const out: PatchRuleState[] = [];
    for (const rule of webAcl.Rules ?? []) {
      const findingId = rule.Name ? parsePatchRuleName(this.o.setPrefix, rule.Name) : undefined;
      if (findingId && rule.Name) {
        out.push({ findingId, rule: rule.Name, action: ruleActionName(rule), priority: rule.Priority ?? 0 });
      }
    }
    return out;
  }

  /** The first priority at or above the base that no rule (ours or anyone's) holds. */
  private freePriority(rules: Rule[]): number {
    const taken = new Set(rules.map((r) => r.Priority));
    let p = this.o.basePriority;
    while (taken.has(p)) p++;
    return p;
  }

  /**
   * AWS's own count when the endpoint offers CheckCapacity; otherwise the ACL's reported
   * capacity plus this rule's estimate. Over the budget: refused, nothing written.
   */
  private async checkCapacity(
    webAcl: WebACL,
    rules: Rule[],
    added: Rule,
    signal: AbortSignal | undefined,
  ): Promise<NonNullable<PatchChangeResult['capacity']>> {
    const limit = this.o.capacityLimit;
    let result: NonNullable<PatchChangeResult['capacity']>;
    try {
      const out = await this.o.client.send(new CheckCapacityCommand({ Scope: this.o.scope, Rules: rules }), {
        abortSignal: signal,
      });
      result = { wcu: out.Capacity ?? 0, limit, source: 'CheckCapacity' };
    } catch (err) {
      if (!notOffered(err)) throw err;
      result = { wcu: (webAcl.Capacity ?? 0) + estimateCapacity(added.Statement), limit, source: 'estimate' };
    }
    if (result.wcu > limit) {
      throw new WafError(
        'WAFLimitsExceededException',
        `adding ${added.Name} would take web ACL ${this.o.webAcl} to ${result.wcu} WCU (${result.source}); its budget is ${limit} (PERIMETER_WEB_ACL_CAPACITY)`,
      );
    }
    return result;
  }

  /**
   * Read-modify-write of the web ACL's rules. `change` sees the current rules and returns the
   * next list (undefined: nothing to do); a lock conflict re-reads and asks again.
   */
  private async modifyAcl(
    signal: AbortSignal | undefined,
    change: (webAcl: WebACL, rules: Rule[]) => Promise<{ rules: Rule[] | undefined; priority?: number }>,
  ): Promise<{ written: boolean; priority?: number; lockConflicts: number }> {
    let lockConflicts = 0;
    for (;;) {
      const { webAcl, lockToken, ref } = await this.readAcl(signal);
      const { rules, priority } = await change(webAcl, [...(webAcl.Rules ?? [])]);
      const at = priority === undefined ? {} : { priority };
      if (!rules) return { written: false, lockConflicts, ...at };
      // Past the caller's deadline no write may start: it could land after the caller gave up.
      await this.o.limiter?.take();
      signal?.throwIfAborted();
      try {
        await this.o.client.send(
          new UpdateWebACLCommand(webAclUpdate(webAcl, ref.Id, this.o.scope, lockToken, rules)),
          {
            abortSignal: signal,
          },
        );
        return { written: true, lockConflicts, ...at };
      } catch (err) {
        if ((err as Error).name !== 'WAFOptimisticLockException' || lockConflicts >= this.o.lockRetries)
          throw err;
        lockConflicts++;
        await new Promise((r) => setTimeout(r, 10 + Math.random() * 40 * lockConflicts));
      }
    }
  }

  private async readAcl(
    signal: AbortSignal | undefined,
  ): Promise<{ webAcl: WebACL; lockToken: string; ref: AclRef }> {
    const cached = this.acl !== undefined;
    const ref = await this.resolveAcl();
    try {
      return await this.getAcl(ref, signal);
    } catch (err) {
      if ((err as Error).name !== 'WAFNonexistentItemException' || !cached) throw err;
      this.acl = undefined; // re-created under the same name: look it up again, once
      return this.getAcl(await this.resolveAcl(), signal);
    }
  }

  private async getAcl(ref: AclRef, signal: AbortSignal | undefined) {
    const out = await this.o.client.send(new GetWebACLCommand({ ...ref, Scope: this.o.scope }), {
      abortSignal: signal,
    });
    if (!out.WebACL || !out.LockToken) {
      throw new WafError('WAFInternalErrorException', `GetWebACL ${ref.Name} returned no ACL or lock token`);
    }
    return { webAcl: out.WebACL, lockToken: out.LockToken, ref };
  }

  private async resolveAcl(): Promise<AclRef> {
    if (this.acl) return this.acl;
    const found = await findWebAcl({
      client: this.o.client,
      scope: this.o.scope,
      setPrefix: this.o.setPrefix,
      webAcl: this.o.webAcl,
    });
    if (!found?.Id || !found.Name) {
      throw new WafError(
        'WAFNonexistentItemException',
        `web ACL "${this.o.webAcl}" (${this.o.scope}) not found; set PERIMETER_WEB_ACL or run \`perimeter waf init\``,
      );
    }
    this.acl = { Name: found.Name, Id: found.Id };
    return this.acl;
  }

  private async findPatternSet(name: string, signal: AbortSignal | undefined) {
    let marker: string | undefined;
    do {
      const page = await this.o.client.send(
        new ListRegexPatternSetsCommand({ Scope: this.o.scope, Limit: 100, NextMarker: marker }),
        { abortSignal: signal },
      );
      const found = page.RegexPatternSets?.find((s) => s.Name === name);
      if (found?.Id && found.ARN) return { Name: name, Id: found.Id, ARN: found.ARN };
      marker = page.RegexPatternSets?.length ? page.NextMarker : undefined;
    } while (marker);
    return undefined;
  }

  /** The patch's own regex pattern set, created or brought up to date; its ARN. */
  private async ensurePatternSet(
    name: string,
    patterns: string[],
    signal: AbortSignal | undefined,
  ): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      const found = await this.findPatternSet(name, signal);
      try {
        if (!found) {
          const created = await this.o.client.send(
            new CreateRegexPatternSetCommand({
              Name: name,
              Scope: this.o.scope,
              Description: 'Virtual patch managed by the Self-Healing Perimeter; removed with the patch.',
              RegularExpressionList: patterns.map((RegexString) => ({ RegexString })),
            }),
            { abortSignal: signal },
          );
          if (!created.Summary?.ARN)
            throw new WafError('WAFInternalErrorException', `regex pattern set ${name} has no ARN`);
          return created.Summary.ARN;
        }
        const current = await this.o.client.send(
          new GetRegexPatternSetCommand({ Name: name, Id: found.Id, Scope: this.o.scope }),
          { abortSignal: signal },
        );
        const have = (current.RegexPatternSet?.RegularExpressionList ?? []).map((r) => r.RegexString);
        if (stable(have) !== stable(patterns)) {
          await this.o.client.send(
            new UpdateRegexPatternSetCommand({
              Name: name,
              Id: found.Id,
              Scope: this.o.scope,
              LockToken: current.LockToken,
              Description: current.RegexPatternSet?.Description || undefined,
              RegularExpressionList: patterns.map((RegexString) => ({ RegexString })),
            }),
            { abortSignal: signal },
          );
        }
        return found.ARN;
      } catch (err) {
        const retry = ['WAFOptimisticLockException', 'WAFDuplicateItemException'].includes(
          (err as Error).name,
        );
        if (!retry || attempt >= this.o.lockRetries) throw err;
      }
    }
  }

  private async deletePatternSet(name: string, signal: AbortSignal | undefined): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const found = await this.findPatternSet(name, signal);
      if (!found) return;
      try {
        const current = await this.o.client.send(
          new GetRegexPatternSetCommand({ Name: name, Id: found.Id, Scope: this.o.scope }),
          { abortSignal: signal },
        );
        await this.o.client.send(
          new DeleteRegexPatternSetCommand({
            Name: name,
            Id: found.Id,
            Scope: this.o.scope,
            LockToken: current.LockToken,
          }),
          { abortSignal: signal },
        );
        return;
      } catch (err) {
        const name_ = (err as Error).name;
        if (name_ === 'WAFNonexistentItemException') return;
        if (name_ !== 'WAFOptimisticLockException' || attempt >= this.o.lockRetries) throw err;
      }
    }
  }
}

/** The log-only backend for patches: the same verbs, nothing written. */
export class DryRunPatchGateway implements PatchGateway {
  constructor(
    private readonly prefix: string,
    private readonly log: (line: string) => void,
  ) {}

  async apply(spec: PatchSpec, action: PatchRuleAction): Promise<PatchChangeResult> {
    const rule = patchRuleName(this.prefix, spec.findingId);
    this.log(`dry-run: would put rule ${rule} in the web ACL as ${action}`);
    return { rule, written: false, lockConflicts: 0 };
  }

  async release(findingId: string): Promise<PatchChangeResult> {
    const rule = patchRuleName(this.prefix, findingId);
    this.log(`dry-run: would remove rule ${rule} from the web ACL`);
    return { rule, written: false, lockConflicts: 0 };
  }

  async check(): Promise<PatchRuleState | undefined> {
    return undefined;
  }
}
