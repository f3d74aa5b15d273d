import { appendFileSync, mkdtempSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followFile } from '../../src/detectors/follow';
import { LineSplitter } from '../../src/detectors/lines';

function split(chunks: Array<string | Buffer>, max = 20): Array<string | undefined> {
  const lines: Array<string | undefined> = [];
  const s = new LineSplitter(max, (l) => lines.push(l));
  for (const c of chunks) s.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
  s.end();
  return lines;
}

async function until(check: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('LineSplitter', () => {
  it('joins lines split across chunks and strips CRLF', () => {
    expect(split(['first li', 'ne\r\nsecond\n', 'third'])).toEqual(['first line', 'second', 'third']);
  });

  it('keeps a multi-byte character split between chunks intact', () => {
    const bytes = Buffer.from('café\n');
    expect(split([bytes.subarray(0, 4), bytes.subarray(4)])).toEqual(['café']);
  });

  it('reports an over-long line once, without keeping it, and carries on', () => {
    const huge = 'x'.repeat(100);
    expect(split(['ok\n', huge.slice(0, 50), huge.slice(50), '\nafter\n'])).toEqual([
      'ok',
      undefined,
      'after',
    ]);
    expect(split([huge])).toEqual([undefined]);
  });
});

describe('followFile (tail -F)', () => {
  it('reads appended lines, follows a rotation and a truncation, and stops on abort', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'follow-'));
    const path = join(dir, 'access.log');
    writeFileSync(path, 'old line, before following\n');
    const lines: Array<string | undefined> = [];
    const splitter = new LineSplitter(1_000, (l) => lines.push(l));
    const abort = new AbortController();
    const done = followFile(path, (c) => splitter.push(c), {
      fromStart: false,
      signal: abort.signal,
      pollMs: 20,
    });

    await new Promise((r) => setTimeout(r, 60));
    appendFileSync(path, 'one\ntwo\n');
    await until(() => lines.length === 2, 'appended lines');

    appendFileSync(path, 'written just before rotation\n');
    renameSync(path, `${path}.1`);
    writeFileSync(path, 'first in new file\n');
    await until(() => lines.length === 4, 'rotated file');

    truncateSync(path, 0);
    await new Promise((r) => setTimeout(r, 60));
    appendFileSync(path, 'after truncation\n');
    await until(() => lines.length === 5, 'truncated file');

    abort.abort();
    await done;
    expect(lines).toEqual([
      'one',
      'two',
      'written just before rotation',
      'first in new file',
      'after truncation',
    ]);
  });

  it('waits for a file that does not exist yet and reads it from its start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'follow-'));
    const path = join(dir, 'later.log');
    const chunks: string[] = [];
    const abort = new AbortController();
    const done = followFile(path, (c) => chunks.push(c.toString()), {
      fromStart: false,
      signal: abort.signal,
      pollMs: 20,
    });
    await new Promise((r) => setTimeout(r, 60));
    writeFileSync(path, 'hello\n');
    await until(() => chunks.join('') === 'hello\n', 'the new file');
    abort.abort();
    await done;
  });
});
