/**
 * The reconciler, run on a Temporal Schedule: compares the managed IP sets with the open
 * incident workflows and heals the difference — the perimeter healing itself. Each repair is an
 * activity of its own with a summary, so the run's history is its report.
 */
import { proxyActivities, setCurrentDetails, type ActivityOptions } from '@temporalio/workflow';
import type { DriftEntry, ReconcileActivities, RepairResult } from '../activities/reconcile';
import type { SetAction } from '../src/domain/policy';
import { targetList } from './target-list';

const options: ActivityOptions = {
  startToCloseTimeout: '2m',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumAttempts: 3 },
};
const { findDrift, restoreHeld, removeOrphans } = proxyActivities<ReconcileActivities>(options);

export interface ReconcileReport {
  openIncidents: number;
  inSets: number;
  /** Addresses open incidents hold that were missing from their set, put back. */
  restored: string[];
  /** Addresses ended incidents left in a set, taken out. */
  removed: string[];
  /** Left alone: changed since found, or dry-run. */
  skipped: string[];
  /** In managed sets with no perimeter incident behind them: someone else's, left as found. */
  foreign: string[];
}

export async function reconcile(): Promise<ReconcileReport> {
  const drift = await findDrift.executeWithOptions(
    { ...options, summary: 'compare the managed sets with the open incidents' },
    [],
  );
  const report: ReconcileReport = {
    openIncidents: drift.openIncidents,
    inSets: drift.inSets,
    restored: [],
    removed: [],
    skipped: [],
    foreign: drift.foreign.map((f) => `${f.cidr} (${f.action})`),
  };
  for (const [action, entries] of byAction(drift.lost)) {
    const held = [...new Set(entries.map((e) => e.workflowId))];
    const r = await restoreHeld.executeWithOptions(
      {
        ...options,
        summary: `restore ${targetList(entries.map((e) => e.cidr))} to the ${action} set (held by ${targetList(held, 2)})`,
      },
      [entries],
    );
    tally(report, 'restored', r);
  }
  for (const [action, entries] of byAction(drift.orphans)) {
    const left = [...new Set(entries.map((e) => e.workflowId))];
    const r = await removeOrphans.executeWithOptions(
      {
        ...options,
        summary: `remove ${targetList(entries.map((e) => e.cidr))} from the ${action} set (left by ended ${targetList(left, 2)})`,
      },
      [entries],
    );
    tally(report, 'removed', r);
  }
  setCurrentDetails(
    [
      `**${report.restored.length} restored, ${report.removed.length} removed**`,
      `${report.openIncidents} open incidents, ${report.inSets} addresses in the managed sets`,
      report.foreign.length > 0 ? `${report.foreign.length} addresses of others left as found` : '',
    ]
      .filter(Boolean)
      .join('\n\n'),
  );
  return report;
}

function byAction(entries: DriftEntry[]): Map<SetAction, DriftEntry[]> {
  const out = new Map<SetAction, DriftEntry[]>();
  for (const e of entries) out.set(e.action, [...(out.get(e.action) ?? []), e]);
  return out;
}

function tally(report: ReconcileReport, kind: 'restored' | 'removed', r: RepairResult): void {
  report[kind].push(...r.done);
  report.skipped.push(...r.skipped);
}
