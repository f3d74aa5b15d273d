/**
 * `npm run bench`: measurements that tests must not time. Results are printed as absolute
 * numbers for this machine and as ratios within the same run, which are what to compare
 * between machines.
 *
 *   npm run bench                      everything (several minutes)
 *   npm run bench -- --quick           a reduced run, under a minute
 *   npm run bench -- --json out.json   also write the results as JSON
 *   BENCH_ONLY=detectors npm run bench the log detectors alone
 */
import fs from 'node:fs';
import os from 'node:os';
import { measureApprovalLatency } from './approval-latency';
import { measureBlockLatency, summarise } from './block-latency';
import { benchDetectors } from './detectors';
import { burst, cost, startPingWorker, throughput, windowOfExposure, type SettleWindow } from './scale';
import { percentile, startBenchStack, type BenchStack } from './stack';

interface Args {
  quick: boolean;
  json: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, json: undefined };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--quick') args.quick = true;
    else if (argv[i] === '--json') args.json = argv[++i];
    else throw new Error(`unknown argument ${argv[i]} (use --quick, --json <file>)`);
  }
  return args;
}

const SIZES = {
  full: {
    woe: 200,
    throughput: 1_000,
    campaign: 10_000,
    separate: 1_000,
    naiveSeconds: 12,
    sleeping: 10_000,
  },
  quick: { woe: 30, throughput: 100, campaign: 2_000, separate: 50, naiveSeconds: 3, sleeping: 200 },
};

/** How long the worker's memory must hold still before it is read (see `cost`). */
const CALM: Record<'full' | 'quick', SettleWindow> = {
  full: { everyMs: 2_000, samples: 6, maxMs: 120_000 },
  quick: { everyMs: 1_000, samples: 4, maxMs: 8_000 },
};

function machine() {
  const cpus = os.cpus();
  return {
    cpu: `${cpus.length} × ${cpus[0]?.model ?? '?'}`,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  };
}

const ms = (v: number) => `${v.toFixed(0)} ms`;
const row = (name: string, value: string, target: string, ok: boolean | undefined) =>
  `${name.padEnd(44)} ${value.padStart(16)}   ${target.padEnd(28)} ${ok === undefined ? '' : ok ? 'ok' : 'MISSED'}`;

async function scale(args: Args): Promise<Record<string, unknown>> {
  const size = args.quick ? SIZES.quick : SIZES.full;
  const results: Record<string, unknown> = {
    machine: machine(),
    settings: { quick: args.quick, ...size, throttle_writes_per_s: 1, shard_fill: 9_500 },
  };
  console.log(`machine: ${JSON.stringify(results.machine)}`);
  console.log(`settings: ${JSON.stringify(results.settings)}\n`);
  const lines: string[] = [];
  // Each result is printed as soon as it is measured, and again in the table at the end.
  const report = (line: string) => {
    lines.push(line);
    console.log(line);
  };

  // The worker in its own process (for its memory); the proxy in front of the emulator allows
  // 1,000 writes/s (no real limit) and tells when each address was written.
  const local = await startBenchStack({ workerProcess: true, throttleWritesPerSecond: 1000 });
  const ping = await startPingWorker(local);
  let burstStack: Promise<BenchStack> | undefined;
  try {
    const woe = await windowOfExposure(local, ping, size.woe);
    results.woe = woe;
    report(
      row(
        'window of exposure p50 (detection → in set)',
        ms(woe.p50_ms),
        `bare round trip ${ms(woe.baseline_p50_ms)}`,
        undefined,
      ),
    );
    report(
      row(
        'window of exposure p99',
        ms(woe.p99_ms),
        `≤ 1.5 × ${ms(woe.baseline_p99_ms)} bare p99`,
        woe.p99_ms <= 1.5 * woe.baseline_p99_ms,
      ),
    );
    const tp = await throughput(local, ping, size.throughput);
    results.throughput = tp;
    report(
      row(
        'throughput: blocked IPs/s, separate incidents',
        tp.ips_per_s.toFixed(0),
        `raw ${tp.raw_workflows_per_s.toFixed(0)} wf/s`,
        undefined,
      ),
    );
    report(row('throughput ratio', tp.ratio.toFixed(2), '≥ 0.8', tp.ratio >= 0.8));
    if (tp.slice_ratios.length > 1) {
      const each = tp.slice_ratios.map((r) => r.toFixed(2)).join(' ');
      report(
        row(
          `  (${tp.slice_ratios.length} alternating slices)`,
          each,
          'each slice: raw s / incident s',
          undefined,
        ),
      );
      const rates = tp.slice_rates
        .map((r) => `${r.ips_per_s.toFixed(0)}/${r.raw_per_s.toFixed(0)}`)
        .join(' ');
      report(row('  (each slice: IPs/s / raw wf/s)', '', rates, undefined));
    }
    report(
      row(
        '  (detections not waiting for their block)',
        `${tp.open_loop_ips_per_s.toFixed(0)} IPs/s`,
        'backlog in the task queue',
        undefined,
      ),
    );
    // The burst's stack starts now (an idle stack costs the cost section's worker nothing).
    burstStack = startBenchStack({ throttleWritesPerSecond: 1, workerProcess: true });
    burstStack.catch(() => undefined); // awaited below
    // The full run: a worker of its own (warmed up in `cost`), as the sections before leave the
    // shared one's heap grown by their load, and V8 giving that back would be counted against the
    // sleeping incidents. The quick one reads the shared worker, in service already (its cache full).
    const c = args.quick
      ? await cost(local, size.sleeping, CALM.quick, 0)
      : await startBenchStack({ workerProcess: true, throttleWritesPerSecond: 1000 }).then((quiet) =>
          cost(quiet, size.sleeping, CALM.full).finally(() => quiet.stop()),
        );
    results.cost = c;
    results.history_events_per_incident = c.history_events_per_incident;
    results.sleeping_rss_mb = c.sleeping_rss_mb;
    report(
      row(
        'history events per simple incident',
        String(c.history_events_per_incident),
        '≤ 25',
        c.history_events_per_incident <= 25,
      ),
    );
    report(
      row(
        `worker RSS growth, ${c.sleeping_incidents} more incidents asleep`,
        `${c.sleeping_rss_mb.toFixed(0)} MB`,
        '≤ 200 MB',
        c.sleeping_rss_mb <= 200,
      ),
    );
    report(
      row(
        '  (just after the last fell asleep)',
        `${(c.rss_ramp_mb - c.rss_before_mb).toFixed(0)} MB`,
        `settled ${c.settle_seconds.toFixed(0)} s later`,
        undefined,
      ),
    );
  } catch (err) {
    await burstStack?.then(
      (s) => s.stop(),
      () => undefined,
    ); // not left running
    throw err;
  } finally {
    await ping.stop();
    await local.stop();
  }

  // The throttle stands in for AWS, which counts arrivals on its own clock: the worker runs in a
  // process of its own, so its busy moments do not delay the proxy's view of when writes arrive.
  const throttled = await burstStack;
  try {
    const b = await burst(throttled, size.campaign, size.separate, size.naiveSeconds);
    results.burst = b;
    const per1000 = (b.waf_writes / b.ips) * 1000;
    const full = b.ips >= 10_000;
    report(
      row(
        `burst: ${b.ips} IPs as one campaign`,
        `${b.seconds.toFixed(1)} s`,
        full ? '≤ 15 s' : '(quick)',
        full ? b.seconds <= 15 : undefined,
      ),
    );
    report(row('burst: WAF writes per 1,000 new IPs', per1000.toFixed(2), '≤ 2', per1000 <= 2));
    report(row('burst: lock conflicts', String(b.lock_conflicts), '0', b.lock_conflicts === 0));
    report(row('burst: throttled writes', String(b.throttled), '0', b.throttled === 0));
    report(
      row(
        `burst: ${b.separate_ips} separate incidents`,
        `${b.separate_seconds.toFixed(1)} s`,
        `${b.separate_waf_writes} writes`,
        undefined,
      ),
    );
    report(
      row(
        'naive per-IP read-modify-write',
        `${b.naive_ips_per_s.toFixed(2)} IPs/s`,
        `${b.naive_calls_per_ip.toFixed(1)} calls (${b.naive_throttled_per_ip.toFixed(1)} throttled), ${b.naive_conflicts_per_ip.toFixed(1)} conflicts/IP`,
        undefined,
      ),
    );
    report(
      row('campaign rate vs naive', `${b.ratio_to_naive.toFixed(0)}×`, '≥ 500×', b.ratio_to_naive >= 500),
    );
  } finally {
    await throttled.stop();
  }
  console.log(['', 'scale'.padEnd(44) + ' ' + 'measured'.padStart(16) + '   target', ...lines].join('\n'));
  return results;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (!args.quick) {
    // Detectors: no stack needed. `BENCH_ONLY=detectors` runs this section alone.
    await benchDetectors();
    if (process.env.BENCH_ONLY === 'detectors') return;
    console.log('');
  }
  const results = await scale(args);
  if (!args.quick) {
    const runs = Number(process.env.BENCH_RUNS ?? 20);
    // The path's own latency: behind the default 1 write/s (AWS's), each block here would wait
    // for the write before it, a second earlier, and both paths would read about one second.
    const stack = await startBenchStack({ env: { PERIMETER_WAF_WRITE_RATE: '1000' } });
    try {
      console.log(
        `\nblock → address in the WAF set (${runs} runs each, emulator polled every 5 ms, no write-rate limit)`,
      );
      const latency = await measureBlockLatency(stack, runs);
      console.log(summarise('`perimeter block` (CLI process)', latency.cliMs));
      console.log(summarise('startRemediation() (detector)', latency.clientMs));
      const ratio = percentile(latency.cliMs, 50) / percentile(latency.clientMs, 50);
      console.log(
        `ratio p50 CLI / detector: ${ratio.toFixed(1)}× (the difference is Node + TypeScript start-up)`,
      );
      console.log(`\napprover's click → address in the WAF set (${runs} runs)`);
      const clicks = await measureApprovalLatency(stack, runs);
      console.log(summarise('Slack click (signed block_actions)', clicks));
      const clickRatio = percentile(clicks, 50) / percentile(latency.clientMs, 50);
      console.log(`ratio p50 click / detector start: ${clickRatio.toFixed(1)}×`);
    } finally {
      await stack.stop();
    }
  }
  if (args.json) {
    fs.writeFileSync(args.json, `${JSON.stringify(results, null, 2)}\n`);
    console.log(`\nresults written to ${args.json}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
