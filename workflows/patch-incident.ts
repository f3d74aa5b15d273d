/**
 * A virtual patch's in-workflow state: an Incident (evidence, timeline, approval, TTL, the
 * decide/extend/release Updates) whose remediation is a WAF rule, plus the `fixDeployed` signal
 * that retires it.
 */
import { setHandler } from '@temporalio/workflow';
import { formatDuration } from './durations';
import {
  fixDeployedSignal,
  patchScope,
  type FixDeployed,
  type FixRecord,
  type IncidentStatus,
  type LedgerWhat,
  type PatchCarryOver,
  type PatchRuleAction,
  type PatchSpec,
  type RemediationInput,
  type VirtualPatchInput,
} from './definitions';
import { Incident } from './incident';

function asIncidentInput(input: VirtualPatchInput): RemediationInput {
  return {
    targets: [patchScope(input.request)],
    action: 'block',
    ttlMs: input.request.ttlMs,
    observeMs: input.request.observeMs,
    approval: input.approval,
    ...(input.approvalPolicy ? { approvalPolicy: input.approvalPolicy } : {}),
    reason: input.reason,
    detector: input.detector,
    requestedBy: input.requestedBy,
    ...(input.resumed ? { resumed: input.resumed } : {}),
  };
}

export class PatchIncident extends Incident {
  readonly findingId: string;
  /** Set by the validate step (or carried over). */
  spec: PatchSpec | undefined;
  rule = '';
  summary = '';
  /** The rule's action in the web ACL, recorded before each write: what the release step removes. */
  placed: PatchRuleAction | undefined;
  /** The rule's priority in the web ACL, once placed (for the ledger). */
  priority: number | undefined;
  fix: FixRecord | undefined;

  constructor(readonly patchInput: VirtualPatchInput) {
    super(asIncidentInput(patchInput));
    this.findingId = patchInput.request.findingId;
    const r = patchInput.resumed;
    if (r) {
      this.spec = r.spec;
      this.rule = r.rule;
      this.summary = r.summary;
      this.placed = r.placed;
      this.priority = r.priority;
    }
  }

  override listen(): void {
    super.listen();
    setHandler(fixDeployedSignal, (fix) => this.fixDeployed(fix));
  }

  /** The fix is live: the patch has done its job. A repeat (a re-run pipeline) changes nothing. */
  fixDeployed({ commit, by }: FixDeployed): void {
    if (this.fix) return;
    this.fix = { commit, by, at: new Date().toISOString() };
    const message = `fix deployed: commit ${commit} (reported by ${by}); retiring the patch`;
    if (!this.requestRelease(by, `fix deployed in ${commit}`, message)) {
      this.note(
        'hold',
        `fix deployed: commit ${commit} (reported by ${by}); the patch is already ${this.state}`,
      );
    }
  }

  carryOverPatch(): PatchCarryOver {
    if (!this.spec) throw new Error('only a validated patch can continue as new');
    return {
      ...this.carryOver({}),
      spec: this.spec,
      rule: this.rule,
      summary: this.summary,
      ...(this.placed ? { placed: this.placed } : {}),
      ...(this.priority !== undefined ? { priority: this.priority } : {}),
    };
  }

  override ledgerEntry(): LedgerWhat | undefined {
    if (!this.spec || this.appliedAt === undefined) return undefined;
    return {
      kind: 'patch',
      findingId: this.findingId,
      spec: this.spec,
      priority: this.priority ?? 0,
      action: this.placed && this.placed !== 'count' ? this.placed : this.action,
    };
  }

  protected override details(): string[] {
    const last = this.timeline[this.timeline.length - 1];
    return [
      `**${this.state}${this.dryRun ? ' (dry-run)' : ''}** — virtual patch ${this.findingId}: ${this.summary || patchScope(this.patchInput.request)}`,
      this.rule ? `rule ${this.rule}: ${this.placed ?? 'not in the web ACL'}` : '',
      this.expiresAt !== undefined
        ? `expires ${new Date(this.expiresAt).toISOString()} unless the fix ships first`
        : `TTL ${formatDuration(this.ttlMs)}`,
      `evidence: ${this.evidence.requests} matching requests in ${this.evidence.sightings} sightings`,
      this.fix ? `fix deployed: ${this.fix.commit} (${this.fix.by})` : '',
      last ? `last: ${last.message}` : '',
    ];
  }

  override status(): IncidentStatus {
    return {
      ...super.status(),
      patch: {
        findingId: this.findingId,
        rule: this.rule,
        summary: this.summary,
        ...(this.spec ? { spec: this.spec } : {}),
        ...(this.placed ? { ruleAction: this.placed } : {}),
        ...(this.fix ? { fix: this.fix } : {}),
      },
    };
  }
}
