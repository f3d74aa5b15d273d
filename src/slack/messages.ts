/** Words and Block Kit for the approval message. */
import type { DecisionRecord, IncidentState } from '../../workflows/definitions';

const hhmm = (iso: string) => iso.slice(11, 16);

/** "Approved by <@U1> at 12:03 — block in place", "Denied by <@U2> at 12:04". */
export function decisionOutcome(
  workflowId: string,
  r: DecisionRecord & { state: IncidentState | string },
): string {
  const who = r.byDefault ? 'by default (no answer in time)' : `by <@${r.by}>`;
  const verb =
    r.decision === 'deny'
      ? 'Denied'
      : r.decision === 'approve-challenge'
        ? 'Approved as challenge'
        : 'Approved';
  const outcome = r.decision === 'deny' ? 'nothing applied' : `now ${r.state}`;
  return `${verb} ${who} at ${hhmm(r.at)} UTC — ${outcome} (${workflowId})`;
}
