/**
 * Drift between the managed IP sets and the incidents that should be holding them — the
 * reconciler's view. An address is *lost* when an open incident holds it but its set does not
 * (someone edited the set); an *orphan* when a set holds it, no open incident does, and an
 * ended incident left it there (a workflow terminated by hand skips its release). Anything else
 * in a set was put there by someone else and is left as found.
 */
import type { Client } from '@temporalio/client';
import { incidentStatus, listRemediations, ENDING_STATES } from '../client/remediation';
import { SET_ACTIONS, type SetAction } from '../domain/policy';
import type { IncidentStatus } from '../../workflows/definitions';

export interface DriftEntry {
  action: SetAction;
  cidr: string;
  /** The incident that holds it (lost) or left it (orphan). */
  workflowId: string;
}

export interface Drift {
  lost: DriftEntry[];
  orphans: DriftEntry[];
  /** In a managed set without any perimeter incident behind it: someone else's, left as found. */
  foreign: Array<{ action: SetAction; cidr: string }>;
  /** Open incidents compared, and addresses found in the sets. */
  openIncidents: number;
  inSets: number;
}

export interface DriftDeps {
  client: Client;
  taskQueue: string;
  /** Every address an action's sets hold now (all shards), canonical. */
  holdings: (action: SetAction) => Promise<string[]>;
}

const key = (action: SetAction, cidr: string) => `${action} ${cidr}`;

/** A few at a time: one slow query must not hold up the rest, nor many swamp the worker. */
async function inBatches<T, R>(items: T[], fn: (item: T) => Promise<R>, size = 8): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

/** What an incident has in the WAF by its own account; nothing for dry-run or ending incidents. */
export function heldInWaf(status: IncidentStatus | undefined): Array<[SetAction, string[]]> {
  if (!status || status.dryRun) return [];
  return Object.entries(status.held ?? {}) as Array<[SetAction, string[]]>;
}

export async function findDrift(deps: DriftDeps): Promise<Drift> {
  // The sets first, then the incidents: an address added in between looks lost (restoring it is
  // harmless), never orphaned.
  const actual = new Map<string, SetAction>();
  for (const action of SET_ACTIONS)
    for (const cidr of await deps.holdings(action)) actual.set(key(action, cidr), action);

  const open = (await listRemediations(deps.client, { taskQueue: deps.taskQueue })).filter(
    (r) => r.kind === 'ip',
  );
  const desired = new Map<string, DriftEntry>();
  const statuses = await inBatches(open, (r) =>
    incidentStatus(deps.client, r.workflowId)
      .then((s) => ({ workflowId: r.workflowId, status: s }))
      .catch(() => ({ workflowId: r.workflowId, status: undefined })),
  );
  const unsure = new Set<string>(); // incidents that did not answer: their addresses are never orphans
  for (const { workflowId, status } of statuses) {
    if (!status) unsure.add(workflowId);
    if (!status || ENDING_STATES.includes(status.state)) continue;
    for (const [action, cidrs] of heldInWaf(status)) {
      for (const cidr of cidrs) desired.set(key(action, cidr), { action, cidr, workflowId });
    }
  }
  const lost = [...desired.entries()].filter(([k]) => !actual.has(k)).map(([, e]) => e);

  const candidates = [...actual.entries()].filter(([k]) => !desired.has(k));
  const openTargets = new Set(open.flatMap((r) => r.targets));
  const orphans: DriftEntry[] = [];
  const foreign: Drift['foreign'] = [];
  const leftBy = await endedHolders(deps.client, [
    ...new Set(candidates.map(([k]) => k.split(' ')[1] ?? '')),
  ]);
  for (const [k, action] of candidates) {
    const cidr = k.split(' ')[1] ?? '';
    const ended = leftBy.get(k);
    // An open incident that did not answer, or is on its way out, may still own it: next run.
    if (ended && !(unsure.size > 0 && openTargets.has(cidr)))
      orphans.push({ action, cidr, workflowId: ended });
    else if (!ended) foreign.push({ action, cidr });
  }
  return { lost, orphans, foreign, openIncidents: open.length, inSets: actual.size };
}

/** For addresses in the sets, the ended incidents whose last word says they still held them. */
async function endedHolders(client: Client, cidrs: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (let i = 0; i < cidrs.length; i += 100) {
    const chunk = cidrs.slice(i, i + 100).map((c) => `'${c.replace(/'/g, '')}'`);
    if (chunk.length === 0) continue;
    // Only runs stopped from outside skip their release step; failed, cancelled and completed runs
    // release on their way out, and a run that continued as new handed its holdings on.
    const query = `WorkflowType = 'remediate' AND ExecutionStatus IN ('Terminated', 'TimedOut') AND PerimeterTarget IN (${chunk.join(', ')})`;
    const ended: string[] = [];
    for await (const wf of client.workflow.list({ query })) ended.push(`${wf.workflowId} ${wf.runId}`);
    await inBatches(ended, async (idRun) => {
      const [workflowId = '', runId] = idRun.split(' ');
      const status = await client.workflow
        .getHandle(workflowId, runId)
        .query<IncidentStatus>('status')
        .catch(() => undefined);
      for (const [action, held] of heldInWaf(status))
        for (const cidr of held) found.set(key(action, cidr), workflowId);
    });
  }
  return found;
}
