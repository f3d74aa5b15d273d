/** The body of `POST /v1/detections`: what WAF alarms, scanners and SIEMs send. */
import { z } from 'zod';
import { durationText } from '../domain/duration-schema';
import { REMEDIATION_ACTIONS } from '../domain/policy';

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
