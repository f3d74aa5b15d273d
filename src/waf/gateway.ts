/**
 * The verbs every WAF backend offers. Targets are normalised CIDRs (see domain/targets); each
 * goes to the set for its action and address family.
 */
import type { SetAction } from '../domain/policy';

export interface SetChangeResult {
  /** Sets that were written (read-modify-write) by this call. */
  setsWritten: string[];
  /** CIDRs this call changed: added by `apply`, removed by `release`. */
  changed: string[];
  /** CIDRs that were already as wanted (already present / already gone): no-ops. */
  unchanged: string[];
  /** UpdateIPSet calls refused for a stale lock token and re-applied. */
  lockConflicts: number;
}

export interface CheckResult {
  present: string[];
  absent: string[];
}

export interface CallOptions {
  /** Aborts the call; no write starts after it fires (the caller's deadline or cancellation). */
  signal?: AbortSignal;
  /** `apply` only: told what each write carrying this call's additions adds (see `AddWatcher`). */
  adds?: AddWatcher;
}

/**
 * Told, as each write carrying a call's additions is sent, which of its addresses that write
 * adds; and again if AWS refused that write outright (a stale lock token, throttling), so it
 * added nothing. What was sent and not refused is what may be in a set because of the call,
 * even when its answer never came.
 */
export interface AddWatcher {
  sending(cidrs: string[]): void;
  refused(cidrs: string[]): void;
}

export interface WafGateway {
  /** Adds the CIDRs to the action's sets; adding one already present is a no-op. */
  apply(action: SetAction, cidrs: string[], options?: CallOptions): Promise<SetChangeResult>;
  /** Removes the CIDRs from the action's sets; removing one already gone is a no-op. */
  release(action: SetAction, cidrs: string[], options?: CallOptions): Promise<SetChangeResult>;
  /** Reports which of the CIDRs the action's sets hold. */
  check(action: SetAction, cidrs: string[], options?: CallOptions): Promise<CheckResult>;
}
