/**
 * Requests that matched a virtual patch's rule, reported to that patch's workflow as `sighting`
 * signals: the evidence its observation window weighs. Batched per finding, at most about one
 * signal a second, so a busy endpoint costs a signal a second rather than one per line.
 *
 * Only signals, never a start: a log naming a patch that is not open (retired, expired, or
 * another environment's) must not conjure a workflow. Such findings are counted and skipped.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { patchWorkflowId, sightingSignal, type Sighting } from '../../workflows/definitions';
import type { LogRecord } from './types';

const SIGHTING_INTERVAL_MS = 1_000;
const MAX_SAMPLES_PER_SIGHTING = 3;
const SAMPLE_LENGTH = 500;
/** The class the patch workflow's evidence counts these requests under. */
export const PATCH_SIGHTING_CLASS = 'vpatch';

export interface PatchSightingStats {
  /** Requests that matched a patch rule (a request matching two patches counts for each). */
  matched: number;
  sightingsSent: number;
  /** Matched requests the sent sightings carried. */
  requestsReported: number;
  /** Distinct findings whose patch workflow was not open when its sighting was sent. */
  findingsWithoutPatch: number;
  errors: number;
}

export type PatchSightingEvent =
  { kind: 'no-patch'; findingId: string } | { kind: 'error'; findingId: string; message: string };

interface Pending {
  sighting: Sighting;
  requests: number;
  timer?: NodeJS.Timeout;
}

export class PatchSightings {
  readonly stats: PatchSightingStats = {
    matched: 0,
    sightingsSent: 0,
    requestsReported: 0,
    findingsWithoutPatch: 0,
    errors: 0,
  };
  private readonly pending = new Map<string, Pending>();
  private readonly lastSent = new Map<string, number>();
  private readonly withoutPatch = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();

  constructor(
    private readonly client: Pick<Client, 'workflow'>,
    private readonly detector: string,
    private readonly onEvent: (event: PatchSightingEvent) => void = () => undefined,
  ) {}

  /** One request that matched the rules of `findingIds`. */
  add(findingIds: readonly string[], record: LogRecord): void {
    for (const findingId of findingIds) {
      this.stats.matched++;
      let p = this.pending.get(findingId);
      if (!p) {
        const at = new Date(record.at).toISOString();
        p = { sighting: { detector: this.detector, at, firstAt: at, classes: {} }, requests: 0 };
        this.pending.set(findingId, p);
      }
      merge(p, record);
      if (!p.timer) {
        const wait = Math.max(0, (this.lastSent.get(findingId) ?? 0) + SIGHTING_INTERVAL_MS - Date.now());
        p.timer = setTimeout(() => this.track(this.send(findingId)), wait);
      }
    }
  }

  /** Sends every held batch now and waits for all signals: call when the detector ends. */
  async drain(): Promise<void> {
    for (const [findingId, p] of this.pending) {
      clearTimeout(p.timer);
      this.track(this.send(findingId));
    }
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private async send(findingId: string): Promise<void> {
    const p = this.pending.get(findingId);
    if (!p) return;
    this.pending.delete(findingId);
    this.lastSent.set(findingId, Date.now());
    try {
      await this.client.workflow.getHandle(patchWorkflowId(findingId)).signal(sightingSignal, p.sighting);
      this.stats.sightingsSent++;
      this.stats.requestsReported += p.requests;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) {
        this.stats.errors++;
        this.onEvent({ kind: 'error', findingId, message: (err as Error).message });
      } else if (!this.withoutPatch.has(findingId)) {
        // Kept per finding, not per batch: a follow run would otherwise repeat itself every second.
        this.withoutPatch.add(findingId);
        this.stats.findingsWithoutPatch++;
        this.onEvent({ kind: 'no-patch', findingId });
      }
    }
  }

  private track(promise: Promise<void>): void {
    this.inFlight.add(promise);
    void promise.finally(() => this.inFlight.delete(promise));
  }
}

function merge(p: Pending, record: LogRecord): void {
  const s = p.sighting;
  p.requests++;
  s.classes[PATCH_SIGHTING_CLASS] = p.requests;
  s.source = record.source;
  if (record.authenticated) s.authenticated = (s.authenticated ?? 0) + 1;
  if ((s.samples ??= []).length < MAX_SAMPLES_PER_SIGHTING)
    s.samples.push(`${record.method} ${record.uri}`.slice(0, SAMPLE_LENGTH));
  const at = new Date(record.at).toISOString();
  if (at > s.at) s.at = at;
  if (!s.firstAt || at < s.firstAt) s.firstAt = at;
}
