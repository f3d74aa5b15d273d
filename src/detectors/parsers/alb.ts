/**
 * AWS Application Load Balancer access logs: space-separated, some fields quoted.
 *
 *   type time elb client:port target:port req_t target_t resp_t elb_status target_status
 *   received sent "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id"
 *   "domain_name" "chosen_cert_arn" matched_rule_priority request_creation_time
 *   "actions_executed" "redirect_url" "error_reason" … (AWS keeps appending fields: ignored)
 *
 * The request is `GET https://host:443/path?q HTTP/1.1`; the record keeps path and query only.
 */
import type { LogRecord, ParseResult } from '../types';
import * as address from './address';
import * as time from './time';
import * as scan from './scan';

// Bound once at load: under tsx every use of an imported binding is a getter call (see combined.ts).
const { isIpLiteral } = address;
const { parseIsoTime } = time;
const { BAD_ADDRESS, closingQuote, MALFORMED, optionalField, splitRequest, WRONG_FORMAT } = scan;
const QUOTE = 34;
const SPACE = 32;

const TYPES = new Set(['http', 'https', 'h2', 'grpcs', 'ws', 'wss']);
/** Unquoted fields before the quoted request. */
const LEADING_FIELDS = 12;
/** Fields between the user agent and actions_executed. */
const FIELDS_TO_ACTIONS = 8;

const request: scan.RequestLine = { method: '', target: '' };
// Offsets of the spaces ending the leading fields, reused across lines.
const ends = new Int32Array(LEADING_FIELDS);

/** Start of leading field `k` (k ≥ 1) of the line whose spaces `ends` holds. */
function fieldStart(k: number): number {
  return (ends[k - 1] ?? 0) + 1;
}

/** Start of the field after the one starting at `p` (quoted or not), or -1 at the end of the line. */
function nextField(line: string, p: number): number {
  if (line.charCodeAt(p) === QUOTE) {
    const q = closingQuote(line, p + 1);
    return q < 0 || line.charCodeAt(q + 1) !== SPACE ? -1 : q + 2;
  }
  const s = line.indexOf(' ', p);
  return s < 0 ? -1 : s + 1;
}

/**
 * `client:port` → the address: `1.2.3.4:5678`, `[2001:db8::1]:5678`, or IPv6 without brackets
 * (`2001:db8::1:5678`), where the port is the last group: ALB always logs one.
 */
function clientAddress(line: string, start: number, end: number): string {
  if (line.charCodeAt(start) === 91) {
    const close = line.indexOf(']', start);
    return close < 0 || close > end ? '' : line.slice(start + 1, close);
  }
  const colon = line.lastIndexOf(':', end - 1);
  return line.slice(start, colon > start ? colon : end);
}

/** Splits an absolute-form target into host and path+query; other forms stay as they are. */
function splitTarget(target: string, headers: Record<string, string>): string {
  const scheme = target.indexOf('://');
  if (scheme < 0) return target;
  const hostStart = scheme + 3;
  let pathStart = hostStart;
  while (pathStart < target.length) {
    const c = target.charCodeAt(pathStart);
    if (c === 47 || c === 63 || c === 35) break; // `/`, `?`, `#`
    pathStart++;
  }
  // Host without the port ALB always adds (`[v6]:443` keeps its brackets).
  const colon = target.lastIndexOf(':', pathStart - 1);
  const bracket = target.lastIndexOf(']', pathStart - 1);
  const hostEnd = colon >= hostStart && colon > bracket ? colon : pathStart;
  if (hostEnd > hostStart) headers.host = target.slice(hostStart, hostEnd);
  if (pathStart === target.length) return '/';
  return target.charCodeAt(pathStart) === 47 ? target.slice(pathStart) : '/' + target.slice(pathStart);
}

/** Parses one ALB line (already checked for length, emptiness and binary bytes). */
export function parseAlb(line: string): ParseResult {
  const typeEnd = line.indexOf(' ');
  if (typeEnd < 2 || typeEnd > 5 || !TYPES.has(line.slice(0, typeEnd))) return WRONG_FORMAT;
  const t0 = line.charCodeAt(typeEnd + 1);
  if (t0 < 48 || t0 > 57) return WRONG_FORMAT;

  let p = typeEnd;
  ends[0] = typeEnd;
  for (let k = 1; k < LEADING_FIELDS; k++) {
    p = line.indexOf(' ', p + 1);
    if (p < 0) return MALFORMED;
    ends[k] = p;
  }
  const at = parseIsoTime(line, fieldStart(1), ends[1] ?? 0);
  if (Number.isNaN(at)) return MALFORMED;

  // elb_status_code: three digits, or `-` when the client went away before a response.
  const statusStart = fieldStart(8);
  const statusLength = (ends[8] ?? 0) - statusStart;
  let status = -1;
  if (statusLength === 3) {
    status = 0;
    for (let i = statusStart; i < statusStart + 3; i++) {
      const d = line.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return MALFORMED;
      status = status * 10 + d;
    }
  } else if (statusLength !== 1 || line.charCodeAt(statusStart) !== 45) {
    return MALFORMED;
  }

  const requestStart = (ends[11] ?? 0) + 1;
  if (line.charCodeAt(requestStart) !== QUOTE) return MALFORMED;
  const requestEnd = closingQuote(line, requestStart + 1);
  if (requestEnd < 0) return MALFORMED;
  // ALB writes `"- http://host:80- -"` for requests it could not parse.
  if (!splitRequest(line, requestStart + 1, requestEnd, request)) return MALFORMED;
  if (line.charCodeAt(requestEnd + 1) !== SPACE || line.charCodeAt(requestEnd + 2) !== QUOTE)
    return MALFORMED;
  const uaEnd = closingQuote(line, requestEnd + 3);
  if (uaEnd < 0) return MALFORMED;
  const userAgent = optionalField(line, requestEnd + 3, uaEnd);

  const source = clientAddress(line, fieldStart(3), ends[3] ?? 0);
  if (!isIpLiteral(source)) return BAD_ADDRESS;

  // An `authenticate` action followed by `forward`: the ALB itself (OIDC / Cognito) let a
  // logged-in user through. Older logs without actions_executed say nothing: not authenticated.
  let authenticated = false;
  let f = line.charCodeAt(uaEnd + 1) === SPACE ? uaEnd + 2 : -1;
  for (let k = 0; k < FIELDS_TO_ACTIONS && f >= 0; k++) f = nextField(line, f);
  if (f >= 0 && line.charCodeAt(f) === QUOTE) {
    const actionsEnd = closingQuote(line, f + 1);
    const actions = actionsEnd < 0 ? '' : line.slice(f + 1, actionsEnd);
    authenticated = actions.includes('authenticate') && actions.includes('forward');
  }

  const headers: Record<string, string> = {};
  const uri = splitTarget(request.target, headers);
  const record: LogRecord = {
    format: 'alb',
    at,
    source,
    method: request.method,
    uri,
    headers,
    authenticated,
  };
  if (status >= 0) record.status = status;
  if (userAgent !== undefined) {
    record.userAgent = userAgent;
    headers['user-agent'] = userAgent;
  }
  return { ok: true, record };
}
