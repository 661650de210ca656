"""The baseline contract: a batch of session prefixes (`Prefixes`) in, `[P, N]` item scores out."""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Protocol

import numpy as np
import scipy.sparse as sp

from seqrec.data import Events


class DistinctItems(NamedTuple):
  """One entry per distinct (prefix, item) pair, ordered by prefix then item id.

  Attributes:
    rows: [U] int64 prefix of each entry.
    items: [U] int32 item id.
    last_position: [U] int64 1-based position of the item's last occurrence in its prefix.
    count: [U] int64 occurrences of the item in its prefix.
  """

  rows: np.ndarray
  items: np.ndarray
  last_position: np.ndarray
  count: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Prefixes:
  """P session prefixes over a catalogue of N items, stored back to back (CSR-like).

  Attributes:
    items: [T] int32 dense item ids; prefix p is `items[offsets[p]:offsets[p + 1]]`, oldest first.
    offsets: [P + 1] int64, starting at 0; every prefix holds at least one item.
    n_items: the catalogue size N.
  """

  items: np.ndarray
  offsets: np.ndarray
  n_items: int

  @classmethod
  def from_lists(cls, prefixes: list, n_items: int) -> Prefixes:
    """Builds a batch from a list of item-id sequences (a convenience for tests and notebooks)."""
    lengths = np.array([len(p) for p in prefixes], np.int64)
    if np.any(lengths == 0):
      raise ValueError('every prefix needs at least one item')
    items = np.concatenate([np.asarray(p, np.int32) for p in prefixes])
    return cls(items, np.concatenate([[0], np.cumsum(lengths)]), n_items)

  @property
  def size(self) -> int:
    """The number of prefixes P."""
    return len(self.offsets) - 1

  @functools.cached_property
  def lengths(self) -> np.ndarray:
    """[P] int64 events in each prefix."""
    return np.diff(self.offsets)

  @functools.cached_property
  def rows(self) -> np.ndarray:
    """[T] int64 the prefix each stored event belongs to."""
    return np.repeat(np.arange(self.size), self.lengths)

  @functools.cached_property
  def positions(self) -> np.ndarray:
    """[T] int64 1-based position of each stored event within its prefix."""
    return np.arange(len(self.items)) - self.offsets[self.rows] + 1

  @property
  def last(self) -> np.ndarray:
    """[P] int32 the most recent item of each prefix."""
    return self.items[self.offsets[1:] - 1]

  @functools.cached_property
  def distinct(self) -> DistinctItems:
    """The distinct items of every prefix, with their last position and count."""
    key = self.rows * self.n_items + self.items  # [T] int64
    order = np.lexsort((self.positions, key))
    key = key[order]
    group_end = np.ones(len(key), bool)
    group_end[:-1] = key[1:] != key[:-1]
    last = order[group_end]  # [U] the last occurrence of each pair
    ends = np.flatnonzero(group_end)
    count = np.diff(np.concatenate([[-1], ends]))
    return DistinctItems(self.rows[last], self.items[last], self.positions[last], count)

  def item_matrix(self, values: np.ndarray | None = None) -> sp.csr_array:
    """[P, N] sparse matrix with one entry per distinct (prefix, item) pair.

    Args:
      values: [U] values in `distinct` order; None stores 1 (the prefix as a binary vector).

    Returns:
      A canonical CSR array (sorted column indices, no duplicates); float64 values.
    """
    d = self.distinct
    data = np.ones(len(d.rows)) if values is None else np.asarray(values, np.float64)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(d.rows, minlength=self.size))])
    return sp.csr_array((data, d.items, indptr), shape=(self.size, self.n_items))


class Baseline(Protocol):
  """A next-item predictor fitted on a training table and scored on prefixes of test sessions.

  Higher scores are better. Scores are compared exactly (ties handled by the evaluator's tie mode),
  so a baseline whose order is integral returns integers rather than rounding it into floats.
  """

  def fit(self, train: Events, n_items: int) -> None:
    """Learns from `train` (dense item ids in [0, n_items), sorted by session and time).

    Raises:
      FloatingPointError: an iteratively fitted baseline diverged (NaN or infinite values).
    """

  def score(self, prefixes: Prefixes) -> np.ndarray:
    """[P, N] float32 or int32 scores of every catalogue item as the next item of each prefix."""
