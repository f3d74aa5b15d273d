/** The worker's memory of what each run's adds may have written, across the tries of one add. */
import { AddJournal } from '../../src/waf/add-journal';

const a = '192.0.2.1/32';
const b = '192.0.2.2/32';

it("tells someone else's addresses from those an earlier try was sent to add", () => {
  const journal = new AddJournal();
  journal.begin('run-1', 'block', true).sending([a]); // the answer never came
  const retry = journal.begin('run-1', 'block', false);
  expect(retry.notAdded([a, b])).toEqual([b]);
});

it('takes back only the refused write: an address another write was sent to add stays claimed', () => {
  const journal = new AddJournal();
  const first = journal.begin('run-1', 'block', true);
  first.sending([a, b]);
  first.refused([a, b]); // a stale lock token: that write added nothing
  first.sending([a]);
  expect(journal.begin('run-1', 'block', false).notAdded([a, b])).toEqual([b]);
});

it('cannot judge a retry whose earlier tries it did not see, nor runs and actions apart', () => {
  const journal = new AddJournal();
  expect(journal.begin('run-2', 'block', false).notAdded([a])).toBeUndefined();
  // Once unsure, unsure for every later try of that run.
  expect(journal.begin('run-2', 'block', false).notAdded([a])).toBeUndefined();
  journal.begin('run-3', 'block', true).sending([a]);
  expect(journal.begin('run-3', 'challenge', false).notAdded([a])).toBeUndefined();
});

it('forgets the least recently tried past its bound, and then does not judge them', () => {
  const journal = new AddJournal(2);
  journal.begin('old', 'block', true);
  journal.begin('kept', 'block', true);
  journal.begin('kept', 'block', false); // tried again: now the most recent
  journal.begin('new', 'block', true); // the bound is 2: "old" goes
  expect(journal.begin('kept', 'block', false).notAdded([a])).toEqual([a]);
  expect(journal.begin('old', 'block', false).notAdded([a])).toBeUndefined();
});

it('starts afresh on a first try', () => {
  const journal = new AddJournal();
  journal.begin('run-4', 'block', false);
  expect(journal.begin('run-4', 'block', true).notAdded([a])).toEqual([a]);
});

it('keeps only tries that failed: an answered add is forgotten', () => {
  const journal = new AddJournal();
  journal.begin('run-5', 'block', true).sending([a]);
  journal.done('run-5', 'block');
  expect(journal.size).toBe(0);
  // A try after an answered one is not a retry in the same task: not judged from memory.
  expect(journal.begin('run-5', 'block', false).notAdded([a])).toBeUndefined();
});
