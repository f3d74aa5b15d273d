/**
 * Requests written out as access-log lines of the three formats the detector reads, for the
 * throughput benchmark: nginx/Apache combined, ALB, and AWS WAF (JSON, with the labels and rule
 * matches AWS adds to attacks it recognises).
 */
import type { AttackClass } from '../src/detectors/types';
import type { BenchRequest } from './corpus-benign';
import type { Rng } from './rng';

export interface LineContext {
  /** Client address. */
  ip: string;
  /** Epoch milliseconds. */
  at: number;
  status: number;
  bytes: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

function clfTime(at: number): string {
  const d = new Date(at);
  const month = MONTHS[d.getUTCMonth()] ?? 'Jan';
  return `${pad(d.getUTCDate())}/${month}/${d.getUTCFullYear()}:${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

/** A random client address: mostly IPv4 from a few busy ranges, some IPv6. */
export function clientIp(rng: Rng): string {
  if (rng.chance(0.1)) return `2001:db8:${rng.int(65536).toString(16)}::${rng.int(65536).toString(16)}`;
  return `${rng.pick([81, 93, 151, 185, 203, 198])}.${rng.int(256)}.${rng.int(256)}.${1 + rng.int(254)}`;
}

/** A field as nginx writes it: `"` and `\\` (and bytes outside printable ASCII) as `\\xHH`. */
function escaped(field: string): string {
  if (!/[^\x20-\x21\x23-\x5b\x5d-\x7e]/.test(field)) return field;
  let out = '';
  for (const byte of Buffer.from(field, 'utf8')) {
    out +=
      byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c
        ? String.fromCharCode(byte)
        : `\\x${byte.toString(16).padStart(2, '0').toUpperCase()}`;
  }
  return out;
}

/** `203.0.113.7 - - [10/Oct/2023:13:55:36 +0000] "GET /a?q=1 HTTP/1.1" 200 2326 "ref" "UA"` */
export function combinedLine(req: BenchRequest, c: LineContext): string {
  const referer = req.referer === undefined ? '-' : escaped(req.referer);
  return `${c.ip} - - [${clfTime(c.at)}] "${req.method} ${escaped(req.uri)} HTTP/1.1" ${c.status} ${c.bytes} "${referer}" "${escaped(req.userAgent)}"`;
}

export function albLine(req: BenchRequest, c: LineContext): string {
  const time = new Date(c.at).toISOString().replace('Z', '123Z');
  const client = c.ip.includes(':')
    ? `[${c.ip}]:${40000 + (c.bytes % 20000)}`
    : `${c.ip}:${40000 + (c.bytes % 20000)}`;
  return [
    'https',
    time,
    'app/shop-alb/50dc6c495c0c9188',
    client,
    '10.0.1.15:8080',
    '0.001',
    '0.012',
    '0.000',
    String(c.status),
    String(c.status),
    '412',
    String(c.bytes),
    `"${req.method} https://www.example.com:443${escaped(req.uri)} HTTP/1.1"`,
    `"${escaped(req.userAgent)}"`,
    'ECDHE-RSA-AES128-GCM-SHA256',
    'TLSv1.2',
    'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/shop/73e2d6bc24d8a067',
    '"Root=1-65a4f0b2-1c2d3e4f5a6b7c8d9e0f1a2b"',
    '"www.example.com"',
    '"arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"',
    '0',
    time,
    '"forward"',
    '"-"',
    '"-"',
    '"10.0.1.15:8080"',
    `"${c.status}"`,
    '"-"',
    '"-"',
  ].join(' ');
}

/** What AWS managed rules would have attached to an attack of `cls` (most of the time). */
const WAF_VERDICTS: Record<AttackClass, { group: string; rule: string; label: string }> = {
  sqli: {
    group: 'AWS#AWSManagedRulesSQLiRuleSet',
    rule: 'SQLi_QUERYARGUMENTS',
    label: 'awswaf:managed:aws:sql-database:SQLi_QueryArguments',
  },
  xss: {
    group: 'AWS#AWSManagedRulesCommonRuleSet',
    rule: 'CrossSiteScripting_QUERYARGUMENTS',
    label: 'awswaf:managed:aws:core-rule-set:CrossSiteScripting_QueryArguments',
  },
  traversal: {
    group: 'AWS#AWSManagedRulesCommonRuleSet',
    rule: 'GenericLFI_QUERYARGUMENTS',
    label: 'awswaf:managed:aws:core-rule-set:GenericLFI_QueryArguments',
  },
  scanner: {
    group: 'AWS#AWSManagedRulesCommonRuleSet',
    rule: 'UserAgent_BadBots_HEADER',
    label: 'awswaf:managed:aws:core-rule-set:BadBots_Header',
  },
};

export function wafLine(req: BenchRequest, c: LineContext, attack?: AttackClass): string {
  const q = req.uri.indexOf('?');
  const headers = [
    { name: 'Host', value: 'www.example.com' },
    { name: 'User-Agent', value: req.userAgent },
    { name: 'Accept', value: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' },
    { name: 'Accept-Language', value: 'en-GB,en;q=0.9' },
  ];
  if (req.referer) headers.push({ name: 'Referer', value: req.referer });
  const verdict = attack ? WAF_VERDICTS[attack] : undefined;
  const blocked = verdict !== undefined && c.bytes % 2 === 0;
  const log = {
    timestamp: c.at,
    formatVersion: 1,
    webaclId:
      'arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/shop/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111',
    terminatingRuleId: blocked ? 'AWS-' + (verdict?.group.split('#')[1] ?? '') : 'Default_Action',
    terminatingRuleType: blocked ? 'MANAGED_RULE_GROUP' : 'REGULAR',
    action: blocked ? 'BLOCK' : 'ALLOW',
    terminatingRuleMatchDetails: [],
    httpSourceName: 'ALB',
    httpSourceId: '123456789012-app/shop-alb/50dc6c495c0c9188',
    ruleGroupList: verdict
      ? [
          {
            ruleGroupId: verdict.group,
            terminatingRule: { ruleId: verdict.rule, action: blocked ? 'BLOCK' : 'COUNT' },
          },
        ]
      : [],
    rateBasedRuleList: [],
    nonTerminatingMatchingRules: [],
    requestHeadersInserted: null,
    responseCodeSent: blocked ? 403 : null,
    httpRequest: {
      clientIp: c.ip,
      country: 'NL',
      headers,
      uri: q < 0 ? req.uri : req.uri.slice(0, q),
      args: q < 0 ? '' : req.uri.slice(q + 1),
      httpVersion: 'HTTP/1.1',
      httpMethod: req.method,
      requestId: `1-${c.at.toString(16)}-${c.bytes.toString(16)}`,
    },
    labels: verdict ? [{ name: verdict.label }] : [],
  };
  return JSON.stringify(log);
}
