/**
 * The client path for virtual patches — the CLI, the ingest endpoint, scanners and CI pipelines:
 * check the request locally (bad input starts nothing), then signal-with-start the finding's
 * workflow, so a scanner reporting the same finding again adds evidence to the open patch.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Config } from '../config';
import { formatDuration } from '../domain/durations';
import { checkPatch, describePatch, type PatchRequest, type PatchSpec } from '../domain/virtual-patch';
import {
  fixDeployedSignal,
  patchScope,
  patchWorkflowId,
  searchAttributes,
  statusQuery,
  type ApprovalMode,
  type IncidentStatus,
  type Sighting,
  type VirtualPatchInput,
} from '../../workflows/definitions';
import type { virtualPatch } from '../../workflows/virtual-patch';
import type { PatchGateway } from '../waf/patch-gateway';
import { openIncident } from './open-incident';
import type { ClientDeps } from './remediation';

/** A finding to patch, as a scanner, a pipeline or a person reports it. */
export interface PatchFinding extends Omit<PatchRequest, 'ttlMs' | 'observeMs'> {
  /** Defaults to PERIMETER_VPATCH_DEFAULT_TTL. */
  ttlMs?: number;
  /** Defaults to PERIMETER_DEFAULT_OBSERVE. */
  observeMs?: number;
  approval?: ApprovalMode;
  reason: string;
  detector: string;
  requestedBy: string;
}

export interface StartedPatch {
  workflowId: string;
  findingId: string;
  /** What this request asked for, in one line. */
  summary: string;
  ttlMs: number;
  /** True when the finding already had an open patch: the request added evidence to it. */
  joined: boolean;
  /** The patch's state as it stands (validating for a new one). */
  state: string;
}

/** The request with defaults filled in, checked against the client's limits (throws PolicyError). */
export function checkFinding(
  config: Config,
  finding: PatchFinding,
): { request: PatchRequest; spec: PatchSpec } {
  const request: PatchRequest = {
    findingId: finding.findingId,
    path: finding.path,
    ...(finding.match !== undefined ? { match: finding.match } : {}),
    ...(finding.method !== undefined ? { method: finding.method } : {}),
    ...(finding.field !== undefined ? { field: finding.field } : {}),
    kind: finding.kind,
    ...(finding.pattern !== undefined ? { pattern: finding.pattern } : {}),
    ttlMs: finding.ttlMs ?? config.patches.defaultTtlMs,
    observeMs: finding.observeMs ?? config.policy.defaultObserveMs,
  };
  const spec = checkPatch(request, {
    maxTtlMs: config.patches.maxTtlMs,
    maxObserveMs: config.policy.maxObserveMs,
  });
  return { request, spec };
}

export async function startVirtualPatch(
  { client, config }: ClientDeps,
  finding: PatchFinding,
): Promise<StartedPatch> {
  const { request, spec } = checkFinding(config, finding);
  const summary = describePatch(spec);
  const input: VirtualPatchInput = {
    request,
    approval: finding.approval ?? 'none',
    ...(finding.approval && finding.approval !== 'none' ? { approvalPolicy: config.approval } : {}),
    reason: finding.reason,
    detector: finding.detector,
    requestedBy: finding.requestedBy,
  };
  const workflowId = patchWorkflowId(spec.findingId);
  const sighting: Sighting = { at: new Date().toISOString(), detector: finding.detector, classes: {} };
  const { joined, description } = await openIncident<typeof virtualPatch>(client, {
    workflowType: 'virtualPatch',
    workflowId,
    taskQueue: config.temporal.taskQueue,
    args: [input],
    sighting,
    summary: `virtual patch ${spec.findingId}: ${summary} for up to ${formatDuration(request.ttlMs)}`,
    details: [
      `**Finding** ${spec.findingId} — ${finding.reason}`,
      `**Rule** ${summary}`,
      ...(spec.patterns && spec.kind === 'regex' ? [`**Pattern** \`${spec.patterns.join('`, `')}\``] : []),
      `**TTL** ${formatDuration(request.ttlMs)} (or until the fix is deployed) · **observe** ${formatDuration(request.observeMs)}`,
      `**Reported by** ${finding.detector} · **requested by** ${finding.requestedBy}`,
    ],
    targets: [patchScope(request)],
    action: 'block',
    detector: finding.detector,
  });
  return {
    workflowId,
    findingId: spec.findingId,
    summary,
    ttlMs: request.ttlMs,
    joined,
    state: description?.typedSearchAttributes.get(searchAttributes.state) ?? 'validating',
  };
}

export interface RetireResult {
  workflowId: string;
  /** False when the patch had already ended: nothing was left to retire. */
  accepted: boolean;
  /** The patch's state after the signal (or its final state). */
  state: string;
  /** The patch had ended without removing its rule (terminated by hand, say): the rule was removed now. */
  removedLeftover?: boolean;
}

/** The WAF side of a retire, for a patch whose workflow ended without taking its rule out. */
export type PatchRules = Pick<PatchGateway, 'check' | 'release'>;

/** A blank commit is refused: the record must say what fixed the finding. */
export class RetireInputError extends Error {
  override name = 'RetireInputError';
}

/**
 * Tells the finding's patch that the fix is deployed: it removes its rule and ends. Retiring a
 * patch that has already ended is not an error (a pipeline re-run); a finding that never had a
 * patch is (WorkflowNotFoundError). With `rules`, a rule an ended patch left in the web ACL (its
 * workflow terminated by hand skips the clean-up) is removed: the fix is deployed, nothing owns it.
 */
export async function retireVirtualPatch(
  client: Client,
  findingId: string,
  fix: { commit: string; by: string },
  rules?: PatchRules,
): Promise<RetireResult> {
  if (!fix.commit.trim())
    throw new RetireInputError('the commit (or release) that fixed the finding is required');
  const workflowId = patchWorkflowId(findingId);
  const handle = client.workflow.getHandle<typeof virtualPatch>(workflowId);
  try {
    await handle.signal(fixDeployedSignal, { commit: fix.commit, by: fix.by });
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    const description = await handle.describe(); // throws WorkflowNotFoundError for an unknown finding
    const status = await handle.query(statusQuery).catch(() => undefined);
    const state = status?.state ?? description.status.name.toLowerCase();
    // No open workflow owns the finding's rule now: if one is still in the web ACL, it was left behind.
    if (rules && (await rules.check(findingId))) {
      await rules.release(findingId);
      return { workflowId, accepted: false, state, removedLeftover: true };
    }
    return { workflowId, accepted: false, state };
  }
  const status = await handle.query(statusQuery).catch(() => undefined);
  return { workflowId, accepted: true, state: status?.state ?? 'releasing' };
}

/** Waits until the finding's patch has ended (its rule removed); its final status. */
export async function waitForPatchEnd(
  client: Client,
  findingId: string,
  timeoutMs: number,
): Promise<IncidentStatus> {
  const handle = client.workflow.getHandle<typeof virtualPatch>(patchWorkflowId(findingId));
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(
      () => reject(new Error(`${handle.workflowId} did not end within ${formatDuration(timeoutMs)}`)),
      timeoutMs,
    ).unref(),
  );
  try {
    return await Promise.race([handle.result(), timeout]);
  } catch (err) {
    // A patch refused or failed still answers its status; the caller says what happened.
    if ((err as Error).message.includes('did not end within')) throw err;
    return handle.query(statusQuery);
  }
}
