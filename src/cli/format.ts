/** Plain-text renderings for the terminal. */
import type { IncidentStatus } from '../../workflows/definitions';
import type { ActiveRemediation } from '../client/remediation';
import { formatDuration } from '../domain/durations';
import type { ManagedSetStatus } from '../waf/provision';
import type { PatchRuleState } from '../waf/patch-gateway';
import { targetList } from '../../workflows/target-list';

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function until(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const left = Date.parse(iso) - now;
  return `${iso.replace(/\.\d+Z$/, 'Z')} (${left > 0 ? `in ${formatDuration(Math.round(left / 1000) * 1000)}` : 'due'})`;
}

export function remediationTable(items: ActiveRemediation[]): string {
  if (items.length === 0) return 'no active remediations';
  return table(
    ['KIND', 'TARGET', 'ACTION', 'STATE', 'EXPIRES', 'WORKFLOW ID'],
    items.map((r) => [
      r.kind === 'vpatch' ? 'patch' : 'ip',
      targetList(r.targets, 2),
      r.action,
      r.dryRun ? `${r.state} (dry-run)` : r.state,
      until(r.expiresAt),
      r.workflowId,
    ]),
  );
}

export function setTable(sets: ManagedSetStatus[]): string {
  if (sets.length === 0) return 'no managed IP sets; run `perimeter waf init`';
  return table(
    ['IP SET', 'ACTION', 'FAMILY', 'ADDRESSES', 'FILL', 'RULE'],
    sets.map((s) => [
      s.name,
      s.action,
      s.family,
      `${s.addresses}/${s.capacity}`,
      `${(s.fill * 100).toFixed(1)}%`,
      s.linked ? 'linked' : 'NOT LINKED',
    ]),
  );
}

export function patchRuleTable(rules: PatchRuleState[]): string {
  if (rules.length === 0) return 'no virtual-patch rules in the web ACL';
  return table(
    ['PATCH RULE', 'FINDING', 'ACTION', 'PRIORITY'],
    rules.map((r) => [r.rule, r.findingId, r.action ?? '?', String(r.priority)]),
  );
}

export function timeline(workflowId: string, status: IncidentStatus): string {
  const e = status.evidence;
  const classes = Object.entries(e.byClass)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  const head = [
    `${workflowId}`,
    `  ${status.action} ${targetList(status.targets, 10)} — ${status.state}${status.dryRun ? ' (DRY-RUN: the WAF was not changed)' : ''}`,
    `  reason: ${status.reason} (detector ${status.detector})`,
    `  ttl ${formatDuration(status.ttlMs)}, observe ${formatDuration(status.observeMs)}` +
      (status.releasedAt
        ? `, released ${status.releasedAt}`
        : status.expiresAt
          ? `, expires ${until(status.expiresAt)}`
          : ''),
    `  evidence: ${e.requests} attack requests in ${e.sightings} sightings${classes ? ` (${classes})` : ''}` +
      (e.firstSeen ? `, first ${e.firstSeen}, last ${e.lastSeen}` : ''),
  ];
  const p = status.patch;
  if (p) {
    head.push(
      `  virtual patch ${p.findingId}: ${p.summary || '(not validated)'}`,
      `  rule ${p.rule || '-'}: ${p.ruleAction ?? 'not in the web ACL'}` +
        (p.spec?.kind === 'regex' && p.spec.patterns ? `, pattern ${p.spec.patterns.join(' ')}` : ''),
      ...(p.fix ? [`  fix deployed: ${p.fix.commit} (reported by ${p.fix.by} at ${p.fix.at})`] : []),
    );
  }
  const steps = status.timeline.map((t) => `  ${t.at.slice(11, 23)}  ${t.step.padEnd(8)}  ${t.message}`);
  return [...head, '', '  timeline (UTC):', ...steps].join('\n');
}
