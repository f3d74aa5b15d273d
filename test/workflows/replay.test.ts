/**
 * Replays stored incident histories against the current workflow code: a change that would
 * break incidents already running in production fails here (version it with patched()).
 */
import fs from 'node:fs';
import path from 'node:path';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { Worker } from '@temporalio/worker';

const dir = path.join(__dirname, 'histories');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json'));

it('has stored histories to replay, old shapes included', () => {
  // v1: activity results from before ownership was tracked; v2: current, with continue-as-new.
  expect(files.filter((f) => f.startsWith('v1-'))).toHaveLength(4);
  expect(files.filter((f) => f.startsWith('v2-')).sort()).toEqual([
    'v2-cancelled.json',
    'v2-continued-first-run.json',
    'v2-continued-second-run.json',
    'v2-extend-release.json',
    'v2-stand-down.json',
    'v2-ttl-release.json',
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
