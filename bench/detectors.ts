/**
 * Detector benchmarks that need no stack: (a) throughput of parse + classify over generated
 * access logs in each supported format, on this one process; (b) detection quality on labelled
 * requests (./detectors-quality).
 */
import { performance } from 'node:perf_hooks';
import { createLineParser } from '../src/detectors/parsers';
import { classifyRequest } from '../src/detectors/signatures';
import type { AttackClass, LogFormat } from '../src/detectors/types';
import { generatedAttacks, scannerRequests, type LabelledAttack } from './corpus-attacks';
import { benignRequest } from './corpus-benign';
import { benchDetectionQuality } from './detectors-quality';
import { albLine, clientIp, combinedLine, wafLine, type LineContext } from './log-lines';
import { Rng } from './rng';

const LINES = Number(process.env.BENCH_DETECTOR_LINES ?? 500_000);
/** Share of attack lines in the generated logs: a site under a light, steady scan. */
const ATTACK_SHARE = 0.03;
const TARGET_LINES_PER_SECOND = 100_000;

type Writer = (rng: Rng, attack: LabelledAttack | undefined, c: LineContext) => string;

const WRITERS: Record<LogFormat, Writer> = {
  combined: (rng, attack, c) => combinedLine(attack ?? benignRequest(rng), c),
  alb: (rng, attack, c) => albLine(attack ?? benignRequest(rng), c),
  'aws-waf': (rng, attack, c) => wafLine(attack ?? benignRequest(rng), c, attack?.expected),
};

function attackPool(rng: Rng): LabelledAttack[] {
  const pool: LabelledAttack[] = [];
  for (const cls of ['sqli', 'xss', 'traversal'] as const) pool.push(...generatedAttacks(cls, rng));
  pool.push(...scannerRequests(rng, 100));
  return pool;
}

function generateLines(format: LogFormat, n: number): string[] {
  const rng = new Rng(7_000 + format.length);
  const pool = attackPool(rng);
  const ips = Array.from({ length: 5_000 }, () => clientIp(rng));
  const lines: string[] = new Array<string>(n);
  let at = Date.UTC(2024, 4, 1, 8, 0, 0);
  for (let i = 0; i < n; i++) {
    at += rng.int(40);
    const attack = rng.chance(ATTACK_SHARE) ? rng.pick(pool) : undefined;
    const status = attack ? rng.pick([200, 403, 404, 500]) : rng.pick([200, 200, 200, 200, 304, 301, 404]);
    const c: LineContext = { ip: rng.pick(ips), at, status, bytes: 200 + rng.int(60_000) };
    lines[i] = WRITERS[format](rng, attack, c);
  }
  return lines;
}

interface PassResult {
  ms: number;
  records: number;
  flagged: number;
  byClass: Map<AttackClass, number>;
}

function pass(format: LogFormat, lines: readonly string[], classify: boolean): PassResult {
  const parse = createLineParser(format);
  const byClass = new Map<AttackClass, number>();
  let records = 0;
  let flagged = 0;
  const start = performance.now();
  for (const line of lines) {
    const result = parse(line);
    if (!result.ok) continue;
    records++;
    if (!classify) continue;
    const classes = classifyRequest(result.record);
    if (classes.length === 0) continue;
    flagged++;
    for (const c of classes) byClass.set(c, (byClass.get(c) ?? 0) + 1);
  }
  return { ms: performance.now() - start, records, flagged, byClass };
}

const rate = (n: number, ms: number): string =>
  `${Math.round((n / ms) * 1000).toLocaleString('en-US')} lines/s`;

function benchThroughput(format: LogFormat): void {
  const lines = generateLines(format, LINES);
  const avgLength = Math.round(lines.reduce((s, l) => s + l.length, 0) / lines.length);
  // Warm up both paths so the JIT has compiled them before anything is timed.
  const warm = lines.slice(0, Math.min(50_000, lines.length));
  pass(format, warm, true);
  pass(format, warm, false);
  const parseOnly = pass(format, lines, false);
  const full = pass(format, lines, true);
  const classes = [...full.byClass].map(([c, n]) => `${c} ${n}`).join(', ');
  const verdict = (lines.length / full.ms) * 1000 >= TARGET_LINES_PER_SECOND ? 'meets' : 'BELOW';
  console.log(
    `  ${format.padEnd(8)} ${lines.length.toLocaleString('en-US')} lines (avg ${avgLength} chars): ` +
      `parse ${rate(lines.length, parseOnly.ms)}; parse + classify ${rate(lines.length, full.ms)} ` +
      `(${verdict} ${TARGET_LINES_PER_SECOND.toLocaleString('en-US')}/s); classify ≈ ` +
      `${(((full.ms - parseOnly.ms) * 1000) / full.records).toFixed(2)} µs/record`,
  );
  console.log(
    `           ${full.records.toLocaleString('en-US')} records, ${full.flagged.toLocaleString('en-US')} flagged (${classes})`,
  );
}

export async function benchDetectors(): Promise<void> {
  console.log(`detector throughput (one process, ${Math.round(ATTACK_SHARE * 100)}% attack lines)`);
  for (const format of ['combined', 'alb', 'aws-waf'] as const) {
    benchThroughput(format);
    // Let the previous format's lines be collected before generating the next.
    await new Promise((resolve) => setImmediate(resolve));
  }
  console.log('');
  benchDetectionQuality();
}
