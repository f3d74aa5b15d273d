/**
 * Fixed-layout timestamp parsing by character position: `Date.parse` accepts too much (and
 * reads the strftime `10/Oct/2023:13:55:36 -0700` layout not at all), and a regex per line
 * costs more than the rest of the parser. Every function returns NaN for anything invalid.
 */

const MONTHS = new Map<number, number>(
  ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'].map((m, i) => [
    (m.charCodeAt(0) << 16) | (m.charCodeAt(1) << 8) | m.charCodeAt(2),
    i + 1,
  ]),
);

/** Two decimal digits at `i`, or -1. */
function d2(s: string, i: number): number {
  const a = s.charCodeAt(i) - 48;
  const b = s.charCodeAt(i + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : -1;
}

function d4(s: string, i: number): number {
  const hi = d2(s, i);
  const lo = d2(s, i + 2);
  return hi < 0 || lo < 0 ? -1 : hi * 100 + lo;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function epochMs(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  ms: number,
  offsetMinutes: number,
): number {
  if (year < 1970 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return NaN;
  // 60 is a leap second as some clocks log it; it lands on the next second, as Date does.
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 60) return NaN;
  const days = daysFromCivil(year, month, day);
  return ((days * 24 + hour) * 60 + minute - offsetMinutes) * 60_000 + second * 1000 + ms;
}

/**
 * Milliseconds from a run of fraction digits at `s[start, end)` (`.123456` → 123.456 is cut to
 * 123): -1 if any is not a digit.
 */
function fractionMs(s: string, start: number, end: number): number {
  let ms = 0;
  for (let i = start; i < end; i++) {
    const d = s.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    if (i - start < 3) ms = ms * 10 + d;
  }
  for (let n = end - start; n < 3; n++) ms *= 10;
  return ms;
}

/** `±hhmm` (combined) or `±hh:mm` (ISO) at `s[start, end)` as minutes east of UTC, or NaN. */
function offsetMinutes(s: string, start: number, end: number): number {
  const sign = s.charCodeAt(start);
  if (sign !== 43 && sign !== 45) return NaN;
  const colon = end - start === 6 && s.charCodeAt(start + 3) === 58;
  if (end - start !== 5 && !colon) return NaN;
  const hh = d2(s, start + 1);
  const mm = d2(s, colon ? start + 4 : start + 3);
  if (hh < 0 || hh > 18 || mm < 0 || mm > 59) return NaN;
  return (sign === 45 ? -1 : 1) * (hh * 60 + mm);
}

/**
 * The strftime `%d/%b/%Y:%H:%M:%S %z` time of combined logs in `s[start, end)` (between the
 * brackets), e.g. `10/Oct/2023:13:55:36 -0700`; a `.mmm` fraction after the seconds is accepted.
 */
export function parseClfTime(s: string, start: number, end: number): number {
  if (end - start < 26 || s.charCodeAt(start + 2) !== 47 || s.charCodeAt(start + 6) !== 47) return NaN;
  if (s.charCodeAt(start + 11) !== 58 || s.charCodeAt(start + 14) !== 58 || s.charCodeAt(start + 17) !== 58)
    return NaN;
  const month = MONTHS.get(
    (s.charCodeAt(start + 3) << 16) | (s.charCodeAt(start + 4) << 8) | s.charCodeAt(start + 5),
  );
  if (month === undefined) return NaN;
  const space = s.indexOf(' ', start + 20);
  if (space < 0 || space >= end) return NaN;
  let ms = 0;
  if (space > start + 20) {
    if (s.charCodeAt(start + 20) !== 46) return NaN;
    ms = fractionMs(s, start + 21, space);
    if (ms < 0) return NaN;
  }
  const offset = offsetMinutes(s, space + 1, end);
  if (Number.isNaN(offset)) return NaN;
  const day = d2(s, start);
  const year = d4(s, start + 7);
  const hour = d2(s, start + 12);
  const minute = d2(s, start + 15);
  const second = d2(s, start + 18);
  return epochMs(year, month, day, hour, minute, second, ms, offset);
}

/** ISO 8601 `YYYY-MM-DDTHH:MM:SS[.f…](Z|±hh:mm)` in `s[start, end)`, as ALB writes it. */
export function parseIsoTime(s: string, start: number, end: number): number {
  if (end - start < 20) return NaN;
  if (s.charCodeAt(start + 4) !== 45 || s.charCodeAt(start + 7) !== 45 || s.charCodeAt(start + 10) !== 84)
    return NaN;
  if (s.charCodeAt(start + 13) !== 58 || s.charCodeAt(start + 16) !== 58) return NaN;
  let zone = start + 19;
  let ms = 0;
  if (s.charCodeAt(zone) === 46) {
    let i = zone + 1;
    while (i < end && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
    if (i === zone + 1) return NaN;
    ms = fractionMs(s, zone + 1, i);
    zone = i;
  }
  let offset = 0;
  if (s.charCodeAt(zone) === 90) {
    if (zone + 1 !== end) return NaN;
  } else {
    offset = offsetMinutes(s, zone, end);
    if (Number.isNaN(offset)) return NaN;
  }
  const year = d4(s, start);
  const month = d2(s, start + 5);
  const day = d2(s, start + 8);
  const hour = d2(s, start + 11);
  const minute = d2(s, start + 14);
  const second = d2(s, start + 17);
  return epochMs(year, month, day, hour, minute, second, ms, offset);
}
