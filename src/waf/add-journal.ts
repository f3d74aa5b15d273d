/**
 * What this worker process's writes may have added, per incident run and action. An add tried
 * again after an answer that never came cannot tell from the set alone whether an address there
 * is its own earlier write or someone else's; this memory can, for tries all made here.
 *
 * Only tries that failed are kept (what follows them is a retry in the same process, or a later
 * add of the same run), and at most `max` of them: past that the least recently tried go. A
 * later try of a run whose entry went finds none, and is not judged from memory.
 */
import type { AddWatcher } from './gateway';

/** One run's adds to one action's sets, over its tries: watches each try's writes. */
export class AddTry implements AddWatcher {
  /** Writes sent to add each address and not refused (counted: a refusal undoes one send). */
  private readonly sent = new Map<string, number>();

  /** `whole`: the first try, and every try since, recorded here. */
  constructor(readonly whole: boolean) {}

  sending(cidrs: string[]): void {
    for (const c of cidrs) this.sent.set(c, (this.sent.get(c) ?? 0) + 1);
  }

  refused(cidrs: string[]): void {
    for (const c of cidrs) {
      const n = (this.sent.get(c) ?? 0) - 1;
      if (n > 0) this.sent.set(c, n);
      else this.sent.delete(c);
    }
  }

  /** Every address a write of the run's tries was sent to add, and not refused. */
  sentAddresses(): string[] {
    return [...this.sent.keys()];
  }

  /**
   * Of the addresses the set already held (`present`), those no recorded write may have added:
   * someone else's, when every try was recorded here. Undefined when not.
   */
  notAdded(present: string[]): string[] | undefined {
    return this.whole ? present.filter((c) => !this.sent.has(c)) : undefined;
  }
}

export class AddJournal {
  private readonly runs = new Map<string, AddTry>();
  /** Whether an entry was ever dropped for the bound: then a missing entry proves nothing. */
  private dropped = false;

  constructor(private readonly max = 20_000) {}

  /**
   * A try of the run's add begins. `first`: the workflow knows of no earlier try (the first
   * attempt of an add that nothing may have preceded). `earlier`: this process knows of one all
   * the same (the prepare step's add before the apply step's; a retry that began before a stalled
   * first attempt did). A retry with no entry follows tries this process did not record.
   */
  begin(runId: string, action: string, first: boolean): { entry: AddTry; earlier: boolean } {
    const key = `${runId} ${action}`;
    const known = this.runs.get(key);
    this.runs.delete(key); // re-inserted last: the least recently tried go first
    const entry = known ?? new AddTry(first);
    this.runs.set(key, entry);
    for (const oldest of this.runs.keys()) {
      if (this.runs.size <= this.max) break;
      this.runs.delete(oldest);
      this.dropped = true;
    }
    return { entry, earlier: known !== undefined };
  }

  /**
   * The run's failed tries as recorded here; `null` when there were none (this process never
   * dropped an entry, so none is missing); undefined when it cannot tell.
   */
  recorded(runId: string, action: string): AddTry | null | undefined {
    const entry = this.runs.get(`${runId} ${action}`);
    if (entry) return entry.whole ? entry : undefined;
    return this.dropped ? undefined : null;
  }

  /** The try got its answer: the add is done, and nothing tries it again in this workflow task. */
  done(runId: string, action: string): void {
    this.runs.delete(`${runId} ${action}`);
  }

  /** Failed tries kept, awaiting a retry. */
  get size(): number {
    return this.runs.size;
  }
}
