/**
 * The IaC ledger through the whole stack: incidents on the real Temporal server write the
 * emulator's sets and commit to a real git working copy that pushes to a local bare remote.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  decideRemediation,
  extendRemediation,
  releaseRemediation,
  startRemediation,
  waitUntilSettled,
} from '../../src/client/remediation';
import { retireVirtualPatch, startVirtualPatch, waitForPatchEnd } from '../../src/client/virtual-patch';
import { git } from '../../src/ledger/git';
import { IP_SETS_FILE, PATCHES_FILE, type IpSetsFile, type PatchesFile } from '../../src/ledger/state';
import { createPerimeterWorker } from '../../src/worker';
import { runCli } from '../helpers/cli';
import {
  addressPool,
  buildDetection,
  openTestStack,
  uniqueName,
  waitFor,
  type TestStack,
} from '../helpers/stack';
import type { Activities } from '../../activities';
import type { remediate } from '../../workflows/remediate';
import { incidentStatus } from '../../src/client/remediation';

let stack: TestStack;
let root: string;
let work: string;
let remote: string;
let other: string;
const pool = addressPool('203.0.123', '2001:db8:a');
/** Makes the next ledger attempt lose its answer after committing, as a crash would. */
let loseNextAnswer = false;

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-ledger-e2e-'));
  remote = path.join(root, 'remote.git');
  work = path.join(root, 'work');
  other = path.join(root, 'other');
  await git(root, ['init', '-q', '--bare', '-b', 'main', remote]);
  await git(root, ['clone', '-q', remote, work]);
  await git(work, ['checkout', '-q', '-b', 'main']);
  fs.writeFileSync(path.join(work, 'README.md'), '# perimeter infrastructure\n');
  await git(work, ['add', 'README.md']);
  await git(work, ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-m', 'start']);
  await git(work, ['push', '-q', 'origin', 'main']);
  await git(root, ['clone', '-q', remote, other]);
  stack = await openTestStack({ PERIMETER_LEDGER_PATH: work, PERIMETER_LEDGER_REMOTE: remote });
  await stack.startWorker({
    log: () => undefined,
    wrapActivities: (a: Activities) => ({
      ...a,
      async recordInLedger(input) {
        const result = await a.recordInLedger(input);
        if (loseNextAnswer) {
          loseNextAnswer = false;
          throw new Error('the answer was lost');
        }
        return result;
      },
    }),
  });
});
afterAll(async () => {
  await stack?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

async function ipSets(ref = 'HEAD', dir = work): Promise<IpSetsFile> {
  return JSON.parse(await git(dir, ['show', `${ref}:${IP_SETS_FILE}`])) as IpSetsFile;
}

const blockSet = () => `${stack.config.waf.setPrefix}-block-ipv4`;
const recorded = async (ref = 'HEAD', dir = work) =>
  Object.keys((await ipSets(ref, dir)).perimeter_ip_sets[blockSet()]?.addresses ?? {});

async function messages(ref = 'HEAD', dir = work): Promise<string[]> {
  return (await git(dir, ['log', '--format=%B%x00', ref])).split('\0').map((m) => m.trim());
}

async function block(ip: string): Promise<string> {
  const [started] = await startRemediation(stack, buildDetection({ targets: [ip], ttlMs: 600_000 }));
  if (!started) throw new Error('no incident');
  await waitUntilSettled(stack.client, started.workflowId, 15_000);
  return started.workflowId;
}

const verify = () => runCli(['ledger', 'verify'], stack.env);

describe('IaC ledger', () => {
  it('commits a block with its address, then the release without it, and pushes both', async () => {
    const ip = pool.v4();
    const id = await block(ip);
    await waitFor('the block committed', async () => (await recorded()).includes(`${ip}/32`));
    const entry = (await ipSets()).perimeter_ip_sets[blockSet()]?.addresses[`${ip}/32`];
    expect(entry).toMatchObject({
      incident: id,
      action: 'block',
      reason: 'sqli probes',
      approver: 'none (no approval required)',
    });
    expect(Date.parse(entry!.expires) - Date.parse(entry!.created)).toBe(600_000);
    const [applied] = await messages();
    expect(applied).toContain(`perimeter: block ${ip}/32 applied`);
    expect(applied).toContain(`Incident: ${id}`);
    expect(applied).toContain('Approver: none (no approval required)');
    expect(await stack.setContents('block')).toContain(`${ip}/32`);

    await releaseRemediation(stack.client, id, { by: 'oncall', reason: 'false positive' });
    expect(await recorded()).not.toContain(`${ip}/32`);
    expect((await messages())[0]).toContain(`perimeter: block ${ip}/32 released`);
    const status = await stack.client.workflow.getHandle<typeof remediate>(id).result();
    expect(status.timeline.filter((t) => t.step === 'record').map((t) => t.message)).toEqual([
      expect.stringMatching(new RegExp(`^ledger: block ${ip}/32 applied in commit [0-9a-f]{12}$`)),
      expect.stringMatching(new RegExp(`^ledger: block ${ip}/32 released in commit [0-9a-f]{12}$`)),
    ]);
    await waitFor(
      'pushed',
      async () => (await recorded('main', remote)).length === (await recorded()).length,
    );
    expect((await messages('main', remote))[0]).toContain(`perimeter: block ${ip}/32 released`);
  });

  it('makes no second commit when the ledger activity is retried after committing', async () => {
    const ip = pool.v4();
    const before = (await messages()).length;
    loseNextAnswer = true;
    const id = await block(ip);
    await waitFor('the retry settled', async () =>
      (await incidentStatus(stack.client, id)).timeline.some((t) => t.step === 'record'),
    );
    const history = await stack.client.workflow.getHandle(id).fetchHistory();
    const ledgerAttempts = (history.events ?? []).filter(
      (e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt === 2,
    );
    expect(ledgerAttempts).toHaveLength(1); // the ledger activity ran twice
    const mine = (await messages()).filter((m) => m.includes(`perimeter: block ${ip}/32 applied`));
    expect(mine).toHaveLength(1);
    expect((await messages()).length).toBe(before + 1);
    await releaseRemediation(stack.client, id, { by: 'jest' });
  });

  it('rewrites the expiry when an incident is extended', async () => {
    const ip = pool.v4();
    const id = await block(ip);
    await waitFor('committed', async () => (await recorded()).includes(`${ip}/32`));
    const entry = async () => (await ipSets()).perimeter_ip_sets[blockSet()]?.addresses[`${ip}/32`];
    const before = await entry();
    const { expiresAt } = await extendRemediation(stack.client, id, { by: 'oncall', byMs: 1_800_000 });
    await waitFor('the extension committed', async () => (await entry())?.expires === expiresAt);
    expect(Date.parse(expiresAt!) - Date.parse(before!.expires)).toBe(1_800_000);
    expect((await entry())?.created).toBe(before!.created);
    const [message] = await messages();
    expect(message).toContain(`perimeter: block ${ip}/32 extended`);
    expect(message).toContain(`Expires: ${expiresAt}`);
    await releaseRemediation(stack.client, id, { by: 'jest' });
    expect(await recorded()).not.toContain(`${ip}/32`);
  });

  it('records concurrent incidents in a linear history with none lost', async () => {
    const ips = [pool.v4(), pool.v4(), pool.v4(), pool.v4()];
    const ids = await Promise.all(ips.map(block));
    await waitFor('all committed', async () => {
      const now = await recorded();
      return ips.every((ip) => now.includes(`${ip}/32`));
    });
    expect((await git(work, ['rev-list', '--merges', '--count', 'HEAD'])).trim()).toBe('0');
    await Promise.all(ids.map((id) => releaseRemediation(stack.client, id, { by: 'jest' })));
    const after = await recorded();
    expect(ips.filter((ip) => after.includes(`${ip}/32`))).toEqual([]);
  });

  it('rebases onto a remote someone else pushed to, and pushes', async () => {
    await git(other, ['pull', '-q', 'origin', 'main']);
    fs.writeFileSync(path.join(other, 'main.tf'), 'module "perimeter" { source = "./modules/perimeter" }\n');
    await git(other, ['add', 'main.tf']);
    await git(other, ['-c', 'user.name=b', '-c', 'user.email=b@b', 'commit', '-q', '-m', 'someone else']);
    await git(other, ['push', '-q', 'origin', 'main']);

    const ip = pool.v4();
    const id = await block(ip);
    await waitFor('pushed after a rebase', async () => (await recorded('main', remote)).includes(`${ip}/32`));
    const log = (await git(remote, ['log', '--format=%s', 'main'])).split('\n');
    expect(log.indexOf(`perimeter: block ${ip}/32 applied`)).toBeLessThan(log.indexOf('someone else'));
    expect((await git(remote, ['rev-list', '--merges', '--count', 'main'])).trim()).toBe('0');
    expect(fs.existsSync(path.join(work, 'main.tf'))).toBe(true);
    await releaseRemediation(stack.client, id, { by: 'jest' });
  });

  it('records a virtual patch with its rule, and its retirement', async () => {
    const findingId = uniqueName('CVE-2026-');
    const started = await startVirtualPatch(stack, {
      findingId,
      path: '/api/search',
      method: 'GET',
      field: 'query:q',
      kind: 'sqli',
      ttlMs: 60_000,
      observeMs: 0,
      reason: 'DAST: SQL injection in q',
      detector: 'dast',
      requestedBy: 'jest',
    });
    const patches = async () =>
      (
        JSON.parse(
          await git(work, ['show', `HEAD:${PATCHES_FILE}`]).catch(() => '{"virtual_patches":{}}'),
        ) as PatchesFile
      ).virtual_patches;
    const entry = await waitFor('the patch committed', async () => (await patches())[findingId]);
    expect(entry).toMatchObject({
      incident: started.workflowId,
      rule_name: `${stack.config.waf.setPrefix}-vpatch-${findingId}`,
      spec: { path: '/api/search', kind: 'sqli' },
      rule: { Name: `${stack.config.waf.setPrefix}-vpatch-${findingId}`, Action: { Block: {} } },
    });
    await retireVirtualPatch(stack.client, findingId, { commit: '4f2c9e1', by: 'ci' });
    await waitForPatchEnd(stack.client, findingId, 20_000);
    expect((await patches())[findingId]).toBeUndefined();
  });

  it('records a patch approved as a challenge with the challenge rule it placed', async () => {
    const findingId = uniqueName('CVE-2026-');
    const started = await startVirtualPatch(stack, {
      findingId,
      path: '/login',
      kind: 'xss',
      field: 'query:next',
      ttlMs: 60_000,
      observeMs: 0,
      approval: 'slack',
      reason: 'DAST: reflected XSS in next',
      detector: 'dast',
      requestedBy: 'jest',
    });
    await waitFor(
      'awaiting approval',
      async () => (await incidentStatus(stack.client, started.workflowId)).state === 'awaiting-approval',
    );
    await decideRemediation(stack.client, started.workflowId, {
      decision: 'approve-challenge',
      by: 'U-oncall',
    });
    const entry = await waitFor('the patch committed', async () => {
      const text = await git(work, ['show', `HEAD:${PATCHES_FILE}`]).catch(() => '{"virtual_patches":{}}');
      return (JSON.parse(text) as PatchesFile).virtual_patches[findingId];
    });
    expect(entry).toMatchObject({
      approver: 'U-oncall',
      rule: { Name: `${stack.config.waf.setPrefix}-vpatch-${findingId}`, Action: { Challenge: {} } },
    });
    expect(entry.rule).not.toHaveProperty('Action.Block');
    await retireVirtualPatch(stack.client, findingId, { commit: '9a1b2c3', by: 'ci' });
    await waitForPatchEnd(stack.client, findingId, 20_000);
  });

  it('`ledger verify` agrees with the WAF, then finds a hand edit on either side', async () => {
    const ip = pool.v4();
    const id = await block(ip);
    await waitFor('committed', async () => (await recorded()).includes(`${ip}/32`));
    const agree = await verify();
    expect(agree.stdout).toContain('the ledger and the WAF agree');
    expect(agree.code).toBe(0);

    // Someone removes the address from the ledger file by hand, and adds one to the WAF set.
    const file = path.join(work, IP_SETS_FILE);
    const edited = JSON.parse(fs.readFileSync(file, 'utf8')) as IpSetsFile;
    delete edited.perimeter_ip_sets[blockSet()]!.addresses[`${ip}/32`];
    fs.writeFileSync(file, JSON.stringify(edited, null, 2));
    const foreign = pool.v4();
    await stack.gateway.apply('block', [`${foreign}/32`]);
    const found = await verify();
    expect(found.code).toBe(1);
    expect(found.stdout).toMatch(
      new RegExp(`\\+ ${blockSet()}\\s+${ip}/32\\s+in the WAF, not in the ledger`),
    );
    expect(found.stdout).toMatch(
      new RegExp(`\\+ ${blockSet()}\\s+${foreign}/32\\s+in the WAF, not in the ledger`),
    );
    expect(found.stdout).toContain('2 differences');

    // The next change finds the working copy edited only in its own file: it restores it.
    await releaseRemediation(stack.client, id, { by: 'jest' });
    await stack.gateway.release('block', [`${foreign}/32`]);
    expect((await verify()).code).toBe(0);
  });

  it("blocks all the same while the working copy has a person's edits, and records once they are gone", async () => {
    fs.writeFileSync(path.join(work, 'README.md'), '# perimeter infrastructure, being edited\n');
    const ip = pool.v4();
    let id = '';
    try {
      id = await block(ip);
      expect(await stack.setContents('block')).toContain(`${ip}/32`);
      // Retried, not given up on: whoever edits the file will commit or discard the edit.
      const pending = await waitFor('the ledger step retrying', async () => {
        const d = await stack.client.workflow.getHandle(id).describe();
        return d.raw.pendingActivities?.find((a) => (a.attempt ?? 0) >= 2);
      });
      expect(pending.activityType?.name).toBe('recordInLedger');
      expect(pending.lastFailure?.message).toMatch(/edits that are not the perimeter's \(README.md\)/);
      expect(await recorded()).not.toContain(`${ip}/32`);
      expect((await incidentStatus(stack.client, id)).state).toBe('active');
    } finally {
      fs.writeFileSync(path.join(work, 'README.md'), '# perimeter infrastructure\n');
    }
    await waitFor('recorded after the edit went', async () => (await recorded()).includes(`${ip}/32`));
    const status = await waitFor('the ledger step', async () => {
      const s = await incidentStatus(stack.client, id);
      return s.timeline.some((t) => t.step === 'record') ? s : undefined;
    });
    expect(status.timeline.find((t) => t.step === 'record')?.message).toMatch(
      new RegExp(`^ledger: block ${ip}/32 applied in commit [0-9a-f]{12}$`),
    );
    await releaseRemediation(stack.client, id, { by: 'jest' });
    expect(await recorded()).not.toContain(`${ip}/32`);
  });

  it('blocks all the same when the ledger cannot be read, and says the ledger missed it', async () => {
    const file = path.join(work, IP_SETS_FILE);
    const good = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, '{ "perimeter_ip_sets": \n');
    await git(work, ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-am', 'broken by hand']);
    const ip = pool.v4();
    try {
      const id = await block(ip);
      const status = await waitFor('the ledger step', async () => {
        const s = await incidentStatus(stack.client, id);
        return s.timeline.some((t) => t.step === 'record') ? s : undefined;
      });
      expect(status.state).toBe('active');
      expect(await stack.setContents('block')).toContain(`${ip}/32`);
      expect(status.timeline.find((t) => t.step === 'record')?.message).toMatch(
        new RegExp(`^ledger: block ${ip}/32 applied NOT recorded: the ledger in .* not valid JSON`),
      );
      // A non-retryable failure: tried once, not for the next quarter of an hour.
      const history = await stack.client.workflow.getHandle(id).fetchHistory();
      const failed = (history.events ?? []).filter((e) => e.activityTaskFailedEventAttributes);
      expect(failed).toHaveLength(1);
      await releaseRemediation(stack.client, id, { by: 'jest' });
      expect(await stack.setContents('block')).not.toContain(`${ip}/32`);
    } finally {
      fs.writeFileSync(file, good);
      await git(work, ['-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-q', '-am', 'fixed by hand']);
    }
  });

  it('refuses to start on a working copy with unrelated edits or a missing path, saying why', async () => {
    fs.writeFileSync(path.join(work, 'README.md'), 'unfinished\n');
    try {
      await expect(createPerimeterWorker(stack.config, { log: () => undefined })).rejects.toThrow(
        /has edits that are not the perimeter's \(README.md\)/,
      );
      const cli = await runCli(['worker'], stack.env, 30_000);
      expect(cli.code).toBe(2);
      expect(cli.stderr).toMatch(
        /perimeter: the ledger working copy .* has edits that are not the perimeter's/,
      );
    } finally {
      fs.writeFileSync(path.join(work, 'README.md'), '# perimeter infrastructure\n');
    }
    const missing = await runCli(
      ['worker'],
      { ...stack.env, PERIMETER_LEDGER_PATH: path.join(root, 'nowhere') },
      30_000,
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/PERIMETER_LEDGER_PATH .*nowhere does not exist/);
  });
});
