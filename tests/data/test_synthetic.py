"""Tests for the synthetic generator: determinism, shape of the log, and the planted structure."""

import numpy as np

from seqrec.data import synthetic
from seqrec.data.preprocess import split_by_last_days


def _transitions(events):
  """(current, next) item pairs within sessions."""
  same = events.session[1:] == events.session[:-1]
  return events.item[:-1][same], events.item[1:][same]


def test_deterministic_per_seed():
  a = synthetic.generate_sessions(300, 50, seed=3)
  b = synthetic.generate_sessions(300, 50, seed=3)
  c = synthetic.generate_sessions(300, 50, seed=4)
  for column in ('session', 'item', 'time'):
    np.testing.assert_array_equal(getattr(a, column), getattr(b, column))
  assert a.num_events != c.num_events or np.any(a.item != c.item)


def test_log_shape():
  events = synthetic.generate_sessions(2000, 200, seed=0, max_length=30, days=10.0)
  assert events.is_sorted and events.num_sessions == 2000
  lengths = events.session_lengths()
  assert lengths.min() >= 2 and lengths.max() <= 30 and 4 < lengths.mean() < 8
  assert events.item.min() >= 1 and events.item.max() <= 200
  starts = events.session_start_times()
  assert np.all(np.diff(starts) >= 0)  # ids follow start time
  assert starts.max() - starts.min() < 10 * 86400


def test_default_size():
  events = synthetic.generate_sessions()
  assert 30_000 < events.num_events < 60_000
  assert len(np.unique(events.item)) >= 900


def test_planted_structure_beats_popularity():
  events, chain = synthetic.generate_with_chain(4000, 300, seed=1)
  train, test = split_by_last_days(events, 1.0)
  current, following = _transitions(train)
  # Empirical most frequent successor of each item, from training transitions only.
  pair_counts = np.zeros((301, 301), np.int64)
  np.add.at(pair_counts, (current, following), 1)
  best_successor = pair_counts.argmax(axis=1)  # [N+1]
  most_popular = np.bincount(train.item).argmax()

  current, following = _transitions(test)
  successor_accuracy = np.mean(best_successor[current] == following)
  popularity_accuracy = np.mean(following == most_popular)
  assert successor_accuracy > 0.3
  assert successor_accuracy > 5 * popularity_accuracy

  # The chain's own ranking (the oracle) puts the next item in its top 20 far more often.
  pairs = zip(current, following, strict=True)
  oracle = np.mean([nxt - 1 in chain.top_k(cur - 1, 20) for cur, nxt in pairs])
  top20 = np.argsort(-np.bincount(train.item, minlength=301))[:20]
  popularity_recall = np.mean(np.isin(following, top20))
  assert oracle > 0.75 and popularity_recall < 0.35


def test_chain_probabilities_are_distributions():
  chain = synthetic.make_chain(40, np.random.default_rng(0))
  np.testing.assert_allclose(chain.successor_probs.sum(axis=1), 1.0)
  np.testing.assert_allclose(chain.next_item_probs(3).sum(), 1.0)
  assert np.all(chain.successors != np.arange(40)[:, None])  # no self-loops
  counts = (chain.successors >= 0).sum(axis=1)
  assert counts.min() >= 3 and counts.max() <= 5
