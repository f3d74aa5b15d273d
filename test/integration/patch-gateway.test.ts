/**
 * Virtual-patch rules in the web ACL, against the WAF emulator: asserting on the rules and
 * regex pattern sets the emulator stores (it stores rules but does not evaluate them).
 */
import {
  GetWebACLCommand,
  ListRegexPatternSetsCommand,
  UpdateWebACLCommand,
  type Rule,
  type WAFV2Client,
} from '@aws-sdk/client-wafv2';
import { loadConfig } from '../../src/config';
import { checkPatch, type PatchRequest } from '../../src/domain/virtual-patch';
import { configuredWaf } from '../../src/waf/client';
import { Wafv2PatchGateway } from '../../src/waf/patch-gateway';
import { ensureWebAcl, findWebAcl, initManagedWaf, webAclUpdate } from '../../src/waf/provision';
import { testEnv } from '../helpers/stack';

const DAY = 86_400_000;

function buildPatch(overrides: Partial<PatchRequest> = {}) {
  return checkPatch(
    {
      findingId: 'CVE-2026-0001',
      path: '/api/search',
      kind: 'sqli',
      field: 'query:q',
      ttlMs: DAY,
      observeMs: 0,
      ...overrides,
    },
    { maxTtlMs: 30 * DAY, maxObserveMs: DAY },
  );
}

async function setup(env: Record<string, string> = {}) {
  const config = loadConfig(testEnv(env));
  const waf = configuredWaf(config.waf);
  await ensureWebAcl(waf.provision);
  await initManagedWaf(waf.provision);
  return { config, ...waf };
}

async function aclRules(client: WAFV2Client, name: string): Promise<Rule[]> {
  const acl = await findWebAcl({ client, scope: 'REGIONAL', setPrefix: '', webAcl: name });
  const got = await client.send(new GetWebACLCommand({ Name: name, Id: acl?.Id, Scope: 'REGIONAL' }));
  return got.WebACL?.Rules ?? [];
}

/** Someone else (the console, Terraform) adding a rule of their own to the web ACL. */
async function foreignRule(client: WAFV2Client, aclName: string, rule: Rule) {
  const acl = await findWebAcl({ client, scope: 'REGIONAL', setPrefix: '', webAcl: aclName });
  const got = await client.send(new GetWebACLCommand({ Name: aclName, Id: acl?.Id, Scope: 'REGIONAL' }));
  if (!got.WebACL || !got.LockToken || !acl?.Id) throw new Error('no web ACL');
  await client.send(
    new UpdateWebACLCommand(
      webAclUpdate(got.WebACL, acl.Id, 'REGIONAL', got.LockToken, [...(got.WebACL.Rules ?? []), rule]),
    ),
  );
}

/** A foreign rule with bytes in it: its search string must survive our rewrites of the ACL. */
const FOREIGN_BYTES: Rule = {
  Name: 'team-admin-guard',
  Priority: 5,
  Action: { Block: {} },
  Statement: {
    ByteMatchStatement: {
      FieldToMatch: { UriPath: {} },
      PositionalConstraint: 'STARTS_WITH',
      SearchString: new TextEncoder().encode('/wp-admin'),
      TextTransformations: [{ Type: 'LOWERCASE', Priority: 0 }],
    },
  },
  VisibilityConfig: { SampledRequestsEnabled: false, CloudWatchMetricsEnabled: false, MetricName: 'admin' },
};

const FOREIGN: Rule = {
  Name: 'team-geo-block',
  Priority: 100,
  Action: { Block: {} },
  Statement: { GeoMatchStatement: { CountryCodes: ['KP'] } },
  VisibilityConfig: { SampledRequestsEnabled: false, CloudWatchMetricsEnabled: false, MetricName: 'geo' },
};

async function patternSetNames(client: WAFV2Client): Promise<string[]> {
  const names: string[] = [];
  let marker: string | undefined;
  do {
    const page = await client.send(
      new ListRegexPatternSetsCommand({ Scope: 'REGIONAL', Limit: 100, NextMarker: marker }),
    );
    names.push(...(page.RegexPatternSets ?? []).map((s) => s.Name ?? ''));
    marker = page.RegexPatternSets?.length ? page.NextMarker : undefined;
  } while (marker);
  return names;
}

describe('Wafv2PatchGateway against the emulator', () => {
  it('adds the rule in count, switches it to block, and removes it; foreign rules and priorities are untouched', async () => {
    const { client, patches, config } = await setup();
    await foreignRule(client, config.waf.webAcl, FOREIGN);
    await foreignRule(client, config.waf.webAcl, FOREIGN_BYTES);
    const rule = `${config.waf.setPrefix}-vpatch-CVE-2026-0001`;
    const spec = buildPatch();

    const counted = await patches.apply(spec, 'count');
    expect(counted).toMatchObject({ rule, written: true, priority: 101 });
    expect(counted.capacity?.wcu).toBeGreaterThan(0);
    let rules = await aclRules(client, config.waf.webAcl);
    const stored = rules.find((r) => r.Name === rule);
    expect(stored?.Action).toEqual({ Count: {} });
    expect(stored?.RuleLabels).toEqual([{ Name: `${config.waf.setPrefix}:vpatch:CVE-2026-0001` }]);
    const and = stored?.Statement?.AndStatement?.Statements ?? [];
    expect(and[1]?.SqliMatchStatement?.FieldToMatch).toEqual({ SingleQueryArgument: { Name: 'q' } });
    expect(
      new TextDecoder().decode(and[0]?.OrStatement?.Statements?.[0]?.ByteMatchStatement?.SearchString),
    ).toBe('/api/search');
    expect(await patches.apply(spec, 'count')).toMatchObject({ written: false });

    await patches.apply(spec, 'block');
    rules = await aclRules(client, config.waf.webAcl);
    expect(rules.find((r) => r.Name === rule)).toMatchObject({ Action: { Block: {} }, Priority: 101 });
    expect(await patches.check('CVE-2026-0001')).toMatchObject({ action: 'block', priority: 101 });

    expect(await patches.release('CVE-2026-0001')).toMatchObject({ written: true });
    rules = await aclRules(client, config.waf.webAcl);
    expect(rules.map((r) => r.Name)).not.toContain(rule);
    expect(rules.find((r) => r.Name === 'team-geo-block')).toMatchObject({
      Priority: 100,
      Action: { Block: {} },
    });
    const guard = rules.find((r) => r.Name === 'team-admin-guard')?.Statement?.ByteMatchStatement;
    expect(new TextDecoder().decode(guard?.SearchString)).toBe('/wp-admin');
    expect(guard?.TextTransformations).toEqual([{ Type: 'LOWERCASE', Priority: 0 }]);
    expect(rules.filter((r) => r.Name?.startsWith(`${config.waf.setPrefix}-block`))).toHaveLength(2);
    expect(await patches.release('CVE-2026-0001')).toMatchObject({ written: false });
  });

  it('re-reads and re-applies on a lock conflict with a concurrent foreign edit; the foreign rule survives', async () => {
    const { client, config } = await setup();
    let raced = false;
    // A foreign edit lands between our GetWebACL and UpdateWebACL, once.
    const racing = {
      send: async (command: unknown, options?: unknown) => {
        if (command instanceof UpdateWebACLCommand && !raced) {
          raced = true;
          await foreignRule(client, config.waf.webAcl, { ...FOREIGN, Name: 'team-rate-rule', Priority: 7 });
        }
        return (client.send as (c: unknown, o?: unknown) => Promise<unknown>)(command, options);
      },
    } as unknown as WAFV2Client;
    const patches = new Wafv2PatchGateway({
      client: racing,
      scope: 'REGIONAL',
      setPrefix: config.waf.setPrefix,
      webAcl: config.waf.webAcl,
      lockRetries: 4,
      basePriority: 7,
      capacityLimit: 1500,
    });
    const result = await patches.apply(buildPatch(), 'block');
    expect(result.lockConflicts).toBe(1);
    const rules = await aclRules(client, config.waf.webAcl);
    expect(rules.find((r) => r.Name === 'team-rate-rule')).toMatchObject({ Priority: 7 });
    // The priority was chosen again after the re-read: the foreign rule took 7.
    expect(rules.find((r) => r.Name === result.rule)?.Priority).toBe(8);
  });

  it('keeps two patches apart and removes them independently, pattern sets included', async () => {
    const { client, patches, config } = await setup();
    const regex = buildPatch({
      findingId: 'ZAP-40018',
      kind: 'regex',
      pattern: 'union\\s+select',
      field: 'body',
    });
    const traversal = buildPatch({ findingId: 'DAST-7', kind: 'traversal', path: '/files', match: 'prefix' });
    await patches.apply(regex, 'count');
    await patches.apply(traversal, 'block');
    const names = (await aclRules(client, config.waf.webAcl)).map((r) => r.Name);
    expect(names).toEqual(
      expect.arrayContaining([
        `${config.waf.setPrefix}-vpatch-ZAP-40018`,
        `${config.waf.setPrefix}-vpatch-DAST-7`,
      ]),
    );
    expect(await patternSetNames(client)).toEqual(
      expect.arrayContaining([
        `${config.waf.setPrefix}-vpatch-ZAP-40018`,
        `${config.waf.setPrefix}-vpatch-DAST-7`,
      ]),
    );

    await patches.release('ZAP-40018');
    const after = (await aclRules(client, config.waf.webAcl)).map((r) => r.Name);
    expect(after).toContain(`${config.waf.setPrefix}-vpatch-DAST-7`);
    expect(after).not.toContain(`${config.waf.setPrefix}-vpatch-ZAP-40018`);
    const sets = await patternSetNames(client);
    expect(sets).toContain(`${config.waf.setPrefix}-vpatch-DAST-7`);
    expect(sets).not.toContain(`${config.waf.setPrefix}-vpatch-ZAP-40018`);
    await patches.release('DAST-7');
    expect(await patternSetNames(client)).not.toContain(`${config.waf.setPrefix}-vpatch-DAST-7`);
  });

  it('refuses a rule over the web ACL capacity budget and writes nothing', async () => {
    const { client, patches, config } = await setup({ PERIMETER_WEB_ACL_CAPACITY: '40' });
    const before = await aclRules(client, config.waf.webAcl);
    await expect(patches.apply(buildPatch({ kind: 'xss' }), 'count')).rejects.toMatchObject({
      name: 'WAFLimitsExceededException',
    });
    expect((await aclRules(client, config.waf.webAcl)).map((r) => r.Name)).toEqual(before.map((r) => r.Name));
  });
});
