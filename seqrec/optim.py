"""GRU4Rec's Adagrad with momentum: optax chain for dense weights, row-sparse table updates."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

# The official GRU4Rec code (IndexedAdagradM) uses this epsilon inside the square root.
DEFAULT_EPS = 1e-6


def dense_adagrad_momentum(
  learning_rate: optax.ScalarOrSchedule,
  momentum: float,
  eps: float = DEFAULT_EPS,
) -> optax.GradientTransformation:
  """Adagrad with momentum for dense parameters, as GRU4Rec applies it to the GRU weights.

  Per parameter, with `acc` and `mom` starting at zero:

    acc += g**2
    mom = momentum * mom - learning_rate * g / sqrt(acc + eps)
    p += mom

  and, when `momentum == 0`, `p -= learning_rate * g / sqrt(acc + eps)` with no momentum state.

  `optax.scale_by_rss` computes `g * rsqrt(acc + eps)` where `acc > 0` and `0` where `acc == 0`.
  The two agree: `acc == 0` means every gradient so far, the current one included, is zero, so
  the official update is `0 / sqrt(eps) == 0` as well. (They differ only for gradients so small
  that their square underflows to zero in float32, `|g| < ~4e-23`, where optax yields 0 instead
  of `1e3 * g`.) The learning rate is applied before the momentum trace, so the trace holds
  exactly the official `mom` and a learning-rate schedule scales only the newest step, as a
  per-step learning rate would in the official code.

  Args:
    learning_rate: a scalar or an optax schedule.
    momentum: momentum coefficient; `0` drops the momentum state altogether.
    eps: added to the accumulator inside the square root.

  Returns:
    An `optax.GradientTransformation` whose updates are added to the parameters
    (`optax.apply_updates`).
  """
  parts = [
    optax.scale_by_rss(initial_accumulator_value=0.0, eps=eps),
    optax.scale_by_learning_rate(learning_rate),
  ]
  if not (isinstance(momentum, (int, float)) and momentum == 0):
    parts.append(optax.trace(decay=momentum))
  return optax.chain(*parts)


class RowSparseState(NamedTuple):
  """Adagrad-with-momentum state of one embedding table.

  Attributes:
    acc: sum of squared gradients per entry, `[N, ...]` like the table.
    mom: momentum per entry, `[N, ...]` like the table, or `[0, ...]` when the table is trained
      without momentum.
  """

  acc: jax.Array
  mom: jax.Array


def init_row_sparse(table: jax.Array, *, with_momentum: bool = True) -> RowSparseState:
  """Zero state for `row_sparse_update`.

  Args:
    table: the embedding table, `[N, ...]`.
    with_momentum: whether to allocate the momentum buffer; without it `row_sparse_update` must be
      called with `momentum=0`.

  Returns:
    A `RowSparseState` of zeros in the table's dtype.
  """
  acc = jnp.zeros_like(table)
  mom_shape = table.shape if with_momentum else (0, *table.shape[1:])
  return RowSparseState(acc=acc, mom=jnp.zeros(mom_shape, table.dtype))


def gather_rows(table: jax.Array, indices: jax.Array) -> jax.Array:
  """Looks up rows of `table`, mapping padding indices (outside `[0, N)`) to a valid row.

  This is the lookup whose output the caller differentiates to obtain `row_grads` for
  `row_sparse_update`:

    rows = gather_rows(table, idx)                          # [M, D]
    loss, row_grads = jax.value_and_grad(loss_of_rows)(rows)  # row_grads: [M, D]
    table, state = row_sparse_update(table, state, idx, row_grads, learning_rate=lr, momentum=m)

  Padding entries read some arbitrary valid row; whatever gradient reaches them is discarded by
  `row_sparse_update`. When one table serves several lookups in a step (GRU4Rec's item table is
  read for the inputs, the targets and the negative samples), concatenate the index vectors and
  the row gradients (or gather once from the concatenated indices): coalescing sums the
  contributions of a row exactly as the official sparse gradient does.

  Args:
    table: `[N, ...]`.
    indices: integer indices, any shape `S`; values outside `[0, N)` are padding.

  Returns:
    `[*S, ...]` rows of `table`.
  """
  return jnp.take(table, indices, axis=0, mode='clip')


def row_sparse_update(
  table: jax.Array,
  state: RowSparseState,
  indices: jax.Array,
  row_grads: jax.Array,
  *,
  learning_rate: float | jax.Array,
  momentum: float | jax.Array,
  eps: float = DEFAULT_EPS,
) -> tuple[jax.Array, RowSparseState]:
  """One GRU4Rec Adagrad-with-momentum step on the rows of `table` looked up in this step.

  Mirrors the sparse branch of the official `IndexedAdagradM`: the gradients of repeated indices
  are summed first (the update is non-linear in the gradient), then for every distinct looked-up
  row `r`, with `g` its summed gradient,

    acc[r] += g**2
    mom[r] = momentum * mom[r] - learning_rate * g / sqrt(acc[r] + eps)
    table[r] += mom[r]

  (`table[r] -= learning_rate * g / sqrt(acc[r] + eps)` without a momentum buffer). A looked-up
  row with zero gradient still takes its momentum step. Rows not looked up keep `table`, `acc`
  and `mom` bit-identical: their momentum does not carry them further.

  Work and temporaries are `O(M * row_size)`; the table and state are only touched through
  gathers and scatters at the looked-up rows. Run it under `jax.jit` with the table and state
  donated so that XLA scatters in place instead of copying them.

  Args:
    table: `[N, ...]` embedding table (a bias table may be `[N]` or `[N, 1]`).
    state: this table's `RowSparseState`.
    indices: `[M]` integer rows looked up in the step, duplicates allowed. Entries outside
      `[0, N)` (conventionally `N`) are padding: they neither touch a row nor add gradient.
    row_grads: `[M, ...]` gradient of the loss w.r.t. each looked-up row (see `gather_rows`).
    learning_rate: python float or traced scalar.
    momentum: python float or traced scalar; must be `0` when `state.mom` is empty.
    eps: added to the accumulator inside the square root.

  Returns:
    `(new_table, new_state)`.

  Raises:
    ValueError: on mismatched shapes, or a non-zero python `momentum` with no momentum buffer.
  """
  num_rows = table.shape[0]
  if indices.ndim != 1:
    raise ValueError(f'indices must be 1-D, got shape {indices.shape}')
  if row_grads.shape != (indices.shape[0], *table.shape[1:]):
    raise ValueError(
      f'row_grads shape {row_grads.shape} does not match indices {indices.shape} and table '
      f'rows {table.shape[1:]}'
    )
  use_momentum = state.mom.shape[0] != 0
  if not use_momentum and isinstance(momentum, (int, float)) and momentum != 0:
    raise ValueError('momentum > 0 needs a state from init_row_sparse(..., with_momentum=True)')

  rows, inverse = coalesce(indices, num_rows)
  return apply_row_sparse(
    table, state, rows, inverse, row_grads, learning_rate=learning_rate, momentum=momentum, eps=eps
  )


def coalesce(indices: jax.Array, num_rows: int) -> tuple[jax.Array, jax.Array]:
  """Distinct looked-up rows and, per lookup, the position of its row among them.

  Args:
    indices: `[M]` looked-up rows; entries outside `[0, num_rows)` are padding.
    num_rows: N, the table's row count.

  Returns:
    `(rows [M], inverse [M])`: distinct rows in ascending order, padded with the sentinel N (which
    the scatters of `apply_row_sparse` drop); `rows[inverse[m]]` is lookup m's row (N for padding).
  """
  num_lookups = indices.shape[0]
  indices = indices.astype(jnp.int32)
  # Every kind of padding becomes the sentinel N.
  indices = jnp.where((indices >= 0) & (indices < num_rows), indices, num_rows)  # [M]
  rows, inverse = jnp.unique(
    indices, size=num_lookups, fill_value=num_rows, return_inverse=True
  )  # [M], [M]
  return rows, inverse.reshape(-1)


def apply_row_sparse(
  table: jax.Array,
  state: RowSparseState,
  rows: jax.Array,
  inverse: jax.Array,
  row_grads: jax.Array,
  *,
  learning_rate: float | jax.Array,
  momentum: float | jax.Array,
  eps: float = DEFAULT_EPS,
) -> tuple[jax.Array, RowSparseState]:
  """`row_sparse_update` after `coalesce`: lets tables looked up alike share one coalescing.

  Args:
    table: `[N, ...]`.
    state: the table's `RowSparseState`.
    rows: `[R]` distinct rows to update, the sentinel N (or any value >= N) for none.
    inverse: `[M]` position in `rows` of each lookup's row.
    row_grads: `[M, ...]` gradient of each lookup.
    learning_rate: python float or traced scalar.
    momentum: python float or traced scalar.
    eps: added to the accumulator inside the square root.

  Returns:
    `(new_table, new_state)`.
  """
  use_momentum = state.mom.shape[0] != 0
  grads = jax.ops.segment_sum(
    row_grads.astype(state.acc.dtype), inverse, num_segments=rows.shape[0]
  )  # [R, ...]
  acc_rows = state.acc.at[rows].get(mode='fill', fill_value=0) + grads * grads  # [R, ...]
  step = learning_rate * grads / jnp.sqrt(acc_rows + eps)  # [R, ...]
  new_acc = state.acc.at[rows].set(acc_rows, mode='drop')
  if use_momentum:
    mom_rows = momentum * state.mom.at[rows].get(mode='fill', fill_value=0) - step  # [R, ...]
    new_mom = state.mom.at[rows].set(mom_rows, mode='drop')
    delta = mom_rows
  else:
    new_mom = state.mom
    delta = -step
  new_table = table.at[rows].add(delta.astype(table.dtype), mode='drop')
  return new_table, RowSparseState(acc=new_acc, mom=new_mom)


class SparseAdagradM(NamedTuple):
  """Hyperparameters of GRU4Rec's optimiser for a dict of embedding tables.

  `update` applies `row_sparse_update` to each table named in `indices`; tables not named there
  (not looked up in the step) are returned unchanged, as are their states.

  Attributes:
    learning_rate: python float or traced scalar.
    momentum: python float or traced scalar; `0` allocates no momentum buffers.
    eps: added to the accumulator inside the square root.
  """

  learning_rate: float | jax.Array
  momentum: float | jax.Array = 0.0
  eps: float = DEFAULT_EPS

  def init(self, tables: Mapping[str, jax.Array]) -> dict[str, RowSparseState]:
    """Zero states for every table (with momentum buffers unless `momentum` is python `0`)."""
    with_momentum = not (isinstance(self.momentum, (int, float)) and self.momentum == 0)
    return {name: init_row_sparse(t, with_momentum=with_momentum) for name, t in tables.items()}

  def update(
    self,
    tables: Mapping[str, jax.Array],
    states: Mapping[str, RowSparseState],
    indices: Mapping[str, jax.Array],
    row_grads: Mapping[str, jax.Array],
  ) -> tuple[dict[str, jax.Array], dict[str, RowSparseState]]:
    """One step on every table named in `indices`.

    Args:
      tables: name -> `[N, ...]` table.
      states: name -> its `RowSparseState`.
      indices: name -> `[M]` looked-up rows (padding outside `[0, N)`); a subset of `tables`.
      row_grads: name -> `[M, ...]` gradients w.r.t. the looked-up rows; same keys as `indices`.

    Returns:
      `(new_tables, new_states)` as dicts with the keys of `tables`.
    """
    new_tables, new_states = dict(tables), dict(states)
    for name, idx in indices.items():
      new_tables[name], new_states[name] = row_sparse_update(
        tables[name],
        states[name],
        idx,
        row_grads[name],
        learning_rate=self.learning_rate,
        momentum=self.momentum,
        eps=self.eps,
      )
    return new_tables, new_states
