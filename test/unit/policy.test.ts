import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config';
import { ConfigFileError } from '../../src/config-file';
import { allowlisted } from '../../src/domain/allowlist';
import { checkRemediation, PolicyError } from '../../src/domain/policy';
import { parseTarget } from '../../src/domain/targets';
import { loadPolicy, withCaps } from '../../src/policy/policy';
import { PolicyStore } from '../../src/policy/store';
import { partitionTargets } from '../../src/client/campaign';

const dir = mkdtempSync(join(tmpdir(), 'policy-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const limits = { minPrefixV4: 16, minPrefixV6: 48, maxTtlMs: 86_400_000, maxObserveMs: 3_600_000 };

describe('policy file', () => {
  it('loads allowlist entries and merges PERIMETER_ALLOWLIST and PERIMETER_DRY_RUN', () => {
    const path = file(
      'ok.yaml',
      [
        'allowlist:',
        '  - { cidr: 198.51.100.7, comment: "own egress NAT" }',
        '  - { cidr: "2001:db8:77::/48", comment: partner, expires: "2027-01-01T00:00:00Z" }',
      ].join('\n'),
    );
    const config = loadConfig({
      PERIMETER_POLICY: path,
      PERIMETER_ALLOWLIST: '192.0.2.0/28',
      PERIMETER_DRY_RUN: 'true',
    });
    const policy = loadPolicy(config);
    expect(policy.allowlist).toEqual([
      { cidr: '198.51.100.7/32', comment: 'own egress NAT' },
      { cidr: '2001:db8:77::/48', comment: 'partner', expiresAt: Date.parse('2027-01-01T00:00:00Z') },
      { cidr: '192.0.2.0/28', comment: 'PERIMETER_ALLOWLIST' },
    ]);
    expect(policy.dryRun).toBe(true);
    expect(loadPolicy(loadConfig({})).dryRun).toBe(false);
  });

  it('names the file, line and field of each problem', () => {
    const path = file(
      'bad.yaml',
      [
        'allowlist:',
        '  - cidr: 198.51.100.300',
        '    comment: x',
        '  - cidr: 198.51.100.8',
        'dryrun: true',
      ].join('\n'),
    );
    let message = '';
    try {
      loadPolicy(loadConfig({}), path);
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigFileError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/bad\.yaml:2: allowlist\[0\]\.cidr: .*198\.51\.100\.300/);
    expect(message).toMatch(/bad\.yaml:4: allowlist\[1\]\.comment: /);
    expect(message).toMatch(/bad\.yaml:1: \(top level\): Unrecognized key: "dryrun"/);
  });

  it('refuses a bad PERIMETER_ALLOWLIST entry in the environment', () => {
    expect(() => loadConfig({ PERIMETER_ALLOWLIST: '198.51.100.7,not-an-ip' })).toThrow(
      /PERIMETER_ALLOWLIST/,
    );
  });
});

describe('allowlists', () => {
  const list = [
    { cidr: '198.51.100.0/24', comment: 'partner' },
    { cidr: '203.0.113.9/32', comment: 'monitoring', expiresAt: Date.now() - 1 },
  ];

  it('matches targets inside an allowlisted range and ranges that contain one', () => {
    expect(allowlisted(parseTarget('198.51.100.7'), list)?.comment).toBe('partner');
    expect(allowlisted(parseTarget('198.51.0.0/16'), list)?.comment).toBe('partner');
    expect(allowlisted(parseTarget('198.51.101.7'), list)).toBeUndefined();
  });

  it('ignores expired entries', () => {
    expect(allowlisted(parseTarget('203.0.113.9'), list)).toBeUndefined();
  });

  it('makes checkRemediation refuse with the entry named', () => {
    const request = { targets: ['198.51.100.7'], action: 'block', ttlMs: 60_000, observeMs: 0 };
    expect(() => checkRemediation(request, limits, list)).toThrow(PolicyError);
    expect(() => checkRemediation(request, limits, list)).toThrow(
      '198.51.100.7/32 is allowlisted (198.51.100.0/24: partner); allowlisted ranges are never remediated',
    );
  });
});

describe('PolicyStore', () => {
  it('keeps the policy in force when the file turns invalid, and takes the next valid one', () => {
    const path = file('store.yaml', 'allowlist: [{ cidr: 198.51.100.7, comment: egress }]\n');
    const logs: string[] = [];
    const store = new PolicyStore(loadConfig({ PERIMETER_POLICY: path }), (l) => logs.push(l));
    const changes: number[] = [];
    store.onChange((p) => changes.push(p.allowlist.length));

    writeFileSync(path, 'allowlist: [{ cidr: 198.51.100.7 }]\n');
    expect(store.reload(true)).toBe(false);
    expect(store.current().allowlist).toHaveLength(1);
    expect(store.lastError).toMatch(/store\.yaml:1: allowlist\[0\]\.comment/);
    expect(logs.pop()).toMatch(/the previous one stays in force/);

    writeFileSync(
      path,
      'allowlist: [{ cidr: 198.51.100.7, comment: a }, { cidr: 198.51.100.8, comment: b }]\n',
    );
    expect(store.reload(true)).toBe(true);
    expect(store.current().allowlist).toHaveLength(2);
    expect(store.lastError).toBeUndefined();
    expect(changes).toEqual([2]);
  });

  it('refuses to start on a broken policy', () => {
    const path = file('broken.yaml', 'allowlist: [\n');
    expect(() => new PolicyStore(loadConfig({ PERIMETER_POLICY: path }))).toThrow(
      /broken\.yaml:\d+: not valid YAML/,
    );
  });
});

describe('caps', () => {
  it('narrow the configured maximum TTL, never widen it', () => {
    expect(withCaps(limits, { caps: { maxTtl: 3_600_000 } }).maxTtlMs).toBe(3_600_000);
    expect(withCaps(limits, { caps: { maxTtl: 30 * 86_400_000 } }).maxTtlMs).toBe(limits.maxTtlMs);
    expect(withCaps(limits, { caps: undefined })).toBe(limits);
    expect(withCaps(limits, { caps: { widestV4: 24, widestV6: 8 } })).toMatchObject({
      minPrefixV4: 24,
      minPrefixV6: 48,
    });
    const request = { targets: ['203.0.113.9'], action: 'block', ttlMs: 7_200_000, observeMs: 0 };
    expect(() => checkRemediation(request, withCaps(limits, { caps: { maxTtl: 3_600_000 } }))).toThrow(
      /TTL 2h exceeds the maximum of 1h/,
    );
  });
});

describe('narrowest prefix', () => {
  it('widens narrower targets, never past the widest allowed prefix, and says so', () => {
    const capped = withCaps(limits, { caps: { narrowestV6: 64, narrowestV4: 8 } });
    expect(capped).toMatchObject({ narrowestV6: 64, narrowestV4: 16 });
    const checked = checkRemediation(
      { targets: ['2001:db8:aa:bb::1', '203.0.113.9'], action: 'block', ttlMs: 60_000, observeMs: 0 },
      withCaps(limits, { caps: { narrowestV6: 64 } }),
    );
    expect(checked.targets.map((t) => t.cidr)).toEqual(['2001:db8:aa:bb::/64', '203.0.113.9/32']);
    expect(checked.notes).toEqual([
      '2001:db8:aa:bb::1/128 widened to 2001:db8:aa:bb::/64 (narrowest remediated prefix /64)',
    ]);
  });
});

describe('campaign targets', () => {
  it('are checked like single targets: allowlist, reserved ranges and the policy caps', () => {
    const path = file(
      'campaign.yaml',
      'allowlist: [{ cidr: 198.51.100.7, comment: egress }]\ncaps: { narrowestV6: 64, widestV4: 24 }\n',
    );
    const { accepted, refused } = partitionTargets(loadConfig({ PERIMETER_POLICY: path }), [
      '2001:db8:1:2::5',
      '198.51.100.7',
      '10.0.0.1',
      '203.0.113.9',
      '203.0.112.0/20',
    ]);
    expect(accepted).toEqual(['2001:db8:1:2::/64', '203.0.113.9/32']);
    expect(refused.map((r) => r.target)).toEqual(['198.51.100.7', '10.0.0.1', '203.0.112.0/20']);
    expect(refused[0]?.reason).toMatch(/allowlisted \(198\.51\.100\.7\/32: egress\)/);
  });
});
