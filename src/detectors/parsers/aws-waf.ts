/**
 * AWS WAF logs: one JSON object per line (as Firehose, S3 and CloudWatch Logs deliver them).
 * Besides the request, a WAF log carries verdicts already reached upstream — the rules that
 * matched and the labels they added — which become `upstream` and `labels`.
 */
import type { LogRecord, ParseResult, UpstreamMatch } from '../types';
import { isIpLiteral } from './address';
import { BAD_ADDRESS, MALFORMED, WRONG_FORMAT } from './scan';

type Json = Record<string, unknown>;

const NONE: readonly unknown[] = [];
const DEFAULT_ACTION = 'Default_Action';
const GROUP_TYPES = new Set(['GROUP', 'MANAGED_RULE_GROUP']);
/** Cookie names that mean a logged-in browser; matched by whole name, never inside values. */
const SESSION_COOKIES = new Set([
  'session',
  'sessionid',
  'sid',
  'jsessionid',
  'phpsessid',
  'connect.sid',
  'auth',
  'token',
]);

function object(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function list(v: unknown): readonly unknown[] {
  return Array.isArray(v) ? v : NONE;
}

/** Whether a Cookie header holds a session-like cookie (`__Host-`/`__Secure-` prefixes aside). */
export function hasSessionCookie(cookie: string): boolean {
  let start = 0;
  while (start < cookie.length) {
    let end = cookie.indexOf(';', start);
    if (end < 0) end = cookie.length;
    const eq = cookie.indexOf('=', start);
    let name = cookie
      .slice(start, eq >= 0 && eq < end ? eq : end)
      .trim()
      .toLowerCase();
    if (name.startsWith('__host-')) name = name.slice(7);
    else if (name.startsWith('__secure-')) name = name.slice(9);
    if (SESSION_COOKIES.has(name)) return true;
    start = end + 1;
  }
  return false;
}

function match(rule: unknown, fallbackAction: string, terminating: boolean): UpstreamMatch | undefined {
  const r = object(rule);
  const id = r && text(r.ruleId);
  if (!r || !id) return undefined;
  // Old logs name an excluded rule's treatment in exclusionType (EXCLUDED_AS_COUNT) instead of action.
  const action = text(r.action) ?? text(r.exclusionType) ?? fallbackAction;
  return { rule: id, action, terminating };
}

/**
 * Which ruleGroupList entry ended the evaluation, or -1. A group's terminatingRule is also
 * logged when the group's action is overridden to Count, so it terminated only if the web ACL's
 * terminating rule is a rule group: the entry whose group ID names it, else the last one with a
 * terminatingRule (evaluation stops at the terminating group, so none is listed after it).
 */
function terminatingGroup(log: Json, groups: readonly unknown[]): number {
  const type = text(log.terminatingRuleType);
  const ruleId = text(log.terminatingRuleId) ?? '';
  const isGroup = type === undefined ? ruleId !== '' && ruleId !== DEFAULT_ACTION : GROUP_TYPES.has(type);
  if (!isGroup) return -1;
  let last = -1;
  for (let i = 0; i < groups.length; i++) {
    const g = object(groups[i]);
    if (!g || !object(g.terminatingRule)) continue;
    last = i;
    const groupId = text(g.ruleGroupId) ?? '';
    const name = groupId.slice(groupId.lastIndexOf('#') + 1);
    if (name !== '' && ruleId.includes(name)) return i;
  }
  return last;
}

function upstreamOf(log: Json, action: string): UpstreamMatch[] {
  const out: UpstreamMatch[] = [];
  const push = (m: UpstreamMatch | undefined): void => {
    if (m) out.push(m);
  };
  const ruleId = text(log.terminatingRuleId);
  // The default action is no rule's verdict when it merely lets the request through.
  if (ruleId && !(ruleId === DEFAULT_ACTION && action === 'ALLOW')) {
    out.push({ rule: ruleId, action, terminating: true });
  }
  for (const r of list(log.nonTerminatingMatchingRules)) push(match(r, 'COUNT', false));
  const groups = list(log.ruleGroupList);
  const ended = terminatingGroup(log, groups);
  for (let i = 0; i < groups.length; i++) {
    const g = object(groups[i]);
    if (!g) continue;
    push(match(g.terminatingRule, action, i === ended));
    for (const r of list(g.nonTerminatingMatchingRules)) push(match(r, 'COUNT', false));
    for (const r of list(g.excludedRules)) push(match(r, 'EXCLUDED_AS_COUNT', false));
  }
  return out;
}

/** Parses one WAF log line (already checked for length, emptiness and binary bytes). */
export function parseAwsWaf(line: string): ParseResult {
  if (line.charCodeAt(0) !== 123) return WRONG_FORMAT;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return MALFORMED; // most likely a truncated WAF line
  }
  const log = object(parsed);
  const http = log && object(log.httpRequest);
  if (!log || !http) return WRONG_FORMAT;

  const at = log.timestamp;
  const method = text(http.httpMethod);
  const path = text(http.uri);
  const source = text(http.clientIp);
  if (typeof at !== 'number' || !Number.isFinite(at) || at < 0) return MALFORMED;
  if (!method || !path || source === undefined) return MALFORMED;
  if (!isIpLiteral(source)) return BAD_ADDRESS;

  // Header names are the client's choice: no prototype, so `constructor` or `__proto__` are plain keys.
  const headers = Object.create(null) as Record<string, string>;
  for (const h of list(http.headers)) {
    const header = object(h);
    const name = header && text(header.name);
    const value = header && text(header.value);
    if (!name || value === undefined) continue;
    const key = name.toLowerCase();
    const previous = headers[key];
    // Repeated headers fold as HTTP folds them; cookies with their own separator.
    headers[key] = previous === undefined ? value : previous + (key === 'cookie' ? '; ' : ', ') + value;
  }
  const cookie = headers.cookie;
  const authenticated =
    (headers.authorization ?? '') !== '' || (cookie !== undefined && hasSessionCookie(cookie));

  const args = text(http.args);
  const action = text(log.action) ?? '';
  const labels: string[] = [];
  for (const l of list(log.labels)) {
    const name = text(object(l)?.name);
    if (name) labels.push(name);
  }

  const record: LogRecord = {
    format: 'aws-waf',
    at,
    source,
    method,
    uri: args ? `${path}?${args}` : path,
    headers,
    authenticated,
    upstream: upstreamOf(log, action),
    labels,
  };
  const status = log.responseCodeSent;
  if (typeof status === 'number' && Number.isInteger(status)) record.status = status;
  const userAgent = headers['user-agent'];
  if (userAgent !== undefined) record.userAgent = userAgent;
  return { ok: true, record };
}
