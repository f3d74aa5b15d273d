/** The body of `POST /v1/detections`: what WAF alarms, scanners and SIEMs send. */
import { z } from 'zod';
import { durationText } from '../domain/duration-schema';
import { REMEDIATION_ACTIONS } from '../domain/policy';
import { MAX_PATTERN_LENGTH, PATCH_KINDS, PATH_MATCHES } from '../domain/virtual-patch';

const duration = durationText;

export const MAX_TARGETS = 1_000;

export const detectionBody = z
  .strictObject({
    /** One address or CIDR … */
    target: z.string().min(1).max(64).optional(),
    /** … or several: more than one becomes a single campaign incident (one approval, one TTL). */
    targets: z.array(z.string().min(1).max(64)).min(1).max(MAX_TARGETS).optional(),
    kind: z.enum(['waf-alarm', 'scanner', 'siem', 'other']),
    reason: z.string().min(1).max(500),
    evidence: z
      .strictObject({
        classes: z.record(z.string().max(40), z.number().int().min(0).max(1e9)).default({}),
        samples: z.array(z.string().max(2_000)).max(10).optional(),
        firstSeen: z.iso.datetime().optional(),
        lastSeen: z.iso.datetime().optional(),
        authenticated: z.number().int().min(0).optional(),
      })
      .optional(),
    /** Suggested TTL, e.g. "30m"; the policy's cap still applies. */
    ttl: duration.optional(),
    action: z.enum(REMEDIATION_ACTIONS).optional(),
    observe: duration.optional(),
    approval: z.enum(['none', 'slack']).optional(),
    /** What the sender knows of who is behind the target; the policy's identity lookup uses it. */
    identity: z
      .strictObject({
        user: z.string().max(200).optional(),
        session: z.string().max(200).optional(),
        apiKey: z.string().max(200).optional(),
      })
      .optional(),
  })
  .refine((b) => (b.target === undefined) !== (b.targets === undefined), {
    message: 'give either "target" or "targets"',
    path: ['targets'],
  });

export type DetectionBody = z.infer<typeof detectionBody>;

/** The body of `POST /v1/virtual-patches`: what AST/DAST tools and CI pipelines send for a finding. */
export const patchBody = z.strictObject({
  findingId: z.string().min(1).max(60),
  path: z.string().min(1).max(200),
  match: z.enum(PATH_MATCHES).optional(),
  method: z.string().max(10).optional(),
  /** `uri`, `query`, `query:<name>`, `body`, `header:<name>`; defaults to `query`. */
  field: z.string().max(80).optional(),
  kind: z.enum(PATCH_KINDS),
  pattern: z.string().max(MAX_PATTERN_LENGTH).optional(),
  ttl: duration.optional(),
  observe: duration.optional(),
  approval: z.enum(['none', 'slack']).optional(),
  reason: z.string().min(1).max(500),
});

export type PatchBody = z.infer<typeof patchBody>;

/** The body of `POST /v1/virtual-patches/<finding-id>/retire`: the pipeline's word that the fix is live. */
export const retireBody = z.strictObject({
  commit: z.string().trim().min(1, 'name the commit or release that fixed it').max(100),
});
