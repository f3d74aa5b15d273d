/** Runs git in the ledger's working copy, as the perimeter, never waiting for a person. */
import { execFile } from 'node:child_process';

export class GitError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly code: number | string | undefined,
  ) {
    super(
      `git ${args[0] ?? ''} failed: ${stderr.trim().split('\n').slice(-3).join(' / ') || `exit ${code}`}`,
    );
    this.name = 'GitError';
  }
}

const IDENTITY = {
  GIT_AUTHOR_NAME: 'Self-Healing Perimeter',
  GIT_AUTHOR_EMAIL: 'perimeter@localhost',
  GIT_COMMITTER_NAME: 'Self-Healing Perimeter',
  GIT_COMMITTER_EMAIL: 'perimeter@localhost',
};

export interface GitOptions {
  /** Gives up on a command after this long (a remote that hangs). */
  timeoutMs?: number;
}

export function git(cwd: string, args: string[], options: GitOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
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
  });
}
