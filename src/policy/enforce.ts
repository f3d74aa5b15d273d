/**
 * A policy change reaches incidents already running: any incident holding a target that is now
 * allowlisted is released early, through the same `release` Update an operator would use.
 */
import type { Client } from '@temporalio/client';
import { allowlisted } from '../domain/allowlist';
import { parseTarget } from '../domain/targets';
import { incidentStatus, listRemediations, releaseRemediation } from '../client/remediation';
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
  for (const incident of await listRemediations(client, { taskQueue })) {
    if (['releasing', 'released', 'stood-down', 'rejected'].includes(incident.state)) continue;
    // A campaign's search attribute lists only its first targets: ask the incident for all.
    const targets = await incidentStatus(client, incident.workflowId)
      .then((s) => s.targets)
      .catch(() => incident.targets);
    for (const cidr of targets) {
      const entry = allowlisted(parseTarget(cidr), policy.allowlist);
      if (!entry) continue;
      const reason = `policy change: ${cidr} is now allowlisted (${entry.cidr}: ${entry.comment})`;
      const result = await releaseRemediation(client, incident.workflowId, { by: 'policy', reason });
      if (result.accepted) {
        released.push(incident.workflowId);
        log(`released ${incident.workflowId}: ${reason}`);
      }
      break;
    }
  }
  return released;
}
