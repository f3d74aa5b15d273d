/**
 * AWS WAF's own verdicts (rule matches and labels in its logs) mapped to attack classes, so a
 * request AWS already recognised counts even where the built-in signatures would not fire.
 *
 * Mapped, by the AWS managed rule names (case-insensitive, any field suffix):
 * - sqli: `SQLi_*`, `SQLiExtendedPatterns_*` (SQL database group; its labels
 *   `awswaf:managed:aws:sql-database:*`), and the group name `AWSManagedRulesSQLiRuleSet` itself,
 *   since every rule in that group is an SQL injection rule.
 * - xss: `CrossSiteScripting_*` (core rule set).
 * - traversal: `GenericLFI_*`, `LFI_*` (Linux group), `RestrictedExtensions_*` (requests for
 *   `.log`, `.ini`… files) and `GenericRFI_*`: remote inclusion is the same attack on the same
 *   parameter with a URL instead of a path, so it is counted with its local twin.
 * - scanner: `UserAgent_BadBots_*` / `BadBots_*` (core rule set), and Bot Control's
 *   `bot:name:<tool>` labels when the tool is a scanner.
 *
 * Not mapped: known-bad-inputs (Log4J, Java deserialization, exploitable paths, localhost Host),
 * POSIX / Windows / PHP command injection, size limits, IP reputation, Bot Control categories
 * (its `security` category mixes scanners with benign security services): none is one of the
 * four classes, and a wrong class would mislead more than a missing one. Other group names
 * (core rule set, known bad inputs) say nothing until an inner rule is named.
 *
 * The action (BLOCK, COUNT, EXCLUDED_AS_COUNT…) does not matter: a match in count mode is still
 * AWS recognising the attack.
 */
import { SCANNER, SQLI, TRAVERSAL, XSS } from './bits';
import { isScannerUa } from './scanners';

const RULE_CLASSES: ReadonlyArray<readonly [RegExp, number]> = [
  [/^sqli(?:extendedpatterns)?_/, SQLI],
  [/^crosssitescripting_/, XSS],
  [/^(?:genericlfi|lfi|restrictedextensions|genericrfi)_/, TRAVERSAL],
  [/^(?:useragent_)?badbots_/, SCANNER],
];
const SQLI_GROUP = 'awsmanagedrulessqliruleset';
const SQLI_NAMESPACE = 'awswaf:managed:aws:sql-database:';
const BOT_NAME = 'awswaf:managed:aws:bot-control:bot:name:';

// Few distinct labels and rule IDs exist, so verdicts are remembered; all are short, and a long
// (forged) one is not kept.
const CACHE_LIMIT = 1024;
const CACHED_NAME_MAX = 256;
const verdicts = new Map<string, number>();

/** The class bits one rule ID or label stands for (0 when none). */
function classesOf(name: string): number {
  const known = name.length <= CACHED_NAME_MAX ? verdicts.get(name) : undefined;
  if (known !== undefined) return known;
  const lower = name.toLowerCase();
  let bits = 0;
  if (lower.startsWith(SQLI_NAMESPACE) || lower.includes(SQLI_GROUP)) bits |= SQLI;
  if (lower.startsWith(BOT_NAME) && isScannerUa(lower.slice(BOT_NAME.length))) bits |= SCANNER;
  // The rule is the last component: `…:core-rule-set:GenericLFI_URIPath`, `AWS#…#SQLi_BODY`.
  const rule = lower.slice(Math.max(lower.lastIndexOf(':'), lower.lastIndexOf('#')) + 1);
  for (const [pattern, bit] of RULE_CLASSES) if (pattern.test(rule)) bits |= bit;
  if (name.length > CACHED_NAME_MAX) return bits;
  if (verdicts.size >= CACHE_LIMIT) verdicts.clear();
  verdicts.set(name, bits);
  return bits;
}

/** The class bits of a request's WAF labels and matched rules. */
export function upstreamClasses(
  labels: readonly string[] | undefined,
  upstream: ReadonlyArray<{ rule: string }> | undefined,
): number {
  let bits = 0;
  if (labels) for (const label of labels) bits |= classesOf(label);
  if (upstream) for (const match of upstream) bits |= classesOf(match.rule);
  return bits;
}
