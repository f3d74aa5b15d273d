/** Runs git in the ledger's working copy, as the perimeter, never waiting for a person. */
import { execFile } from 'node:child_process';

export class GitError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly code: number | string | undefined,
  ) {
    super(
      `git ${command(args)} failed: ${stderr.trim().split('\n').slice(-3).join(' / ') || `exit ${code}`}`,
    );
    this.name = 'GitError';
  }
}

/** The git command's name among its arguments (`-c key=value` settings come first). */
function command(args: string[]): string {
  return args.find((a, i) => !a.startsWith('-') && args[i - 1] !== '-c') ?? '';
}

const IDENTITY = {
  GIT_AUTHOR_NAME: 'Self-Healing Perimeter',
  GIT_AUTHOR_EMAIL: 'perimeter@localhost',
  GIT_COMMITTER_NAME: 'Self-Healing Perimeter',
  GIT_COMMITTER_EMAIL: 'perimeter@localhost',
};

/**
 * Nothing of the host's git set-up may stop a commit: no hooks, no signing (which would ask for a
 * key), no pager.
 */
const SETTINGS = ['-c', 'core.hooksPath=/dev/null', '-c', 'commit.gpgSign=false', '--no-pager'];

export interface GitOptions {
  /** Gives up on a command after this long (a remote that hangs). */
  timeoutMs?: number;
  /** Extra environment (a temporary index, a commit's original author). */
  env?: Record<string, string>;
  /** Written to the command's standard input. */
  input?: string;
}

export function git(cwd: string, args: string[], options: GitOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      [...SETTINGS, ...args],
      {
        cwd,
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: {
          ...process.env,
          ...IDENTITY,
          // Never ask for a password on a terminal: fail, and let the pusher retry.
          GIT_TERMINAL_PROMPT: '0',
          LC_ALL: 'C',
          ...options.env,
        },
      },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as { code?: number | string }).code;
          reject(new GitError(args, String(stderr || err.message), code));
        } else {
          resolve(String(stdout));
        }
      },
    );
    // Nothing waits on a person's input: without any, standard input is closed at once. A command
    // that exits before reading it (EPIPE) reports through its exit status, not this stream.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input ?? '');
  });
}
