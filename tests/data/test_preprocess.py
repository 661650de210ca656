"""Tests for the GRU4Rec preprocessing recipe against hand-computed tables."""

import numpy as np
import pytest

from seqrec.data import Events, preprocess

DAY = 86400.0

# (session, item, time). Hand-computed outcome of the recipe with min_item_support=3, test_days=1:
# - session 2 has one event: dropped first (so item 10's support excludes it);
# - item 40 occurs twice (sessions 3, 4): dropped; session 4 is left with one event: dropped;
# - item 50 occurs 4 times, survives the support filter, but only in test sessions;
# - tmax = 10 days, so test = sessions whose LAST event is >= 9 days: 6, 7, 8 and 9 (session 9
#   starts before the boundary); session 10 ends 1 s before it and stays in train;
# - test cleanup: item 50 is unseen in train: session 7 keeps [10] and is dropped, 8 keeps 3.
RAW = [
  (1, 10, 0.0),
  (1, 20, 100.0),
  (2, 10, 200.0),
  (3, 20, 1 * DAY),
  (3, 30, 1 * DAY + 10),
  (3, 40, 1 * DAY + 20),
  (4, 40, 2 * DAY),
  (4, 10, 2 * DAY + 10),
  (5, 30, 3 * DAY),
  (5, 10, 3 * DAY + 10),
  (5, 20, 3 * DAY + 20),
  (10, 30, 9 * DAY - 100),
  (10, 20, 9 * DAY - 1),
  (9, 20, 8 * DAY),
  (9, 10, 9 * DAY),
  (6, 30, 9.5 * DAY),
  (6, 20, 9.5 * DAY + 10),
  (7, 50, 9.6 * DAY),
  (7, 50, 9.6 * DAY + 1),
  (7, 50, 9.6 * DAY + 2),
  (7, 10, 9.6 * DAY + 3),
  (8, 10, 10 * DAY - 3),
  (8, 50, 10 * DAY - 2),
  (8, 30, 10 * DAY - 1),
  (8, 20, 10 * DAY),
]
TRAIN_SESSIONS = [1, 1, 3, 3, 5, 5, 5, 10, 10]
TRAIN_ITEMS = [10, 20, 20, 30, 30, 10, 20, 30, 20]
TEST_SESSIONS = [6, 6, 8, 8, 8, 9, 9]
TEST_ITEMS = [30, 20, 10, 30, 20, 20, 10]


def raw_events(rows=RAW) -> Events:
  session, item, time = (np.array(column) for column in zip(*rows, strict=True))
  return Events(session.astype(np.int64), item.astype(np.int64), time.astype(np.float64)).sort()


def test_recipe_matches_hand_computation():
  events = preprocess.filter_sessions_and_items(raw_events(), 2, min_item_support=3)
  assert set(events.session.tolist()) == {1, 3, 5, 6, 7, 8, 9, 10}
  assert 40 not in events.item
  train, test = preprocess.split_by_last_days(events, days=1.0)
  test = preprocess.restrict_to_items(test, np.unique(train.item), min_session_length=2)
  np.testing.assert_array_equal(train.session, TRAIN_SESSIONS)
  np.testing.assert_array_equal(train.item, TRAIN_ITEMS)
  np.testing.assert_array_equal(test.session, TEST_SESSIONS)
  np.testing.assert_array_equal(test.item, TEST_ITEMS)


def test_refilter_after_support_filter():
  events = raw_events([(1, 1, 0.0), (1, 2, 1.0), (2, 1, 2.0), (2, 1, 3.0)])
  once = preprocess.filter_rare_items(events, 3)  # item 2 goes, session 1 keeps one event
  np.testing.assert_array_equal(once.session, [1, 2, 2])
  # Then session 1 is too short and goes; session 2 stays.
  np.testing.assert_array_equal(preprocess.filter_sessions_and_items(events, 2, 3).session, [2, 2])


def test_split_by_last_fraction_uses_last_event_order():
  # Session 1 ends last although it starts first.
  events = raw_events(
    [(1, 1, 0.0), (1, 2, 9.0), (2, 3, 1.0), (2, 4, 2.0), (3, 5, 3.0), (3, 6, 4.0)]
  )
  earlier, held_out = preprocess.split_by_last_fraction(events, 0.34)
  np.testing.assert_array_equal(held_out.session, [1, 1])
  np.testing.assert_array_equal(earlier.session, [2, 2, 3, 3])
  with pytest.raises(ValueError):
    preprocess.split_by_last_fraction(events, 1.0)


def test_sessionize_by_gap():
  user = np.array([1, 1, 1, 2, 2])
  time = np.array([0.0, 1800.0, 3601.0, 3602.0, 9000.0])
  np.testing.assert_array_equal(preprocess.sessionize_by_gap(user, time, 1800.0), [1, 1, 2, 3, 4])
