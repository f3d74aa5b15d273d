/** Words and Block Kit for the approval message. */
import type { KnownBlock } from '@slack/web-api';
import type { DecisionRecord, Evidence, IncidentState } from '../../workflows/definitions';
import { formatDuration } from '../domain/durations';

export interface ApprovalRequest {
  workflowId: string;
  targets: string[];
  action: string;
  ttlMs: number;
  detector: string;
  reason: string;
  evidence: Evidence;
  timeoutMs: number;
  onTimeout: 'deny' | 'approve';
  /** Link to the incident in the Temporal Web UI. */
  url: string;
}

const hhmm = (iso: string) => iso.slice(11, 16);

export function approvalBlocks(r: ApprovalRequest): KnownBlock[] {
  const e = r.evidence;
  const classes = Object.entries(e.byClass)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  const seen = e.firstSeen ? `first ${e.firstSeen}, last ${e.lastSeen}` : 'no requests reported';
  const buttons = [
    { text: 'Approve', action_id: 'perimeter_approve', style: 'primary' as const },
    ...(r.action === 'block'
      ? [{ text: 'Approve as challenge', action_id: 'perimeter_approve_challenge' }]
      : []),
    { text: 'Deny', action_id: 'perimeter_deny', style: 'danger' as const },
  ];
  return [
    { type: 'header', text: { type: 'plain_text', text: `Approve ${r.action} of ${r.targets.join(', ')}?` } },
    {
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: `*Action*\n${r.action} for ${formatDuration(r.ttlMs)}` },
        { type: 'mrkdwn', text: `*Detector*\n${r.detector}` },
        { type: 'mrkdwn', text: `*Reason*\n${r.reason}` },
        { type: 'mrkdwn', text: `*Evidence*\n${e.requests} attack requests (${classes || 'none'})` },
        { type: 'mrkdwn', text: `*Seen*\n${seen}` },
        { type: 'mrkdwn', text: `*Authenticated requests from target*\n${e.authenticated}` },
      ],
    },
    ...(e.samples.length > 0
      ? [
          {
            type: 'section' as const,
            text: { type: 'mrkdwn' as const, text: '```' + e.samples.slice(0, 5).join('\n') + '```' },
          },
        ]
      : []),
    {
      type: 'actions',
      block_id: 'decide',
      elements: buttons.map((b) => ({
        type: 'button' as const,
        text: { type: 'plain_text' as const, text: b.text },
        action_id: b.action_id,
        value: r.workflowId,
        ...('style' in b ? { style: b.style } : {}),
      })),
    },
    {
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `No answer in ${formatDuration(r.timeoutMs)} → default ${r.onTimeout}. <${r.url}|Incident in Temporal>`,
        },
      ],
    },
  ];
}

/** "Approved by <@U1> at 12:03 UTC — now active", "Denied by <@U2> …", "Expired: no answer …". */
export function decisionOutcome(
  workflowId: string,
  r: DecisionRecord & { state: IncidentState | string },
): string {
  if (r.byDefault) {
    return `Expired: no answer in time — default ${r.decision === 'deny' ? 'deny, nothing applied' : `approve, now ${r.state}`} (${workflowId})`;
  }
  const verb =
    r.decision === 'deny'
      ? 'Denied'
      : r.decision === 'approve-challenge'
        ? 'Approved as challenge'
        : 'Approved';
  const outcome = r.decision === 'deny' ? 'nothing applied' : `now ${r.state}`;
  return `${verb} by <@${r.by}> at ${hhmm(r.at)} UTC — ${outcome} (${workflowId})`;
}
