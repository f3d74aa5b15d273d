/**
 * The IaC ledger against real git: a working copy, a bare remote, and a second clone that
 * commits behind the perimeter's back.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { git } from '../../src/ledger/git';
import { GitLedger, LedgerError } from '../../src/ledger/ledger';
import { IP_SETS_FILE, PATCHES_FILE, type IpChange, type LedgerState } from '../../src/ledger/state';

let root: string;
let n = 0;

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-ledger-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh bare remote and a working copy cloned from it, on branch main with one commit. */
async function repos(): Promise<{ remote: string; work: string; other: string }> {
  const base = path.join(root, `r${++n}`);
  const remote = `${base}-remote.git`;
  const seed = `${base}-seed`;
  await git(root, ['init', '-q', '--bare', '-b', 'main', remote]);
  await git(root, ['init', '-q', '-b', 'main', seed]);
  fs.writeFileSync(path.join(seed, 'README.md'), '# infrastructure\n');
  await git(seed, ['add', 'README.md']);
  await git(seed, ['commit', '-q', '-m', 'start']);
  await git(seed, ['push', '-q', remote, 'main']);
  const work = `${base}-work`;
  const other = `${base}-other`;
  await git(root, ['clone', '-q', remote, work]);
  await git(root, ['clone', '-q', remote, other]);
  return { remote, work, other };
}

const change = (over: Partial<IpChange> = {}): IpChange => ({
  kind: 'ip',
  op: 'applied',
  changeId: `perimeter/ip/203.0.113.7/32/run-1/applied/block`,
  workflowId: 'perimeter/ip/203.0.113.7/32',
  action: 'block',
  cidrs: ['203.0.113.7/32'],
  reason: '40 SQLi probes in 60 s',
  approver: 'alice',
  createdAt: '2026-11-22T10:00:00.000Z',
  expiresAt: '2026-11-22T11:00:00.000Z',
  ...over,
});

const released = (over: Partial<IpChange> = {}) =>
  change({ op: 'released', changeId: 'perimeter/ip/203.0.113.7/32/run-1/released/block', ...over });

async function log(dir: string, ref = 'HEAD'): Promise<string[]> {
  return (await git(dir, ['log', '--format=%s', ref])).trim().split('\n');
}

async function fileAt(dir: string, ref: string, file: string): Promise<LedgerState['ipSets']> {
  return JSON.parse(await git(dir, ['show', `${ref}:${file}`])) as LedgerState['ipSets'];
}

const addresses = (s: LedgerState['ipSets'], set = 'perimeter-block-ipv4') =>
  Object.keys(s.perimeter_ip_sets[set]?.addresses ?? {});

const open = (work: string, remote?: string) =>
  GitLedger.open({ path: work, remote, setPrefix: 'perimeter', retry: { initialMs: 50, maxMs: 200 } });

describe('recording', () => {
  it('commits a block with its address and details, then a release without it', async () => {
    const { work } = await repos();
    const ledger = await open(work);
    const applied = await ledger.record(change());
    expect(applied.committed).toBe(true);
    const sets = await fileAt(work, 'HEAD', IP_SETS_FILE);
    expect(sets.perimeter_ip_sets['perimeter-block-ipv4']).toEqual({
      action: 'block',
      ip_address_version: 'IPV4',
      addresses: {
        '203.0.113.7/32': {
          incident: 'perimeter/ip/203.0.113.7/32',
          action: 'block',
          reason: '40 SQLi probes in 60 s',
          approver: 'alice',
          created: '2026-11-22T10:00:00.000Z',
          expires: '2026-11-22T11:00:00.000Z',
        },
      },
    });
    const message = await git(work, ['log', '-1', '--format=%B']);
    expect(message).toContain('perimeter: block 203.0.113.7/32 applied');
    expect(message).toContain('Incident: perimeter/ip/203.0.113.7/32');
    expect(message).toContain('Approver: alice');

    expect((await ledger.record(released())).committed).toBe(true);
    expect(addresses(await fileAt(work, 'HEAD', IP_SETS_FILE))).toEqual([]);
    expect(await log(work)).toEqual([
      'perimeter: block 203.0.113.7/32 released',
      'perimeter: block 203.0.113.7/32 applied',
      'start',
    ]);
    // No patch has been recorded: no patches file to show.
    expect(fs.existsSync(path.join(work, PATCHES_FILE))).toBe(false);
  });

  it('makes no second commit when the same change is recorded again (an activity retry)', async () => {
    const { work } = await repos();
    const ledger = await open(work);
    const first = await ledger.record(change());
    const again = await ledger.record(change());
    expect(again).toEqual({ committed: false, commit: first.commit });
    expect(await log(work)).toHaveLength(2);
  });

  it('discards a half-written file left by a crashed attempt, and records the change once', async () => {
    const { work } = await repos();
    const ledger = await open(work);
    fs.mkdirSync(path.join(work, 'perimeter'));
    fs.writeFileSync(path.join(work, IP_SETS_FILE), '{"perimeter_ip_s');
    expect((await ledger.record(change())).committed).toBe(true);
    expect(addresses(await fileAt(work, 'HEAD', IP_SETS_FILE))).toEqual(['203.0.113.7/32']);
  });

  it('records concurrent incidents one after another, losing none', async () => {
    const { work } = await repos();
    const ledger = await open(work);
    const ips = Array.from({ length: 12 }, (_, i) => `198.51.100.${i + 1}/32`);
    await Promise.all(
      ips.map((cidr) =>
        ledger.record(
          change({
            changeId: `perimeter/ip/${cidr}/r/applied/block`,
            workflowId: `perimeter/ip/${cidr}`,
            cidrs: [cidr],
          }),
        ),
      ),
    );
    expect(addresses(await fileAt(work, 'HEAD', IP_SETS_FILE)).sort()).toEqual([...ips].sort());
    expect(await log(work)).toHaveLength(13);
    expect((await git(work, ['rev-list', '--merges', '--count', 'HEAD'])).trim()).toBe('0');
  });

  it('keeps an address another incident owns when an incident that did not add it is released', async () => {
    const { work } = await repos();
    const ledger = await open(work);
    await ledger.record(change());
    const campaign = 'perimeter/campaign/waf/2026-11-22T10:00Z';
    const r = await ledger.record(
      released({ workflowId: campaign, changeId: `${campaign}/r/released/block` }),
    );
    expect(r.committed).toBe(false);
    expect(addresses(await fileAt(work, 'HEAD', IP_SETS_FILE))).toEqual(['203.0.113.7/32']);
  });
});

describe('pushing', () => {
  it('pushes each commit to the remote branch', async () => {
    const { work, remote } = await repos();
    const ledger = await open(work, remote);
    await ledger.record(change());
    await ledger.push();
    expect(await log(remote, 'main')).toEqual(['perimeter: block 203.0.113.7/32 applied', 'start']);
    expect(await ledger.unpushed()).toBe(0);
    ledger.close();
  });

  it('rebases onto a remote that moved (someone else committed) and pushes, keeping both', async () => {
    const { work, remote, other } = await repos();
    const ledger = await open(work, remote);
    fs.writeFileSync(path.join(other, 'main.tf'), 'module "perimeter" {}\n');
    await git(other, ['add', 'main.tf']);
    await git(other, ['commit', '-q', '-m', 'someone else']);
    await git(other, ['push', '-q', 'origin', 'main']);

    await ledger.record(change());
    await ledger.push();
    expect(await log(remote, 'main')).toEqual([
      'perimeter: block 203.0.113.7/32 applied',
      'someone else',
      'start',
    ]);
    expect((await git(remote, ['rev-list', '--merges', '--count', 'main'])).trim()).toBe('0');
    ledger.close();
  });

  it('replays its entries when the remote edited the same ledger file', async () => {
    const { work, remote, other } = await repos();
    const ledger = await open(work, remote);
    await ledger.record(change());
    await ledger.push();
    await git(other, ['pull', '-q', 'origin', 'main']);
    // Someone records a block by hand in the ledger file on the remote.
    const file = path.join(other, IP_SETS_FILE);
    const edited = JSON.parse(fs.readFileSync(file, 'utf8')) as LedgerState['ipSets'];
    edited.perimeter_ip_sets['perimeter-block-ipv4']!.addresses['192.0.2.99/32'] = {
      incident: 'by hand',
      action: 'block',
      reason: 'manual',
      approver: 'bob',
      created: '2026-11-22T10:30:00.000Z',
      expires: '2026-11-23T10:30:00.000Z',
    };
    fs.writeFileSync(file, JSON.stringify(edited, null, 2) + '\n');
    await git(other, ['commit', '-q', '-am', 'manual block']);
    await git(other, ['push', '-q', 'origin', 'main']);

    await ledger.record(released());
    await ledger.record(
      change({ changeId: 'x/applied', workflowId: 'perimeter/ip/203.0.113.8/32', cidrs: ['203.0.113.8/32'] }),
    );
    await ledger.push();
    const merged = await fileAt(remote, 'main', IP_SETS_FILE);
    expect(addresses(merged).sort()).toEqual(['192.0.2.99/32', '203.0.113.8/32']);
    expect((await log(remote, 'main')).slice(0, 3)).toEqual([
      'perimeter: block 203.0.113.8/32 applied',
      'perimeter: block 203.0.113.7/32 released',
      'manual block',
    ]);
    ledger.close();
  });

  it('keeps committing while the remote is unreachable, then catches up with backoff', async () => {
    const { work } = await repos();
    const later = path.join(root, `r${++n}-later.git`);
    const logs: string[] = [];
    const ledger = await GitLedger.open({
      path: work,
      remote: later,
      setPrefix: 'perimeter',
      retry: { initialMs: 50, maxMs: 200 },
      log: (m) => logs.push(m),
    });
    expect((await ledger.record(change())).committed).toBe(true);
    expect((await ledger.record(released())).committed).toBe(true);
    await waitFor(() => logs.some((l) => /push to .* failed/.test(l)));
    expect(await ledger.unpushed()).toBe(3);

    await git(root, ['init', '-q', '--bare', '-b', 'main', later]); // the remote comes back
    await waitFor(async () => (await ledger.unpushed()) === 0);
    expect(await log(later, 'main')).toEqual([
      'perimeter: block 203.0.113.7/32 released',
      'perimeter: block 203.0.113.7/32 applied',
      'start',
    ]);
    expect(logs.some((l) => /caught up/.test(l))).toBe(true);
    ledger.close();
  });
});

describe('sharing the ledger', () => {
  it('two workers on one working copy take turns: every entry, one line of history', async () => {
    const { work } = await repos();
    const [a, b] = await Promise.all([open(work), open(work)]);
    const cidrs = Array.from({ length: 6 }, (_, i) => `198.51.100.${i + 1}/32`);
    await Promise.all(
      cidrs.map((cidr, i) =>
        (i % 2 ? a : b).record(
          change({ changeId: `${cidr}/applied`, workflowId: `perimeter/ip/${cidr}`, cidrs: [cidr] }),
        ),
      ),
    );
    expect(addresses(await fileAt(work, 'HEAD', IP_SETS_FILE)).sort()).toEqual([...cidrs].sort());
    expect(await git(work, ['rev-list', '--count', '--merges', 'HEAD'])).toBe('0\n');
    expect(await log(work)).toHaveLength(cidrs.length + 1);
    expect(await git(work, ['status', '--porcelain'])).toBe('');
  });

  it('two workers with clones of one remote: one applies, the other finds the entry there and releases it', async () => {
    const { remote, work, other } = await repos();
    const a = await open(work, remote);
    const b = await open(other, remote);
    await a.record(change());
    await a.push();
    const release = await b.record(released());
    expect(release.committed).toBe(true);
    await b.push();
    expect(addresses(await fileAt(remote, 'main', IP_SETS_FILE))).toEqual([]);
    expect(await log(remote, 'main')).toEqual([
      'perimeter: block 203.0.113.7/32 released',
      'perimeter: block 203.0.113.7/32 applied',
      'start',
    ]);
    a.close();
    b.close();
  });

  it('refuses, retryably, to release an entry it has not seen while the remote cannot be asked', async () => {
    const { work } = await repos();
    const gone = path.join(root, `r${++n}-gone.git`);
    const ledger = await GitLedger.open({
      path: work,
      remote: gone,
      setPrefix: 'perimeter',
      fetchTimeoutMs: 5_000,
    });
    const err = (await ledger.record(released()).catch((e: unknown) => e)) as LedgerError;
    expect(err).toBeInstanceOf(LedgerError);
    expect(err.problem).toBe('behind');
    expect(err.final).toBe(false);
    expect(await log(work)).toEqual(['start']);
    ledger.close();
  });

  it('stops at a hand-made local commit that conflicts with the remote, leaving the branch as it was', async () => {
    const { remote, work, other } = await repos();
    const ledger = await open(work, remote);
    fs.writeFileSync(path.join(other, 'README.md'), '# infrastructure, theirs\n');
    await git(other, ['commit', '-q', '-am', 'theirs']);
    await git(other, ['push', '-q', 'origin', 'main']);
    fs.writeFileSync(path.join(work, 'README.md'), '# infrastructure, mine\n');
    await git(work, ['commit', '-q', '-am', 'mine']);
    const before = (await git(work, ['rev-parse', 'HEAD'])).trim();

    const err = (await ledger.record(change()).catch((e: unknown) => e)) as Error;
    expect(err.message).toMatch(/changes files besides the ledger's and conflicts; rebase it by hand/);
    expect((await git(work, ['rev-parse', 'HEAD'])).trim()).toBe(before);
    expect(await git(work, ['status', '--porcelain'])).toBe('');
    ledger.close();
  });
});

describe('refusing a working copy it cannot use', () => {
  it('names a missing path', async () => {
    await expect(open(path.join(root, 'nowhere'))).rejects.toThrow(/does not exist/);
  });

  it('names a directory that is not a git working copy', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'not-git-'));
    try {
      await expect(open(dir)).rejects.toMatchObject({ problem: 'not-git' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses unrelated edits in the working copy, and changes nothing', async () => {
    const { work } = await repos();
    fs.writeFileSync(path.join(work, 'README.md'), 'edited\n');
    await expect(open(work)).rejects.toThrow(/edits that are not the perimeter's \(README.md\)/);
    const ledger = await (async () => {
      fs.writeFileSync(path.join(work, 'README.md'), '# infrastructure\n');
      return open(work);
    })();
    fs.writeFileSync(path.join(work, 'README.md'), 'edited after start-up\n');
    const err = (await ledger.record(change()).catch((e: unknown) => e)) as LedgerError;
    expect(err).toBeInstanceOf(LedgerError);
    expect(err.problem).toBe('dirty');
    expect(err.final).toBe(false); // retried: whoever edited it may commit or discard the edit
    expect(await log(work)).toEqual(['start']);
    expect(fs.readFileSync(path.join(work, 'README.md'), 'utf8')).toBe('edited after start-up\n');
  });

  it('leaves files git does not track alone, and records beside them', async () => {
    const { work } = await repos();
    fs.writeFileSync(path.join(work, 'notes.txt'), 'mine\n');
    const ledger = await open(work);
    expect((await ledger.record(change())).committed).toBe(true);
    expect(fs.readFileSync(path.join(work, 'notes.txt'), 'utf8')).toBe('mine\n');
    expect(await git(work, ['show', '--name-only', '--format=', 'HEAD'])).toBe(`${IP_SETS_FILE}\n`);
  });

  it('refuses a working copy in the middle of a rebase', async () => {
    const { work } = await repos();
    const gitDir = (await git(work, ['rev-parse', '--absolute-git-dir'])).trim();
    fs.mkdirSync(path.join(gitDir, 'rebase-merge'));
    await expect(open(work)).rejects.toMatchObject({
      problem: 'busy',
      message: expect.stringMatching(/middle of a rebase/),
    });
  });

  it('waits, rather than commit, while a person has another branch checked out or a rebase half done', async () => {
    const { work } = await repos();
    const ledger = await open(work);
    await git(work, ['checkout', '-q', '-b', 'experiment']);
    let err = (await ledger.record(change()).catch((e: unknown) => e)) as LedgerError;
    expect(err).toMatchObject({ problem: 'busy', final: false });
    expect(err.message).toMatch(/has branch experiment checked out, not main/);
    await git(work, ['checkout', '-q', 'main']);

    const gitDir = (await git(work, ['rev-parse', '--absolute-git-dir'])).trim();
    fs.mkdirSync(path.join(gitDir, 'rebase-merge'));
    err = (await ledger.record(change()).catch((e: unknown) => e)) as LedgerError;
    expect(err).toMatchObject({ problem: 'busy', final: false });
    expect(await log(work, 'main')).toEqual(['start']);
    expect(await log(work, 'experiment')).toEqual(['start']);

    fs.rmSync(path.join(gitDir, 'rebase-merge'), { recursive: true });
    expect((await ledger.record(change())).committed).toBe(true);
  });

  it('refuses a ledger file it cannot write', async () => {
    const { work } = await repos();
    fs.mkdirSync(path.join(work, IP_SETS_FILE), { recursive: true });
    await expect(open(work)).rejects.toMatchObject({ problem: 'unwritable' });
  });

  it('refuses a branch other than the configured one', async () => {
    const { work } = await repos();
    await expect(GitLedger.open({ path: work, branch: 'perimeter', setPrefix: 'perimeter' })).rejects.toThrow(
      /on branch main, PERIMETER_LEDGER_BRANCH is perimeter/,
    );
  });
});

async function waitFor(probe: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 25));
  }
}
