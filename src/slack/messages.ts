/** Words and Block Kit for the approval message. */
import type { KnownBlock } from '@slack/web-api';
import type { DecisionRecord, Evidence } from '../../workflows/definitions';
import { formatDuration } from '../domain/durations';
import { targetList } from '../../workflows/target-list';

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
  /** The policy's decisions (identity, earlier offences, approval rules), one line each. */
  policy?: string[];
}

const hhmm = (iso: string) => iso.slice(11, 16);

/**
 * Request lines, reasons and detector names can carry attacker-controlled text: escape Slack's
 * control characters and keep within Block Kit's limits, or the post is refused and nobody sees it.
 */
function safe(text: string, max: number): string {
  const escaped = text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  return escaped.length <= max ? escaped : `${escaped.slice(0, max - 1)}…`;
}

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
    {
      type: 'header',
      text: { type: 'plain_text', text: safe(`Approve ${r.action} of ${targetList(r.targets, 3)}?`, 150) },
    },
    {
      type: 'section',
      fields: [
        { type: 'mrkdwn', text: `*Action*\n${r.action} for ${formatDuration(r.ttlMs)}` },
        { type: 'mrkdwn', text: `*Detector*\n${safe(r.detector, 200)}` },
        { type: 'mrkdwn', text: `*Reason*\n${safe(r.reason, 1_000)}` },
        {
          type: 'mrkdwn',
          text: `*Evidence*\n${e.requests} attack requests (${safe(classes || 'none', 500)})`,
        },
        { type: 'mrkdwn', text: `*Seen*\n${seen}` },
        { type: 'mrkdwn', text: `*Authenticated requests from target*\n${e.authenticated}` },
      ],
    },
    ...(r.policy && r.policy.length > 0
      ? [
          {
            type: 'section' as const,
            text: {
              type: 'mrkdwn' as const,
              text: `*Policy*\n${safe(r.policy.map((line) => `• ${line}`).join('\n'), 1_500)}`,
            },
          },
        ]
      : []),
    ...(e.samples.length > 0
      ? [
          {
            type: 'section' as const,
            text: {
              type: 'mrkdwn' as const,
              text:
                '```' +
                safe(
                  e.samples
                    .slice(0, 5)
                    .map((l) => l.slice(0, 400))
                    .join('\n'),
                  2_800,
                ) +
                '```',
            },
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

const PAST: Record<string, string> = {
  block: 'blocked',
  challenge: 'challenged',
  captcha: 'CAPTCHA required',
};

/**
 * "Approved by <@U1> at 12:03 UTC — blocked until 13:03 UTC", "Denied by <@U2> at 12:04 UTC —
 * nothing applied", "Expired: no answer in 15m — default deny, nothing applied".
 */
export function decisionOutcome(
  workflowId: string,
  r: DecisionRecord & { state: string; action?: string; expiresAt?: string },
): string {
  const applied = r.expiresAt
    ? `${PAST[r.action ?? ''] ?? r.action} until ${hhmm(r.expiresAt)} UTC`
    : r.decision === 'deny'
      ? 'nothing applied'
      : `now ${r.state}`;
  if (r.byDefault) {
    const waited = r.waitedMs === undefined ? 'in time' : `in ${formatDuration(r.waitedMs)}`;
    return `Expired: no answer ${waited} — default ${r.decision === 'deny' ? 'deny' : 'approve'}, ${applied} (${workflowId})`;
  }
  const verb =
    r.decision === 'deny'
      ? 'Denied'
      : r.decision === 'approve-challenge'
        ? 'Approved as challenge'
        : 'Approved';
  return `${verb} by <@${r.by}> at ${hhmm(r.at)} UTC — ${applied} (${workflowId})`;
}
