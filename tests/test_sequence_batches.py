"""Sequence batchers against brute-force Python loops; epoch batches cover every example once."""

import jax
import numpy as np
import pytest

from seqrec.data import Ragged, sequence_batches


def _random_sequences(seed: int = 0, n_users: int = 40) -> list[list[int]]:
  rng = np.random.default_rng(seed)
  lengths = np.r_[[0, 1, 2, 3], rng.integers(0, 15, size=n_users - 4)]
  return [rng.integers(1, 30, size=n).tolist() for n in lengths]


def _left_pad(items: list[int], width: int) -> list[int]:
  items = items[-width:] if width else []
  return [0] * (width - len(items)) + items


def _shapes(examples: dict) -> dict:
  return {key: (value.shape, value.dtype) for key, value in examples.items()}


@pytest.mark.parametrize('max_len', [1, 4, 20])
def test_history_sasrec_and_bert4rec_against_loops(max_len):
  rows = _random_sequences()
  train = Ragged.from_rows(rows)
  expected = [_left_pad(s, max_len) for s in rows]
  np.testing.assert_array_equal(sequence_batches.history_matrix(train, max_len), expected)

  sasrec = sequence_batches.sasrec_examples(train, max_len)
  np.testing.assert_array_equal(sasrec['inputs'], [_left_pad(s[:-1], max_len) for s in rows])
  np.testing.assert_array_equal(sasrec['targets'], [_left_pad(s[1:], max_len) for s in rows])
  np.testing.assert_array_equal(sasrec['users'], np.arange(len(rows)))
  assert _shapes(sasrec)['inputs'] == ((len(rows), max_len), np.int32)

  bert = sequence_batches.bert4rec_examples(train, max_len)
  np.testing.assert_array_equal(bert['inputs'], expected)
  np.testing.assert_array_equal(bert['users'], np.arange(len(rows)))


def test_sasrec_targets_follow_inputs():
  sasrec = sequence_batches.sasrec_examples(Ragged.from_rows([[5, 6, 7, 8], [9]]), 5)
  np.testing.assert_array_equal(sasrec['inputs'], [[0, 0, 5, 6, 7], [0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(sasrec['targets'], [[0, 0, 6, 7, 8], [0, 0, 0, 0, 0]])


def _caser_loop(rows: list[list[int]], seq_len: int, target_len: int):
  """Caser's windows: every W = L + T consecutive items, latest first; short sequences padded."""
  width = seq_len + target_len
  inputs, targets, users = [], [], []
  for user, items in enumerate(rows):
    if not items:
      continue
    if len(items) < width:
      windows = [[0] * (width - len(items)) + items]
    else:
      windows = [items[end - width : end] for end in range(len(items), width - 1, -1)]
    for window in windows:
      inputs.append(window[:seq_len])
      targets.append(window[seq_len:])
      users.append(user)
  return inputs, targets, users


def test_caser_example_of_its_docstring():
  examples = sequence_batches.caser_examples(Ragged.from_rows([list(range(1, 10))]), 5, 2)
  np.testing.assert_array_equal(
    examples['inputs'], [[3, 4, 5, 6, 7], [2, 3, 4, 5, 6], [1, 2, 3, 4, 5]]
  )
  np.testing.assert_array_equal(examples['targets'], [[8, 9], [7, 8], [6, 7]])


@pytest.mark.parametrize('seq_len, target_len', [(5, 3), (1, 1), (3, 1), (8, 2)])
def test_caser_against_loop(seq_len, target_len):
  rows = _random_sequences(seed=1)
  examples = sequence_batches.caser_examples(Ragged.from_rows(rows), seq_len, target_len)
  inputs, targets, users = _caser_loop(rows, seq_len, target_len)
  np.testing.assert_array_equal(examples['inputs'], inputs)
  np.testing.assert_array_equal(examples['targets'], targets)
  np.testing.assert_array_equal(examples['users'], users)
  assert _shapes(examples) == {
    'inputs': ((len(users), seq_len), np.int32),
    'targets': ((len(users), target_len), np.int32),
    'users': ((len(users),), np.int32),
  }


def test_transrec_against_loop():
  rows = _random_sequences(seed=2)
  examples = sequence_batches.transrec_examples(Ragged.from_rows(rows))
  pairs = [(s[t - 1], s[t], u) for u, s in enumerate(rows) for t in range(1, len(s))]
  np.testing.assert_array_equal(examples['inputs'][:, 0], [p[0] for p in pairs])
  np.testing.assert_array_equal(examples['targets'][:, 0], [p[1] for p in pairs])
  np.testing.assert_array_equal(examples['users'], [p[2] for p in pairs])
  assert examples['inputs'].shape == examples['targets'].shape == (len(pairs), 1)


@pytest.mark.parametrize(
  'n_examples, batch_size, multiple, steps', [(10, 4, 1, 3), (10, 4, 2, 4), (8, 4, 1, 2)]
)
def test_epoch_batches_cover_each_example_once(n_examples, batch_size, multiple, steps):
  key = jax.random.key(0)
  indices, valid = sequence_batches.epoch_batches(key, n_examples, batch_size, multiple)
  assert indices.shape == valid.shape == (steps, batch_size)
  assert indices.dtype == np.int32 and valid.dtype == bool
  indices, valid = np.asarray(indices), np.asarray(valid)
  np.testing.assert_array_equal(np.sort(indices[valid]), np.arange(n_examples))
  assert np.all(indices[~valid] == 0) and valid.sum() == n_examples
  again = sequence_batches.epoch_batches(key, n_examples, batch_size, multiple)[0]
  np.testing.assert_array_equal(again, indices)
  other = sequence_batches.epoch_batches(jax.random.key(1), n_examples, batch_size, multiple)[0]
  assert not np.array_equal(other, indices)
