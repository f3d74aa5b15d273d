/**
 * The detector: classified requests in, incidents and sightings out. Per rule, attack requests
 * are counted per key in a sliding window; a key that reaches the threshold becomes an incident
 * and its address is "claimed": its further attacks are evidence for that incident, never a
 * second one. When a rule is busy — a burst of sources crossing it together — crossings are held
 * briefly and leave as one campaign incident instead of one workflow per address.
 */
import { formatDuration } from '../domain/durations';
import type { DetectorConfig, DetectorRule } from './config';
import type { AttackClass, LogRecord } from './types';
import { SlidingWindows, type WindowEvidence } from './windows';

export interface IncidentEvidence {
  requests: number;
  byClass: Record<string, number>;
  samples: string[];
  firstAt: number;
  lastAt: number;
  /** Authenticated requests seen from the target(s) within the window, attacks or not. */
  authenticated: number;
  /** The principal the log named, when it named one: the policy's identity lookup uses it. */
  user?: string;
}

export interface PlannedIncident {
  kind: 'single' | 'campaign';
  rule: DetectorRule;
  /** Source addresses as logged. */
  targets: string[];
  /** The burst's start (log time): with the detector and rule it names a campaign. */
  windowStart: number;
  reason: string;
  evidence: IncidentEvidence;
}

/** Where the detector's decisions go: the Temporal client, or a report in `--test` mode. */
export interface DetectorOutput {
  startIncident(incident: PlannedIncident): void;
  /** An attack request from an address that already has an incident. */
  sighting(source: string, record: LogRecord, classes: readonly AttackClass[], line: string): void;
}

interface Crossing {
  source: string;
  evidence: IncidentEvidence;
}

interface Batch {
  openedAt: number;
  openedWall: number;
  crossings: Crossing[];
}

interface RuleState {
  rule: DetectorRule;
  windows: SlidingWindows;
  /** This rule's recent crossings: another source's within the window makes it busy. */
  recent: Array<{ at: number; source: string }>;
  batch?: Batch;
}

const SAMPLE_LENGTH = 500;

export class Detector {
  private readonly rules: RuleState[];
  /** Addresses with an incident, until (log time) the claim lapses. */
  private readonly claims = new Map<string, number>();
  private readonly authenticated = new Map<string, { n: number; last: number }>();
  private readonly maxWindowMs: number;
  private lastAuthSweep = 0;
  private now = 0;

  constructor(
    readonly config: DetectorConfig,
    private readonly output: DetectorOutput,
    /** How long a claim lasts after its incident starts; the incident's TTL plus its observation window. */
    private readonly claimMs: (rule: DetectorRule) => number,
    private readonly wallClock: () => number = Date.now,
  ) {
    this.rules = config.rules.map((rule) => ({
      rule,
      windows: new SlidingWindows(rule.windowMs),
      recent: [],
    }));
    this.maxWindowMs = Math.max(...config.rules.map((r) => r.windowMs));
  }

  /** Whether `source` has an incident (started or being started) at log time `at`. */
  isClaimed(source: string, at = this.now): boolean {
    const until = this.claims.get(source);
    if (until === undefined) return false;
    if (until >= at) return true;
    this.claims.delete(source);
    return false;
  }

  /** The incident holding `source` has ended: its next attacks count towards a new one. */
  release(source: string): void {
    this.claims.delete(source);
  }

  push(record: LogRecord, classes: readonly AttackClass[], line: string): void {
    if (record.at > this.now) this.now = record.at;
    if (record.authenticated) this.countAuthenticated(record.source, record.at);
    this.flushDue();
    if (classes.length === 0) return;
    if (this.isClaimed(record.source, record.at)) {
      this.output.sighting(record.source, record, classes, line);
      return;
    }
    const sample = line.length > SAMPLE_LENGTH ? `${line.slice(0, SAMPLE_LENGTH)}…` : line;
    for (const state of this.rules) {
      const matching = classes.filter((c) => state.rule.classes.includes(c));
      if (matching.length === 0) continue;
      const key = this.keyOf(state.rule, record);
      if (key === undefined) continue;
      const evidence = state.windows.add(key, record.at, matching, record.source, sample, record.user);
      if (evidence.requests < state.rule.threshold) continue;
      state.windows.delete(key);
      this.cross(state, evidence, record.at);
      if (this.isClaimed(record.source, record.at)) return;
    }
  }

  /** Starts what is held; call on a timer while following, and at the end of the input. */
  flush(all = false): void {
    for (const state of this.rules) {
      const { batch } = state;
      if (!batch) continue;
      const due =
        all ||
        this.now - batch.openedAt >= this.config.campaign.holdMs ||
        this.wallClock() - batch.openedWall >= this.config.campaign.holdMs;
      if (due) {
        delete state.batch;
        this.emitBatch(state, batch);
      }
    }
  }

  private flushDue(): void {
    for (const state of this.rules) if (state.batch) return this.flush();
  }

  private keyOf(rule: DetectorRule, record: LogRecord): string | undefined {
    if (rule.key === 'ip') return record.source;
    const name = rule.key.slice('header:'.length);
    const value = Object.hasOwn(record.headers, name) ? record.headers[name] : undefined;
    return value ? value : undefined;
  }

  private cross(state: RuleState, window: WindowEvidence, at: number): void {
    const sources = [...window.sources].filter((s) => !this.isClaimed(s, at));
    if (sources.length === 0) return;
    for (const s of sources) this.claims.set(s, at + this.claimMs(state.rule));
    const evidence = this.toIncidentEvidence(window, sources);
    const keyed = state.rule.key !== 'ip';
    if (keyed && sources.length > 1) {
      // One API key or user agent behind many addresses is one actor: one incident for all of them.
      const { maxTargets } = this.config.campaign;
      for (let i = 0; i < sources.length; i += maxTargets) {
        const part = sources.slice(i, i + maxTargets);
        const who = `${part.length} addresses sharing one ${state.rule.key.slice('header:'.length)}`;
        this.emit(state, 'campaign', part, window.firstAt + i / maxTargets, evidence, who);
      }
      return;
    }
    const cutoff = at - state.rule.windowMs;
    state.recent = state.recent.filter((r) => r.at > cutoff);
    const busy = state.recent.some((r) => !sources.includes(r.source));
    for (const source of sources) state.recent.push({ at, source });
    const crossings = sources.map((source) => ({ source, evidence }));
    if (!busy && !state.batch) {
      for (const c of crossings) this.emit(state, 'single', [c.source], window.firstAt, c.evidence);
      return;
    }
    state.batch ??= { openedAt: at, openedWall: this.wallClock(), crossings: [] };
    state.batch.crossings.push(...crossings);
  }

  private emitBatch(state: RuleState, batch: Batch): void {
    const { minSources, maxTargets } = this.config.campaign;
    if (batch.crossings.length < minSources) {
      for (const c of batch.crossings) this.emit(state, 'single', [c.source], c.evidence.firstAt, c.evidence);
      return;
    }
    for (let i = 0; i < batch.crossings.length; i += maxTargets) {
      const part = batch.crossings.slice(i, i + maxTargets);
      const evidence = mergeEvidence(part.map((c) => c.evidence));
      // Each part needs its own ID: the burst's start, moved on by a millisecond per part.
      this.emit(
        state,
        'campaign',
        part.map((c) => c.source),
        batch.openedAt + i / maxTargets,
        evidence,
        `a burst of ${part.length} addresses`,
      );
    }
  }

  private emit(
    state: RuleState,
    kind: PlannedIncident['kind'],
    targets: string[],
    windowStart: number,
    evidence: IncidentEvidence,
    who = targets[0] ?? '',
  ): void {
    const { rule } = state;
    const classes = Object.entries(evidence.byClass)
      .map(([c, n]) => `${c} ${n}`)
      .join(', ');
    const reason = `${who}: ${evidence.requests} attack requests (${classes}) within ${formatDuration(rule.windowMs)} — rule ${rule.name}, threshold ${rule.threshold}`;
    this.output.startIncident({ kind, rule, targets, windowStart, reason, evidence });
  }

  private toIncidentEvidence(w: WindowEvidence, sources: string[]): IncidentEvidence {
    const byClass: Record<string, number> = {};
    for (const [c, n] of Object.entries(w.byClass)) if (n && n > 0) byClass[c] = n;
    let authenticated = 0;
    for (const s of sources) authenticated += this.authenticated.get(s)?.n ?? 0;
    return {
      requests: w.requests,
      byClass,
      samples: [...w.samples],
      firstAt: w.firstAt,
      lastAt: w.lastAt,
      authenticated,
      ...(w.user && sources.length === 1 ? { user: w.user } : {}),
    };
  }

  private countAuthenticated(source: string, at: number): void {
    const seen = this.authenticated.get(source);
    if (seen && seen.last >= at - this.maxWindowMs) {
      seen.n++;
      seen.last = at;
    } else this.authenticated.set(source, { n: 1, last: at });
    if (at - this.lastAuthSweep < this.maxWindowMs) return;
    this.lastAuthSweep = at;
    for (const [s, v] of this.authenticated) if (v.last < at - this.maxWindowMs) this.authenticated.delete(s);
  }
}

export function mergeEvidence(parts: IncidentEvidence[]): IncidentEvidence {
  const out: IncidentEvidence = {
    requests: 0,
    byClass: {},
    samples: [],
    firstAt: Infinity,
    lastAt: 0,
    authenticated: 0,
  };
  for (const p of parts) {
    out.requests += p.requests;
    out.authenticated += p.authenticated;
    for (const [c, n] of Object.entries(p.byClass)) out.byClass[c] = (out.byClass[c] ?? 0) + n;
    for (const s of p.samples) if (out.samples.length < 5) out.samples.push(s);
    out.firstAt = Math.min(out.firstAt, p.firstAt);
    out.lastAt = Math.max(out.lastAt, p.lastAt);
  }
  return out;
}
