/**
 * The reconciler's activities: find the drift between the managed sets and the open incidents,
 * then repair it — restore what an open incident holds, remove what an ended one left behind.
 */
import type { Client } from '@temporalio/client';
import { incidentStatus, ENDING_STATES } from '../src/client/remediation';
import type { SetAction } from '../src/domain/policy';
import { findDrift, heldInWaf, type Drift, type DriftEntry } from '../src/reconcile/drift';
import type { WafGateway } from '../src/waf/gateway';
import { toApplicationFailure } from './errors';

export type { Drift, DriftEntry };

export interface ReconcileDeps {
  client: Client;
  taskQueue: string;
  waf: WafGateway & { holdings(action: SetAction): Promise<string[]> };
  /** Under the global dry-run switch the reconciler only reports. */
  dryRun: () => boolean;
  log: (line: string) => void;
  /** Counts each repair, for the metrics. */
  onRepair?: (kind: 'restored' | 'removed', action: SetAction, n: number) => void;
}

export interface RepairResult {
  done: string[];
  /** Left alone: the incident changed its mind since the drift was found, or dry-run. */
  skipped: string[];
}

export function createReconcileActivities(deps: ReconcileDeps) {
  return {
    async findDrift(): Promise<Drift> {
      return findDrift({
        client: deps.client,
        taskQueue: deps.taskQueue,
        holdings: (a) => deps.waf.holdings(a),
      });
    },

    /** Puts back addresses open incidents hold — after asking each incident again. */
    async restoreHeld(entries: DriftEntry[]): Promise<RepairResult> {
      const still: DriftEntry[] = [];
      for (const e of entries) {
        const status = await incidentStatus(deps.client, e.workflowId).catch(() => undefined);
        const holds =
          status !== undefined &&
          !ENDING_STATES.includes(status.state) &&
          heldInWaf(status).some(([action, cidrs]) => action === e.action && cidrs.includes(e.cidr));
        if (holds) still.push(e);
      }
      return repair(still, entries, 'restored', (action, cidrs) => deps.waf.apply(action, cidrs));
    },

    /** Takes out addresses that ended incidents left behind. */
    async removeOrphans(entries: DriftEntry[]): Promise<RepairResult> {
      return repair(entries, entries, 'removed', (action, cidrs) => deps.waf.release(action, cidrs));
    },
  };

  async function repair(
    todo: DriftEntry[],
    all: DriftEntry[],
    kind: 'restored' | 'removed',
    write: (action: SetAction, cidrs: string[]) => Promise<unknown>,
  ): Promise<RepairResult> {
    const skipped = all.filter((e) => !todo.includes(e)).map((e) => e.cidr);
    if (deps.dryRun()) {
      deps.log(
        `dry-run: reconciler would have ${kind} ${todo.map((e) => `${e.cidr} (${e.action})`).join(', ')}`,
      );
      return { done: [], skipped: all.map((e) => e.cidr) };
    }
    const byAction = new Map<SetAction, string[]>();
    for (const e of todo) byAction.set(e.action, [...(byAction.get(e.action) ?? []), e.cidr]);
    try {
      for (const [action, cidrs] of byAction) {
        await write(action, cidrs);
        deps.onRepair?.(kind, action, cidrs.length);
        deps.log(`reconciler ${kind} ${cidrs.join(', ')} (${action} set)`);
      }
    } catch (err) {
      throw toApplicationFailure(err);
    }
    return { done: todo.map((e) => e.cidr), skipped };
  }
}

export type ReconcileActivities = ReturnType<typeof createReconcileActivities>;
