"""POP (global popularity) and S-POP (popularity within the session), as GRU4Rec's baselines.py."""

from __future__ import annotations

import numpy as np

from seqrec.baselines.protocol import Prefixes
from seqrec.data import Events


class Pop:
  """POP: every prefix ranks the catalogue by the number of training events of each item.

  GRU4Rec's `baselines.Pop` scores `supp / (supp + 1)` for its `top_n=100` most popular items and 0
  for the rest; the order is the same, and for cutoffs <= 100 so are the metrics (the items beyond
  the top 100 tie behind every cutoff either way). Scores are the integer counts, so equal counts
  are exact ties, exactly as `seqrec.train.popularity_metrics` ranks them.
  """

  def fit(self, train: Events, n_items: int) -> None:
    self.counts = np.bincount(train.item, minlength=n_items).astype(np.int32)  # [N]

  def score(self, prefixes: Prefixes) -> np.ndarray:
    return np.broadcast_to(self.counts, (prefixes.size, len(self.counts)))  # [P, N]


class SessionPop:
  """S-POP: items ranked by their count in the prefix, ties broken by global popularity.

  GRU4Rec's `baselines.SessionPop` scores `supp_{s,i} + supp_i / (supp_i + 1)`: the prefix count
  dominates, popularity only orders items with equal prefix counts. The same order is built here
  from integers, `prefix_count * R + popularity_rank` with `popularity_rank` the dense rank (0..R-1)
  of the item's training count, so popularity ties stay exact ties and no float rounding merges
  large counts (the official `top_n=100` truncation of the tie-break is not reproduced: every item
  gets its popularity rank).
  """

  def fit(self, train: Events, n_items: int) -> None:
    counts = np.bincount(train.item, minlength=n_items)
    _, rank = np.unique(counts, return_inverse=True)
    self.popularity_rank = rank.astype(np.int64)  # [N] in 0..R-1
    self.n_ranks = int(rank.max()) + 1 if n_items else 1

  def score(self, prefixes: Prefixes) -> np.ndarray:
    d = prefixes.distinct
    if (int(d.count.max(initial=0)) + 1) * self.n_ranks >= 2**31:
      raise ValueError(f'S-POP scores overflow int32: a prefix repeats an item {d.count.max()}x')
    scores = np.empty((prefixes.size, len(self.popularity_rank)), np.int32)  # [P, N]
    scores[:] = self.popularity_rank
    scores[d.rows, d.items] += (d.count * self.n_ranks).astype(np.int32)
    return scores
