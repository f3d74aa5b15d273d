/**
 * Socket Mode: with SLACK_APP_TOKEN set, the Slack app opens a WebSocket (through
 * apps.connections.open) instead of serving HTTP, acknowledges each envelope, and a click
 * delivered that way decides the incident like an HTTP one.
 */
import { releaseRemediation } from '../../src/client/remediation';
import { createSlackApp, type SlackApp } from '../../src/slack/app';
import { startFakeSlack, type FakeSlack } from '../helpers/fake-slack';
import { openTestStack, startAwaitingApproval, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;
let slack: FakeSlack;
let bolt: SlackApp;

beforeAll(async () => {
  slack = await startFakeSlack();
  stack = await openTestStack({
    SLACK_BOT_TOKEN: 'xoxb-test-token',
    SLACK_APP_TOKEN: 'xapp-test-token',
    SLACK_API_URL: slack.apiUrl,
    PERIMETER_SLACK_CHANNEL: 'C_SEC',
    PERIMETER_SLACK_APPROVERS: 'U_ALICE',
  });
  await stack.startWorker();
  bolt = createSlackApp(stack.config, stack.client);
  await bolt.start(0);
  await waitFor('the Socket Mode connection', async () => slack.sockets.length > 0);
});
afterAll(async () => {
  await bolt?.stop();
  await stack?.close();
  await slack?.close();
});

it('decides an incident from a click delivered over Socket Mode', async () => {
  expect(bolt.socketMode).toBe(true);
  const ip = '203.0.115.1';
  const workflowId = await startAwaitingApproval(stack, ip);
  const envelope = slack.deliver({
    type: 'block_actions',
    user: { id: 'U_ALICE' },
    team: { id: 'T1' },
    response_url: slack.responseUrl('socket-1'),
    actions: [{ type: 'button', action_id: 'perimeter_approve', block_id: 'decide', value: workflowId }],
  });
  await waitFor('block', async () => (await stack.setContents('block')).includes(`${ip}/32`));
  expect(slack.acks.map((a) => a.envelope_id)).toContain(envelope);
  const reply = await waitFor(
    'reply',
    async () => slack.calls.find((c) => c.path === '/respond/socket-1')?.body,
  );
  expect(String(reply.text)).toMatch(/^Approved by <@U_ALICE> .* blocked until/);
  await releaseRemediation(stack.client, workflowId, { by: 'jest' });
});
