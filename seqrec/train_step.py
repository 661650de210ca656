"""The jitted session-parallel update of GRU4Rec-style models, scanned over chunks of steps.

One step, as in the official GRU4Rec code: zero the hidden state of slots that start a session,
draw `n_sample` negatives shared by the batch (popularity^sample_alpha), score every slot against
the batch's targets plus the negatives, take the loss (summed over slots, divided by the fixed
batch size), and apply Adagrad with momentum: densely to the GRU weights, row-sparsely to the item
tables (only rows looked up in the step move). The hidden state is carried to the next step
without gradient, like the official code's `detach`. The model-independent body of the step
(`make_step_core`) is shared with HRNN's user-parallel update (`seqrec.user_train_step`).
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from seqrec import losses, optim
from seqrec.models.gru4rec import GRU4Rec, Hidden, ItemTable


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
  """Everything a run needs to continue bit-exactly from a checkpoint."""

  step: jax.Array  # [] int32, global step count (drives the per-step RNG)
  tables: nnx.State  # item-indexed parameters (row-sparse updates)
  dense: nnx.State  # all other parameters (dense optax updates)
  dense_opt: Any  # optax state of `dense`
  table_opt: dict[str, optim.RowSparseState]  # per table
  hidden: Hidden  # per-layer [B, H_l], carried across steps and chunks
  rng: jax.Array  # base key; step keys are fold_in(rng, step)


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """Static hyperparameters of the update (the official GRU4Rec parameter names)."""

  loss: str
  n_sample: int
  sample_alpha: float
  logq: float
  bpreg: float
  elu_param: float
  learning_rate: float
  momentum: float
  final_act: str = 'linear'


def step_config(config) -> StepConfig:
  return StepConfig(
    loss=config.loss,
    n_sample=int(config.n_sample),
    sample_alpha=float(config.sample_alpha),
    logq=float(config.logq),
    bpreg=float(config.bpreg),
    elu_param=float(config.elu_param),
    learning_rate=float(config.learning_rate),
    momentum=float(config.momentum),
    final_act=str(config.get('final_act', 'linear')),
  )


def init_train_state(
  model: GRU4Rec, batch_size: int, momentum: float, rng: jax.Array
) -> TrainState:
  _, tables, dense = nnx.split(model, ItemTable, nnx.Param)
  dense_tx = optim.dense_adagrad_momentum(1.0, momentum)  # lr applied in the step (static)
  table_opt = {
    name: optim.init_row_sparse(var.get_value(), with_momentum=momentum > 0)
    for name, var in tables.items()
  }
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    tables=tables,
    dense=dense,
    dense_opt=dense_tx.init(dense),
    table_opt=table_opt,
    hidden=model.init_hidden(batch_size),
    rng=rng,
  )


def bind_loss(cfg: StepConfig) -> Callable:
  """The configured loss with its hyperparameters bound (each loss takes the ones it uses)."""
  loss_fn = losses.get_loss(cfg.loss)
  wanted = inspect.signature(loss_fn).parameters
  params = {
    'logq': cfg.logq,
    'bpreg': cfg.bpreg,
    'elu_param': cfg.elu_param,
    'final_act': cfg.final_act,
  }
  bound = functools.partial(loss_fn, **{k: v for k, v in params.items() if k in wanted})
  if 'col_log_q' in wanted:
    return bound
  return lambda *args, col_log_q=None: bound(*args)


def sampling_cdf(item_counts: jax.Array, sample_alpha: float) -> jax.Array:
  """[N] cumulative distribution of popularity**alpha, the last entry forced to 1 (as official)."""
  weights = jnp.asarray(item_counts, jnp.float64 if jax.config.x64_enabled else jnp.float32)
  weights = weights**sample_alpha
  cdf = jnp.cumsum(weights) / jnp.sum(weights)
  return cdf.at[-1].set(1.0).astype(jnp.float32)


def draw_from_cdf(cdf: jax.Array, u: jax.Array) -> jax.Array:
  """[S] int32 item ids for [S] uniform draws `u`: the first item whose cumulative weight exceeds u.

  The binary search is written out as straight-line code (`method='scan_unrolled'`, the same
  result as every other method). `jnp.searchsorted`'s default compiles to a `while` loop of
  ceil(log2(N + 1)) trips; inside the scanned training step that is a nested loop run every step,
  and on a GPU each trip launches its own small kernels one after another.
  """
  ids = jnp.searchsorted(cdf, u, side='right', method='scan_unrolled')  # [S]
  return jnp.minimum(ids, cdf.shape[0] - 1).astype(jnp.int32)


def step_is_active(valid: jax.Array, cfg: StepConfig) -> jax.Array:
  """[] bool: whether the official code would take this step at all.

  A step it would not take changes nothing: one with no valid slot (the padded tail of an epoch),
  or, with in-batch negatives only, one with fewer than 2 slots (where it ends the epoch).
  """
  return valid.sum() >= (2 if cfg.n_sample == 0 else 1)


def make_output_set(cfg: StepConfig, item_counts: jax.Array) -> Callable:
  """Builds `output_set(targets, valid, key) -> (cols, col_valid, positive, log_q)`.

  The output columns of a step: the batch's targets plus `n_sample` negatives shared by the
  batch, drawn from popularity**sample_alpha (`n_sample=0`: in-batch negatives only; `-1`: the
  whole catalogue). `positive` is each slot's column, `log_q` the log sampling probability of each
  column (up to a constant) for the logQ correction.
  """
  counts = jnp.asarray(item_counts, jnp.float32)
  n_items = counts.shape[0]
  log_pop = jnp.log(jnp.maximum(counts, 1.0))  # [N]
  cdf = sampling_cdf(item_counts, cfg.sample_alpha) if cfg.n_sample > 0 else None

  def output_set(targets, valid, key):
    batch = targets.shape[0]
    if cfg.n_sample < 0:
      cols = jnp.arange(n_items, dtype=jnp.int32)
      return cols, jnp.ones((n_items,), bool), targets, log_pop
    positive = jnp.arange(batch, dtype=jnp.int32)
    if cfg.n_sample == 0:
      return targets, valid, positive, log_pop[targets]
    u = jax.random.uniform(key, (cfg.n_sample,), jnp.float32)
    negatives = draw_from_cdf(cdf, u)  # [S]
    cols = jnp.concatenate([targets, negatives])  # [B + S]
    col_valid = jnp.concatenate([valid, jnp.ones((cfg.n_sample,), bool)])
    log_q = jnp.concatenate([log_pop[targets], cfg.sample_alpha * log_pop[negatives]])
    return cols, col_valid, positive, log_q

  return output_set


def apply_dense_update(
  dense_tx: optax.GradientTransformation,
  grads: nnx.State,
  dense: nnx.State,
  dense_opt: Any,
  active: jax.Array,
) -> tuple[nnx.State, Any]:
  """Dense Adagrad with momentum on the non-table weights; an inactive step keeps them."""
  updates, new_opt = dense_tx.update(grads, dense_opt, dense)
  new_dense = optax.apply_updates(dense, updates)
  # Momentum would move the dense weights even on a zero gradient; keep them (small arrays).
  return jax.tree.map(
    lambda new, old: jnp.where(active, new, old), (new_dense, new_opt), (dense, dense_opt)
  )


def apply_table_updates(
  cfg: StepConfig,
  input_table: str,
  tables: nnx.State,
  table_opt: dict[str, optim.RowSparseState],
  in_idx: jax.Array,
  out_idx: jax.Array,
  grads: tuple[jax.Array, jax.Array, jax.Array],
) -> tuple[nnx.State, dict[str, optim.RowSparseState]]:
  """Row-sparse Adagrad with momentum on the rows of the item tables looked up in the step.

  Args:
    cfg: the step's hyperparameters.
    input_table: the table input ids are looked up in (`model.input_table`).
    tables: the item tables.
    table_opt: their optimiser states.
    in_idx: [B] input ids, N (the dropped sentinel) where the slot takes no update.
    out_idx: [K] output column ids, N where the column takes no update.
    grads: gradients w.r.t. ([B, D_in] input rows, [K, D] output rows, [K] output biases).

  Returns:
    (new tables, new optimiser states).
  """
  g_in, g_out, g_bias = grads
  batch_size = in_idx.shape[0]
  n_items = tables['item_out'].get_value().shape[0]
  new_tables = dict(tables.items())
  new_opt = dict(table_opt)
  hyper = dict(learning_rate=cfg.learning_rate, momentum=cfg.momentum)

  def apply(name, rows, inverse, grads):
    new_value, new_opt[name] = optim.apply_row_sparse(
      new_tables[name].get_value(), table_opt[name], rows, inverse, grads, **hyper
    )
    new_tables[name] = new_tables[name].replace(new_value)

  # The output table and its bias share one coalescing of the looked-up ids (one sort per step).
  if input_table == 'item_out':  # constrained: inputs are rows of the output table
    rows, inverse = optim.coalesce(jnp.concatenate([in_idx, out_idx]), n_items)
    apply('item_out', rows, inverse, jnp.concatenate([g_in, g_out]))
    out_inverse = inverse[batch_size:]
    # The bias is looked up for output columns only: rows reached by inputs alone stay frozen.
    hit = jnp.zeros(rows.shape, bool).at[out_inverse].set(True)
    apply('item_bias', jnp.where(hit, rows, n_items), out_inverse, g_bias)
  else:
    rows, inverse = optim.coalesce(out_idx, n_items)
    apply('item_out', rows, inverse, g_out)
    apply('item_bias', rows, inverse, g_bias)
    apply('item_in', *optim.coalesce(in_idx, n_items), g_in)
  return nnx.State(new_tables), new_opt


def make_step_core(graphdef: nnx.GraphDef, cfg: StepConfig, item_counts: jax.Array) -> Callable:
  """Builds the model-independent body of one update, shared by GRU4Rec and HRNN steps.

  `core(state, batch, forward) -> (params, carry, stats)`: `state` has the `TrainState`
  parameter fields, `batch` one step's `[B]` inputs/targets/valid, and
  `forward(net, in_rows, key) -> (out [B, D], carry)` runs the model on the step's input rows
  from the caller's recurrent state (`key` is the step's dropout key). The core draws the
  negatives, differentiates the loss w.r.t. the dense weights and the looked-up table rows, and
  applies the dense and row-sparse updates (none at all in an inactive step). It returns the new
  `params` (`tables`, `dense`, `dense_opt`, `table_opt`, a dict to `dataclasses.replace` into
  the state), the new recurrent `carry` without gradient, and `stats` `[loss_sum, n_valid]`.
  """
  loss_fn = bind_loss(cfg)
  n_items = jnp.asarray(item_counts).shape[0]
  output_set = make_output_set(cfg, item_counts)
  dense_tx = optim.dense_adagrad_momentum(cfg.learning_rate, cfg.momentum)

  def core(state, batch: dict[str, jax.Array], forward: Callable):
    inputs, targets, valid = batch['inputs'], batch['targets'], batch['valid']
    batch_size = inputs.shape[0]
    active = step_is_active(valid, cfg)
    valid = valid & active
    key = jax.random.fold_in(state.rng, state.step)
    key_neg, key_drop = jax.random.split(key)
    cols, col_valid, positive, log_q = output_set(targets, valid, key_neg)

    model = nnx.merge(graphdef, state.tables, state.dense)
    in_rows = model.input_rows(inputs)  # [B, D_in]
    out_rows, out_bias = model.output_rows(cols)  # [K, D], [K]

    def objective(dense, in_rows, out_rows, out_bias):
      net = nnx.merge(graphdef, state.tables, dense)
      out, carry = forward(net, in_rows, key_drop)
      scores = net.score_rows(out, out_rows, out_bias)  # [B, K]
      total = loss_fn(scores, valid, col_valid, positive, col_log_q=log_q)
      return total / batch_size, (carry, total)

    grad_fn = jax.grad(objective, argnums=(0, 1, 2, 3), has_aux=True)
    (g_dense, *g_rows), (carry, total) = grad_fn(state.dense, in_rows, out_rows, out_bias)
    dense, dense_opt = apply_dense_update(dense_tx, g_dense, state.dense, state.dense_opt, active)
    # Padding slots are mapped to the dropped sentinel N (the negatives too, when inactive).
    in_idx = jnp.where(valid, inputs, n_items)  # [B]
    out_idx = jnp.where(col_valid & active, cols, n_items)  # [K]
    tables, table_opt = apply_table_updates(
      cfg, model.input_table, state.tables, state.table_opt, in_idx, out_idx, tuple(g_rows)
    )
    params = dict(tables=tables, dense=dense, dense_opt=dense_opt, table_opt=table_opt)
    stats = jnp.stack([total, valid.sum().astype(jnp.float32)])
    return params, jax.lax.stop_gradient(carry), stats

  return core


def make_update_fn(graphdef: nnx.GraphDef, cfg: StepConfig, item_counts: jax.Array) -> Callable:
  """Builds the pure one-step `update(state, batch) -> (state, [loss_sum, n_valid])`.

  `batch` holds one step's `[B]` inputs/targets/valid/reset. `make_train_chunk` scans it; tests
  call it step by step.
  """
  core = make_step_core(graphdef, cfg, item_counts)

  def update(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, jax.Array]:
    hidden = tuple(jnp.where(batch['reset'][:, None], 0.0, h) for h in state.hidden)

    def forward(net, in_rows, key):
      return net.step(in_rows, hidden, key)

    params, new_hidden, stats = core(state, batch, forward)
    return dataclasses.replace(state, step=state.step + 1, hidden=new_hidden, **params), stats

  return update


def scan_chunk(update: Callable, steps_per_call: int, unroll: int = 1) -> Callable:
  """Jits `chunk(state, arrays, start)`: `update` scanned over steps `start ..` of `[T, B]` arrays.

  Returns `(state, stats summed over the chunk)`, donating `state`.
  """

  def train_chunk(state, arrays: dict[str, jax.Array], start: jax.Array):
    window = {k: jax.lax.dynamic_slice_in_dim(v, start, steps_per_call) for k, v in arrays.items()}
    state, stats = jax.lax.scan(update, state, window, unroll=unroll)  # stats [steps, 2]
    return state, stats.sum(axis=0)

  return jax.jit(train_chunk, donate_argnums=0)


def make_train_chunk(
  graphdef: nnx.GraphDef,
  cfg: StepConfig,
  item_counts: jax.Array,
  steps_per_call: int,
  unroll: int = 1,
) -> Callable:
  """Builds `train_chunk(state, schedule_arrays, start) -> (state, stats)`, jitted, donating state.

  `schedule_arrays` holds the epoch's `[T, B]` inputs/targets/valid/reset on device; the call runs
  steps `start .. start + steps_per_call - 1` in one `lax.scan` (unrolled `unroll` times: fewer
  loop iterations, each a device-side loop test, for the same steps). `stats` is
  `[loss_sum, n_valid]` summed over the chunk.
  """
  return scan_chunk(make_update_fn(graphdef, cfg, item_counts), steps_per_call, unroll)
