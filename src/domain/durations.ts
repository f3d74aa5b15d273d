/**
 * Durations live with the workflow code, which may import nothing outside workflows/ but
 * types; everything else uses them from here.
 */
export { checkTtl, DurationError, formatDuration, parseDuration } from '../../workflows/durations';
