/**
 * Time from an approver's click (a signed `block_actions` POST to the Slack app) to the address
 * being in the WAF set. Slack's servers are the local fake; everything else is real.
 */
import crypto from 'node:crypto';
import { loadConfig } from '../src/config';
import { incidentStatus, releaseRemediation, startRemediation } from '../src/client/remediation';
import { freePort } from '../src/dev/services';
import { createSlackApp } from '../src/slack/app';
import { startFakeSlack } from '../test/helpers/fake-slack';
import type { BenchStack } from './stack';

async function until<T>(probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (performance.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

export async function measureApprovalLatency(stack: BenchStack, runs: number): Promise<number[]> {
  const fake = await startFakeSlack();
  const secret = crypto.randomBytes(16).toString('hex');
  const config = loadConfig({
    ...stack.env,
    SLACK_BOT_TOKEN: 'xoxb-bench',
    SLACK_SIGNING_SECRET: secret,
    SLACK_API_URL: fake.apiUrl,
    PERIMETER_SLACK_CHANNEL: 'C_BENCH',
    PERIMETER_SLACK_APPROVERS: 'U_ALICE',
  });
  const app = createSlackApp(config, stack.client);
  const port = await freePort();
  await app.start(port);
  const samples: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const ip = `192.0.2.${i + 1}`;
      const [s] = await startRemediation(
        { client: stack.client, config },
        {
          targets: [ip],
          ttlMs: 600_000,
          observeMs: 0,
          approval: 'slack',
          reason: 'bench',
          detector: 'bench',
          requestedBy: 'bench',
        },
      );
      await until(async () => (await incidentStatus(stack.client, ip)).state === 'awaiting-approval');
      const payload = {
        type: 'block_actions',
        user: { id: 'U_ALICE' },
        team: { id: 'T1' },
        response_url: fake.responseUrl(`b${i}`),
        actions: [
          { type: 'button', action_id: 'perimeter_approve', value: s!.workflowId, block_id: 'decide' },
        ],
      };
      const body = `payload=${encodeURIComponent(JSON.stringify(payload))}`;
      const ts = Math.floor(Date.now() / 1000);
      const signature = `v0=${crypto.createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}`;
      const t0 = performance.now();
      const res = await fetch(`http://127.0.0.1:${port}/slack/events`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'x-slack-request-timestamp': String(ts),
          'x-slack-signature': signature,
        },
        body,
      });
      if (res.status !== 200) throw new Error(`click answered ${res.status}`);
      await until(async () => (await stack.gateway.check('block', [`${ip}/32`])).present.length > 0);
      samples.push(performance.now() - t0);
      await releaseRemediation(stack.client, s!.workflowId, { by: 'bench' });
    }
  } finally {
    await app.stop();
    await fake.close();
  }
  return samples;
}
