/**
 * How a campaign's target list is shown: a timeline line, an activity summary or a search
 * attribute must stay readable (and within Temporal's size limits) when it holds thousands.
 */

/** "a, b, c" — or "a, b, c and 997 more" past `max`. */
export function targetList(targets: readonly string[], max = 5): string {
  if (targets.length <= max) return targets.join(', ');
  return `${targets.slice(0, max).join(', ')} and ${targets.length - max} more`;
}

/**
 * Temporal refuses a search-attribute value over 2 KiB by default: a campaign lists as many of
 * its targets as fit, and the rest are found through the incident's status.
 */
const SEARCH_ATTRIBUTE_BUDGET = 1_800;

export function searchableTargets(targets: readonly string[]): string[] {
  const out: string[] = [];
  let size = 2;
  for (const target of targets) {
    size += target.length + 3;
    if (size > SEARCH_ATTRIBUTE_BUDGET) break;
    out.push(target);
  }
  return out;
}
