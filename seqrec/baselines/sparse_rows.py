"""Row-wise selection in CSR matrices (top-k per row) and the session x item matrix of events."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from seqrec.data import Events


def entry_rows(matrix: sp.csr_array) -> np.ndarray:
  """[nnz] int64 row of every stored entry of a CSR matrix."""
  return np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))


def rank_within_rows(matrix: sp.csr_array, *keys: np.ndarray) -> np.ndarray:
  """Each stored entry's 0-based rank within its row when the row is sorted by `keys`, descending.

  Args:
    matrix: a CSR matrix; only its row structure is used.
    *keys: [nnz] sort keys, most significant first; later keys break ties of earlier ones. They
      must leave no ties within a row (end with e.g. the column index) for a deterministic rank.

  Returns:
    [nnz] int64 ranks: 0 for the largest entry of each row.
  """
  rows = entry_rows(matrix)
  order = np.lexsort(tuple(-np.asarray(k) for k in reversed(keys)) + (rows,))
  rank = np.empty(len(rows), np.int64)
  rank[order] = np.arange(len(rows)) - matrix.indptr[rows[order]]
  return rank


def select_entries(matrix: sp.csr_array, keep: np.ndarray, data: np.ndarray | None = None):
  """The CSR matrix holding only the entries where `keep` is True (order within rows unchanged).

  Args:
    matrix: a CSR matrix.
    keep: [nnz] bool.
    data: [nnz] replacement values, or None to keep the matrix's own.

  Returns:
    A CSR array of the same shape.
  """
  values = matrix.data if data is None else data
  per_row = np.bincount(entry_rows(matrix)[keep], minlength=matrix.shape[0])
  indptr = np.concatenate([[0], np.cumsum(per_row)])
  return sp.csr_array((values[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def top_k_per_row(matrix: sp.csr_array, k: int) -> sp.csr_array:
  """Keeps the k largest entries of every row; equal values keep the smaller column index."""
  matrix = sp.csr_array(matrix)
  matrix.sum_duplicates()
  rank = rank_within_rows(matrix, matrix.data, -matrix.indices.astype(np.int64))
  return select_entries(matrix, rank < k)


def flat_keys(matrix: sp.csr_array) -> np.ndarray:
  """[nnz] int64 `row * n_cols + col` of every entry: ascending for a canonical CSR matrix."""
  return entry_rows(matrix) * matrix.shape[1] + matrix.indices


def lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
  """The values stored under `query` keys (`flat_keys` of a canonical matrix), 0 where none is.

  Args:
    keys: [nnz] ascending `flat_keys` of a matrix.
    values: [nnz] its stored values.
    query: [E] `row * n_cols + col` keys to look up.

  Returns:
    [E] values, of `values`' dtype.
  """
  if not len(keys):
    return np.zeros(len(query), values.dtype)
  at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
  return np.where(keys[at] == query, values[at], 0).astype(values.dtype)


def session_item_matrix(events: Events, n_items: int, binary: bool) -> sp.csr_array:
  """[S, N] events per (session, item), sessions in `session_offsets` order.

  Args:
    events: a session-sorted table with dense item ids.
    n_items: the catalogue size N.
    binary: store 1 for every item a session holds instead of its number of events.

  Returns:
    A canonical float64 CSR array.
  """
  lengths = events.session_lengths()
  session = np.repeat(np.arange(len(lengths)), lengths)
  ones = np.ones(events.num_events)
  matrix = sp.csr_array(
    sp.coo_array((ones, (session, events.item)), shape=(len(lengths), n_items))
  )  # duplicates are summed: the event counts
  matrix.sum_duplicates()
  if binary:
    matrix.data[:] = 1.0
  return matrix
