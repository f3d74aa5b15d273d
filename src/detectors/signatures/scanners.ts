/**
 * Attack tools recognised by how they announce themselves: the UA string most of them send by
 * default, a few headers commercial scanners add, and probe paths some tools always request.
 *
 * Only tools that exist to find or exploit vulnerabilities are listed. Crawlers, monitors and
 * HTTP libraries (Googlebot, bingbot, curl, python-requests, Go-http-client, Pingdom…) are not
 * attacks by themselves: when they do attack, the request signatures say so.
 */

/**
 * Tool names as they appear in default UA strings, e.g. `sqlmap/1.7`, `Mozilla/5.00 (Nikto/2.5.0)`,
 * `Nmap Scripting Engine`, `Fuzz Faster U Fool v2.1`, `Morfeus Fucking Scanner`, `ZmEu`, and
 * skipfish's `SF/2.10b`.
 */
const SCANNER_UA = new RegExp(
  String.raw`\b(?:sqlmap|nikto|nmap|masscan|zgrab|nuclei|wpscan|dirbuster|gobuster|ffuf|feroxbuster|acunetix|netsparker|invicti|w3af|havij|openvas|nessus|commix|whatweb|arachni|skipfish|zmeu|jaeles|xsstrike|wfuzz|dirsearch|sqlninja|bbqsql|fimap|dotdotpwn|nsauditor|webinspect|appscan|paros|webshag|uniscan|joomscan|droopescan|cmsmap|wapiti|jorgee|morfeus|xspider|pangolin|qualysguard|muieblackcat|struts-pwn|hydra|nmap scripting engine)\b|fuzz faster u fool|\(nikto|w00tw00t|\bsf\/\d\.\d+b\b`,
  'i',
);

/** Headers only scanners send (Acunetix, Netsparker / Invicti, HP WebInspect). */
const SCANNER_HEADERS = [
  'acunetix-product',
  'acunetix-scanning-agreement',
  'acunetix-user-agreement',
  'x-scanner',
  'x-wipp',
  'x-request-memo',
  'x-scan-memo',
] as const;

/** Probe paths: Nmap's service probe, the DFind `w00tw00t` scan, muieblackcat's index probe. */
const SCANNER_PATH = /\/nice ports,\/trinity\.txt\.bak|\/w00tw00t\.at\.|\/muieblackcat\b/;

// UA strings repeat heavily (a log has thousands of requests per distinct one), so verdicts
// are remembered; the map is dropped when full rather than tracked as an LRU, which is cheaper.
// Long strings are not kept (real UAs are short; 4,096 huge ones would hold hundreds of MB).
const CACHE_LIMIT = 4096;
const CACHED_UA_MAX = 512;
const uaVerdicts = new Map<string, boolean>();

/** Whether a UA string names a vulnerability scanner or attack tool. */
export function isScannerUa(ua: string): boolean {
  if (ua.length > CACHED_UA_MAX) return SCANNER_UA.test(ua);
  const known = uaVerdicts.get(ua);
  if (known !== undefined) return known;
  const verdict = SCANNER_UA.test(ua);
  if (uaVerdicts.size >= CACHE_LIMIT) uaVerdicts.clear();
  uaVerdicts.set(ua, verdict);
  return verdict;
}

/** Whether the request carries a header only scanners send. */
export function hasScannerHeaders(headers: Record<string, string>): boolean {
  for (const name of SCANNER_HEADERS) if (headers[name] !== undefined) return true;
  return false;
}

/** Whether a (normalised) path is a scanner's probe. */
export function isScannerPath(path: string): boolean {
  return SCANNER_PATH.test(path);
}
