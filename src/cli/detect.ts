/**
 * `perimeter detect`: access logs in, incidents out. With `--test` nothing is started — it
 * reports what each line matched and which incidents would start (fail2ban-regex for this
 * detector). AWS WAF lines that matched a virtual patch's rule become sightings for that patch.
 */
import { existsSync } from 'node:fs';
import type { Client } from '@temporalio/client';
import type { Config } from '../config';
import { formatDuration } from '../domain/durations';
import {
  loadDetectorConfig,
  type DetectorConfig,
  type DetectorOverrides,
  type DetectorRule,
} from '../detectors/config';
import { TemporalDispatcher, type DispatchEvent, type DispatchStats } from '../detectors/dispatcher';
import { Detector, type DetectorOutput, type PlannedIncident } from '../detectors/engine';
import {
  PatchSightings,
  type PatchSightingEvent,
  type PatchSightingStats,
} from '../detectors/patch-sightings';
import { runDetector, type RunStats } from '../detectors/run';
import type { LogFormat } from '../detectors/types';
import { partitionTargets } from '../client/campaign';
import { targetList } from '../../workflows/target-list';
import { cliConfig, incidentUrl, whoAmI, withTemporal } from './context';

export interface DetectOptions extends DetectorOverrides {
  format: LogFormat | 'auto';
  follow?: boolean;
  fromStart?: boolean;
  config?: string;
  test?: boolean;
  json?: boolean;
  progress?: boolean;
}

export class DetectUsageError extends Error {
  override name = 'DetectUsageError';
}

/** How long an address stays claimed by its incident: observation, approval and TTL. */
function claimFor(config: Config) {
  return (rule: DetectorRule) =>
    (rule.observeMs ?? config.policy.defaultObserveMs) +
    (rule.approval === 'slack' ? config.approval.timeoutMs : 0) +
    (rule.ttlMs ?? config.policy.defaultTtlMs);
}

export async function runDetect(files: string[], o: DetectOptions): Promise<RunStats> {
  if (files.length === 0) throw new DetectUsageError('no log file given');
  if (!o.follow) {
    const missing = files.filter((f) => !existsSync(f));
    if (missing.length > 0) throw new DetectUsageError(`no such file: ${missing.join(', ')}`);
  }
  const detectorConfig = loadDetectorConfig(o.config, o);
  const config = cliConfig();
  const abort = new AbortController();
  const stop = () => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (o.test) return await testRun(files, o, detectorConfig, config, abort.signal);
    return await withTemporal(config, (client) =>
      liveRun(files, o, detectorConfig, config, client, abort.signal),
    );
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function liveRun(
  files: string[],
  o: DetectOptions,
  detectorConfig: DetectorConfig,
  config: Config,
  client: Client,
  signal: AbortSignal,
): Promise<RunStats> {
  const say = o.json ? (_: string) => undefined : (line: string) => console.log(line);
  const dispatcher = new TemporalDispatcher(
    { client, config },
    detectorConfig,
    (event) => say(describeEvent(event, config)),
    `${detectorConfig.detector} (${whoAmI()})`,
  );
  const detector = new Detector(detectorConfig, dispatcher, claimFor(config));
  dispatcher.attach(detector);
  const patches = new PatchSightings(client, detectorConfig.detector, (event) =>
    say(describePatchEvent(event)),
  );
  const stats = await runDetector({
    files,
    format: o.format,
    follow: o.follow ?? false,
    fromStart: o.fromStart ?? false,
    detector,
    signal,
    patchPrefix: config.waf.setPrefix,
    onPatchMatch: (findingIds, record) => patches.add(findingIds, record),
    ...progressReporter(o, () => dispatcher.stats),
  });
  await Promise.all([dispatcher.drain(), patches.drain()]);
  printSummary(stats, o, { dispatch: dispatcher.stats, patches: patches.stats });
  return stats;
}

async function testRun(
  files: string[],
  o: DetectOptions,
  detectorConfig: DetectorConfig,
  config: Config,
  signal: AbortSignal,
): Promise<RunStats> {
  const wouldStart: PlannedIncident[] = [];
  let sightings = 0;
  const output: DetectorOutput = {
    startIncident: (incident) => wouldStart.push(incident),
    sighting: () => void sightings++,
  };
  const detector = new Detector(detectorConfig, output, claimFor(config));
  const shown = { matched: 0, skipped: 0 };
  const patchFindings = new Set<string>();
  const stats = await runDetector({
    files,
    format: o.format,
    follow: o.follow ?? false,
    fromStart: o.fromStart ?? true,
    detector,
    signal,
    patchPrefix: config.waf.setPrefix,
    onPatchMatch: (findingIds) => findingIds.forEach((id) => patchFindings.add(id)),
    onLine: (outcome) => {
      if (o.json) {
        const { file, ...rest } = outcome;
        console.log(JSON.stringify(files.length > 1 ? { file, ...rest } : rest));
        return;
      }
      const where = files.length > 1 ? `${outcome.file}:${outcome.line}` : `line ${outcome.line}`;
      if (outcome.skipped && shown.skipped++ < 20) console.log(`${where}: skipped (${outcome.skipped})`);
      if ((outcome.classes.length === 0 && !outcome.patches) || shown.matched++ >= 100) return;
      if (outcome.classes.length > 0)
        console.log(`${where}: ${outcome.source} ${outcome.classes.join(', ')}`);
      if (outcome.patches)
        console.log(`${where}: ${outcome.source} matched virtual patch ${outcome.patches.join(', ')}`);
    },
    ...progressReporter(o, () => undefined),
  });
  if (!o.json) {
    if (shown.matched > 100) console.log(`… and ${shown.matched - 100} more matching lines`);
    console.log('');
    for (const i of wouldStart) {
      const { refused } = partitionTargets(config, i.targets);
      const note =
        refused.length > 0 ? `\n  refused by policy: ${refused.map((r) => r.reason).join('; ')}` : '';
      console.log(`would start ${i.kind}: ${describePlanned(i)}${note}`);
    }
    if (wouldStart.length === 0) console.log('would start no incident');
  }
  printSummary(stats, o, {
    wouldStart: wouldStart.map((i) => ({
      kind: i.kind,
      rule: i.rule.name,
      action: i.rule.action,
      targets: i.targets,
      reason: i.reason,
    })),
    sightings,
    patchFindings: [...patchFindings],
  });
  return stats;
}

function describePlanned(i: PlannedIncident): string {
  const ttl = i.rule.ttlMs !== undefined ? ` for ${formatDuration(i.rule.ttlMs)}` : '';
  return `${i.rule.action} ${targetList(i.targets)}${ttl} — ${i.reason}`;
}

function describeEvent(event: DispatchEvent, config: Config): string {
  switch (event.kind) {
    case 'started':
      return `${event.joined ? 'joined' : 'started'} ${event.workflowId} (${event.incident.rule.action} ${targetList(event.targets)}) ${incidentUrl(config, event.workflowId)}`;
    case 'refused':
      return `refused ${targetList(event.incident.targets)}: ${event.reasons.join('; ')}`;
    case 'error':
      return `error${event.incident ? ` starting ${targetList(event.incident.targets)}` : ''}: ${event.message}`;
  }
}

function describePatchEvent(event: PatchSightingEvent): string {
  switch (event.kind) {
    case 'no-patch':
      return `no open virtual patch for ${event.findingId}: its matches are counted, not reported`;
    case 'error':
      return `error reporting a sighting to virtual patch ${event.findingId}: ${event.message}`;
  }
}

/** A progress line on stderr every 2 s for long runs (never in the JSON on stdout). */
function progressReporter(o: DetectOptions, dispatch: () => DispatchStats | undefined) {
  if (o.progress === false) return {};
  let lastLines = 0;
  let lastAt = Date.now();
  return {
    onProgress: (s: RunStats) => {
      const now = Date.now();
      const rate = Math.round(((s.lines - lastLines) * 1000) / Math.max(1, now - lastAt));
      lastLines = s.lines;
      lastAt = now;
      const d = dispatch();
      const incidents = d
        ? ` · incidents ${d.incidentsStarted + d.campaignsStarted} started, ${d.joined} joined`
        : '';
      process.stderr.write(`… ${s.lines} lines (${rate}/s) · ${s.matches} matches${incidents}\n`);
    },
  };
}

function printSummary(
  stats: RunStats,
  o: DetectOptions,
  extra: {
    dispatch?: DispatchStats;
    patches?: PatchSightingStats;
    wouldStart?: unknown[];
    sightings?: number;
    patchFindings?: string[];
  },
): void {
  const rate = Math.round((stats.lines * 1000) / Math.max(1, stats.elapsedMs));
  if (o.json) {
    console.log(JSON.stringify({ summary: { ...stats, linesPerSecond: rate, ...extra } }));
    return;
  }
  const skipped = Object.values(stats.skipped).reduce((a, b) => a + (b ?? 0), 0);
  const reasons = Object.entries(stats.skipped)
    .map(([r, n]) => `${r} ${n}`)
    .join(', ');
  const classes = Object.entries(stats.byClass)
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  console.log('');
  console.log(
    `${stats.lines} lines from ${stats.files} file(s) in ${(stats.elapsedMs / 1000).toFixed(1)} s (${rate} lines/s)`,
  );
  console.log(`  parsed ${stats.records} · skipped ${skipped}${skipped ? ` (${reasons})` : ''}`);
  console.log(`  matched ${stats.matches} lines${classes ? `: ${classes}` : ''}`);
  const d = extra.dispatch;
  if (d) {
    console.log(
      `  incidents: ${d.incidentsStarted} started, ${d.campaignsStarted} campaign(s) started, ${d.joined} joined open incidents, ${d.refused} targets refused, ${d.sightingsSent} sightings sent${d.errors ? `, ${d.errors} errors` : ''}`,
    );
  }
  if (stats.patchMatches > 0) console.log(`  ${describePatchSummary(stats.patchMatches, extra)}`);
}

function describePatchSummary(
  lines: number,
  { patches: p, patchFindings }: { patches?: PatchSightingStats; patchFindings?: string[] },
): string {
  const head = `virtual patches: ${lines} matching lines`;
  // A dry run: nothing was sent, so only which findings the lines would have reported to.
  if (!p) return `${head}, for ${patchFindings?.join(', ') ?? 'none'}`;
  return `${head}, ${p.sightingsSent} sighting(s) sent (${p.requestsReported} requests), ${p.findingsWithoutPatch} finding(s) without an open patch${p.errors ? `, ${p.errors} errors` : ''}`;
}
