/**
 * A cheap syntactic check that a logged client address is an IPv4 or IPv6 literal. It runs on
 * every line, so it scans character codes instead of splitting strings or building bigints;
 * the domain layer (`src/domain/targets.ts`) parses and vets an address again before any block.
 */

const DOT = 46;
const COLON = 58;

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

/** Dotted quad between `start` and `end`, octets 0–255 without leading zeros (as the domain layer requires). */
function isIpv4(s: string, start: number, end: number): boolean {
  let parts = 0;
  let digits = 0;
  let value = 0;
  let first = 0;
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (isDigit(c)) {
      if (digits === 0) first = c;
      else if (first === 48) return false;
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return false;
    } else if (c === DOT) {
      if (digits === 0 || ++parts > 3) return false;
      digits = 0;
      value = 0;
    } else {
      return false;
    }
  }
  return parts === 3 && digits > 0;
}

/** Hex groups with at most one `::`, optionally ending in a dotted quad; zone IDs (`%eth0`) are refused. */
function isIpv6(s: string): boolean {
  const n = s.length;
  if (n < 2 || n > 45) return false;
  let groups = 0;
  let digits = 0;
  let compressed = false;
  let i = 0;
  if (s.charCodeAt(0) === COLON) {
    if (s.charCodeAt(1) !== COLON) return false;
    if (n === 2) return true;
    compressed = true;
    i = 2;
  }
  let groupStart = i;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === COLON) {
      if (digits === 0) return false;
      groups++;
      digits = 0;
      if (s.charCodeAt(i + 1) === COLON) {
        if (compressed) return false;
        compressed = true;
        i++;
        if (i + 1 === n) return groups <= 7;
      } else if (i + 1 === n) {
        return false;
      }
      groupStart = i + 1;
    } else if (isHex(c)) {
      if (++digits > 4) return false;
    } else if (c === DOT) {
      // An embedded IPv4 tail (::ffff:192.0.2.1) stands for the last two groups.
      if (!isIpv4(s, groupStart, n)) return false;
      groups += 2;
      return compressed ? groups <= 7 : groups === 8;
    } else {
      return false;
    }
  }
  if (digits > 0) groups++;
  return compressed ? groups <= 7 : groups === 8;
}

/** Whether `s` is, syntactically, a single IPv4 or IPv6 address (no port, no brackets, no prefix). */
export function isIpLiteral(s: string): boolean {
  return s.indexOf(':') >= 0 ? isIpv6(s) : isIpv4(s, 0, s.length);
}
