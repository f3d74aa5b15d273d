/**
 * Path traversal and local file inclusion signatures, over normalised (decoded, lower-cased)
 * text in which backslashes have become slashes (Windows servers accept both).
 *
 * The path and the query are judged differently. Browsers resolve `.` and `..` segments before
 * sending, so a path that climbs above the root (`/../`) or climbs twice (`/a/../../`) comes from
 * a tool, but a single `/docs/../guide` is left alone: it is harmless, and link checkers and
 * hand-typed URLs produce it. In a query value any `../` segment is reported: a parameter that
 * names a parent directory is what file inclusion looks like (unless prose: "use ../ for …").
 * Absolute system paths count at the start of a value or of the path, so `/var/log/` inside
 * ordinary text is not taken for a file name; a few names leave no doubt wherever they appear
 * (`etc/passwd`, `proc/self/`, `windows/system32/`).
 */
import { normalise } from './normalise';

/** Directories of a Unix system (not of a web site) that a request names only to read files. */
const SYSTEM_DIRS = String.raw`(?:etc|proc|root)/|boot/+(?:grub|loader|efi|vmlinuz|initrd|config|boot\.ini)|var/+(?:log|www|lib|run|spool|mail|adm|tmp|cache|backups|apache2?|cpanel|lp|saf|lock|mysql|db|named|yp|cron|local|opt|nginx)\b|usr/+(?:local|lib|share|bin|sbin|etc|pkg|pkgsrc|ports|spool|apache2?|home|adm|x11r6|src|include|libexec)\b|opt/+(?:lampp|xampp|apache2?|tomcat|nginx|bitnami|local|etc)\b|private/+(?:etc|var|tmp)\b|volumes/+[\w.-]+/+(?:opt|private|usr|etc|var|users|applications|library)\b|home\d?/+[\w.-]+/+\.\w`;

/**
 * Climbing out: two dot-dot segments in a row (`../../`, `..\..\`, `....//`, `..%\..`), or
 * `..;/`. `(?<!\.)` starts a match only at a run's first dot, so a long run of dots stays linear.
 */
const DOUBLE_CLIMB = /(?<!\.)\.{2,}%?\/+%?\.{2,}(?:\/|$|%)|\.\.;\//;
/** A path that starts by climbing above the root: `/../`, `/./../`, `/..`. */
const PATH_CLIMB = /^\/*(?:\.\/+)*\.{2,}(?:\/|$)/;
/**
 * A dot-dot segment anywhere in a value, incl. separators that lost their `%` (`..2f`, `..5c`);
 * not one followed by a blank, which is prose ("use ../ for the parent").
 */
const VALUE_CLIMB = /(?:^|[/=&;:,\s'"\u0000])\.{2,}(?:\/|;\/)(?![\s,;])|(?:^|[/=&])\.\.(?:2f|5c)/;
/** A system path at the start of the path. */
const PATH_ROOTED = new RegExp(String.raw`^/+(?:\./+)*(?:${SYSTEM_DIRS})`);
/** A system path at the start of a value, also as `file:///…`, `c:/…` or after a NUL. */
const VALUE_ROOTED = new RegExp(
  String.raw`(?:^|[=&\u0000])(?:file://|[a-z]:)?/+(?:\./+)*(?:${SYSTEM_DIRS}|s?bin/|srv/)`,
);

/**
 * A sensitive file named as a path (`/web.config`, `c:/boot.ini`) or as a whole value
 * (`?file=.htpasswd`); "win.ini explained" typed into a search box is neither.
 */
function named(names: string): string {
  return String.raw`(?:[/:](?:${names})(?![\w.-])|(?:^|[=&])(?:${names})(?=$|[&\u0000]))`;
}

/** Files whose names alone say what is being read. */
const SENSITIVE_FILES = new RegExp(
  [
    String.raw`(?:^|[/=&:\u0000])etc/+(?:passwd|g?shadow|master\.passwd|sudoers)\b`,
    String.raw`(?:^|[/=&:])proc/+(?:self|thread-self|\d+)/`,
    String.raw`\bwin(?:dows|nt)/+(?:system32|system|win\.ini|php\.ini|repair|debug|temp|panther)\b|\bsystem32/|\binetsrv/`,
    String.raw`(?:^|[/=&\s\u0000])[a-z]:/*(?:windows|winnt|boot\.ini|inetpub|program files|programdata|documents and settings|appserv|xampp|wamp|apache|php|mysql|system32|users/)`,
    String.raw`(?:^|[/=&])program files/`,
    named(
      String.raw`(?:boot|win|system)\.ini|global\.asa|web\.config|\.htaccess|\.htpasswd|(?:master\.|\.)passwd|\.pass`,
    ),
    named(
      String.raw`\.(?:bash_history|bash_profile|bashrc|bash_logout|zsh_history|zshrc|sh_history|ksh_history|mysql_history|psql_history|cshrc|tcshrc|profile|logout|netrc|rhosts|shosts|forward|xauthority|pgpass|git-credentials)`,
    ),
    String.raw`(?:^|[/=&])\.(?:ssh|aws|kube|docker)/|(?:^|[/=&])\.env(?:\.[\w-]+)?(?:$|[/&?])|(?:^|[/=&])\.git/+(?:config|head|index|logs)|(?:^|[/=&])\.svn/+(?:entries|wc\.db)`,
    named(String.raw`(?:access|error)[._]log`),
    String.raw`(?:^|[/=&])logs?/[\w./-]{0,200}\.log\b`,
    named(
      String.raw`(?:httpd|apache2?|nginx|php-fpm|proftpd|pure-ftpd|vsftpd|lighttpd|my|sshd|smb|sysctl|syslog|inetd|xinetd|ssl|vhosts|squid)\.(?:conf|cnf)|php\d?(?:\.\d)?\.ini|metabase\.xml|sshd_config|authorized_keys|id_(?:rsa|dsa|ecdsa|ed25519)`,
    ),
    String.raw`\bweb-inf/+(?:web\.xml|classes|lib)|\bconf/+(?:server|tomcat-users|context)\.xml\b`,
  ].join('|'),
);
/** Stream wrappers that turn an include into a file read or code execution. */
const WRAPPER = /\b(?:php|file|expect|zip|phar|glob|zlib|compress\.(?:zlib|bzip2)|jar|netdoc|data):\/\//;
/** A NUL byte cutting off an extension the application appends: `passwd%00.png`, `.php%00`. */
const NUL_BYTE = /\.[a-z0-9]{1,8}\u0000|\u0000\.[a-z0-9]{1,8}\b|\/\u0000|\u0000\//;

/**
 * What SENSITIVE_FILES needs (one of the names it looks for), tested first because it is far
 * cheaper than the full list and most parameters name none of them.
 */
const SENSITIVE_NEEDS =
  /(?:^|[/=&:\s\u0000])(?:etc|proc|win|system32|inetsrv|program|boot|global|web|\.|master|access|error|logs?|httpd|apache|nginx|php|proftpd|pure|vsftpd|lighttpd|my|sshd|smb|sysctl|syslog|inetd|xinetd|ssl|vhosts|squid|metabase|authorized|id_|conf|[a-z]:)/;

function forwardSlashes(text: string): string {
  return text.includes('\\') ? text.replaceAll('\\', '/') : text;
}

/** Rules for both the path and values, each behind a test for what it needs. */
function sharedRules(text: string, climbs: boolean): boolean {
  return (
    (climbs && DOUBLE_CLIMB.test(text)) ||
    (SENSITIVE_NEEDS.test(text) && SENSITIVE_FILES.test(text)) ||
    (text.includes('://') && WRAPPER.test(text)) ||
    (text.includes('\u0000') && NUL_BYTE.test(text))
  );
}

/** Whether a normalised request path traverses or names a system file. */
export function isPathTraversal(path: string): boolean {
  const text = forwardSlashes(path);
  const climbs = text.includes('..');
  return (climbs && PATH_CLIMB.test(text)) || PATH_ROOTED.test(text) || sharedRules(text, climbs);
}

/** Whether a normalised query string or parameter value traverses or names a system file. */
export function isValueTraversal(value: string): boolean {
  const text = forwardSlashes(value);
  const climbs = text.includes('..');
  return (climbs && VALUE_CLIMB.test(text)) || VALUE_ROOTED.test(text) || sharedRules(text, climbs);
}

const PRINTABLE_MIN = 32;
const PRINTABLE_MAX = 126;
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/**
 * Base64 text → its decoding if that is printable ASCII, else undefined. Stops at the first
 * unprintable byte, so random tokens (login tokens, click IDs) cost a few steps and no allocation.
 */
function printableBase64(token: string): string | undefined {
  let end = token.length;
  while (end > 0 && token.charCodeAt(end - 1) === 61) end--;
  // Padded text comes in fours; unpadded (common in URLs) just never leaves a lone sixth of a byte.
  const padded = end < token.length;
  if (token.length - end > 2 || (padded ? token.length % 4 !== 0 : end % 4 === 1)) return undefined;
  let out = '';
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < end; i++) {
    const v = B64_VALUE[token.charCodeAt(i)] ?? -1;
    if (v < 0) return undefined;
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      const byte = (acc >> bits) & 0xff;
      if (byte < PRINTABLE_MIN || byte > PRINTABLE_MAX) return undefined;
      out += String.fromCharCode(byte);
    }
  }
  return out;
}

const BASE64_MIN = 12; // 9 bytes: shorter names are not worth decoding
const BASE64_MAX = 4096;

/** Whether `s[start, end)` is made of base64 characters (`=` only as padding, checked by the decoder). */
function isBase64(s: string, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    const ok =
      (c >= 65 && c <= 90) ||
      (c >= 97 && c <= 122) ||
      (c >= 48 && c <= 57) ||
      c === 43 ||
      c === 47 ||
      c === 61;
    if (!ok) return false;
  }
  return true;
}

/**
 * Whether a query string has a base64 parameter value that decodes to a traversal: applications
 * that take `?file=<base64 name>` are attacked with encoded paths (`Li4vLi4vZXRjL3Bhc3N3ZA==` is
 * `../../etc/passwd`). Values that do not decode to printable text (IDs, tokens) are dropped
 * after a byte or two. `query` is the raw query when it is plain, else the decoded one (a
 * browser sends base64's `=`, `/` and `+` as %3D, %2F and %2B).
 */
export function isBase64Traversal(query: string): boolean {
  let start = query.indexOf('=') + 1;
  while (start > 0) {
    const amp = query.indexOf('&', start);
    const end = amp < 0 ? query.length : amp;
    const length = end - start;
    if (length >= BASE64_MIN && length <= BASE64_MAX && isBase64(query, start, end)) {
      const decoded = printableBase64(query.slice(start, end));
      if (decoded !== undefined && isValueTraversal(normalise(decoded, false))) return true;
    }
    start = amp < 0 ? 0 : query.indexOf('=', amp) + 1;
  }
  return false;
}
