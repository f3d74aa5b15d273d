/**
 * Replays stored incident and virtual-patch histories against the current workflow code: a change that would
 * break incidents already running in production fails here (version it with patched()).
 */
import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { DefaultLogger, Runtime, Worker } from '@temporalio/worker';

// A replay that fails says why in the assertion; the replay workers' INFO lines are only noise.
Runtime.install({ logger: new DefaultLogger('WARN') });

const dir = path.join(__dirname, 'histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

it('has stored histories to replay', () => {
  expect(files.sort()).toEqual([
    'approved-challenge.json',
    'cancelled.json',
    'continued-first-run.json',
    'continued-second-run.json',
    'extend-release.json',
    'first-add-approved-challenge.json',
    'first-add-cancelled.json',
    'first-add-continued-first-run.json',
    'first-add-continued-second-run.json',
    'first-add-extend-release.json',
    'first-add-ledger-approved-challenge.json',
    'first-add-ledger-continued-first-run.json',
    'first-add-ledger-continued-second-run.json',
    'first-add-ledger-extend-release.json',
    'first-add-simple-ttl-release.json',
    'first-add-stand-down.json',
    'first-add-ttl-release.json',
    'lean-approved-challenge.json',
    'lean-cancelled.json',
    'lean-continued-first-run.json',
    'lean-continued-second-run.json',
    'lean-extend-release.json',
    'lean-stand-down.json',
    'lean-ttl-release.json',
    'ledger-approved-challenge.json',
    'ledger-bg-approved-challenge.json',
    'ledger-bg-continued-first-run.json',
    'ledger-bg-continued-second-run.json',
    'ledger-bg-extend-release.json',
    'ledger-bg-vpatch-retired.json',
    'ledger-continued-first-run.json',
    'ledger-continued-second-run.json',
    'ledger-extend-release.json',
    'ledger-vpatch-retired.json',
    'one-step-approved-challenge.json',
    'one-step-cancelled.json',
    'one-step-continued-first-run.json',
    'one-step-continued-second-run.json',
    'one-step-extend-release.json',
    'one-step-ledger-approved-challenge.json',
    'one-step-ledger-continued-first-run.json',
    'one-step-ledger-continued-second-run.json',
    'one-step-ledger-extend-release.json',
    'one-step-simple-ttl-release.json',
    'one-step-stand-down.json',
    'one-step-ttl-release.json',
    'prepared-approved-challenge.json',
    'prepared-cancelled.json',
    'prepared-continued-first-run.json',
    'prepared-continued-second-run.json',
    'prepared-extend-release.json',
    'prepared-ledger-approved-challenge.json',
    'prepared-ledger-continued-first-run.json',
    'prepared-ledger-continued-second-run.json',
    'prepared-ledger-extend-release.json',
    'prepared-simple-ttl-release.json',
    'prepared-stand-down.json',
    'prepared-ttl-release.json',
    'stand-down.json',
    'ttl-release.json',
    'vpatch-continued-first-run.json',
    'vpatch-continued-second-run.json',
    'vpatch-retired.json',
  ]);
});

it.each(files)('replays %s deterministically', async (file) => {
  const history = historyFromJSON(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')));
  await expect(
    Worker.runReplayHistory(
      { workflowBundle: { codePath: process.env.PERIMETER_TEST_BUNDLE ?? '' } },
      history,
      file,
    ),
  ).resolves.toBeUndefined();
});
