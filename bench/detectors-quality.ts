/**
 * Detection quality of the built-in signatures: recall per attack class and per public payload
 * list, and false positives on ordinary traffic, with the misses and false positives printed so
 * the signatures can be tuned (by general rules, not by matching one list's lines).
 */
import path from 'node:path';
import { classifyRequest } from '../src/detectors/signatures';
import type { AttackClass, LogRecord } from '../src/detectors/types';
import { generatedAttacks, listAttacks, scannerRequests, type LabelledAttack } from './corpus-attacks';
import { benignRequest, type BenchRequest } from './corpus-benign';
import { Rng } from './rng';

const BENIGN_REQUESTS = Number(process.env.BENCH_BENIGN ?? 25_000);
const SHOW_FLAGGED = 20;
const SHOW_MISSES = 25;
const TARGET_RECALL = 0.9;
const TARGET_FP = 0.001;

/** The payload lists live next to the project (../shared/corpus), read where they are. */
export const CORPUS_DIR =
  process.env.DETECTOR_CORPUS_DIR ?? path.resolve(__dirname, '..', '..', 'shared', 'corpus');

function classify(req: BenchRequest): AttackClass[] {
  const headers: Record<string, string> = {};
  if (req.referer !== undefined) headers.referer = req.referer;
  const record: Pick<LogRecord, 'uri' | 'userAgent' | 'headers' | 'method'> = {
    uri: req.uri,
    userAgent: req.userAgent,
    headers,
    method: req.method,
  };
  return classifyRequest(record);
}

interface Tally {
  n: number;
  hit: number;
  /** Flagged, but only as some other class. */
  otherOnly: number;
  misses: LabelledAttack[];
}

function tally(attacks: readonly LabelledAttack[]): Tally {
  const t: Tally = { n: 0, hit: 0, otherOnly: 0, misses: [] };
  for (const a of attacks) {
    const classes = classify(a);
    t.n++;
    if (classes.includes(a.expected)) t.hit++;
    else {
      if (classes.length > 0) t.otherOnly++;
      t.misses.push(a);
    }
  }
  return t;
}

const pct = (x: number, of: number): string => (of === 0 ? '-' : `${((100 * x) / of).toFixed(2)}%`);
const ratio = (t: Tally): string => (t.n === 0 ? '-' : (t.hit / t.n).toFixed(3));
const clip = (s: string, n = 90): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

function row(label: string, t: Tally): string {
  const other = t.otherOnly > 0 ? `  (${t.otherOnly} flagged as another class only)` : '';
  return `  ${label.padEnd(34)} ${String(t.hit).padStart(5)} / ${String(t.n).padEnd(5)} recall ${ratio(t)}${other}`;
}

function merge(a: Tally, b: Tally): Tally {
  return {
    n: a.n + b.n,
    hit: a.hit + b.hit,
    otherOnly: a.otherOnly + b.otherOnly,
    misses: [...a.misses, ...b.misses],
  };
}

const empty = (): Tally => ({ n: 0, hit: 0, otherOnly: 0, misses: [] });

export function benchDetectionQuality(): void {
  const rng = new Rng(20_240_601);
  console.log('detection quality (classifyRequest on labelled requests)');

  const generated = new Map<AttackClass, Tally>();
  for (const cls of ['sqli', 'xss', 'traversal'] as const)
    generated.set(cls, tally(generatedAttacks(cls, rng)));
  generated.set('scanner', tally(scannerRequests(rng, 270)));
  console.log(' generated attacks (payloads written for this bench, in evasion variants):');
  for (const [cls, t] of generated) console.log(row(cls, t));

  const files = listAttacks(CORPUS_DIR, rng);
  const byClass = new Map<AttackClass, Tally>();
  if (files.length === 0) console.log(` public lists: none found under ${CORPUS_DIR}`);
  else
    console.log(
      ` public lists (${CORPUS_DIR}, one request per line, payload form-encoded into a parameter):`,
    );
  const fileTallies = files.map((f) => ({ f, t: tally(f.requests) }));
  for (const { f, t } of fileTallies) {
    console.log(row(f.name, t));
    byClass.set(f.cls, merge(byClass.get(f.cls) ?? empty(), t));
  }
  if (files.length > 0) {
    console.log(' public lists per class:');
    for (const [cls, t] of byClass) console.log(row(cls, t));
  }
  console.log(' all attacks per class (generated + lists):');
  const classRecall = new Map<AttackClass, number>();
  for (const cls of ['sqli', 'xss', 'traversal', 'scanner'] as const) {
    const t = merge(generated.get(cls) ?? empty(), byClass.get(cls) ?? empty());
    if (t.n > 0) classRecall.set(cls, t.hit / t.n);
    console.log(row(cls, t));
  }

  const benign: BenchRequest[] = [];
  for (let i = 0; i < BENIGN_REQUESTS; i++) benign.push(benignRequest(rng));
  const flagged: Array<{ req: BenchRequest; classes: AttackClass[] }> = [];
  for (const req of benign) {
    const classes = classify(req);
    if (classes.length > 0) flagged.push({ req, classes });
  }
  const fpRate = flagged.length / benign.length;
  console.log(
    ` benign: ${flagged.length} of ${benign.length} flagged = ${pct(flagged.length, benign.length)} false positives` +
      ` (${new Set(benign.map((b) => b.uri)).size} distinct URIs)`,
  );
  for (const { req, classes } of flagged.slice(0, SHOW_FLAGGED)) {
    console.log(
      `   FP [${classes.join(',')}] ${clip(req.uri, 110)}${req.referer ? `  referer=${clip(req.referer, 60)}` : ''}`,
    );
  }
  const short = [...classRecall].filter(([, r]) => r < TARGET_RECALL).map(([c, r]) => `${c} ${r.toFixed(3)}`);
  console.log(
    ` targets: recall ≥ ${TARGET_RECALL} per class ${short.length === 0 ? 'met' : `NOT met (${short.join(', ')})`}; ` +
      `false positives ≤ ${TARGET_FP * 100}% ${fpRate <= TARGET_FP ? 'met' : 'NOT met'}`,
  );

  // Every miss, compactly: most are list fragments (bare keywords, file names, LDAP or shell
  // payloads in an SQL list) that are not attacks on their own; the rest is what to tune.
  console.log(' missed list payloads:');
  for (const { f, t } of fileTallies) {
    if (t.misses.length === 0) continue;
    const items = t.misses.map((m) => JSON.stringify(clip(m.payload ?? m.uri, 48)));
    console.log(`  ${f.name} (${t.misses.length}):`);
    let line = '   ';
    for (const item of items) {
      if (line.length + item.length > 118) {
        console.log(line);
        line = '   ';
      }
      line += ` ${item}`;
    }
    console.log(line);
  }
  const genMisses = [...generated.values()].flatMap((t) => t.misses);
  if (genMisses.length > 0) {
    console.log(` missed generated attacks (first ${SHOW_MISSES}):`);
    for (const m of genMisses.slice(0, SHOW_MISSES)) console.log(`    [${m.expected}] ${clip(m.uri, 110)}`);
  }
}
