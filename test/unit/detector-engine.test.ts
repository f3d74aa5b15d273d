import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DetectorConfigError, loadDetectorConfig, parseDetectorConfig } from '../../src/detectors/config';
import { Detector, type DetectorOutput, type PlannedIncident } from '../../src/detectors/engine';
import type { AttackClass, LogRecord } from '../../src/detectors/types';
import { campaignWorkflowId } from '../../workflows/definitions';

const T0 = Date.parse('2026-11-22T10:00:00Z');

function request(source: string, atMs: number, extra: Partial<LogRecord> = {}): LogRecord {
  return {
    format: 'combined',
    at: T0 + atMs,
    source,
    method: 'GET',
    uri: "/search?q=1' OR 1=1--",
    headers: {},
    authenticated: false,
    ...extra,
  };
}

class Recorder implements DetectorOutput {
  started: PlannedIncident[] = [];
  sightings: Array<{ source: string; classes: readonly AttackClass[] }> = [];
  startIncident(incident: PlannedIncident): void {
    this.started.push(incident);
  }
  sighting(source: string, _r: LogRecord, classes: readonly AttackClass[]): void {
    this.sightings.push({ source, classes });
  }
}

function detector(raw: unknown = {}, claimMs = 3_600_000) {
  const out = new Recorder();
  let wall = 0;
  const d = new Detector(
    parseDetectorConfig(raw),
    out,
    () => claimMs,
    () => wall,
  );
  return { d, out, advanceWall: (ms: number) => (wall += ms) };
}

describe('detector thresholds and windows', () => {
  it('starts one incident when a source reaches the threshold, then reports sightings', () => {
    const { d, out } = detector();
    for (let i = 0; i < 4; i++) d.push(request('203.0.113.9', i * 1_000), ['sqli'], `line ${i}`);
    expect(out.started).toHaveLength(0);
    d.push(request('203.0.113.9', 4_000), ['sqli', 'xss'], 'line 4');
    expect(out.started).toHaveLength(1);
    const [incident] = out.started;
    expect(incident?.kind).toBe('single');
    expect(incident?.targets).toEqual(['203.0.113.9']);
    expect(incident?.evidence.requests).toBe(5);
    expect(incident?.evidence.byClass).toEqual({ sqli: 5, xss: 1 });
    expect(incident?.evidence.samples).toEqual(['line 0', 'line 1', 'line 2']);
    expect(incident?.evidence.firstAt).toBe(T0);
    expect(incident?.evidence.lastAt).toBe(T0 + 4_000);
    expect(incident?.reason).toMatch(
      /5 attack requests \(sqli 5, xss 1\) within 1m — rule attacks, threshold 5/,
    );
    d.push(request('203.0.113.9', 5_000), ['sqli'], 'line 5');
    expect(out.started).toHaveLength(1);
    expect(out.sightings).toEqual([{ source: '203.0.113.9', classes: ['sqli'] }]);
  });

  it('does not count requests that have left the sliding window', () => {
    const { d, out } = detector({ defaults: { window: '60s' } });
    for (let i = 0; i < 10; i++) d.push(request('203.0.113.9', i * 20_000), ['sqli'], 'x');
    expect(out.started).toHaveLength(0); // never more than 4 within any 60 s
    const { d: tight, out: tightOut } = detector({ defaults: { window: '90s' } });
    for (let i = 0; i < 5; i++) tight.push(request('203.0.113.9', i * 20_000), ['sqli'], 'x');
    expect(tightOut.started).toHaveLength(1);
  });

  it('ignores benign requests and classes a rule does not count', () => {
    const { d, out } = detector({ rules: [{ name: 'scanners', classes: ['scanner'], threshold: 2 }] });
    for (let i = 0; i < 10; i++) d.push(request('203.0.113.9', i), ['sqli'], 'x');
    for (let i = 0; i < 10; i++) d.push(request('203.0.113.10', i), [], 'x');
    expect(out.started).toHaveLength(0);
    d.push(request('203.0.113.11', 1), ['scanner'], 'x');
    d.push(request('203.0.113.11', 2), ['scanner'], 'x');
    expect(out.started.map((i) => [i.rule.name, i.targets])).toEqual([['scanners', ['203.0.113.11']]]);
  });

  it('counts authenticated requests from the source, attacks or not, as evidence', () => {
    const { d, out } = detector({ defaults: { threshold: 2 } });
    d.push(request('203.0.113.9', 0, { authenticated: true }), [], 'login');
    d.push(request('203.0.113.9', 1, { authenticated: true }), ['sqli'], 'x');
    d.push(request('203.0.113.9', 2, { user: 'u-42' }), ['sqli'], 'x');
    expect(out.started[0]?.evidence.authenticated).toBe(2);
    expect(out.started[0]?.evidence.user).toBe('u-42');
  });

  it('starts a new incident once the previous one has ended (released claim)', () => {
    const { d, out } = detector({ defaults: { threshold: 2 } });
    d.push(request('203.0.113.9', 0), ['sqli'], 'x');
    d.push(request('203.0.113.9', 1), ['sqli'], 'x');
    d.release('203.0.113.9');
    d.push(request('203.0.113.9', 2), ['sqli'], 'x');
    d.push(request('203.0.113.9', 3), ['sqli'], 'x');
    expect(out.started).toHaveLength(2);
  });

  it('lets a claim lapse after its incident would have ended', () => {
    const { d, out } = detector({ defaults: { threshold: 2 } }, 10_000);
    d.push(request('203.0.113.9', 0), ['sqli'], 'x');
    d.push(request('203.0.113.9', 1), ['sqli'], 'x');
    d.push(request('203.0.113.9', 5_000), ['sqli'], 'x');
    expect(out.sightings).toHaveLength(1);
    d.push(request('203.0.113.9', 20_000), ['sqli'], 'x');
    d.push(request('203.0.113.9', 20_001), ['sqli'], 'x');
    expect(out.started).toHaveLength(2);
  });
});

describe('campaigns', () => {
  const burst = (d: Detector, sources: number, base = 0, net = '198.51.100') => {
    for (let s = 0; s < sources; s++) {
      for (let i = 0; i < 5; i++) d.push(request(`${net}.${s + 1}`, base + s * 10 + i), ['xss'], `s${s}`);
    }
  };

  it('groups a burst of sources crossing one rule into one campaign incident', () => {
    const { d, out } = detector();
    burst(d, 30);
    d.flush(true);
    // The first crossing of a quiet rule never waits; the burst behind it becomes one campaign.
    expect(out.started.map((i) => i.kind)).toEqual(['single', 'campaign']);
    const campaign = out.started[1];
    expect(campaign?.targets).toHaveLength(29);
    expect(campaign?.evidence.requests).toBe(29 * 5);
    expect(campaign?.reason).toMatch(/a burst of 29 addresses/);
  });

  it('starts held crossings once the hold has passed in log time or on the wall clock', () => {
    const { d, out, advanceWall } = detector({ campaign: { hold: '2s', minSources: 3 } });
    burst(d, 5);
    expect(out.started).toHaveLength(1);
    d.push(request('192.0.2.200', 3_000), [], 'benign'); // log time moves past the hold
    expect(out.started.map((i) => i.kind)).toEqual(['single', 'campaign']);
    burst(d, 5, 5_000, '203.0.113');
    advanceWall(2_500);
    d.flush();
    expect(out.started.map((i) => i.kind)).toEqual(['single', 'campaign', 'campaign']);
  });

  it('starts single incidents when too few sources cross together', () => {
    const { d, out } = detector({ campaign: { minSources: 10 } });
    burst(d, 4);
    d.flush(true);
    expect(out.started.map((i) => i.kind)).toEqual(['single', 'single', 'single', 'single']);
  });

  it('splits a burst larger than maxTargets into several campaigns with distinct windows', () => {
    const { d, out } = detector({ campaign: { minSources: 2, maxTargets: 10 } });
    burst(d, 26);
    d.flush(true);
    const campaigns = out.started.filter((i) => i.kind === 'campaign');
    expect(campaigns.map((c) => c.targets.length)).toEqual([10, 10, 5]);
    expect(new Set(campaigns.map((c) => c.windowStart)).size).toBe(3);
  });

  it('leaves out of a keyed incident the addresses whose requests have left the window', () => {
    const { d, out } = detector({
      rules: [{ name: 'key', key: 'header:x-api-key', threshold: 4, window: '60s' }],
    });
    const withKey = { headers: { 'x-api-key': 'k-9' } };
    d.push(request('203.0.113.70', 0, withKey), ['sqli'], 'x');
    for (let i = 0; i < 4; i++)
      d.push(request(`203.0.113.${71 + (i % 2)}`, 90_000 + i, withKey), ['sqli'], 'x');
    expect(out.started[0]?.targets.sort()).toEqual(['203.0.113.71', '203.0.113.72']);
  });

  it('gives different bursts in the same second different campaign IDs, and a replay the same one', () => {
    const at = Date.parse('2026-11-22T10:00:00Z');
    const a = campaignWorkflowId('edge.key', at, ['203.0.113.1/32', '203.0.113.2/32']);
    expect(campaignWorkflowId('edge.key', at, ['203.0.113.2/32', '203.0.113.1/32'])).toBe(a);
    expect(campaignWorkflowId('edge.key', at, ['203.0.113.3/32'])).not.toBe(a);
    expect(a).toMatch(/^perimeter\/campaign\/edge\.key\/2026-11-22T10:00:00\.000Z\/[0-9a-f]{8}$/);
  });

  it('treats many addresses sharing one API key as one actor', () => {
    const { d, out } = detector({
      rules: [{ name: 'stolen-key', key: 'header:X-Api-Key', threshold: 6 }],
    });
    for (let i = 0; i < 6; i++) {
      d.push(request(`203.0.113.${(i % 3) + 1}`, i, { headers: { 'x-api-key': 'k-123' } }), ['sqli'], 'x');
    }
    d.push(request('203.0.113.50', 7), ['sqli'], 'no key: not counted by this rule');
    expect(out.started).toHaveLength(1);
    expect(out.started[0]?.kind).toBe('campaign');
    expect(out.started[0]?.targets.sort()).toEqual(['203.0.113.1', '203.0.113.2', '203.0.113.3']);
    expect(out.started[0]?.reason).toMatch(/3 addresses sharing one x-api-key/);
  });
});

describe('detector config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'detector-config-'));
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('has sensible defaults: 5 attack requests within 60 s, block', () => {
    const c = parseDetectorConfig({});
    expect(c.rules).toEqual([
      expect.objectContaining({
        name: 'attacks',
        key: 'ip',
        threshold: 5,
        windowMs: 60_000,
        action: 'block',
      }),
    ]);
    expect(c.rules[0]?.classes).toEqual(['sqli', 'xss', 'traversal', 'scanner']);
  });

  it('reads YAML with per-rule values falling back to the defaults', () => {
    const c = loadDetectorConfig(
      file(
        'ok.yaml',
        [
          'detector: edge-logs',
          'defaults: { threshold: 3, window: 30s, ttl: 2h }',
          'rules:',
          '  - name: sqli',
          '    classes: [sqli]',
          '    action: challenge',
          '  - name: scanners',
          '    classes: [scanner]',
          '    threshold: 50',
          '    approval: slack',
        ].join('\n'),
      ),
    );
    expect(c.detector).toBe('edge-logs');
    expect(c.rules.map((r) => [r.name, r.threshold, r.windowMs, r.ttlMs, r.action, r.approval])).toEqual([
      ['sqli', 3, 30_000, 7_200_000, 'challenge', 'none'],
      ['scanners', 50, 30_000, 7_200_000, 'block', 'slack'],
    ]);
  });

  it('reads JSON too, and flags override every rule', () => {
    const path = file('ok.json', JSON.stringify({ rules: [{ name: 'a', threshold: 9 }] }));
    const c = loadDetectorConfig(path, { threshold: 2, windowMs: 10_000 });
    expect(c.rules[0]).toEqual(expect.objectContaining({ threshold: 2, windowMs: 10_000 }));
  });

  it('names the file, line and field of a bad value', () => {
    const path = file(
      'bad.yaml',
      ['rules:', '  - name: sqli', '    threshold: -3', '    window: soon'].join('\n'),
    );
    expect(() => loadDetectorConfig(path)).toThrow(DetectorConfigError);
    expect(() => loadDetectorConfig(path)).toThrow(
      /bad\.yaml:3: rules\[0\]\.threshold: .*\n.*bad\.yaml:4: rules\[0\]\.window: "soon" is not a duration/,
    );
  });

  it('refuses unknown fields, unknown classes, duplicate rule names and broken YAML', () => {
    expect(() => loadDetectorConfig(file('u.yaml', 'rules:\n  - name: a\n    thresold: 3\n'))).toThrow(
      /u\.yaml:2: rules\[0\]: Unrecognized key: "thresold"/,
    );
    expect(() => parseDetectorConfig({ rules: [{ name: 'a', classes: ['rce'] }] })).toThrow(
      /rules\[0\]\.classes\[0\]/,
    );
    expect(() => parseDetectorConfig({ rules: [{ name: 'a' }, { name: 'a' }] })).toThrow(/used twice/);
    expect(() => loadDetectorConfig(file('broken.yaml', 'rules: [\n  - name: a\n'))).toThrow(
      /broken\.yaml:\d+: not valid YAML/,
    );
    expect(() => loadDetectorConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read detector config/);
  });
});
