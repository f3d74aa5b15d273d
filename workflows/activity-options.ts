/**
 * Retry and timeout policies for the workflows' activities, written out once: what may be
 * retried, for how long, and what never is.
 */
import type { ActivityOptions, LocalActivityOptions } from '@temporalio/workflow';
import { ErrorTypes, NON_RETRYABLE_WAF_ERRORS } from './failure-types';

/** Policy checks: a refusal is final; anything else is tried a few times. */
export const validateOptions: ActivityOptions = {
  startToCloseTimeout: '10s',
  retry: {
    initialInterval: '200ms',
    maximumAttempts: 5,
    nonRetryableErrorTypes: [ErrorTypes.PolicyRejected],
  },
};

/** Writes that put a remediation in place: retried a while, then the incident fails (and cleans up). */
export const applyOptions: ActivityOptions = {
  startToCloseTimeout: '30s',
  // Time-boxed rather than counted: a burst can queue behind AWS's write rate for minutes.
  scheduleToCloseTimeout: '10m',
  retry: {
    initialInterval: '200ms',
    backoffCoefficient: 2,
    maximumInterval: '10s',
    nonRetryableErrorTypes: NON_RETRYABLE_WAF_ERRORS,
  },
};

/** Writes that take a remediation away: retried until they succeed — nothing is left behind. */
export const releaseOptions: ActivityOptions = {
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1m' },
};

/**
 * The steps that only read (policy checks, a look at the set), as local activities: the worker
 * runs them inside the workflow task, without an activity-task round trip, and the history keeps
 * one marker per step instead of three events and a workflow task. Queries and Updates sent
 * meanwhile are answered once the task is done.
 */
export const validateLocalOptions: LocalActivityOptions = {
  startToCloseTimeout: validateOptions.startToCloseTimeout,
  retry: validateOptions.retry,
};

/** Reading a WAF set: retried a while like the writes, with the same errors final. */
export const readLocalOptions: LocalActivityOptions = {
  startToCloseTimeout: '30s',
  scheduleToCloseTimeout: applyOptions.scheduleToCloseTimeout,
  retry: applyOptions.retry,
};

/**
 * An add made in the incident's first workflow task, as a local activity: the same deadlines
 * and retries as the activity, so a queue of writes behind AWS's write rate is waited out the
 * same way (the worker keeps the task alive meanwhile). Every retry interval (at most 10 s)
 * stays under the local retry threshold, so all tries run in that task on that worker: a retry
 * tells someone else's addresses from its earlier tries' writes by the worker's memory of them
 * (activities/index.ts `othersFound`). Past the threshold a retry would wait on a timer, and
 * could run on another worker.
 */
export const addLocalOptions: LocalActivityOptions = {
  startToCloseTimeout: applyOptions.startToCloseTimeout,
  scheduleToCloseTimeout: applyOptions.scheduleToCloseTimeout,
  retry: applyOptions.retry,
  localRetryThreshold: '1 minute',
};

/**
 * A release tried in the workflow task that ends the hold: a few quick attempts, then the
 * incident hands it to an activity (`releaseOptions`) that retries without end. The deadline
 * keeps that task short enough to stay with its worker under a queue of writes.
 */
export const quickReleaseOptions: LocalActivityOptions = {
  startToCloseTimeout: '20s',
  scheduleToCloseTimeout: '45s',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '5s', maximumAttempts: 3 },
};
