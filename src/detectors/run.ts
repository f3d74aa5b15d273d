/**
 * One detector run over log files: read (or follow) → split lines → parse → classify → count.
 * Bad lines are counted by reason and never stop the run. Requests that matched a virtual
 * patch's WAF rule are picked out on the side; they still count like any other request.
 */
import { createReadStream } from 'node:fs';
import { classifyRequest } from './signatures';
import { createLineParser, MAX_LINE_LENGTH } from './parsers';
import { LineSplitter } from './lines';
import { followFile } from './follow';
import { patchMatches } from './patches';
import type { Detector } from './engine';
import type { AttackClass, LogFormat, LogRecord, SkipReason } from './types';

export interface RunStats {
  files: number;
  lines: number;
  records: number;
  /** Lines that matched at least one signature. */
  matches: number;
  byClass: Record<string, number>;
  /** Lines that matched a virtual patch's rule. */
  patchMatches: number;
  skipped: Partial<Record<SkipReason, number>>;
  elapsedMs: number;
}

/** One input line's outcome, for `--test --json`. */
export interface LineOutcome {
  file: string;
  line: number;
  source: string | null;
  classes: AttackClass[];
  skipped?: SkipReason;
  format?: LogFormat;
  /** Finding IDs of the virtual patches whose rule matched the request (only when some did). */
  patches?: string[];
}

export interface RunOptions {
  files: string[];
  format: LogFormat | 'auto';
  follow: boolean;
  /** With `follow`: read what the files already hold first (otherwise only what is appended). */
  fromStart: boolean;
  detector: Detector;
  onLine?: (outcome: LineOutcome, record: LogRecord | undefined) => void;
  /** The deployment's set prefix: which WAF rule names and labels are its virtual patches. */
  patchPrefix?: string;
  /** A request that matched the rules of these virtual patches. */
  onPatchMatch?: (findingIds: string[], record: LogRecord) => void;
  /** Called about every `progressMs` with the stats so far. */
  onProgress?: (stats: RunStats) => void;
  progressMs?: number;
  signal?: AbortSignal;
}

export function emptyStats(): RunStats {
  return {
    files: 0,
    lines: 0,
    records: 0,
    matches: 0,
    byClass: {},
    patchMatches: 0,
    skipped: {},
    elapsedMs: 0,
  };
}

export async function runDetector(options: RunOptions): Promise<RunStats> {
  const stats = emptyStats();
  const started = Date.now();
  const progress = options.onProgress
    ? setInterval(() => {
        stats.elapsedMs = Date.now() - started;
        options.onProgress?.(stats);
      }, options.progressMs ?? 2_000)
    : undefined;
  // While following, held campaign crossings must leave even when no new line arrives.
  const flusher = options.follow ? setInterval(() => options.detector.flush(), 250) : undefined;
  try {
    if (options.follow) {
      const signal = options.signal ?? new AbortController().signal;
      await Promise.all(
        options.files.map((file) => {
          const feed = feeder(file, options, stats);
          return followFile(file, (chunk) => feed.push(chunk), { fromStart: options.fromStart, signal });
        }),
      );
    } else {
      for (const file of options.files) {
        if (options.signal?.aborted) break;
        await readWhole(file, feeder(file, options, stats), options.signal);
      }
    }
    options.detector.flush(true);
  } finally {
    clearInterval(progress);
    clearInterval(flusher);
    stats.elapsedMs = Date.now() - started;
  }
  return stats;
}

/** A per-file pipeline: each file settles its own format under `--format auto`. */
interface Feed {
  push(chunk: Buffer): void;
  end(): void;
}

function feeder(file: string, options: RunOptions, stats: RunStats): Feed {
  stats.files++;
  const parse = createLineParser(options.format);
  let n = 0;
  const splitter = new LineSplitter(MAX_LINE_LENGTH, (line) => {
    n++;
    stats.lines++;
    const result = line === undefined ? ({ ok: false, reason: 'too-long' } as const) : parse(line);
    if (!result.ok) {
      stats.skipped[result.reason] = (stats.skipped[result.reason] ?? 0) + 1;
      options.onLine?.({ file, line: n, source: null, classes: [], skipped: result.reason }, undefined);
      return;
    }
    const { record } = result;
    stats.records++;
    const classes = classifyRequest(record);
    if (classes.length > 0) {
      stats.matches++;
      for (const c of classes) stats.byClass[c] = (stats.byClass[c] ?? 0) + 1;
    }
    const patches = options.patchPrefix === undefined ? [] : patchMatches(record, options.patchPrefix);
    if (patches.length > 0) {
      stats.patchMatches++;
      options.onPatchMatch?.(patches, record);
    }
    const outcome: LineOutcome = { file, line: n, source: record.source, classes, format: record.format };
    if (patches.length > 0) outcome.patches = patches;
    options.onLine?.(outcome, record);
    options.detector.push(record, classes, line as string);
  });
  return { push: (chunk) => splitter.push(chunk), end: () => splitter.end() };
}

async function readWhole(file: string, feed: Feed, signal?: AbortSignal): Promise<void> {
  const stream = createReadStream(file, { highWaterMark: 256 * 1024, ...(signal ? { signal } : {}) });
  for await (const chunk of stream) feed.push(chunk as Buffer);
  feed.end();
}
