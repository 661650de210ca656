"""Item-KNN: the next item is scored by its co-occurrence similarity to the prefix's last item."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from seqrec.baselines import sparse_rows
from seqrec.baselines.params import require
from seqrec.baselines.protocol import Prefixes
from seqrec.data import Events


class ItemKNN:
  """GRU4Rec's `baselines.ItemKNN` (the Item-KNN of the GRU4Rec paper), on sparse matrices.

  The similarity of items i != j is

      sim(i, j) = cooc(i, j) / ((supp_i + lmbd)^alpha * (supp_j + lmbd)^(1 - alpha))

  where, as the official code counts them, `cooc(i, j) = sum_s n_s(i) * n_s(j)` with `n_s(i)` the
  number of events of item i in training session s (a repeated click counts again), and `supp_i`
  is the number of training events of item i. alpha = 0.5 is the cosine similarity, 1.0 the
  confidence of an association rule; lmbd discounts rare items. Every item keeps its `n_sims` most
  similar items (ties: the smaller item id first; the official code's sort leaves them arbitrary);
  a prediction scores them by their similarity to the prefix's last item and every other item 0.
  Official defaults: n_sims=100, lmbd=20, alpha=0.5.

  The similarity is computed in blocks of `block_items` rows, so no dense N x N matrix and no full
  co-occurrence matrix ever exist; the model is an [N, N] sparse matrix with <= n_sims per row.
  """

  def __init__(self, n_sims: int = 100, lmbd: float = 20.0, alpha: float = 0.5, block_items=4096):
    require(int(n_sims) > 0, 'n_sims', n_sims, 'a positive integer')
    require(float(lmbd) >= 0, 'lmbd', lmbd, 'a non-negative number')
    require(0.0 <= float(alpha) <= 1.0, 'alpha', alpha, 'a number in [0, 1]')
    require(int(block_items) > 0, 'block_items', block_items, 'a positive integer')
    self.n_sims = int(n_sims)
    self.lmbd = float(lmbd)
    self.alpha = float(alpha)
    self.block_items = int(block_items)

  def fit(self, train: Events, n_items: int) -> None:
    counts = sparse_rows.session_item_matrix(train, n_items, binary=False)  # [S, N] n_s(i)
    by_item = sp.csr_array(counts.T)  # [N, S]
    supp = np.bincount(train.item, minlength=n_items).astype(np.float64)  # [N]
    left = np.power(supp + self.lmbd, self.alpha)  # [N]
    right = np.power(supp + self.lmbd, 1.0 - self.alpha)  # [N]
    blocks = []
    for start in range(0, n_items, self.block_items):
      stop = min(start + self.block_items, n_items)
      cooc = sp.csr_array(by_item[start:stop] @ counts)  # [B, N]
      cooc.sum_duplicates()
      rows = sparse_rows.entry_rows(cooc)
      norm = left[start + rows] * right[cooc.indices]
      norm[norm == 0] = 1.0  # only with lmbd = 0 and an unseen item, whose cooc is 0 anyway
      sims = cooc.data / norm
      keep = (cooc.indices != start + rows) & (sims > 0)  # no self-similarity
      blocks.append(
        sparse_rows.top_k_per_row(sparse_rows.select_entries(cooc, keep, sims), self.n_sims)
      )
    empty = sp.csr_array((0, n_items))
    self.sims = sp.csr_array(sp.vstack(blocks, format='csr') if blocks else empty, dtype=np.float32)

  def score(self, prefixes: Prefixes) -> np.ndarray:
    return self.sims[prefixes.last].toarray()  # [P, N] float32
