/**
 * Index-based scanning shared by the text formats (combined, ALB): quoted fields with the
 * loggers' backslash escapes, and HTTP request lines. Everything works on offsets into the
 * line, so a line costs no allocations beyond the strings that end up in its record.
 */
import type { ParseResult } from '../types';

const SPACE = 32;
const SLASH = 47;
const BACKSLASH = 92;

// Shared, frozen skip results: a skipped line allocates nothing.
export const MALFORMED: ParseResult = Object.freeze({ ok: false, reason: 'malformed' });
export const WRONG_FORMAT: ParseResult = Object.freeze({ ok: false, reason: 'wrong-format' });
export const BAD_ADDRESS: ParseResult = Object.freeze({ ok: false, reason: 'bad-address' });

/**
 * Index of the quote that closes a field whose content starts at `from`, or -1. nginx writes a
 * quote inside a field as `\x22` and Apache as `\"`: a quote after an odd run of backslashes is
 * part of the content.
 */
export function closingQuote(line: string, from: number): number {
  let i = line.indexOf('"', from);
  while (i >= 0) {
    let k = i - 1;
    while (k >= from && line.charCodeAt(k) === BACKSLASH) k--;
    if ((i - 1 - k) % 2 === 0) return i;
    i = line.indexOf('"', i + 1);
  }
  return -1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

const SIMPLE_ESCAPES: Record<number, string> = { 34: '"', 92: '\\', 110: '\n', 114: '\r', 116: '\t' };
const utf8 = new TextDecoder();

/**
 * `line[start, end)` with the logger's escapes undone (`\"`, `\\`, `\n`, `\xHH`), so a value
 * is what the client sent. nginx escapes every byte ≥ 0x80 as `\xHH`: runs of those are decoded
 * as UTF-8. Unknown escapes stay as logged.
 */
export function fieldText(line: string, start: number, end: number): string {
  const first = line.indexOf('\\', start);
  if (first < 0 || first >= end) return line.slice(start, end);
  let out = '';
  let run = start;
  let bytes: number[] | undefined;
  const flush = (): void => {
    if (bytes) out += utf8.decode(Uint8Array.from(bytes));
    bytes = undefined;
  };
  for (let i = first; i < end;) {
    if (line.charCodeAt(i) !== BACKSLASH || i + 1 >= end) {
      i++;
      continue;
    }
    const next = line.charCodeAt(i + 1);
    const hi = next === 120 && i + 3 < end ? hexValue(line.charCodeAt(i + 2)) : -1;
    const lo = hi >= 0 ? hexValue(line.charCodeAt(i + 3)) : -1;
    const simple = SIMPLE_ESCAPES[next];
    if (lo < 0 && simple === undefined) {
      i += 2;
      continue;
    }
    if (i > run) {
      flush();
      out += line.slice(run, i);
    }
    if (lo >= 0) {
      const byte = hi * 16 + lo;
      if (byte < 0x80) {
        flush();
        out += String.fromCharCode(byte);
      } else {
        (bytes ??= []).push(byte);
      }
      i += 4;
    } else {
      flush();
      out += simple;
      i += 2;
    }
    run = i;
  }
  flush();
  return out + line.slice(run, end);
}

/** The value of a quoted field, or undefined for the loggers' `-` (no value). */
export function optionalField(line: string, start: number, end: number): string | undefined {
  if (end - start === 1 && line.charCodeAt(start) === 45) return undefined;
  return fieldText(line, start, end);
}

/** Scratch output of `splitRequest`: one per module, reused for every line. */
export interface RequestLine {
  method: string;
  target: string;
}

function isMethodChar(c: number): boolean {
  return (
    (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95 || c === 46
  );
}

/**
 * Splits the request line in `line[start, end)`: `METHOD target HTTP/x.y`, or HTTP/0.9's
 * `METHOD /path`. False for what is not a request line: `-` (nothing was read), TLS or SSH bytes
 * sent to a plain-HTTP port, any other noise. The target keeps spaces (a raw space in a path).
 */
export function splitRequest(line: string, start: number, end: number, out: RequestLine): boolean {
  const c0 = line.charCodeAt(start);
  if (!((c0 >= 65 && c0 <= 90) || (c0 >= 97 && c0 <= 122))) return false;
  let i = start + 1;
  while (i < end && isMethodChar(line.charCodeAt(i))) i++;
  if (i >= end || i - start > 32 || line.charCodeAt(i) !== SPACE) return false;
  const targetStart = i + 1;
  let targetEnd = end;
  const lastSpace = line.lastIndexOf(' ', end - 1);
  if (lastSpace > i && line.startsWith('HTTP/', lastSpace + 1)) targetEnd = lastSpace;
  else if (line.charCodeAt(targetStart) !== SLASH) return false;
  if (targetEnd <= targetStart) return false;
  out.method = line.slice(start, i);
  out.target = fieldText(line, targetStart, targetEnd);
  return true;
}
