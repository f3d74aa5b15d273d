/**
 * A policy change reaches incidents already running: any incident holding a target that is now
 * allowlisted is released early, through the same `release` Update an operator would use.
 */
import type { Client } from '@temporalio/client';
import { allowlisted } from '../domain/allowlist';
import { parseTarget } from '../domain/targets';
import {
  incidentStatus,
  listRemediations,
  releaseRemediation,
  ENDING_STATES,
  type ActiveRemediation,
} from '../client/remediation';
import type { Policy } from './policy';

export async function releaseAllowlisted(
  client: Client,
  taskQueue: string,
  policy: Policy,
  log: (line: string) => void,
): Promise<string[]> {
  const released: string[] = [];
  if (policy.allowlist.length === 0) return released;
  // Only this deployment's incidents: the ones its workers can answer for.
  const incidents = (await listRemediations(client, { taskQueue })).filter(
    // Virtual patches protect endpoints, not addresses: the allowlist has nothing to say about them.
    (i) => i.kind === 'ip' && !ENDING_STATES.includes(i.state),
  );
  // A few at a time, each on its own: one incident that cannot be asked must not hold up the rest.
  for (let i = 0; i < incidents.length; i += 8) {
    await Promise.all(
      incidents.slice(i, i + 8).map(async (incident) => {
        try {
          const workflowId = await releaseIfAllowlisted(client, incident, policy, log);
          if (workflowId) released.push(workflowId);
        } catch (err) {
          log(`could not check ${incident.workflowId} against the new policy: ${(err as Error).message}`);
        }
      }),
    );
  }
  return released;
}

async function releaseIfAllowlisted(
  client: Client,
  incident: ActiveRemediation,
  policy: Policy,
  log: (line: string) => void,
): Promise<string | undefined> {
  // A campaign's search attribute lists only its first targets: ask the incident for all.
  const targets = await incidentStatus(client, incident.workflowId)
    .then((s) => s.targets)
    .catch(() => incident.targets);
  for (const cidr of targets) {
    const entry = allowlisted(parseTarget(cidr), policy.allowlist);
    if (!entry) continue;
    const reason = `policy change: ${cidr} is now allowlisted (${entry.cidr}: ${entry.comment})`;
    const result = await releaseRemediation(client, incident.workflowId, { by: 'policy', reason });
    if (!result.accepted) return undefined;
    log(`released ${incident.workflowId}: ${reason}`);
    return incident.workflowId;
  }
  return undefined;
}
