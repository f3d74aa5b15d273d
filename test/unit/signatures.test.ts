import { classifyRequest, classifyValue, type ClassifiableRequest } from '../../src/detectors/signatures';
import type { AttackClass, UpstreamMatch } from '../../src/detectors/types';

const BROWSER =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';

function request(uri: string, extra: Partial<ClassifiableRequest> = {}): ClassifiableRequest {
  return { uri, method: 'GET', userAgent: BROWSER, headers: {}, ...extra };
}

const classes = (uri: string, extra: Partial<ClassifiableRequest> = {}): AttackClass[] =>
  classifyRequest(request(uri, extra));

/** As a browser's form would send a search: percent-encoded, spaces as `+`. */
const search = (text: string): string => `/search?q=${encodeURIComponent(text).replace(/%20/g, '+')}&page=1`;

describe('classifyRequest: SQL injection', () => {
  it.each([
    ['a quoted tautology', "/item?id=1' or '1'='1"],
    ['a percent-encoded tautology', '/item?id=1%27%20OR%20%271%27%3D%271'],
    ['a double-encoded tautology', '/item?id=1%2527%2520OR%25201%253D1--'],
    ['a numeric tautology', '/item?id=1 or 1=1'],
    ['mixed-case UNION SELECT', '/item?id=1%20UnIoN%20SeLeCt%20null,version()--'],
    ['keywords split by inline comments', '/item?id=1/**/uNiOn/**/sElEcT/**/1,2,3'],
    ['keywords split inside words', '/item?id=1 uni/**/on sel/**/ect 1,2'],
    ['MySQL versioned comments', '/item?id=1/*!50000union*//*!50000select*/1,2,3'],
    ['a stacked DROP TABLE', '/item?id=1;DROP%20TABLE%20users--'],
    ['a comment terminator after a quote', "/login?user=admin'--"],
    ['time-based sleep with tab whitespace', "/item?id=1'%09and%09sleep(5)%23"],
    ['WAITFOR DELAY', "/item?id=1';WAITFOR DELAY '0:0:5'--"],
    ['pg_sleep', '/item?id=1) or pg_sleep(5)--'],
    ['benchmark()', '/item?id=1 and benchmark(5000000,md5(1))'],
    ['boolean blind after a number', '/item?id=1%0aand%0a1=2'],
    ['boolean blind after a quote', "/item?id=x' and 1=2--"],
    ['error-based extractvalue', '/item?id=1 and extractvalue(1,concat(0x7e,(select @@version)))'],
    [
      'error-based convert(int,…)',
      '/item?id=1 AND 1=CONVERT(int,(SELECT table_name FROM information_schema.tables))',
    ],
    ['a catalogue lookup', '/item?id=-1 union select 1,table_name from information_schema.tables'],
    ['load_file with char()', '/item?id=1;(load_file(char(47,101,116,99,47,112,97,115,115,119,100)))'],
    ['INTO OUTFILE', "/item?id=1' union select 'x' into outfile '/var/www/x.php'--"],
    ['an IIS %u-encoded quote', '/item?id=%u0027%u0020or%u00201=1'],
    ['a subquery in a sort key', '/item?sort=(select+1+from+(select(sleep(5)))a)'],
    ['an injection in the path', "/item/1'%20or%20'1'='1"],
  ])('flags %s', (_name, uri) => {
    expect(classes(uri)).toContain('sqli');
  });
});

describe('classifyRequest: cross-site scripting', () => {
  it.each([
    ['a script tag', '/s?q=%3Cscript%3Ealert(1)%3C/script%3E'],
    ['a double-encoded svg onload', '/s?q=%253Csvg%252Fonload%253Dalert%25281%2529%253E'],
    ['mixed case with a backtick call', '/s?q=<ScRiPt>prompt`1`</sCrIpT>'],
    ['an attribute breakout into an img onerror', '/s?q=%22%3E%3Cimg%20src%3Dx%20onerror%3Dconfirm(1)%3E'],
    ['a javascript: URL', '/go?url=javascript:alert(document.cookie)'],
    ['a javascript: URL split by a tab', '/go?url=jav%09ascript:alert(1)'],
    ['HTML named entities', '/s?q=%26lt;script%26gt;alert(1)%26lt;/script%26gt;'],
    ['HTML hex entities', '/s?q=%26%23x3c;script%26%23x3e;alert(1)'],
    ['HTML decimal entities without semicolons', '/s?q=%26%2360img src=x onerror=alert(1)%26%2362'],
    ['JavaScript unicode escapes', '/s?q=\\u003cscript\\u003ealert(1)\\u003c/script\\u003e'],
    ['fullwidth angle brackets', '/s?q=%EF%BC%9Cscript%EF%BC%9Ealert(1)'],
    ['UTF-7 angle brackets', '/s?q=%2BADw-script%2BAD4-alert(1)%2BADw-/script%2BAD4-'],
    ['a data:text/html URL', '/s?q=data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=='],
    ['an event handler after a quote', "/s?q=' onfocus='alert(1)' autofocus='"],
    ['details ontoggle', '/s?q=<details/open/ontoggle=alert(1)>'],
    ['String.fromCharCode', '/s?q=<img src=x onerror=String.fromCharCode(88,83,83)>'],
    ['a CSS expression()', '/s?q=<div style="width:expression(alert(1))">'],
    ['a script tag in the path', '/<script>alert(1)</script>'],
  ])('flags %s', (_name, uri) => {
    expect(classes(uri)).toContain('xss');
  });
});

describe('classifyRequest: path traversal and file inclusion', () => {
  it.each([
    ['dot-dot segments in a value', '/f?file=../../../../etc/passwd'],
    ['encoded slashes', '/f?file=..%2f..%2f..%2fetc%2fpasswd'],
    ['double-encoded dots and slashes', '/f?file=%252e%252e%252fetc%252fpasswd'],
    ['overlong UTF-8 slashes', '/f?file=..%c0%af..%c0%afetc/passwd'],
    ['overlong UTF-8 dots', '/f?file=%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd'],
    ['filter-evading ....//', '/f?file=....//....//etc/passwd'],
    ['backslashes to win.ini', '/f?file=..\\..\\..\\windows\\win.ini'],
    ['an absolute /etc/shadow', '/f?file=/etc/shadow'],
    ['/proc/self/environ', '/f?file=/proc/self/environ'],
    ['a Windows drive path', '/f?file=c:\\windows\\win.ini'],
    ['boot.ini', '/f?file=C:/boot.ini'],
    ['a php://filter wrapper', '/f?page=php://filter/convert.base64-encode/resource=index.php'],
    ['a file:// URL', '/f?page=file:///etc/passwd'],
    ['an expect:// wrapper', '/f?page=expect://id'],
    ['a NUL byte before an appended extension', '/f?file=report.pdf%00.jpg'],
    ['IIS %u escapes and a best-fit slash', '/f?file=%u002e%u002e%u2215etc%u2215passwd'],
    ['a base64-encoded path', '/f?file=Li4vLi4vLi4vZXRjL3Bhc3N3ZA%3D%3D'],
    ['a path that climbs above the root', '/../../../../etc/passwd'],
    ['encoded climbing in the path', '/static/..%2f..%2f..%2fetc/passwd'],
    ['Tomcat ..;/ segments', '/app/..;/..;/manager/html'],
    ['an .htpasswd fetch', '/f?file=/var/www/html/.htpasswd'],
  ])('flags %s', (_name, uri) => {
    expect(classes(uri)).toContain('traversal');
  });

  it('leaves a single resolved-looking ../ inside a path alone (browsers never send one; link checkers do)', () => {
    expect(classes('/docs/../guide')).toEqual([]);
  });

  it('flags a path that climbs twice', () => {
    expect(classes('/docs/a/../../../secret')).toContain('traversal');
  });
});

describe('classifyRequest: ordinary traffic stays clean', () => {
  it.each([
    "O'Brien",
    "don't stop",
    '"exact phrase"',
    "rock 'n' roll",
    '5\' 10" height',
    "it's 5 o'clock -- really",
    "Tom's or Jerry's",
    "'a' or 'b'",
    '"cats" or "dogs"',
    'select a plan',
    'union station',
    'a union select committee',
    'drop shipping',
    'order by price',
    'having fun',
    'null or undefined',
    'a < b',
    '<3',
    'i <3 ny',
    '<b>bold</b>',
    'regular expression(s)',
    'javascript: the good parts',
    'how to read document.cookie in js',
    'weather alert (1 day)',
    'confirm(order)',
    'sleep (8 hours)',
    'benchmark (2024)',
    'win.ini explained',
    'what is passwd',
    '100% cotton',
    '#1 seller',
    '@mention',
    'emoji 😀 東京',
    "status eq 'open' and priority gt 2",
  ])('does not flag the search %j', (text) => {
    expect(classes(search(text))).toEqual([]);
  });

  it.each([
    ['a JSON filter', '/api/v1/items?filter={"a":1,"tags":["x"]}'],
    ['an encoded JSON filter', '/api/v1/items?filter=%7B%22or%22%3A%5B%7B%22a%22%3A1%7D%5D%7D'],
    ['a GraphQL query', '/graphql?query=query%20%7B%20user(id%3A%20%221%22)%20%7B%20name%20%7D%20%7D'],
    ['static assets', '/static/js/app.3f9a1c2e.js?v=1.2.3'],
    ['a well-known path', '/.well-known/acme-challenge/Xy12_ab-CD'],
    ['encoded slashes', '/api/v1/repos/org%2Frepo/files/src%2Findex.ts?ref=main'],
    ['parentheses and quotes in a wiki path', "/wiki/O'Brien_(surname)"],
    [
      'long tracking parameters',
      '/p?utm_source=google&utm_medium=cpc&utm_campaign=brand+search&gclid=Cj0KCQiAqsitBhDlARIsAGMR1Rh3kPq1sl9dNfuaVzZb3x5uUp0wMqZRwlmRo7aWXa&_ga=2.12345.678-9.0',
    ],
    [
      'a JWT',
      '/api/me?access_token=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U',
    ],
    ['a base64 state', '/oauth/callback?code=abc&state=eyJyZXR1cm5UbyI6Ii9ob21lIn0%3D'],
    ['redirect targets', '/login?next=/home&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb%3Fx%3D1'],
    ['a contact form', '/contact?name=John+O%27Brien&message=I%27d+like+to+know+(asap)%3B+thanks%21'],
    ['a path parameter', '/account/orders;sid=0AB12CD34EF?tab=recent'],
    ['dates and coordinates', '/api/orders?from=2024-01-01T00:00:00Z&bbox=-74.1,40.6,-73.9,40.8'],
  ])('does not flag %s', (_name, uri) => {
    expect(classes(uri)).toEqual([]);
  });
});

describe('classifyRequest: referer', () => {
  it('flags SQL injection and XSS carried in the referer query', () => {
    const headers = { referer: "https://shop.example.com/search?q=1'+or+'1'='1" };
    expect(classes('/', { headers })).toEqual(['sqli']);
    expect(
      classes('/', { headers: { referer: 'https://x.example/?q=%3Cscript%3Ealert(1)%3C/script%3E' } }),
    ).toEqual(['xss']);
  });

  it('does not read traversal into a referer (it names the previous page, not a file)', () => {
    expect(classes('/', { headers: { referer: 'https://x.example/?f=../../etc/passwd' } })).toEqual([]);
  });
});

describe('classifyRequest: scanners', () => {
  it.each([
    'sqlmap/1.7.2#stable (https://sqlmap.org)',
    'Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)',
    'Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)',
    'masscan/1.3 (https://github.com/robertdavidgraham/masscan)',
    'Mozilla/5.0 zgrab/0.x',
    'Nuclei - Open-source project (github.com/projectdiscovery/nuclei)',
    'WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)',
    'gobuster/3.6',
    'Fuzz Faster U Fool v2.1.0-dev',
    'feroxbuster/2.10.1',
    'DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)',
    'Mozilla/5.0 (compatible; Nessus; +https://www.tenable.com)',
    'Mozilla/5.0 SF/2.10b',
    'Morfeus Fucking Scanner',
  ])('flags the agent %j', (userAgent) => {
    expect(classes('/', { userAgent })).toEqual(['scanner']);
  });

  it.each([
    'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)',
    'curl/8.5.0',
    'python-requests/2.31.0',
    'Go-http-client/1.1',
    'Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)',
    'Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)',
    'ELB-HealthChecker/2.0',
  ])('lets the allowed bot %j through', (userAgent) => {
    expect(classes('/robots.txt', { userAgent })).toEqual([]);
  });

  it('flags scanner headers and the Nmap probe path', () => {
    expect(classes('/', { headers: { 'acunetix-product': 'WVS/14' } })).toEqual(['scanner']);
    expect(classes('/nice%20ports%2C/Tri%6Eity.txt%2ebak')).toEqual(['scanner']);
  });
});

describe('classifyRequest: AWS WAF verdicts', () => {
  const match = (rule: string): UpstreamMatch => ({ rule, action: 'BLOCK', terminating: true });

  it.each<[string, AttackClass]>([
    ['awswaf:managed:aws:sql-database:SQLi_QueryArguments', 'sqli'],
    ['awswaf:managed:aws:sql-database:SQLiExtendedPatterns_Body', 'sqli'],
    ['awswaf:managed:aws:core-rule-set:CrossSiteScripting_URIPath', 'xss'],
    ['awswaf:managed:aws:core-rule-set:GenericLFI_QueryArguments', 'traversal'],
    ['awswaf:managed:aws:core-rule-set:RestrictedExtensions_URIPath', 'traversal'],
    ['awswaf:managed:aws:core-rule-set:GenericRFI_Body', 'traversal'],
    ['awswaf:managed:aws:linux-os:LFI_URIPath', 'traversal'],
    ['awswaf:managed:aws:core-rule-set:BadBots_Header', 'scanner'],
    ['awswaf:managed:aws:bot-control:bot:name:nessus', 'scanner'],
  ])('maps the label %s to %s', (label, expected) => {
    expect(classes('/', { labels: [label] })).toEqual([expected]);
  });

  it.each<[string, AttackClass]>([
    ['SQLi_QUERYARGUMENTS', 'sqli'],
    ['SQLi_BODY', 'sqli'],
    ['AWS-AWSManagedRulesSQLiRuleSet', 'sqli'],
    ['CrossSiteScripting_QUERYARGUMENTS', 'xss'],
    ['GenericLFI_URIPATH', 'traversal'],
    ['UserAgent_BadBots_HEADER', 'scanner'],
  ])('maps the matched rule %s to %s', (rule, expected) => {
    expect(classes('/', { upstream: [match(rule)] })).toEqual([expected]);
  });

  it('leaves rules and labels outside the four classes unmapped', () => {
    const labels = [
      'awswaf:managed:aws:known-bad-inputs:Log4JRCE_Header',
      'awswaf:managed:aws:core-rule-set:SizeRestrictions_QueryString',
      'awswaf:managed:aws:bot-control:bot:category:search_engine',
      'awswaf:managed:aws:bot-control:bot:name:googlebot',
    ];
    const upstream = [
      match('AWS-AWSManagedRulesCommonRuleSet'),
      match('Default_Action'),
      match('RateLimitPerIp'),
    ];
    expect(classes('/', { labels, upstream })).toEqual([]);
  });
});

describe('classifyRequest: result shape', () => {
  it('reports each class once, in ATTACK_CLASSES order', () => {
    const uri = "/f?file=../../etc/passwd&q=<script>alert(1)</script>&id=1' or '1'='1&id2=1 or 2=2";
    const result = classes(uri, {
      userAgent: 'sqlmap/1.7',
      labels: ['awswaf:managed:aws:sql-database:SQLi_Body'],
    });
    expect(result).toEqual(['sqli', 'xss', 'traversal', 'scanner']);
  });
});

describe('classifyValue', () => {
  it('classifies one decoded value, decoding it again for double encoding, never as scanner', () => {
    expect(classifyValue("1' or '1'='1")).toEqual(['sqli']);
    expect(classifyValue('%3Csvg onload=alert(1)%3E')).toEqual(['xss']);
    expect(classifyValue('../../etc/passwd')).toEqual(['traversal']);
    expect(classifyValue('sqlmap/1.7')).toEqual([]);
    expect(classifyValue("O'Brien")).toEqual([]);
  });

  it('keeps a plus sign a plus (the value is already form-decoded)', () => {
    expect(classifyValue("1'+or+'1'='1")).toEqual([]);
  });
});

describe('classifyRequest: malformed and hostile input', () => {
  it.each([
    ['a lone percent sign', '/s?q=100%'],
    ['a truncated escape', '/s?q=%E0%A4'],
    ['a bad %u escape', '/s?q=%uZZZZ%u12'],
    ['invalid UTF-8', '/s?q=%FF%FE%C0'],
    ['a lone surrogate', '/s?q=\ud800x'],
    ['an empty query', '/s?'],
    ['an empty URI', ''],
  ])('never throws on %s', (_name, uri) => {
    expect(() => classes(uri)).not.toThrow();
    expect(() => classifyValue(uri)).not.toThrow();
  });

  it.each([
    ['unclosed tags', '<a '.repeat(20_000)],
    ['dangling operators', "' or ".repeat(12_000)],
    ['unclosed comments', '/*'.repeat(30_000)],
    ['dot-dot runs', '../'.repeat(20_000)],
    ['percent signs', '%'.repeat(60_000)],
    ['entities', '&#'.repeat(30_000)],
    ['dots', '.'.repeat(60_000)],
    ['nested log directories', 'logs/a/'.repeat(8_500)],
    ['CASE WHEN chains', 'case when = then '.repeat(3_500)],
  ])('classifies 60 KB of %s quickly', (_name, payload) => {
    const started = Date.now();
    expect(() =>
      classes(`/s?q=${payload}`, { headers: { referer: `https://x.example/?q=${payload}` } }),
    ).not.toThrow();
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('decodes at most three rounds (a fourth layer stays encoded)', () => {
    expect(classes('/s?q=%25253Cscript%25253E')).toEqual(['xss']);
    expect(classes('/s?q=%2525253Cscript%2525253E')).toEqual([]);
  });
});
