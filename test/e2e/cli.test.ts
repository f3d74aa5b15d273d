/**
 * The `perimeter` command line, run as a user runs it, against this run's Temporal dev server
 * and WAF emulator, with a worker polling the file's task queue.
 */
import fs from 'node:fs';
import path from 'node:path';
import { incidentStatus } from '../../src/client/remediation';
import { ipWorkflowId } from '../../workflows/definitions';
import { runCli } from '../helpers/cli';
import { openTestStack, waitFor, type TestStack } from '../helpers/stack';

let stack: TestStack;

beforeAll(async () => {
  stack = await openTestStack();
  await stack.startWorker();
});
afterAll(() => stack?.close());

describe('perimeter CLI', () => {
  it('block --json prints the applied incident; list, show, extend and unblock follow it', async () => {
    const ip = '198.51.100.20';
    const blocked = await runCli(
      ['block', ip, '--ttl', '10m', '--reason', 'sqli from ticket 42', '--json'],
      stack.env,
    );
    expect(blocked.stderr).toBe('');
    expect(blocked.code).toBe(0);
    const out = JSON.parse(blocked.stdout) as { workflowId: string; targets: string[]; expiresAt: string };
    expect(out).toMatchObject({ workflowId: ipWorkflowId(`${ip}/32`), targets: [`${ip}/32`] });
    expect(Date.parse(out.expiresAt) - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(await stack.setContents('block')).toContain(`${ip}/32`);

    const list = await runCli(['list', '--json'], stack.env);
    expect(list.code).toBe(0);
    const items = JSON.parse(list.stdout) as Array<{ workflowId: string; state: string; action: string }>;
    expect(items.find((i) => i.workflowId === out.workflowId)).toMatchObject({
      state: 'active',
      action: 'block',
    });

    const show = await runCli(['show', ip], stack.env);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('sqli from ticket 42');
    expect(show.stdout).toMatch(/apply\s+block in place until/);

    const extend = await runCli(['extend', ip, '--ttl', '5m'], stack.env);
    expect(extend.code).toBe(0);
    expect(Date.parse((await incidentStatus(stack.client, ip)).expiresAt ?? '')).toBe(
      Date.parse(out.expiresAt) + 300_000,
    );

    const unblock = await runCli(['unblock', out.workflowId, '--reason', 'customer confirmed'], stack.env);
    expect(unblock.code).toBe(0);
    expect(unblock.stdout).toContain('released');
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    const again = await runCli(['unblock', ip], stack.env);
    expect(again.stdout).toContain('nothing to do, already released');
  });

  it('applies challenge and IPv6 targets, one incident per target', async () => {
    const res = await runCli(
      ['block', '198.51.100.21', '2001:db8:2::/48', '--ttl', '10m', '--action', 'challenge', '--json'],
      stack.env,
    );
    expect(res.code).toBe(0);
    const lines = res.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { workflowId: string });
    expect(lines.map((l) => l.workflowId)).toEqual([
      ipWorkflowId('198.51.100.21/32'),
      ipWorkflowId('2001:db8:2::/48'),
    ]);
    expect(await stack.setContents('challenge', 'ipv4')).toContain('198.51.100.21/32');
    expect(await stack.setContents('challenge', 'ipv6')).toContain('2001:db8:2::/48');
    for (const l of lines) expect((await runCli(['unblock', l.workflowId], stack.env)).code).toBe(0);
    await waitFor(
      'challenge sets empty',
      async () => (await stack.setContents('challenge', 'ipv4')).length === 0,
    );
    expect(await stack.setContents('challenge', 'ipv6')).toEqual([]);
  });

  it.each([
    [['block', '0.0.0.0/0', '--ttl', '1h'], /would block the whole IPv4 internet/],
    [['block', '10.0.0.1', '--ttl', '1h'], /private/],
    [['block', 'not-an-ip', '--ttl', '1h'], /is not an IP address/],
    [['block', '198.51.100.22', '--ttl', '30d'], /exceeds the maximum of 7d/],
    [['block', '198.51.100.22', '--ttl', '0s'], /TTL must be greater than zero/],
    [['block', '198.51.100.22', '--ttl', 'soon'], /is not a duration/],
    [
      ['block', '198.51.100.22', '--ttl', '1h', '--action', 'drop'],
      /Allowed choices are block, challenge, captcha/,
    ],
  ])('refuses %p with a clear error and starts nothing', async (args, message) => {
    const res = await runCli(args, stack.env);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(message);
    expect(res.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(await stack.setContents('block')).toEqual([]);
  });

  it('block --approval slack waits for a person; approve and deny decide through the same Update', async () => {
    const ip = '198.51.100.23';
    const started = await runCli(['block', ip, '--ttl', '10m', '--approval', 'slack'], stack.env);
    expect(started.code).toBe(0);
    await waitFor(
      'awaiting approval',
      async () => (await incidentStatus(stack.client, ip)).state === 'awaiting-approval',
    );
    expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    const approved = await runCli(['approve', ip], stack.env);
    expect(approved.stdout).toMatch(/approved by .* — now active/);
    expect(await stack.setContents('block')).toContain(`${ip}/32`);
    const again = await runCli(['deny', ip], stack.env);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/refused: already decided: approved by/);
    expect((await runCli(['unblock', ip], stack.env)).code).toBe(0);
  });

  it('waf status --json lists the managed sets with their fill', async () => {
    const res = await runCli(['waf', 'status', '--json'], stack.env);
    expect(res.code).toBe(0);
    const { sets, references, warnings } = JSON.parse(res.stdout) as {
      sets: Array<{ name: string; addresses: number; linked: boolean }>;
      references: { used: number; limit: number };
      warnings: string[];
    };
    expect(sets).toHaveLength(8);
    expect(sets.every((s) => s.name.startsWith(stack.config.waf.setPrefix) && s.linked)).toBe(true);
    expect(references).toEqual({ used: 8, limit: 50 });
    expect(warnings).toEqual([]);
  });

  it('says where Temporal should be when it cannot reach it', async () => {
    const res = await runCli(['list'], { ...stack.env, TEMPORAL_ADDRESS: '127.0.0.1:1' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/cannot reach Temporal at 127.0.0.1:1/);
  });

  it('policy check validates a policy file, naming the line and field of each problem', async () => {
    const ok = await runCli(['policy', 'check', 'examples/policy.yaml'], stack.env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('examples/policy.yaml: valid — 2 allowlist entries');
    expect(ok.stdout).toContain('repeat offenders: within 1d, TTLs 1h → 4h → 1d');
    const bad = path.join(process.env.PERIMETER_TEST_DIR ?? '/tmp', 'bad-policy.yaml');
    fs.writeFileSync(bad, 'allowlist:\n  - { cidr: 10.0.0.300, comment: x }\ncaps: { maxTTL: 1d }\n');
    const refused = await runCli(['policy', 'check', bad], stack.env);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /bad-policy\.yaml:2: allowlist\[0\]\.cidr: "10\.0\.0\.300" is not an IP address/,
    );
    expect(refused.stderr).toMatch(/bad-policy\.yaml:3: caps: Unrecognized key: "maxTTL"/);
  });
});
