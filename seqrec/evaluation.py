"""Full-catalogue evaluation: ranks by counting (chunked, no sort), metrics, session driver."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqrec.data.session_parallel import build_schedule

MODES = ('conservative', 'optimistic', 'median')


def _check_mode(mode: str) -> None:
  if mode not in MODES:
    raise ValueError(f'Unknown tie mode {mode!r}; valid modes: {", ".join(MODES)}.')


def check_cutoffs(cutoffs) -> tuple[int, ...]:
  """The K of the metrics as a tuple of ints.

  Raises:
    ValueError: on an empty list or a K below 1 (which would report a recall@0 of 0).
  """
  if not len(cutoffs) or any(int(k) < 1 for k in cutoffs):
    raise ValueError(f'cutoffs must be positive integers, got {cutoffs!r}')
  return tuple(int(k) for k in cutoffs)


def nan_ranks_ahead(scores: jax.Array, target_score: jax.Array) -> jax.Array:
  """`scores > target_score` (broadcast), true as well where either side is NaN."""
  return (scores > target_score) | jnp.isnan(scores) | jnp.isnan(target_score)


def _count_vs_target(
  scores: jax.Array, target_score: jax.Array, col_valid: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
  """Counts, per row, the items scoring above and exactly equal to the target.

  Args:
    scores: [B, K] item scores.
    target_score: [B] the target's score, bit-identical to its entry in ``scores``.
    col_valid: [K] bool or None; columns that are False are not counted.

  Returns:
    ``(n_greater, n_equal)``, both [B] int32. ``n_equal`` includes the target itself
    when it is among the counted columns. A NaN score (a diverged model) ranks ahead of
    the target, and a NaN target ranks behind every item, so NaNs never pass for hits.
  """
  greater = nan_ranks_ahead(scores, target_score[:, None])  # [B, K]
  equal = scores == target_score[:, None]  # [B, K]
  if col_valid is not None:
    greater = greater & col_valid[None, :]
    equal = equal & col_valid[None, :]
  return jnp.sum(greater, axis=1, dtype=jnp.int32), jnp.sum(equal, axis=1, dtype=jnp.int32)


def ranks_from_counts(n_greater: jax.Array, n_equal: jax.Array, mode: str) -> jax.Array:
  """Turns counts that include the target among the equals into [B] float32 ranks.

  ``conservative`` is the official GRU4Rec ``(scores >= target).sum()``: every tied
  item is ranked ahead of the target. ``optimistic`` ranks the target ahead of all
  ties, and ``median`` takes the middle of the tied block.
  """
  _check_mode(mode)
  n_greater = n_greater.astype(jnp.float32)
  n_equal = n_equal.astype(jnp.float32)
  if mode == 'conservative':
    return n_greater + n_equal
  if mode == 'optimistic':
    return 1.0 + n_greater
  return 1.0 + n_greater + 0.5 * (n_equal - 1.0)


@functools.partial(jax.jit, static_argnames=('mode',))
def ranks_from_scores(
  scores: jax.Array, targets: jax.Array, mode: str = 'conservative'
) -> jax.Array:
  """Ranks of the targets when the full score matrix is already at hand.

  Args:
    scores: [B, N] scores of every item for each query.
    targets: [B] int, the target item of each row, in [0, N).
    mode: tie handling, one of ``MODES``.

  Returns:
    [B] float32 ranks (1 is best).

  Raises:
    ValueError: on an unknown ``mode``.
  """
  _check_mode(mode)
  target_score = jnp.take_along_axis(scores, targets[:, None], axis=1)[:, 0]  # [B]
  n_greater, n_equal = _count_vs_target(scores, target_score)
  return ranks_from_counts(n_greater, n_equal, mode)


@functools.partial(jax.jit, static_argnames=('mode', 'chunk_size', 'precision'))
def target_ranks(
  query: jax.Array,
  item_emb: jax.Array,
  item_bias: jax.Array | None,
  targets: jax.Array,
  mode: str = 'conservative',
  chunk_size: int = 16384,
  precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
) -> jax.Array:
  """Ranks of the targets among all items, scored ``query @ item_emb.T + item_bias``.

  A catalogue of at most ``chunk_size`` items is scored with one product. A larger
  one is visited in ``ceil(N / chunk)`` chunks of ``chunk = min(chunk_size,
  N)`` items, so only [B, chunk] scores ever exist. The last chunk is shifted back
  to end at item N - 1 (no padded items are made) and the items it shares with the
  previous chunk are not counted again.

  Ties are only meaningful if the target's score is bit-identical to the score it
  is compared with, so it is never recomputed separately: the loop runs over the
  chunks twice with ONE body (one matrix product instruction): the first sweep
  picks each row's target score out of the chunk that holds it, the second counts
  the items above and equal to it.

  Args:
    query: [B, D] query vectors (e.g. the final hidden states).
    item_emb: [N, D] output item embeddings.
    item_bias: [N] output item biases, or None.
    targets: [B] int, the target item of each row, in [0, N). Padding rows may hold
      any index in range; mask them out later in ``metric_sums``.
    mode: tie handling, one of ``MODES``.
    chunk_size: number of items scored at a time (static).
    precision: matmul precision; HIGHEST keeps full float32 on accelerators that
      would otherwise use reduced-precision (e.g. TF32) products, like the official
      PyTorch evaluation.

  Returns:
    [B] float32 ranks (1 is best).

  Raises:
    ValueError: on an unknown ``mode`` or a non-positive ``chunk_size``.
  """
  _check_mode(mode)
  if chunk_size < 1:
    raise ValueError(f'chunk_size must be positive, got {chunk_size}.')
  n_items = item_emb.shape[0]
  n_rows = query.shape[0]
  chunk = min(chunk_size, n_items)
  n_chunks = math.ceil(n_items / chunk)
  targets = targets.astype(jnp.int32)
  target_chunk = targets // chunk  # [B]

  def chunk_scores(c):
    start = jnp.minimum(c * chunk, n_items - chunk)
    emb = jax.lax.dynamic_slice_in_dim(item_emb, start, chunk, axis=0)  # [K, D]
    scores = jnp.dot(
      query, emb.T, precision=precision, preferred_element_type=jnp.float32
    )  # [B, K]
    if item_bias is not None:
      bias = jax.lax.dynamic_slice_in_dim(item_bias, start, chunk, axis=0)  # [K]
      scores = scores + bias.astype(jnp.float32)[None, :]
    return start, scores

  def pick_target(c, start, scores, carry):
    target_score, n_greater, n_equal = carry
    local = jnp.clip(targets - start, 0, chunk - 1)  # [B]
    picked = jnp.take_along_axis(scores, local[:, None], axis=1)[:, 0]  # [B]
    target_score = jnp.where(target_chunk == c, picked, target_score)
    return target_score, n_greater, n_equal

  def count_items(c, start, scores, carry):
    target_score, n_greater, n_equal = carry
    # Items before c * chunk were counted with an earlier chunk.
    fresh = start + jnp.arange(chunk) >= c * chunk  # [K]
    greater, equal = _count_vs_target(scores, target_score, fresh)
    return target_score, n_greater + greater, n_equal + equal

  def body(step, carry):
    c = step % n_chunks
    # The barrier keeps XLA from sinking the product into both branches of the cond,
    # which would make two matrix products whose roundings could differ.
    start, scores = jax.lax.optimization_barrier(chunk_scores(c))
    return jax.lax.cond(step < n_chunks, pick_target, count_items, c, start, scores, carry)

  if n_chunks == 1:  # the whole catalogue at once: one product, target picked from it
    _, scores = chunk_scores(0)
    target_score = jnp.take_along_axis(scores, targets[:, None], axis=1)[:, 0]  # [B]
    n_greater, n_equal = _count_vs_target(scores, target_score)
    return ranks_from_counts(n_greater, n_equal, mode)

  init = (
    jnp.zeros((n_rows,), jnp.float32),
    jnp.zeros((n_rows,), jnp.int32),
    jnp.zeros((n_rows,), jnp.int32),
  )
  _, n_greater, n_equal = jax.lax.fori_loop(0, 2 * n_chunks, body, init)
  return ranks_from_counts(n_greater, n_equal, mode)


def metric_sums(
  ranks: jax.Array, valid: jax.Array, cutoffs: tuple[int, ...] = (20,)
) -> dict[str, jax.Array]:
  """Per-batch sums of the ranking metrics, to be accumulated and then ``finalize``d.

  For each cutoff K: ``recall@K`` counts rank <= K, ``mrr@K`` sums (rank <= K) / rank
  and ``ndcg@K`` sums (rank <= K) / log2(rank + 1); ``count`` is the number of valid
  rows. Counts are int32 (exact over any realistic test set), the others float32.
  Jittable with ``cutoffs`` static.

  Args:
    ranks: [B] ranks (1 is best), e.g. from ``target_ranks``.
    valid: [B] bool, False for padding rows.
    cutoffs: the K values (a tuple, so it can be static under ``jax.jit``).

  Returns:
    Dict with keys ``recall@K``, ``mrr@K``, ``ndcg@K`` for each K, and ``count``;
    every value a scalar jnp array.
  """
  valid = valid.astype(bool)
  ranks = ranks.astype(jnp.float32)
  sums = {}
  for k in cutoffs:
    hit = valid & (ranks <= k)  # [B]
    safe_ranks = jnp.where(hit, ranks, 1.0)  # [B]
    sums[f'recall@{k}'] = jnp.sum(hit, dtype=jnp.int32)
    sums[f'mrr@{k}'] = jnp.sum(jnp.where(hit, 1.0 / safe_ranks, 0.0))
    sums[f'ndcg@{k}'] = jnp.sum(jnp.where(hit, 1.0 / jnp.log2(safe_ranks + 1.0), 0.0))
  sums['count'] = jnp.sum(valid, dtype=jnp.int32)
  return sums


def zero_sums(cutoffs: tuple[int, ...] = (20,)) -> dict[str, jax.Array]:
  """Zero accumulators with the structure and dtypes of ``metric_sums``'s output."""
  shapes = jax.eval_shape(
    functools.partial(metric_sums, cutoffs=cutoffs),
    jax.ShapeDtypeStruct((1,), jnp.float32),
    jax.ShapeDtypeStruct((1,), jnp.bool_),
  )
  return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def finalize(sums: dict[str, jax.Array]) -> dict[str, float]:
  """Divides accumulated sums by their count.

  Args:
    sums: output of ``metric_sums``, possibly summed over batches.

  Returns:
    Python floats: every metric averaged over the valid rows (NaN if there were
    none), and ``count`` itself.
  """
  count = float(sums['count'])
  out = {}
  for name, value in sums.items():
    if name == 'count':
      continue
    out[name] = float(value) / count if count > 0 else float('nan')
  out['count'] = count
  return out


# --- Session-parallel evaluation driver ---


@functools.lru_cache(maxsize=32)
def _session_eval_chunk(graphdef, cutoffs: tuple[int, ...], mode: str, item_chunk: int, steps: int):
  """Jitted evaluation of `steps` session-parallel steps for one model structure."""

  def one_step(carry, batch):
    state, hidden, sums = carry
    model = nnx.merge(graphdef, state)
    hidden = tuple(jnp.where(batch['reset'][:, None], 0.0, h) for h in hidden)
    out, hidden = model.encode(batch['inputs'], hidden)  # [B, D]
    ranks = target_ranks(
      out,
      model.item_out[...],
      model.item_bias[...],
      batch['targets'],
      mode=mode,
      chunk_size=item_chunk,
    )
    step_sums = metric_sums(ranks, batch['valid'], cutoffs)
    sums = jax.tree.map(jnp.add, sums, step_sums)
    return (state, hidden, sums), jnp.where(batch['valid'], ranks, jnp.nan)

  def run(state, hidden, sums, arrays, start):
    window = {k: jax.lax.dynamic_slice_in_dim(v, start, steps) for k, v in arrays.items()}
    (_, hidden, sums), ranks = jax.lax.scan(one_step, (state, hidden, sums), window)
    return hidden, sums, ranks  # ranks [steps, B]

  return jax.jit(run)


def evaluate_sessions(model, events, **options) -> dict[str, float]:
  """Next-item metrics of a recurrent session model: `rank_sessions` without the ranks."""
  return rank_sessions(model, events, keep_ranks=False, **options)[0]


def rank_sessions(
  model,
  events,
  *,
  batch_size: int = 512,
  cutoffs: tuple[int, ...] = (20,),
  mode: str = 'conservative',
  item_chunk: int = 16384,
  steps_per_call: int = 64,
  keep_ranks: bool = True,
) -> tuple[dict[str, float], np.ndarray | None]:
  """Next-item evaluation of a recurrent session model, as the official GRU4Rec evaluates.

  Test sessions are walked session-parallel, the hidden state zeroed at each session start; every
  event after a session's first is a prediction, ranked against the whole catalogue. Slots take
  the sessions longest first (the official code walks them in session-id order): each session
  is scored on its own, so the order and the batch size change only speed, never a rank (the
  metric means are float32 sums per batch and can differ in the seventh decimal),
  and longest-first leaves the fewest idle slots in the last steps.

  Args:
    model: a model with `init_hidden`, `encode`, `item_out` and `item_bias` (e.g. GRU4Rec).
    events: the test `Events` (dense item ids, sorted by session and time).
    batch_size: parallel sessions per step.
    cutoffs: the K of Recall@K / MRR@K / NDCG@K.
    mode: tie handling, 'conservative' | 'optimistic' | 'median'.
    item_chunk: catalogue items scored at once (bounds memory for large catalogues).
    steps_per_call: at most this many steps per compiled call.
    keep_ranks: False skips fetching the ranks and laying them out by event (None is returned).

  Returns:
    `(metrics, ranks)`: `{'recall@K': .., 'mrr@K': .., 'ndcg@K': .., 'count': n_predictions}`,
    and [E] the rank of each event of `events` as a target (NaN for a session's first event).
  """
  cutoffs = check_cutoffs(cutoffs)
  _check_mode(mode)
  offsets = events.session_offsets()
  longest_first = np.argsort(offsets[:-1] - offsets[1:], kind='stable')  # [S]
  schedule = build_schedule(np.asarray(events.item), offsets, batch_size, longest_first)
  # The steps are split evenly over the fewest calls of at most `steps_per_call` steps, so the
  # padding is less than one step per call.
  n_calls = -(-schedule.inputs.shape[0] // steps_per_call)
  steps = -(-schedule.inputs.shape[0] // n_calls)
  pad = n_calls * steps - schedule.inputs.shape[0]
  arrays = {k: jnp.asarray(np.pad(v, ((0, pad), (0, 0)))) for k, v in schedule.arrays().items()}
  graphdef, state = nnx.split(model)
  run = _session_eval_chunk(graphdef, tuple(int(k) for k in cutoffs), mode, int(item_chunk), steps)
  hidden = model.init_hidden(batch_size)
  sums = zero_sums(tuple(int(k) for k in cutoffs))
  cell_ranks = []
  for c in range(n_calls):
    hidden, sums, chunk_ranks = run(state, hidden, sums, arrays, jnp.int32(c * steps))
    if keep_ranks:
      cell_ranks.append(chunk_ranks)
  if not keep_ranks:
    return finalize(sums), None
  cell_ranks = np.concatenate(jax.device_get(cell_ranks))[: schedule.inputs.shape[0]]  # [T, B]
  return finalize(sums), _ranks_by_event(schedule, offsets, cell_ranks, events.num_events)


def _ranks_by_event(schedule, offsets: np.ndarray, cell_ranks: np.ndarray, n_events: int):
  """[E] the rank of each target event, from the `[T, B]` ranks of the schedule's cells."""
  steps, slots = np.nonzero(schedule.valid)  # step-major: a session's pairs in order
  session = schedule.session[steps, slots]  # [P]
  first_step = np.full(len(offsets) - 1, np.iinfo(np.int64).max)
  np.minimum.at(first_step, session, steps)
  target = offsets[session] + (steps - first_step[session]) + 1  # [P] row of the target event
  ranks = np.full(n_events, np.nan, np.float32)
  ranks[target] = cell_ranks[steps, slots]
  return ranks
