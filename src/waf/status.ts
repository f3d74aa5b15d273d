/**
 * `perimeter waf status`: the managed sets with their fill, the web ACL's reference count
 * against AWS's limit, and warnings while there is still time to act.
 */
import { GetWebACLCommand, type Rule, type Statement } from '@aws-sdk/client-wafv2';
import { findWebAcl, managedWafStatus, type ManagedSetStatus, type ProvisionOptions } from './provision';

/** AWS WAF: at most 50 IP set, regex set and rule group references per web ACL (not adjustable). */
export const WEB_ACL_REFERENCE_LIMIT = 50;
/** Warn at this share of a limit. */
const WARN_AT = 0.8;

export interface WafHealth {
  sets: ManagedSetStatus[];
  references: { used: number; limit: number };
  warnings: string[];
}

/** References to sets and rule groups in one statement tree: what counts against the limit. */
export function countReferences(statement: Statement | undefined): number {
  if (!statement) return 0;
  const nested = [
    ...(statement.AndStatement?.Statements ?? []),
    ...(statement.OrStatement?.Statements ?? []),
    statement.NotStatement?.Statement,
    statement.RateBasedStatement?.ScopeDownStatement,
    statement.ManagedRuleGroupStatement?.ScopeDownStatement,
  ];
  const own =
    (statement.IPSetReferenceStatement ? 1 : 0) +
    (statement.RegexPatternSetReferenceStatement ? 1 : 0) +
    (statement.RuleGroupReferenceStatement ? 1 : 0) +
    (statement.ManagedRuleGroupStatement ? 1 : 0);
  return own + nested.reduce((n, s) => n + countReferences(s), 0);
}

export async function wafHealth(o: ProvisionOptions, shardFill: number): Promise<WafHealth> {
  const sets = await managedWafStatus(o);
  const acl = await findWebAcl(o);
  const rules: Rule[] = acl?.Id
    ? ((await o.client.send(new GetWebACLCommand({ Name: o.webAcl, Scope: o.scope, Id: acl.Id }))).WebACL
        ?.Rules ?? [])
    : [];
  const used = rules.reduce((n, r) => n + countReferences(r.Statement), 0);
  const warnings: string[] = [];
  if (!acl) warnings.push(`web ACL ${o.webAcl} not found: nothing the perimeter writes is enforced`);
  if (used >= WARN_AT * WEB_ACL_REFERENCE_LIMIT) {
    warnings.push(
      `web ACL ${o.webAcl} holds ${used} of ${WEB_ACL_REFERENCE_LIMIT} set and rule group references: new shards and regex patches fail at ${WEB_ACL_REFERENCE_LIMIT}`,
    );
  }
  for (const s of sets) {
    if (!s.linked)
      warnings.push(`${s.name} is not referenced by any rule of ${o.webAcl}: its addresses are not enforced`);
    if (s.addresses >= WARN_AT * shardFill) {
      warnings.push(
        `${s.name} holds ${s.addresses} addresses (${Math.round((s.addresses / shardFill) * 100)}% of the ${shardFill} at which the next shard opens)`,
      );
    }
  }
  return { sets, references: { used, limit: WEB_ACL_REFERENCE_LIMIT }, warnings };
}
