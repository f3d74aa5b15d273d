/**
 * Access-log lines → `LogRecord`s. Every line yields a record or a `SkipReason`, never an
 * exception: logs hold whatever attackers sent, and one bad line must not stop a run.
 *
 * Reasons: `too-long` (over MAX_LINE_LENGTH, not even scanned), `empty`, `binary` (a NUL byte,
 * or a rejected line that is mostly control / undecodable characters), else the format's verdict:
 * `wrong-format` when the line has the shape of another supported format, `malformed` when it
 * has no usable shape or a broken field (truncated, garbage request line, bad timestamp), and
 * `bad-address` when the client address is not an IP literal (a hostname, `unix:`, `-`).
 */
import type { LogFormat, ParseResult, SkipReason } from '../types';
import { parseAlb } from './alb';
import { parseAwsWaf } from './aws-waf';
import { parseCombined } from './combined';

export { parseAlb } from './alb';
export { parseAwsWaf, hasSessionCookie } from './aws-waf';
export { parseCombined } from './combined';
export { isIpLiteral } from './address';

/** Longer lines are skipped as `too-long` (the line splitter drops them before they are whole). */
export const MAX_LINE_LENGTH = 64 * 1024;
/** How many non-empty lines `detectFormat` looks at. */
const DETECT_SAMPLE = 20;

type Skip = { ok: false; reason: SkipReason };
const skip = (reason: SkipReason): Skip => Object.freeze({ ok: false, reason });
const TOO_LONG = skip('too-long');
const EMPTY = skip('empty');
const BINARY = skip('binary');
const MALFORMED = skip('malformed');

const PARSERS: Record<LogFormat, (line: string) => ParseResult> = {
  'aws-waf': parseAwsWaf,
  alb: parseAlb,
  combined: parseCombined,
};
/** Cheapest rejection first: WAF needs a `{`, ALB a known first word; combined scans further. */
const FORMATS: readonly LogFormat[] = ['aws-waf', 'alb', 'combined'];

// C0 controls except tab, DEL, C1 controls, and U+FFFD (what undecodable UTF-8 becomes).
const SUSPECT = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\ufffd]/;

/**
 * More than a quarter of the characters non-printable. Asked only of lines no format accepts:
 * scanning every line for it would cost a fifth of the parse, and loggers escape control bytes.
 */
function isMostlyBinary(line: string): boolean {
  if (!SUSPECT.test(line)) return false;
  let suspect = 0;
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if ((c < 32 && c !== 9) || (c >= 127 && c <= 159) || c === 0xfffd) suspect++;
  }
  return suspect * 4 > line.length;
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9 || c === 13;
}

/** The line ready for a parser (trimmed of blanks), or why it never reaches one. */
function prepare(raw: string): string | Skip {
  if (raw.length > MAX_LINE_LENGTH) return TOO_LONG;
  let line = raw;
  if (line.length > 0 && (isBlank(line.charCodeAt(0)) || isBlank(line.charCodeAt(line.length - 1)))) {
    line = line.trim();
  }
  if (line.length === 0) return EMPTY;
  // No text log holds a NUL byte (JSON cannot, loggers escape it): a cheap, certain sign of binary.
  if (line.indexOf('\u0000') >= 0) return BINARY;
  return line;
}

/** A rejection, unless the line is mostly binary noise: then that is the reason. */
function rejected(line: string, result: ParseResult): ParseResult {
  return !result.ok && isMostlyBinary(line) ? BINARY : result;
}

/** One format's verdict, where `wrong-format` is kept only if another format knows the line's shape. */
function verdict(line: string, format: LogFormat): ParseResult {
  const result = PARSERS[format](line);
  if (result.ok) return result;
  if (result.reason !== 'wrong-format') return rejected(line, result);
  for (const other of FORMATS) {
    if (other === format) continue;
    const r = PARSERS[other](line);
    if (r.ok || r.reason !== 'wrong-format') return rejected(line, result);
  }
  return rejected(line, MALFORMED);
}

/** The first format that accepts the line; else the verdict of the first that knows its shape. */
function parseAny(line: string): ParseResult {
  let known: ParseResult | undefined;
  for (const format of FORMATS) {
    const r = PARSERS[format](line);
    if (r.ok) return r;
    if (known === undefined && r.reason !== 'wrong-format') known = r;
  }
  return rejected(line, known ?? MALFORMED);
}

/** Parses one line (without its newline) as `format`. */
export function parseLine(line: string, format: LogFormat): ParseResult {
  const prepared = prepare(line);
  return typeof prepared === 'string' ? verdict(prepared, format) : prepared;
}

/**
 * The format of a sample (for `--format auto`): the one accepting most of the first
 * non-empty lines, ties going to the format seen first; undefined if none accepts any.
 */
export function detectFormat(sampleLines: string[]): LogFormat | undefined {
  const votes = new Map<LogFormat, number>();
  let looked = 0;
  for (const raw of sampleLines) {
    const line = prepare(raw);
    if (line === EMPTY) continue;
    if (++looked > DETECT_SAMPLE) break;
    if (typeof line !== 'string') continue;
    const r = parseAny(line);
    if (r.ok) votes.set(r.record.format, (votes.get(r.record.format) ?? 0) + 1);
  }
  let best: LogFormat | undefined;
  for (const [format, n] of votes) if (best === undefined || n > (votes.get(best) ?? 0)) best = format;
  return best;
}

/**
 * A parser for one input. With 'auto' the first line any format accepts settles the format
 * for the rest of the input; lines of another supported format are then `wrong-format`.
 */
export function createLineParser(format: LogFormat | 'auto'): (line: string) => ParseResult {
  if (format !== 'auto') return (line) => parseLine(line, format);
  let settled: LogFormat | undefined;
  return (line) => {
    if (settled !== undefined) return parseLine(line, settled);
    const prepared = prepare(line);
    if (typeof prepared !== 'string') return prepared;
    const result = parseAny(prepared);
    if (result.ok) settled = result.record.format;
    return result;
  };
}
