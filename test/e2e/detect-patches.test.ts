/**
 * `perimeter detect` feeding virtual patches, against the real stack: AWS WAF log lines that
 * matched a patch's rule become evidence in that patch's workflow; a finding without an open
 * patch is counted and no workflow is started for it; `--test` reports the matches and sends
 * nothing.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { incidentStatus, releaseRemediation } from '../../src/client/remediation';
import { startVirtualPatch, waitForPatchEnd } from '../../src/client/virtual-patch';
import { patchRuleName } from '../../src/domain/virtual-patch';
import { patchWorkflowId } from '../../workflows/definitions';
import { runCli } from '../helpers/cli';
import { openTestStack, uniqueName, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;
const dir = mkdtempSync(join(tmpdir(), 'detect-patches-'));

beforeAll(async () => {
  stack = await openTestStack();
  await stack.startWorker({ log: () => undefined });
});
afterAll(() => stack?.close());

let clock = Date.now();

/** One AWS WAF log line for a request to the patched endpoint; `counted` rules matched in Count mode. */
function wafLine(ip: string, counted: string[], args = "q=1'%20OR%201=1--"): string {
  clock += 100;
  return JSON.stringify({
    timestamp: clock,
    formatVersion: 1,
    webaclId: `arn:aws:wafv2:us-east-1:111122223333:regional/webacl/${stack.config.waf.webAcl}/0f1e2d3c`,
    terminatingRuleId: 'Default_Action',
    terminatingRuleType: 'REGULAR',
    action: 'ALLOW',
    ruleGroupList: [],
    nonTerminatingMatchingRules: counted.map((ruleId) => ({ ruleId, action: 'COUNT', ruleMatchDetails: [] })),
    httpRequest: {
      clientIp: ip,
      country: 'NL',
      headers: [{ name: 'Host', value: 'shop.example.com' }],
      uri: '/api/search',
      args,
      httpVersion: 'HTTP/1.1',
      httpMethod: 'GET',
      requestId: uniqueName('1-'),
    },
    labels: [],
  });
}

interface Summary {
  records: number;
  patchMatches: number;
  patches?: { sightingsSent: number; requestsReported: number; findingsWithoutPatch: number; errors: number };
}

function summaryOf(stdout: string): Summary {
  const last = stdout.trim().split('\n').pop() ?? '';
  return (JSON.parse(last) as { summary: Summary }).summary;
}

describe('perimeter detect and virtual patches', () => {
  it("reports a patch rule's matches as sightings to its workflow, and starts nothing for other findings", async () => {
    const findingId = uniqueName('CVE-2026-');
    const closed = uniqueName('CVE-2025-'); // a finding whose patch is not open
    const started = await startVirtualPatch(stack, {
      findingId,
      path: '/api/search',
      method: 'GET',
      field: 'query:q',
      kind: 'sqli',
      ttlMs: 60_000,
      observeMs: 10_000,
      reason: 'DAST: SQL injection in q',
      detector: 'dast',
      requestedBy: 'jest',
    });
    await waitFor(
      'observing',
      async () => (await incidentStatus(stack.client, started.workflowId)).state === 'observing',
    );

    const rule = patchRuleName(stack.config.waf.setPrefix, findingId);
    const matching = 4;
    const lines = [
      ...Array.from({ length: matching }, (_, i) => wafLine(`203.0.118.${10 + i}`, [rule])),
      wafLine('203.0.118.20', [], 'q=shoes'),
      wafLine('203.0.118.21', [patchRuleName(stack.config.waf.setPrefix, closed)]),
      wafLine('203.0.118.22', [patchRuleName('another-deployment', findingId)]),
    ];
    const path = join(dir, `${uniqueName('waf')}.log`);
    writeFileSync(path, `${lines.join('\n')}\n`);

    // The dry run and the real run side by side: the evidence below shows the dry run sent nothing.
    const [dry, live] = await Promise.all([
      runCli(['detect', '--test', '--no-progress', path], stack.env),
      runCli(['detect', path, '--json', '--no-progress'], stack.env),
    ]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`line 1: 203.0.118.10 matched virtual patch ${findingId}`);
    expect(dry.stdout).toContain(`line 6: 203.0.118.21 matched virtual patch ${closed}`);
    expect(dry.stdout).not.toMatch(/line [57]: .*virtual patch/);
    expect(live.stderr).toBe('');
    expect(live.code).toBe(0);
    expect(summaryOf(live.stdout)).toMatchObject({
      records: 7,
      patchMatches: matching + 1,
      patches: { requestsReported: matching, findingsWithoutPatch: 1, errors: 0 },
    });

    const status = await waitFor('the sightings', async () => {
      const s = await incidentStatus(stack.client, started.workflowId);
      return s.evidence.requests >= matching ? s : undefined;
    });
    expect(status.evidence.requests).toBe(matching);
    expect(status.evidence.byClass).toMatchObject({ vpatch: matching });
    expect(status.evidence.samples).toContain("GET /api/search?q=1'%20OR%201=1--");
    await expect(stack.client.workflow.getHandle(patchWorkflowId(closed)).describe()).rejects.toThrow(
      WorkflowNotFoundError,
    );

    await releaseRemediation(stack.client, started.workflowId, { by: 'jest', reason: 'test done' });
    await waitForPatchEnd(stack.client, findingId, 20_000);
  });
});
