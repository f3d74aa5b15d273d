/**
 * Human durations ("90s", "15m", "1h30m", "7d") to milliseconds and back, and the TTL cap check.
 * Pure, deterministic code: workflows use it directly; config and the CLI via src/domain.
 */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

export class DurationError extends Error {
  override name = 'DurationError';
}

/** Parses `1h30m`, `90s`, `500ms`, `7d`; a bare number is seconds. Negative values are refused. */
export function parseDuration(input: string): number {
  const text = input.trim().toLowerCase();
  if (/^[0-9]+$/.test(text)) return Number(text) * 1_000;
  const re = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let consumed = 0;
  let match: RegExpExecArray | null;
  while ((match = re.exec(text)) !== null) {
    total += Number(match[1]) * (UNITS[match[2] ?? ''] ?? NaN);
    consumed = re.lastIndex;
  }
  if (text === '' || consumed !== text.length || !Number.isFinite(total)) {
    throw new DurationError(`"${input}" is not a duration (expected e.g. 90s, 15m, 1h30m, 7d)`);
  }
  return Math.round(total);
}

/** Compact form: 3600000 → "1h", 5400000 → "1h30m", 1500 → "1.5s". */
export function formatDuration(ms: number): string {
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms === 0) return '0s';
  if (ms < 1_000) return `${ms}ms`;
  if (ms < 60_000 && ms % 1_000 !== 0) return `${(ms / 1_000).toFixed(1)}s`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1_000);
  for (const [unit, secs] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= secs) {
      parts.push(`${Math.floor(rest / secs)}${unit}`);
      rest %= secs;
    }
  }
  return parts.join('');
}

/** Why a TTL is not acceptable under the cap, or undefined when it is. */
export function checkTtl(ttlMs: number, maxTtlMs: number, what = 'TTL'): string | undefined {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) return `${what} must be greater than zero`;
  if (ttlMs > maxTtlMs) {
    return `${what} ${formatDuration(ttlMs)} exceeds the maximum of ${formatDuration(maxTtlMs)} (PERIMETER_MAX_TTL)`;
  }
  return undefined;
}
