/**
 * What the log parsers produce and the signatures and counters consume: one HTTP request,
 * whatever format it was logged in.
 */

export type LogFormat = 'aws-waf' | 'alb' | 'combined';

/** A verdict another system already reached about the request (AWS WAF rule matches, labels). */
export interface UpstreamMatch {
  /** Rule or rule-group ID as logged, e.g. `AWS-AWSManagedRulesSQLiRuleSet` or `SQLi_QUERYARGUMENTS`. */
  rule: string;
  /** BLOCK, COUNT, CAPTCHA, CHALLENGE, ALLOW, EXCLUDED_AS_COUNT … as logged. */
  action: string;
  /** Whether this rule ended the request's evaluation (terminatingRule) or only counted. */
  terminating: boolean;
}

export interface LogRecord {
  format: LogFormat;
  /** Request time, epoch milliseconds (the log's own clock: replays keep their timing). */
  at: number;
  /** Client address as logged (not normalised); for ALB the client, for WAF `httpRequest.clientIp`. */
  source: string;
  method: string;
  /** Path and query string as sent, still percent-encoded. */
  uri: string;
  /** HTTP status returned, when the format has one. */
  status?: number;
  userAgent?: string;
  /** Request headers the format records, names lower-cased (the WAF log has them all; combined has referer and user-agent). */
  headers: Record<string, string>;
  /** The request carried credentials: an Authorization header, a session cookie, or a logged-in user (combined's `%u`). */
  authenticated: boolean;
  /** The principal, when the log names one (combined's remote user). */
  user?: string;
  /** AWS WAF only: rules that matched (terminating and non-terminating, incl. inside rule groups). */
  upstream?: UpstreamMatch[];
  /** AWS WAF only: labels added to the request, e.g. `awswaf:managed:aws:sql-database:SQLi_QueryArguments`. */
  labels?: string[];
}

/** Why a line was not turned into a record: counted and reported, never a crash. */
export type SkipReason = 'empty' | 'malformed' | 'wrong-format' | 'too-long' | 'binary' | 'bad-address';

export type ParseResult = { ok: true; record: LogRecord } | { ok: false; reason: SkipReason };

/** The attack classes the built-in signatures report. */
export const ATTACK_CLASSES = ['sqli', 'xss', 'traversal', 'scanner'] as const;
export type AttackClass = (typeof ATTACK_CLASSES)[number];
