/**
 * The log-only backend (fail2ban's `dummy` action): the same verbs, nothing written. Under the
 * global dry-run switch every incident runs in full — validation, observation, approval, TTL,
 * release — and this is all the WAF ever sees of it.
 */
import type { SetAction } from '../domain/policy';
import type { CheckResult, SetChangeResult, WafGateway } from './gateway';

export class DryRunGateway implements WafGateway {
  constructor(private readonly log: (line: string) => void) {}

  async apply(action: SetAction, cidrs: string[]): Promise<SetChangeResult> {
    this.log(`dry-run: would add ${cidrs.join(', ')} to the ${action} set`);
    return { setsWritten: [], changed: cidrs, unchanged: [], lockConflicts: 0 };
  }

  async release(action: SetAction, cidrs: string[]): Promise<SetChangeResult> {
    this.log(`dry-run: would remove ${cidrs.join(', ')} from the ${action} set`);
    return { setsWritten: [], changed: cidrs, unchanged: [], lockConflicts: 0 };
  }

  /** Nothing is ever in a set that is never written. */
  async check(_action: SetAction, cidrs: string[]): Promise<CheckResult> {
    return { present: [], absent: cidrs };
  }
}
