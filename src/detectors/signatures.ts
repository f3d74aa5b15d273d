/**
 * The built-in request classifier: which attack classes a logged request shows.
 *
 * - The path, the whole query string and the referer's query are decoded the way servers and
 *   browsers decode them (see ./signatures/normalise) and matched against SQL injection, XSS and
 *   traversal signatures. The query is inspected in one piece: rules treat `=` and `&` as the
 *   start of a value, so a payload is found whichever parameter carries it, and one split
 *   across parameters (an unencoded `&#60;`) still reads as one.
 * - The referer is inspected for SQL injection and XSS only (reflected through analytics and
 *   logging pages); a path in it is the page the visitor came from, not a file request.
 * - Scanner: attack tools' UA strings, scanner headers and probe paths (./signatures/scanners).
 * - AWS WAF logs: rule matches and labels AWS already attached (./signatures/upstream).
 *
 * Designed for the detector's hot path: each rule family sits behind a cheap test for what it
 * needs, parameters made only of letters, digits, `_` and `-` skip the rules, and verdicts are
 * remembered per URI and referer, which logs repeat. No rule backtracks beyond a bounded window,
 * and nothing throws on malformed input.
 *
 * The method is part of the signature for callers' convenience; no rule depends on it today.
 */
import type { AttackClass, LogRecord } from './types';
import { classList, SCANNER, SQLI, TRAVERSAL, XSS } from './signatures/bits';
import { normalise, normaliseDecoded, urlDecode } from './signatures/normalise';
import { hasScannerHeaders, isScannerUa, isScannerPath } from './signatures/scanners';
import { isSqlInjection } from './signatures/sqli';
import { isBase64Traversal, isPathTraversal, isValueTraversal } from './signatures/traversal';
import { upstreamClasses } from './signatures/upstream';
import { isCrossSiteScripting } from './signatures/xss';

export type ClassifiableRequest = Pick<
  LogRecord,
  'uri' | 'userAgent' | 'headers' | 'labels' | 'upstream' | 'method'
>;

/**
 * A query of plain parameters only (names and values of letters, digits, `_`, `-` but not the
 * `--` comment): IDs, pages, sort keys, tracking tokens. No payload fits in one (they need
 * punctuation, blanks or encoding), so only the base64 check applies.
 */
const PLAIN_QUERY = /^[\w=&-]*$/;

/** Class bits of a raw query string (or a referer's), limited to `wanted`. */
function inspectQuery(raw: string, wanted: number): number {
  if (PLAIN_QUERY.test(raw) && !raw.includes('--')) {
    return wanted & TRAVERSAL && isBase64Traversal(raw) ? TRAVERSAL : 0;
  }
  const decoded = urlDecode(raw, true);
  const text = normaliseDecoded(decoded);
  let bits = 0;
  if (wanted & SQLI && isSqlInjection(text)) bits |= SQLI;
  if (wanted & XSS && isCrossSiteScripting(text)) bits |= XSS;
  if (wanted & TRAVERSAL && (isValueTraversal(text) || isBase64Traversal(decoded))) bits |= TRAVERSAL;
  return bits;
}

/** Class bits of a request URI (path and query), scanner probe paths included. */
function inspectUri(uri: string): number {
  const q = uri.indexOf('?');
  const path = normalise(q < 0 ? uri : uri.slice(0, q), false);
  let bits = 0;
  if (isSqlInjection(path)) bits |= SQLI;
  if (isCrossSiteScripting(path)) bits |= XSS;
  if (isPathTraversal(path)) bits |= TRAVERSAL;
  if (isScannerPath(path)) bits |= SCANNER;
  if (q >= 0 && q < uri.length - 1) bits |= inspectQuery(uri.slice(q + 1), SQLI | XSS | TRAVERSAL);
  return bits;
}

// Access logs repeat themselves (every visitor fetches the same assets and pages, from the same
// referring pages), so verdicts are remembered per URI and per referer. A map is dropped when
// full rather than tracked as an LRU, which is cheaper and enough for the repeats that matter.
// Long keys are not kept: repeats are short, and 8,192 huge URIs would hold hundreds of MB.
const CACHE_LIMIT = 8192;
const CACHED_KEY_MAX = 1024;
const uriVerdicts = new Map<string, number>();
const refererVerdicts = new Map<string, number>();

function remembered(cache: Map<string, number>, key: string, inspect: (key: string) => number): number {
  if (key.length > CACHED_KEY_MAX) return inspect(key);
  const known = cache.get(key);
  if (known !== undefined) return known;
  const bits = inspect(key);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, bits);
  return bits;
}

function inspectReferer(referer: string): number {
  const q = referer.indexOf('?');
  return q < 0 || q === referer.length - 1 ? 0 : inspectQuery(referer.slice(q + 1), SQLI | XSS);
}

/** The attack classes a request shows: unique, in `ATTACK_CLASSES` order, empty when none. */
/**
 * Only this much of a URI or referer is inspected: a bound on the work one hostile line can cost
 * (AWS WAF itself inspects only the first kilobytes of a request part).
 */
export const INSPECTED_LENGTH = 8_192;
const inspected = (text: string) => (text.length > INSPECTED_LENGTH ? text.slice(0, INSPECTED_LENGTH) : text);

export function classifyRequest(req: ClassifiableRequest): AttackClass[] {
  let bits =
    upstreamClasses(req.labels, req.upstream) | remembered(uriVerdicts, inspected(req.uri), inspectUri);
  if (req.userAgent && isScannerUa(req.userAgent)) bits |= SCANNER;
  if (hasScannerHeaders(req.headers)) bits |= SCANNER;
  const referer = req.headers.referer;
  if (referer && (bits & (SQLI | XSS)) !== (SQLI | XSS)) {
    bits |= remembered(refererVerdicts, inspected(referer), inspectReferer);
  }
  return classList(bits);
}

/**
 * The attack classes one parameter value shows (a form field, a JSON string, a header value),
 * taken as the application received it: it is decoded again (double-encoding), but `+` stays a
 * plus. Never `scanner`, which is about who sends a request, not what a value holds.
 */
export function classifyValue(value: string): AttackClass[] {
  const decoded = urlDecode(value, false);
  const text = normaliseDecoded(decoded);
  let bits = 0;
  if (isSqlInjection(text)) bits |= SQLI;
  if (isCrossSiteScripting(text)) bits |= XSS;
  if (isValueTraversal(text) || isBase64Traversal(`=${decoded}`)) bits |= TRAVERSAL;
  return classList(bits);
}
