/**
 * Campaigns: one incident for many targets that crossed the same detector rule together — one
 * approval, one Slack message, one TTL — instead of a workflow per address. Targets that are
 * already under remediation join their open incident as evidence; targets the policy refuses are
 * reported and left out, so one internal address in a burst does not stop the rest.
 */
import { TargetError } from '../domain/targets';
import { checkPolicyTarget, PolicyError } from '../domain/policy';
import { clientPolicy } from '../policy/store';
import { campaignWorkflowId, sightingSignal, type Sighting } from '../../workflows/definitions';
import {
  checkDetection,
  clientLimits,
  findOpenIncidents,
  firstSighting,
  incidentInput,
  signalWithStartIncident,
  type ClientDeps,
  type Detection,
  type StartedRemediation,
} from './remediation';
import type { Config } from '../config';

export interface CampaignDetection extends Detection {
  /** When the burst began (epoch ms): with the detector's name it makes the campaign's ID. */
  windowStart: number;
}

export interface StartedCampaign {
  /** The campaign incident; absent when every target was refused or already held. */
  campaign?: StartedRemediation;
  /** Targets already held by another open incident: the evidence went there. */
  joined: Array<{ target: string; workflowId: string }>;
  /** Targets the policy refuses, with the reason. */
  refused: Array<{ target: string; reason: string }>;
}

/** Splits targets into those the policy accepts (normalised, unique) and those it refuses. */
export function partitionTargets(
  config: Config,
  targets: string[],
): { accepted: string[]; refused: StartedCampaign['refused'] } {
  const accepted = new Set<string>();
  const refused: StartedCampaign['refused'] = [];
  const [limits, allowlist] = clientLimits(config);
  for (const target of targets) {
    try {
      accepted.add(checkPolicyTarget(target, limits, allowlist).target.cidr);
    } catch (err) {
      if (!(err instanceof TargetError)) throw err;
      refused.push({ target, reason: err.message });
    }
  }
  return { accepted: [...accepted], refused };
}

export async function startCampaign(
  deps: ClientDeps,
  detection: CampaignDetection,
): Promise<StartedCampaign> {
  const { client, config } = deps;
  const { accepted, refused } = partitionTargets(config, detection.targets);
  if (accepted.length === 0) throw new PolicyError(refused.map((r) => r.reason));
  // Action, TTL and observation window, before any incident hears of this detection.
  const checked = checkDetection(config, detection, accepted);
  const cap = clientPolicy(config).caps?.maxCampaignTargets;
  if (cap !== undefined && accepted.length > cap) {
    throw new PolicyError([`${accepted.length} targets exceed the policy's maximum of ${cap} per campaign`]);
  }
  const sighting = firstSighting(detection);
  const open = await findOpenIncidents(client, accepted);
  const joined: StartedCampaign['joined'] = [];
  for (const [target, workflowId] of open) {
    await signalQuietly(deps, workflowId, { ...sighting, source: target });
    joined.push({ target, workflowId });
  }
  if (open.size === accepted.length) return { joined, refused };
  const input = incidentInput(config, detection, {
    ...checked,
    targets: checked.targets.filter((t) => !open.has(t.cidr)),
  });
  const workflowId = campaignWorkflowId(detection.detector, detection.windowStart, input.targets);
  const campaign = await signalWithStartIncident(client, config, input, sighting, workflowId);
  return { campaign, joined, refused };
}

/** Evidence for an incident that may have closed since it was found: lost evidence is not an error. */
async function signalQuietly(deps: ClientDeps, workflowId: string, sighting: Sighting): Promise<void> {
  await deps.client.workflow
    .getHandle(workflowId)
    .signal(sightingSignal, sighting)
    .catch(() => undefined);
}
