/** Names of the WAF resources the perimeter owns: `<prefix>-<action>-<ipv4|ipv6>-<shard>`. */
import { SET_ACTIONS, type SetAction } from '../domain/policy';
import type { IpFamily } from '../domain/targets';

export const IP_FAMILIES: readonly IpFamily[] = ['ipv4', 'ipv6'];

/** AWS WAF's hard limit on addresses in one IP set. */
export const IP_SET_CAPACITY = 10_000;

export interface ManagedSetName {
  action: SetAction;
  family: IpFamily;
  shard: number;
  name: string;
}

export function managedSetName(prefix: string, action: SetAction, family: IpFamily, shard = 0): string {
  return `${prefix}-${action}-${family}-${shard}`;
}

/** Recognises a managed set's name; foreign names give undefined. */
export function parseManagedSetName(prefix: string, name: string): ManagedSetName | undefined {
  if (!name.startsWith(`${prefix}-`)) return undefined;
  const match = /^(count|block|challenge|captcha)-(ipv4|ipv6)-([0-9]+)$/.exec(name.slice(prefix.length + 1));
  if (!match) return undefined;
  return { action: match[1] as SetAction, family: match[2] as IpFamily, shard: Number(match[3]), name };
}

/** Every first-shard set the perimeter manages, in rule order (count first, so it sees all traffic). */
export function allManagedSets(prefix: string): ManagedSetName[] {
  return SET_ACTIONS.flatMap((action) =>
    IP_FAMILIES.map((family) => ({ action, family, shard: 0, name: managedSetName(prefix, action, family) })),
  );
}
