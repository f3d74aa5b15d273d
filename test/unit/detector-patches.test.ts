import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { createLineParser } from '../../src/detectors/parsers';
import { PatchSightings } from '../../src/detectors/patch-sightings';
import { patchMatches } from '../../src/detectors/patches';
import type { LogRecord } from '../../src/detectors/types';
import { patchLabel, patchRuleName } from '../../src/domain/virtual-patch';
import { patchWorkflowId, type Sighting } from '../../workflows/definitions';

const PREFIX = 'perimeter';
const ACL_LABEL = 'awswaf:111122223333:webacl:my-acl:';

/** An AWS WAF log line (the fields the parser reads), with the given verdicts. */
function wafLine(verdicts: Record<string, unknown>, ip = '203.0.118.7', at = 1_790_000_000_000): string {
  return JSON.stringify({
    timestamp: at,
    formatVersion: 1,
    webaclId: 'arn:aws:wafv2:us-east-1:111122223333:regional/webacl/my-acl/0f1e2d3c',
    terminatingRuleId: 'Default_Action',
    terminatingRuleType: 'REGULAR',
    action: 'ALLOW',
    ruleGroupList: [],
    nonTerminatingMatchingRules: [],
    httpRequest: {
      clientIp: ip,
      country: 'NL',
      headers: [{ name: 'Host', value: 'shop.example.com' }],
      uri: '/api/search',
      args: "q=1'%20OR%201=1--",
      httpVersion: 'HTTP/1.1',
      httpMethod: 'GET',
      requestId: '1-65f417e3-3b4c5d6e',
    },
    labels: [],
    ...verdicts,
  });
}

/** The record of a line that must parse, in whichever format it is. */
function record(line: string): LogRecord {
  const result = createLineParser('auto')(line);
  if (!result.ok) throw new Error(`expected a record, got ${result.reason}`);
  return result.record;
}

const counted = (...rules: string[]) => ({
  nonTerminatingMatchingRules: rules.map((ruleId) => ({ ruleId, action: 'COUNT', ruleMatchDetails: [] })),
});
const labelled = (...names: string[]) => ({ labels: names.map((name) => ({ name })) });

describe('patchMatches', () => {
  it('recognises a patch rule counting (non-terminating) and blocking (terminating)', () => {
    const count = record(wafLine(counted(patchRuleName(PREFIX, 'CVE-2026-1'))));
    expect(patchMatches(count, PREFIX)).toEqual(['CVE-2026-1']);
    const block = record(
      wafLine({ terminatingRuleId: patchRuleName(PREFIX, 'CVE-2026-2'), action: 'BLOCK' }),
    );
    expect(patchMatches(block, PREFIX)).toEqual(['CVE-2026-2']);
  });

  it('recognises the label, fully qualified as WAF logs it or bare', () => {
    const qualified = record(wafLine(labelled(`${ACL_LABEL}${patchLabel(PREFIX, 'CVE-2026-3')}`)));
    expect(patchMatches(qualified, PREFIX)).toEqual(['CVE-2026-3']);
    expect(patchMatches({ labels: [patchLabel(PREFIX, 'GHSA_x1')] }, PREFIX)).toEqual(['GHSA_x1']);
  });

  it('names each finding once, whether by rule and label or in several places', () => {
    const r = record(
      wafLine({
        ...counted(patchRuleName(PREFIX, 'A-1'), patchRuleName(PREFIX, 'B-2')),
        ...labelled(`${ACL_LABEL}${PREFIX}:vpatch:A-1`, `${ACL_LABEL}${PREFIX}:vpatch:B-2`),
        terminatingRuleId: patchRuleName(PREFIX, 'A-1'),
        action: 'BLOCK',
      }),
    );
    expect(patchMatches(r, PREFIX)).toEqual(['A-1', 'B-2']);
  });

  it("ignores another deployment's patches and everything else", () => {
    const r = record(
      wafLine({
        ...counted('staging-vpatch-CVE-2026-4', 'AWS-AWSManagedRulesSQLiRuleSet', `${PREFIX}-block-v4`),
        ...labelled(
          `${ACL_LABEL}staging:vpatch:CVE-2026-4`,
          `${ACL_LABEL}other-${PREFIX}:vpatch:CVE-2026-4`,
          `${ACL_LABEL}${PREFIX}x:vpatch:CVE-2026-4`,
          'awswaf:managed:aws:sql-database:SQLi_QueryArguments',
          `${ACL_LABEL}${PREFIX}:vpatch:`,
          `${ACL_LABEL}${PREFIX}:vpatch:bad id!`,
        ),
      }),
    );
    expect(patchMatches(r, PREFIX)).toEqual([]);
    expect(patchMatches(r, 'staging')).toEqual(['CVE-2026-4']);
  });

  it('finds nothing in formats without WAF verdicts, even when the URL names a patch', () => {
    const combined = record(
      `203.0.118.8 - - [22/Nov/2026:09:00:00 +0000] "GET /${PREFIX}-vpatch-CVE-2026-5?l=${PREFIX}:vpatch:CVE-2026-5 HTTP/1.1" 200 1 "-" "-"`,
    );
    expect(combined.format).toBe('combined');
    expect(patchMatches(combined, PREFIX)).toEqual([]);
    expect(patchMatches({}, PREFIX)).toEqual([]);
  });
});

describe('PatchSightings', () => {
  const signals: Array<{ workflowId: string; sighting: Sighting }> = [];
  const open = new Set<string>();
  const client = {
    workflow: {
      getHandle: (workflowId: string) => ({
        signal: async (_def: unknown, sighting: Sighting) => {
          if (!open.has(workflowId)) throw new WorkflowNotFoundError('not found', workflowId, undefined);
          signals.push({ workflowId, sighting: structuredClone(sighting) });
        },
      }),
    },
  } as unknown as Pick<Client, 'workflow'>;

  beforeEach(() => {
    signals.length = 0;
    open.clear();
  });

  it('batches per finding and signals only open patches', async () => {
    open.add(patchWorkflowId('CVE-2026-6'));
    const sightings = new PatchSightings(client, 'log-detector');
    const t0 = Date.parse('2026-11-22T09:00:00Z');
    for (let i = 0; i < 5; i++) {
      const r = record(wafLine(counted(patchRuleName(PREFIX, 'CVE-2026-6')), `203.0.118.${10 + i}`, t0 + i));
      sightings.add(['CVE-2026-6', 'CVE-2026-7'], r);
    }
    await sightings.drain();
    expect(signals).toEqual([
      {
        workflowId: patchWorkflowId('CVE-2026-6'),
        sighting: {
          detector: 'log-detector',
          at: new Date(t0 + 4).toISOString(),
          firstAt: new Date(t0).toISOString(),
          source: '203.0.118.14',
          classes: { vpatch: 5 },
          samples: Array.from({ length: 3 }, () => "GET /api/search?q=1'%20OR%201=1--"),
        },
      },
    ]);
    expect(sightings.stats).toEqual({
      matched: 10,
      sightingsSent: 1,
      requestsReported: 5,
      findingsWithoutPatch: 1,
      errors: 0,
    });
  });

  it('sends at most about one signal a second per finding', async () => {
    jest.useFakeTimers();
    try {
      open.add(patchWorkflowId('CVE-2026-8'));
      const sightings = new PatchSightings(client, 'log-detector');
      const r = record(wafLine(counted(patchRuleName(PREFIX, 'CVE-2026-8'))));
      sightings.add(['CVE-2026-8'], r);
      await jest.advanceTimersByTimeAsync(0);
      expect(signals).toHaveLength(1);
      sightings.add(['CVE-2026-8'], r);
      sightings.add(['CVE-2026-8'], r);
      await jest.advanceTimersByTimeAsync(900);
      expect(signals).toHaveLength(1);
      await jest.advanceTimersByTimeAsync(100);
      expect(signals.map((s) => s.sighting.classes)).toEqual([{ vpatch: 1 }, { vpatch: 2 }]);
      await sightings.drain();
      expect(signals).toHaveLength(2);
    } finally {
      jest.useRealTimers();
    }
  });
});
