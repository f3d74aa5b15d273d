/**
 * Slack approvals end to end: signed `block_actions` payloads, form-encoded as Slack sends
 * them, against the running Bolt app (real signature checks), which drives the incident's
 * `decide` Update on the real dev server; Slack's own servers are a local fake.
 */
import crypto from 'node:crypto';
import {
  decideRemediation,
  incidentStatus,
  releaseRemediation,
  startRemediation,
} from '../../src/client/remediation';
import { freePort } from '../../src/dev/services';
import { createSlackApp, type SlackApp } from '../../src/slack/app';
import { startFakeSlack, type FakeSlack } from '../helpers/fake-slack';
import {
  addressPool,
  buildDetection,
  openTestStack,
  startAwaitingApproval,
  waitFor,
  type TestStack,
} from '../helpers/stack';

const pool = addressPool('203.0.114', '2001:db8:6');
const signingSecret = crypto.randomBytes(16).toString('hex');
let stack: TestStack;
let slack: FakeSlack;
let bolt: SlackApp;
let url: string;
let clicks = 0;

beforeAll(async () => {
  slack = await startFakeSlack();
  stack = await openTestStack({
    SLACK_BOT_TOKEN: 'xoxb-test-token',
    SLACK_SIGNING_SECRET: signingSecret,
    SLACK_API_URL: slack.apiUrl,
    PERIMETER_SLACK_CHANNEL: 'C_SEC',
    PERIMETER_SLACK_APPROVERS: 'U_ALICE',
    PERIMETER_SLACK_APPROVER_GROUP: 'S_ONCALL',
    PERIMETER_APPROVAL_TIMEOUT: '2m',
  });
  slack.groupMembers = ['U_BOB'];
  await stack.startWorker();
  bolt = createSlackApp(stack.config, stack.client);
  const port = await freePort();
  await bolt.start(port);
  url = `http://127.0.0.1:${port}/slack/events`;
});
afterAll(async () => {
  await bolt?.stop();
  await stack?.close();
  await slack?.close();
});

function sign(body: string, ts: number, secret = signingSecret): string {
  return `v0=${crypto.createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;
}

/** Clicks a button as Slack would deliver it; returns the HTTP status and the response_url id. */
async function click(
  actionId: string,
  workflowId: string,
  user: string,
  tamper: { secret?: string; ageSeconds?: number; rawPayload?: string } = {},
) {
  const id = `r${++clicks}`;
  const payload = {
    type: 'block_actions',
    user: { id: user, username: user.toLowerCase(), team_id: 'T1' },
    team: { id: 'T1', domain: 'example' },
    api_app_id: 'A1',
    token: 'legacy-verification-token',
    trigger_id: '1.2.3',
    channel: { id: 'C_SEC', name: 'security' },
    container: { type: 'message', message_ts: '1.1', channel_id: 'C_SEC', is_ephemeral: false },
    message: { type: 'message', ts: '1.1', text: 'approval request' },
    response_url: slack.responseUrl(id),
    actions: [
      { type: 'button', action_id: actionId, block_id: 'decide', value: workflowId, action_ts: '1.2' },
    ],
  };
  const body = `payload=${encodeURIComponent(tamper.rawPayload ?? JSON.stringify(payload))}`;
  const ts = Math.floor(Date.now() / 1000) - (tamper.ageSeconds ?? 0);
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': sign(body, ts, tamper.secret),
    },
    body,
  });
  return { status: res.status, id };
}

/** Web API calls about one incident (its workflow ID is in every message we send). */
const apiCalls = (method: string, workflowId: string) =>
  slack.calls.filter((c) => c.path === `/api/${method}` && JSON.stringify(c.body).includes(workflowId));

const responses = (id: string) => slack.calls.filter((c) => c.path === `/respond/${id}`).map((c) => c.body);
const replied = (id: string) => waitFor(`reply on ${id}`, async () => responses(id)[0]);

const awaitingApproval = (ip: string) => startAwaitingApproval(stack, ip);

it('posts the request with the evidence and the three buttons', async () => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const [post] = await waitFor('chat.postMessage', async () => {
    const calls = apiCalls('chat.postMessage', id);
    return calls.length > 0 ? calls : undefined;
  });
  expect(post?.body.channel).toBe('C_SEC');
  const blocks = JSON.parse(String(post?.body.blocks)) as Array<{
    type: string;
    elements?: Array<{ action_id?: string; value?: string }>;
  }>;
  const buttons = blocks.find((b) => b.type === 'actions')?.elements ?? [];
  expect(buttons.map((b) => b.action_id)).toEqual([
    'perimeter_approve',
    'perimeter_approve_challenge',
    'perimeter_deny',
  ]);
  expect(buttons.every((b) => b.value === id)).toBe(true);
  const text = JSON.stringify(blocks);
  for (const part of [
    'sqli 5',
    'sqli probes',
    'test-detector',
    'No answer in 2m → default deny',
    encodeURIComponent(id),
  ]) {
    expect(text).toContain(part);
  }
  await releaseRemediation(stack.client, id, { by: 'jest' });
  await waitFor('message says stood down', async () =>
    apiCalls('chat.update', id).some((c) => String(c.body.text).startsWith('Released at')),
  );
});

it('Approve applies the block, tells the clicker, and the message is edited in place', async () => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const { status, id: r } = await click('perimeter_approve', id, 'U_ALICE');
  expect(status).toBe(200);
  const reply = await replied(r);
  expect(reply).toMatchObject({ response_type: 'ephemeral', replace_original: false });
  expect(String(reply.text)).toMatch(
    /^Approved by <@U_ALICE> at \d\d:\d\d UTC — blocked until \d\d:\d\d UTC/,
  );
  expect(await stack.setContents('block')).toContain(`${ip}/32`);
  await waitFor('workflow edits the message too', async () =>
    apiCalls('chat.update', id).some((c) =>
      /^Approved by <@U_ALICE> .* blocked until/.test(String(c.body.text)),
    ),
  );
  await releaseRemediation(stack.client, id, { by: 'jest' });
  await waitFor('message says released', async () =>
    apiCalls('chat.update', id).some((c) => String(c.body.text).startsWith('Released at')),
  );
});

it('a member of the approver group may decide; Deny applies nothing', async () => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const { id: r } = await click('perimeter_deny', id, 'U_BOB');
  expect(String((await replied(r)).text)).toMatch(/^Denied by <@U_BOB> .* nothing applied/);
  expect((await incidentStatus(stack.client, ip)).state).toBe('stood-down');
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});

it('refuses someone who is not an approver with an ephemeral reply, changing nothing', async () => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const { status, id: r } = await click('perimeter_approve', id, 'U_MALLORY');
  expect(status).toBe(200);
  expect(await replied(r)).toMatchObject({ response_type: 'ephemeral', replace_original: false });
  expect(String(responses(r)[0]?.text)).toMatch(/not authorised/);
  expect((await incidentStatus(stack.client, ip)).state).toBe('awaiting-approval');
  await releaseRemediation(stack.client, id, { by: 'jest' });
});

it.each([
  ['a forged signature', { secret: 'not-the-secret' }],
  ['a stale request (over 5 minutes old)', { ageSeconds: 6 * 60 }],
])('answers %s with 401 and never reaches the incident', async (_what, tamper) => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const { status, id: r } = await click('perimeter_approve', id, 'U_ALICE', tamper);
  expect(status).toBe(401);
  await new Promise((res) => setTimeout(res, 300));
  expect(responses(r)).toEqual([]);
  expect((await incidentStatus(stack.client, ip)).state).toBe('awaiting-approval');
  await releaseRemediation(stack.client, id, { by: 'jest' });
});

it('rejects a malformed payload and changes nothing', async () => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const { status } = await click('perimeter_approve', id, 'U_ALICE', { rawPayload: '{not json' });
  expect(status).toBe(400);
  expect((await incidentStatus(stack.client, ip)).state).toBe('awaiting-approval');
  await releaseRemediation(stack.client, id, { by: 'jest' });
});

it('answers a double click truthfully: one decision, the second told who decided', async () => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const first = await click('perimeter_approve_challenge', id, 'U_ALICE');
  await replied(first.id);
  const second = await click('perimeter_deny', id, 'U_BOB');
  const reply = await replied(second.id);
  expect(reply).toMatchObject({ response_type: 'ephemeral' });
  expect(String(reply.text)).toBe('Nothing changed: already decided: approved as challenge by <@U_ALICE>.');
  expect(await stack.setContents('challenge')).toContain(`${ip}/32`);
  await releaseRemediation(stack.client, id, { by: 'jest' });
});

it('answers a click on an unknown incident clearly', async () => {
  const { id: r } = await click('perimeter_approve', 'perimeter/ip/203.0.113.254/32', 'U_ALICE');
  expect(String((await replied(r)).text)).toMatch(/Unknown incident|has already ended/);
});

it('edits the message when nobody answers in time', async () => {
  const ip = pool.v4();
  const [s] = await startRemediation(
    {
      client: stack.client,
      config: { ...stack.config, approval: { ...stack.config.approval, timeoutMs: 1_500 } },
    },
    buildDetection({ targets: [ip], ttlMs: 60_000, approval: 'slack' }),
  );
  await stack.client.workflow.getHandle(s!.workflowId).result();
  await waitFor('expired message', async () =>
    apiCalls('chat.update', s!.workflowId).some((c) =>
      String(c.body.text).startsWith('Expired: no answer in 1.5s — default deny, nothing applied'),
    ),
  );
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
  // A click after the expiry is answered truthfully and changes nothing.
  const late = await click('perimeter_approve', s!.workflowId, 'U_ALICE');
  expect(String((await replied(late.id)).text)).toBe(
    `Nothing changed: ${s!.workflowId} has already ended (stood-down).`,
  );
  expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
});

it('answers an unknown action ID clearly and changes nothing', async () => {
  const ip = pool.v4();
  const id = await awaitingApproval(ip);
  const { id: r } = await click('perimeter_nuke', id, 'U_ALICE');
  expect(String((await replied(r)).text)).toMatch(/^Unknown perimeter action or incident: perimeter_nuke/);
  expect((await incidentStatus(stack.client, ip)).state).toBe('awaiting-approval');
  await releaseRemediation(stack.client, id, { by: 'jest' });
});

it('keeps to the approval deadline while Slack is down, and the CLI path still decides', async () => {
  slack.down = true;
  try {
    const timedOut = pool.v4();
    const started = Date.now();
    const [t] = await startRemediation(
      {
        client: stack.client,
        config: { ...stack.config, approval: { ...stack.config.approval, timeoutMs: 2_000 } },
      },
      buildDetection({ targets: [timedOut], ttlMs: 60_000, approval: 'slack' }),
    );
    const result = await stack.client.workflow.getHandle(t!.workflowId).result();
    expect(result).toMatchObject({ state: 'stood-down', decision: { by: 'timeout' } });
    expect(Date.now() - started).toBeLessThan(10_000);

    const ip = pool.v4();
    const id = await awaitingApproval(ip);
    await decideRemediation(stack.client, id, { decision: 'approve', by: 'U_ALICE' });
    expect(await stack.setContents('block')).toContain(`${ip}/32`);
    await releaseRemediation(stack.client, id, { by: 'jest' });
  } finally {
    slack.down = false;
  }
});
