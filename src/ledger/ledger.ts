/**
 * The IaC ledger: a git working copy that records every applied and released remediation as a
 * commit, so a team can review, revert and reproduce its perimeter. The WAF is the enforcement
 * and the ledger the record: a remote that cannot be reached is caught up later, never waited on.
 *
 * - One change at a time per working copy (an in-process queue), so concurrent incidents make a
 *   linear history with no lost entries.
 * - A change already committed (its `Perimeter-Change` trailer, or the same content) commits
 *   nothing: an activity's retry makes no second commit.
 * - With a remote, each commit is pushed in the background; a rejected push (someone else
 *   committed) is rebased onto the remote branch and pushed again; an unreachable remote is
 *   retried with exponential backoff.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { git, GitError } from './git';
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
  type Delta,
  type LedgerChange,
  type LedgerState,
} from './state';

export type LedgerProblem = 'missing' | 'not-git' | 'branch' | 'dirty' | 'unwritable' | 'invalid';

/** A ledger that cannot be used as configured: another attempt will not help until someone acts. */
export class LedgerError extends Error {
  constructor(
    readonly problem: LedgerProblem,
    message: string,
  ) {
    super(message);
    this.name = 'LedgerError';
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
const TRAILER = 'Perimeter-Change: ';

export class GitLedger {
  private queue: Promise<unknown> = Promise.resolve();
  private pushing: Promise<void> | undefined;
  private pushAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  /** The last push failure, while the remote is being retried. */
  lastPushError: string | undefined;

  private constructor(
    private readonly o: LedgerOptions,
    readonly branch: string,
  ) {}

  /** Checks the working copy as configured and opens it; a problem is a LedgerError saying what to fix. */
  static async open(options: LedgerOptions): Promise<GitLedger> {
    const dir = options.path;
    const stat = await fs.stat(dir).catch(() => undefined);
    if (!stat?.isDirectory()) {
      throw new LedgerError('missing', `PERIMETER_LEDGER_PATH ${dir} does not exist or is not a directory`);
    }
    let top: string;
    try {
      top = (await git(dir, ['rev-parse', '--show-toplevel'])).trim();
    } catch {
      throw new LedgerError('not-git', `PERIMETER_LEDGER_PATH ${dir} is not a git working copy`);
    }
    const [realTop, realDir] = await Promise.all([fs.realpath(top), fs.realpath(dir)]);
    if (realTop !== realDir) {
      throw new LedgerError(
        'not-git',
        `PERIMETER_LEDGER_PATH ${dir} is inside the git working copy ${top}: point it at the top of the working copy`,
      );
    }
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
    const ledger = new GitLedger(options, branch);
    await ledger.exclusive(async () => {
      await ledger.ensureClean();
      await ledger.ensureWritable();
      await ledger.state(); // the files must parse
    });
    return ledger;
  }

  /** Writes the change into the ledger files and commits it, unless it is there already. */
  record(change: LedgerChange): Promise<RecordResult> {
    const result = this.exclusive(async () => {
      await this.ensureClean();
      const earlier = await this.commitOf(change.changeId);
      if (earlier) return { committed: false, commit: earlier };
      const before = await this.state();
      const after = applyChange(before, change, this.o.setPrefix);
      if (!(await this.write(after))) return { committed: false, commit: undefined };
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
    await this.pushOnce();
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
    this.pushing = this.pushLoop().finally(() => (this.pushing = undefined));
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
        await this.exclusive(() => this.rebaseOntoRemote(remote));
      }
    }
  }

  /**
   * Carries the local commits onto the remote branch. A plain `git rebase` first; if the ledger
   * files conflict (someone edited them there), each local commit's entry-level change is replayed
   * onto the remote's files instead, so both sides' entries survive.
   */
  private async rebaseOntoRemote(remote: string): Promise<void> {
    const dir = this.o.path;
    await git(dir, ['fetch', '-q', remote, `refs/heads/${this.branch}`], {
      timeoutMs: this.o.gitTimeoutMs ?? 60_000,
    });
    const upstream = (await git(dir, ['rev-parse', 'FETCH_HEAD'])).trim();
    await this.ensureClean();
    try {
      await git(dir, ['rebase', '-q', upstream]);
      return;
    } catch {
      await git(dir, ['rebase', '--abort']).catch(() => undefined);
    }
    const mine = (await git(dir, ['rev-list', '--reverse', `${upstream}..HEAD`])).split('\n').filter(Boolean);
    const replay: Array<{ delta: Delta; message: string }> = [];
    for (const commit of mine) {
      const files = (await git(dir, ['diff-tree', '--no-commit-id', '--name-only', '-r', '--root', commit]))
        .split('\n')
        .filter(Boolean);
      const foreign = files.filter((f) => !(LEDGER_FILES as readonly string[]).includes(f));
      if (foreign.length > 0) {
        throw new Error(
          `cannot carry ${commit.slice(0, 12)} onto ${remote}: it conflicts and also changes ${foreign.join(', ')}`,
        );
      }
      const parent = (await git(dir, ['rev-list', '--parents', '-n', '1', commit])).trim().split(' ')[1];
      const before = parent ? await this.stateAt(parent) : emptyState();
      replay.push({
        delta: diffStates(before, await this.stateAt(commit)),
        message: (await git(dir, ['log', '-1', '--format=%B', commit])).trimEnd(),
      });
    }
    await git(dir, ['reset', '-q', '--hard', upstream]);
    for (const { delta, message } of replay) {
      const before = await this.state();
      if (await this.write(applyDelta(before, delta))) {
        await git(dir, ['commit', '-q', '-m', message]);
      }
    }
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
    const out = await git(this.o.path, ['status', '--porcelain=v1', '-z', '--untracked-files=all']);
    const items = out.split('\0').filter(Boolean);
    const others: string[] = [];
    const ours: string[] = [];
    for (let i = 0; i < items.length; i++) {
      const item = items[i] ?? '';
      const file = item.slice(3);
      if (item[0] === 'R' || item[0] === 'C') i++; // a rename's source follows
      ((LEDGER_FILES as readonly string[]).includes(file) ? ours : others).push(file);
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

  /** The commit whose message carries this change ID, if any of the recent ones does. */
  private async commitOf(changeId: string): Promise<string | undefined> {
    if (!(await this.head())) return undefined;
    const line = `${TRAILER}${changeId}`;
    const out = await git(this.o.path, ['log', '-n', '1000', '--format=%H', '-F', `--grep=${line}`]);
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

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private log(message: string): void {
    this.o.log?.(message);
  }
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
