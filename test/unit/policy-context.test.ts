import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { assess, type AssessInput } from '../../src/policy/context';
import { approvalBlocks } from '../../src/slack/messages';
import { lookupIdentity } from '../../src/policy/identity';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { loadPolicy, policyFileSchema, type Policy } from '../../src/policy/policy';

function policy(file: unknown): Policy {
  const f = policyFileSchema.parse(file);
  return {
    allowlist: [],
    source: 'test',
    dryRun: f.dryRun,
    identity: f.identity,
    actions: f.actions,
    repeatOffenders: f.repeatOffenders,
    approvals: f.approvals,
    caps: f.caps,
  };
}
const input = (o: Partial<AssessInput> = {}): AssessInput => ({
  targets: ['203.0.113.9/32'],
  action: 'block',
  ttlMs: 600_000,
  approval: 'none',
  ...o,
});
const DAY = 86_400_000;

describe('identity-aware actions', () => {
  const p = policy({
    actions: [
      { when: { authenticated: true, minReputation: 70 }, action: 'challenge', approval: 'slack' },
      { when: { authenticated: false }, action: 'block' },
    ],
  });

  it('turns a block into a challenge for a reputable authenticated user, and asks a person', () => {
    const a = assess(input(), p, DAY, {
      identity: { principal: 'u-42', authenticated: true, reputation: 91, source: 'static' },
    });
    expect(a).toMatchObject({ action: 'challenge', approval: 'slack' });
    expect(a.explanations).toEqual([
      'challenge instead of block: authenticated user u-42, reputation 91',
      'approval required: authenticated user u-42, reputation 91',
    ]);
  });

  it('keeps the block for anonymous sources and for low reputation', () => {
    expect(
      assess(input(), p, DAY, { identity: { authenticated: false, reputation: 0, source: 'static' } }).action,
    ).toBe('block');
    expect(
      assess(input(), p, DAY, { identity: { authenticated: true, reputation: 40, source: 'static' } }),
    ).toMatchObject({
      action: 'block',
      approval: 'none',
      explanations: [],
    });
  });
});

describe('repeat offenders', () => {
  const p = policy({ repeatOffenders: { lookback: '24h', ttls: ['1h', '4h', '24h'] } });

  it('escalates the TTL with each earlier offence in the look-back, capped by the maximum TTL', () => {
    expect(assess(input(), p, DAY, { offences: 0 })).toMatchObject({
      ttlMs: 600_000,
      explanations: ['1st offence within 1d: TTL 10m as requested'],
    });
    expect(assess(input(), p, DAY, { offences: 1 }).ttlMs).toBe(4 * 3_600_000);
    const third = assess(input(), p, DAY, { offences: 2 });
    expect(third.ttlMs).toBe(DAY);
    expect(third.explanations).toEqual(['3rd offence within 1d: TTL 1d instead of 10m']);
    expect(assess(input(), p, DAY, { offences: 7 }).ttlMs).toBe(DAY);
    expect(assess(input(), p, 2 * 3_600_000, { offences: 2 }).ttlMs).toBe(2 * 3_600_000);
  });

  it('adds jitter within its bound', () => {
    const jittery = policy({ repeatOffenders: { lookback: '24h', ttls: ['1h', '4h'], jitter: 0.25 } });
    expect(assess(input(), jittery, DAY, { offences: 1 }, () => 1).ttlMs).toBe(5 * 3_600_000);
    expect(assess(input(), jittery, DAY, { offences: 1 }, () => 0).ttlMs).toBe(4 * 3_600_000);
  });
});

describe('approval rules', () => {
  const p = policy({
    approvals: { rules: [{ widerThan: 24 }, { minTargets: 10 }], timeout: '5m', default: 'approve' },
  });

  it('sends wide prefixes and large campaigns to a person, with the policy timeout and default', () => {
    const wide = assess(input({ targets: ['203.0.112.0/20'] }), p, DAY, {});
    expect(wide).toMatchObject({ approval: 'slack', approvalTimeoutMs: 300_000, approvalDefault: 'approve' });
    expect(wide.explanations).toEqual(['approval required by policy: a /20 (as wide as /24 or wider)']);
    const many = Array.from({ length: 10 }, (_, i) => `203.0.113.${i + 1}/32`);
    expect(assess(input({ targets: many }), p, DAY, {}).explanations).toEqual([
      'approval required by policy: 10 targets',
    ]);
    expect(assess(input(), p, DAY, {}).approval).toBe('none');
  });
});

describe('identity lookup', () => {
  it('finds static entries by user, session, API key or address', async () => {
    const p = policy({
      identity: {
        source: 'static',
        entries: [
          { match: { apiKey: 'k-1' }, principal: 'svc-billing', authenticated: true, reputation: 80 },
        ],
      },
    });
    const identity = p.identity ?? fail('no identity');
    expect(await lookupIdentity(identity, { ip: '203.0.113.9', apiKey: 'k-1' })).toEqual({
      principal: 'svc-billing',
      authenticated: true,
      reputation: 80,
      source: 'static',
    });
    expect(await lookupIdentity(identity, { ip: '203.0.113.9' })).toEqual({
      authenticated: false,
      reputation: 0,
      source: 'static',
    });
  });

  it('asks an HTTP endpoint, and falls back (saying so) when it cannot be reached or answers nonsense', async () => {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const hints = JSON.parse(body) as { user?: string };
        res.setHeader('content-type', 'application/json');
        res.end(
          hints.user === 'u-42'
            ? JSON.stringify({ principal: 'u-42', authenticated: true, reputation: 91 })
            : '{"nonsense":1}',
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/lookup`;
    try {
      const p = policy({
        identity: { source: 'http', url, timeout: '1s', fallback: { authenticated: false, reputation: 10 } },
      });
      const identity = p.identity ?? fail('no identity');
      expect(await lookupIdentity(identity, { ip: '203.0.113.9', user: 'u-42' })).toEqual({
        principal: 'u-42',
        authenticated: true,
        reputation: 91,
        source: 'http',
      });
      const odd = await lookupIdentity(identity, { ip: '203.0.113.9', user: 'someone' });
      expect(odd).toMatchObject({ authenticated: false, reputation: 10, source: 'fallback' });
      expect(odd.note).toMatch(
        /identity service unreachable .*using the configured fallback \(anonymous, reputation 10\)/,
      );
    } finally {
      await new Promise((r) => server.close(r));
    }
    const down = policy({ identity: { source: 'http', url, timeout: '1s' } });
    const fallback = await lookupIdentity(down.identity ?? fail('no identity'), { ip: '203.0.113.9' });
    expect(fallback).toMatchObject({ authenticated: false, reputation: 0, source: 'fallback' });
  });
});

function fail(message: string): never {
  throw new Error(message);
}

describe('approval message', () => {
  it('states the policy decisions for the approver to read', () => {
    const blocks = approvalBlocks({
      workflowId: 'perimeter/ip/203.0.113.9/32',
      targets: ['203.0.113.9/32'],
      action: 'challenge',
      ttlMs: 600_000,
      detector: 'log-detector',
      reason: 'sqli',
      evidence: {
        sightings: 1,
        requests: 5,
        byClass: { sqli: 5 },
        samples: [],
        authenticated: 3,
        detectors: ['x'],
      },
      timeoutMs: 900_000,
      onTimeout: 'deny',
      url: 'http://127.0.0.1:8233/x',
      policy: ['challenge instead of block: authenticated user u-42, reputation 91'],
    });
    expect(JSON.stringify(blocks)).toContain(
      '*Policy*\\n• challenge instead of block: authenticated user u-42, reputation 91',
    );
  });
});

describe('static identity file', () => {
  it('reads entries from their own file, next to the policy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'identity-'));
    writeFileSync(
      join(dir, 'people.yaml'),
      '- { match: { session: s-9 }, principal: bob, authenticated: true, reputation: 60 }\n',
    );
    writeFileSync(join(dir, 'policy.yaml'), 'identity: { source: static, file: people.yaml }\n');
    const policy = loadPolicy(loadConfig({}), join(dir, 'policy.yaml'));
    expect(
      await lookupIdentity(policy.identity ?? fail('no identity'), { ip: '203.0.113.9', session: 's-9' }),
    ).toEqual({
      principal: 'bob',
      authenticated: true,
      reputation: 60,
      source: 'static',
    });
    writeFileSync(join(dir, 'people.yaml'), '- { match: { session: s-9 }, reputation: 60 }\n');
    expect(() => loadPolicy(loadConfig({}), join(dir, 'policy.yaml'))).toThrow(
      /people\.yaml:1: \[0\]\.authenticated/,
    );
  });
});
