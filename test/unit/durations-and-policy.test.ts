import { formatDuration, parseDuration } from '../../src/domain/durations';
import { checkRemediation, PolicyError } from '../../src/domain/policy';

const limits = { minPrefixV4: 16, minPrefixV6: 48, maxTtlMs: 7 * 86_400_000, maxObserveMs: 3_600_000 };

describe('durations', () => {
  it.each([
    ['90s', 90_000],
    ['15m', 900_000],
    ['1h30m', 5_400_000],
    ['7d', 604_800_000],
    ['500ms', 500],
    ['30', 30_000],
  ])('parses %s', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 'soon', '-5m', '1h x', '5 minutes'])('refuses %p', (text) => {
    expect(() => parseDuration(text)).toThrow(/is not a duration/);
  });

  it('formats compactly', () => {
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(1_500)).toBe('1.5s');
  });
});

describe('checkRemediation', () => {
  const ok = { targets: ['203.0.113.42'], action: 'block', ttlMs: 60_000, observeMs: 0 };

  it('normalises and de-duplicates targets', () => {
    const r = checkRemediation({ ...ok, targets: ['203.0.113.42', '203.0.113.42/32'] }, limits);
    expect(r.targets.map((t) => t.cidr)).toEqual(['203.0.113.42/32']);
  });

  it.each([
    [{ ttlMs: 0 }, /TTL must be greater than zero/],
    [{ ttlMs: -5 }, /TTL must be greater than zero/],
    [{ ttlMs: 8 * 86_400_000 }, /TTL 8d exceeds the maximum of 7d/],
    [{ action: 'drop' }, /unknown action "drop"/],
    [{ targets: [] }, /no target given/],
    [{ observeMs: 2 * 3_600_000 }, /observation window 2h exceeds/],
  ])('refuses %p', (change, message) => {
    expect(() => checkRemediation({ ...ok, ...change }, limits)).toThrow(message);
  });

  it('reports every problem at once', () => {
    try {
      checkRemediation({ targets: ['0.0.0.0/0', 'bogus'], action: 'nuke', ttlMs: 0, observeMs: 0 }, limits);
      throw new Error('accepted');
    } catch (err) {
      expect(err).toBeInstanceOf(PolicyError);
      expect((err as PolicyError).problems).toHaveLength(4);
    }
  });
});
