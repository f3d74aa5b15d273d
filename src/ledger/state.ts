/**
 * What the IaC ledger holds, as plain data: the managed IP sets with one entry per address, and
 * the active virtual patches. Pure functions only — git lives in ledger.ts.
 *
 * `perimeter/ip-sets.auto.tfvars.json` is a Terraform variables file:
 *   { "perimeter_ip_sets": { "<prefix>-<action>-<family>": { action, ip_address_version,
 *       addresses: { "<cidr>": { incident, action, reason, approver, created, expires } } } } }
 * A set name here is the logical set; past 10,000 addresses the WAF spreads it over shards
 * (`…-0`, `…-1`), which the README's Terraform module does with chunklist().
 */
import type { RemediationAction } from '../domain/policy';
import { parseTarget, type IpFamily } from '../domain/targets';

export const IP_SETS_FILE = 'perimeter/ip-sets.auto.tfvars.json';
export const PATCHES_FILE = 'perimeter/virtual-patches.json';
export const LEDGER_FILES = [IP_SETS_FILE, PATCHES_FILE] as const;

export interface AddressEntry {
  incident: string;
  action: RemediationAction;
  reason: string;
  approver: string;
  created: string;
  expires: string;
}

export interface LedgerIpSet {
  action: RemediationAction;
  ip_address_version: 'IPV4' | 'IPV6';
  addresses: Record<string, AddressEntry>;
}

export interface IpSetsFile {
  perimeter_ip_sets: Record<string, LedgerIpSet>;
}

export interface PatchEntry {
  incident: string;
  finding: string;
  rule_name: string;
  /** The request: path, method, field, kind, pattern. */
  spec: Record<string, unknown>;
  /** The WAF rule as the perimeter places it in the web ACL. */
  rule: unknown;
  reason: string;
  approver: string;
  created: string;
  expires: string;
}

export interface PatchesFile {
  virtual_patches: Record<string, PatchEntry>;
}

export interface LedgerState {
  ipSets: IpSetsFile;
  patches: PatchesFile;
}

/** One applied or released remediation, as an activity reports it. */
export type LedgerChange = IpChange | PatchChange;

interface ChangeBase {
  /** Unique per change: a retry of the same activity carries the same ID and commits nothing new. */
  changeId: string;
  /** `extended`: still applied, with a later expiry. */
  op: 'applied' | 'extended' | 'released';
  workflowId: string;
  reason: string;
  approver: string;
  createdAt: string;
  expiresAt: string;
}

export interface IpChange extends ChangeBase {
  kind: 'ip';
  action: RemediationAction;
  cidrs: string[];
}

export interface PatchChange extends ChangeBase {
  kind: 'patch';
  findingId: string;
  ruleName: string;
  spec: Record<string, unknown>;
  rule: unknown;
}

export function emptyState(): LedgerState {
  return { ipSets: { perimeter_ip_sets: {} }, patches: { virtual_patches: {} } };
}

/** The logical set an address of this action and family belongs to. */
export function ledgerSetName(prefix: string, action: RemediationAction, family: IpFamily): string {
  return `${prefix}-${action}-${family}`;
}

/** The state after a change. Applying the same change twice gives the same state. */
export function applyChange(state: LedgerState, change: LedgerChange, prefix: string): LedgerState {
  const next = structuredClone(state);
  if (change.kind === 'patch') {
    const patches = next.patches.virtual_patches;
    if (change.op !== 'released') {
      patches[change.findingId] = {
        incident: change.workflowId,
        finding: change.findingId,
        rule_name: change.ruleName,
        spec: change.spec,
        rule: change.rule,
        reason: change.reason,
        approver: change.approver,
        created: change.createdAt,
        expires: change.expiresAt,
      };
    } else if (patches[change.findingId]?.incident === change.workflowId) {
      delete patches[change.findingId];
    }
    return next;
  }
  const sets = next.ipSets.perimeter_ip_sets;
  for (const cidr of change.cidrs) {
    const { family } = parseTarget(cidr);
    const name = ledgerSetName(prefix, change.action, family);
    if (change.op !== 'released') {
      sets[name] ??= {
        action: change.action,
        ip_address_version: family === 'ipv4' ? 'IPV4' : 'IPV6',
        addresses: {},
      };
      sets[name].addresses[cidr] = {
        incident: change.workflowId,
        action: change.action,
        reason: change.reason,
        approver: change.approver,
        created: change.createdAt,
        expires: change.expiresAt,
      };
    } else if (sets[name]?.addresses[cidr]?.incident === change.workflowId) {
      delete sets[name].addresses[cidr];
    }
  }
  return next;
}

/**
 * The changes between two states, as a list that `applyDelta` can replay on another state:
 * how a commit is carried onto a remote branch that moved meanwhile (the ledger's rebase).
 */
export interface Delta {
  addresses: Array<{
    set: string;
    cidr: string;
    entry: AddressEntry | undefined;
    meta: Omit<LedgerIpSet, 'addresses'>;
  }>;
  patches: Array<{ finding: string; entry: PatchEntry | undefined }>;
}

export function diffStates(before: LedgerState, after: LedgerState): Delta {
  const delta: Delta = { addresses: [], patches: [] };
  const setNames = new Set([
    ...Object.keys(before.ipSets.perimeter_ip_sets),
    ...Object.keys(after.ipSets.perimeter_ip_sets),
  ]);
  for (const set of [...setNames].sort()) {
    const a = before.ipSets.perimeter_ip_sets[set];
    const b = after.ipSets.perimeter_ip_sets[set];
    const meta = { action: (b ?? a)!.action, ip_address_version: (b ?? a)!.ip_address_version };
    const cidrs = new Set([...Object.keys(a?.addresses ?? {}), ...Object.keys(b?.addresses ?? {})]);
    for (const cidr of [...cidrs].sort()) {
      const x = a?.addresses[cidr];
      const y = b?.addresses[cidr];
      if (JSON.stringify(x) !== JSON.stringify(y)) delta.addresses.push({ set, cidr, entry: y, meta });
    }
  }
  const findings = new Set([
    ...Object.keys(before.patches.virtual_patches),
    ...Object.keys(after.patches.virtual_patches),
  ]);
  for (const finding of [...findings].sort()) {
    const x = before.patches.virtual_patches[finding];
    const y = after.patches.virtual_patches[finding];
    if (JSON.stringify(x) !== JSON.stringify(y)) delta.patches.push({ finding, entry: y });
  }
  return delta;
}

export function applyDelta(state: LedgerState, delta: Delta): LedgerState {
  const next = structuredClone(state);
  const sets = next.ipSets.perimeter_ip_sets;
  for (const { set, cidr, entry, meta } of delta.addresses) {
    if (entry) {
      sets[set] ??= { ...meta, addresses: {} };
      sets[set].addresses[cidr] = entry;
    } else if (sets[set]) {
      delete sets[set].addresses[cidr];
    }
  }
  for (const { finding, entry } of delta.patches) {
    if (entry) next.patches.virtual_patches[finding] = entry;
    else delete next.patches.virtual_patches[finding];
  }
  return next;
}

/** Stable text: keys sorted, two-space indent, a final newline — so diffs show only what changed. */
export function serialise(value: unknown): string {
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Reads the two files' text (undefined: not there yet); a file that is not ledger JSON is an error naming it. */
export function parseState(ipSets: string | undefined, patches: string | undefined): LedgerState {
  const state = emptyState();
  if (ipSets !== undefined) {
    const parsed = parseJson(ipSets, IP_SETS_FILE) as Partial<IpSetsFile>;
    if (!parsed || typeof parsed.perimeter_ip_sets !== 'object' || parsed.perimeter_ip_sets === null) {
      throw new Error(`${IP_SETS_FILE} has no "perimeter_ip_sets" object`);
    }
    state.ipSets = parsed as IpSetsFile;
  }
  if (patches !== undefined) {
    const parsed = parseJson(patches, PATCHES_FILE) as Partial<PatchesFile>;
    if (!parsed || typeof parsed.virtual_patches !== 'object' || parsed.virtual_patches === null) {
      throw new Error(`${PATCHES_FILE} has no "virtual_patches" object`);
    }
    state.patches = parsed as PatchesFile;
  }
  return state;
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** The commit message: what changed, on what, for which incident, approved by whom. */
export function commitMessage(change: LedgerChange): string {
  const what =
    change.kind === 'ip'
      ? `${change.action} ${targetSummary(change.cidrs)}`
      : `virtual patch ${change.findingId} (${change.ruleName})`;
  return [
    `perimeter: ${what} ${change.op}`,
    '',
    `Incident: ${change.workflowId}`,
    `Approver: ${change.approver}`,
    `Reason: ${change.reason}`,
    ...(change.op !== 'released' ? [`Expires: ${change.expiresAt}`] : []),
    ...(change.kind === 'ip' && change.cidrs.length > 1 ? [`Targets: ${change.cidrs.length}`] : []),
    '',
    `Perimeter-Change: ${change.changeId}`,
  ].join('\n');
}

function targetSummary(cidrs: string[]): string {
  return cidrs.length <= 3
    ? cidrs.join(', ')
    : `${cidrs.slice(0, 3).join(', ')} and ${cidrs.length - 3} more`;
}
