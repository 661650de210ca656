"""Session-based nearest neighbours, SKNN and V-SKNN (Ludewig & Jannach 2018; session-rec's knn)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from seqrec.baselines import sparse_rows
from seqrec.baselines.params import require
from seqrec.baselines.protocol import Prefixes
from seqrec.data import Events

SIMILARITIES = ('cosine', 'jaccard')
WEIGHTINGS = ('same', 'div', 'linear', 'log', 'quadratic')


def position_weight(kind: str, position: np.ndarray, length: np.ndarray) -> np.ndarray:
  """V-SKNN's weight of a prefix item by the 1-based `position` of its last click in a prefix.

  session-rec's `VMContextKNN` weightings, with i = position and L = length: same 1, div i / L,
  log 1 / log10(L - i + 1.7), quadratic (i / L)^2, and linear 1 - 0.1 (L - i) for the ten most
  recent positions, 0 before them. (session-rec's `linear` tests `i <= 10` instead, which zeroes the
  most recent clicks of prefixes longer than 10 and makes older ones negative; the window is counted
  from the end here, as the decay is meant.)
  """
  position = position.astype(np.float64)
  length = length.astype(np.float64)
  if kind == 'same':
    return np.ones_like(position)
  if kind == 'div':
    return position / length
  if kind == 'linear':
    return np.maximum(1.0 - 0.1 * (length - position), 0.0)
  if kind == 'log':
    return 1.0 / np.log10(length - position + 1.7)
  if kind == 'quadratic':
    return (position / length) ** 2
  raise ValueError(f'unknown weighting {kind!r}; choose from {WEIGHTINGS}')


def step_weight(kind: str, step: np.ndarray) -> np.ndarray:
  """V-SKNN's decay of a neighbour whose most recent shared item is `step` clicks from the end.

  session-rec's `*_score` functions, with s = step (1 = the last click): same 1, div 1 / s,
  log 1 / log10(s + 1.7), quadratic 1 / s^2, linear max(1 - 0.1 s, 0) (session-rec's
  `1 - 0.1 s for s <= 100` turns negative beyond s = 10; it is clipped at 0 here).
  """
  step = step.astype(np.float64)
  if kind == 'same':
    return np.ones_like(step)
  if kind == 'div':
    return 1.0 / step
  if kind == 'linear':
    return np.maximum(1.0 - 0.1 * step, 0.0)
  if kind == 'log':
    return 1.0 / np.log10(step + 1.7)
  if kind == 'quadratic':
    return 1.0 / step**2
  raise ValueError(f'unknown weighting {kind!r}; choose from {WEIGHTINGS}')


class _SessionNeighbours:
  """What SKNN and V-SKNN share: training sessions as binary item sets, candidates, neighbours.

  Training sessions are stored by recency (their last event's time; equal times keep table order,
  the later session counting as more recent), so "the most recent candidates" of a prefix are the
  largest column indices of its row in a [P, S] candidate matrix.

  A prefix's candidates are, as in session-rec's `possible_neighbor_sessions`, the training
  sessions holding any of its items; when there are more than `sample_size`, the `sample_size` most
  recent (`sampling='recent'`; 0 keeps them all). Each item's session list is truncated to its own
  `sample_size` most recent sessions before the candidate product: a session among the
  `sample_size` most recent of the union is among the `sample_size` most recent of every item it
  shares with the prefix, so the sample and its overlap counts are exact, and the product's size is
  bounded by P * prefix items * sample_size whatever the items' popularity.
  """

  def __init__(self, k: int, sample_size: int):
    require(int(k) > 0, 'k', k, 'a positive integer')
    require(int(sample_size) >= 0, 'sample_size', sample_size, 'a non-negative integer (0: all)')
    self.k = int(k)
    self.sample_size = int(sample_size)

  def fit(self, train: Events, n_items: int) -> None:
    by_recency = np.argsort(train.session_end_times(), kind='stable')  # [S]
    sessions = sparse_rows.session_item_matrix(train, n_items, binary=True)[by_recency]
    sessions = sp.csr_array(sessions)
    sessions.sort_indices()
    self.n_items = n_items
    self.sessions = sessions  # [S, N] binary
    self.session_sizes = np.diff(sessions.indptr)  # [S] distinct items of each session
    self._session_keys = sparse_rows.flat_keys(sessions)
    item_sessions = sp.csr_array(sessions.T)  # [N, S]
    item_sessions.sort_indices()
    if self.sample_size > 0:
      newest = sparse_rows.rank_within_rows(item_sessions, item_sessions.indices)
      item_sessions = sparse_rows.select_entries(item_sessions, newest < self.sample_size)
    self.item_sessions = item_sessions

  def _candidates(self, query: sp.csr_array) -> sp.csr_array:
    """[P, S] sampled candidate sessions of each query row, valued query @ session (exact)."""
    product = sp.csr_array(query @ self.item_sessions)
    product.sum_duplicates()
    if self.sample_size == 0:
      return product
    newest = sparse_rows.rank_within_rows(product, product.indices)
    return sparse_rows.select_entries(product, newest < self.sample_size)

  def _neighbours(self, candidates: sp.csr_array, similarity: np.ndarray) -> sp.csr_array:
    """[P, S] each row's k most similar candidates (similarity > 0); ties: most recent first."""
    positive = sparse_rows.select_entries(candidates, similarity > 0, similarity)
    rank = sparse_rows.rank_within_rows(positive, positive.data, positive.indices)
    return sparse_rows.select_entries(positive, rank < self.k)

  def _item_scores(self, weights: sp.csr_array) -> np.ndarray:
    """[P, N] float32: each neighbour's weight added to every item of the neighbour."""
    return (weights @ self.sessions).toarray().astype(np.float32)

  def _contains(self, session: np.ndarray, item: np.ndarray) -> np.ndarray:
    """[E] bool: whether training session `session[e]` (recency order) holds `item[e]`."""
    key = session * self.n_items + item
    return sparse_rows.lookup(self._session_keys, self.sessions.data, key) > 0


class SKNN(_SessionNeighbours):
  """SKNN: items scored by the summed similarity of the k nearest neighbour sessions holding them.

  session-rec's `ContextKNN`: the prefix is the set of its items, a candidate's similarity is
  `cosine = |prefix & session| / sqrt(|prefix| |session|)` (the textbook cosine of the binary
  vectors that Ludewig & Jannach describe; session-rec's own `cosine` divides by sqrt(|prefix|) and
  multiplies by sqrt(|session|), an operator-precedence slip) or `jaccard`; the k most similar
  candidates are the neighbours, and an item's score is the sum of the similarities of the
  neighbours that hold it (prefix items included, as session-rec does). session-rec's defaults:
  sample_size=1000, sampling='recent'; k=100 as its docstring and Ludewig & Jannach 2018 use.
  session-rec's final division by the maximum score is omitted (the order is the same).
  """

  def __init__(self, k: int = 100, sample_size: int = 1000, similarity: str = 'cosine'):
    super().__init__(k, sample_size)
    require(similarity in SIMILARITIES, 'similarity', similarity, f'one of {SIMILARITIES}')
    self.similarity = similarity

  def score(self, prefixes: Prefixes) -> np.ndarray:
    candidates = self._candidates(prefixes.item_matrix())  # [P, S] shared distinct items
    rows = sparse_rows.entry_rows(candidates)
    overlap = candidates.data
    prefix_size = np.bincount(prefixes.distinct.rows, minlength=prefixes.size)[rows]
    session_size = self.session_sizes[candidates.indices]
    if self.similarity == 'cosine':
      similarity = overlap / np.sqrt(prefix_size * session_size)
    else:
      similarity = overlap / (prefix_size + session_size - overlap)
    return self._item_scores(self._neighbours(candidates, similarity))


class VSKNN(_SessionNeighbours):
  """V-SKNN: SKNN with recency-weighted prefix items and neighbours (session-rec `VMContextKNN`).

  Each distinct prefix item gets the weight `position_weight(weighting, i, L)` of its last click
  (position i of L); a candidate's similarity is the summed weight of the prefix items it holds
  divided by the number of distinct prefix items. The k most similar candidates are the
  neighbours; a neighbour adds `similarity * step_weight(weighting_score, s)` to each of its items,
  s being how many clicks from the end (1 = the last click) the most recent prefix item it holds
  lies; with `idf_weighting` w > 0 an item's score is further multiplied by 1 + w * idf(item),
  idf = log(training sessions / the item's training events). session-rec's defaults: k=100 (its
  docstring), sample_size=1000, sampling='recent', weighting='div', weighting_score='div',
  idf_weighting off, prefix items scored too (`remind=True`). Ludewig & Jannach 2018 describe a
  linear decay of the prefix weights (`weighting='linear'`).
  """

  def __init__(
    self,
    k: int = 100,
    sample_size: int = 1000,
    weighting: str = 'div',
    weighting_score: str = 'div',
    idf_weighting: float = 0.0,
  ):
    super().__init__(k, sample_size)
    require(weighting in WEIGHTINGS, 'weighting', weighting, f'one of {WEIGHTINGS}')
    require(
      weighting_score in WEIGHTINGS, 'weighting_score', weighting_score, f'one of {WEIGHTINGS}'
    )
    require(float(idf_weighting) >= 0, 'idf_weighting', idf_weighting, 'a non-negative number')
    self.weighting = weighting
    self.weighting_score = weighting_score
    self.idf_weighting = float(idf_weighting)

  def fit(self, train: Events, n_items: int) -> None:
    super().fit(train, n_items)
    supp = np.bincount(train.item, minlength=n_items)  # [N]
    n_sessions = max(train.num_sessions, 1)
    self.idf = np.log(n_sessions / np.maximum(supp, 1)) * (supp > 0)  # [N]

  def score(self, prefixes: Prefixes) -> np.ndarray:
    d = prefixes.distinct
    weight = position_weight(self.weighting, d.last_position, prefixes.lengths[d.rows])
    candidates = self._candidates(prefixes.item_matrix())  # [P, S]
    weighted = sp.csr_array(prefixes.item_matrix(weight) @ self.item_sessions)
    weighted.sum_duplicates()  # may lack candidates whose shared items all weigh 0
    rows = sparse_rows.entry_rows(candidates)
    query = rows * weighted.shape[1] + candidates.indices
    shared_weight = sparse_rows.lookup(sparse_rows.flat_keys(weighted), weighted.data, query)
    n_distinct = np.bincount(d.rows, minlength=prefixes.size)  # [P]
    similarity = shared_weight / n_distinct[rows]
    neighbours = self._neighbours(candidates, similarity)
    steps = self._steps(prefixes, neighbours)
    neighbours.data = neighbours.data * step_weight(self.weighting_score, steps)
    scores = self._item_scores(neighbours)
    if self.idf_weighting > 0:
      scores *= (1.0 + self.idf_weighting * self.idf).astype(np.float32)
    return scores

  def _steps(self, prefixes: Prefixes, neighbours: sp.csr_array) -> np.ndarray:
    """[nnz] clicks from the end (1 = last) of the most recent prefix item each neighbour holds."""
    d = prefixes.distinct
    newest_first = np.lexsort((-d.last_position, d.rows))
    items, positions = d.items[newest_first], d.last_position[newest_first]
    n_distinct = np.bincount(d.rows, minlength=prefixes.size)
    first = np.concatenate([[0], np.cumsum(n_distinct)[:-1]])  # [P]
    rows = sparse_rows.entry_rows(neighbours)
    latest = np.zeros(len(rows), np.int64)
    todo = np.arange(len(rows))
    rank = 0
    while todo.size:  # the j-th most recent prefix item, for neighbours not yet matched
      row = rows[todo]
      if np.any(rank >= n_distinct[row]):
        raise AssertionError('a neighbour shares no item with its prefix')
      at = first[row] + rank
      hit = self._contains(neighbours.indices[todo], items[at])
      latest[todo[hit]] = positions[at[hit]]
      todo = todo[~hit]
      rank += 1
    return prefixes.lengths[rows] + 1 - latest
