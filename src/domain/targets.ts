/**
 * IP / CIDR targets: parsing, normalisation and the ranges the perimeter must never touch.
 *
 * Pure code (no Node built-ins) so that workflows, the CLI and activities share one definition
 * of what a valid target is. Addresses are held as bigints; a target is always a network
 * (host bits cleared) with an explicit prefix length.
 */

export type IpFamily = 'ipv4' | 'ipv6';

export interface Target {
  family: IpFamily;
  /** Network address with host bits cleared. */
  network: bigint;
  prefix: number;
  /** Canonical text form, e.g. `203.0.113.0/24`, `2001:db8::/48`. */
  cidr: string;
}

export class TargetError extends Error {
  constructor(
    readonly input: string,
    message: string,
  ) {
    super(message);
    this.name = 'TargetError';
  }
}

const BITS: Record<IpFamily, number> = { ipv4: 32, ipv6: 128 };

function parseIpv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are refused: some stacks read them as octal, so "010" is ambiguous.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseIpv6(input: string): bigint | undefined {
  if (input.includes('%')) return undefined; // zone IDs are link-local by definition
  let text = input;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    // An embedded IPv4 tail (::ffff:192.0.2.1) is two more 16-bit groups.
    const v4 = parseIpv4(tail);
    if (v4 === undefined) return undefined;
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const toGroups = (s: string): string[] | undefined => {
    if (s === '') return [];
    const g = s.split(':');
    return g.every((x) => /^[0-9a-fA-F]{1,4}$/.test(x)) ? g : undefined;
  };
  let groups: string[];
  if (halves.length === 2) {
    const left = toGroups(halves[0] ?? '');
    const right = toGroups(halves[1] ?? '');
    if (!left || !right) return undefined;
    const missing = 8 - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...Array<string>(missing).fill('0'), ...right];
  } else {
    const all = toGroups(text);
    if (!all || all.length !== 8) return undefined;
    groups = all;
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(parseInt(g, 16));
  return value;
}

function formatIpv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => ((value >> s) & 0xffn).toString()).join('.');
}

/** RFC 5952 text: lower case, longest run (≥ 2) of zero groups compressed to `::`. */
function formatIpv6(value: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

function mask(family: IpFamily, prefix: number): bigint {
  const bits = BITS[family];
  return ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
}

/** The enclosing network of `prefix` bits (a no-op when the target is already that wide or wider). */
export function widen(target: Target, prefix: number): Target {
  if (target.prefix <= prefix) return target;
  const network = target.network & mask(target.family, prefix);
  return { family: target.family, network, prefix, cidr: formatCidr(target.family, network, prefix) };
}

export function formatCidr(family: IpFamily, network: bigint, prefix: number): string {
  return `${family === 'ipv4' ? formatIpv4(network) : formatIpv6(network)}/${prefix}`;
}

/**
 * Parses an address or CIDR and normalises it: host bits cleared, IPv4-mapped IPv6 turned
 * into IPv4, a bare address given its full-length prefix. Syntax only; see `checkTarget`.
 */
export function parseTarget(input: string): Target {
  const text = input.trim();
  const [addr = '', prefixText, extra] = text.split('/');
  if (extra !== undefined || addr === '') {
    throw new TargetError(
      input,
      `"${input}" is not an IP address or CIDR (expected e.g. 203.0.113.7 or 2001:db8::/64)`,
    );
  }
  let family: IpFamily;
  let value: bigint | undefined;
  if (addr.includes(':')) {
    family = 'ipv6';
    value = parseIpv6(addr);
  } else {
    family = 'ipv4';
    value = parseIpv4(addr);
  }
  if (value === undefined) {
    throw new TargetError(
      input,
      `"${input}" is not an IP address or CIDR (expected e.g. 203.0.113.7 or 2001:db8::/64)`,
    );
  }
  let prefix = BITS[family];
  if (prefixText !== undefined) {
    if (!/^[0-9]{1,3}$/.test(prefixText) || Number(prefixText) > BITS[family]) {
      throw new TargetError(
        input,
        `"${input}" has an invalid prefix length (0–${BITS[family]} for ${family})`,
      );
    }
    prefix = Number(prefixText);
  }
  // ::ffff:a.b.c.d/n is the IPv4 address a.b.c.d; WAF matches it as IPv4.
  if (family === 'ipv6' && value >> 32n === 0xffffn && prefix >= 96) {
    family = 'ipv4';
    value = value & 0xffffffffn;
    prefix -= 96;
  }
  const network = value & mask(family, prefix);
  return { family, network, prefix, cidr: formatCidr(family, network, prefix) };
}

interface ReservedRange {
  range: Target;
  label: string;
}

const reserved = (cidr: string, label: string): ReservedRange => ({ range: parseTarget(cidr), label });

/** Ranges that are never a remediation target: private, loopback, link-local and the like. */
const RESERVED: ReservedRange[] = [
  reserved('0.0.0.0/8', '"this network"'),
  reserved('10.0.0.0/8', 'private (RFC 1918)'),
  reserved('100.64.0.0/10', 'carrier-grade NAT shared space'),
  reserved('127.0.0.0/8', 'loopback'),
  reserved('192.0.0.0/24', 'IETF protocol assignments'),
  reserved('198.18.0.0/15', 'benchmarking'),
  reserved('169.254.0.0/16', 'link-local'),
  reserved('172.16.0.0/12', 'private (RFC 1918)'),
  reserved('192.168.0.0/16', 'private (RFC 1918)'),
  reserved('224.0.0.0/4', 'multicast'),
  reserved('240.0.0.0/4', 'reserved / broadcast'),
  reserved('::/128', 'unspecified'),
  reserved('::1/128', 'loopback'),
  reserved('::/96', 'IPv4-compatible (deprecated)'),
  // Built by hand: parseTarget reads ::ffff:0:0/96 as the IPv4 address space itself.
  {
    range: { family: 'ipv6', network: 0xffff00000000n, prefix: 96, cidr: '::ffff:0:0/96' },
    label: 'IPv4-mapped',
  },
  reserved('64:ff9b:1::/48', 'local-use NAT64'),
  reserved('100::/64', 'discard-only'),
  reserved('fec0::/10', 'site-local (deprecated)'),
  reserved('fc00::/7', 'unique-local (private)'),
  reserved('fe80::/10', 'link-local'),
  reserved('ff00::/8', 'multicast'),
];

const NAT64 = parseTarget('64:ff9b::/96');
const SIX_TO_FOUR = parseTarget('2002::/16');

/**
 * The IPv4 network an IPv6 target reaches through a translation prefix (NAT64 64:ff9b::/96,
 * 6to4 2002::/16), so that 64:ff9b::10.0.0.1 is judged as 10.0.0.1. A target wider than the
 * translation prefix itself reaches all of IPv4 and is reported as 0.0.0.0/0.
 */
function embeddedIpv4(t: Target): Target | undefined {
  if (t.family !== 'ipv6') return undefined;
  const v4 = (network: bigint, prefix: number): Target => {
    const p = Math.max(0, Math.min(32, prefix));
    const n = network & mask('ipv4', p);
    return { family: 'ipv4', network: n, prefix: p, cidr: formatCidr('ipv4', n, p) };
  };
  if (overlaps(t, NAT64)) return v4(t.network & 0xffffffffn, t.prefix - 96);
  if (overlaps(t, SIX_TO_FOUR)) return v4((t.network >> 80n) & 0xffffffffn, t.prefix - 16);
  return undefined;
}

/** True when the two networks share at least one address. */
export function overlaps(a: Target, b: Target): boolean {
  if (a.family !== b.family) return false;
  const prefix = Math.min(a.prefix, b.prefix);
  const m = mask(a.family, prefix);
  return (a.network & m) === (b.network & m);
}

/** True when `outer` contains every address of `inner`. */
export function contains(outer: Target, inner: Target): boolean {
  return overlaps(outer, inner) && outer.prefix <= inner.prefix;
}

export interface PrefixLimits {
  /** Widest allowed IPv4 prefix, e.g. 16 refuses /15 and wider. */
  minPrefixV4: number;
  minPrefixV6: number;
}

/**
 * Parses and checks a target against the invariants no policy may relax: never /0, never wider
 * than the configured prefix, never private, loopback or link-local space.
 */
export function checkTarget(input: string, limits: PrefixLimits): Target {
  const target = parseTarget(input);
  const widest = target.family === 'ipv4' ? limits.minPrefixV4 : limits.minPrefixV6;
  const name = target.family === 'ipv4' ? 'IPv4' : 'IPv6';
  if (target.prefix === 0) {
    throw new TargetError(
      input,
      `${target.cidr} would block the whole ${name} internet; the widest allowed ${name} prefix is /${widest}`,
    );
  }
  if (target.prefix < widest) {
    throw new TargetError(
      input,
      `${target.cidr} is wider than allowed; the widest allowed ${name} prefix is /${widest}`,
    );
  }
  const hit = RESERVED.find((r) => overlaps(r.range, target));
  if (hit) {
    throw new TargetError(
      input,
      `${target.cidr} is in ${hit.range.cidr} (${hit.label}); such ranges are never remediated`,
    );
  }
  const inner = embeddedIpv4(target);
  if (inner && inner.prefix < limits.minPrefixV4) {
    throw new TargetError(
      input,
      `${target.cidr} reaches ${inner.cidr} through a translation prefix; the widest allowed IPv4 prefix is /${limits.minPrefixV4}`,
    );
  }
  const innerHit = inner && RESERVED.find((r) => overlaps(r.range, inner));
  if (inner && innerHit) {
    throw new TargetError(
      input,
      `${target.cidr} reaches ${inner.cidr} through a translation prefix, which is in ${innerHit.range.cidr} (${innerHit.label}); such ranges are never remediated`,
    );
  }
  return target;
}
