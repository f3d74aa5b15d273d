/** A duration written as text ("90s", "15m", "1h30m") in any zod-validated input, as milliseconds. */
import { z } from 'zod';
import { DurationError, parseDuration } from './durations';

export function toMilliseconds(text: string, ctx: z.RefinementCtx): number {
  try {
    return parseDuration(text);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: err instanceof DurationError ? err.message : String(err) });
    return z.NEVER;
  }
}

export const durationText = z.string().max(40).transform(toMilliseconds);
