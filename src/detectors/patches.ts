/**
 * Which of this deployment's virtual patches a logged request matched. A patch rule shows up in
 * an AWS WAF log twice: by name among the matching rules (non-terminating while it counts,
 * terminating once it blocks) and by the label it adds, which the log qualifies with the account
 * and web ACL (`awswaf:111122223333:webacl:my-acl:<prefix>:vpatch:<findingId>`).
 */
import { checkFindingId, parsePatchRuleName } from '../domain/virtual-patch';
import type { LogRecord } from './types';

const NONE: readonly never[] = [];
const COLON = 58;

/** The finding IDs of the patch rules `record` matched, each once; [] for other formats. */
export function patchMatches(record: Pick<LogRecord, 'upstream' | 'labels'>, prefix: string): string[] {
  // Runs on every line, and most requests match no patch: the list is only built when one does.
  let found: string[] | undefined;
  const add = (id: string | undefined): void => {
    if (id === undefined) return;
    found ??= [];
    if (!found.includes(id)) found.push(id);
  };
  for (const match of record.upstream ?? NONE) add(parsePatchRuleName(prefix, match.rule));
  const namespace = `${prefix}:vpatch:`;
  for (const label of record.labels ?? NONE) add(patchOfLabel(label, namespace));
  return found ?? [];
}

/** The finding a `<prefix>:vpatch:<findingId>` label names, bare or fully qualified. */
function patchOfLabel(label: string, namespace: string): string | undefined {
  const idStart = label.lastIndexOf(':') + 1;
  const at = idStart - namespace.length;
  if (at < 0 || !label.startsWith(namespace, at)) return undefined;
  // The whole prefix must match: `other-perimeter:vpatch:…` belongs to another deployment.
  if (at > 0 && label.charCodeAt(at - 1) !== COLON) return undefined;
  const id = label.slice(idStart);
  return checkFindingId(id) === undefined ? id : undefined;
}
