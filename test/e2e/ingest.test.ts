/**
 * The ingest endpoint against the real stack: bearer auth, validation, size and rate limits
 * refuse without starting anything; accepted detections become incidents (or join the open one)
 * and blocks in the emulator's sets.
 */
import { incidentStatus, listRemediations, releaseRemediation } from '../../src/client/remediation';
import { loadConfig } from '../../src/config';
import { startIngestServer, type IngestServer } from '../../src/ingest/server';
import { CAMPAIGN_ID_PREFIX, ipWorkflowId } from '../../workflows/definitions';
import { openTestStack, waitFor, type TestStack } from '../helpers/stack';

const SIEM_TOKEN = 'siem-token-0123456789abcdef0123';
const SCANNER_TOKEN = 'scanner-token-0123456789abcdef01';

let stack: TestStack;
let server: IngestServer;

beforeAll(async () => {
  stack = await openTestStack({
    PERIMETER_INGEST_TOKENS: `siem=${SIEM_TOKEN},scanner=${SCANNER_TOKEN}`,
    PERIMETER_INGEST_MAX_BODY: '4096',
  });
  await stack.startWorker();
  server = await startIngestServer({
    client: stack.client,
    config: stack.config,
    listen: { host: '127.0.0.1', port: 0 },
  });
});
afterAll(async () => {
  await server?.close();
  await stack?.close();
});

interface Answer {
  status: number;
  body: {
    error?: string;
    workflowId?: string;
    joined?: boolean;
    incidents?: Array<{ workflowId: string; targets: string[]; joined: boolean }>;
    refused?: Array<{ target: string; reason: string }>;
  };
  headers: Headers;
}

async function post(
  body: unknown,
  options: { token?: string | null; type?: string; url?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': options.type ?? 'application/json' };
  const token = options.token === undefined ? SIEM_TOKEN : options.token;
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(`${options.url ?? server.url}/v1/detections`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Answer['body'], headers: res.headers };
}

const detection = (target: string, extra: Record<string, unknown> = {}) => ({
  target,
  kind: 'waf-alarm',
  reason: 'SQLi rule group counted 40 matches',
  evidence: { classes: { sqli: 40 }, samples: ['GET /search?q=1%27+OR+1%3D1'] },
  ttl: '10m',
  ...extra,
});

async function incidentsFor(target: string) {
  return (await listRemediations(stack.client)).filter((r) => r.targets.includes(target));
}

describe('POST /v1/detections', () => {
  it('refuses requests without a valid bearer token, and starts nothing', async () => {
    const missing = await post(detection('203.0.117.1'), { token: null });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await post(detection('203.0.117.1'), { token: 'not-a-token-of-any-client-xx' });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('unknown bearer token');
    expect(await incidentsFor('203.0.117.1/32')).toEqual([]);
  });

  it.each([
    ['not JSON', '{"target": ', {}, 400, /body is not JSON/],
    [
      'wrong content type',
      'target=1.2.3.4',
      { type: 'application/x-www-form-urlencoded' },
      415,
      /application\/json/,
    ],
    ['an unknown kind', detection('203.0.117.2', { kind: 'rumour' }), {}, 400, /kind: Invalid option/],
    [
      'an unknown field',
      detection('203.0.117.2', { priority: 'high' }),
      {},
      400,
      /Unrecognized key: "priority"/,
    ],
    [
      'both target and targets',
      detection('203.0.117.2', { targets: ['203.0.117.3'] }),
      {},
      400,
      /either "target" or "targets"/,
    ],
    ['a malformed address', detection('203.0.117.300'), {}, 400, /refused: .*203\.0\.117\.300/],
    ['the whole internet', detection('0.0.0.0/0'), {}, 400, /refused: .*would block/],
    [
      'an over-long TTL',
      detection('203.0.117.2', { ttl: '30d' }),
      {},
      400,
      /refused: TTL 30d exceeds the maximum of 7d/,
    ],
    ['a bad TTL', detection('203.0.117.2', { ttl: 'forever' }), {}, 400, /ttl: "forever" is not a duration/],
    [
      'a body over the size limit',
      detection('203.0.117.2', { reason: 'x'.repeat(5_000) }),
      {},
      413,
      /larger than 4096 bytes/,
    ],
  ])('answers %s with a reason and starts nothing', async (_what, body, options, status, message) => {
    const answer = await post(body, options as { type?: string });
    expect(answer.status).toBe(status);
    expect(answer.body.error).toMatch(message);
    expect(await incidentsFor('203.0.117.2/32')).toEqual([]);
  });

  it('starts an incident for a detection and returns the existing one for a repeat', async () => {
    const first = await post(detection('203.0.117.10'));
    expect(first.status).toBe(202);
    expect(first.body).toMatchObject({ workflowId: ipWorkflowId('203.0.117.10/32'), joined: false });
    await waitFor('the block', async () => (await stack.setContents('block')).includes('203.0.117.10/32'));

    const again = await post(detection('203.0.117.10', { reason: 'still probing' }), {
      token: SCANNER_TOKEN,
    });
    expect(again.status).toBe(202);
    expect(again.body).toMatchObject({ workflowId: first.body.workflowId, joined: true });
    expect(await incidentsFor('203.0.117.10/32')).toHaveLength(1);
  });

  it('holds several targets in one campaign incident; targets already held join their own', async () => {
    await post(detection('203.0.117.20'));
    await waitFor('the first block', async () =>
      (await stack.setContents('block')).includes('203.0.117.20/32'),
    );
    const answer = await post({
      targets: ['203.0.117.20', '203.0.117.21', '203.0.117.22', '10.0.0.7'],
      kind: 'scanner',
      reason: 'DAST found these sources probing /api/search',
      action: 'challenge',
      ttl: '10m',
    });
    expect(answer.status).toBe(202);
    const [campaign, joined] = answer.body.incidents ?? [];
    expect(campaign?.workflowId.startsWith(`${CAMPAIGN_ID_PREFIX}ingest.siem/`)).toBe(true);
    expect(campaign?.targets).toEqual(['203.0.117.21/32', '203.0.117.22/32']);
    expect(joined).toEqual({
      workflowId: ipWorkflowId('203.0.117.20/32'),
      targets: ['203.0.117.20/32'],
      joined: true,
    });
    expect(answer.body.refused).toEqual([
      { target: '10.0.0.7', reason: expect.stringMatching(/private/) as string },
    ]);
    await waitFor('the campaign challenge', async () => {
      const set = await stack.setContents('challenge');
      return set.includes('203.0.117.21/32') && set.includes('203.0.117.22/32');
    });
    expect(await stack.setContents('challenge')).not.toContain('203.0.117.20/32');

    // A later detection of a target the campaign holds is evidence for the campaign…
    const seenAgain = await post(detection('203.0.117.21', { reason: 'seen again' }));
    expect(seenAgain.body).toMatchObject({ workflowId: campaign?.workflowId, joined: true });
    expect((await incidentsFor('203.0.117.21/32')).map((r) => r.workflowId)).toEqual([campaign?.workflowId]);
    const status = await incidentStatus(stack.client, campaign?.workflowId ?? '');
    expect(status.evidence.sightings).toBe(2);
    // …until the campaign has ended: then the target gets an incident of its own, even while
    // this client's view of the running campaigns still names the one that ended.
    await releaseRemediation(stack.client, campaign?.workflowId ?? '', { reason: 'test over', by: 'test' });
    await stack.client.workflow.getHandle(campaign?.workflowId ?? '').result();
    const afterwards = await post(detection('203.0.117.21', { reason: 'back again' }));
    expect(afterwards.body).toMatchObject({ workflowId: ipWorkflowId('203.0.117.21/32'), joined: false });
    await waitFor('its own block', async () =>
      (await stack.setContents('block')).includes('203.0.117.21/32'),
    );
  });

  it('limits each client to its rate, per client', async () => {
    const limited = await startIngestServer({
      client: stack.client,
      config: { ...stack.config, ingest: { ...loadConfig(stack.env).ingest, ratePerMinute: 2 } },
      listen: { host: '127.0.0.1', port: 0 },
    });
    try {
      const bad = { kind: 'siem' }; // invalid bodies still count against the rate
      expect((await post(bad, { url: limited.url })).status).toBe(400);
      expect((await post(bad, { url: limited.url })).status).toBe(400);
      const third = await post(detection('203.0.117.30'), { url: limited.url });
      expect(third.status).toBe(429);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await post(bad, { url: limited.url, token: SCANNER_TOKEN })).status).toBe(400);
      expect(await incidentsFor('203.0.117.30/32')).toEqual([]);
    } finally {
      await limited.close();
    }
  });
});
