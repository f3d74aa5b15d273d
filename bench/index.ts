/**
 * `npm run bench`: measurements that tests must not time. Results are printed as absolute
 * numbers for this machine and as ratios within the same run, which are what to compare
 * between machines.
 */
import { measureApprovalLatency } from './approval-latency';
import { measureBlockLatency, summarise } from './block-latency';
import { benchDetectors } from './detectors';
import { percentile, startBenchStack } from './stack';

async function main(): Promise<void> {
  // Detectors: no stack needed. `BENCH_ONLY=detectors` runs this section alone.
  await benchDetectors();
  if (process.env.BENCH_ONLY === 'detectors') return;
  console.log('');

  const runs = Number(process.env.BENCH_RUNS ?? 20);
  const stack = await startBenchStack();
  try {
    console.log(`block → address in the WAF set (${runs} runs each, emulator polled every 5 ms)`);
    const latency = await measureBlockLatency(stack, runs);
    console.log(summarise('`perimeter block` (CLI process)', latency.cliMs));
    console.log(summarise('startRemediation() (detector)', latency.clientMs));
    const ratio = percentile(latency.cliMs, 50) / percentile(latency.clientMs, 50);
    console.log(
      `ratio p50 CLI / detector: ${ratio.toFixed(1)}× (the difference is Node + TypeScript start-up)`,
    );
    console.log('');
    console.log(`approver's click → address in the WAF set (${runs} runs)`);
    const clicks = await measureApprovalLatency(stack, runs);
    console.log(summarise('Slack click (signed block_actions)', clicks));
    const clickRatio = percentile(clicks, 50) / percentile(latency.clientMs, 50);
    console.log(`ratio p50 click / detector start: ${clickRatio.toFixed(1)}×`);
  } finally {
    await stack.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
