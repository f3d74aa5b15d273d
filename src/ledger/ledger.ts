/**
 * The IaC ledger: a git working copy that records every applied and released remediation as a
 * commit, so a team can review, revert and reproduce its perimeter. The WAF is the enforcement
 * and the ledger the record: a remote that cannot be reached is caught up later, never waited on.
 *
 * - One change at a time per working copy: an in-process queue, and a lock file in the git
 *   directory for workers that share the working copy. Concurrent incidents make a linear history
 *   with no lost entries.
 * - A change already committed (its `Perimeter-Change` trailer, or the same content) commits
 *   nothing: an activity's retry makes no second commit.
 * - With a remote, each change is first put on top of what the remote has (workers with working
 *   copies of their own see each other's entries: one applies, another may release), and each
 *   commit is pushed in the background. A rejected push (someone else committed) carries the local
 *   commits onto the remote branch, entry by entry, and pushes again; an unreachable remote is
 *   retried with exponential backoff.
 * - The branch moves only once a carried-over history is complete: a crash part way leaves the
 *   local commits where they were.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { SharedRead } from '../waf/shared-read';
import { git, GitError } from './git';
import { LockBusy, withFileLock } from './lock';
import {
  applyChange,
  applyDelta,
  commitMessage,
  diffStates,
  emptyState,
  IP_SETS_FILE,
  LEDGER_FILES,
  parseState,
  PATCHES_FILE,
  serialise,
  type LedgerChange,
  type LedgerState,
} from './state';

export type LedgerProblem =
  'missing' | 'not-git' | 'branch' | 'dirty' | 'busy' | 'behind' | 'unwritable' | 'invalid';

/** Problems that can clear up by themselves (someone commits their edit, a lock is let go, the remote comes back). */
const PASSING: readonly LedgerProblem[] = ['dirty', 'busy', 'behind'];

/** A ledger that cannot be used as configured, saying what to fix. */
export class LedgerError extends Error {
  constructor(
    readonly problem: LedgerProblem,
    message: string,
  ) {
    super(message);
    this.name = 'LedgerError';
  }

  /** Another attempt will not help until someone acts (a missing path, an unwritable file). */
  get final(): boolean {
    return !PASSING.includes(this.problem);
  }
}

export interface LedgerOptions {
  /** The working copy (its top directory). */
  path: string;
  /** Where commits are pushed (a URL or a path); none: commits stay local. */
  remote?: string | undefined;
  /** The branch committed to and pushed; default: the working copy's current branch. */
  branch?: string | undefined;
  /** The managed sets' name prefix (the ledger's set names are `<prefix>-<action>-<family>`). */
  setPrefix: string;
  /** Backoff between push attempts to a remote that fails: from `initialMs`, doubling, up to `maxMs`. */
  retry?: { initialMs: number; maxMs: number };
  /** A git command (a push to a hanging remote) is given up after this long. */
  gitTimeoutMs?: number;
  /** How long a change waits for the remote's branch before it is recorded without it. */
  fetchTimeoutMs?: number;
  /** How long a change waits for another worker's turn on a shared working copy. */
  lockWaitMs?: number;
  log?: (message: string) => void;
}

export interface RecordResult {
  /** A new commit was made for this change. */
  committed: boolean;
  /** The commit that holds the change (new, or the one a previous attempt made); none if nothing changed. */
  commit: string | undefined;
}

/** Where the last pushed commit is remembered, to count what is still to push. */
const PUSHED_REF = 'refs/perimeter/pushed';
/** The remote's branch as last fetched. */
const UPSTREAM_REF = 'refs/perimeter/upstream';
const TRAILER = 'Perimeter-Change: ';
/** How far back a change's commit is looked for: an activity is retried for minutes, not weeks. */
const RETRY_HORIZON = '7.days.ago';

type Fetched = { upstream?: string; error?: string };

export class GitLedger {
  private queue: Promise<unknown> = Promise.resolve();
  private pushing: Promise<void> | undefined;
  private pushAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  /** The last push failure, while the remote is being retried. */
  lastPushError: string | undefined;

  private readonly fetches = new SharedRead<Fetched>(() => this.fetchUpstream());

  private readonly lockFile: string;

  private constructor(
    private readonly o: LedgerOptions,
    readonly branch: string,
    private readonly gitDir: string,
  ) {
    this.lockFile = path.join(gitDir, 'perimeter-ledger.lock');
  }

  /** Checks the working copy as configured and opens it; a problem is a LedgerError saying what to fix. */
  static async open(options: LedgerOptions): Promise<GitLedger> {
    const dir = options.path;
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory()) {
      throw new LedgerError('missing', `PERIMETER_LEDGER_PATH ${dir} does not exist or is not a directory`);
    }
    let top: string;
    let gitDir: string;
    try {
      top = (await git(dir, ['rev-parse', '--show-toplevel'])).trim();
      gitDir = (await git(dir, ['rev-parse', '--absolute-git-dir'])).trim();
    } catch (err) {
      throw new LedgerError(
        'not-git',
        `PERIMETER_LEDGER_PATH ${dir} is not a git working copy (${(err as Error).message})`,
      );
    }
    const [realTop, realDir] = await Promise.all([fs.realpath(top), fs.realpath(dir)]);
    if (realTop !== realDir) {
      throw new LedgerError(
        'not-git',
        `PERIMETER_LEDGER_PATH ${dir} is inside the git working copy ${top}: point it at the top of the working copy`,
      );
    }
    await ensureNothingInProgress(dir, gitDir);
    let branch: string;
    try {
      branch = (await git(dir, ['symbolic-ref', '--short', '-q', 'HEAD'])).trim();
    } catch {
      throw new LedgerError(
        'branch',
        `the ledger working copy ${dir} has no branch checked out (detached HEAD)`,
      );
    }
    if (options.branch && options.branch !== branch) {
      throw new LedgerError(
        'branch',
        `the ledger working copy ${dir} is on branch ${branch}, PERIMETER_LEDGER_BRANCH is ${options.branch}: check out ${options.branch} there`,
      );
    }
    const ledger = new GitLedger(options, branch, gitDir);
    try {
      await ledger.exclusive(async () => {
        await ledger.ensureClean();
        await ledger.ensureWritable();
        await ledger.state(); // the files must parse
      });
    } catch (err) {
      if (err instanceof GitError) {
        throw new LedgerError('busy', `git cannot work in the ledger working copy ${dir}: ${err.message}`);
      }
      throw err;
    }
    return ledger;
  }

  /**
   * Writes the change into the ledger files and commits it, unless it is there already. With a
   * remote, the change goes on top of what the remote has.
   */
  async record(change: LedgerChange): Promise<RecordResult> {
    const fetched: Fetched = this.o.remote ? await this.fetches.get() : {};
    const result = this.exclusive(async () => {
      await this.ensureClean();
      if (fetched.upstream) await this.integrate(fetched.upstream);
      const earlier = await this.commitOf(change.changeId);
      if (earlier) return { committed: false, commit: earlier };
      const before = await this.state();
      const after = applyChange(before, change, this.o.setPrefix);
      if (!(await this.write(after))) {
        // An entry another worker made may be on the remote, which could not be asked: try again later.
        if (fetched.error && change.op !== 'applied' && lacksEntry(before, change, this.o.setPrefix)) {
          throw new LedgerError(
            'behind',
            `the ledger has no entry for this ${change.op} change and ${this.o.remote} could not be reached to look there (${fetched.error})`,
          );
        }
        return { committed: false, commit: undefined };
      }
      await git(this.o.path, ['commit', '-q', '-m', commitMessage(change)]);
      return { committed: true, commit: await this.head() };
    });
    void result.then(
      () => this.kick(),
      () => undefined,
    );
    return result;
  }

  /** The ledger as the working copy has it now. */
  async state(): Promise<LedgerState> {
    const [ipSets, patches] = await Promise.all(LEDGER_FILES.map((f) => this.readFile(f)));
    try {
      return parseState(ipSets, patches);
    } catch (err) {
      throw new LedgerError('invalid', `the ledger in ${this.o.path}: ${(err as Error).message}`);
    }
  }

  /** Commits not yet on the remote (all of them before the first push). */
  async unpushed(): Promise<number> {
    if (!this.o.remote || !(await this.head())) return 0;
    const pushed = await git(this.o.path, ['rev-parse', '-q', '--verify', PUSHED_REF]).catch(() => '');
    const range = pushed.trim() ? `${pushed.trim()}..HEAD` : 'HEAD';
    return Number((await git(this.o.path, ['rev-list', '--count', range])).trim());
  }

  /** Pushes now and waits for it (tests, shutdown); a failure is thrown, and retried in the background. */
  async push(): Promise<void> {
    if (!this.o.remote) return;
    while (this.pushing) await this.pushing;
    if (this.retryTimer) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    const once = this.pushOnce();
    // Background pushes wait for this one rather than run beside it.
    const settled = once.then(
      () => undefined,
      () => undefined,
    );
    const running: Promise<void> = settled.finally(() => {
      if (this.pushing === running) this.pushing = undefined;
    });
    this.pushing = running;
    await once;
    this.failures = 0;
    this.lastPushError = undefined;
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  /** Starts a background push unless one is running (it then goes round again) or waiting to retry. */
  kick(): void {
    if (!this.o.remote || this.closed) return;
    if (this.pushing) {
      this.pushAgain = true;
      return;
    }
    if (this.retryTimer) return; // the backoff timer pushes everything when it fires
    const running: Promise<void> = this.pushLoop().finally(() => {
      if (this.pushing === running) this.pushing = undefined;
    });
    this.pushing = running;
  }

  private async pushLoop(): Promise<void> {
    do {
      this.pushAgain = false;
      try {
        await this.pushOnce();
        if (this.failures > 0)
          this.log(`ledger: caught up with ${this.o.remote} after ${this.failures} failed pushes`);
        this.failures = 0;
        this.lastPushError = undefined;
      } catch (err) {
        this.failures++;
        const { initialMs, maxMs } = this.o.retry ?? { initialMs: 1_000, maxMs: 300_000 };
        const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures - 1, 20));
        this.lastPushError = (err as Error).message;
        this.log(`ledger: push to ${this.o.remote} failed (${this.lastPushError}); retrying in ${delay} ms`);
        if (this.closed) return;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, delay);
        this.retryTimer.unref();
        return;
      }
    } while (this.pushAgain && !this.closed);
  }

  /** One push of the current head; a rejection (the remote moved) rebases and tries again. */
  private async pushOnce(): Promise<void> {
    const remote = this.o.remote;
    if (!remote) return;
    for (let round = 1; ; round++) {
      const head = await this.head();
      if (!head) return; // nothing committed yet
      try {
        await git(this.o.path, ['push', '-q', remote, `${head}:refs/heads/${this.branch}`], {
          timeoutMs: this.o.gitTimeoutMs ?? 60_000,
        });
        await git(this.o.path, ['update-ref', PUSHED_REF, head]);
        return;
      } catch (err) {
        if (!(err instanceof GitError) || !/non-fast-forward|fetch first|\[rejected\]/.test(err.stderr))
          throw err;
        if (round >= 5) throw new Error(`push still rejected after ${round} rebases`);
        this.log(`ledger: ${remote} has commits this working copy lacks; rebasing onto them`);
        const { upstream, error } = await this.fetches.get();
        if (error) throw new Error(error);
        if (!upstream) throw err;
        await this.exclusive(async () => {
          await this.ensureClean();
          await this.integrate(upstream);
        });
      }
    }
  }

  /** The remote's branch, fetched; an error says why it could not be (the ledger goes on without it). */
  private async fetchUpstream(): Promise<Fetched> {
    const remote = this.o.remote;
    if (!remote) return {};
    try {
      await git(
        this.o.path,
        ['fetch', '-q', '--no-tags', remote, `+refs/heads/${this.branch}:${UPSTREAM_REF}`],
        {
          timeoutMs: this.o.fetchTimeoutMs ?? 15_000,
        },
      );
    } catch (err) {
      // A remote without the branch yet: the first push creates it.
      if (err instanceof GitError && /couldn't find remote ref/i.test(err.stderr)) return {};
      return { error: (err as Error).message };
    }
    return { upstream: (await git(this.o.path, ['rev-parse', UPSTREAM_REF])).trim() };
  }

  /**
   * Puts the local branch on top of the remote's (working copy clean, under the lock): nothing to
   * do when it already is, a fast-forward when only the remote moved, otherwise the local commits
   * are carried over.
   */
  private async integrate(upstream: string): Promise<void> {
    const dir = this.o.path;
    const head = await this.head();
    if (!head) {
      await git(dir, ['reset', '-q', '--hard', upstream]);
      return;
    }
    if (head === upstream || (await this.isAncestor(upstream, head))) return;
    if (await this.isAncestor(head, upstream)) {
      await git(dir, ['merge', '-q', '--ff-only', upstream]);
      return;
    }
    await this.carryOnto(upstream, head);
  }

  /**
   * Carries the local commits onto the remote branch that moved. Each commit's entry-level change
   * is replayed onto the remote's files, so both sides' entries survive even where someone edited
   * the same file there. The new commits are built beside the working copy (a private index) and
   * the branch moves to them only at the end: a failure or a crash part way leaves it as it was.
   * Local commits that also change other files (made by a person) go through a plain rebase.
   */
  private async carryOnto(upstream: string, head: string): Promise<void> {
    const dir = this.o.path;
    const mine = (await git(dir, ['rev-list', '--reverse', `${upstream}..${head}`]))
      .split('\n')
      .filter(Boolean);
    for (const commit of mine) {
      const files = (await git(dir, ['diff-tree', '--no-commit-id', '--name-only', '-r', '--root', commit]))
        .split('\n')
        .filter(Boolean);
      if (files.some((f) => !(LEDGER_FILES as readonly string[]).includes(f))) {
        await this.plainRebase(upstream, commit);
        return;
      }
    }
    let parent = upstream;
    let state = await this.stateAt(upstream);
    for (const commit of mine) {
      const before = await this.stateAt(`${commit}^`).catch(() => emptyState());
      const next = applyDelta(state, diffStates(before, await this.stateAt(commit)));
      const tree = await this.treeFor(parent, next);
      if (tree === (await git(dir, ['rev-parse', `${parent}^{tree}`])).trim()) continue; // already there
      const [name, email, date, ...body] = (
        await git(dir, ['log', '-1', '--format=%an%x00%ae%x00%aI%x00%B', commit])
      ).split('\0');
      parent = (
        await git(dir, ['commit-tree', tree, '-p', parent, '-F', '-'], {
          input: body.join('\0').trimEnd() + '\n',
          env: { GIT_AUTHOR_NAME: name ?? '', GIT_AUTHOR_EMAIL: email ?? '', GIT_AUTHOR_DATE: date ?? '' },
        })
      ).trim();
      state = next;
    }
    // Moves only if nobody moved it meanwhile; the working copy then follows.
    await git(dir, ['update-ref', `refs/heads/${this.branch}`, parent, head]);
    await git(dir, ['reset', '-q', '--hard', parent]);
  }

  /** A person's local commit goes through `git rebase`; a conflict, or ledger files that no longer parse, undo it. */
  private async plainRebase(upstream: string, culprit: string): Promise<void> {
    const dir = this.o.path;
    try {
      await git(dir, ['rebase', '-q', upstream]);
    } catch {
      await git(dir, ['rebase', '--abort']).catch(() => undefined);
      throw new Error(
        `cannot carry ${culprit.slice(0, 12)} onto ${this.o.remote}: it changes files besides the ledger's and conflicts; rebase it by hand`,
      );
    }
    try {
      await this.state();
    } catch (err) {
      await git(dir, ['reset', '-q', '--hard', 'ORIG_HEAD']);
      throw new Error(
        `rebasing onto ${this.o.remote} left ledger files that do not parse: ${(err as Error).message}`,
      );
    }
  }

  /** The tree of `parent` with the ledger files holding `state`, written through a private index. */
  private async treeFor(parent: string, state: LedgerState): Promise<string> {
    const dir = this.o.path;
    const index = `${this.lockFile}.index`;
    const env = { GIT_INDEX_FILE: index };
    try {
      await git(dir, ['read-tree', parent], { env });
      for (const [file, section] of [
        [IP_SETS_FILE, state.ipSets],
        [PATCHES_FILE, state.patches],
      ] as const) {
        const there = await git(dir, ['cat-file', '-e', `${parent}:${file}`]).then(
          () => true,
          () => false,
        );
        if (!there && isEmpty(section)) continue;
        const blob = (await git(dir, ['hash-object', '-w', '--stdin'], { input: serialise(section) })).trim();
        await git(dir, ['update-index', '--add', '--cacheinfo', `100644,${blob},${file}`], { env });
      }
      return (await git(dir, ['write-tree'], { env })).trim();
    } finally {
      await fs.rm(index, { force: true });
    }
  }

  private isAncestor(a: string, b: string): Promise<boolean> {
    return git(this.o.path, ['merge-base', '--is-ancestor', a, b]).then(
      () => true,
      () => false,
    );
  }

  /** Writes the files that differ; false when nothing does. */
  private async write(after: LedgerState): Promise<boolean> {
    const files: Array<[string, unknown]> = [
      [IP_SETS_FILE, after.ipSets],
      [PATCHES_FILE, after.patches],
    ];
    let changed = false;
    for (const [file, b] of files) {
      const text = serialise(b);
      const current = await this.readFile(file);
      // A file that is not there yet is created only once it has something to hold.
      if (current === text || (current === undefined && isEmpty(b))) continue;
      try {
        await fs.mkdir(path.join(this.o.path, path.dirname(file)), { recursive: true });
        await fs.writeFile(path.join(this.o.path, file), text);
      } catch (err) {
        throw asWriteProblem(err, file);
      }
      await git(this.o.path, ['add', '--', file]);
      changed = true;
    }
    return changed;
  }

  /** Only the ledger's own files may differ from the last commit; leftovers of a crashed attempt are discarded. */
  private async ensureClean(): Promise<void> {
    // A person at work in the working copy (a rebase, another branch checked out): wait for them.
    await ensureNothingInProgress(this.o.path, this.gitDir);
    const on = await git(this.o.path, ['symbolic-ref', '--short', '-q', 'HEAD']).catch(() => '');
    if (on.trim() !== this.branch) {
      throw new LedgerError(
        'busy',
        `the ledger working copy ${this.o.path} has ${on.trim() ? `branch ${on.trim()}` : 'a detached HEAD'} checked out, not ${this.branch}: check ${this.branch} out again there`,
      );
    }
    const out = await git(this.o.path, ['status', '--porcelain=v1', '-z', '--untracked-files=all']);
    const items = out.split('\0').filter(Boolean);
    const others: string[] = [];
    const ours: string[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i] ?? '';
      const file = item.slice(3);
      if (item[0] === 'R' || item[0] === 'C') i++; // a rename's source follows
      if ((LEDGER_FILES as readonly string[]).includes(file)) ours.push(file);
      // A file git does not track (an editor's swap file, .terraform/) is never committed or touched.
      else if (!item.startsWith('??')) others.push(file);
    }
    if (others.length > 0) {
      throw new LedgerError(
        'dirty',
        `the ledger working copy ${this.o.path} has edits that are not the perimeter's (${others.slice(0, 5).join(', ')}${others.length > 5 ? ', …' : ''}): commit or discard them`,
      );
    }
    for (const file of ours) {
      const tracked = await git(this.o.path, ['cat-file', '-e', `HEAD:${file}`]).then(
        () => true,
        () => false,
      );
      if (tracked) await git(this.o.path, ['checkout', '-q', 'HEAD', '--', file]);
      else {
        await git(this.o.path, ['rm', '-q', '--cached', '--ignore-unmatch', '--', file]);
        await fs.rm(path.join(this.o.path, file), { force: true });
      }
    }
  }

  private async ensureWritable(): Promise<void> {
    for (const file of LEDGER_FILES) {
      const full = path.join(this.o.path, file);
      const existing = await fs.stat(full).catch(() => undefined);
      if (existing && !existing.isFile()) {
        throw new LedgerError('unwritable', `cannot write the ledger file ${file}: it is not a file`);
      }
      let target = existing ? full : path.dirname(full);
      if (!existing && !(await fs.stat(target).catch(() => undefined))) target = this.o.path;
      try {
        await fs.access(target, fs.constants.W_OK);
      } catch (err) {
        throw asWriteProblem(err, file);
      }
    }
  }

  /** The commit whose message carries this change ID, among those of the last days (retries come within minutes). */
  private async commitOf(changeId: string): Promise<string | undefined> {
    if (!(await this.head())) return undefined;
    const line = `${TRAILER}${changeId}`;
    const out = await git(this.o.path, [
      'log',
      `--since=${RETRY_HORIZON}`,
      '--format=%H',
      '-F',
      `--grep=${line}`,
    ]);
    for (const sha of out.split('\n').filter(Boolean)) {
      const body = await git(this.o.path, ['log', '-1', '--format=%B', sha]);
      if (body.split('\n').includes(line)) return sha;
    }
    return undefined;
  }

  private async stateAt(rev: string): Promise<LedgerState> {
    const show = (file: string) =>
      git(this.o.path, ['show', `${rev}:${file}`]).then(
        (text) => text,
        () => undefined,
      );
    return parseState(await show(IP_SETS_FILE), await show(PATCHES_FILE));
  }

  private async head(): Promise<string | undefined> {
    const out = await git(this.o.path, ['rev-parse', '-q', '--verify', 'HEAD']).catch(() => '');
    return out.trim() || undefined;
  }

  private async readFile(file: string): Promise<string | undefined> {
    try {
      return await fs.readFile(path.join(this.o.path, file), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw asWriteProblem(err, file);
    }
  }

  /** One at a time: in this process through the queue, across processes through the lock file. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const locked = () =>
      withFileLock(this.lockFile, fn, { waitMs: this.o.lockWaitMs ?? 30_000 }).catch((err: unknown) => {
        if (err instanceof LockBusy) {
          throw new LedgerError(
            'busy',
            `${err.message}: another worker is writing; remove the file if none is`,
          );
        }
        throw err;
      });
    const run = this.queue.then(locked, locked);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private log(message: string): void {
    this.o.log?.(message);
  }
}

/** A rebase, merge or cherry-pick someone left half done: the perimeter does not commit into it. */
async function ensureNothingInProgress(dir: string, gitDir: string): Promise<void> {
  for (const [marker, what] of [
    ['rebase-merge', 'a rebase'],
    ['rebase-apply', 'a rebase'],
    ['MERGE_HEAD', 'a merge'],
    ['CHERRY_PICK_HEAD', 'a cherry-pick'],
    ['REVERT_HEAD', 'a revert'],
  ] as const) {
    if (await fs.stat(path.join(gitDir, marker)).catch(() => undefined)) {
      throw new LedgerError(
        'busy',
        `the ledger working copy ${dir} is in the middle of ${what}: finish or abort it there`,
      );
    }
  }
}

/** A release or extension whose addresses (or patch) the ledger has no entry for at all. */
function lacksEntry(state: LedgerState, change: LedgerChange, prefix: string): boolean {
  if (change.kind === 'patch') return !state.patches.virtual_patches[change.findingId];
  const sets = state.ipSets.perimeter_ip_sets;
  return change.cidrs.some((cidr) =>
    Object.entries(sets).every(([name, set]) => !name.startsWith(`${prefix}-`) || !set.addresses[cidr]),
  );
}

function isEmpty(section: unknown): boolean {
  return Object.values(section as Record<string, object>).every((v) => Object.keys(v).length === 0);
}

function asWriteProblem(err: unknown, file: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'EISDIR' || code === 'ENOTDIR') {
    return new LedgerError('unwritable', `cannot write the ledger file ${file}: ${code}`);
  }
  return err as Error;
}
