/**
 * One regex matching where any of `rules` matches: one scan of the text instead of one per rule,
 * while the rules stay separate, commented entries in the source. Back-references in rules must
 * be named, since joining renumbers positional groups.
 */
export function anyOf(rules: readonly RegExp[]): RegExp {
  for (const rule of rules) {
    if (rule.flags !== '') throw new Error(`rule /${rule.source}/ has flags; rules see lower-cased text`);
    if (/\\\d/.test(rule.source.replace(/\\\\/g, ''))) {
      throw new Error(`rule /${rule.source}/ has a numbered back-reference`);
    }
  }
  return new RegExp(rules.map((r) => `(?:${r.source})`).join('|'));
}
