/**
 * Records the incident workflow's histories for the replay test:
 *   node bin/run-ts.js test/workflows/histories/record.ts
 * Run it only when a workflow change is meant to be incompatible (and then version it with
 * patched() instead where incidents may be open in production).
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { toolPath } from '../../../src/dev/services';
import {
  decideRemediation,
  extendRemediation,
  releaseRemediation,
  startRemediation,
  waitUntilSettled,
} from '../../../src/client/remediation';
import { sightingSignal, statusQuery } from '../../../workflows/definitions';
import { startBenchStack } from '../../../bench/stack';

const detection = {
  action: 'block',
  reason: 'recorded scenario',
  detector: 'recorder',
  requestedBy: 'recorder',
  evidence: { classes: { sqli: 5 }, samples: ["GET /?q=1' OR 1=1"] },
};

async function main(): Promise<void> {
  const stack = await startBenchStack({ dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 60 } });
  const deps = { client: stack.client, config: stack.config };
  const handle = (id: string) => stack.client.workflow.getHandle(id);
  const histories: Record<string, { id: string; runId?: string }> = {};
  try {
    // Observed, more evidence, applied, released by the TTL.
    const [ttl] = await startRemediation(deps, {
      ...detection,
      targets: ['203.0.113.1'],
      observeMs: 1_000,
      ttlMs: 2_000,
    });
    await handle(ttl!.workflowId).signal(sightingSignal, {
      at: new Date().toISOString(),
      detector: 'recorder',
      classes: { xss: 2 },
    });
    await handle(ttl!.workflowId).result();
    histories['ttl-release'] = { id: ttl!.workflowId };

    // Applied, extended, released early by an operator.
    const [early] = await startRemediation(deps, {
      ...detection,
      targets: ['2001:db8:5::/48'],
      observeMs: 0,
      ttlMs: 60_000,
    });
    await waitUntilSettled(stack.client, early!.workflowId, 15_000);
    await extendRemediation(stack.client, early!.workflowId, { by: 'recorder', byMs: 60_000 });
    await releaseRemediation(stack.client, early!.workflowId, { by: 'recorder', reason: 'false positive' });
    histories['extend-release'] = { id: early!.workflowId };

    // Stood down during the observation window.
    const [stand] = await startRemediation(deps, {
      ...detection,
      targets: ['203.0.113.2'],
      observeMs: 30_000,
      ttlMs: 60_000,
    });
    await new Promise((r) => setTimeout(r, 1_000));
    await releaseRemediation(stack.client, stand!.workflowId, { by: 'recorder' });
    histories['stand-down'] = { id: stand!.workflowId };

    // Cancelled while held: still released.
    const [cancel] = await startRemediation(deps, {
      ...detection,
      targets: ['203.0.113.3'],
      observeMs: 0,
      ttlMs: 60_000,
    });
    await waitUntilSettled(stack.client, cancel!.workflowId, 15_000);
    await handle(cancel!.workflowId).cancel();
    await handle(cancel!.workflowId)
      .result()
      .catch(() => undefined);
    histories.cancelled = { id: cancel!.workflowId };

    // Waited for approval, approved as a challenge, released early.
    const [asked] = await startRemediation(deps, {
      ...detection,
      targets: ['203.0.113.5'],
      observeMs: 0,
      ttlMs: 60_000,
      approval: 'slack',
    });
    for (
      let i = 0;
      (await stack.client.workflow.getHandle(asked!.workflowId).query(statusQuery)).state !==
      'awaiting-approval';
      i++
    ) {
      if (i > 100) throw new Error('never awaited approval');
      await new Promise((r) => setTimeout(r, 50));
    }
    await decideRemediation(stack.client, asked!.workflowId, {
      decision: 'approve-challenge',
      by: 'recorder',
    });
    await releaseRemediation(stack.client, asked!.workflowId, { by: 'recorder' });
    histories['approved-challenge'] = { id: asked!.workflowId };

    // A long hold: enough sightings that the history asks to continue as new; then released.
    const [long] = await startRemediation(deps, {
      ...detection,
      targets: ['203.0.113.4'],
      observeMs: 0,
      ttlMs: 60_000,
    });
    await waitUntilSettled(stack.client, long!.workflowId, 15_000);
    const firstRun = (await handle(long!.workflowId).describe()).runId;
    for (let i = 0; (await handle(long!.workflowId).describe()).runId === firstRun; i++) {
      if (i > 200) throw new Error('no continue-as-new');
      await handle(long!.workflowId).signal(sightingSignal, {
        at: new Date().toISOString(),
        detector: 'recorder',
        classes: { sqli: 1 },
      });
    }
    await waitUntilSettled(stack.client, long!.workflowId, 15_000);
    await releaseRemediation(stack.client, long!.workflowId, { by: 'recorder' });
    histories['continued-second-run'] = { id: long!.workflowId };

    const show = (id: string, runId?: string): string =>
      // The Temporal CLI writes the proto-JSON form that historyFromJSON() reads back.
      execFileSync(
        toolPath('temporal'),
        [
          ...['workflow', 'show', '--address', stack.config.temporal.address, '--workflow-id', id],
          ...(runId ? ['--run-id', runId] : []),
          ...['--output', 'json'],
        ],
        { encoding: 'utf8' },
      );
    // The run before the last one of the long hold: the one that ended in continue-as-new.
    const last = JSON.parse(show(histories['continued-second-run']!.id)) as {
      events: Array<{ workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string } }>;
    };
    const previous = last.events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    if (!previous) throw new Error('the long hold did not continue as new');
    histories['continued-first-run'] = { id: histories['continued-second-run']!.id, runId: previous };
    for (const [name, { id, runId }] of Object.entries(histories)) {
      const json = show(id, runId);
      fs.writeFileSync(path.join(__dirname, `${name}.json`), json);
      console.log(`recorded ${name}: ${(JSON.parse(json) as { events: unknown[] }).events.length} events`);
    }
  } finally {
    await stack.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
