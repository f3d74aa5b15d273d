/**
 * nginx / Apache "combined" access logs, and "common" (the same without referer and UA):
 *
 *   203.0.113.7 - alice [10/Oct/2023:13:55:36 -0700] "GET /a?q=1 HTTP/1.1" 200 2326 "ref" "UA" …
 *
 * Hand-written scanning with indexOf: this parser sits on the detector's hot path (hundreds of
 * thousands of lines a second), where one backtracking regex per line would dominate the cost.
 * Quoted fields appended after the user agent (nginx `log_format` variants) are ignored.
 */
import type { LogRecord, ParseResult } from '../types';
import * as address from './address';
import * as time from './time';
import * as scan from './scan';

// Bound once at load: run through tsx (as the CLI is), every use of an imported binding is a
// getter call; on this per-line path those calls measured about a fifth of the parse time.
const { isIpLiteral } = address;
const { parseClfTime } = time;
const { BAD_ADDRESS, closingQuote, MALFORMED, optionalField, splitRequest, WRONG_FORMAT } = scan;
const QUOTE = 34;
const SLASH = 47;
const SPACE = 32;

const request: scan.RequestLine = { method: '', target: '' };

/** Parses one combined/common line (already checked for length, emptiness and binary bytes). */
export function parseCombined(line: string): ParseResult {
  // Shape: `addr ident user [dd/...`; anything else is some other kind of line.
  const sp1 = line.indexOf(' ');
  if (sp1 <= 0 || line.charCodeAt(0) === 123) return WRONG_FORMAT;
  const open = line.indexOf(' [', sp1);
  if (open < 0 || line.charCodeAt(open + 4) !== SLASH) return WRONG_FORMAT;
  // ident (RFC 1413, in practice `-`) has no spaces; the user may (a basic-auth name), so it
  // runs up to the bracket.
  const sp2 = line.indexOf(' ', sp1 + 1);
  if (sp2 < 0 || sp2 >= open) return WRONG_FORMAT;

  const close = line.indexOf(']', open + 2);
  if (close < 0) return MALFORMED;
  const at = parseClfTime(line, open + 2, close);
  if (Number.isNaN(at)) return MALFORMED;
  if (line.charCodeAt(close + 1) !== SPACE || line.charCodeAt(close + 2) !== QUOTE) return MALFORMED;
  const requestEnd = closingQuote(line, close + 3);
  if (requestEnd < 0 || !splitRequest(line, close + 3, requestEnd, request)) return MALFORMED;

  // Status: three digits (nginx's 499 and 444 included), or `-` when none was sent.
  let p = requestEnd + 1;
  if (line.charCodeAt(p) !== SPACE) return MALFORMED;
  p++;
  let status = -1;
  const s0 = line.charCodeAt(p) - 48;
  const s1 = line.charCodeAt(p + 1) - 48;
  const s2 = line.charCodeAt(p + 2) - 48;
  if (s0 >= 0 && s0 <= 9 && s1 >= 0 && s1 <= 9 && s2 >= 0 && s2 <= 9) {
    status = s0 * 100 + s1 * 10 + s2;
    p += 3;
  } else if (line.charCodeAt(p) === 45) {
    p += 1; // `-`
  } else {
    return MALFORMED;
  }
  if (p < line.length && line.charCodeAt(p) !== SPACE) return MALFORMED;

  // Bytes sent (unused), then the optional referer and user agent.
  let referer: string | undefined;
  let userAgent: string | undefined;
  const bytesEnd = line.indexOf(' ', p + 1);
  if (bytesEnd >= 0 && line.charCodeAt(bytesEnd + 1) === QUOTE) {
    const refEnd = closingQuote(line, bytesEnd + 2);
    if (refEnd < 0) return MALFORMED;
    referer = optionalField(line, bytesEnd + 2, refEnd);
    if (line.charCodeAt(refEnd + 1) === SPACE && line.charCodeAt(refEnd + 2) === QUOTE) {
      const uaEnd = closingQuote(line, refEnd + 3);
      if (uaEnd < 0) return MALFORMED;
      userAgent = optionalField(line, refEnd + 3, uaEnd);
    }
  }

  const source = line.slice(0, sp1);
  if (!isIpLiteral(source)) return BAD_ADDRESS;
  // Apache escapes the user like any field; `-` means no authenticated user.
  const user = open > sp2 + 1 ? optionalField(line, sp2 + 1, open) : undefined;

  const headers: Record<string, string> = {};
  const record: LogRecord = {
    format: 'combined',
    at,
    source,
    method: request.method,
    uri: request.target,
    headers,
    authenticated: user !== undefined,
  };
  if (status >= 0) record.status = status;
  if (userAgent !== undefined) {
    record.userAgent = userAgent;
    headers['user-agent'] = userAgent;
  }
  if (referer !== undefined) headers.referer = referer;
  if (user !== undefined) record.user = user;
  return { ok: true, record };
}
