import { ConfigError, loadConfig } from '../../src/config';

describe('loadConfig', () => {
  it('has working defaults for the local stack', () => {
    const c = loadConfig({});
    expect(c.temporal.address).toBe('127.0.0.1:7233');
    expect(c.temporal.taskQueue).toBe('perimeter');
    expect(c.waf).toMatchObject({
      scope: 'REGIONAL',
      setPrefix: 'perimeter',
      webAcl: 'perimeter',
      endpoint: undefined,
    });
    expect(c.policy).toMatchObject({
      defaultTtlMs: 3_600_000,
      maxTtlMs: 604_800_000,
      minPrefixV4: 16,
      minPrefixV6: 48,
    });
    expect(c.patches).toEqual({ defaultTtlMs: 7 * 86_400_000, maxTtlMs: 30 * 86_400_000 });
    expect(c.waf).toMatchObject({ patchPriority: 100, capacityLimit: 1_500 });
  });

  it('reads the ecosystem variables', () => {
    const c = loadConfig({
      TEMPORAL_ADDRESS: 'temporal:7233',
      AWS_ENDPOINT_URL_WAFV2: 'http://127.0.0.1:5000',
      AWS_REGION: 'eu-west-1',
    });
    expect(c.temporal.address).toBe('temporal:7233');
    expect(c.waf).toMatchObject({ endpoint: 'http://127.0.0.1:5000', region: 'eu-west-1' });
  });

  it.each([
    [
      { PERIMETER_WAF_SCOPE: 'CLOUDFRONT', AWS_REGION: 'eu-west-1' },
      /CLOUDFRONT scope is only served from us-east-1/,
    ],
    [
      { PERIMETER_DEFAULT_TTL: '8d' },
      /PERIMETER_DEFAULT_TTL: must be greater than zero and at most PERIMETER_MAX_TTL/,
    ],
    [{ PERIMETER_MAX_TTL: 'forever' }, /PERIMETER_MAX_TTL: "forever" is not a duration/],
    [{ PERIMETER_MIN_PREFIX_V4: '0' }, /PERIMETER_MIN_PREFIX_V4/],
    [{ PERIMETER_SET_PREFIX: 'bad prefix!' }, /PERIMETER_SET_PREFIX/],
    [{ PERIMETER_WAF_SCOPE: 'GLOBAL' }, /PERIMETER_WAF_SCOPE/],
    [{ AWS_ENDPOINT_URL_WAFV2: 'not a url' }, /AWS_ENDPOINT_URL_WAFV2/],
    [{ SLACK_BOT_TOKEN: 'xoxb-1', PERIMETER_SLACK_CHANNEL: 'C1' }, /name who may approve/],
    [
      { SLACK_BOT_TOKEN: 'xoxb-1', PERIMETER_SLACK_APPROVERS: 'U1' },
      /PERIMETER_SLACK_CHANNEL: required with SLACK_BOT_TOKEN/,
    ],
    [{ PERIMETER_APPROVAL_TIMEOUT: '0s' }, /PERIMETER_APPROVAL_TIMEOUT: must be greater than zero/],
    [{ PERIMETER_APPROVAL_DEFAULT: 'maybe' }, /PERIMETER_APPROVAL_DEFAULT/],
    [
      { PERIMETER_VPATCH_DEFAULT_TTL: '60d' },
      /PERIMETER_VPATCH_DEFAULT_TTL: must be greater than zero and at most PERIMETER_VPATCH_MAX_TTL \(30d\)/,
    ],
    [{ PERIMETER_WEB_ACL_CAPACITY: '6000' }, /PERIMETER_WEB_ACL_CAPACITY/],
    [{ PERIMETER_VPATCH_PRIORITY: '-1' }, /PERIMETER_VPATCH_PRIORITY/],
  ])('refuses %p', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});
