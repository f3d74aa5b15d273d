/**
 * Failure `type` strings crossing the activity → workflow boundary, in one place. They live
 * here because workflow code (retry policies) needs them as values; activities/errors.ts maps
 * errors to them. AWS errors keep their own names (e.g. `WAFOptimisticLockException`).
 */
export const ErrorTypes = {
  /** The request breaks policy: bad target, TTL, action. Never retried. */
  PolicyRejected: 'PolicyRejected',
  /** The managed IP set or web ACL is missing; `perimeter waf init` fixes it. */
  WafNotProvisioned: 'WAFNonexistentItemException',
  LockConflict: 'WAFOptimisticLockException',
  /** The IaC ledger's working copy cannot be used as configured (dirty, unwritable, …). */
  LedgerUnavailable: 'LedgerUnavailable',
  /** The ledger may be usable on another attempt: unrelated edits, another worker's lock, a remote away. */
  LedgerNotReady: 'LedgerNotReady',
} as const;

/** AWS WAF errors that another attempt cannot fix. */
export const NON_RETRYABLE_WAF_ERRORS = [
  'WAFInvalidParameterException',
  'WAFNonexistentItemException',
  'WAFLimitsExceededException',
  'WAFInvalidOperationException',
  'WAFDuplicateItemException',
  'AccessDeniedException',
  'UnrecognizedClientException',
];
