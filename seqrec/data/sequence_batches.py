"""Fixed-shape training examples of user-sequence models, evaluation histories and epoch batches.

Each builder turns the training sequences into an `Examples` dict of numpy arrays with a leading
example axis E, built once per run; an epoch is then a device-side permutation of example indices
(`epoch_batches`). Item id 0 is padding, and every window is left-padded.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from seqrec.data.user_sequences import Ragged

Examples = dict[str, np.ndarray]


def _windows(values: np.ndarray, starts: np.ndarray, stops: np.ndarray, width: int) -> np.ndarray:
  """The last `width` items of each span `values[starts[r]:stops[r]]`, left-padded with 0.

  Returns:
    [R, width] int32.
  """
  index = stops[:, None] - width + np.arange(width)[None, :]  # [R, W]
  inside = index >= starts[:, None]
  padded = np.concatenate([np.zeros(1, np.int32), values.astype(np.int32)])  # 0 = padding
  return padded[np.where(inside, index + 1, 0)]


def history_matrix(history: Ragged, max_len: int) -> np.ndarray:
  """[U, L] int32: each user's last `max_len` items, left-padded (the evaluation input)."""
  return _windows(history.values, history.offsets[:-1], history.offsets[1:], max_len)


def sasrec_examples(train: Ragged, max_len: int) -> Examples:
  """SASRec: one example per user, predicting every next item of the training sequence.

  For a sequence s of length n, inputs are the last `max_len` items of s[:-1] and targets the
  last `max_len` of s[1:] (so targets[t] follows inputs[t]), both left-padded with 0; users with
  fewer than 2 items get rows without targets.

  Returns:
    {'inputs' [U, L] int32, 'targets' [U, L] int32, 'users' [U] int32}.
  """
  starts, stops = train.offsets[:-1], train.offsets[1:]
  return {
    'inputs': _windows(train.values, starts, np.maximum(stops - 1, starts), max_len),
    'targets': _windows(train.values, np.minimum(starts + 1, stops), stops, max_len),
    'users': np.arange(train.n_rows, dtype=np.int32),
  }


def bert4rec_examples(train: Ragged, max_len: int) -> Examples:
  """BERT4Rec: each user's last `max_len` training items (the model masks them on device).

  Returns:
    {'inputs' [U, L] int32, 'users' [U] int32}.
  """
  return {
    'inputs': history_matrix(train, max_len),
    'users': np.arange(train.n_rows, dtype=np.int32),
  }


def caser_examples(train: Ragged, seq_len: int, target_len: int) -> Examples:
  """Caser's sliding windows, as graytowne/caser_pytorch's `Interactions.to_sequence` makes them.

  With W = L + T, a sequence of n >= W items gives the n - W + 1 windows of W consecutive items,
  latest first; a shorter non-empty one gives a single window, left-padded with 0 to W; an empty
  one gives none. A window's first L items are the inputs and its last T the targets.

  Args:
    train: the training sequences.
    seq_len: L, the number of input items.
    target_len: T, the number of target items.

  Returns:
    {'inputs' [E, L] int32, 'targets' [E, T] int32, 'users' [E] int32}.
  """
  width = seq_len + target_len
  n = train.lengths()  # [U]
  per_user = np.where(n >= width, n - width + 1, np.minimum(n, 1))  # [U]
  users = np.repeat(np.arange(train.n_rows), per_user)  # [E]
  back = np.arange(len(users)) - np.repeat(np.cumsum(per_user) - per_user, per_user)  # [E]
  starts = train.offsets[users]
  windows = _windows(train.values, starts, starts + n[users] - back, width)  # [E, W]
  return {
    'inputs': windows[:, :seq_len],
    'targets': windows[:, seq_len:],
    'users': users.astype(np.int32),
  }


def transrec_examples(train: Ragged) -> Examples:
  """TransRec: one example per consecutive pair (previous item, next item) of each user.

  Returns:
    {'inputs' [E, 1] int32, 'targets' [E, 1] int32, 'users' [E] int32}, in (user, time) order.
  """
  later = np.flatnonzero(train.positions() > 0)  # [E] every item that has a predecessor
  return {
    'inputs': train.values[later - 1, None].astype(np.int32),
    'targets': train.values[later, None].astype(np.int32),
    'users': train.row_ids()[later].astype(np.int32),
  }


@functools.partial(jax.jit, static_argnames=('n_examples', 'batch_size', 'n_steps_multiple'))
def epoch_batches(
  key: jax.Array, n_examples: int, batch_size: int, n_steps_multiple: int = 1
) -> tuple[jax.Array, jax.Array]:
  """One epoch: a random permutation of the example indices, cut into fixed-size batches.

  Args:
    key: the epoch's random key.
    n_examples: E (static).
    batch_size: B (static).
    n_steps_multiple: the number of steps S is rounded up to a multiple of this (static), e.g. the
      steps that one `lax.scan` call runs.

  Returns:
    (indices [S, B] int32, valid [S, B] bool): every index in 0..E-1 appears exactly once where
    valid; padding slots hold index 0 and valid False.
  """
  n_steps = -(-n_examples // batch_size)
  n_steps = -(-n_steps // n_steps_multiple) * n_steps_multiple
  slots = n_steps * batch_size
  order = jax.random.permutation(key, n_examples).astype(jnp.int32)  # [E]
  indices = jnp.zeros(slots, jnp.int32).at[:n_examples].set(order)
  valid = jnp.arange(slots) < n_examples
  return indices.reshape(n_steps, batch_size), valid.reshape(n_steps, batch_size)
