/**
 * Where approval requests are shown: a Slack channel, or — without Slack configured — the
 * worker's log, with the CLI command that decides. Same verbs either way.
 */
import { WebClient } from '@slack/web-api';
import type { Config } from '../config';
import { approvalBlocks, type ApprovalRequest } from './messages';

export interface MessageRef {
  channel: string;
  ts: string;
}

export interface ApprovalNotifier {
  /** Shows the request; undefined when there is nowhere to show it. */
  requestApproval(request: ApprovalRequest): Promise<MessageRef | undefined>;
  /** Replaces the message with the outcome (buttons gone). */
  update(ref: MessageRef, text: string): Promise<void>;
}

export class SlackNotifier implements ApprovalNotifier {
  private readonly client: WebClient;

  constructor(
    token: string,
    private readonly channel: string,
    apiUrl?: string,
  ) {
    // Retries belong to the activity, which knows the approval deadline.
    this.client = new WebClient(token, {
      ...(apiUrl ? { slackApiUrl: apiUrl } : {}),
      retryConfig: { retries: 0 },
    });
  }

  async requestApproval(request: ApprovalRequest): Promise<MessageRef> {
    const out = await this.client.chat.postMessage({
      channel: this.channel,
      text: `Approval needed: ${request.action} ${request.targets.join(', ')} — ${request.reason}`,
      blocks: approvalBlocks(request),
    });
    if (!out.channel || !out.ts) throw new Error('chat.postMessage returned no channel/ts');
    return { channel: out.channel, ts: out.ts };
  }

  async update(ref: MessageRef, text: string): Promise<void> {
    await this.client.chat.update({ channel: ref.channel, ts: ref.ts, text, blocks: [] });
  }
}

export class LogNotifier implements ApprovalNotifier {
  constructor(private readonly log: (line: string) => void = (line) => console.log(line)) {}

  async requestApproval(request: ApprovalRequest): Promise<undefined> {
    this.log(
      `[approval] ${request.workflowId} waits for a decision: perimeter approve ${request.workflowId}  |  perimeter deny ${request.workflowId}`,
    );
    return undefined;
  }

  async update(): Promise<void> {}
}

export function notifierFor(config: Config): ApprovalNotifier {
  const { botToken, channel, apiUrl } = config.slack;
  return botToken && channel ? new SlackNotifier(botToken, channel, apiUrl) : new LogNotifier();
}
