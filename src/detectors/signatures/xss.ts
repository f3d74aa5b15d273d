/**
 * Cross-site scripting signatures, over normalised (decoded, lower-cased) text.
 *
 * What makes markup dangerous is a tag a browser would build (`<script`, `<svg`, `<img …
 * onerror=`), a script-bearing URL (`javascript:`, `data:text/html`), or script calls that only
 * payloads make (`alert(1)`, `document.cookie`). Text with `<3`, `a < b`, "javascript: the good
 * parts" or "regular expression (regex)" has none of these.
 */
import { anyOf } from './any-of';
import { stripSqlComments } from './normalise';

/** Tags that run script or load active content by themselves. */
const ACTIVE_TAG =
  /<\/?script\b|<(?:iframe|frame|frameset|object|embed|applet|meta|base|link|style|svg|math|xml|import|bgsound|layer|ilayer|isindex|portal)\b/;
/** An event handler inside a tag: `<img src=x onerror=`, `<svg/onload=`, `<body onload=`. */
const HANDLER_IN_TAG = /<[a-z!][^>]{0,300}?[\s/"'`]on[a-z]{3,}\s*=/;
/** An attribute breakout into a handler: `" onmouseover=`, `' onfocus=` (the tag is the page's own). */
const HANDLER_AFTER_QUOTE = /['"`][\s/]+on[a-z]{3,}\s*=/;
/**
 * A script URL with code after it. Browsers drop tabs and newlines inside the scheme, which the
 * normaliser turned into spaces, hence the blanks allowed between letters.
 */
const SCRIPT_URL =
  /(?:^|[\s"'`=(<,;:&/\\])(?:j\s*a\s*v\s*a\s*s\s*c\s*r\s*i\s*p\s*t|v\s*b\s*s\s*c\s*r\s*i\s*p\s*t|livescript|mocha)\s*:\s*(?:[\w$.[\]'"]{1,64}\s*[(`=[]|\/\/|[[{'"(!~+\-/]|void\b|[\w$]+\s*\.\s*\w)/;
/** The probes every payload list uses, called the way only script calls them. */
const PROBE_CALL =
  /\b(?:alert|prompt|confirm)(?:\(|`)\s*(?:['"`/\d)]|document\b|window\b|this\b|top\b|self\b|parent\b|string\b|[\w$]+\s*[.(])/;
/** Closing the surrounding markup and opening a tag: `"><img`, `'<svg`, `--><script`, `</title><`. */
const BREAKOUT =
  /['"`]\s*\/?>\s*<\/?[a-z!]|['"`]\s*<[a-z][a-z0-9]*[\s/>]|--!?>\s*<\/?[a-z]|<\/(?:title|textarea|style|script|noscript|xmp|iframe|noembed|noframes|template|select|option)\s*>/;
/** CSS that runs script (old IE `expression()`, `-moz-binding`, `behavior:`), and style attributes in injected tags. */
const CSS_SCRIPT =
  /:\s*expression\s*\(|-moz-binding\s*:|\bbehavior\s*:\s*url\s*\(|<[a-z][a-z0-9]*[\s/][^>]{0,300}?\bstyle\s*=/;
/**
 * DOM access and dynamic code as injected script writes it: after an operator or inside a call
 * (`+document.cookie`, `(document.domain)`), or as calls and assignments. "document.cookie"
 * typed into a developer site's search box is neither.
 */
const DOM_ACCESS =
  /(?:[(+,;{}|]|\b(?:return|var|let|const|new))\s*(?:document|window|top|self|parent|this)\s*(?:\.\s*|\[\s*['"`])(?:cookie|domain|location|name|body|documentelement|head|forms|\w*storage|opener)\b|\bdocument\s*\.\s*(?:write(?:ln)?|createelement|getelementsby\w+|getelementbyid)\s*\(|\.innerhtml\s*\+?=\s*['"`(\w]|\bfromcharcode\s*\(|\beval\(|\batob\s*\(\s*['"`]|\bset(?:timeout|interval)\s*\(\s*['"`]|\blocation\s*\.\s*(?:href|hash|replace|assign)\s*[=(]|\bimport\s*\(\s*['"`]/;
/** Data URLs whose content is a document or script. */
const DATA_URL =
  /\bdata\s*:\s*(?:text\/(?:html|javascript|xml|x-scriptlet|vbscript)|image\/svg\+xml|application\/(?:x-)?(?:javascript|ecmascript|xhtml\+xml|xml))/;

/** A rule family and the cheap test for what every rule in it needs. */
interface Family {
  needs: RegExp;
  rules: RegExp;
}

const FAMILIES: readonly Family[] = [
  { needs: /</, rules: anyOf([ACTIVE_TAG, HANDLER_IN_TAG, BREAKOUT, CSS_SCRIPT]) },
  { needs: /['"`]/, rules: HANDLER_AFTER_QUOTE },
  { needs: /:/, rules: anyOf([SCRIPT_URL, DATA_URL, CSS_SCRIPT]) },
  {
    // Calls, and the operators and assignments around injected DOM access.
    needs: /[(+,;{}|`]|innerhtml|location/,
    rules: anyOf([PROBE_CALL, DOM_ACCESS]),
  },
];

/**
 * Every rule needs one of these: markup, a quote, a scheme's colon, a call, or the operators and
 * blanks around script. Text without any (most parameters) is clean after this one cheap scan.
 */
const GATE = /[<(`:'";{|+,\s]/;

/** Whether normalised text holds a cross-site scripting payload. */
export function isCrossSiteScripting(text: string): boolean {
  if (!GATE.test(text)) return false;
  for (const f of FAMILIES) if (f.needs.test(text) && f.rules.test(text)) return true;
  // `expr/**/ession(`: old IE ignored comments inside CSS.
  return text.includes('/*') && CSS_SCRIPT.test(stripSqlComments(text, true));
}
