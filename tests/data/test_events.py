"""Tests for the event table and the item vocabulary."""

import numpy as np
import pytest

from seqrec.data import Events, ItemVocab
from seqrec.data.events import count_items


def _events(session, item, time, user=None):
  return Events(
    np.asarray(session, np.int64),
    np.asarray(item),
    np.asarray(time, np.float64),
    None if user is None else np.asarray(user, np.int64),
    source='test',
  )


def test_sort_is_stable_by_session_then_time():
  events = _events([2, 1, 2, 1, 2], [5, 6, 7, 8, 9], [3.0, 2.0, 1.0, 1.0, 3.0], [0, 1, 2, 3, 4])
  ordered = events.sort()
  np.testing.assert_array_equal(ordered.session, [1, 1, 2, 2, 2])
  np.testing.assert_array_equal(ordered.item, [8, 6, 7, 5, 9])  # 5 and 9 tie: file order kept
  np.testing.assert_array_equal(ordered.user, [3, 1, 2, 0, 4])
  assert ordered.sort() is ordered
  assert ordered.is_sorted and not events.is_sorted


def test_offsets_lengths_and_session_times():
  events = _events([1, 1, 4, 4, 4, 7], [1, 2, 3, 4, 5, 6], [5.0, 6.0, 1.0, 2.0, 9.0, 3.0])
  np.testing.assert_array_equal(events.session_offsets(), [0, 2, 5, 6])
  np.testing.assert_array_equal(events.session_lengths(), [2, 3, 1])
  np.testing.assert_array_equal(events.session_ids(), [1, 4, 7])
  np.testing.assert_array_equal(events.session_start_times(), [5.0, 1.0, 3.0])
  np.testing.assert_array_equal(events.session_end_times(), [6.0, 9.0, 3.0])
  assert events.num_events == 6 and events.num_sessions == 3
  assert events.session_offsets().dtype == np.int64


def test_empty_table_and_unsorted_offsets():
  empty = _events([], [], [])
  np.testing.assert_array_equal(empty.session_offsets(), [0])
  assert empty.num_sessions == 0 and len(empty.session_start_times()) == 0
  with pytest.raises(ValueError, match='not sorted'):
    _events([2, 1], [1, 1], [0.0, 0.0]).session_offsets()


def test_select_and_column_checks():
  events = _events([1, 1, 2], [7, 8, 9], [0.0, 1.0, 2.0])
  picked = events.select(np.array([True, False, True]))
  np.testing.assert_array_equal(picked.item, [7, 9])
  assert picked.source == 'test' and picked.user is None
  with pytest.raises(ValueError, match='differ in length'):
    _events([1, 2], [1], [0.0, 1.0])


def test_vocab_first_appearance_encode_decode():
  events = _events([2, 1, 1, 2], [30, 20, 10, 20], [0.0, 0.0, 1.0, 1.0])
  vocab = ItemVocab.from_events(events)  # sorted table: 20, 10, 30, 20
  np.testing.assert_array_equal(vocab.ids, [20, 10, 30])
  dense = vocab.encode(np.array([10, 99, 30, 20]))
  np.testing.assert_array_equal(dense, [1, -1, 2, 0])
  assert dense.dtype == np.int32
  np.testing.assert_array_equal(vocab.decode([2, 0]), [30, 20])
  dense = events.with_items(vocab.encode(events.item))
  np.testing.assert_array_equal(count_items(dense, 3), [2, 1, 1])


def test_vocab_string_ids():
  vocab = ItemVocab(np.array(['b', 'a', 'cc'], dtype=object))
  assert vocab.ids.dtype.kind == 'U'
  np.testing.assert_array_equal(vocab.encode(['cc', 'zz', 'b']), [2, -1, 0])
  with pytest.raises(ValueError, match='cannot encode'):
    vocab.encode(np.array([1, 2]))
  with pytest.raises(ValueError, match='unique'):
    ItemVocab(np.array([3, 3]))


@pytest.mark.parametrize(
  'ids', [np.array([214536502, 7, 42], np.int64), np.array(['x', 'éa', 'b'])]
)
def test_vocab_save_load_round_trip(tmp_path, ids):
  vocab = ItemVocab(ids)
  path = tmp_path / 'vocab.npz'
  vocab.save(path)
  with np.load(path, allow_pickle=False) as f:
    assert f['ids'].dtype != object
  loaded = ItemVocab.load(path)
  np.testing.assert_array_equal(loaded.ids, ids)
  assert loaded.ids.dtype.kind == ids.dtype.kind
  np.testing.assert_array_equal(loaded.encode(ids[::-1]), [2, 1, 0])
