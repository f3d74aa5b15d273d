/**
 * `perimeter detect` as a user runs it, against the real stack: a log file becomes blocks in
 * the emulator's sets, a replay joins the open incidents, a burst becomes one campaign,
 * `--test` starts nothing, and `--follow` turns appended lines into live sightings.
 */
import { appendFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { incidentStatus, listRemediations } from '../../src/client/remediation';
import { CAMPAIGN_ID_PREFIX, ipWorkflowId } from '../../workflows/definitions';
import { runCli, spawnCli } from '../helpers/cli';
import { openTestStack, uniqueName, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;
const dir = mkdtempSync(join(tmpdir(), 'detect-'));

beforeAll(async () => {
  stack = await openTestStack();
  await stack.startWorker();
});
afterAll(() => stack?.close());

let clock = Date.parse('2026-11-22T09:00:00Z');
const stamp = (ms: number) => {
  const d = new Date(ms);
  const mon = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${mon}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
};

/** One combined-format line; the clock advances a little per line. */
function line(
  ip: string,
  path: string,
  ua = 'Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0',
  step = 200,
): string {
  clock += step;
  return `${ip} - - [${stamp(clock)}] "GET ${path} HTTP/1.1" 200 512 "-" "${ua}"`;
}
const SQLI = "/search?q=1'%20UNION%20SELECT%20password%20FROM%20users--";
const XSS = '/comments?body=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E';
const benign = (ip: string) => line(ip, '/search?q=o%27brien+family+recipes');

function logFile(lines: string[]): string {
  const path = join(dir, `${uniqueName('access')}.log`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

interface Summary {
  lines: number;
  records: number;
  matches: number;
  skipped: Record<string, number>;
  dispatch?: { incidentsStarted: number; campaignsStarted: number; joined: number; refused: number };
  wouldStart?: Array<{ kind: string; targets: string[] }>;
}

function summaryOf(stdout: string): Summary {
  const last = stdout.trim().split('\n').pop() ?? '';
  return (JSON.parse(last) as { summary: Summary }).summary;
}

describe('perimeter detect', () => {
  it('turns a log file into a block for the source over the threshold only, and skips garbage', async () => {
    const path = logFile([
      benign('192.0.2.50'),
      ...Array.from({ length: 6 }, () => line('203.0.116.1', SQLI)),
      line('203.0.116.2', XSS),
      line('203.0.116.2', XSS),
      benign('192.0.2.51'),
      'not a log line',
      '203.0.116.9 - - [22/Nov/2026:09:0',
      '\u0000\u0001\u0002binary',
    ]);
    const res = await runCli(['detect', path, '--ttl', '10m', '--json', '--no-progress'], stack.env);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const summary = summaryOf(res.stdout);
    expect(summary).toMatchObject({ lines: 13, records: 10, matches: 8 });
    expect(Object.values(summary.skipped).reduce((a, b) => a + b, 0)).toBe(3);
    expect(summary.dispatch).toMatchObject({ incidentsStarted: 1, campaignsStarted: 0, joined: 0 });

    await waitFor('the block', async () => (await stack.setContents('block')).includes('203.0.116.1/32'));
    expect(await stack.setContents('block')).not.toContain('203.0.116.2/32');
    const status = await incidentStatus(stack.client, '203.0.116.1');
    expect(status.evidence.byClass.sqli).toBeGreaterThanOrEqual(5);
    expect(status.evidence.samples[0]).toContain('UNION%20SELECT');
    expect(status.detector).toBe('log-detector');

    // The same file again: the detection joins the open incident, nothing is blocked twice.
    const again = await runCli(['detect', path, '--ttl', '10m', '--json', '--no-progress'], stack.env);
    expect(summaryOf(again.stdout).dispatch).toMatchObject({ incidentsStarted: 0, joined: 1 });
    const open = (await listRemediations(stack.client)).filter((r) => r.targets.includes('203.0.116.1/32'));
    expect(open.map((r) => r.workflowId)).toEqual([ipWorkflowId('203.0.116.1/32')]);
    expect((await stack.setContents('block')).filter((c) => c === '203.0.116.1/32')).toHaveLength(1);
  });

  it('holds a burst of sources in one campaign incident', async () => {
    const sources = Array.from({ length: 12 }, (_, i) => `203.0.116.${100 + i}`);
    const lines: string[] = [];
    for (const ip of sources) for (let i = 0; i < 5; i++) lines.push(line(ip, XSS, undefined, 20));
    const config = join(dir, 'burst.yaml');
    writeFileSync(config, `detector: ${uniqueName('burst')}\ncampaign: { minSources: 5 }\n`);
    const res = await runCli(
      ['detect', logFile(lines), '--config', config, '--ttl', '10m', '--json', '--no-progress'],
      stack.env,
    );
    expect(res.code).toBe(0);
    expect(summaryOf(res.stdout).dispatch).toMatchObject({ incidentsStarted: 1, campaignsStarted: 1 });
    const campaign = await waitFor('the campaign', async () =>
      (await listRemediations(stack.client)).find(
        (r) => r.workflowId.startsWith(CAMPAIGN_ID_PREFIX) && r.targets.includes('203.0.116.111/32'),
      ),
    );
    const status = await waitFor('the campaign applied', async () => {
      const s = await incidentStatus(stack.client, campaign.workflowId);
      return s.state === 'active' ? s : undefined;
    });
    expect(status.targets).toHaveLength(11);
    const set = await stack.setContents('block');
    for (const ip of sources) expect(set).toContain(`${ip}/32`);
  });

  it('--test reports per line and what would start, and starts nothing', async () => {
    const path = logFile([
      ...Array.from({ length: 5 }, () => line('203.0.116.50', SQLI)),
      benign('192.0.2.52'),
      'garbage',
    ]);
    const res = await runCli(['detect', '--test', '--json', path], stack.env);
    expect(res.code).toBe(0);
    const out = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(out[0]).toEqual({ line: 1, source: '203.0.116.50', classes: ['sqli'], format: 'combined' });
    expect(out[5]).toEqual({ line: 6, source: '192.0.2.52', classes: [], format: 'combined' });
    expect(out[6]).toMatchObject({ line: 7, source: null, classes: [], skipped: 'malformed' });
    const summary = (out[7] as { summary: Summary }).summary;
    expect(summary.wouldStart).toEqual([
      expect.objectContaining({ kind: 'single', targets: ['203.0.116.50'] }),
    ]);
    expect(
      (await listRemediations(stack.client)).filter((r) => r.targets.includes('203.0.116.50/32')),
    ).toEqual([]);
  });

  it('--follow blocks from appended lines and keeps the incident fed with sightings', async () => {
    const path = logFile([benign('192.0.2.53')]);
    // From the start: a loaded machine may start the process after the append below, and it must
    // still see those lines (when it starts in time, they arrive as appended lines).
    const follower = spawnCli(
      ['detect', path, '--follow', '--from-start', '--ttl', '10m', '--no-progress'],
      stack.env,
    );
    try {
      await new Promise((r) => setTimeout(r, 1_500)); // usually: the process starts and reaches the file's end
      appendFileSync(path, `${Array.from({ length: 5 }, () => line('203.0.116.70', SQLI)).join('\n')}\n`);
      await waitFor(
        'the block',
        async () => (await stack.setContents('block')).includes('203.0.116.70/32'),
        30_000,
      );
      appendFileSync(path, `${Array.from({ length: 3 }, () => line('203.0.116.70', XSS)).join('\n')}\n`);
      const status = await waitFor('the sighting', async () => {
        const s = await incidentStatus(stack.client, '203.0.116.70');
        return (s.evidence.byClass.xss ?? 0) >= 3 ? s : undefined;
      });
      expect(status.evidence.sightings).toBeGreaterThanOrEqual(2);
      expect(status.evidence.byClass.sqli).toBe(5);
    } finally {
      follower.kill('SIGINT');
      await new Promise((r) => follower.once('exit', r));
    }
    expect(follower.output()).toContain('started perimeter/ip/203.0.116.70/32');
  });
});
