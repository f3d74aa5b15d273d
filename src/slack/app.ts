/**
 * The Slack side of approvals: a Bolt app whose Approve / Approve as challenge / Deny buttons
 * call the incident's `decide` Update. Bolt verifies every request's signature and age; the
 * app checks the clicker is an approver (the Update's validator checks again) and answers the
 * clicker ephemerally; the incident workflow edits the shared message with what happened.
 */
import type { Server } from 'node:http';
import { App, LogLevel, type BlockButtonAction, type RespondFn } from '@slack/bolt';
import { WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { WorkflowNotFoundError } from '@temporalio/common';
import type { Config } from '../config';
import { decideRemediation, IncidentEndedError } from '../client/remediation';
import type { Decision } from '../../workflows/definitions';
import { WORKFLOW_ID_PREFIX } from '../../workflows/definitions';
import { decisionOutcome } from './messages';

export const ACTION_IDS: Record<string, Decision> = {
  perimeter_approve: 'approve',
  perimeter_approve_challenge: 'approve-challenge',
  perimeter_deny: 'deny',
};

export interface SlackApp {
  app: App;
  /** True when connected over Socket Mode (SLACK_APP_TOKEN); then no HTTP port is opened. */
  socketMode: boolean;
  start(port: number, host?: string): Promise<Server | undefined>;
  stop(): Promise<void>;
}

export function createSlackApp(config: Config, temporal: Client): SlackApp {
  const { slack } = config;
  // Socket Mode when an app token is configured (no public URL needed); otherwise HTTP.
  const socketMode = slack.appToken !== undefined;
  if (!slack.botToken || (!socketMode && !slack.signingSecret)) {
    throw new Error(
      'the Slack app needs SLACK_BOT_TOKEN, and SLACK_SIGNING_SECRET (HTTP) or SLACK_APP_TOKEN (Socket Mode)',
    );
  }
  const clientOptions = slack.apiUrl ? { slackApiUrl: slack.apiUrl } : {};
  const app = new App({
    token: slack.botToken,
    ...(socketMode
      ? { socketMode: true, appToken: slack.appToken, installerOptions: { clientOptions } }
      : { signingSecret: slack.signingSecret }),
    tokenVerificationEnabled: false,
    logLevel: LogLevel.WARN,
    clientOptions,
  });

  /** How the clicker may decide: listed by ID, verified in the approver group, or not at all. */
  async function authority(user: string): Promise<{ verifiedGroup?: string } | undefined> {
    const listed = config.approval.approvers;
    if (listed.includes(user)) return {};
    if (slack.approverGroup) {
      const members = await app.client.usergroups.users.list({ usergroup: slack.approverGroup });
      if (members.users?.includes(user)) return { verifiedGroup: slack.approverGroup };
    }
    return listed.length === 0 && !slack.approverGroup ? {} : undefined;
  }

  const ephemeral = (respond: RespondFn, text: string) =>
    respond({ response_type: 'ephemeral', replace_original: false, text });

  // Every action, so an unknown action ID gets an answer too.
  app.action<BlockButtonAction>(/.*/, async ({ ack, body, action, respond, logger }) => {
    await ack();
    const button = action;
    const decision = ACTION_IDS[button.action_id];
    const workflowId = button.value ?? '';
    const user = body.user.id;
    if (!decision || !workflowId.startsWith(WORKFLOW_ID_PREFIX)) {
      return void (await ephemeral(
        respond,
        `Unknown perimeter action or incident: ${button.action_id} ${workflowId}`,
      ));
    }
    const allowed = await authority(user).catch((err: unknown) => {
      logger.error(`approver check for ${user} failed: ${String(err)}`);
      return undefined;
    });
    if (!allowed) {
      return void (await ephemeral(
        respond,
        'You are not authorised to approve or deny perimeter remediations.',
      ));
    }
    try {
      const result = await decideRemediation(temporal, workflowId, { decision, by: user, ...allowed });
      // The clicker hears at once; the shared message is edited by the incident itself, the one
      // writer that also knows about expiry and release, so edits cannot overtake each other.
      await ephemeral(respond, decisionOutcome(workflowId, result));
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) {
        const why = (err.cause as Error | undefined)?.message ?? err.message;
        // Slack user IDs in the validator's words become mentions: "approved by @alice".
        const said = why.replace(/\bby ([UW][A-Z0-9_]+)\b/g, 'by <@$1>');
        return void (await ephemeral(respond, `Nothing changed: ${said}.`));
      }
      if (err instanceof IncidentEndedError) {
        return void (await ephemeral(
          respond,
          `Nothing changed: ${workflowId} has already ended (${err.state}).`,
        ));
      }
      if (err instanceof WorkflowNotFoundError) {
        return void (await ephemeral(respond, `Unknown incident: ${workflowId}.`));
      }
      // Acked already: whatever went wrong, the clicker must hear that nothing happened.
      logger.error(`decide ${workflowId} by ${user} failed: ${String(err)}`);
      return void (await ephemeral(
        respond,
        `Nothing changed: the decision could not be recorded (${(err as Error).message}).`,
      ));
    }
  });

  return {
    app,
    socketMode,
    async start(port, host = '127.0.0.1') {
      if (socketMode) {
        await app.start();
        return undefined;
      }
      return (await app.start({ port, host })) as Server;
    },
    async stop() {
      await app.stop();
    },
  };
}
