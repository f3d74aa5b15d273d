/**
 * The contract shared by workflows, activities, the client, the CLI and (later) the Slack app
 * and detectors: message names, input and state types, search-attribute keys, workflow IDs.
 * Imports only Temporal packages and pure domain types.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';
import type { PolicyLimits, RemediationAction, SetAction } from '../src/domain/policy';
import type { IdentityHints } from '../src/policy/context';
import type { PatchRequest, PatchSpec } from '../src/domain/virtual-patch';
import type { PatchRuleAction } from '../src/waf/patch-rules';

export type { RemediationAction, SetAction, PolicyLimits, PatchRequest, PatchSpec, PatchRuleAction };

export const DEFAULT_TASK_QUEUE = 'perimeter';

/** How a remediation is approved: not at all, or by a person (Slack buttons, or the CLI). */
export type ApprovalMode = 'none' | 'slack';

export type Decision = 'approve' | 'approve-challenge' | 'deny';

export interface ApprovalPolicy {
  /** Who may decide (Slack user IDs). With no approvers and no group, anyone who can reach the workflow may. */
  approvers: string[];
  /** A Slack user group whose members may decide; membership is checked by the Slack app against Slack. */
  approverGroup?: string;
  /** How long to wait for a decision. */
  timeoutMs: number;
  /** What happens when nobody answers in time. */
  onTimeout: 'deny' | 'approve';
}

/** One detector report about one incident; many arrive per incident as `sighting` signals. */
export interface Sighting {
  /** ISO timestamp of the last request this sighting covers. */
  at: string;
  /** First request covered, when the batch spans a window. */
  firstAt?: string;
  detector: string;
  /** The address the requests came from, when the incident holds several (a campaign). */
  source?: string;
  /** Attack requests seen, by class (sqli, xss, traversal, scanner, manual, …). */
  classes: Record<string, number>;
  /** A few raw request lines, for people to read. */
  samples?: string[];
  /** Authenticated requests seen from the target in the same window. */
  authenticated?: number;
}

export interface RemediationInput {
  /** Addresses or CIDRs, as given; the validate step normalises them. */
  targets: string[];
  action: RemediationAction;
  ttlMs: number;
  /** Dry-run window: targets sit in the count set while evidence accumulates. 0 skips it. */
  observeMs: number;
  approval: ApprovalMode;
  /** Required when `approval` is not `none`. */
  approvalPolicy?: ApprovalPolicy;
  reason: string;
  /** What raised the incident: a detector name, `cli`, `ingest`, … */
  detector: string;
  /** Who or what asked, for the timeline (a user name, a host). */
  requestedBy: string;
  /** What the detection knows of who is behind the target: looked up by the policy's identity source. */
  identity?: IdentityHints;
  /** Set only by continue-as-new: the incident so far, held and waiting out its TTL. */
  resumed?: IncidentCarryOver;
}

/** What a long-held incident carries into its next run. */
export interface IncidentCarryOver {
  run: number;
  targets: string[];
  limits: PolicyLimits;
  ttlMs: number;
  appliedAt: number;
  expiresAt: number;
  /** CIDRs this incident added, per set: what its release step removes. */
  held: Partial<Record<SetAction, string[]>>;
  evidence: Evidence;
  timeline: TimelineEntry[];
  /** Absent in carry-overs written before approvals existed. */
  action?: RemediationAction;
  decision?: DecisionRecord;
  approvalMessage?: { channel: string; ts: string };
  dryRun?: boolean;
  /** Absent (false) in carry-overs written before the IaC ledger existed. */
  ledger?: boolean;
  policyNotes?: string[];
  /** Absent in carry-overs written before the policy could require approval. */
  approval?: ApprovalMode;
  approvalPolicy?: ApprovalPolicy;
}

export type IncidentState =
  | 'validating'
  | 'observing'
  | 'awaiting-approval'
  | 'applying'
  | 'active'
  | 'releasing'
  | 'released'
  | 'stood-down'
  | 'rejected';

export type TimelineStep =
  'detect' | 'validate' | 'observe' | 'approve' | 'apply' | 'hold' | 'release' | 'record';

export interface TimelineEntry {
  at: string;
  step: TimelineStep;
  message: string;
}

export interface Evidence {
  sightings: number;
  requests: number;
  byClass: Record<string, number>;
  samples: string[];
  authenticated: number;
  detectors: string[];
  firstSeen?: string;
  lastSeen?: string;
}

export interface DecisionRecord {
  decision: Decision;
  /** A Slack user ID, a CLI user, or `timeout`. */
  by: string;
  at: string;
  /** True when nobody answered and the policy's default was applied. */
  byDefault: boolean;
  /** How long it waited, when the default was applied. */
  waitedMs?: number;
}

export interface IncidentStatus {
  state: IncidentState;
  approval: ApprovalMode;
  decision?: DecisionRecord;
  targets: string[];
  action: RemediationAction;
  reason: string;
  detector: string;
  ttlMs: number;
  observeMs: number;
  /** ISO; set once the remediation is applied. */
  appliedAt?: string;
  expiresAt?: string;
  releasedAt?: string;
  evidence: Evidence;
  timeline: TimelineEntry[];
  /** The incident ran under the global dry-run switch: the WAF was never written. */
  dryRun?: boolean;
  /** The policy's decisions about this incident, one line each. */
  policy?: string[];
  /** Present for virtual patches: the rule and its lifecycle. */
  patch?: PatchStatus;
  /** What the incident put in which set and has not taken out yet: what the reconciler expects there. */
  held?: Partial<Record<SetAction, string[]>>;
}

/** A CI/CD pipeline's word that the code fix for a finding is deployed: the patch is retired. */
export interface FixDeployed {
  commit: string;
  by: string;
}

export interface FixRecord extends FixDeployed {
  at: string;
}

export interface VirtualPatchInput {
  /** Checked by the client; the validate step checks it again with the worker's caps. */
  request: PatchRequest;
  approval: ApprovalMode;
  approvalPolicy?: ApprovalPolicy;
  reason: string;
  /** What found it: a scanner, `cli`, `ingest`, … */
  detector: string;
  requestedBy: string;
  /** Set only by continue-as-new: the patch so far, in place and waiting out its TTL. */
  resumed?: PatchCarryOver;
}

/** The part of a ledger change that says what happened; who, why and when come from the incident. */
export type LedgerWhat =
  | { kind: 'ip'; action: RemediationAction; cidrs: string[] }
  | { kind: 'patch'; findingId: string; spec: PatchSpec; priority: number; action: PatchRuleAction };

export interface PatchCarryOver extends IncidentCarryOver {
  spec: PatchSpec;
  rule: string;
  summary: string;
  /** The action the rule has in the web ACL: what the release step takes out. */
  placed?: PatchRuleAction;
  priority?: number;
}

export interface PatchStatus {
  findingId: string;
  /** The rule's name in the web ACL. */
  rule: string;
  /** One line: `sqli in query:q of GET /api/search`. */
  summary: string;
  spec?: PatchSpec;
  /** What the rule does now; absent when it is not in the web ACL. */
  ruleAction?: PatchRuleAction;
  fix?: FixRecord;
}

export interface ReleaseRequest {
  by: string;
  reason?: string;
}

export interface ReleaseResult {
  state: IncidentState;
  /** False when the incident was already releasing or released: nothing changed. */
  accepted: boolean;
}

export interface ExtendRequest {
  by: string;
  /** Added to the current expiry. */
  byMs: number;
}

export interface ExtendResult {
  /** Set once the remediation is applied; while observing, only the TTL grows. */
  expiresAt?: string;
  ttlMs: number;
}

export interface DecideRequest {
  decision: Decision;
  by: string;
  /** Set by the Slack app when it has verified with Slack that `by` belongs to this user group. */
  verifiedGroup?: string;
}

export interface DecideResult extends DecisionRecord {
  state: IncidentState;
  action: RemediationAction;
  expiresAt?: string;
}

export const decideUpdate = defineUpdate<DecideResult, [DecideRequest]>('decide');
export const sightingSignal = defineSignal<[Sighting]>('sighting');
export const releaseUpdate = defineUpdate<ReleaseResult, [ReleaseRequest]>('release');
export const extendUpdate = defineUpdate<ExtendResult, [ExtendRequest]>('extend');
export const statusQuery = defineQuery<IncidentStatus>('status');
export const fixDeployedSignal = defineSignal<[FixDeployed]>('fixDeployed');

export const searchAttributes = {
  target: defineSearchAttributeKey('PerimeterTarget', SearchAttributeType.KEYWORD_LIST),
  action: defineSearchAttributeKey('PerimeterAction', SearchAttributeType.KEYWORD),
  state: defineSearchAttributeKey('PerimeterState', SearchAttributeType.KEYWORD),
  detector: defineSearchAttributeKey('PerimeterDetector', SearchAttributeType.KEYWORD),
  expiresAt: defineSearchAttributeKey('PerimeterExpiresAt', SearchAttributeType.DATETIME),
} as const;

/** `temporal server start-dev --search-attribute` arguments, and what `perimeter dev` registers. */
export const SEARCH_ATTRIBUTE_TYPES: Record<string, string> = {
  PerimeterTarget: 'KeywordList',
  PerimeterAction: 'Keyword',
  PerimeterState: 'Keyword',
  PerimeterDetector: 'Keyword',
  PerimeterExpiresAt: 'Datetime',
};

export const WORKFLOW_ID_PREFIX = 'perimeter/';

/** One workflow per target: its ID is the normalised CIDR, so a repeat detection joins it. */
export function ipWorkflowId(cidr: string): string {
  return `${WORKFLOW_ID_PREFIX}ip/${cidr}`;
}

export const CAMPAIGN_ID_PREFIX = `${WORKFLOW_ID_PREFIX}campaign/`;

/**
 * One workflow for a burst: many sources crossing one detector rule together share one
 * approval, one message and one TTL. The window start and a digest of the targets make a replayed
 * burst join its campaign, while two different bursts in the same second stay apart.
 */
export function campaignWorkflowId(
  detector: string,
  windowStart: number,
  targets: readonly string[],
): string {
  const name = detector.replace(/[^A-Za-z0-9._-]/g, '-');
  return `${CAMPAIGN_ID_PREFIX}${name}/${new Date(windowStart).toISOString()}/${digest([...targets].sort().join(','))}`;
}

export const PATCH_ID_PREFIX = `${WORKFLOW_ID_PREFIX}vpatch/`;

/** One workflow per finding: a scanner reporting the same finding again joins the open patch. */
export function patchWorkflowId(findingId: string): string {
  return `${PATCH_ID_PREFIX}${findingId}`;
}

/** What a patch protects, as a target people can read: `GET /api/search`, `any /files/*`. */
export function patchScope(request: Pick<PatchRequest, 'method' | 'path' | 'match'>): string {
  const method = request.method ? request.method.toUpperCase() : 'any';
  return `${method} ${request.path}${request.match === 'prefix' ? '*' : ''}`;
}

/** FNV-1a, 32 bits, as 8 hex digits: short, stable, pure. */
function digest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
