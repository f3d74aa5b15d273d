/**
 * `perimeter ledger verify`: the ledger's record next to what the WAF holds now. Differences are
 * hand edits on either side, changes the ledger could not record, or addresses the perimeter
 * found in its sets and left alone (someone else's).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { REMEDIATION_ACTIONS, type RemediationAction } from '../domain/policy';
import { parseTarget } from '../domain/targets';
import { IP_SETS_FILE, ledgerSetName, parseState, PATCHES_FILE, type LedgerState } from './state';
import { LedgerError } from './ledger';

export interface LiveWaf {
  /** Every address each remediation action's managed sets hold (all shards, both families). */
  addresses: Record<RemediationAction, string[]>;
  /** Finding IDs whose virtual-patch rule is in the web ACL with an enforcing action (not Count). */
  patches: string[];
}

export interface LedgerDifference {
  /** The ledger's set name, or `virtual-patches`. */
  where: string;
  item: string;
  /** `ledger-only`: recorded but not in the WAF; `waf-only`: in the WAF but not recorded. */
  side: 'ledger-only' | 'waf-only';
}

export interface VerifyReport {
  differences: LedgerDifference[];
  ledger: { addresses: number; patches: number };
  waf: { addresses: number; patches: number };
}

/** The ledger as the working copy shows it now, uncommitted edits included. */
export async function readLedger(dir: string): Promise<LedgerState> {
  const read = (file: string) =>
    fs.readFile(path.join(dir, file), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
  if (!(await fs.stat(dir).catch(() => undefined))?.isDirectory()) {
    throw new LedgerError('missing', `PERIMETER_LEDGER_PATH ${dir} does not exist or is not a directory`);
  }
  try {
    return parseState(await read(IP_SETS_FILE), await read(PATCHES_FILE));
  } catch (err) {
    throw new LedgerError('invalid', `the ledger in ${dir}: ${(err as Error).message}`);
  }
}

export function compareLedger(state: LedgerState, live: LiveWaf, prefix: string): VerifyReport {
  const differences: LedgerDifference[] = [];
  let ledgerAddresses = 0;
  let wafAddresses = 0;
  for (const action of REMEDIATION_ACTIONS) {
    const byFamily = new Map<string, Set<string>>();
    for (const cidr of live.addresses[action] ?? []) {
      const name = ledgerSetName(prefix, action, parseTarget(cidr).family);
      byFamily.set(name, (byFamily.get(name) ?? new Set()).add(cidr));
    }
    for (const family of ['ipv4', 'ipv6'] as const) {
      const name = ledgerSetName(prefix, action, family);
      const recorded = new Set(Object.keys(state.ipSets.perimeter_ip_sets[name]?.addresses ?? {}));
      const held = byFamily.get(name) ?? new Set<string>();
      ledgerAddresses += recorded.size;
      wafAddresses += held.size;
      for (const cidr of [...recorded].sort()) {
        if (!held.has(cidr)) differences.push({ where: name, item: cidr, side: 'ledger-only' });
      }
      for (const cidr of [...held].sort()) {
        if (!recorded.has(cidr)) differences.push({ where: name, item: cidr, side: 'waf-only' });
      }
    }
  }
  const recordedPatches = new Set(Object.keys(state.patches.virtual_patches));
  const livePatches = new Set(live.patches);
  for (const id of [...recordedPatches].sort()) {
    if (!livePatches.has(id)) differences.push({ where: 'virtual-patches', item: id, side: 'ledger-only' });
  }
  for (const id of [...livePatches].sort()) {
    if (!recordedPatches.has(id)) differences.push({ where: 'virtual-patches', item: id, side: 'waf-only' });
  }
  return {
    differences,
    ledger: { addresses: ledgerAddresses, patches: recordedPatches.size },
    waf: { addresses: wafAddresses, patches: livePatches.size },
  };
}

export function formatReport(report: VerifyReport): string {
  const { ledger, waf, differences } = report;
  const lines = [
    `ledger: ${ledger.addresses} addresses, ${ledger.patches} virtual patches`,
    `WAF:    ${waf.addresses} addresses, ${waf.patches} virtual patches`,
  ];
  if (differences.length === 0) {
    lines.push('the ledger and the WAF agree');
    return lines.join('\n');
  }
  lines.push('');
  for (const d of differences) {
    const what = d.side === 'ledger-only' ? 'in the ledger, not in the WAF' : 'in the WAF, not in the ledger';
    lines.push(
      `  ${d.side === 'ledger-only' ? '-' : '+'} ${d.where.padEnd(28)} ${d.item.padEnd(44)} ${what}`,
    );
  }
  lines.push('', `${differences.length} difference${differences.length === 1 ? '' : 's'}`);
  return lines.join('\n');
}
