/**
 * The WAF gateway and provisioning against the WAF emulator (moto server), asserting on the
 * sets and rules the emulator reports.
 */
import {
  CreateIPSetCommand,
  DeleteIPSetCommand,
  GetIPSetCommand,
  GetWebACLCommand,
  UpdateIPSetCommand,
  UpdateWebACLCommand,
  type WAFV2Client,
} from '@aws-sdk/client-wafv2';
import { loadConfig } from '../../src/config';
import { configuredWaf, createWafClient } from '../../src/waf/client';
import { managedSetName } from '../../src/waf/names';
import {
  ensureWebAcl,
  findWebAcl,
  initManagedWaf,
  listIpSets,
  managedWafStatus,
} from '../../src/waf/provision';
import { IpSetWriter } from '../../src/waf/ip-set-writer';
import { Wafv2Gateway } from '../../src/waf/wafv2-gateway';
import { UNLIMITED } from '../../src/waf/write-limiter';
import { testEnv } from '../helpers/stack';

function setup() {
  const config = loadConfig(testEnv());
  return { config, ...configuredWaf(config.waf) };
}

async function ipSet(client: WAFV2Client, name: string) {
  // Paged: every test file's sets share the one emulator.
  const all = await listIpSets({ client, scope: 'REGIONAL', setPrefix: '', webAcl: '' });
  const summary = all.find((s) => s.Name === name);
  if (!summary?.Id) throw new Error(`no set ${name}`);
  const got = await client.send(new GetIPSetCommand({ Name: name, Id: summary.Id, Scope: 'REGIONAL' }));
  return { id: summary.Id, addresses: got.IPSet?.Addresses ?? [], lockToken: got.LockToken ?? '' };
}

/** Another writer (a person in the console, another tool) adding an address to the set. */
async function foreignAdd(client: WAFV2Client, name: string, address: string) {
  const s = await ipSet(client, name);
  await client.send(
    new UpdateIPSetCommand({
      Name: name,
      Id: s.id,
      Scope: 'REGIONAL',
      Addresses: [...s.addresses, address],
      LockToken: s.lockToken,
    }),
  );
}

describe('Wafv2Gateway against the emulator', () => {
  it('adds to and removes from the right set; repeats are no-ops', async () => {
    const { client, provision, gateway, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    const v4 = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
    const v6 = managedSetName(config.waf.setPrefix, 'block', 'ipv6');

    const added = await gateway.apply('block', ['203.0.113.42/32', '2001:db8:bad::/48']);
    expect(added.changed).toEqual(['203.0.113.42/32', '2001:db8:bad::/48']);
    expect((await ipSet(client, v4)).addresses).toEqual(['203.0.113.42/32']);
    expect((await ipSet(client, v6)).addresses).toEqual(['2001:db8:bad::/48']);

    const again = await gateway.apply('block', ['203.0.113.42/32']);
    expect(again).toMatchObject({ changed: [], unchanged: ['203.0.113.42/32'], setsWritten: [] });

    await gateway.release('block', ['203.0.113.42/32']);
    const gone = await gateway.release('block', ['203.0.113.42/32']);
    expect(gone).toMatchObject({ changed: [], unchanged: ['203.0.113.42/32'], setsWritten: [] });
    expect((await ipSet(client, v4)).addresses).toEqual([]);
    expect((await ipSet(client, v6)).addresses).toEqual(['2001:db8:bad::/48']);
  });

  it('never drops addresses it did not add', async () => {
    const { client, provision, gateway, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    const name = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
    await foreignAdd(client, name, '198.51.100.1/32');
    await gateway.apply('block', ['203.0.113.42/32']);
    await gateway.release('block', ['203.0.113.42/32', '203.0.113.43/32']);
    expect((await ipSet(client, name)).addresses).toEqual(['198.51.100.1/32']);
  });

  it('knows an address in another spelling, and keeps the order of a release and an add in one batch', async () => {
    const { client, provision, gateway, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    const name = managedSetName(config.waf.setPrefix, 'block', 'ipv6');
    const before = (await ipSet(client, name)).addresses;
    await foreignAdd(client, name, '2001:DB8:0:0:0:0:0:7/128');
    const again = await gateway.apply('block', ['2001:db8::7/128']);
    expect(again.changed).toEqual([]);
    expect(again.unchanged).toEqual(['2001:db8::7/128']);
    // One batch that releases an address and adds it back (straight to the set's writer, whose
    // queue keeps the order the changes arrived in).
    const writer = new IpSetWriter({
      client,
      scope: 'REGIONAL',
      resolve: async () => ({ Name: name, Id: (await ipSet(client, name)).id }),
      limiter: UNLIMITED(),
      lockRetries: 8,
      capacity: 10_000,
      stats: { reads: 0, writes: 0, lockConflicts: 0, changes: 0 },
    });
    const [, released, added] = await Promise.all([
      writer.submit({ kind: 'add', cidrs: ['2001:db8::8/128'] }), // in flight: the next two queue
      writer.submit({ kind: 'remove', cidrs: ['2001:db8::8/128', '2001:db8::7/128'] }),
      writer.submit({ kind: 'add', cidrs: ['2001:db8::8/128'] }),
    ]);
    expect(released.changed).toEqual(['2001:db8::8/128', '2001:db8::7/128']);
    expect(added.changed).toEqual(['2001:db8::8/128']);
    expect((await ipSet(client, name)).addresses).toEqual([...before, '2001:db8::8/128']);
    await gateway.apply('block', ['2001:db8::7/128']); // the gateway's writer saw it go: added back
    const gone = await gateway.release('block', ['2001:db8::7/128', '2001:db8::8/128']);
    expect(gone.changed.sort()).toEqual(['2001:db8::7/128', '2001:db8::8/128']);
    expect((await ipSet(client, name)).addresses).toEqual(before);
  });

  it('re-reads and re-applies only its change when another writer wins the lock', async () => {
    const { client, provision, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    const name = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
    // Wrap a client so that right after our first GetIPSet, another writer updates the set:
    // our UpdateIPSet then carries a stale lock token.
    const racing = createWafClient(config.waf);
    let interfered = 0;
    racing.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === 'GetIPSetCommand' && interfered === 0) {
          interfered++;
          await foreignAdd(client, name, '198.51.100.77/32');
        }
        return out;
      },
      { step: 'initialize', name: 'foreignWriterBetweenReadAndWrite' },
    );
    const gateway = new Wafv2Gateway({
      client: racing,
      scope: 'REGIONAL',
      setPrefix: config.waf.setPrefix,
      lockRetries: 8,
    });
    const result = await gateway.apply('block', ['203.0.113.42/32']);
    expect(interfered).toBe(1);
    expect(result.lockConflicts).toBe(1);
    expect((await ipSet(client, name)).addresses.sort()).toEqual(['198.51.100.77/32', '203.0.113.42/32']);
  });

  it('gives up with WAFOptimisticLockException when the lock is always lost', async () => {
    const { client, provision, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    const name = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
    const racing = createWafClient(config.waf);
    let n = 0;
    racing.middlewareStack.add(
      (next, context) => async (args) => {
        const out = await next(args);
        if (context.commandName === 'GetIPSetCommand') await foreignAdd(client, name, `198.51.100.${++n}/32`);
        return out;
      },
      { step: 'initialize' },
    );
    const gateway = new Wafv2Gateway({
      client: racing,
      scope: 'REGIONAL',
      setPrefix: config.waf.setPrefix,
      lockRetries: 2,
    });
    await expect(gateway.apply('block', ['203.0.113.42/32'])).rejects.toMatchObject({
      name: 'WAFOptimisticLockException',
    });
    expect((await ipSet(client, name)).addresses).not.toContain('203.0.113.42/32');
  });

  it('finds a set again after it was deleted and re-created under the same name', async () => {
    const { client, provision, gateway, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    const name = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
    await gateway.apply('block', ['203.0.113.42/32']); // caches the set's ID
    const old = await ipSet(client, name);
    await client.send(
      new DeleteIPSetCommand({ Name: name, Id: old.id, Scope: 'REGIONAL', LockToken: old.lockToken }),
    );
    await client.send(
      new CreateIPSetCommand({
        Name: name,
        Scope: 'REGIONAL',
        IPAddressVersion: 'IPV4',
        Addresses: ['203.0.113.42/32'],
      }),
    );
    const released = await gateway.release('block', ['203.0.113.42/32']);
    expect(released.changed).toEqual(['203.0.113.42/32']);
    expect((await ipSet(client, name)).addresses).toEqual([]);
  });

  it('keeps the set description when it writes', async () => {
    const { client, provision, gateway, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    await gateway.apply('block', ['203.0.113.42/32']);
    const name = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
    const s = await ipSet(client, name);
    const got = await client.send(new GetIPSetCommand({ Name: name, Id: s.id, Scope: 'REGIONAL' }));
    expect(got.IPSet?.Description).toMatch(/Managed by the Self-Healing Perimeter/);
  });

  it('reports a missing set clearly', async () => {
    const { gateway } = setup();
    await expect(gateway.apply('block', ['203.0.113.42/32'])).rejects.toThrow(
      /does not exist; run `perimeter waf init`/,
    );
  });
});

describe('perimeter waf init', () => {
  it('creates sets and rules once, adopts them after, and leaves foreign rules and sets alone', async () => {
    const { client, provision, config } = setup();
    await ensureWebAcl(provision);
    const acl = await findWebAcl(provision);
    if (!acl?.Id) throw new Error('no web ACL');
    // A rule and an IP set the perimeter does not own, at priorities 0 and 1.
    const foreignSet = await client.send(
      new CreateIPSetCommand({
        Name: `${config.waf.webAcl}-partners`,
        Scope: 'REGIONAL',
        IPAddressVersion: 'IPV4',
        Addresses: ['192.0.2.0/24'],
      }),
    );
    const before = await client.send(
      new GetWebACLCommand({ Name: config.waf.webAcl, Scope: 'REGIONAL', Id: acl.Id }),
    );
    const foreignRule = {
      Name: 'allow-partners',
      Priority: 1,
      Action: { Allow: {} },
      Statement: { IPSetReferenceStatement: { ARN: foreignSet.Summary?.ARN } },
      VisibilityConfig: {
        SampledRequestsEnabled: true,
        CloudWatchMetricsEnabled: true,
        MetricName: 'allow-partners',
      },
    };
    await client.send(
      new UpdateWebACLCommand({
        Name: config.waf.webAcl,
        Scope: 'REGIONAL',
        Id: acl.Id,
        LockToken: before.LockToken,
        DefaultAction: { Allow: {} },
        VisibilityConfig: before.WebACL?.VisibilityConfig,
        Rules: [foreignRule],
      }),
    );

    const first = await initManagedWaf(provision);
    expect(first.createdSets).toHaveLength(8);
    expect(first.addedRules).toHaveLength(8);
    const second = await initManagedWaf(provision);
    expect(second).toMatchObject({ createdSets: [], addedRules: [] });
    expect(second.adoptedSets).toHaveLength(8);

    const after = await client.send(
      new GetWebACLCommand({ Name: config.waf.webAcl, Scope: 'REGIONAL', Id: acl.Id }),
    );
    const rules = after.WebACL?.Rules ?? [];
    expect(rules).toHaveLength(9);
    expect(rules.find((r) => r.Name === 'allow-partners')).toMatchObject({
      Priority: 1,
      Action: { Allow: {} },
    });
    const priorities = rules.map((r) => r.Priority);
    expect(new Set(priorities).size).toBe(priorities.length);
    const managed = rules.filter((r) => r.Name?.startsWith(`${config.waf.setPrefix}-`));
    expect(managed).toHaveLength(8);
    expect(
      managed.find((r) => r.Name === managedSetName(config.waf.setPrefix, 'block', 'ipv6'))?.Action,
    ).toEqual({ Block: {} });
    expect(
      managed.find((r) => r.Name === managedSetName(config.waf.setPrefix, 'count', 'ipv4'))?.Action,
    ).toEqual({ Count: {} });
    expect((await ipSet(client, `${config.waf.webAcl}-partners`)).addresses).toEqual(['192.0.2.0/24']);

    const status = await managedWafStatus(provision);
    expect(status.map((s) => s.name)).not.toContain(`${config.waf.webAcl}-partners`);
    expect(status).toHaveLength(8);
    expect(status.every((s) => s.linked && s.addresses === 0 && s.capacity === 10_000)).toBe(true);
  });

  it('repairs a managed rule that points at the wrong set or has the wrong action', async () => {
    const { client, provision, config } = setup();
    await ensureWebAcl(provision);
    await initManagedWaf(provision);
    const id = (await findWebAcl(provision))?.Id ?? '';
    const before = await client.send(
      new GetWebACLCommand({ Name: config.waf.webAcl, Scope: 'REGIONAL', Id: id }),
    );
    const blockRule = managedSetName(config.waf.setPrefix, 'block', 'ipv4');
    const broken = (before.WebACL?.Rules ?? []).map((r) =>
      r.Name === blockRule
        ? {
            ...r,
            Action: { Count: {} },
            Statement: {
              IPSetReferenceStatement: { ARN: 'arn:aws:wafv2:us-east-1:123456789012:regional/ipset/gone/0' },
            },
          }
        : r,
    );
    await client.send(
      new UpdateWebACLCommand({
        Name: config.waf.webAcl,
        Scope: 'REGIONAL',
        Id: id,
        LockToken: before.LockToken,
        DefaultAction: { Allow: {} },
        VisibilityConfig: before.WebACL?.VisibilityConfig,
        Rules: broken,
      }),
    );
    const report = await initManagedWaf(provision);
    expect(report.repairedRules).toEqual([blockRule]);
    const after = await client.send(
      new GetWebACLCommand({ Name: config.waf.webAcl, Scope: 'REGIONAL', Id: id }),
    );
    const rule = after.WebACL?.Rules?.find((r) => r.Name === blockRule);
    const set = (await listIpSets(provision)).find((x) => x.Name === blockRule);
    expect(rule?.Action).toEqual({ Block: {} });
    expect(rule?.Statement?.IPSetReferenceStatement?.ARN).toBe(set?.ARN);
  });

  it('refuses to run without the web ACL it should adopt', async () => {
    const { provision } = setup();
    await expect(initManagedWaf(provision)).rejects.toThrow(/web ACL "acl.*" \(REGIONAL\) not found/);
  });
});
