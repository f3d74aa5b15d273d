import { checkTarget, contains, parseTarget, TargetError } from '../../src/domain/targets';

const limits = { minPrefixV4: 16, minPrefixV6: 48 };

describe('parseTarget', () => {
  it.each([
    ['203.0.113.42', '203.0.113.42/32', 'ipv4'],
    [' 203.0.113.42/32 ', '203.0.113.42/32', 'ipv4'],
    ['203.0.113.42/24', '203.0.113.0/24', 'ipv4'],
    ['2001:DB8::1', '2001:db8::1/128', 'ipv6'],
    ['2001:db8:0:0:0:0:0:1/64', '2001:db8::/64', 'ipv6'],
    ['2001:db8:bad::/48', '2001:db8:bad::/48', 'ipv6'],
    ['::ffff:203.0.113.9', '203.0.113.9/32', 'ipv4'],
    ['2001:db8::203.0.113.9', '2001:db8::cb00:7109/128', 'ipv6'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1/128', 'ipv6'],
  ])('normalises %s to %s', (input, cidr, family) => {
    const t = parseTarget(input);
    expect(t.cidr).toBe(cidr);
    expect(t.family).toBe(family);
  });

  it.each([
    '',
    'not-an-ip',
    '203.0.113',
    '203.0.113.256',
    '203.0.113.042',
    '203.0.113.4/33',
    '1.2.3.4/',
    '1.2.3.4/2/3',
    '2001:db8:::1',
    '2001:db8::1::2',
    '12345::1',
    '2001:db8::1/129',
    'fe80::1%eth0',
    '1:2:3:4:5:6:7:8:9',
  ])('refuses malformed %p with a TargetError', (input) => {
    expect(() => parseTarget(input)).toThrow(TargetError);
  });
});

describe('checkTarget', () => {
  it.each([
    ['0.0.0.0/0', /whole IPv4 internet; the widest allowed IPv4 prefix is \/16/],
    ['::/0', /whole IPv6 internet; the widest allowed IPv6 prefix is \/48/],
    ['203.0.0.0/8', /wider than allowed; the widest allowed IPv4 prefix is \/16/],
    ['2001:db8::/32', /widest allowed IPv6 prefix is \/48/],
    ['10.1.2.3', /private/],
    ['192.168.1.1', /private/],
    ['172.20.0.1', /private/],
    ['127.0.0.1', /loopback/],
    ['169.254.169.254', /link-local/],
    ['::1', /loopback/],
    ['fe80::1', /link-local/],
    ['fd00::1', /unique-local/],
    ['224.0.0.1', /multicast/],
    ['192.0.0.8', /IETF protocol assignments/],
    ['198.18.0.1', /benchmarking/],
    ['100::1', /discard-only/],
    ['fec0::1', /site-local/],
    ['::a00:1', /IPv4-compatible/],
    ['::ffff:0:0/95', /IPv4-mapped/],
    ['64:ff9b::10.0.0.1', /reaches 10\.0\.0\.1\/32 through a translation prefix.*private/],
    ['64:ff9b::/95', /reaches 0\.0\.0\.0\/0 through a translation prefix/],
    ['2002:a00:1::/48', /reaches 10\.0\.0\.1\/32 through a translation prefix/],
    ['2002:7f00:1::/48', /loopback/],
    [
      '64:ff9b::cb00:0/104',
      /reaches 203\.0\.0\.0\/8 through a translation prefix; the widest allowed IPv4 prefix is \/16/,
    ],
  ])('refuses %s', (input, message) => {
    expect(() => checkTarget(input, limits)).toThrow(message);
  });

  it('accepts public addresses and ranges within the limit', () => {
    expect(checkTarget('198.51.100.7', limits).cidr).toBe('198.51.100.7/32');
    expect(checkTarget('198.51.0.0/16', limits).cidr).toBe('198.51.0.0/16');
    expect(checkTarget('2001:db8:bad::/48', limits).cidr).toBe('2001:db8:bad::/48');
    expect(checkTarget('64:ff9b::203.0.113.5', limits).cidr).toBe('64:ff9b::cb00:7105/128');
    expect(checkTarget('2002:cb00:7105::/48', limits).cidr).toBe('2002:cb00:7105::/48');
  });

  it('knows containment', () => {
    expect(contains(parseTarget('203.0.113.0/24'), parseTarget('203.0.113.9'))).toBe(true);
    expect(contains(parseTarget('203.0.113.9'), parseTarget('203.0.113.0/24'))).toBe(false);
  });
});
