/**
 * `tail -F` for log files: reads what is appended, and when the file is rotated (renamed and
 * recreated) or truncated, finishes the old file and carries on from the start of the new one.
 * Polls with stat: it works the same on every filesystem, network mounts included.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';

const POLL_MS = 250;
const CHUNK = 256 * 1024;

export interface FollowOptions {
  /** Start at the beginning of the existing file instead of its end. */
  fromStart: boolean;
  signal: AbortSignal;
  pollMs?: number;
}

export async function followFile(
  path: string,
  onChunk: (chunk: Buffer) => void,
  options: FollowOptions,
): Promise<void> {
  const { signal } = options;
  const buffer = Buffer.alloc(CHUNK);
  let file: FileHandle | undefined;
  let ino = -1;
  let position = 0;
  let first = true;
  const drain = async () => {
    if (!file) return;
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, CHUNK, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      onChunk(Buffer.from(buffer.subarray(0, bytesRead)));
    }
  };
  try {
    while (!signal.aborted) {
      const current = await stat(path).catch(() => undefined);
      if (current && current.ino !== ino) {
        // Rotated: what was written to the old file before the rename still counts.
        await drain();
        await file?.close();
        file = await open(path, 'r').catch(() => undefined);
        ino = file ? current.ino : -1;
        position = first && !options.fromStart ? current.size : 0;
      } else if (current && current.size < position) {
        position = 0; // truncated in place (copytruncate)
      }
      first = false;
      await drain();
      await sleep(options.pollMs ?? POLL_MS, signal);
    }
  } finally {
    await file?.close();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
