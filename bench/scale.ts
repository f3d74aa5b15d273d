/**
 * The scale benchmark: window of exposure, bursts behind AWS's write rate, throughput, and what
 * an incident costs — each next to a baseline measured in the same run on the same machine.
 */
import { NativeConnection, Worker } from '@temporalio/worker';
import { GetIPSetCommand, UpdateIPSetCommand, WAFV2Client } from '@aws-sdk/client-wafv2';
import fs from 'node:fs';
import { startCampaign } from '../src/client/campaign';
import { startRemediation, type Detection } from '../src/client/remediation';
import { managedSetName } from '../src/waf/names';
import { listIpSets } from '../src/waf/provision';
import { percentile, type BenchStack } from './stack';

const detection = (targets: string[], ttlMs = 3_600_000): Detection => ({
  targets,
  ttlMs,
  observeMs: 0,
  reason: 'bench',
  detector: 'bench',
  requestedBy: 'bench',
});

/** Distinct public test addresses: 100.64/10 is reserved, so use 11.0.0.0/8 and up (not on any allowlist). */
export function benchIp(i: number, base = 11): string {
  return `${base + Math.floor(i / 65_536)}.${Math.floor(i / 256) % 256}.${i % 256}.1`;
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

async function until(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 100,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await probe())) {
    if (performance.now() > deadline) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A worker for the baseline workflows, in this process; `pong` reports back when it runs. */
export async function startPingWorker(stack: BenchStack) {
  const ponged = new Map<string, () => void>();
  const connection = await NativeConnection.connect({ address: stack.config.temporal.address });
  const worker = await Worker.create({
    connection,
    taskQueue: 'bench-ping',
    workflowsPath: require.resolve('./ping-workflow'),
    activities: { pong: async (id: string) => ponged.get(id)?.() },
  });
  const running = worker.run();
  return {
    /** Start → the activity runs: the bare round trip. */
    async roundTrip(id: string): Promise<number> {
      const t0 = performance.now();
      const ran = new Promise<void>((resolve) => ponged.set(id, resolve));
      await stack.client.workflow.start('ping', { taskQueue: 'bench-ping', workflowId: id, args: [id] });
      await ran;
      ponged.delete(id);
      return performance.now() - t0;
    },
    /** Empty workflows started and completed per second. */
    async rawRate(n: number, tag: string): Promise<number> {
      const t0 = performance.now();
      await pool(
        Array.from({ length: n }, (_, i) => i),
        50,
        (i) => stack.client.workflow.execute('empty', { taskQueue: 'bench-ping', workflowId: `${tag}-${i}` }),
      );
      return n / ((performance.now() - t0) / 1000);
    },
    async stop() {
      worker.shutdown();
      await running;
      await connection.close();
    },
  };
}

export interface WoeResult {
  p50_ms: number;
  p99_ms: number;
  baseline_p50_ms: number;
  baseline_p99_ms: number;
  incidents: number;
}

export type PingWorker = Awaited<ReturnType<typeof startPingWorker>>;

/** Detection → address in the emulator's set, one at a time, next to the bare round trip. */
export async function windowOfExposure(stack: BenchStack, ping: PingWorker, n: number): Promise<WoeResult> {
  const baseline: number[] = [];
  for (let i = 0; i < 20; i++) await ping.roundTrip(`warm-${i}`);
  for (let i = 0; i < n; i++) baseline.push(await ping.roundTrip(`ping-${i}`));
  const woe: number[] = [];
  // Both sides warm up first: the baseline above with 20 round trips, the incidents with 20 of
  // their own (first use of each code path, set listing and lock token).
  const warm = 20;
  const throttle = stack.throttle;
  if (!throttle) throw new Error('the window of exposure is read at the proxy in front of the emulator');
  for (let i = 0; i < n + warm; i++) {
    const ip = benchIp(i, 21);
    const t0 = performance.now();
    await startRemediation(stack, detection([ip]));
    // The moment the emulator accepted the write that carried the address, seen at the proxy in
    // front of it: polling the set would load the emulator and add its own delay.
    const at = await throttle.added(`${ip}/32`, 30_000);
    if (i >= warm) woe.push(at - t0);
  }
  // And the set holds them (checked once, untimed).
  const last = benchIp(n + warm - 1, 21);
  if ((await stack.gateway.check('block', [`${last}/32`])).present.length === 0)
    throw new Error(`bench: ${last} was written but is not in the block set`);
  return {
    p50_ms: percentile(woe, 50),
    p99_ms: percentile(woe, 99),
    baseline_p50_ms: percentile(baseline, 50),
    baseline_p99_ms: percentile(baseline, 99),
    incidents: n,
  };
}

async function blocked(stack: BenchStack): Promise<number> {
  return (await stack.gateway.holdings('block')).length;
}

function writesSince(stack: BenchStack, before: Record<string, number>) {
  const now = stack.throttle?.counts.writes ?? {};
  return Object.keys(now).reduce((n, op) => n + (now[op] ?? 0) - (before[op] ?? 0), 0);
}

export interface BurstResult {
  ips: number;
  seconds: number;
  waf_writes: number;
  lock_conflicts: number;
  throttled: number;
  separate_ips: number;
  separate_seconds: number;
  separate_waf_writes: number;
  naive_ips_per_s: number;
  naive_calls_per_ip: number;
  /** Of those calls, the ones the throttle refused (each retried after a short pause). */
  naive_throttled_per_ip: number;
  naive_conflicts_per_ip: number;
  ratio_to_naive: number;
}

/** Behind a 1 write/s throttle: one big campaign, then many separate incidents, then the naive way. */
export async function burst(
  stack: BenchStack,
  campaignIps: number,
  separateIps: number,
  naiveSeconds: number,
): Promise<BurstResult> {
  const counts = stack.throttle?.counts;
  if (!counts) throw new Error('the burst needs the throttle in front of the emulator');
  const before = { ...counts.writes };
  const conflicts0 = counts.lockConflicts;
  const throttled0 = counts.throttled;
  const t0 = performance.now();
  await startCampaign(stack, {
    ...detection(Array.from({ length: campaignIps }, (_, i) => benchIp(i, 31))),
    windowStart: Date.now(),
  });
  await until('the campaign applied', async () => (await blocked(stack)) >= campaignIps, 600_000, 200);
  const seconds = (performance.now() - t0) / 1000;
  const campaignWrites = writesSince(stack, before);
  const conflicts = counts.lockConflicts - conflicts0;

  const before2 = { ...counts.writes };
  const t1 = performance.now();
  await pool(
    Array.from({ length: separateIps }, (_, i) => benchIp(i, 41)),
    50,
    (ip) => startRemediation(stack, detection([ip])),
  );
  await until(
    'the separate incidents applied',
    async () => (await blocked(stack)) >= campaignIps + separateIps,
    600_000,
    200,
  );
  const separateSeconds = (performance.now() - t1) / 1000;
  const separateWrites = writesSince(stack, before2);

  const naive = await naiveWriters(stack, naiveSeconds);
  return {
    ips: campaignIps,
    seconds,
    waf_writes: campaignWrites,
    lock_conflicts: conflicts,
    throttled: counts.throttled - throttled0 - naive.throttled,
    separate_ips: separateIps,
    separate_seconds: separateSeconds,
    separate_waf_writes: separateWrites,
    naive_ips_per_s: naive.ips / naiveSeconds,
    naive_calls_per_ip: naive.ips > 0 ? naive.calls / naive.ips : Infinity,
    naive_throttled_per_ip: naive.ips > 0 ? naive.throttled / naive.ips : Infinity,
    naive_conflicts_per_ip: naive.ips > 0 ? naive.conflicts / naive.ips : Infinity,
    ratio_to_naive: campaignIps / seconds / Math.max(naive.ips / naiveSeconds, 1e-9),
  };
}

/**
 * The naive way, as the seed article does it: 16 writers, each IP its own read-modify-write,
 * retried on lock conflicts and throttling, against its own set behind the same throttle.
 */
async function naiveWriters(stack: BenchStack, seconds: number) {
  const endpoint = stack.env.AWS_ENDPOINT_URL_WAFV2;
  const client = new WAFV2Client({
    region: 'us-east-1',
    endpoint,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    maxAttempts: 1,
  });
  const name = managedSetName(stack.config.waf.setPrefix, 'captcha', 'ipv4');
  const set = (await listIpSets({ client, scope: 'REGIONAL', setPrefix: '', webAcl: '' })).find(
    (s) => s.Name === name,
  );
  const ref = { Name: name, Id: set?.Id, Scope: 'REGIONAL' as const };
  const tally = { ips: 0, calls: 0, conflicts: 0, throttled: 0 };
  const stopAt = performance.now() + seconds * 1000;
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < stopAt) {
        const ip = `${benchIp(next++, 51)}/32`;
        for (;;) {
          if (performance.now() >= stopAt) return;
          tally.calls++;
          const got = await client.send(new GetIPSetCommand(ref));
          tally.calls++;
          try {
            await client.send(
              new UpdateIPSetCommand({
                ...ref,
                Addresses: [...(got.IPSet?.Addresses ?? []), ip],
                LockToken: got.LockToken,
              }),
            );
            tally.ips++;
            break;
          } catch (err) {
            const kind = (err as Error).name;
            if (kind === 'WAFOptimisticLockException') tally.conflicts++;
            else if (kind === 'ThrottlingException') tally.throttled++;
            else throw err;
            await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
          }
        }
      }
    }),
  );
  client.destroy();
  return tally;
}

export interface ThroughputResult {
  incidents: number;
  ips_per_s: number;
  raw_workflows_per_s: number;
  ratio: number;
  /** Each slice's own ratio, in order (see `throughput`). */
  slice_ratios: number[];
  /** Each slice's rates, in order: blocked IPs/s and raw workflows/s. */
  slice_rates: Array<{ ips_per_s: number; raw_per_s: number }>;
  /** Detections sent as fast as they are accepted, each not waiting for its block (one slice). */
  open_loop_ips_per_s: number;
}

/**
 * Separate incidents blocked per second, next to the server's raw rate of empty workflows. An
 * address counts as blocked when the emulator accepted the write that carried it, seen at the
 * proxy in front of it (polling the set would load the emulator on the same two cores); the set
 * is checked once at the end, untimed.
 *
 * Both keep 50 in flight the same way: the raw rate's 50 lanes each start an empty workflow and
 * wait for it to complete before the next; the incidents' 50 lanes each send a detection and wait
 * for its address to be written. (Firing detections without waiting, as a burst does, measures a
 * backlog building up in the task queue instead; that rate is reported beside, as information.)
 *
 * The two are measured in alternating slices (raw then incidents, incidents then raw, …) and each
 * rate is the total over its slices: these machines speed up and slow down by a third within a
 * minute, and two rates measured one after the other would compare that drift as well.
 */
export async function throughput(
  stack: BenchStack,
  ping: PingWorker,
  n: number,
  // Slices of at least 200: four times the 50 detections in flight, so each slice runs full.
  slices = Math.max(1, Math.min(5, Math.floor(n / 200))),
): Promise<ThroughputResult> {
  const throttle = stack.throttle;
  if (!throttle) throw new Error('throughput is read at the proxy in front of the emulator');
  const already = await blocked(stack);
  const per = Math.ceil(n / slices);
  /** Seconds for `ips` as separate incidents, 50 lanes each waiting for its address to be written. */
  const incidents = async (ips: string[]) => {
    const t0 = performance.now();
    await pool(ips, 50, async (ip) => {
      const written = throttle.added(`${ip}/32`, 600_000);
      await startRemediation(stack, detection([ip]));
      await written;
    });
    return (performance.now() - t0) / 1000;
  };
  let rawSeconds = 0;
  let incidentSeconds = 0;
  const sliceRates: ThroughputResult['slice_rates'] = [];
  for (let s = 0; s < slices; s++) {
    const ips = Array.from({ length: per }, (_, i) => benchIp(s * per + i, 61));
    const raw = async () => per / (await ping.rawRate(per, `raw-${s}`));
    let rawTime: number;
    let incidentTime: number;
    if (s % 2 === 0) {
      rawTime = await raw();
      incidentTime = await incidents(ips);
    } else {
      incidentTime = await incidents(ips);
      rawTime = await raw();
    }
    rawSeconds += rawTime;
    incidentSeconds += incidentTime;
    sliceRates.push({ ips_per_s: per / incidentTime, raw_per_s: per / rawTime });
  }
  const open = Array.from({ length: per }, (_, i) => benchIp(slices * per + i, 61));
  const t0 = performance.now();
  const written = Promise.all(open.map((ip) => throttle.added(`${ip}/32`, 600_000)));
  await pool(open, 50, (ip) => startRemediation(stack, detection([ip])));
  const openSeconds = (Math.max(...(await written)) - t0) / 1000;
  if ((await blocked(stack)) < already + per * (slices + 1)) {
    throw new Error('bench: not every address is in the block set');
  }
  const ipsPerS = (per * slices) / incidentSeconds;
  const rawPerS = (per * slices) / rawSeconds;
  return {
    incidents: per * slices,
    ips_per_s: ipsPerS,
    raw_workflows_per_s: rawPerS,
    ratio: ipsPerS / rawPerS,
    // Equal slices: each slice's ratio is its two rates' (raw seconds / incident seconds).
    slice_ratios: sliceRates.map((r) => r.ips_per_s / r.raw_per_s),
    slice_rates: sliceRates,
    open_loop_ips_per_s: per / openSeconds,
  };
}

export interface CostResult {
  history_events_per_incident: number;
  sleeping_incidents: number;
  rss_before_mb: number;
  /** Just after the last incident fell asleep: with the ramp-up's garbage not yet collected. */
  rss_ramp_mb: number;
  /** Once the worker has settled (see `settledRss`). */
  rss_after_mb: number;
  /** Seconds the worker took to settle. */
  settle_seconds: number;
  sleeping_rss_mb: number;
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
  return kb / 1024;
}

/**
 * How still the worker's memory must hold before it is read: `samples` readings `everyMs` apart,
 * waited for at most `maxMs` (the first reading after the last incident fell asleep comes
 * 1.5 × `everyMs` after it).
 */
export interface SettleWindow {
  everyMs: number;
  samples: number;
  maxMs: number;
}

/**
 * The worker's memory once the incidents are asleep: V8 gives back what the ramp-up left only
 * after a while, so this samples every `everyMs` until the last `samples` of them moved it less
 * than 2 MB (at most `maxMs`) — what the process holds while its incidents sleep, not the garbage
 * of starting them.
 */
async function settledRss(pid: number, calm: SettleWindow): Promise<{ mb: number; seconds: number }> {
  const t0 = performance.now();
  const samples = [rssMb(pid)];
  while (performance.now() - t0 < calm.maxMs) {
    await new Promise((r) => setTimeout(r, calm.everyMs));
    samples.push(rssMb(pid));
    const recent = samples.slice(-calm.samples);
    if (recent.length === calm.samples && Math.max(...recent) - Math.min(...recent) < 2) break;
  }
  return { mb: samples[samples.length - 1] ?? NaN, seconds: (performance.now() - t0) / 1000 };
}

/** Incidents a fresh worker runs before its memory is read: more than its cache (250) holds. */
const WARM_UP = 400;

/**
 * History events of one simple incident, and the worker's memory with many incidents asleep on
 * their TTL. `warmUp`: incidents run first (none for a worker already in service).
 */
export async function cost(
  stack: BenchStack,
  sleeping: number,
  calm: SettleWindow,
  warmUp = WARM_UP,
): Promise<CostResult> {
  if (!stack.workerPid) throw new Error('the cost section needs the worker in its own process');
  const [simple] = await startRemediation(stack, detection([benchIp(0, 71)], 1_000));
  const handle = stack.client.workflow.getHandle(simple?.workflowId ?? '');
  // A worker in service, not one just started: its workflow cache full (more than it holds have
  // run through it), its code compiled. A fresh worker grows by about 100 MB with its first 200.
  // (The simple incident runs its 1 s TTL meanwhile; it is released before the count below.)
  await pool(
    Array.from({ length: warmUp }, (_, i) => benchIp(i, 72)),
    50,
    (ip) => startRemediation(stack, detection([ip])),
  );
  await handle.result();
  const events = (await handle.fetchHistory()).events?.length ?? NaN;
  await until('the warm-up asleep', async () => (await blocked(stack)) >= warmUp, 300_000, 500);
  const { mb: before } = await settledRss(stack.workerPid, calm);
  const already = await blocked(stack);
  await pool(
    Array.from({ length: sleeping }, (_, i) => benchIp(i, 81)),
    100,
    (ip) => startRemediation(stack, detection([ip])),
  );
  // On a small machine this takes minutes; measure what is asleep by the deadline rather than nothing.
  await until(
    'all asleep on their TTL',
    async () => (await blocked(stack)) >= already + sleeping,
    1_200_000,
    1_000,
  ).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 1.5 * calm.everyMs));
  const ramp = rssMb(stack.workerPid);
  const settled = await settledRss(stack.workerPid, calm);
  const asleep = (await blocked(stack)) - already;
  return {
    history_events_per_incident: events,
    sleeping_incidents: asleep,
    rss_before_mb: before,
    rss_ramp_mb: ramp,
    rss_after_mb: settled.mb,
    settle_seconds: settled.seconds,
    sleeping_rss_mb: settled.mb - before,
  };
}
