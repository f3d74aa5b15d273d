/**
 * The worker's Prometheus endpoint against the real stack: a block shows up as a window-of-exposure
 * observation, WAF calls by operation and an active remediation; `perimeter worker` serves the
 * Temporal SDK runtime's metrics on the same endpoint.
 */
import { startRemediation, waitUntilSettled } from '../../src/client/remediation';
import { freePort } from '../../src/dev/services';
import { spawnCli } from '../helpers/cli';
import { addressPool, buildDetection, openTestStack, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;
const pool = addressPool('203.0.123', '2001:db8:a');

beforeAll(async () => {
  stack = await openTestStack({ PERIMETER_METRICS_PORT: '0' });
});
afterAll(() => stack?.close());

/** `name{labels} value` lines as a map. */
async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('metrics', () => {
  it('counts the window of exposure, WAF calls and active remediations', async () => {
    const worker = await stack.startWorker({ log: () => undefined });
    expect(worker.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const ip = pool.v4();
    const [started] = await startRemediation(stack, buildDetection({ targets: [ip], ttlMs: 60_000 }));
    await waitUntilSettled(stack.client, started?.workflowId ?? '', 15_000);
    const m = await scrape(worker.metricsUrl ?? '');
    expect(m.get('perimeter_window_of_exposure_seconds_count{action="block"}')).toBe(1);
    expect(m.get('perimeter_window_of_exposure_seconds_bucket{action="block",le="+Inf"}')).toBe(1);
    expect(m.get('perimeter_waf_calls_total{operation="UpdateIPSet"}')).toBeGreaterThanOrEqual(1);
    expect(m.get('perimeter_waf_calls_total{operation="GetIPSet"}')).toBeGreaterThanOrEqual(1);
    expect(m.get('perimeter_active_remediations{action="block"}')).toBe(1);
    expect(m.get('perimeter_active_remediations{action="challenge"}')).toBe(0);
  });

  it('perimeter worker serves the SDK runtime metrics next to its own', async () => {
    const port = await freePort();
    const worker = spawnCli(['worker'], { ...stack.env, PERIMETER_METRICS_PORT: String(port) });
    try {
      await waitFor('the metrics endpoint', async () => worker.output().includes('metrics on'));
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text).toMatch(/^# TYPE temporal_/m);
      expect(text).toMatch(/^# TYPE perimeter_waf_calls_total counter$/m);
    } finally {
      const exited = new Promise((r) => worker.once('exit', r));
      worker.kill('SIGINT');
      await exited;
    }
  });
});
