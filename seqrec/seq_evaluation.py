"""Next-item evaluation of user-sequence models: full-catalogue ranks, optional sampled metrics."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqrec.evaluation import (
  MODES,
  check_cutoffs,
  finalize,
  metric_sums,
  nan_ranks_ahead,
  ranks_from_counts,
  ranks_from_scores,
)

SAMPLED_KINDS = ('uniform', 'popularity')
DEFAULT_CUTOFFS = (1, 5, 10, 20)


def sampled_prefix(n: int, kind: str) -> str:
  """The key prefix of sampled metrics, e.g. `sampled100_uniform` (`.../ndcg@10`)."""
  return f'sampled{int(n)}_{kind}'


class PopularityModel(nnx.Module):
  """POP as a sequence model: every user's scores are the items' training counts.

  It runs through the same evaluator as the trained models, so the baseline sees the same
  targets, tie handling, seen-item exclusion and sampled negatives.

  Args:
    item_counts: [N+1] training count of each item id (entry 0, padding, is never ranked).
  """

  def __init__(self, item_counts: np.ndarray):
    self.counts = nnx.Variable(jnp.asarray(item_counts, jnp.float32))  # [N+1]

  def encode_last(self, history: jax.Array, users: jax.Array) -> jax.Array:
    return jnp.zeros((history.shape[0], 1), jnp.float32)  # [B, 1]

  def score_catalog(self, h: jax.Array) -> jax.Array:
    counts = self.counts[...]
    return jnp.broadcast_to(counts, h.shape[:-1] + counts.shape)  # [..., N+1]


def _seen_layout(offsets: np.ndarray, values: np.ndarray, n_blocks: int, block: int):
  """Lays a ragged per-user item list out so each block of users reads one fixed-size window.

  Returns:
    (values [E + W] int32 padded with zeros, starts [n_blocks] int32 first entry of each block,
    block_offsets [n_blocks, block + 1] int32 entry offsets of the block's rows, window W).
  """
  offsets = np.asarray(offsets, np.int64)
  n_rows = len(offsets) - 1
  padded = np.concatenate([offsets, np.full(n_blocks * block - n_rows, offsets[-1], np.int64)])
  rows = np.arange(n_blocks)[:, None] * block + np.arange(block + 1)[None, :]  # [n_blocks, B+1]
  block_offsets = padded[np.minimum(rows, len(padded) - 1)]  # [n_blocks, B+1]
  starts = block_offsets[:, 0]
  window = max(int(np.max(block_offsets[:, -1] - starts)), 1)
  if int(padded[-1]) + window >= 2**31:
    raise ValueError('evaluate_sequences: more than 2**31 seen entries; split the users.')
  values = np.concatenate([np.asarray(values, np.int32), np.zeros(window, np.int32)])
  return values, starts.astype(np.int32), block_offsets.astype(np.int32), window


def _seen_mask_from_window(values, start, block_offsets, window: int, n_cols: int) -> jax.Array:
  """[B, n_cols] bool: the items each row of the block has seen (from its ragged window)."""
  block = block_offsets.shape[0] - 1
  idx = start + jnp.arange(window, dtype=jnp.int32)  # [W] global entry index
  items = jax.lax.dynamic_slice_in_dim(values, start, window)  # [W]
  rows = jnp.searchsorted(block_offsets, idx, side='right') - 1  # [W] row within the block
  rows = jnp.where((idx < block_offsets[-1]) & (rows >= 0), rows, block)  # out of range: dropped
  mask = jnp.zeros((block, n_cols), bool)
  return mask.at[rows, items].set(True, mode='drop')


def _seen_mask_from_history(history: jax.Array, n_cols: int) -> jax.Array:
  """[B, n_cols] bool: the (non-padding) items of each row's history matrix."""
  rows = jnp.broadcast_to(jnp.arange(history.shape[0])[:, None], history.shape)  # [B, L]
  mask = jnp.zeros((history.shape[0], n_cols), bool)
  return mask.at[rows, history].set(True, mode='drop')


def draw_negatives(
  key: jax.Array,
  rows: jax.Array,
  allowed: jax.Array,
  weights: jax.Array | None,
  n: int,
) -> jax.Array:
  """Draws, per row and with replacement, `n` item ids from that row's allowed items.

  A row's draws depend only on `(key, rows[i])` and its allowed set, never on how rows are
  blocked, so the negatives are the same whatever the evaluation block size.

  Args:
    key: the base key of the evaluation.
    rows: [B] int32 global row index (user) of each row, folded into the key.
    allowed: [B, C] bool, the items each row may draw.
    weights: [C] int32 non-negative weights (popularity counts) or None for uniform.
    n: draws per row (static).

  Returns:
    [B, n] int32 drawn column indices (0 for a row that has no allowed item).
  """
  w = allowed.astype(jnp.int32)
  if weights is not None:
    w = w * weights[None, :].astype(jnp.int32)
  cdf = jnp.cumsum(w, axis=1)  # [B, C], exact in int32
  total = cdf[:, -1]  # [B]

  def one_row(row, cdf_row, total_row):
    r = jax.random.randint(
      jax.random.fold_in(key, row), (n,), 0, jnp.maximum(total_row, 1), dtype=jnp.int32
    )  # [n]
    return jnp.searchsorted(cdf_row, r, side='right').astype(jnp.int32)  # [n]

  drawn = jax.vmap(one_row)(rows, cdf, total)  # [B, n]
  return jnp.where(total[:, None] > 0, drawn, 0)


def sampled_negatives(
  allowed: np.ndarray,
  n: int,
  kind: str = 'uniform',
  seed: int = 0,
  item_counts: np.ndarray | None = None,
) -> np.ndarray:
  """The negatives `evaluate_sequences(..., sampled=dict(n, kind, seed))` ranks each target among.

  Args:
    allowed: [U, N+1] bool, the items each user may draw (not seen, not the target, not 0).
    n: negatives per user.
    kind: 'uniform' or 'popularity' (in proportion to `item_counts`).
    seed: the evaluation seed.
    item_counts: [N+1] training counts, for 'popularity'.

  Returns:
    [U, n] int32 item ids.
  """
  weights = jnp.asarray(item_counts, jnp.int32) if kind == 'popularity' else None
  rows = jnp.arange(allowed.shape[0], dtype=jnp.int32)
  return np.asarray(
    draw_negatives(jax.random.PRNGKey(seed), rows, jnp.asarray(allowed), weights, int(n))
  )


@functools.lru_cache(maxsize=32)
def _ranking_fn(
  graphdef,
  *,
  mode: str,
  exclude_seen: bool,
  n_sampled: int,
  kind: str,
  use_seen_lists: bool,
  window: int,
):
  """One jitted pass over all user blocks: [U_padded] full and sampled ranks."""

  def one_block(state, block_inputs, shared):
    model = nnx.merge(graphdef, state)
    history, users, targets, rows, start, block_offsets = block_inputs
    h = model.encode_last(history, users)  # [B, D]
    scores = model.score_catalog(h).astype(jnp.float32)  # [B, C]
    n_cols = scores.shape[-1]
    cols = jnp.arange(n_cols, dtype=jnp.int32)  # [C]
    need_seen = exclude_seen or n_sampled > 0
    if need_seen and use_seen_lists:
      seen = _seen_mask_from_window(shared['values'], start, block_offsets, window, n_cols)
    elif need_seen:
      seen = _seen_mask_from_history(history, n_cols)
    is_target = cols[None, :] == targets[:, None]  # [B, C]
    blocked = jnp.broadcast_to(cols[None, :] == 0, scores.shape)  # padding is never ranked
    if exclude_seen:
      blocked = blocked | (seen & ~is_target)  # the target itself always stays rankable
    scores = jnp.where(blocked, -jnp.inf, scores)  # [B, C]
    full = ranks_from_scores(scores, targets, mode)  # [B]
    if n_sampled == 0:
      return full, jnp.zeros_like(full)
    allowed = ~seen & ~is_target & (cols[None, :] > 0)  # [B, C]
    weights = shared['counts'] if kind == 'popularity' else None
    negatives = draw_negatives(shared['key'], rows, allowed, weights, n_sampled)  # [B, n]
    target_score = jnp.take_along_axis(scores, targets[:, None], axis=1)  # [B, 1]
    neg_scores = jnp.take_along_axis(scores, negatives, axis=1)  # [B, n]
    n_greater = jnp.sum(nan_ranks_ahead(neg_scores, target_score), axis=1, dtype=jnp.int32)
    n_equal = jnp.sum(neg_scores == target_score, axis=1, dtype=jnp.int32) + 1  # + the target
    return full, ranks_from_counts(n_greater, n_equal, mode)

  def run(state, blocks, shared):
    full, sampled = jax.lax.map(lambda b: one_block(state, b, shared), blocks)  # [nb, B] each
    return full.reshape(-1), sampled.reshape(-1)

  return jax.jit(run)


@functools.partial(jax.jit, static_argnames=('cutoffs',))
def _sums(ranks: jax.Array, targets: jax.Array, cutoffs: tuple[int, ...]) -> dict:
  # Over exactly the U users (not the padded blocks), so the sums do not depend on the block size.
  return metric_sums(ranks, targets > 0, cutoffs)


def _check(cutoffs, mode, sampled) -> tuple[int, str, int]:
  if mode not in MODES:
    raise ValueError(f'Unknown tie mode {mode!r}; valid modes: {", ".join(MODES)}.')
  check_cutoffs(cutoffs)
  if not sampled:
    return 0, 'uniform', 0
  n, kind, seed = int(sampled.get('n', 100)), sampled.get('kind', 'uniform'), sampled.get('seed', 0)
  if n < 1:
    raise ValueError(f'sampled n must be positive, got {n}')
  if kind not in SAMPLED_KINDS:
    raise ValueError(f'sampled kind must be one of {SAMPLED_KINDS}, got {kind!r}')
  return n, kind, int(seed)


def rank_targets(
  model,
  history: np.ndarray,
  users: np.ndarray,
  targets: np.ndarray,
  *,
  mode: str = 'conservative',
  exclude_seen: bool = False,
  seen: tuple[np.ndarray, np.ndarray] | None = None,
  sampled: dict | None = None,
  item_counts: np.ndarray | None = None,
  user_block: int = 256,
  cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
  """Per-user ranks of the targets, computed in one compiled call; see `evaluate_sequences`.

  Returns:
    `(full [U] float32, sampled [U] float32 or None, sums)`: ranks (1 is best; rows whose target
    is 0 hold meaningless values) and the metric sums `{'full': ..., 'sampled': ...}`.
  """
  cutoffs = tuple(int(k) for k in cutoffs)
  n_sampled, kind, seed = _check(cutoffs, mode, sampled)
  history = np.asarray(history, np.int32)
  n_rows = history.shape[0]
  if n_rows == 0:
    raise ValueError('evaluate_sequences: no users to evaluate')
  block = max(1, min(int(user_block), n_rows))
  n_blocks = math.ceil(n_rows / block)
  pad = n_blocks * block - n_rows

  def blocked(a, dtype):
    a = np.asarray(a, dtype)
    a = np.concatenate([a, np.zeros((pad,) + a.shape[1:], dtype)])
    return jnp.asarray(a.reshape((n_blocks, block) + a.shape[1:]))

  shared = {}
  use_seen_lists = seen is not None and (exclude_seen or n_sampled > 0)
  window = 0
  if use_seen_lists:
    offsets, values = seen
    if len(offsets) != n_rows + 1:
      raise ValueError(f'seen offsets have {len(offsets)} entries for {n_rows} users (want U+1)')
    values, starts, block_offsets, window = _seen_layout(offsets, values, n_blocks, block)
    shared['values'] = jnp.asarray(values)
    starts, block_offsets = jnp.asarray(starts), jnp.asarray(block_offsets)
  else:
    starts = jnp.zeros((n_blocks,), jnp.int32)
    block_offsets = jnp.zeros((n_blocks, block + 1), jnp.int32)
  if n_sampled > 0:
    shared['key'] = jax.random.PRNGKey(seed)
    if kind == 'popularity':
      if item_counts is None:
        raise ValueError("sampled kind 'popularity' needs item_counts")
      shared['counts'] = jnp.asarray(np.asarray(item_counts), jnp.int32)
  blocks = (
    blocked(history, np.int32),
    blocked(users, np.int32),
    blocked(targets, np.int32),
    blocked(np.arange(n_rows), np.int32),
    starts,
    block_offsets,
  )
  graphdef, state = nnx.split(model)
  run = _ranking_fn(
    graphdef,
    mode=mode,
    exclude_seen=bool(exclude_seen),
    n_sampled=n_sampled,
    kind=kind,
    use_seen_lists=use_seen_lists,
    window=window,
  )
  full, sampled_ranks = run(state, blocks, shared)
  full, sampled_ranks = full[:n_rows], sampled_ranks[:n_rows]
  targets = jnp.asarray(np.asarray(targets, np.int32))
  sums = {'full': _sums(full, targets, cutoffs)}
  if n_sampled:
    sums['sampled'] = _sums(sampled_ranks, targets, cutoffs)
  return np.asarray(full), np.asarray(sampled_ranks) if n_sampled else None, sums


def evaluate_sequences(
  model,
  history: np.ndarray,
  users: np.ndarray,
  targets: np.ndarray,
  *,
  cutoffs: tuple[int, ...] = DEFAULT_CUTOFFS,
  mode: str = 'conservative',
  exclude_seen: bool = False,
  seen: tuple[np.ndarray, np.ndarray] | None = None,
  sampled: dict | None = None,
  item_counts: np.ndarray | None = None,
  user_block: int = 256,
) -> dict[str, float]:
  """Next-item metrics of a sequence model for every user, in one compiled pass.

  Users are visited in fixed-size blocks (`lax.map` inside one `jit`), so memory holds only
  [user_block, N+1] scores at a time. Per user: `model.encode_last(history, users)` ->
  `model.score_catalog` -> padding column 0 removed -> with `exclude_seen`, the user's seen
  items removed (the target never) -> rank of the target by counting the items above and tied
  with it (`mode`), no sort. Rows whose target is 0 are not evaluated.

  With `sampled=dict(n=100, kind='uniform', seed=0)` the target is also ranked among `n`
  negatives drawn with replacement, as SASRec's evaluation does, from the items the user has not
  seen (never the target, never padding): uniformly, or in proportion to `item_counts` for
  `kind='popularity'`. They are reported under `sampled{n}_{kind}/<metric>`; never read them as
  full-catalogue numbers.

  Args:
    model: an NNX module with `encode_last(history [B, L], users [B]) -> [B, D]` and
      `score_catalog([B, D]) -> [B, N+1]`.
    history: [U, L] int left-padded input items of each user (ids 1..N, 0 pad).
    users: [U] int user ids given to the model.
    targets: [U] int target item per user, 0 = not evaluated.
    cutoffs: the K of Recall@K, MRR@K and NDCG@K.
    mode: tie handling, one of `seqrec.evaluation.MODES`.
    exclude_seen: remove the user's seen items from the ranking (gSASRec's `filter_rated`).
    seen: `(offsets [U+1], values [E])` every item each user has seen (a `Ragged`'s arrays), for
      `exclude_seen` and the sampled negatives; None uses the items in `history`.
    sampled: None, or `dict(n=..., kind='uniform' | 'popularity', seed=...)`.
    item_counts: [N+1] training counts, needed for `kind='popularity'`.
    user_block: users scored at a time (bounds memory; the numbers do not depend on it).

  Returns:
    `{'recall@K', 'mrr@K', 'ndcg@K', 'count', [f'{prefix}/recall@K', ...]}` as Python floats.

  Raises:
    ValueError: on an unknown tie mode or sampled kind, bad cutoffs, or missing `item_counts`.
  """
  _, _, sums = rank_targets(
    model,
    history,
    users,
    targets,
    mode=mode,
    exclude_seen=exclude_seen,
    seen=seen,
    sampled=sampled,
    item_counts=item_counts,
    user_block=user_block,
    cutoffs=cutoffs,
  )
  return summarize(sums, sampled)


def summarize(sums: dict, sampled: dict | None = None) -> dict[str, float]:
  """The metrics of `rank_targets`' sums, sampled ones under `sampled{n}_{kind}/` keys."""
  metrics = finalize(sums['full'])
  if 'sampled' in sums:
    n, kind, _ = _check(DEFAULT_CUTOFFS, 'conservative', sampled)  # the defaults rank_targets used
    prefix = sampled_prefix(n, kind)
    metrics.update(
      {f'{prefix}/{k}': v for k, v in finalize(sums['sampled']).items() if k != 'count'}
    )
  return metrics
