/**
 * Virtual patches against the real stack (Temporal dev server, worker, WAF emulator): the rule
 * appears in Count, blocks after approval, and is gone when the fix is deployed or the TTL ends.
 * Assertions read the rules the emulator stores and the workflow's history.
 */
import { GetWebACLCommand, type Rule } from '@aws-sdk/client-wafv2';
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { decideRemediation, incidentStatus, releaseRemediation } from '../../src/client/remediation';
import {
  retireVirtualPatch,
  startVirtualPatch,
  waitForPatchEnd,
  type PatchFinding,
} from '../../src/client/virtual-patch';
import { PolicyError } from '../../src/domain/policy';
import { configuredWaf } from '../../src/waf/client';
import { findWebAcl } from '../../src/waf/provision';
import { patchWorkflowId } from '../../workflows/definitions';
import { startIngestServer, type IngestServer } from '../../src/ingest/server';
import { runCli } from '../helpers/cli';
import { openTestStack, uniqueName, waitFor, type TestStack } from '../helpers/stack';

const TOKEN = 'pipeline-token-0123456789abcdef';
let stack: TestStack;
let ingest: IngestServer;

beforeAll(async () => {
  stack = await openTestStack({ PERIMETER_INGEST_TOKENS: `pipeline=${TOKEN}` });
  await stack.startWorker({ log: () => undefined });
  ingest = await startIngestServer({
    client: stack.client,
    config: stack.config,
    listen: { host: '127.0.0.1', port: 0 },
  });
});
afterAll(async () => {
  await ingest?.close();
  await stack?.close();
});

async function post(path: string, body: unknown, token: string | null = TOKEN) {
  const res = await fetch(`${ingest.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function finding(overrides: Partial<PatchFinding> = {}): PatchFinding {
  return {
    findingId: uniqueName('CVE-2026-'),
    path: '/api/search',
    method: 'GET',
    field: 'query:q',
    kind: 'sqli',
    ttlMs: 60_000,
    observeMs: 0,
    reason: 'DAST: SQL injection in q',
    detector: 'dast',
    requestedBy: 'jest',
    ...overrides,
  };
}

async function rules(): Promise<Rule[]> {
  const waf = configuredWaf(stack.config.waf);
  const acl = await findWebAcl(waf.provision);
  const got = await waf.client.send(
    new GetWebACLCommand({ Name: stack.config.waf.webAcl, Id: acl?.Id, Scope: 'REGIONAL' }),
  );
  return got.WebACL?.Rules ?? [];
}

async function ruleOf(findingId: string): Promise<Rule | undefined> {
  return (await rules()).find((r) => r.Name === `${stack.config.waf.setPrefix}-vpatch-${findingId}`);
}

async function activityTypes(workflowId: string): Promise<string[]> {
  const history = await stack.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((n): n is string => Boolean(n));
}

describe('virtual patches', () => {
  it('puts the rule in Count, blocks after approval, and removes it when the fix is deployed', async () => {
    const f = finding({ observeMs: 1_500, approval: 'slack' });
    const started = await startVirtualPatch(stack, f);
    expect(started).toMatchObject({ workflowId: patchWorkflowId(f.findingId), joined: false });

    await waitFor(
      'observing',
      async () => (await incidentStatus(stack.client, started.workflowId)).state === 'observing',
    );
    expect((await ruleOf(f.findingId))?.Action).toEqual({ Count: {} });
    await waitFor(
      'awaiting approval',
      async () => (await incidentStatus(stack.client, started.workflowId)).state === 'awaiting-approval',
    );
    expect((await ruleOf(f.findingId))?.Action).toEqual({ Count: {} });

    await decideRemediation(stack.client, started.workflowId, { decision: 'approve', by: 'U-oncall' });
    const active = await waitFor('active', async () => {
      const s = await incidentStatus(stack.client, started.workflowId);
      return s.state === 'active' ? s : undefined;
    });
    expect(active.patch).toMatchObject({ findingId: f.findingId, ruleAction: 'block' });
    expect((await ruleOf(f.findingId))?.Action).toEqual({ Block: {} });

    const retired = await retireVirtualPatch(stack.client, f.findingId, { commit: '4f2c9e1', by: 'ci' });
    expect(retired.accepted).toBe(true);
    const final = await waitForPatchEnd(stack.client, f.findingId, 20_000);
    expect(final.state).toBe('released');
    expect(final.patch?.fix).toMatchObject({ commit: '4f2c9e1', by: 'ci' });
    expect(final.patch?.ruleAction).toBeUndefined();
    expect(await ruleOf(f.findingId)).toBeUndefined();
    expect(final.timeline.map((t) => t.message).join('\n')).toMatch(/fix deployed: commit 4f2c9e1/);
    expect(await activityTypes(started.workflowId)).toEqual([
      'validateVirtualPatch',
      'placePatchRule', // count
      'postApprovalRequest',
      'placePatchRule', // block
      'removePatchRule',
    ]);

    // A pipeline re-run retires nothing more, and says so.
    expect(
      await retireVirtualPatch(stack.client, f.findingId, { commit: '4f2c9e1', by: 'ci' }),
    ).toMatchObject({
      accepted: false,
      state: 'released',
    });
  });

  it('removes the rule when the TTL ends', async () => {
    const f = finding({
      ttlMs: 2_000,
      kind: 'traversal',
      path: '/files',
      match: 'prefix',
      method: undefined,
      field: 'uri',
    });
    await startVirtualPatch(stack, f);
    await waitFor('rule in place', async () => (await ruleOf(f.findingId))?.Action?.Block !== undefined);
    const final = await waitForPatchEnd(stack.client, f.findingId, 20_000);
    expect(final.state).toBe('released');
    expect(final.timeline.map((t) => t.message).join('\n')).toMatch(/rule removed: TTL ended/);
    expect(await ruleOf(f.findingId)).toBeUndefined();
  });

  it('keeps two findings apart: each rule is removed on its own', async () => {
    const a = finding();
    const b = finding({ kind: 'xss', path: '/comments', method: 'POST', field: 'body' });
    await startVirtualPatch(stack, a);
    await startVirtualPatch(stack, b);
    await waitFor('both rules block', async () => {
      const [ra, rb] = [await ruleOf(a.findingId), await ruleOf(b.findingId)];
      return ra?.Action?.Block !== undefined && rb?.Action?.Block !== undefined;
    });
    expect((await ruleOf(a.findingId))?.Priority).not.toBe((await ruleOf(b.findingId))?.Priority);

    await retireVirtualPatch(stack.client, a.findingId, { commit: 'a1', by: 'ci' });
    await waitForPatchEnd(stack.client, a.findingId, 20_000);
    expect(await ruleOf(a.findingId)).toBeUndefined();
    expect((await ruleOf(b.findingId))?.Action).toEqual({ Block: {} });

    await releaseRemediation(stack.client, patchWorkflowId(b.findingId), { by: 'jest', reason: 'done' });
    await waitForPatchEnd(stack.client, b.findingId, 20_000);
    expect(await ruleOf(b.findingId)).toBeUndefined();
  });

  it('refuses bad patches with a clear reason and starts nothing', async () => {
    const before = (await rules()).map((r) => r.Name);
    const bad: Array<[Partial<PatchFinding>, RegExp]> = [
      [{ path: '/', match: 'prefix' }, /would cover the whole site/],
      [{ path: '' }, /a path is required/],
      [{ kind: 'regex', pattern: '(select|union)' }, /capturing groups/],
      [{ kind: 'regex', pattern: `a${'b'.repeat(250)}` }, /at most 200/],
      [{ kind: 'regex', pattern: '[a-' }, /not a valid regular expression|unclosed/],
      [{ kind: 'regex', pattern: '.*' }, /match every request/],
      [{ field: 'cookie:sid' }, /unknown field/],
      [{ ttlMs: 400 * 86_400_000 }, /exceeds the maximum of 30d/],
    ];
    for (const [overrides, reason] of bad) {
      const f = finding(overrides);
      await expect(startVirtualPatch(stack, f)).rejects.toThrow(PolicyError);
      await expect(startVirtualPatch(stack, f)).rejects.toThrow(reason);
      await expect(stack.client.workflow.getHandle(patchWorkflowId(f.findingId)).describe()).rejects.toThrow(
        WorkflowNotFoundError,
      );
    }
    expect((await rules()).map((r) => r.Name)).toEqual(before);
  });

  it('works from the command line: patch, list, show, then patch retire as a pipeline step', async () => {
    const id = uniqueName('ZAP-');
    const added = await runCli(
      [
        'patch',
        id,
        '--path',
        '/api/search',
        '--method',
        'get',
        '--field',
        'query:q',
        '--kind',
        'regex',
        '--pattern',
        'union\\s+select',
        '--ttl',
        '2d',
        '--json',
      ],
      stack.env,
    );
    expect(added.stderr).toBe('');
    expect(added.code).toBe(0);
    expect(JSON.parse(added.stdout)).toMatchObject({
      workflowId: patchWorkflowId(id),
      state: 'active',
      ruleAction: 'block',
      summary: 'regex in query:q of GET /api/search',
    });
    const list = await runCli(['list'], stack.env);
    expect(list.stdout).toMatch(
      new RegExp(`patch\\s+GET /api/search\\s+block\\s+active.*${patchWorkflowId(id)}`),
    );
    const show = await runCli(['show', id], stack.env);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`virtual patch ${id}: regex in query:q of GET /api/search`);
    expect(show.stdout).toContain('pattern union\\s+select');

    const retired = await runCli(
      ['patch', 'retire', id, '--commit', '9b1d2e7', '--by', 'github-actions'],
      stack.env,
    );
    expect(retired.stderr).toBe('');
    expect(retired.stdout).toContain(`${id}: rule removed (fix 9b1d2e7)`);
    expect(await ruleOf(id)).toBeUndefined();
    const again = await runCli(['patch', 'retire', id, '--commit', '9b1d2e7'], stack.env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('nothing to retire');

    const unknown = await runCli(['patch', 'retire', uniqueName('NOPE-'), '--commit', 'x'], stack.env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no virtual patch for finding NOPE-/);
    const bad = await runCli(
      ['patch', uniqueName('BAD-'), '--path', '/', '--match', 'prefix', '--kind', 'sqli'],
      stack.env,
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/refused: prefix "\/" would cover the whole site/);
    const missing = await runCli(['patch', uniqueName('BAD-'), '--kind', 'sqli'], stack.env);
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringMatching(/needs --path and --kind/) });
    // Refused before connecting: the reason, not "cannot reach Temporal".
    const offline = await runCli(
      ['patch', uniqueName('BAD-'), '--path', '/x', '--kind', 'sqli', '--ttl', '400d'],
      { ...stack.env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
    );
    expect(offline).toMatchObject({ code: 2, stderr: expect.stringMatching(/exceeds the maximum of 30d/) });
    const blank = await runCli(['patch', 'retire', id, '--commit', ' '], stack.env);
    expect(blank).toMatchObject({ code: 2, stderr: expect.stringMatching(/--commit must name/) });
  });

  it('works over the ingest endpoint: a DAST tool starts the patch, the pipeline retires it', async () => {
    const findingId = uniqueName('DAST-');
    const body = {
      findingId,
      path: '/api/users',
      method: 'POST',
      field: 'body',
      kind: 'sqli',
      ttl: '3d',
      reason: 'DAST: body injection',
    };
    expect((await post('/v1/virtual-patches', body, null)).status).toBe(401);
    const started = await post('/v1/virtual-patches', body);
    expect(started).toMatchObject({
      status: 202,
      body: {
        workflowId: patchWorkflowId(findingId),
        joined: false,
        summary: 'sqli in body of POST /api/users',
      },
    });
    await waitFor('rule blocks', async () => (await ruleOf(findingId))?.Action?.Block !== undefined);
    expect((await post('/v1/virtual-patches', body)).body).toMatchObject({ joined: true });

    const bad = await post('/v1/virtual-patches', {
      ...body,
      findingId: uniqueName('BAD-'),
      kind: 'regex',
      pattern: '(a|b)+',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/capturing groups/);
    const unknownField = await post('/v1/virtual-patches', {
      ...body,
      findingId: uniqueName('BAD-'),
      verb: 'x',
    });
    expect(unknownField.status).toBe(400);
    const blankCommit = await post(`/v1/virtual-patches/${findingId}/retire`, { commit: '  ' });
    expect(blankCommit.status).toBe(400);

    const retired = await post(`/v1/virtual-patches/${findingId}/retire`, { commit: 'c0ffee1' });
    expect(retired).toMatchObject({ status: 202, body: { accepted: true } });
    const final = await waitForPatchEnd(stack.client, findingId, 20_000);
    expect(final.patch?.fix).toMatchObject({ commit: 'c0ffee1', by: 'ingest client pipeline' });
    expect(await ruleOf(findingId)).toBeUndefined();
    expect((await post(`/v1/virtual-patches/${uniqueName('NOPE-')}/retire`, { commit: 'x' })).status).toBe(
      404,
    );
  });

  it('removes the rule when the patch is cancelled while it blocks', async () => {
    const f = finding();
    const started = await startVirtualPatch(stack, f);
    await waitFor('rule blocks', async () => (await ruleOf(f.findingId))?.Action?.Block !== undefined);
    const handle = stack.client.workflow.getHandle(started.workflowId);
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    expect(await ruleOf(f.findingId)).toBeUndefined();
    const status = await incidentStatus(stack.client, started.workflowId);
    expect(status.state).toBe('released');
    expect(status.timeline.map((t) => t.message).join('\n')).toMatch(/rule removed: patch cancelled/);
  });

  it('under the global dry-run switch runs in full and never writes the web ACL', async () => {
    const dry = await openTestStack({ PERIMETER_DRY_RUN: 'true' });
    const log: string[] = [];
    try {
      await dry.startWorker({ log: (line) => log.push(line) });
      const f = finding({ ttlMs: 1_500 });
      const started = await startVirtualPatch(dry, f);
      const waf = configuredWaf(dry.config.waf);
      // While it "blocks", the web ACL holds no rule of it.
      await waitFor(
        'active',
        async () => (await incidentStatus(dry.client, started.workflowId)).state === 'active',
      );
      expect(await waf.patches.list()).toEqual([]);
      const final = await waitForPatchEnd(dry.client, f.findingId, 20_000);
      expect(final).toMatchObject({ state: 'released', dryRun: true });
      expect(await waf.patches.list()).toEqual([]);
      expect(log.join('\n')).toMatch(/dry-run: would put rule .*-vpatch-CVE-2026-.* as block/);
    } finally {
      await dry.close();
    }
  });

  it('retire removes a rule that a patch terminated by hand left behind, and says so', async () => {
    const f = finding();
    const started = await startVirtualPatch(stack, f);
    await waitFor('rule blocks', async () => (await ruleOf(f.findingId))?.Action?.Block !== undefined);
    // Termination skips every clean-up: the rule stays (the reconciler's case; retire heals it too).
    await stack.client.workflow.getHandle(started.workflowId).terminate('operator mistake');
    expect((await ruleOf(f.findingId))?.Action).toEqual({ Block: {} });
    const retired = await runCli(['patch', 'retire', f.findingId, '--commit', 'e5e5e5e'], stack.env);
    expect(retired.code).toBe(0);
    expect(retired.stdout).toMatch(/left its rule in the web ACL; rule removed/);
    expect(await ruleOf(f.findingId)).toBeUndefined();
  });

  it('the worker refuses a patch the client did not check: the workflow fails PolicyRejected, nothing placed', async () => {
    const findingId = uniqueName('RAW-');
    const handle = await stack.client.workflow.start('virtualPatch', {
      workflowId: patchWorkflowId(findingId),
      taskQueue: stack.config.temporal.taskQueue,
      args: [
        {
          request: { findingId, path: '/', match: 'prefix', kind: 'sqli', ttlMs: 60_000, observeMs: 0 },
          approval: 'none',
          reason: 'raw start',
          detector: 'jest',
          requestedBy: 'jest',
        },
      ],
    });
    const failure = await handle.result().catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect(((failure as WorkflowFailedError).cause as { type?: string }).type).toBe('PolicyRejected');
    expect(await ruleOf(findingId)).toBeUndefined();
    expect((await incidentStatus(stack.client, handle.workflowId)).state).toBe('rejected');
  });
});
