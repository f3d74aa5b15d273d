/**
 * The policy in force. Re-read when the file changes (and on SIGHUP in the worker); a file that
 * does not validate is reported and the policy before it stays in force — a typo must never
 * open or close the perimeter.
 */
import { statSync } from 'node:fs';
import type { Config } from '../config';
import { loadPolicy, type Policy } from './policy';

export class PolicyStore {
  private policy: Policy;
  private stamp: string;
  private listeners: Array<(policy: Policy, previous: Policy) => void> = [];
  /** The last reload's problem, while the file stays invalid. */
  lastError: string | undefined;

  /** Throws when the policy cannot be loaded at all: nothing should start on a broken policy. */
  constructor(
    private readonly config: Config,
    private readonly log: (line: string) => void = () => undefined,
  ) {
    this.stamp = this.fileStamp();
    this.policy = loadPolicy(config);
  }

  current(): Policy {
    return this.policy;
  }

  onChange(listener: (policy: Policy, previous: Policy) => void): void {
    this.listeners.push(listener);
  }

  /** Re-reads the file if it changed (or always, when `force`); returns whether the policy changed. */
  reload(force = false): boolean {
    const stamp = this.fileStamp();
    if (!force && stamp === this.stamp) return false;
    this.stamp = stamp;
    let next: Policy;
    try {
      next = loadPolicy(this.config);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log(`policy not reloaded, the previous one stays in force:\n${this.lastError}`);
      return false;
    }
    this.lastError = undefined;
    const previous = this.policy;
    this.policy = next;
    this.log(
      `policy reloaded from ${next.source}: ${next.allowlist.length} allowlist entries${next.dryRun ? ', dry-run' : ''}`,
    );
    for (const listener of this.listeners) listener(next, previous);
    return true;
  }

  /** Reloads on SIGHUP and when the file changes; returns a function that stops watching. */
  watch(intervalMs = 1_000): () => void {
    const onHup = () => this.reload(true);
    process.on('SIGHUP', onHup);
    const timer = setInterval(() => this.reload(), intervalMs);
    timer.unref();
    return () => {
      process.off('SIGHUP', onHup);
      clearInterval(timer);
    };
  }

  private fileStamp(): string {
    const path = this.config.policyFile;
    if (!path) return '';
    try {
      const s = statSync(path);
      return `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {
      return 'missing';
    }
  }
}

const clientStores = new WeakMap<Config, { store: PolicyStore; checkedAt: number }>();

/** The policy for client-side checks (CLI, detectors, ingest): re-read at most every 2 s. */
export function clientPolicy(config: Config): Policy {
  let entry = clientStores.get(config);
  if (!entry) {
    entry = { store: new PolicyStore(config), checkedAt: Date.now() };
    clientStores.set(config, entry);
  } else if (Date.now() - entry.checkedAt > 2_000) {
    entry.checkedAt = Date.now();
    entry.store.reload();
  }
  return entry.store.current();
}
