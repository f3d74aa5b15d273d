/** Virtual-patch requests, their checks, and the AWS rule built from them. Pure code. */
import { PolicyError } from '../../src/domain/policy';
import {
  checkPatch,
  describePatch,
  parsePatchRuleName,
  patchRuleName,
  patternProblem,
  TRAVERSAL_PATTERNS,
  type PatchRequest,
} from '../../src/domain/virtual-patch';
import { buildPatchRule, estimateCapacity } from '../../src/waf/patch-rules';

const DAY = 86_400_000;
const limits = { maxTtlMs: 30 * DAY, maxObserveMs: 3_600_000 };

function request(overrides: Partial<PatchRequest> = {}): PatchRequest {
  return {
    findingId: 'CVE-2026-1',
    path: '/api/search',
    kind: 'sqli',
    ttlMs: DAY,
    observeMs: 0,
    ...overrides,
  };
}

function problems(overrides: Partial<PatchRequest>): string[] {
  try {
    checkPatch(request(overrides), limits);
  } catch (err) {
    if (err instanceof PolicyError) return err.problems;
    throw err;
  }
  return [];
}

describe('checkPatch', () => {
  it('canonicalises a good request: method upper-cased, header names lower-cased, query by default', () => {
    expect(checkPatch(request({ method: 'post', field: 'header:X-Api-Key' }), limits)).toEqual({
      findingId: 'CVE-2026-1',
      path: '/api/search',
      match: 'exact',
      method: 'POST',
      field: 'header:x-api-key',
      kind: 'sqli',
    });
    expect(checkPatch(request(), limits).field).toBe('query');
    expect(checkPatch(request({ kind: 'traversal' }), limits).patterns).toEqual([...TRAVERSAL_PATTERNS]);
  });

  it('names every problem at once', () => {
    const found = problems({
      findingId: 'bad id!',
      path: '/',
      match: 'prefix',
      method: 'FETCH',
      field: 'cookie:x',
      kind: 'regex',
      ttlMs: 40 * DAY,
      observeMs: 2 * 3_600_000,
    });
    expect(found).toEqual([
      expect.stringMatching(/finding ID "bad id!" must be/),
      expect.stringMatching(/would cover the whole site/),
      expect.stringMatching(/method "FETCH" must be one of/),
      expect.stringMatching(/unknown field "cookie:x"/),
      expect.stringMatching(/kind regex needs a pattern/),
      expect.stringMatching(/patch TTL 40d exceeds the maximum of 30d \(PERIMETER_VPATCH_MAX_TTL\)/),
      expect.stringMatching(/observation window 2h exceeds/),
    ]);
  });

  it.each([
    [{ path: '' }, /a path is required/],
    [{ path: 'api/search' }, /must start with "\/"/],
    [{ path: '//', match: 'prefix' }, /whole site/],
    [{ path: '/api/*' }, /may not contain/],
    [{ path: '/a?b=1' }, /may not contain/],
    [{ path: `/${'a'.repeat(250)}` }, /longer than 199 bytes/],
    [{ path: `/${'é'.repeat(100)}` }, /longer than 199 bytes/],
    [{ path: '/api/caf%C3%A9' }, /percent-encoded; give it decoded/],
    [{ match: 'regex' }, /must be exact or prefix/],
    [{ kind: 'rce' }, /kind "rce" must be one of/],
    [{ pattern: 'x' }, /applies only to kind regex/],
    [{ field: 'query:' }, /not valid/],
    [{ ttlMs: 0 }, /greater than zero/],
  ])('refuses %j', (overrides, reason) => {
    expect(problems(overrides as Partial<PatchRequest>)).toEqual([expect.stringMatching(reason)]);
  });

  it('accepts the root page alone with an exact match', () => {
    expect(problems({ path: '/', match: 'exact' })).toEqual([]);
  });
});

describe('patternProblem: what AWS WAF regexes may not use', () => {
  it.each([
    ['(select|union)', /capturing groups/],
    ['(?<q>x)', /named/],
    ['(a)\\1', /capturing groups/],
    ['a\\1', /backreferences/],
    ['(?>ab)', /atomic/],
    ['a++', /possessive/],
    ['a{2}+', /possessive/],
    ['(?(1)a|b)', /conditional/],
    ['(*FAIL)', /verbs/],
    ['a\\K', /\\K/],
    ['Select', /upper-case "S"/],
    ['[A-Z]x', /upper-case/],
    ['.*', /empty string/],
    ['a?', /empty string/],
    ['[a-', /unclosed/],
    ['a{2,1}', /not a valid regular expression/],
    ['a'.repeat(201), /at most 200/],
    ['\\u0061', /\\u is not supported/],
    ['\\x41b', /upper-case letter/],
    ['\\x{5a}b', /upper-case letter/],
    ['(?<=a+)b', /lookbehind/],
    ['(?i)select', /inline flags/],
  ])('refuses %s', (pattern, reason) => {
    expect(patternProblem(pattern)).toMatch(reason);
  });

  it.each([
    'union\\s+select',
    '(?:union|select)\\b',
    '[()]x',
    '\\d{3}-\\w+',
    'a(?=b)',
    '\\Dx',
    ...TRAVERSAL_PATTERNS,
  ])('accepts %s', (pattern) => expect(patternProblem(pattern)).toBeUndefined());

  it('built-in traversal patterns catch the usual probes (decoded, lower-cased) and pass ordinary paths', () => {
    const hit = (s: string) => TRAVERSAL_PATTERNS.some((p) => new RegExp(p).test(s));
    for (const probe of [
      '../../etc/passwd',
      '..\\..\\windows\\win.ini',
      'x/%2e%2e/y',
      '/proc/self/environ',
      'file=../config.php',
      'a=1&path=..\\boot.ini',
    ]) {
      expect(hit(probe)).toBe(true);
    }
    for (const ok of ['report..final.pdf', 'docs/etc/readme', 'a.b/c']) expect(hit(ok)).toBe(false);
  });
});

describe('rule names and the AWS rule', () => {
  it('names rules by prefix and finding, and recognises only its own', () => {
    expect(patchRuleName('perimeter', 'CVE-1')).toBe('perimeter-vpatch-CVE-1');
    expect(parsePatchRuleName('perimeter', 'perimeter-vpatch-CVE-1')).toBe('CVE-1');
    expect(parsePatchRuleName('perimeter', 'other-vpatch-CVE-1')).toBeUndefined();
    expect(parsePatchRuleName('perimeter', 'perimeter-block-ipv4-0')).toBeUndefined();
  });

  it('scopes to the path (decoded, and normalised) and method, then matches the field; labels matches', () => {
    const spec = checkPatch(request({ method: 'GET', field: 'query:q' }), limits);
    expect(describePatch(spec)).toBe('sqli in query:q of GET /api/search');
    const rule = buildPatchRule('perimeter', spec, 'count', 100);
    expect(rule).toMatchObject({
      Name: 'perimeter-vpatch-CVE-2026-1',
      Priority: 100,
      Action: { Count: {} },
      RuleLabels: [{ Name: 'perimeter:vpatch:CVE-2026-1' }],
    });
    const [path, method, attack] = rule.Statement?.AndStatement?.Statements ?? [];
    const scopes = path?.OrStatement?.Statements ?? [];
    const text = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
    // Exact: the path and the path with a trailing slash, each as sent and normalised.
    expect(
      scopes.map((s) => [
        text(s.ByteMatchStatement?.SearchString),
        s.ByteMatchStatement?.TextTransformations?.map((t) => t.Type).join('+'),
      ]),
    ).toEqual([
      ['/api/search', 'URL_DECODE+LOWERCASE'],
      ['/api/search', 'URL_DECODE+NORMALIZE_PATH+LOWERCASE'],
      ['/api/search/', 'URL_DECODE+LOWERCASE'],
      ['/api/search/', 'URL_DECODE+NORMALIZE_PATH+LOWERCASE'],
    ]);
    expect(scopes[0]?.ByteMatchStatement?.PositionalConstraint).toBe('EXACTLY');
    // GET also covers HEAD, answered by the same handler.
    expect(method?.OrStatement?.Statements?.map((m) => text(m.ByteMatchStatement?.SearchString))).toEqual([
      'GET',
      'HEAD',
    ]);
    expect(attack?.SqliMatchStatement).toMatchObject({
      FieldToMatch: { SingleQueryArgument: { Name: 'q' } },
      SensitivityLevel: 'HIGH',
    });
    // Path scopes 2 × (22 + 32), methods 2 + 2, SQLi 30 + two transformations 20.
    expect(estimateCapacity(rule.Statement)).toBe(162);
    const post = buildPatchRule(
      'p',
      checkPatch(request({ method: 'POST', match: 'prefix' }), limits),
      'block',
      1,
    );
    expect(post.Statement?.AndStatement?.Statements?.[0]?.OrStatement?.Statements).toHaveLength(2);
    expect(post.Statement?.AndStatement?.Statements?.[1]?.ByteMatchStatement?.PositionalConstraint).toBe(
      'EXACTLY',
    );
  });

  it('points regex and traversal patches at their pattern set and refuses to build without one', () => {
    const spec = checkPatch(request({ kind: 'traversal', match: 'prefix', field: 'uri' }), limits);
    expect(() => buildPatchRule('p', spec, 'block', 1)).toThrow(/pattern set/);
    const rule = buildPatchRule('p', spec, 'block', 1, 'arn:aws:wafv2:regex/p-vpatch-CVE-2026-1');
    const attack = rule.Statement?.AndStatement?.Statements?.[1];
    expect(attack?.RegexPatternSetReferenceStatement).toMatchObject({
      ARN: 'arn:aws:wafv2:regex/p-vpatch-CVE-2026-1',
      FieldToMatch: { UriPath: {} },
    });
    expect(rule.Action).toEqual({ Block: {} });
  });
});
