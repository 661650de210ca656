"""Prefix evaluation: every non-first test event is ranked given its session's earlier events."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from seqrec import evaluation, reporting
from seqrec.baselines.protocol import Baseline, Prefixes
from seqrec.data import Events


def prediction_targets(events: Events) -> tuple[np.ndarray, np.ndarray]:
  """The predictions of a test table: the same targets as GRU4Rec's session-parallel evaluator.

  Returns:
    `(target, start)`: [P] int64 row of every event after its session's first, and [P] the first
    row of its session (the prefix is `events.item[start:target]`).
  """
  offsets = events.session_offsets()
  start = np.repeat(offsets[:-1], np.diff(offsets))  # [E]
  target = np.arange(events.num_events)
  keep = target != start
  return target[keep], start[keep]


def prefix_batch(
  items: np.ndarray, target: np.ndarray, start: np.ndarray, n_items: int
) -> Prefixes:
  """The prefixes `items[start[p]:target[p]]` of a slice of predictions, back to back."""
  lengths = target - start  # [P]
  offsets = np.concatenate([[0], np.cumsum(lengths)])  # [P + 1]
  gather = np.repeat(start - offsets[:-1], lengths) + np.arange(offsets[-1])  # [T]
  return Prefixes(items[gather], offsets, n_items)


def evaluate(baseline: Baseline, events: Events, n_items: int, **options) -> dict[str, float]:
  """Full-catalogue next-item metrics of a fitted baseline: `rank_events` without the ranks."""
  return rank_events(baseline, events, n_items, **options)[0]


def rank_events(
  baseline: Baseline,
  events: Events,
  n_items: int,
  *,
  batch_size: int = 1024,
  cutoffs: tuple[int, ...] = (20,),
  mode: str = 'conservative',
  desc: str = 'evaluate',
) -> tuple[dict[str, float], np.ndarray]:
  """Full-catalogue next-item metrics of a fitted baseline on `events`, and every target's rank.

  Predictions are scored `batch_size` at a time as a [P, N] matrix and ranked with
  `evaluation.ranks_from_scores` (rank = items scoring above the target plus ties by `mode`).

  Args:
    baseline: a fitted `Baseline`.
    events: the test `Events` (dense item ids, sorted by session and time).
    n_items: the catalogue size N.
    batch_size: predictions scored at once (memory: batch_size x N scores).
    cutoffs: the K of Recall@K / MRR@K / NDCG@K.
    mode: tie handling, one of `evaluation.MODES`.
    desc: label of the progress line.

  Returns:
    `(metrics, ranks)`: `{'recall@K': .., 'mrr@K': .., 'ndcg@K': .., 'count': n_predictions}`,
    and [E] the rank of each event of `events` as a target (NaN for a session's first event), as
    `seqrec.evaluation.rank_sessions` gives them for GRU4Rec.
  """
  cutoffs = evaluation.check_cutoffs(cutoffs)
  event_ranks = np.full(events.num_events, np.nan, np.float32)
  items = np.asarray(events.item, np.int32)
  target, start = prediction_targets(events)
  sums = evaluation.zero_sums(cutoffs)
  n_batches = -(-len(target) // batch_size)
  bar = reporting.Progress(n_batches, desc)
  for b in range(n_batches):
    rows = slice(b * batch_size, (b + 1) * batch_size)
    scores = baseline.score(prefix_batch(items, target[rows], start[rows], n_items))  # [P, N]
    expected = (len(target[rows]), n_items)
    if scores.shape != expected:
      raise ValueError(f'{type(baseline).__name__}.score gave {scores.shape}, expected {expected}')
    ranks = evaluation.ranks_from_scores(
      jnp.asarray(scores), jnp.asarray(items[target[rows]]), mode
    )
    batch_sums = evaluation.metric_sums(ranks, jnp.ones(ranks.shape, bool), cutoffs)
    sums = jax.tree.map(jnp.add, sums, batch_sums)
    event_ranks[target[rows]] = np.asarray(ranks)
    if bar.due():
      bar.update(b + 1, int(sums['count']))
  bar.close()
  return evaluation.finalize(sums), event_ranks
