/**
 * The detector's way into Temporal: planned incidents become `startRemediation()` /
 * `startCampaign()` calls (signal-with-start, so a repeat joins the open incident), and further
 * attacks from a target with an incident become `sighting` signals — batched per target, at most
 * about one a second, so the observation window sees live evidence without a signal per line.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { startCampaign } from '../client/campaign';
import { startRemediation, type ClientDeps, type Detection } from '../client/remediation';
import { PolicyError } from '../domain/policy';
import { parseTarget } from '../domain/targets';
import { sightingSignal, type Sighting } from '../../workflows/definitions';
import type { DetectorConfig } from './config';
import type { Detector, DetectorOutput, PlannedIncident } from './engine';
import type { AttackClass, LogRecord } from './types';

const SIGHTING_INTERVAL_MS = 1_000;
const MAX_STARTS_IN_FLIGHT = 8;
const MAX_SAMPLES_PER_SIGHTING = 3;

export interface DispatchStats {
  incidentsStarted: number;
  campaignsStarted: number;
  /** Detections that joined an incident already open for the target. */
  joined: number;
  refused: number;
  sightingsSent: number;
  errors: number;
}

/** What the dispatcher reports as it goes (a line per event; the CLI prints them). */
export type DispatchEvent =
  | { kind: 'started'; incident: PlannedIncident; workflowId: string; joined: boolean; targets: string[] }
  | { kind: 'refused'; incident: PlannedIncident; reasons: string[] }
  | { kind: 'error'; incident?: PlannedIncident; message: string };

interface PendingSighting {
  sighting: Sighting;
  timer?: NodeJS.Timeout;
}

export class TemporalDispatcher implements DetectorOutput {
  readonly stats: DispatchStats = {
    incidentsStarted: 0,
    campaignsStarted: 0,
    joined: 0,
    refused: 0,
    sightingsSent: 0,
    errors: 0,
  };
  /** Target (as logged) → its incident's workflow ID, once known. */
  private readonly incidents = new Map<string, string | Promise<string | undefined>>();
  private readonly pending = new Map<string, PendingSighting>();
  private readonly lastSent = new Map<string, number>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private detector?: Detector;
  private starting = 0;

  constructor(
    private readonly deps: ClientDeps,
    private readonly config: DetectorConfig,
    private readonly onEvent: (event: DispatchEvent) => void = () => undefined,
    private readonly requestedBy = 'detector',
  ) {}

  /** The detector whose claims this dispatcher releases when an incident turns out to have ended. */
  attach(detector: Detector): void {
    this.detector = detector;
  }

  startIncident(incident: PlannedIncident): void {
    const started = this.throttled(() => this.start(incident));
    for (const target of incident.targets)
      this.incidents.set(
        target,
        started.then((ids) => ids.get(target)),
      );
  }

  sighting(source: string, record: LogRecord, classes: readonly AttackClass[], line: string): void {
    let p = this.pending.get(source);
    if (!p) {
      p = { sighting: emptySighting(this.config.detector, source, record.at) };
      this.pending.set(source, p);
    }
    const s = p.sighting;
    for (const c of classes) s.classes[c] = (s.classes[c] ?? 0) + 1;
    if (record.authenticated) s.authenticated = (s.authenticated ?? 0) + 1;
    if ((s.samples ??= []).length < MAX_SAMPLES_PER_SIGHTING) s.samples.push(line.slice(0, 500));
    const at = new Date(record.at).toISOString();
    if (at > s.at) s.at = at;
    if (!s.firstAt || at < s.firstAt) s.firstAt = at;
    if (!p.timer) {
      const wait = Math.max(0, (this.lastSent.get(source) ?? 0) + SIGHTING_INTERVAL_MS - Date.now());
      p.timer = setTimeout(() => this.track(this.sendSighting(source)), wait);
    }
  }

  /** Waits for every start and sends every held sighting: call before exiting. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0 || [...this.pending.values()].some((p) => p.timer)) {
      for (const [source, p] of this.pending) {
        if (!p.timer) continue;
        clearTimeout(p.timer);
        this.track(this.sendSighting(source));
      }
      await Promise.allSettled([...this.inFlight]);
    }
  }

  private async sendSighting(source: string): Promise<void> {
    const p = this.pending.get(source);
    if (!p) return;
    const known = this.incidents.get(source);
    if (known === undefined) {
      // Held in a campaign batch that has not started yet: try again shortly.
      p.timer = setTimeout(() => this.track(this.sendSighting(source)), SIGHTING_INTERVAL_MS);
      return;
    }
    this.pending.delete(source);
    const workflowId = await known;
    if (!workflowId) return; // refused or failed to start: nothing to report to
    this.lastSent.set(source, Date.now());
    try {
      await this.deps.client.workflow.getHandle(workflowId).signal(sightingSignal, p.sighting);
      this.stats.sightingsSent++;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
      // The incident has ended: the next attacks from this source count towards a new one.
      this.incidents.delete(source);
      this.detector?.release(source);
    }
  }

  private async start(incident: PlannedIncident): Promise<Map<string, string>> {
    const { rule, evidence } = incident;
    const detection: Detection = {
      targets: incident.targets,
      action: rule.action,
      ...(rule.ttlMs !== undefined ? { ttlMs: rule.ttlMs } : {}),
      ...(rule.observeMs !== undefined ? { observeMs: rule.observeMs } : {}),
      approval: rule.approval,
      reason: incident.reason,
      detector: this.config.detector,
      requestedBy: this.requestedBy,
      ...(evidence.user && this.config.trustLoggedUser ? { identity: { user: evidence.user } } : {}),
      evidence: {
        classes: evidence.byClass,
        samples: evidence.samples,
        authenticated: evidence.authenticated,
        at: new Date(evidence.lastAt).toISOString(),
        firstAt: new Date(evidence.firstAt).toISOString(),
      },
    };
    const ids = new Map<string, string>();
    try {
      if (incident.kind === 'campaign') {
        const result = await startCampaign(this.deps, {
          ...detection,
          detector: `${this.config.detector}.${rule.name}`,
          windowStart: incident.windowStart,
        });
        const joinedAt = new Map(result.joined.map((j) => [j.target, j.workflowId]));
        for (const t of incident.targets) {
          const existing = joinedAt.get(cidrOf(t));
          if (existing) ids.set(t, existing);
        }
        this.stats.joined += result.joined.length;
        if (result.refused.length > 0) {
          this.stats.refused += result.refused.length;
          this.onEvent({
            kind: 'refused',
            incident,
            reasons: result.refused.map((r) => `${r.target}: ${r.reason}`),
          });
        }
        if (result.campaign) {
          const refusedTargets = new Set(result.refused.map((r) => r.target));
          for (const t of incident.targets)
            if (!ids.has(t) && !refusedTargets.has(t)) ids.set(t, result.campaign.workflowId);
          if (result.campaign.joined) this.stats.joined++;
          else this.stats.campaignsStarted++;
          this.onEvent({
            kind: 'started',
            incident,
            workflowId: result.campaign.workflowId,
            joined: result.campaign.joined,
            targets: result.campaign.targets,
          });
        }
        return ids;
      }
      const [started] = await startRemediation(this.deps, detection);
      if (started) {
        for (const t of incident.targets) ids.set(t, started.workflowId);
        if (started.joined) this.stats.joined++;
        else this.stats.incidentsStarted++;
        this.onEvent({
          kind: 'started',
          incident,
          workflowId: started.workflowId,
          joined: started.joined,
          targets: started.targets,
        });
      }
    } catch (err) {
      if (err instanceof PolicyError) {
        this.stats.refused += incident.targets.length;
        this.onEvent({ kind: 'refused', incident, reasons: err.problems });
      } else {
        this.stats.errors++;
        this.onEvent({ kind: 'error', incident, message: (err as Error).message });
      }
    }
    // Targets that got no incident are not claimed any more: their next attacks count afresh.
    for (const t of incident.targets) if (!ids.has(t)) this.detector?.release(t);
    return ids;
  }

  /** At most a few starts at a time: a burst must not open hundreds of gRPC calls at once. */
  private throttled<T>(fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      while (this.starting >= MAX_STARTS_IN_FLIGHT)
        await Promise.race([...this.inFlight]).catch(() => undefined);
      this.starting++;
      try {
        return await fn();
      } finally {
        this.starting--;
      }
    };
    const promise = run();
    this.track(promise);
    return promise;
  }

  private track(promise: Promise<unknown>): void {
    const tracked = promise.catch((err: unknown) => {
      this.stats.errors++;
      this.onEvent({ kind: 'error', message: (err as Error).message });
    });
    this.inFlight.add(tracked);
    void tracked.finally(() => this.inFlight.delete(tracked));
  }
}

function emptySighting(detector: string, source: string, at: number): Sighting {
  return { detector, source, at: new Date(at).toISOString(), classes: {} };
}

/** The normalised CIDR the client layer reports for an address as logged. */
function cidrOf(source: string): string {
  try {
    return parseTarget(source).cidr;
  } catch {
    return source;
  }
}
