/**
 * The client path every caller uses — detectors, the CLI, later the ingest endpoint and Slack:
 * check the request locally (bad input starts nothing), then signal-with-start the target's
 * incident workflow so a repeat detection joins the open incident instead of blocking twice.
 */
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import type { Config } from '../config';
import { clientPolicy } from '../policy/store';
import { withCaps } from '../policy/policy';
import type { IdentityHints } from '../policy/context';
import { formatDuration } from '../domain/durations';
import { checkRemediation, type PolicyLimits, type RemediationAction } from '../domain/policy';
import type { AllowEntry } from '../domain/allowlist';
import { parseTarget, TargetError } from '../domain/targets';
import { checkFindingId } from '../domain/virtual-patch';
import {
  decideUpdate,
  extendUpdate,
  CAMPAIGN_ID_PREFIX,
  ipWorkflowId,
  patchWorkflowId,
  releaseUpdate,
  searchAttributes,
  sightingSignal,
  statusQuery,
  type ApprovalMode,
  type DecideRequest,
  type DecisionRecord,
  type ExtendResult,
  type IncidentStatus,
  type ReleaseResult,
  type RemediationInput,
  type Sighting,
  WORKFLOW_ID_PREFIX,
} from '../../workflows/definitions';
import type { remediate } from '../../workflows/remediate';
import { searchableTargets, targetList } from '../../workflows/target-list';
import { openIncident } from './open-incident';

export class IncidentEndedError extends Error {
  override name = 'IncidentEndedError';
  constructor(
    readonly workflowId: string,
    readonly state: IncidentStatus['state'],
  ) {
    super(`${workflowId} has already ended (${state})`);
  }
}

export interface Detection {
  targets: string[];
  /** Defaults to block. */
  action?: string;
  /** Defaults to the configured default TTL. */
  ttlMs?: number;
  /** Defaults to the configured default observation window. */
  observeMs?: number;
  reason: string;
  detector: string;
  requestedBy: string;
  /** `slack`: a person approves before anything is applied. Defaults to `none`. */
  approval?: ApprovalMode;
  /** Who is behind the target, as far as the detection knows: the policy's identity lookup uses it. */
  identity?: IdentityHints;
  /** Evidence travelling with the detection; becomes the incident's first sighting. */
  evidence?: Omit<Sighting, 'detector' | 'at'> & { at?: string };
}

export interface StartedRemediation {
  workflowId: string;
  /** The target, or for a campaign a short list of them. */
  target: string;
  targets: string[];
  /** What this request asked for. */
  action: RemediationAction;
  ttlMs: number;
  /** True when the target already had an open incident: the request added evidence to it. */
  joined: boolean;
  /** The incident as it stands (a joined incident keeps its own action and expiry). */
  incident: { action: string; state: string; expiresAt: string | undefined };
}

export interface ClientDeps {
  client: Client;
  config: Config;
}

function limitsOf(config: Config) {
  return { ...config.policy };
}

/** The detection's request, checked against the client's copy of the policy (throws PolicyError). */
export function checkDetection(config: Config, detection: Detection, targets = detection.targets) {
  return checkRemediation(
    {
      targets,
      action: detection.action ?? 'block',
      ttlMs: detection.ttlMs ?? config.policy.defaultTtlMs,
      observeMs: detection.observeMs ?? config.policy.defaultObserveMs,
    },
    ...clientLimits(config),
  );
}

/** The client's copy of the limits and allowlist: the environment's, tightened by the policy file. */
export function clientLimits(config: Config): [PolicyLimits, AllowEntry[]] {
  const policy = clientPolicy(config);
  return [withCaps(limitsOf(config), policy), policy.allowlist];
}

/** The workflow input for checked targets of a detection. */
export function incidentInput(
  config: Config,
  detection: Detection,
  checked: ReturnType<typeof checkDetection>,
): RemediationInput {
  return {
    targets: checked.targets.map((t) => t.cidr),
    action: checked.action,
    ttlMs: checked.ttlMs,
    observeMs: checked.observeMs,
    approval: detection.approval ?? 'none',
    ...(detection.approval && detection.approval !== 'none' ? { approvalPolicy: config.approval } : {}),
    reason: withNotes(detection.reason, checked.notes),
    detector: detection.detector,
    requestedBy: detection.requestedBy,
    ...(detection.identity ? { identity: detection.identity } : {}),
  };
}

/** What the policy changed about the request travels in the reason, so the incident shows it. */
function withNotes(reason: string, notes: string[]): string {
  if (notes.length === 0) return reason;
  const shown = notes.length > 3 ? [...notes.slice(0, 3), `${notes.length - 3} more`] : notes;
  return `${reason} — policy: ${shown.join('; ')}`;
}

/** The detection's evidence as the incident's first sighting. */
export function firstSighting(detection: Detection): Sighting {
  return {
    classes: {},
    ...detection.evidence,
    at: detection.evidence?.at ?? new Date().toISOString(),
    detector: detection.detector,
  };
}

/**
 * Starts (or joins) one incident workflow per target. Throws PolicyError before starting anything.
 * A target that a running campaign already holds joins that campaign as a sighting.
 */
export async function startRemediation(
  deps: ClientDeps,
  detection: Detection,
): Promise<StartedRemediation[]> {
  const { config, client } = deps;
  const checked = checkDetection(config, detection);
  const sighting = firstSighting(detection);
  const campaigns = await openCampaignsHolding(
    client,
    checked.targets.map((t) => t.cidr),
  );
  const started: StartedRemediation[] = [];
  for (const target of checked.targets) {
    const notes = checked.notes.filter((n) => n.includes(` to ${target.cidr} `));
    const input = incidentInput(config, detection, { ...checked, targets: [target], notes });
    const campaign = campaigns.get(target.cidr);
    started.push(
      campaign
        ? await joinOpenIncident(deps, campaign, input, sighting)
        : await signalWithStartIncident(client, config, input, sighting),
    );
  }
  return started;
}

/**
 * How long one client's view of the running campaigns is reused. A detection must not cost a
 * visibility query (that is server time every incident pays for): a detector sending thousands
 * reads the campaigns once a second. A campaign this process starts is seen at once; one started
 * elsewhere within the last second is missed, as the visibility store's own lag can miss it, and
 * its target starts an incident of its own. A campaign the view names is described before a
 * detection joins it, so a stale view never sends evidence into one that is ending.
 */
export const CAMPAIGN_VIEW_MS = 1_000;

const campaignViews = new WeakMap<Client, { readAt: number; view: Promise<Map<string, string>> }>();

/** Running campaign incidents (by target) whose searchable target list names one of `cidrs`. */
async function openCampaignsHolding(client: Client, cidrs: string[]): Promise<Map<string, string>> {
  const view = await campaignView(client);
  const found = new Map<string, string>();
  for (const cidr of cidrs) {
    const workflowId = view.get(cidr);
    if (workflowId !== undefined) found.set(cidr, workflowId);
  }
  return found;
}

function campaignView(client: Client): Promise<Map<string, string>> {
  const now = Date.now();
  const cached = campaignViews.get(client);
  if (cached && now - cached.readAt < CAMPAIGN_VIEW_MS) return cached.view;
  const view = readCampaigns(client);
  campaignViews.set(client, { readAt: now, view });
  // A failed read is not kept: the next detection asks again (and this one reports the error).
  view.catch(() => campaignViews.get(client)?.view === view && campaignViews.delete(client));
  return view;
}

/** Every running campaign's searchable targets, from the visibility store: one query. */
async function readCampaigns(client: Client): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const query = `WorkflowType = 'remediate' AND ExecutionStatus = 'Running' AND WorkflowId STARTS_WITH '${CAMPAIGN_ID_PREFIX}'`;
  for await (const wf of client.workflow.list({ query })) {
    const sa = wf.typedSearchAttributes;
    if (isEnding(sa.get(searchAttributes.state) ?? '', sa.get(searchAttributes.expiresAt))) continue;
    for (const t of sa.get(searchAttributes.target) ?? []) if (!found.has(t)) found.set(t, wf.workflowId);
  }
  return found;
}

/**
 * Which of `cidrs` a running incident already holds, from the visibility store: one query per
 * hundred targets. A campaign lists only the first targets that fit in a search attribute.
 */
export async function findOpenIncidents(client: Client, cidrs: string[]): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const wanted = new Set(cidrs);
  for (let i = 0; i < cidrs.length; i += 100) {
    const chunk = cidrs.slice(i, i + 100).map((c) => `'${c.replace(/'/g, '')}'`);
    const query = `WorkflowType = 'remediate' AND ExecutionStatus = 'Running' AND PerimeterTarget IN (${chunk.join(', ')})`;
    for await (const wf of client.workflow.list({ query })) {
      const sa = wf.typedSearchAttributes;
      if (isEnding(sa.get(searchAttributes.state) ?? '', sa.get(searchAttributes.expiresAt))) continue;
      for (const t of wf.typedSearchAttributes.get(searchAttributes.target) ?? []) {
        if (wanted.has(t) && !found.has(t)) found.set(t, wf.workflowId);
      }
    }
  }
  return found;
}

/**
 * Adds a detection's evidence to the campaign the view says holds its target. A campaign that
 * has closed or is ending since the view was read takes nothing: the target gets its own incident.
 */
async function joinOpenIncident(
  deps: ClientDeps,
  workflowId: string,
  input: RemediationInput,
  sighting: Sighting,
): Promise<StartedRemediation> {
  const handle = deps.client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const sa = description.typedSearchAttributes;
  const state = sa.get(searchAttributes.state) ?? '?';
  if (description.status.name !== 'RUNNING' || isEnding(state, sa.get(searchAttributes.expiresAt))) {
    return signalWithStartIncident(deps.client, deps.config, input, sighting);
  }
  await handle.signal(sightingSignal, sighting);
  return {
    workflowId,
    target: targetList(input.targets),
    targets: input.targets,
    action: input.action,
    ttlMs: input.ttlMs,
    joined: true,
    incident: {
      action: sa.get(searchAttributes.action) ?? input.action,
      state,
      expiresAt: sa.get(searchAttributes.expiresAt)?.toISOString(),
    },
  };
}

const RELEASING_WAIT_MS = 30_000;

async function closesWithin(handle: WorkflowHandle, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const closed = handle.result().then(
    () => true as const,
    () => true as const,
  );
  try {
    return await Promise.race([closed, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** States of an incident that is still running but will not apply anything any more. */
export const ENDING_STATES = ['releasing', 'released', 'stood-down', 'rejected'];

/**
 * How close to its expiry an active incident counts as ending: its release runs in the task the
 * timer wakes and shows only once done, so a detection this near joins nothing and starts afresh.
 */
export const EXPIRY_MARGIN_MS = 5_000;

/** An incident that will not apply anything any more: an ending state, or active and (almost) expired. */
export function isEnding(state: string, expiresAt: Date | undefined, now = Date.now()): boolean {
  if (ENDING_STATES.includes(state)) return true;
  return state === 'active' && expiresAt !== undefined && expiresAt.getTime() <= now + EXPIRY_MARGIN_MS;
}

/**
 * Signal-with-start, and find out what happened: started a new incident, or joined the open one.
 * A detection that lands on an incident already on its way out waits for it to close and starts
 * a fresh one — evidence must never vanish into an incident that is releasing.
 */
export async function signalWithStartIncident(
  client: Client,
  config: Config,
  input: RemediationInput,
  sighting: Sighting,
  workflowId = ipWorkflowId(input.targets[0] ?? ''),
): Promise<StartedRemediation> {
  const target = targetList(input.targets);
  for (let attempt = 1; ; attempt++) {
    const { joined, description } = await openIncident<typeof remediate>(client, {
      workflowType: 'remediate',
      workflowId,
      taskQueue: config.temporal.taskQueue,
      args: [input],
      sighting,
      summary: `${input.action} ${target} for ${formatDuration(input.ttlMs)} — ${input.reason}`,
      details: [
        `**Target${input.targets.length > 1 ? `s (${input.targets.length})` : ''}** ${target}`,
        `**Action** ${input.action}`,
        `**TTL** ${formatDuration(input.ttlMs)} · **observe** ${formatDuration(input.observeMs)}`,
        `**Detector** ${input.detector} · **requested by** ${input.requestedBy}`,
        `**Reason** ${input.reason}`,
      ],
      targets: searchableTargets(input.targets),
      action: input.action,
      detector: input.detector,
    });
    // This process's next detections see the campaign without waiting for the view to expire.
    if (workflowId.startsWith(CAMPAIGN_ID_PREFIX)) campaignViews.delete(client);
    const sa = description?.typedSearchAttributes;
    const state = sa?.get(searchAttributes.state) ?? 'validating';
    if (description && joined && isEnding(state, sa?.get(searchAttributes.expiresAt)) && attempt < 3) {
      // Wait for that run (not whatever runs under the ID later) to close — but not forever: a
      // release that AWS keeps refusing is retried without end, and detectors must move on.
      const run = client.workflow.getHandle(workflowId, description.runId);
      if (await closesWithin(run, RELEASING_WAIT_MS)) continue;
    }
    return {
      workflowId,
      target,
      targets: input.targets,
      action: input.action,
      ttlMs: input.ttlMs,
      joined,
      incident: {
        action: sa?.get(searchAttributes.action) ?? input.action,
        state,
        expiresAt: sa?.get(searchAttributes.expiresAt)?.toISOString(),
      },
    };
  }
}

/** A workflow ID, a target whose incident ID is derived from its normalised CIDR, or a finding ID. */
export function resolveIncidentId(idOrTarget: string): string {
  if (idOrTarget.startsWith(WORKFLOW_ID_PREFIX)) return idOrTarget;
  try {
    return ipWorkflowId(parseTarget(idOrTarget).cidr);
  } catch (err) {
    // Not an address: a finding ID names its virtual patch (`perimeter show CVE-2026-1234`).
    if (err instanceof TargetError && !/[.:/]/.test(idOrTarget) && !checkFindingId(idOrTarget)) {
      return patchWorkflowId(idOrTarget);
    }
    throw err;
  }
}

function handleFor(client: Client, idOrTarget: string): WorkflowHandle<typeof remediate> {
  return client.workflow.getHandle<typeof remediate>(resolveIncidentId(idOrTarget));
}

export async function releaseRemediation(
  client: Client,
  idOrTarget: string,
  request: { by: string; reason?: string },
): Promise<ReleaseResult & { workflowId: string }> {
  try {
    return await updateOpenIncident(client, idOrTarget, releaseUpdate, request);
  } catch (err) {
    // An incident that already ended has nothing left to release: say so truthfully.
    if (!(err instanceof IncidentEndedError)) throw err;
    return { accepted: false, state: err.state, workflowId: err.workflowId };
  }
}

/** The final state of an incident that has closed; rethrows `err` when it is still open or unknown. */
async function endedState(
  handle: WorkflowHandle<typeof remediate>,
  err: unknown,
): Promise<IncidentStatus['state']> {
  if (!(err instanceof WorkflowNotFoundError)) throw err;
  const description = await handle.describe(); // throws WorkflowNotFoundError when there is no such incident
  if (description.status.name === 'RUNNING') throw err;
  const status = await handle.query(statusQuery).catch(() => undefined);
  return status?.state ?? 'released';
}

/** Runs an Update on an open incident; one that has already ended is reported as such. */
async function updateOpenIncident<Ret, Req>(
  client: Client,
  idOrTarget: string,
  update: UpdateDefinition<Ret, [Req]>,
  request: Req,
): Promise<Ret & { workflowId: string }> {
  const handle = handleFor(client, idOrTarget);
  for (let attempt = 1; ; attempt++) {
    try {
      const result = await handle.executeUpdate(update, { args: [request] });
      return { ...result, workflowId: handle.workflowId };
    } catch (err) {
      // Under load the workflow task carrying the Update can time out (a busy sticky worker);
      // the server then refuses the Update without applying it, so asking again is safe.
      if (attempt < 4 && updateNotDelivered(err)) {
        await new Promise((r) => setTimeout(r, 250 * attempt));
        continue;
      }
      throw new IncidentEndedError(handle.workflowId, await endedState(handle, err));
    }
  }
}

function updateNotDelivered(err: unknown): boolean {
  const e = err as { message?: string; cause?: { message?: string } };
  const text = `${e.message ?? ''} ${e.cause?.message ?? ''}`;
  return /unexpected workflow task failure/i.test(text);
}

export function decideRemediation(
  client: Client,
  idOrTarget: string,
  request: DecideRequest,
): Promise<DecisionRecord & { state: string; workflowId: string }> {
  return updateOpenIncident(client, idOrTarget, decideUpdate, request);
}

export function extendRemediation(
  client: Client,
  idOrTarget: string,
  request: { by: string; byMs: number },
): Promise<ExtendResult & { workflowId: string }> {
  return updateOpenIncident(client, idOrTarget, extendUpdate, request);
}

export async function incidentStatus(client: Client, idOrTarget: string): Promise<IncidentStatus> {
  return handleFor(client, idOrTarget).query(statusQuery);
}

const SETTLED = ['active', 'released', 'stood-down', 'rejected'];

/**
 * Waits until the incident has applied its remediation (or ended without it). Surfaces the
 * workflow's failure — a policy refusal, a WAF error — as the error it is.
 */
export async function waitUntilSettled(
  client: Client,
  workflowId: string,
  timeoutMs: number,
): Promise<IncidentStatus> {
  const handle = client.workflow.getHandle<typeof remediate>(workflowId);
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; ; delay = Math.min(delay * 2, 250)) {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING') {
      await handle.result(); // throws WorkflowFailedError when it failed
      return handle.query(statusQuery);
    }
    const status = await handle.query(statusQuery).catch(() => undefined);
    if (status && SETTLED.includes(status.state)) return status;
    if (Date.now() > deadline)
      throw new Error(`${workflowId} did not apply within ${formatDuration(timeoutMs)}`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

export interface ActiveRemediation {
  workflowId: string;
  targets: string[];
  action: string;
  state: string;
  detector: string;
  expiresAt: string | undefined;
  startedAt: string;
  /** Running under the global dry-run switch: nothing is written to the WAF. */
  dryRun: boolean;
  /** An IP remediation (one target or a campaign) or a virtual patch (a WAF rule). */
  kind: 'ip' | 'vpatch';
}

/** Open incidents, from Temporal's visibility store (search attributes only; no worker needed). */
export async function listRemediations(
  client: Client,
  options: { taskQueue?: string } = {},
): Promise<ActiveRemediation[]> {
  const out: ActiveRemediation[] = [];
  const onQueue = options.taskQueue ? ` AND TaskQueue = '${options.taskQueue.replace(/'/g, '')}'` : '';
  const query = `WorkflowType IN ('remediate', 'virtualPatch') AND ExecutionStatus = 'Running'${onQueue}`;
  for await (const wf of client.workflow.list({ query })) {
    const sa = wf.typedSearchAttributes;
    out.push({
      workflowId: wf.workflowId,
      targets: sa.get(searchAttributes.target) ?? [],
      action: sa.get(searchAttributes.action) ?? '?',
      state: sa.get(searchAttributes.state) ?? '?',
      detector: sa.get(searchAttributes.detector) ?? '?',
      expiresAt: sa.get(searchAttributes.expiresAt)?.toISOString(),
      startedAt: wf.startTime.toISOString(),
      dryRun: wf.memo?.dryRun === true,
      kind: wf.type === 'virtualPatch' ? 'vpatch' : 'ip',
    });
  }
  return out.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

export { WorkflowNotFoundError };
