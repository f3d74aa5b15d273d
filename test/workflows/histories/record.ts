/**
 * Records the incident workflow's histories for the replay test:
 *   node bin/run-ts.js test/workflows/histories/record.ts          (everything)
 *   node bin/run-ts.js test/workflows/histories/record.ts vpatch   (virtual patches only)
 *   node bin/run-ts.js test/workflows/histories/record.ts lean     (incidents, as lean-*.json)
 *   node bin/run-ts.js test/workflows/histories/record.ts prepared (incidents, as prepared-*.json)
 *   node bin/run-ts.js test/workflows/histories/record.ts first-add (incidents, as first-add-*.json)
 *   node bin/run-ts.js test/workflows/histories/record.ts one-step (incidents, as one-step-*.json)
 *   node bin/run-ts.js test/workflows/histories/record.ts ledger P (with an IaC ledger, as P*.json)
 * A workflow change is versioned with patched(); record its new histories under a new prefix and
 * keep the old ones, which are what incidents started by earlier versions look like.
 */
import fs from 'node:fs';
import os from 'node:os';
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
import { retireVirtualPatch, startVirtualPatch, waitForPatchEnd } from '../../../src/client/virtual-patch';

const detection = {
  action: 'block',
  reason: 'recorded scenario',
  detector: 'recorder',
  requestedBy: 'recorder',
  evidence: { classes: { sqli: 5 }, samples: ["GET /?q=1' OR 1=1"] },
};

type Stack = Awaited<ReturnType<typeof startBenchStack>>;
type Histories = Record<string, { id: string; runId?: string }>;

/**
 * `vpatch`: record only the virtual-patch histories; `lean`, `prepared`, `first-add`, `one-step`: only the incident ones,
 * under that prefix; `ledger <prefix>`: incidents and a patch committed to an IaC ledger, under
 * the prefix.
 */
const only = process.argv[2];
const prefix =
  only === 'lean' || only === 'prepared' || only === 'first-add' || only === 'one-step'
    ? `${only}-`
    : only === 'ledger'
      ? (process.argv[3] ?? 'ledger-')
      : '';

/** The Temporal CLI writes the proto-JSON form that historyFromJSON() reads back. */
function show(stack: Stack, id: string, runId?: string): string {
  return execFileSync(
    toolPath('temporal'),
    [
      ...['workflow', 'show', '--address', stack.config.temporal.address, '--workflow-id', id],
      ...(runId ? ['--run-id', runId] : []),
      ...['--output', 'json'],
    ],
    { encoding: 'utf8' },
  );
}

function writeAll(stack: Stack, histories: Histories): void {
  for (const [name, { id, runId }] of Object.entries(histories)) {
    const json = show(stack, id, runId);
    fs.writeFileSync(path.join(__dirname, `${prefix}${name}.json`), json);
    console.log(
      `recorded ${prefix}${name}: ${(JSON.parse(json) as { events: unknown[] }).events.length} events`,
    );
  }
}

async function waitForState(stack: Stack, id: string, state: string): Promise<void> {
  for (let i = 0; (await stack.client.workflow.getHandle(id).query(statusQuery)).state !== state; i++) {
    if (i > 200) throw new Error(`${id} never reached ${state}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Virtual patches: observed, approved, retired by the fix; and one held past a continue-as-new, then expired. */
async function recordPatches(stack: Stack, histories: Histories): Promise<void> {
  const deps = { client: stack.client, config: stack.config };
  const base = {
    path: '/api/search',
    method: 'GET',
    field: 'query:q',
    reason: 'recorded',
    detector: 'recorder',
    requestedBy: 'recorder',
  };
  const retired = await startVirtualPatch(deps, {
    ...base,
    findingId: 'REC-1',
    kind: 'sqli',
    observeMs: 1_000,
    ttlMs: 60_000,
    approval: 'slack',
  });
  await waitForState(stack, retired.workflowId, 'awaiting-approval');
  await decideRemediation(stack.client, retired.workflowId, { decision: 'approve', by: 'recorder' });
  await waitForState(stack, retired.workflowId, 'active');
  await retireVirtualPatch(stack.client, 'REC-1', { commit: 'abc1234', by: 'recorder' });
  await waitForPatchEnd(stack.client, 'REC-1', 15_000);
  histories['vpatch-retired'] = { id: retired.workflowId };

  const long = await startVirtualPatch(deps, {
    ...base,
    findingId: 'REC-2',
    kind: 'traversal',
    field: 'uri',
    match: 'prefix',
    observeMs: 0,
    ttlMs: 8_000,
  });
  await waitForState(stack, long.workflowId, 'active');
  const handle = stack.client.workflow.getHandle(long.workflowId);
  const firstRun = (await handle.describe()).runId;
  for (let i = 0; (await handle.describe()).runId === firstRun; i++) {
    if (i > 200) throw new Error('no continue-as-new');
    await handle.signal(sightingSignal, {
      at: new Date().toISOString(),
      detector: 'recorder',
      classes: { vpatch: 1 },
    });
  }
  await waitForPatchEnd(stack.client, 'REC-2', 30_000);
  const last = JSON.parse(show(stack, long.workflowId)) as {
    events: Array<{ workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string } }>;
  };
  const previous = last.events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
  if (!previous) throw new Error('the long patch did not continue as new');
  histories['vpatch-continued-first-run'] = { id: long.workflowId, runId: previous };
  histories['vpatch-continued-second-run'] = { id: long.workflowId };
}

/** A git working copy for the ledger, with one commit. */
function ledgerRepo(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'perimeter-record-ledger-'));
  const run = (...args: string[]) =>
    execFileSync('git', ['-c', 'user.name=recorder', '-c', 'user.email=recorder@localhost', ...args], {
      cwd: dir,
    });
  run('init', '-q', '-b', 'main');
  fs.writeFileSync(path.join(dir, 'README.md'), '# recorded\n');
  run('add', 'README.md');
  run('commit', '-q', '-m', 'start');
  return dir;
}

/** With the ledger: applied, extended, released early; approved as a challenge; a patch retired; a long hold. */
async function recordLedger(stack: Stack, histories: Histories): Promise<void> {
  const deps = { client: stack.client, config: stack.config };
  const [early] = await startRemediation(deps, {
    ...detection,
    targets: ['203.0.113.21'],
    observeMs: 0,
    ttlMs: 60_000,
  });
  await waitUntilSettled(stack.client, early!.workflowId, 15_000);
  await extendRemediation(stack.client, early!.workflowId, { by: 'recorder', byMs: 60_000 });
  await releaseRemediation(stack.client, early!.workflowId, { by: 'recorder', reason: 'false positive' });
  histories['extend-release'] = { id: early!.workflowId };

  const [asked] = await startRemediation(deps, {
    ...detection,
    targets: ['203.0.113.22'],
    observeMs: 0,
    ttlMs: 60_000,
    approval: 'slack',
  });
  await waitForState(stack, asked!.workflowId, 'awaiting-approval');
  await decideRemediation(stack.client, asked!.workflowId, { decision: 'approve-challenge', by: 'recorder' });
  await releaseRemediation(stack.client, asked!.workflowId, { by: 'recorder' });
  histories['approved-challenge'] = { id: asked!.workflowId };

  const patch = await startVirtualPatch(deps, {
    path: '/api/search',
    method: 'GET',
    field: 'query:q',
    reason: 'recorded',
    detector: 'recorder',
    requestedBy: 'recorder',
    findingId: 'REC-L1',
    kind: 'sqli',
    observeMs: 0,
    ttlMs: 60_000,
  });
  await waitForState(stack, patch.workflowId, 'active');
  await retireVirtualPatch(stack.client, 'REC-L1', { commit: 'abc1234', by: 'recorder' });
  await waitForPatchEnd(stack.client, 'REC-L1', 15_000);
  histories['vpatch-retired'] = { id: patch.workflowId };

  // Extended while held long enough to continue as new: the new run starts with the ledger up to date.
  const [long] = await startRemediation(deps, {
    ...detection,
    targets: ['203.0.113.24'],
    observeMs: 0,
    ttlMs: 60_000,
  });
  await waitUntilSettled(stack.client, long!.workflowId, 15_000);
  const handle = stack.client.workflow.getHandle(long!.workflowId);
  await extendRemediation(stack.client, long!.workflowId, { by: 'recorder', byMs: 60_000 });
  const firstRun = (await handle.describe()).runId;
  for (let i = 0; (await handle.describe()).runId === firstRun; i++) {
    if (i > 200) throw new Error('no continue-as-new');
    await handle.signal(sightingSignal, {
      at: new Date().toISOString(),
      detector: 'recorder',
      classes: { sqli: 1 },
    });
  }
  await waitUntilSettled(stack.client, long!.workflowId, 15_000);
  await releaseRemediation(stack.client, long!.workflowId, { by: 'recorder' });
  const last = JSON.parse(show(stack, long!.workflowId)) as {
    events: Array<{ workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string } }>;
  };
  const previous = last.events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
  if (!previous) throw new Error('the long hold did not continue as new');
  histories['continued-first-run'] = { id: long!.workflowId, runId: previous };
  histories['continued-second-run'] = { id: long!.workflowId };
}

async function main(): Promise<void> {
  const ledger = only === 'ledger' ? ledgerRepo() : undefined;
  const stack = await startBenchStack({
    dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 60 },
    ...(ledger ? { env: { PERIMETER_LEDGER_PATH: ledger } } : {}),
  });
  const deps = { client: stack.client, config: stack.config };
  const handle = (id: string) => stack.client.workflow.getHandle(id);
  const histories: Histories = {};
  try {
    if (only === 'vpatch') {
      await recordPatches(stack, histories);
      return writeAll(stack, histories);
    }
    if (ledger) {
      await recordLedger(stack, histories);
      const commits = execFileSync('git', ['rev-list', '--count', 'HEAD'], { cwd: ledger, encoding: 'utf8' });
      console.log(`ledger: ${commits.trim()} commits`);
      return writeAll(stack, histories);
    }
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

    // Applied at once, released by the TTL: the simplest incident.
    const [simple] = await startRemediation(deps, {
      ...detection,
      targets: ['203.0.113.6'],
      observeMs: 0,
      ttlMs: 1_500,
    });
    await handle(simple!.workflowId).result();
    histories['simple-ttl-release'] = { id: simple!.workflowId };

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

    // The run before the last one of the long hold: the one that ended in continue-as-new.
    const last = JSON.parse(show(stack, histories['continued-second-run']!.id)) as {
      events: Array<{ workflowExecutionStartedEventAttributes?: { continuedExecutionRunId?: string } }>;
    };
    const previous = last.events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId;
    if (!previous) throw new Error('the long hold did not continue as new');
    histories['continued-first-run'] = { id: histories['continued-second-run']!.id, runId: previous };
    writeAll(stack, histories);
  } finally {
    await stack.stop();
    if (ledger) fs.rmSync(ledger, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
