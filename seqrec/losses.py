"""GRU4Rec's ranking losses as pure, jittable functions of a masked score matrix."""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp

# The official implementations add this to a probability before taking its log.
_LOG_EPS = 1e-24


class LossFn(Protocol):
  """The contract every loss in this module follows.

  A loss scores ``B`` query rows (the slots of a session-parallel batch) against
  ``C`` output columns and returns the loss SUMMED over the valid rows, as a float32
  scalar. The caller divides by the fixed batch size ``B`` (not by the number of
  valid rows), exactly as the official code divides by ``batch_size``.

  Column layouts:
    * Session-parallel (``positive_col=None``): ``C = B + S``; column ``j < B`` is
      slot ``j``'s target item and the last ``S`` columns are shared negative
      samples, so row ``i``'s positive is column ``i``. By default a padding slot's
      column is dropped as well: ``col_valid = concat(row_valid, ones(S))``.
    * Explicit positives (``positive_col`` given): e.g. ``C = N`` for a softmax over
      the whole catalogue; row ``i``'s positive is column ``positive_col[i]`` and by
      default every column is valid.

  Every column other than the row's positive is a negative for that row, unless it
  is masked out by ``col_valid``; masked columns get exactly zero weight. The
  positive always takes part in its own row. Invalid rows contribute exactly zero
  loss and zero gradient, whatever they hold (NaN included). Duplicate items (two
  slots with the same target, or a sample equal to a target) are NOT deduplicated,
  matching the official code.

  Loss-specific hyperparameters are extra keyword-only arguments with defaults, as
  Python numbers (static under ``jax.jit``); bind them with ``functools.partial``.
  """

  def __call__(
    self,
    scores: jax.Array,
    row_valid: jax.Array,
    col_valid: jax.Array | None = None,
    positive_col: jax.Array | None = None,
  ) -> jax.Array:
    """Returns the loss summed over valid rows; see the class docstring."""
    ...


def _layout(
  scores: jax.Array,
  row_valid: jax.Array,
  col_valid: jax.Array | None,
  positive_col: jax.Array | None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """Resolves the column layout and sanitises entries that must not matter.

  Args:
    scores: [B, C] raw scores.
    row_valid: [B] bool, True for slots that hold a real session.
    col_valid: [C] bool or None (layout default, see ``LossFn``).
    positive_col: [B] int or None (session-parallel diagonal).

  Returns:
    ``(scores, positive_col, is_pos, is_neg)``: scores with every entry outside a
    valid row's candidate set replaced by 0 (so that NaN/inf there cannot leak into
    values or gradients), the [B] positive column per row, and [B, C] bool masks of
    the positive and of the valid negatives of each row.
  """
  n_rows, n_cols = scores.shape
  if row_valid.shape != (n_rows,):
    raise ValueError(f'row_valid must have shape ({n_rows},), got {row_valid.shape}.')
  row_valid = row_valid.astype(bool)
  if positive_col is None:
    if n_cols < n_rows:
      raise ValueError(
        f'Session-parallel layout needs at least B={n_rows} columns, got {n_cols}; '
        'pass positive_col for other layouts.'
      )
    positive_col = jnp.arange(n_rows)
    if col_valid is None:
      col_valid = jnp.concatenate([row_valid, jnp.ones((n_cols - n_rows,), bool)])
  elif col_valid is None:
    col_valid = jnp.ones((n_cols,), bool)
  if col_valid.shape != (n_cols,):
    raise ValueError(f'col_valid must have shape ({n_cols},), got {col_valid.shape}.')
  col_valid = col_valid.astype(bool)

  is_pos = jnp.arange(n_cols)[None, :] == positive_col[:, None]  # [B, C]
  is_neg = col_valid[None, :] & ~is_pos & row_valid[:, None]  # [B, C]
  keep = (is_pos & row_valid[:, None]) | is_neg  # [B, C]
  scores = jnp.where(keep, scores, 0.0)
  return scores, positive_col, is_pos, is_neg


def _positive_scores(scores: jax.Array, positive_col: jax.Array) -> jax.Array:
  """Returns scores[i, positive_col[i]] as a [B, 1] column."""
  return jnp.take_along_axis(scores, positive_col[:, None], axis=1)  # [B, 1]


def _softmax_over(x: jax.Array, mask: jax.Array) -> jax.Array:
  """Row-wise softmax restricted to ``mask``; rows with an empty mask are all zero.

  The max is taken over the masked entries only (the official ``softmax_neg`` also
  lets the zeroed positive into the max); the two agree up to float rounding.
  """
  x = jnp.where(mask, x, -jnp.inf)
  x_max = jnp.max(x, axis=1, keepdims=True)  # [B, 1]
  x_max = jax.lax.stop_gradient(jnp.where(jnp.isfinite(x_max), x_max, 0.0))
  e = jnp.exp(x - x_max)  # [B, C]; exactly 0 outside the mask
  total = jnp.sum(e, axis=1, keepdims=True)  # [B, 1]
  return e / jnp.where(total > 0, total, 1.0)


def _sum_rows(per_row: jax.Array, active: jax.Array) -> jax.Array:
  """Sums a [B] per-row loss over the active rows."""
  return jnp.sum(jnp.where(active, per_row, 0.0))


def _maybe_elu(scores: jax.Array, elu_param: float) -> jax.Array:
  """Applies the ELU final activation of the official code when ``elu_param > 0``."""
  if elu_param > 0:
    return jax.nn.elu(scores, alpha=elu_param)
  return scores


FINAL_ACTIVATIONS = ('linear', 'tanh')


def _final_activation(scores: jax.Array, final_act: str) -> jax.Array:
  """The output activation the Theano codes (GRU4Rec, hgru4rec) put before BPR and TOP1."""
  if final_act == 'tanh':
    return jnp.tanh(scores)
  if final_act == 'linear':
    return scores
  raise ValueError(f'Unknown final_act {final_act!r}; valid: {", ".join(FINAL_ACTIVATIONS)}.')


def cross_entropy(
  scores: jax.Array,
  row_valid: jax.Array,
  col_valid: jax.Array | None = None,
  positive_col: jax.Array | None = None,
  *,
  col_log_q: jax.Array | None = None,
  logq: float = 0.0,
) -> jax.Array:
  """Softmax cross-entropy with optional logQ correction (official xe_loss_with_softmax).

  Per valid row: ``-log(softmax(scores - logq * col_log_q)[positive] + 1e-24)``, the
  softmax running over the positive and the valid columns. It is evaluated as
  ``-logaddexp(log_softmax[positive], log(1e-24))``, which is the same number
  without the overflow/underflow of an explicit ``exp``.

  Args:
    scores: [B, C] logits.
    row_valid: [B] bool, True for real slots.
    col_valid: [C] bool or None, see ``LossFn``.
    positive_col: [B] int or None, see ``LossFn``.
    col_log_q: [C] log of each column's sampling probability, up to a constant. For
      the official GRU4Rec: log(count) of the target items for the first B columns
      and log(count ** sample_alpha) for the S sampled columns. Entries of masked
      columns are ignored (they may be -inf).
    logq: weight of the logQ correction; applied only when > 0, as in the official
      code.

  Returns:
    Scalar float32, the loss summed over valid rows.

  Raises:
    ValueError: if ``logq > 0`` but ``col_log_q`` is None, or on shape mismatches.
  """
  scores, positive_col, is_pos, is_neg = _layout(scores, row_valid, col_valid, positive_col)
  candidate = is_pos | is_neg  # [B, C]
  if logq > 0:
    if col_log_q is None:
      raise ValueError('cross_entropy with logq > 0 needs col_log_q.')
    log_q = jnp.where(candidate, col_log_q[None, :], 0.0)  # [B, C]
    scores = scores - logq * log_q
  log_probs = jax.nn.log_softmax(jnp.where(candidate, scores, -jnp.inf), axis=1)  # [B, C]
  log_p_pos = _positive_scores(jnp.where(candidate, log_probs, 0.0), positive_col)[:, 0]  # [B]
  per_row = -jnp.logaddexp(log_p_pos, jnp.log(_LOG_EPS))  # [B]
  return _sum_rows(per_row, row_valid)


def bpr_max(
  scores: jax.Array,
  row_valid: jax.Array,
  col_valid: jax.Array | None = None,
  positive_col: jax.Array | None = None,
  *,
  elu_param: float = 0.5,
  bpreg: float = 1.0,
) -> jax.Array:
  """BPR-max with ELU final activation and score regularisation (official bpr_max_loss_with_elu).

  With ``o = elu(scores, elu_param)`` (identity if ``elu_param <= 0``), ``t`` the
  positive's activated score and ``s`` the softmax of ``o`` over the row's valid
  negatives (the positive gets weight 0), per valid row:
  ``-log(sum_j sigmoid(t - o_j) * s_j + 1e-24) + bpreg * sum_j o_j**2 * s_j``.
  Rows without any valid negative contribute 0 (the official trainer stops before
  reaching that case).

  Args:
    scores: [B, C] raw scores.
    row_valid: [B] bool, True for real slots.
    col_valid: [C] bool or None, see ``LossFn``.
    positive_col: [B] int or None, see ``LossFn``.
    elu_param: ELU alpha of the final activation; 0 disables it.
    bpreg: weight of the score regularisation term.

  Returns:
    Scalar float32, the loss summed over valid rows.
  """
  scores, positive_col, _, is_neg = _layout(scores, row_valid, col_valid, positive_col)
  scores = _maybe_elu(scores, elu_param)
  target = _positive_scores(scores, positive_col)  # [B, 1]
  weights = _softmax_over(scores, is_neg)  # [B, C]
  ranking = jnp.sum(jax.nn.sigmoid(target - scores) * weights, axis=1)  # [B]
  reg = jnp.sum(jnp.square(scores) * weights, axis=1)  # [B]
  per_row = -jnp.log(ranking + _LOG_EPS) + bpreg * reg  # [B]
  return _sum_rows(per_row, jnp.any(is_neg, axis=1))


def top1_max(
  scores: jax.Array,
  row_valid: jax.Array,
  col_valid: jax.Array | None = None,
  positive_col: jax.Array | None = None,
) -> jax.Array:
  """TOP1-max (Theano GRU4Rec ``top1_max``).

  With ``t`` the positive's score and ``s`` the softmax over the row's valid
  negatives, per valid row: ``sum_j s_j * (sigmoid(o_j - t) + sigmoid(o_j**2))``.
  Rows without any valid negative contribute 0.

  Args:
    scores: [B, C] raw scores.
    row_valid: [B] bool, True for real slots.
    col_valid: [C] bool or None, see ``LossFn``.
    positive_col: [B] int or None, see ``LossFn``.

  Returns:
    Scalar float32, the loss summed over valid rows.
  """
  scores, positive_col, _, is_neg = _layout(scores, row_valid, col_valid, positive_col)
  target = _positive_scores(scores, positive_col)  # [B, 1]
  weights = _softmax_over(scores, is_neg)  # [B, C]
  terms = jax.nn.sigmoid(scores - target) + jax.nn.sigmoid(jnp.square(scores))  # [B, C]
  per_row = jnp.sum(weights * terms, axis=1)  # [B]
  return _sum_rows(per_row, jnp.any(is_neg, axis=1))


def _mean_over(values: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Row-wise mean of ``values`` over ``mask``; returns (mean [B], row has entries [B])."""
  count = jnp.sum(mask, axis=1)  # [B]
  total = jnp.sum(jnp.where(mask, values, 0.0), axis=1)  # [B]
  return total / jnp.maximum(count, 1), count > 0


def bpr(
  scores: jax.Array,
  row_valid: jax.Array,
  col_valid: jax.Array | None = None,
  positive_col: jax.Array | None = None,
  *,
  final_act: str = 'linear',
) -> jax.Array:
  """Classic BPR against every negative: per row, mean_j ``-log(sigmoid(t - o_j))``.

  The mean runs over the row's valid negatives only. The Theano GRU4Rec averages
  over all ``C`` columns, the positive included (whose term is the constant
  ``log 2``): that equals ``((n_neg * ours) + log 2) / C``, i.e. the same gradient
  direction scaled by ``n_neg / C`` (its latest version sums over the columns instead,
  a scale of ``n_neg``). Excluding the positive and the masked columns
  makes the value independent of how many padding slots a batch has, so masking a
  slot is exactly the same as removing it. ``-log(sigmoid(x))`` is computed as
  ``softplus(-x)``.

  Args:
    scores: [B, C] raw scores.
    row_valid: [B] bool, True for real slots.
    col_valid: [C] bool or None, see ``LossFn``.
    positive_col: [B] int or None, see ``LossFn``.
    final_act: 'linear' (the PyTorch GRU4Rec) or 'tanh', applied to every score first (the
      Theano GRU4Rec's and hgru4rec's default for BPR and TOP1).

  Returns:
    Scalar float32, the loss summed over valid rows.
  """
  scores, positive_col, _, is_neg = _layout(scores, row_valid, col_valid, positive_col)
  scores = _final_activation(scores, final_act)
  target = _positive_scores(scores, positive_col)  # [B, 1]
  per_row, has_neg = _mean_over(-jax.nn.log_sigmoid(target - scores), is_neg)  # [B]
  return _sum_rows(per_row, has_neg)


def top1(
  scores: jax.Array,
  row_valid: jax.Array,
  col_valid: jax.Array | None = None,
  positive_col: jax.Array | None = None,
  *,
  final_act: str = 'linear',
) -> jax.Array:
  """TOP1: per row, mean_j over valid negatives of ``sigmoid(o_j - t) + sigmoid(o_j**2)``.

  The Theano GRU4Rec averages over all ``C`` columns and then subtracts the
  positive's ``sigmoid(t**2) / C``, which leaves ``(n_neg * ours + 0.5) / C``: a
  constant offset and a ``n_neg / C`` scale. We average over the valid negatives for
  the same reason as ``bpr``.

  Args:
    scores: [B, C] raw scores.
    row_valid: [B] bool, True for real slots.
    col_valid: [C] bool or None, see ``LossFn``.
    positive_col: [B] int or None, see ``LossFn``.
    final_act: 'linear' or 'tanh', as for ``bpr``.

  Returns:
    Scalar float32, the loss summed over valid rows.
  """
  scores, positive_col, _, is_neg = _layout(scores, row_valid, col_valid, positive_col)
  scores = _final_activation(scores, final_act)
  target = _positive_scores(scores, positive_col)  # [B, 1]
  terms = jax.nn.sigmoid(scores - target) + jax.nn.sigmoid(jnp.square(scores))  # [B, C]
  per_row, has_neg = _mean_over(terms, is_neg)  # [B]
  return _sum_rows(per_row, has_neg)


LOSSES: dict[str, LossFn] = {
  'cross-entropy': cross_entropy,
  'bpr-max': bpr_max,
  'top1-max': top1_max,
  'bpr': bpr,
  'top1': top1,
}


def get_loss(name: str) -> LossFn:
  """Looks a loss up by its GRU4Rec name.

  Args:
    name: one of the keys of ``LOSSES``.

  Returns:
    The loss function.

  Raises:
    ValueError: if ``name`` is unknown; the message lists the valid names.
  """
  try:
    return LOSSES[name]
  except KeyError:
    raise ValueError(f'Unknown loss {name!r}; valid names: {", ".join(sorted(LOSSES))}.') from None
