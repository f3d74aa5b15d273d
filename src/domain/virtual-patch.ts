/**
 * Virtual patches: a narrow, temporary WAF rule in front of one known-vulnerable endpoint.
 * This module is the pure part — what a patch request may ask for and what it means — shared
 * by the client (bad input starts nothing) and the workflow's validate step (the worker's caps).
 * The AWS rule itself is built in src/waf/patch-rules.ts.
 */
import { checkTtl, formatDuration } from './durations';
import { PolicyError } from './policy';

export const PATCH_KINDS = ['sqli', 'xss', 'traversal', 'regex'] as const;
export type PatchKind = (typeof PATCH_KINDS)[number];

export const PATH_MATCHES = ['exact', 'prefix'] as const;
export type PathMatch = (typeof PATH_MATCHES)[number];

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;

/** The part of the request the attack match inspects. */
export type PatchField =
  | { type: 'uri' }
  | { type: 'query' }
  | { type: 'query-arg'; name: string }
  | { type: 'body' }
  | { type: 'header'; name: string };

/** What a caller asks for; every field is checked before anything starts. */
export interface PatchRequest {
  findingId: string;
  path: string;
  match?: string;
  method?: string;
  /** `uri`, `query`, `query:<name>`, `body`, `header:<name>`; defaults to `query`. */
  field?: string;
  kind: string;
  /** Only for kind `regex`. */
  pattern?: string;
  ttlMs: number;
  observeMs: number;
}

/** A checked patch: canonical, JSON-friendly, what the workflow carries and the WAF rule is built from. */
export interface PatchSpec {
  findingId: string;
  path: string;
  match: PathMatch;
  /** Upper case; absent means any method. */
  method?: string;
  /** Canonical field text, e.g. `query:q`, `header:x-api-key`. */
  field: string;
  kind: PatchKind;
  /** The regexes the rule's pattern set holds (kind `regex`: the caller's; `traversal`: built in). */
  patterns?: string[];
}

export interface PatchLimits {
  maxTtlMs: number;
  maxObserveMs: number;
}

/** Finding IDs name the workflow, the rule and its label: letters, digits, `-` and `_`. */
const FINDING_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$/;
/** AWS WAF's byte match search strings are at most 200 bytes. */
const MAX_PATH_LENGTH = 200;
/** Kept well under AWS's limit so a pattern stays reviewable in a Slack message and a diff. */
export const MAX_PATTERN_LENGTH = 200;
const FIELD_NAME = /^[A-Za-z0-9_.[\]-]{1,64}$/;
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;

/**
 * Path traversal and local file inclusion, for the URL-decoded and lower-cased field: a `..`
 * segment, an encoded dot that survived one decode, and the files such probes go after.
 */
export const TRAVERSAL_PATTERNS: readonly string[] = [
  // A `..` segment at the start, after a separator, or as a parameter's value (`file=../x`).
  '(?:^|[/\\\\=&;,:])\\.\\.(?:[/\\\\]|$)',
  '%2e%2e|%252e|\\.%2e|%2e\\.',
  '(?:^|[/\\\\])(?:etc[/\\\\](?:passwd|shadow|hosts)|proc[/\\\\]self[/\\\\]|windows[/\\\\]win\\.ini|boot\\.ini)',
];

export function patchRuleName(prefix: string, findingId: string): string {
  return `${prefix}-vpatch-${findingId}`;
}

/** The finding a managed patch rule (or its pattern set) belongs to; undefined for anything else. */
export function parsePatchRuleName(prefix: string, name: string): string | undefined {
  const head = `${prefix}-vpatch-`;
  if (!name.startsWith(head)) return undefined;
  const id = name.slice(head.length);
  return FINDING_ID.test(id) ? id : undefined;
}

/** The label the rule adds to matching requests: how WAF logs tie a match back to its patch. */
export function patchLabel(prefix: string, findingId: string): string {
  return `${prefix}:vpatch:${findingId}`;
}

export function checkFindingId(id: string): string | undefined {
  return FINDING_ID.test(id)
    ? undefined
    : `finding ID "${id}" must be 1-60 letters, digits, "-" or "_" (it names the workflow and the WAF rule)`;
}

export function parsePatchField(text: string): PatchField {
  const field = text.trim();
  const colon = field.indexOf(':');
  const type = (colon < 0 ? field : field.slice(0, colon)).toLowerCase();
  const name = colon < 0 ? undefined : field.slice(colon + 1);
  if (name === undefined && (type === 'uri' || type === 'query' || type === 'body')) return { type };
  if (type === 'query' && name !== undefined) {
    if (!FIELD_NAME.test(name)) throw new Error(`query argument name "${name}" is not valid`);
    return { type: 'query-arg', name };
  }
  if (type === 'header' && name !== undefined) {
    if (!HEADER_NAME.test(name)) throw new Error(`header name "${name}" is not valid`);
    return { type: 'header', name: name.toLowerCase() };
  }
  throw new Error(`unknown field "${text}": expected uri, query, query:<name>, body or header:<name>`);
}

export function fieldText(field: PatchField): string {
  switch (field.type) {
    case 'query-arg':
      return `query:${field.name}`;
    case 'header':
      return `header:${field.name}`;
    default:
      return field.type;
  }
}

/** Why a path scope is not acceptable, or undefined. */
function pathProblem(path: string, match: PathMatch): string | undefined {
  if (!path) return 'a path is required (the endpoint the patch protects)';
  if (!path.startsWith('/')) return `path "${path}" must start with "/"`;
  // AWS counts a search string in bytes, and an exact match also tries the path with a "/" added.
  if (new TextEncoder().encode(path).length > MAX_PATH_LENGTH - 1) {
    return `path is longer than ${MAX_PATH_LENGTH - 1} bytes`;
  }
  if (/[\s\x00-\x1f\x7f?#*]/.test(path)) {
    return `path "${path}" may not contain spaces, control characters, "?", "#" or "*" (use --match prefix for a subtree)`;
  }
  // The request's path is URL-decoded before it is compared: an encoded path would never match.
  if (path.includes('%')) {
    return `path "${path}" is percent-encoded; give it decoded (/café, not /caf%C3%A9)`;
  }
  if (match === 'prefix' && /^\/+$/.test(path)) {
    return `prefix "${path}" would cover the whole site; name the vulnerable endpoint`;
  }
  return undefined;
}

/**
 * Why a regex is not acceptable for AWS WAF (PCRE without captures, backreferences, atomic
 * groups, possessive quantifiers, conditionals, verbs, \C \R \K), or undefined. The field is
 * lower-cased before matching, so upper-case letters could never match and are refused too.
 */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length === 0) return 'the pattern is empty';
  if (pattern.length > MAX_PATTERN_LENGTH) {
    return `the pattern is ${pattern.length} characters; at most ${MAX_PATTERN_LENGTH}`;
  }
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    const next = pattern[i + 1] ?? '';
    if (c === '\\') {
      if (/[1-9]/.test(next) || next === 'k' || next === 'g')
        return 'backreferences are not supported by AWS WAF';
      // \C \R \K are PCRE's and unsupported by AWS; \u \U \l \L \N are not PCRE escapes at all.
      if (next !== '' && 'CRKuUlLN'.includes(next)) {
        return `\\${next} is not supported by AWS WAF's regular expressions`;
      }
      const hex =
        next === 'x' ? /^x(?:\{([0-9a-fA-F]+)\}|([0-9a-fA-F]{2}))/.exec(pattern.slice(i + 1)) : null;
      const code = hex ? parseInt(hex[1] ?? hex[2] ?? '', 16) : NaN;
      if (code >= 0x41 && code <= 0x5a) {
        return `\\${hex?.[0]} is an upper-case letter, which can never match: the field is lower-cased before matching`;
      }
      i++;
      continue;
    }
    if (/[A-Z]/.test(c)) {
      return `upper-case "${c}" can never match: the field is lower-cased before matching; write the pattern in lower case`;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      inClass = true;
      if (next === ']') i++; // a leading "]" is a literal inside the class
      continue;
    }
    if (c === '(') {
      if (next !== '?' && next !== '*')
        return 'use (?:…) instead of (…): AWS WAF does not support capturing groups';
      if (next === '*') return 'backtracking control verbs are not supported by AWS WAF';
      const kind = pattern.slice(i + 2, i + 4);
      if (kind === '<=' || kind === '<!') return 'lookbehind assertions are not accepted in a patch pattern';
      if (/^[a-zA-OQ-Z]/.test(kind)) {
        return 'inline flags such as (?i) are not needed: the field is lower-cased before matching';
      }
      if (kind.startsWith('>')) return 'atomic groups are not supported by AWS WAF';
      if (kind.startsWith('(')) return 'conditional patterns are not supported by AWS WAF';
      if (/^<[A-Za-z]/.test(kind) || kind.startsWith('P<') || kind.startsWith("'")) {
        return 'named (capturing) groups are not supported by AWS WAF';
      }
      if (/^[R0-9&+-]/.test(kind) || kind.startsWith('P>') || kind.startsWith('P=')) {
        return 'recursion and subroutine calls are not supported by AWS WAF';
      }
      continue;
    }
    if ((c === '*' || c === '+' || c === '?' || c === '}') && next === '+') {
      return 'possessive quantifiers are not supported by AWS WAF';
    }
  }
  if (inClass) return 'the pattern has an unclosed "["';
  let compiled: RegExp;
  try {
    compiled = new RegExp(pattern);
  } catch (err) {
    return `the pattern is not a valid regular expression: ${(err as Error).message}`;
  }
  if (compiled.test('')) return 'the pattern matches the empty string, so it would match every request';
  return undefined;
}

/** Checks a request against the patch rules and limits: every problem at once, or the canonical spec. */
export function checkPatch(request: PatchRequest, limits: PatchLimits): PatchSpec {
  const problems: string[] = [];
  const idProblem = checkFindingId(request.findingId);
  if (idProblem) problems.push(idProblem);

  const match = (request.match ?? 'exact') as PathMatch;
  if (!PATH_MATCHES.includes(match)) problems.push(`match "${request.match}" must be exact or prefix`);
  const pathIssue = pathProblem(request.path, match);
  if (pathIssue) problems.push(pathIssue);

  let method: string | undefined;
  if (request.method !== undefined && request.method !== '') {
    method = request.method.toUpperCase();
    if (!(HTTP_METHODS as readonly string[]).includes(method)) {
      problems.push(`method "${request.method}" must be one of ${HTTP_METHODS.join(', ')}`);
    }
  }

  let field = 'query';
  try {
    field = fieldText(parsePatchField(request.field ?? 'query'));
  } catch (err) {
    problems.push((err as Error).message);
  }

  const kind = request.kind as PatchKind;
  let patterns: string[] | undefined;
  if (!PATCH_KINDS.includes(kind)) {
    problems.push(`kind "${request.kind}" must be one of ${PATCH_KINDS.join(', ')}`);
  } else if (kind === 'regex') {
    const problem =
      request.pattern === undefined
        ? 'kind regex needs a pattern (--pattern)'
        : patternProblem(request.pattern);
    if (problem) problems.push(problem);
    else patterns = [request.pattern ?? ''];
  } else if (request.pattern !== undefined) {
    problems.push(`a pattern applies only to kind regex, not ${kind}`);
  } else if (kind === 'traversal') {
    patterns = [...TRAVERSAL_PATTERNS];
  }

  const ttlProblem = checkTtl(request.ttlMs, limits.maxTtlMs, 'patch TTL');
  if (ttlProblem) problems.push(ttlProblem.replace('PERIMETER_MAX_TTL', 'PERIMETER_VPATCH_MAX_TTL'));
  if (!Number.isFinite(request.observeMs) || request.observeMs < 0) {
    problems.push('observation window must be zero or more');
  } else if (request.observeMs > limits.maxObserveMs) {
    problems.push(
      `observation window ${formatDuration(request.observeMs)} exceeds the maximum of ${formatDuration(limits.maxObserveMs)} (PERIMETER_MAX_OBSERVE)`,
    );
  }

  if (problems.length > 0) throw new PolicyError(problems);
  return {
    findingId: request.findingId,
    path: request.path,
    match,
    ...(method ? { method } : {}),
    field,
    kind,
    ...(patterns ? { patterns } : {}),
  };
}

/** One line for people: `sqli in query:q of GET /api/search`. */
export function describePatch(spec: PatchSpec): string {
  const scope = `${spec.method ?? 'any method'} ${spec.path}${spec.match === 'prefix' ? '*' : ''}`;
  return `${spec.kind} in ${spec.field} of ${scope}`;
}
