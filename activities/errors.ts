/**
 * Failure types crossing the activity → workflow boundary, in one place. AWS errors keep their
 * own names as the failure type (e.g. `WAFOptimisticLockException`) so retry policies can name them.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ErrorTypes, NON_RETRYABLE_WAF_ERRORS } from '../workflows/failure-types';

export { ErrorTypes, NON_RETRYABLE_WAF_ERRORS };

/**
 * Turns an AWS SDK (or gateway) error into an ApplicationFailure typed by the error's name.
 * The SDK reports errors it has no model for as `WAFV2ServiceException`; the original name from
 * the response, when there is one, is the more useful type.
 */
export function toApplicationFailure(
  err: unknown,
  options: { alwaysRetryable?: boolean } = {},
): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const raw =
    (e as { $response?: unknown; Code?: string; code?: string }).Code ?? (e as { code?: string }).code;
  const type = e.name === 'WAFV2ServiceException' && raw ? raw : e.name;
  return ApplicationFailure.create({
    type,
    message: e.message,
    nonRetryable: !options.alwaysRetryable && NON_RETRYABLE_WAF_ERRORS.includes(type),
  });
}
