/**
 * `perimeter waf init` and `perimeter waf status`: create (or adopt, by name) the managed IP sets
 * and one web ACL rule per set, leaving every rule and set the perimeter does not own untouched.
 */
import {
  CreateIPSetCommand,
  CreateWebACLCommand,
  GetIPSetCommand,
  GetWebACLCommand,
  ListIPSetsCommand,
  ListWebACLsCommand,
  UpdateWebACLCommand,
  type GetWebACLCommandOutput,
  type IPSetSummary,
  type Rule,
  type RuleAction,
  type UpdateWebACLCommandInput,
  type WebACL,
  type WAFV2Client,
  type WebACLSummary,
} from '@aws-sdk/client-wafv2';
import type { SetAction } from '../domain/policy';
import { allManagedSets, IP_SET_CAPACITY, parseManagedSetName, type ManagedSetName } from './names';
import { WafError } from './ip-set-writer';
import type { WriteLimiter } from './write-limiter';

export interface ProvisionOptions {
  client: WAFV2Client;
  scope: 'REGIONAL' | 'CLOUDFRONT';
  setPrefix: string;
  webAcl: string;
  lockRetries?: number;
  /** The account's write rate; creating a set and updating the ACL each wait their turn. */
  limiter?: WriteLimiter;
}

export interface InitReport {
  webAcl: string;
  createdSets: string[];
  adoptedSets: string[];
  addedRules: string[];
  adoptedRules: string[];
  /** Managed rules found pointing at the wrong set or with the wrong action, and corrected. */
  repairedRules: string[];
}

const RULE_ACTIONS: Record<SetAction, RuleAction> = {
  count: { Count: {} },
  block: { Block: {} },
  challenge: { Challenge: {} },
  captcha: { Captcha: {} },
};

const DESCRIPTION = 'Managed by the Self-Healing Perimeter; entries are added and released automatically.';

async function listAll<T>(
  fetchPage: (marker: string | undefined) => Promise<{ items: T[] | undefined; next: string | undefined }>,
): Promise<T[]> {
  const all: T[] = [];
  let marker: string | undefined;
  do {
    const { items, next } = await fetchPage(marker);
    all.push(...(items ?? []));
    marker = items?.length ? next : undefined;
  } while (marker);
  return all;
}

export function listIpSets(o: ProvisionOptions): Promise<IPSetSummary[]> {
  return listAll(async (NextMarker) => {
    const page = await o.client.send(new ListIPSetsCommand({ Scope: o.scope, Limit: 100, NextMarker }));
    return { items: page.IPSets, next: page.NextMarker };
  });
}

export async function findWebAcl(o: ProvisionOptions): Promise<WebACLSummary | undefined> {
  const acls = await listAll(async (NextMarker) => {
    const page = await o.client.send(new ListWebACLsCommand({ Scope: o.scope, Limit: 100, NextMarker }));
    return { items: page.WebACLs, next: page.NextMarker };
  });
  return acls.find((a) => a.Name === o.webAcl);
}

/** Creates the web ACL if it is missing (the local stack only; production adopts an existing one). */
export async function ensureWebAcl(o: ProvisionOptions): Promise<void> {
  if (await findWebAcl(o)) return;
  await o.client.send(
    new CreateWebACLCommand({
      Name: o.webAcl,
      Scope: o.scope,
      DefaultAction: { Allow: {} },
      Description: 'Local web ACL for the Self-Healing Perimeter',
      VisibilityConfig: {
        SampledRequestsEnabled: true,
        CloudWatchMetricsEnabled: true,
        MetricName: o.webAcl,
      },
    }),
  );
}

function setRule(set: ManagedSetName, arn: string, priority: number): Rule {
  return {
    Name: set.name,
    Priority: priority,
    Action: RULE_ACTIONS[set.action],
    Statement: { IPSetReferenceStatement: { ARN: arn } },
    VisibilityConfig: { SampledRequestsEnabled: true, CloudWatchMetricsEnabled: true, MetricName: set.name },
  };
}

/**
 * Creates (or adopts) the managed sets and links each into the web ACL with a rule of its
 * action. Without `sets`, the first shard of every action and family (`perimeter waf init`);
 * the IP-set writers pass a new shard when the last one has filled up.
 */
export async function initManagedWaf(
  o: ProvisionOptions,
  sets: ManagedSetName[] = allManagedSets(o.setPrefix),
): Promise<InitReport> {
  const acl = await findWebAcl(o);
  if (!acl?.Id) {
    throw new WafError(
      'WAFNonexistentItemException',
      `web ACL "${o.webAcl}" (${o.scope}) not found; create it or set PERIMETER_WEB_ACL to the one to adopt`,
    );
  }
  const report: InitReport = {
    webAcl: o.webAcl,
    createdSets: [],
    adoptedSets: [],
    addedRules: [],
    adoptedRules: [],
    repairedRules: [],
  };
  const existing = new Map((await listIpSets(o)).map((s) => [s.Name, s]));
  const arns = new Map<string, string>();
  for (const set of sets) {
    let summary = existing.get(set.name);
    if (summary) {
      report.adoptedSets.push(set.name);
    } else {
      await o.limiter?.take();
      const created = await o.client.send(
        new CreateIPSetCommand({
          Name: set.name,
          Scope: o.scope,
          IPAddressVersion: set.family === 'ipv4' ? 'IPV4' : 'IPV6',
          Addresses: [],
          Description: DESCRIPTION,
        }),
      );
      summary = created.Summary;
      report.createdSets.push(set.name);
    }
    if (!summary?.ARN) throw new WafError('WAFInternalErrorException', `IP set ${set.name} has no ARN`);
    arns.set(set.name, summary.ARN);
  }

  for (let attempt = 0; ; attempt++) {
    const current: GetWebACLCommandOutput = await o.client.send(
      new GetWebACLCommand({ Name: o.webAcl, Scope: o.scope, Id: acl.Id }),
    );
    const webAcl = current.WebACL;
    if (!webAcl || !current.LockToken) {
      throw new WafError('WAFInternalErrorException', 'GetWebACL returned nothing');
    }
    const rules = [...(webAcl.Rules ?? [])];
    const taken = new Set(rules.map((r) => r.Priority));
    const added: string[] = [];
    const adopted: string[] = [];
    const repaired: string[] = [];
    let next = 0;
    for (const set of sets) {
      const arn = arns.get(set.name) ?? '';
      const index = rules.findIndex((r) => r.Name === set.name);
      const existing = rules[index];
      if (existing) {
        // Adopt by name, but a rule pointing at a re-created set or doing the wrong thing would
        // make every block silently ineffective: point it at the set and give it its action.
        // Same kind of action is enough: a Block with a custom response stays as the operator set it.
        const actionKind = (a: RuleAction | undefined) =>
          Object.keys(a ?? {})
            .sort()
            .join();
        const right =
          existing.Statement?.IPSetReferenceStatement?.ARN === arn &&
          actionKind(existing.Action) === actionKind(RULE_ACTIONS[set.action]);
        if (right) adopted.push(set.name);
        else {
          rules[index] = setRule(set, arn, existing.Priority ?? 0);
          repaired.push(set.name);
        }
        continue;
      }
      while (taken.has(next)) next++;
      taken.add(next);
      rules.push(setRule(set, arn, next));
      added.push(set.name);
    }
    if (added.length > 0 || repaired.length > 0) {
      await o.limiter?.take();
      try {
        await o.client.send(
          new UpdateWebACLCommand(webAclUpdate(webAcl, acl.Id, o.scope, current.LockToken, rules)),
        );
      } catch (err) {
        if ((err as Error).name === 'WAFOptimisticLockException' && attempt < (o.lockRetries ?? 8)) continue;
        throw err;
      }
    }
    return { ...report, addedRules: added, adoptedRules: adopted, repairedRules: repaired };
  }
}

/**
 * UpdateWebACL replaces the whole configuration: every mutable field is carried over from the
 * GetWebACL answer, and only the rules change.
 */
export function webAclUpdate(
  webAcl: WebACL,
  id: string,
  scope: 'REGIONAL' | 'CLOUDFRONT',
  lockToken: string,
  rules: Rule[],
): UpdateWebACLCommandInput {
  return {
    Name: webAcl.Name,
    Scope: scope,
    Id: id,
    LockToken: lockToken,
    Rules: rules,
    DefaultAction: webAcl.DefaultAction,
    Description: webAcl.Description || undefined,
    VisibilityConfig: webAcl.VisibilityConfig,
    DataProtectionConfig: webAcl.DataProtectionConfig,
    CustomResponseBodies: webAcl.CustomResponseBodies,
    CaptchaConfig: webAcl.CaptchaConfig,
    ChallengeConfig: webAcl.ChallengeConfig,
    TokenDomains: webAcl.TokenDomains,
    AssociationConfig: webAcl.AssociationConfig,
    OnSourceDDoSProtectionConfig: webAcl.OnSourceDDoSProtectionConfig,
    ApplicationConfig: webAcl.ApplicationConfig,
    MonetizationConfig: webAcl.MonetizationConfig,
  };
}

export interface ManagedSetStatus {
  name: string;
  action: SetAction;
  family: string;
  shard: number;
  addresses: number;
  capacity: number;
  fill: number;
  /** Whether a rule of the managed web ACL references the set. */
  linked: boolean;
}

export async function managedWafStatus(o: ProvisionOptions): Promise<ManagedSetStatus[]> {
  const acl = await findWebAcl(o);
  const rules = acl?.Id
    ? ((await o.client.send(new GetWebACLCommand({ Name: o.webAcl, Scope: o.scope, Id: acl.Id }))).WebACL
        ?.Rules ?? [])
    : [];
  const linkedArns = new Set(rules.map((r) => r.Statement?.IPSetReferenceStatement?.ARN));
  const out: ManagedSetStatus[] = [];
  for (const summary of await listIpSets(o)) {
    const managed = summary.Name ? parseManagedSetName(o.setPrefix, summary.Name) : undefined;
    if (!managed || !summary.Id) continue;
    const got = await o.client.send(
      new GetIPSetCommand({ Name: managed.name, Scope: o.scope, Id: summary.Id }),
    );
    const addresses = got.IPSet?.Addresses?.length ?? 0;
    out.push({
      name: managed.name,
      action: managed.action,
      family: managed.family,
      shard: managed.shard,
      addresses,
      capacity: IP_SET_CAPACITY,
      fill: addresses / IP_SET_CAPACITY,
      linked: linkedArns.has(summary.ARN),
    });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}
