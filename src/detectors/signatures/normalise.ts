/**
 * Undoes the encodings attackers stack to slip payloads past naive matching, so the signatures
 * see what the application will finally see: percent-encoding (repeated, as double-decoding
 * servers and frameworks do), `%uXXXX`, overlong UTF-8 (`%c0%ae` is a dot to old decoders),
 * HTML character references, JavaScript escapes, UTF-7 angle brackets and Unicode compatibility
 * forms (fullwidth `／`, `‥`). Nothing here throws: malformed sequences stay as they were.
 *
 * Every step starts with a cheap "is there anything to do?" test, because almost all requests
 * have nothing to decode and this runs for every request.
 */

/** Double-encoding is common, triple occasionally seen; beyond that a server would not decode either. */
const MAX_ROUNDS = 3;

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

function isContinuation(c: number): boolean {
  return (c & 0xc0) === 0x80;
}

/**
 * UTF-8 bytes → text, accepting overlong forms (old decoders turned `c0 ae` into `.`, which is
 * what traversal payloads rely on). Invalid bytes become U+FFFD.
 */
function utf8(bytes: readonly number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length;) {
    const b = bytes[i] ?? 0;
    const c1 = bytes[i + 1] ?? -1;
    const c2 = bytes[i + 2] ?? -1;
    const c3 = bytes[i + 3] ?? -1;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i += 1;
    } else if (b >= 0xc0 && b < 0xe0 && isContinuation(c1)) {
      out += String.fromCharCode(((b & 0x1f) << 6) | (c1 & 0x3f));
      i += 2;
    } else if (b >= 0xe0 && b < 0xf0 && isContinuation(c1) && isContinuation(c2)) {
      out += String.fromCharCode(((b & 0x0f) << 12) | ((c1 & 0x3f) << 6) | (c2 & 0x3f));
      i += 3;
    } else if (b >= 0xf0 && b < 0xf5 && isContinuation(c1) && isContinuation(c2) && isContinuation(c3)) {
      const cp = ((b & 0x07) << 18) | ((c1 & 0x3f) << 12) | ((c2 & 0x3f) << 6) | (c3 & 0x3f);
      out += cp <= 0x10ffff ? String.fromCodePoint(cp) : '\ufffd';
      i += 4;
    } else {
      out += '\ufffd';
      i += 1;
    }
  }
  return out;
}

/** The byte `%XX` at `i` stands for, or -1. */
function escapedByte(s: string, i: number): number {
  if (s.charCodeAt(i) !== 37) return -1;
  const h = hex(s.charCodeAt(i + 1));
  const l = h >= 0 ? hex(s.charCodeAt(i + 2)) : -1;
  return l >= 0 ? h * 16 + l : -1;
}

/** One round of percent-decoding (`%XX`, `%uXXXX`), leaving malformed escapes as they are. */
function percentDecodeOnce(s: string): string {
  let i = s.indexOf('%');
  if (i < 0) return s;
  let out = '';
  let run = 0; // start of the literal text not yet copied
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 37) {
      i++;
    } else {
      const byte = escapedByte(s, i);
      if (byte >= 0) {
        out += s.slice(run, i);
        if (byte < 0x80) {
          out += String.fromCharCode(byte);
          i += 3;
        } else {
          // A multi-byte sequence: collect the run of escaped bytes and decode it as UTF-8.
          const bytes: number[] = [];
          for (let b = byte; b >= 0x80; b = escapedByte(s, i)) {
            bytes.push(b);
            i += 3;
          }
          out += utf8(bytes);
        }
        run = i;
      } else if ((s.charCodeAt(i + 1) | 0x20) === 117) {
        // IIS-style %uXXXX: a UTF-16 code unit.
        const a = hex(s.charCodeAt(i + 2));
        const b = hex(s.charCodeAt(i + 3));
        const d = hex(s.charCodeAt(i + 4));
        const e = hex(s.charCodeAt(i + 5));
        if (a >= 0 && b >= 0 && d >= 0 && e >= 0) {
          out += s.slice(run, i) + String.fromCharCode((a << 12) | (b << 8) | (d << 4) | e);
          i += 6;
          run = i;
        } else {
          i++;
        }
      } else {
        i++;
      }
    }
  }
  return out + s.slice(run);
}

// A `%` that does not start a `%XX` escape: the built-in decoder would throw (slowly) on it.
const STRAY_PERCENT = /%(?![0-9a-f]{2})/i;

/**
 * Percent-decodes up to three rounds while the text keeps changing. The built-in decoder does
 * the common case; what it rejects — overlong UTF-8, `%uXXXX`, a stray `%` — is what attacks
 * like to send, and goes to the hand-written decoder above.
 */
export function urlDecode(s: string, plusAsSpace: boolean): string {
  let current = plusAsSpace && s.includes('+') ? s.replaceAll('+', ' ') : s;
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (!current.includes('%')) break;
    let next: string;
    if (STRAY_PERCENT.test(current)) {
      next = percentDecodeOnce(current);
    } else {
      try {
        next = decodeURIComponent(current);
      } catch {
        next = percentDecodeOnce(current); // invalid UTF-8, e.g. overlong `%c0%ae`
      }
    }
    if (next === current) break;
    current = next;
  }
  return current;
}

/** Named references seen in evasion payloads; browsers know ~2,000, these are the useful ones. */
const NAMED: Record<string, string> = {
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  amp: '&',
  colon: ':',
  semi: ';',
  comma: ',',
  period: '.',
  sol: '/',
  bsol: '\\',
  lpar: '(',
  rpar: ')',
  lsqb: '[',
  rsqb: ']',
  lbrack: '[',
  rbrack: ']',
  lcub: '{',
  rcub: '}',
  lbrace: '{',
  rbrace: '}',
  equals: '=',
  excl: '!',
  num: '#',
  percnt: '%',
  plus: '+',
  grave: '`',
  quest: '?',
  commat: '@',
  tab: '\t',
  newline: '\n',
  nbsp: ' ',
};

// Numeric references may omit the `;` (browsers accept `&#60` and `&#x3c`); named ones need it,
// because the query string's own `&name=` separators would otherwise look like references.
const ENTITY = /&(?:#(?:x([0-9a-f]{1,8})|(\d{1,10}));?|([a-z]{2,10});)/gi;

function entity(match: string, hexDigits?: string, decimal?: string, name?: string): string {
  if (name !== undefined) return NAMED[name.toLowerCase()] ?? match;
  const cp = hexDigits !== undefined ? parseInt(hexDigits, 16) : parseInt(decimal ?? '', 10);
  if (!Number.isFinite(cp) || cp <= 0 || cp > 0x10ffff) return '';
  return String.fromCodePoint(cp);
}

const JS_ESCAPE = /\\(?:u\{([0-9a-f]{1,6})\}|u([0-9a-f]{4})|x([0-9a-f]{2}))/gi;

function jsEscape(match: string, braced?: string, unit?: string, byte?: string): string {
  const cp = parseInt(braced ?? unit ?? byte ?? '', 16);
  return Number.isFinite(cp) && cp <= 0x10ffff ? String.fromCodePoint(cp) : match;
}

const UTF7 = /\+a(?:dw|d4|ci|cc)-/gi;
const UTF7_CHARS: Record<string, string> = { '+adw-': '<', '+ad4-': '>', '+aci-': '"', '+acc-': "'" };
// Cheap tests deciding whether a step has anything to do (the global twins above do the work).
const HAS_ENTITY = /&(?:#|[a-z]{2,10};)/i;
const HAS_JS_ESCAPE = /\\[ux]/i;
const HAS_UTF7 = /\+a[dc][w4ic]-/i;
const NON_ASCII = /[^\u0000-\u007f]/;
// Slashes NFKC leaves alone but Windows' best-fit mapping turns into `/` and `\`.
const BEST_FIT = /[\u2215\u2044\u2216\u29f5]/g;
const NOT_PRINTABLE_ASCII = /[^\u0020-\u007e]/;
// Controls become spaces (browsers and SQL parsers treat tab, newline, vertical tab… as blanks);
// NUL stays, because a NUL byte next to a file name is itself a traversal signal.
const HAS_CONTROL = /[\u0001-\u001f\u007f]/;
const CONTROLS = /[\u0001-\u001f\u007f]/g;

function entities(s: string): string {
  return s.replace(ENTITY, entity);
}

/** Percent-decoded text → the lower-cased text every signature inspects. */
export function normaliseDecoded(decoded: string): string {
  // `&` separates parameters, so entities are looked for only with `&#` or a `;` around.
  const hasEntity = decoded.includes('&#') || (decoded.includes(';') && HAS_ENTITY.test(decoded));
  const hasEscape = decoded.includes('\\') && HAS_JS_ESCAPE.test(decoded);
  const hasUtf7 = decoded.includes('+') && HAS_UTF7.test(decoded);
  if (!hasEntity && !hasEscape && !hasUtf7 && !NOT_PRINTABLE_ASCII.test(decoded))
    return decoded.toLowerCase();
  let s = decoded;
  if (hasEntity) {
    s = entities(s);
    if (HAS_ENTITY.test(s)) s = entities(s); // `&amp;lt;`
  }
  if (hasEscape) s = s.replace(JS_ESCAPE, jsEscape);
  if (hasUtf7) s = s.replace(UTF7, (m) => UTF7_CHARS[m.toLowerCase()] ?? m);
  if (NON_ASCII.test(s))
    s = s.normalize('NFKC').replace(BEST_FIT, (c) => (c === '\u2215' || c === '\u2044' ? '/' : '\\'));
  s = s.toLowerCase();
  return HAS_CONTROL.test(s) ? s.replace(CONTROLS, ' ') : s;
}

/** Raw (percent-encoded) URI component → normalised text. */
export function normalise(raw: string, plusAsSpace: boolean): string {
  return normaliseDecoded(urlDecode(raw, plusAsSpace));
}

/**
 * SQL comments removed for matching: `/*!50000union*\/` (MySQL runs what a versioned comment
 * holds) keeps its content; other comments become a space, or nothing when `join` is set
 * (`uni/**\/on` is how some payloads split keywords). Written with indexOf rather than a lazy
 * regex, which would be quadratic on a line full of unclosed `/*`.
 */
export function stripSqlComments(s: string, join: boolean): string {
  let open = s.indexOf('/*');
  if (open < 0) return s;
  let out = '';
  let from = 0;
  while (open >= 0) {
    const close = s.indexOf('*/', open + 2);
    if (close < 0) break;
    out += s.slice(from, open);
    if (s.charCodeAt(open + 2) === 33) {
      let body = open + 3;
      while (body < close && s.charCodeAt(body) >= 48 && s.charCodeAt(body) <= 57) body++;
      out += ' ' + s.slice(body, close) + ' ';
    } else if (!join) {
      out += ' ';
    }
    from = close + 2;
    open = s.indexOf('/*', from);
  }
  return out + s.slice(from);
}
