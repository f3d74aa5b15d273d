/**
 * The group-commit writer against the WAF emulator: hundreds of concurrent changes cost a
 * handful of writes, another writer's addresses survive, the write rate is honoured, and a
 * caller that gave up is never written. Assertions read the set the emulator holds.
 */
import { GetIPSetCommand, UpdateIPSetCommand, type WAFV2Client } from '@aws-sdk/client-wafv2';
import { loadConfig } from '../../src/config';
import { configuredWaf, createWafClient } from '../../src/waf/client';
import { managedSetName } from '../../src/waf/names';
import { ensureWebAcl, initManagedWaf, listIpSets, managedWafStatus } from '../../src/waf/provision';
import { countReferences, wafHealth } from '../../src/waf/status';
import { Wafv2Gateway } from '../../src/waf/wafv2-gateway';
import { WriteLimiter } from '../../src/waf/write-limiter';
import { testEnv } from '../helpers/stack';

async function setup() {
  const config = loadConfig(testEnv());
  const waf = configuredWaf(config.waf);
  await ensureWebAcl(waf.provision);
  await initManagedWaf(waf.provision);
  const name = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
  return { config, ...waf, name };
}

async function contents(client: WAFV2Client, name: string): Promise<string[]> {
  const summary = (await listIpSets({ client, scope: 'REGIONAL', setPrefix: '', webAcl: '' })).find(
    (s) => s.Name === name,
  );
  const got = await client.send(new GetIPSetCommand({ Name: name, Id: summary?.Id, Scope: 'REGIONAL' }));
  return got.IPSet?.Addresses ?? [];
}

/** Another tool adding its own addresses, read-modify-write with its own retries. */
async function foreignAdd(client: WAFV2Client, name: string, address: string): Promise<void> {
  const summary = (await listIpSets({ client, scope: 'REGIONAL', setPrefix: '', webAcl: '' })).find(
    (s) => s.Name === name,
  );
  for (let attempt = 0; attempt < 100; attempt++) {
    const got = await client.send(new GetIPSetCommand({ Name: name, Id: summary?.Id, Scope: 'REGIONAL' }));
    try {
      await client.send(
        new UpdateIPSetCommand({
          Name: name,
          Id: summary?.Id,
          Scope: 'REGIONAL',
          Addresses: [...(got.IPSet?.Addresses ?? []), address],
          LockToken: got.LockToken,
        }),
      );
      return;
    } catch (err) {
      if ((err as Error).name !== 'WAFOptimisticLockException') throw err;
    }
  }
  throw new Error('the foreign writer never got its write in');
}

/** A gateway over its own SDK client whose UpdateIPSet calls are timed. */
function timedGateway(config: ReturnType<typeof loadConfig>, limiter?: WriteLimiter) {
  const client = createWafClient(config.waf);
  const writes: number[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === 'UpdateIPSetCommand') writes.push(performance.now());
      return next(args);
    },
    { step: 'initialize', name: 'timeWrites' },
  );
  const gateway = new Wafv2Gateway({
    client,
    scope: 'REGIONAL',
    setPrefix: config.waf.setPrefix,
    lockRetries: 8,
    ...(limiter ? { limiter } : {}),
  });
  return { gateway, writes, client };
}

/** An AddWatcher that writes down what it is told: `+cidr` sent, `-cidr` refused. */
function watcher() {
  const told: string[] = [];
  const adds = {
    sending: (cidrs: string[]) => told.push(...cidrs.map((c) => `+${c}`)),
    refused: (cidrs: string[]) => told.push(...cidrs.map((c) => `-${c}`)),
  };
  return { told, adds };
}

const ip = (i: number) => `203.0.${100 + Math.floor(i / 250)}.${(i % 250) + 1}/32`;

describe('IpSetWriter: group commit', () => {
  it('500 concurrent blocks and a foreign writer: every address once, foreign ones kept, few writes', async () => {
    const { client, config, name } = await setup();
    const { gateway } = timedGateway(config);
    const mine = Array.from({ length: 500 }, (_, i) => ip(i));
    const foreign = Array.from({ length: 10 }, (_, i) => `198.51.100.${i + 1}/32`);
    const results = await Promise.all([
      ...mine.map((cidr) => gateway.apply('block', [cidr])),
      ...foreign.map((a) => foreignAdd(client, name, a)),
    ]);
    expect(results.slice(0, 500).every((r) => r && r.changed.length === 1)).toBe(true);

    const stored = await contents(client, name);
    expect(stored).toHaveLength(510);
    expect(new Set(stored).size).toBe(510);
    expect(stored).toEqual(expect.arrayContaining([...mine, ...foreign]));
    expect(gateway.stats.changes).toBe(500);
    expect(gateway.stats.writes).toBeLessThanOrEqual(25);

    const writesBefore = gateway.stats.writes;
    await Promise.all(mine.map((cidr) => gateway.release('block', [cidr])));
    expect((await contents(client, name)).sort()).toEqual([...foreign].sort());
    expect(gateway.stats.writes - writesBefore).toBeLessThanOrEqual(10);
  });

  it('reuses its own NextLockToken instead of reading, and re-reads after someone else wrote', async () => {
    const { client, config, name } = await setup();
    const { gateway } = timedGateway(config);
    for (let i = 0; i < 5; i++) await gateway.apply('block', [ip(i)]);
    expect(gateway.stats).toMatchObject({ reads: 1, writes: 5, lockConflicts: 0 });
    await foreignAdd(client, name, '198.51.100.200/32');
    await gateway.apply('block', [ip(5)]);
    expect(gateway.stats).toMatchObject({ reads: 2, writes: 6, lockConflicts: 1 });
    expect((await contents(client, name)).sort()).toEqual(
      [...Array.from({ length: 6 }, (_, i) => ip(i)), '198.51.100.200/32'].sort(),
    );
  });

  it('tells a watcher what each write adds, and takes back a write refused for a stale lock token', async () => {
    const { client, config, name } = await setup();
    const { gateway } = timedGateway(config);
    await gateway.apply('block', [ip(0)]); // the writer keeps the set as written, and its token
    const theirs = '198.51.100.201/32';
    await foreignAdd(client, name, theirs); // that token is now stale, and the set holds theirs
    const { told, adds } = watcher();
    const result = await gateway.apply('block', [ip(1), theirs], { adds });
    // From memory both looked new; refused, re-read, only one was: what may be there because of the call.
    expect(told).toEqual([`+${ip(1)}`, `+${theirs}`, `-${ip(1)}`, `-${theirs}`, `+${ip(1)}`]);
    expect(result).toMatchObject({ changed: [ip(1)], unchanged: [theirs], lockConflicts: 1 });
    expect((await contents(client, name)).sort()).toEqual([ip(0), ip(1), theirs].sort());
  });

  it('counts an add as its own when its answer was lost and the SDK, sending it again, met its own token spent', async () => {
    const { client, config, name } = await setup();
    const { gateway, client: flaky } = timedGateway(config);
    let lose = 1;
    flaky.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args); // the write lands…
        if (context.commandName === 'UpdateIPSetCommand' && lose-- > 0) {
          throw Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }); // …its answer does not
        }
        return out;
      },
      { step: 'deserialize', name: 'loseOneAnswer' },
    );
    const { told, adds } = watcher();
    const result = await gateway.apply('block', [ip(0)], { adds });
    // The SDK's second send met a stale token: the first may have landed (it had), so nothing is
    // taken back, and the address found on the re-read is this call's, not someone else's.
    expect(result).toMatchObject({ changed: [ip(0)], unchanged: [] });
    expect(told).toEqual([`+${ip(0)}`]);
    expect(await contents(client, name)).toEqual([ip(0)]);
  });

  it('does not trust its memory for a no-op: an address someone removed by hand is added again', async () => {
    const { client, config, name, gateway: other } = await setup();
    const { gateway } = timedGateway(config);
    await gateway.apply('block', [ip(0)]);
    await other.release('block', [ip(0)]); // another writer takes it out behind this one's back
    const again = await gateway.apply('block', [ip(0)]);
    expect(again.changed).toEqual([ip(0)]);
    expect(await contents(client, name)).toEqual([ip(0)]);
  });

  it('keeps the order of an add and a release of the same address in one batch', async () => {
    const { client, config, name } = await setup();
    const { gateway } = timedGateway(config);
    await gateway.apply('block', [ip(0)]); // a write in flight makes the next ones queue together
    const [added, removed, again] = await Promise.all([
      gateway.apply('block', [ip(1)]),
      gateway.release('block', [ip(1)]),
      gateway.apply('block', [ip(2)]),
    ]);
    expect(added.changed).toEqual([ip(1)]);
    expect(removed.changed).toEqual([ip(1)]);
    expect(again.changed).toEqual([ip(2)]);
    expect((await contents(client, name)).sort()).toEqual([ip(0), ip(2)].sort());
  });
});

describe('IpSetWriter: write rate', () => {
  it('never writes faster than the limit, and a burst under it costs one write per interval', async () => {
    const { config } = await setup();
    const { gateway, writes } = timedGateway(config, new WriteLimiter(5));
    for (let i = 0; i < 4; i++) await gateway.apply('block', [ip(i)]);
    const gaps = writes.slice(1).map((t, i) => t - (writes[i] ?? 0));
    expect(gaps.every((g) => g >= 180)).toBe(true); // 5/s: 200 ms apart, less timer slack

    const before = writes.length;
    await Promise.all(Array.from({ length: 200 }, (_, i) => gateway.apply('block', [ip(10 + i)])));
    expect(writes.length - before).toBeLessThanOrEqual(3);
  });

  it('drops a change whose caller gave up while it waited for the rate, and writes the rest', async () => {
    const { client, config, name } = await setup();
    const { gateway } = timedGateway(config, new WriteLimiter(1));
    await gateway.apply('block', [ip(0)]); // spends the token: the next write waits about a second
    const gaveUp = new AbortController();
    const abandoned = gateway.apply('block', [ip(1)], { signal: gaveUp.signal });
    const kept = gateway.apply('block', [ip(2)]);
    setTimeout(() => gaveUp.abort(new Error('deadline')), 100);
    await expect(abandoned).rejects.toThrow('deadline');
    await kept;
    expect((await contents(client, name)).sort()).toEqual([ip(0), ip(2)].sort());
  });
});

describe('sharding past the fill', () => {
  it('opens and links new shards when a set is full, fills freed room first, and finds addresses in any shard', async () => {
    const config = loadConfig(testEnv({ PERIMETER_SET_SHARD_FILL: '5' }));
    const waf = configuredWaf(config.waf);
    await ensureWebAcl(waf.provision);
    await initManagedWaf(waf.provision);
    const shard = (n: number) => managedSetName(config.waf.setPrefix, 'block', 'ipv4', n);
    const first = Array.from({ length: 12 }, (_, i) => ip(i));
    await Promise.all(first.map((cidr) => waf.gateway.apply('block', [cidr])));

    const sizes = await Promise.all(
      [0, 1, 2].map(async (n) => (await contents(waf.client, shard(n))).length),
    );
    expect(sizes).toEqual([5, 5, 2]);
    const all = (await Promise.all([0, 1, 2].map((n) => contents(waf.client, shard(n))))).flat();
    expect(all.sort()).toEqual([...first].sort());
    const status = await managedWafStatus(waf.provision);
    expect(status.filter((s) => s.action === 'block' && s.family === 'ipv4')).toEqual([
      expect.objectContaining({ name: shard(0), shard: 0, addresses: 5, linked: true }),
      expect.objectContaining({ name: shard(1), shard: 1, addresses: 5, linked: true }),
      expect.objectContaining({ name: shard(2), shard: 2, addresses: 2, linked: true }),
    ]);
    const health = await wafHealth(waf.provision, config.waf.shardFill);
    expect(health.references).toEqual({ used: 10, limit: 50 }); // 8 first shards + 2 new ones
    expect(health.warnings).toEqual([
      expect.stringMatching(new RegExp(`${shard(0)} holds 5 addresses \\(100% of the 5`)),
      expect.stringMatching(new RegExp(`${shard(1)} holds 5 addresses`)),
    ]);
    expect((await waf.gateway.check('block', [ip(0), ip(7), ip(11), ip(99)])).present).toEqual([
      ip(0),
      ip(7),
      ip(11),
    ]);

    // Room freed in the first shard is filled first.
    const inFirst = await contents(waf.client, shard(0));
    await waf.gateway.release('block', inFirst.slice(0, 3));
    await waf.gateway.apply('block', [ip(20), ip(21)]);
    expect(await contents(waf.client, shard(0))).toEqual(expect.arrayContaining([ip(20), ip(21)]));

    const released = await waf.gateway.release('block', [...first, ip(20), ip(21)]);
    expect(released.changed.sort()).toEqual(
      [...first.filter((c) => !inFirst.slice(0, 3).includes(c)), ip(20), ip(21)].sort(),
    );
    for (const n of [0, 1, 2]) expect(await contents(waf.client, shard(n))).toEqual([]);
  });
});

it('a worker releases an address from a shard another worker opened after it last looked', async () => {
  const config = loadConfig(testEnv({ PERIMETER_SET_SHARD_FILL: '2' }));
  const a = configuredWaf(config.waf);
  const b = configuredWaf(config.waf);
  await ensureWebAcl(a.provision);
  await initManagedWaf(a.provision);
  await b.gateway.check('block', [ip(0)]); // worker B has looked: it knows shard 0 only
  await a.gateway.apply('block', [ip(0), ip(1)]);
  await a.gateway.apply('block', [ip(2)]); // shard 0 is full: worker A opens shard 1
  const second = managedSetName(config.waf.setPrefix, 'block', 'ipv4', 1);
  expect(await contents(a.client, second)).toEqual([ip(2)]);
  expect((await b.gateway.check('block', [ip(2)])).present).toEqual([ip(2)]);
  const released = await b.gateway.release('block', [ip(2)]);
  expect(released.changed).toEqual([ip(2)]);
  expect(await contents(a.client, second)).toEqual([]);
});

it('counts set and rule group references wherever they are nested', () => {
  const ipset = { IPSetReferenceStatement: { ARN: 'a' } };
  expect(
    countReferences({
      AndStatement: {
        Statements: [
          ipset,
          {
            NotStatement: {
              Statement: {
                RegexPatternSetReferenceStatement: { ARN: 'r', FieldToMatch: {}, TextTransformations: [] },
              },
            },
          },
          { RateBasedStatement: { Limit: 100, AggregateKeyType: 'IP', ScopeDownStatement: ipset } },
          { GeoMatchStatement: { CountryCodes: ['KP'] } },
        ],
      },
    }),
  ).toBe(3);
  expect(
    countReferences({
      ManagedRuleGroupStatement: { VendorName: 'AWS', Name: 'x', ScopeDownStatement: ipset },
    }),
  ).toBe(2);
});
