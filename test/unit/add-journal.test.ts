/** The worker's memory of what each run's adds may have written, across the tries of one add. */
import { msToNumber } from '@temporalio/common/lib/time';
import { AddJournal } from '../../src/waf/add-journal';
import { addLocalOptions } from '../../workflows/activity-options';

const a = '192.0.2.1/32';
const b = '192.0.2.2/32';

it("tells someone else's addresses from those an earlier try was sent to add", () => {
  const journal = new AddJournal();
  journal.begin('run-1', 'block', true).entry.sending([a]); // the answer never came
  const retry = journal.begin('run-1', 'block', false);
  expect(retry.earlier).toBe(true);
  expect(retry.entry.notAdded([a, b])).toEqual([b]);
});

it('takes back only the refused write: an address another write was sent to add stays claimed', () => {
  const journal = new AddJournal();
  const { entry: first } = journal.begin('run-1', 'block', true);
  first.sending([a, b]);
  first.refused([a, b]); // a stale lock token: that write added nothing
  first.sending([a]);
  expect(journal.begin('run-1', 'block', false).entry.notAdded([a, b])).toEqual([b]);
});

it('cannot judge a retry whose earlier tries it did not see, nor runs and actions apart', () => {
  const journal = new AddJournal();
  expect(journal.begin('run-2', 'block', false).entry.notAdded([a])).toBeUndefined();
  // Once unsure, unsure for every later try of that run.
  expect(journal.begin('run-2', 'block', false).entry.notAdded([a])).toBeUndefined();
  journal.begin('run-3', 'block', true).entry.sending([a]);
  expect(journal.begin('run-3', 'challenge', false).entry.notAdded([a])).toBeUndefined();
});

it('forgets the least recently tried past its bound, and then does not judge them', () => {
  const journal = new AddJournal(2);
  journal.begin('old', 'block', true);
  journal.begin('kept', 'block', true);
  journal.begin('kept', 'block', false); // tried again: now the most recent
  journal.begin('new', 'block', true); // the bound is 2: "old" goes
  expect(journal.begin('kept', 'block', false).entry.notAdded([a])).toEqual([a]);
  expect(journal.begin('old', 'block', false).entry.notAdded([a])).toBeUndefined();
});

it('judges a first attempt from memory when an add of the run failed here before it', () => {
  const journal = new AddJournal();
  journal.begin('run-4', 'block', true).entry.sending([a]); // the prepare step's add: answer lost
  const apply = journal.begin('run-4', 'block', true); // the apply step's add, in the same task
  expect(apply.earlier).toBe(true);
  expect(apply.entry.notAdded([a, b])).toEqual([b]);
});

it('does not judge a stalled first attempt that begins after a retry of it', () => {
  const journal = new AddJournal();
  journal.begin('run-6', 'block', false).entry.sending([a]); // the retry: nothing recorded before it
  const stalled = journal.begin('run-6', 'block', true);
  expect(stalled.earlier).toBe(true);
  expect(stalled.entry.notAdded([a, b])).toBeUndefined();
});

it('keeps only tries that failed: an answered add is forgotten', () => {
  const journal = new AddJournal();
  journal.begin('run-5', 'block', true).entry.sending([a]);
  journal.done('run-5', 'block');
  expect(journal.size).toBe(0);
  // A try after an answered one is not a retry in the same task: not judged from memory.
  expect(journal.begin('run-5', 'block', false).entry.notAdded([a])).toBeUndefined();
});

it("keeps the first add's retries in its workflow task: every interval under the local retry threshold", () => {
  // Past the threshold a retry waits on a timer and may run on another worker, which this
  // process's memory of the earlier tries would not cover.
  const { retry, localRetryThreshold } = addLocalOptions;
  const longest = msToNumber(retry?.maximumInterval ?? 0);
  expect(longest).toBeGreaterThan(0);
  expect(longest).toBeLessThan(msToNumber(localRetryThreshold ?? 0));
});

it('says what failed tries of a run sent, that none did, or that it cannot tell', () => {
  const journal = new AddJournal(1);
  journal.begin('run-7', 'block', true).entry.sending([a, b]);
  expect(journal.recorded('run-7', 'block')?.sentAddresses()).toEqual([a, b]);
  expect(journal.recorded('run-8', 'block')).toBeNull(); // never tried here, and nothing forgotten
  journal.begin('run-9', 'block', false); // a retry not seen from its start; the bound drops run-7
  expect(journal.recorded('run-9', 'block')).toBeUndefined();
  expect(journal.recorded('run-7', 'block')).toBeUndefined(); // dropped: a missing entry proves nothing
});
