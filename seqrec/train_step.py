"""The jitted session-parallel update of GRU4Rec-style models, scanned over chunks of steps.

One step, as in the official GRU4Rec code: zero the hidden state of slots that start a session,
draw `n_sample` negatives shared by the batch (popularity^sample_alpha), score every slot against
the batch's targets plus the negatives, take the loss (summed over slots, divided by the fixed
batch size), and apply Adagrad with momentum: densely to the GRU weights, row-sparsely to the item
tables (only rows looked up in the step move). The hidden state is carried to the next step
without gradient, like the official code's `detach`.
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
  params = {'logq': cfg.logq, 'bpreg': cfg.bpreg, 'elu_param': cfg.elu_param}
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


def make_update_fn(graphdef: nnx.GraphDef, cfg: StepConfig, item_counts: jax.Array) -> Callable:
  """Builds the pure one-step `update(state, batch) -> (state, [loss_sum, n_valid])`.

  `batch` holds one step's `[B]` inputs/targets/valid/reset. `make_train_chunk` scans it; tests
  call it step by step.
  """
  loss_fn = bind_loss(cfg)
  counts = jnp.asarray(item_counts, jnp.float32)
  n_items = counts.shape[0]
  log_pop = jnp.log(jnp.maximum(counts, 1.0))  # [N]
  cdf = sampling_cdf(item_counts, cfg.sample_alpha) if cfg.n_sample > 0 else None
  full_catalogue = cfg.n_sample < 0
  dense_tx = optim.dense_adagrad_momentum(cfg.learning_rate, cfg.momentum)

  def output_set(targets, valid, key):
    """Item ids of the output columns, their validity, the positive column, log q per column."""
    batch = targets.shape[0]
    if full_catalogue:
      cols = jnp.arange(n_items, dtype=jnp.int32)
      return cols, jnp.ones((n_items,), bool), targets, log_pop
    positive = jnp.arange(batch, dtype=jnp.int32)
    if cfg.n_sample == 0:
      return targets, valid, positive, log_pop[targets]
    u = jax.random.uniform(key, (cfg.n_sample,), jnp.float32)
    negatives = jnp.minimum(jnp.searchsorted(cdf, u, side='right'), n_items - 1).astype(jnp.int32)
    cols = jnp.concatenate([targets, negatives])  # [B + S]
    col_valid = jnp.concatenate([valid, jnp.ones((cfg.n_sample,), bool)])
    log_q = jnp.concatenate([log_pop[targets], cfg.sample_alpha * log_pop[negatives]])
    return cols, col_valid, positive, log_q

  def update(state: TrainState, batch: dict[str, jax.Array]) -> tuple[TrainState, jax.Array]:
    inputs, targets, valid, reset = (
      batch['inputs'],
      batch['targets'],
      batch['valid'],
      batch['reset'],
    )
    batch_size = inputs.shape[0]
    # A step the official code would not take changes nothing: no valid slot (the padded tail of
    # an epoch), or, with in-batch negatives only, fewer than 2 slots (where it ends the epoch).
    active = valid.sum() >= (2 if cfg.n_sample == 0 else 1)
    valid = valid & active
    hidden = tuple(jnp.where(reset[:, None], 0.0, h) for h in state.hidden)
    key = jax.random.fold_in(state.rng, state.step)
    key_neg, key_drop = jax.random.split(key)
    cols, col_valid, positive, log_q = output_set(targets, valid, key_neg)

    model = nnx.merge(graphdef, state.tables, state.dense)
    in_rows = model.input_rows(inputs)  # [B, D_in]
    out_rows, out_bias = model.output_rows(cols)  # [K, D], [K]

    def objective(dense, in_rows, out_rows, out_bias):
      net = nnx.merge(graphdef, state.tables, dense)
      out, new_hidden = net.step(in_rows, hidden, key_drop)
      scores = net.score_rows(out, out_rows, out_bias)  # [B, K]
      total = loss_fn(scores, valid, col_valid, positive, col_log_q=log_q)
      return total / batch_size, (new_hidden, total)

    grad_fn = jax.grad(objective, argnums=(0, 1, 2, 3), has_aux=True)
    (g_dense, g_in, g_out, g_bias), (new_hidden, total) = grad_fn(
      state.dense, in_rows, out_rows, out_bias
    )
    dense_updates, dense_opt = dense_tx.update(g_dense, state.dense_opt, state.dense)
    dense = optax.apply_updates(state.dense, dense_updates)
    # Momentum would move the dense weights even on a zero gradient; keep them (small arrays).
    dense, dense_opt = jax.tree.map(
      lambda new, old: jnp.where(active, new, old),
      (dense, dense_opt),
      (state.dense, state.dense_opt),
    )

    # Row-sparse updates of the item tables, padding slots mapped to the dropped sentinel N. The
    # output table and its bias share one coalescing of the looked-up ids (one sort per step).
    in_idx = jnp.where(valid, inputs, n_items)  # [B]
    out_idx = jnp.where(col_valid & active, cols, n_items)  # [K] (negatives too, when inactive)
    tables = dict(state.tables.items())
    table_opt = dict(state.table_opt)
    hyper = dict(learning_rate=cfg.learning_rate, momentum=cfg.momentum)

    def apply(name, rows, inverse, grads):
      new_value, table_opt[name] = optim.apply_row_sparse(
        tables[name].get_value(), state.table_opt[name], rows, inverse, grads, **hyper
      )
      tables[name] = tables[name].replace(new_value)

    if model.input_table == 'item_out':  # constrained: inputs are rows of the output table
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
    new_state = TrainState(
      step=state.step + 1,
      tables=nnx.State(tables),
      dense=dense,
      dense_opt=dense_opt,
      table_opt=table_opt,
      hidden=jax.lax.stop_gradient(new_hidden),
      rng=state.rng,
    )
    return new_state, jnp.stack([total, valid.sum().astype(jnp.float32)])

  return update


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
  update = make_update_fn(graphdef, cfg, item_counts)

  def train_chunk(state: TrainState, arrays: dict[str, jax.Array], start: jax.Array):
    window = {k: jax.lax.dynamic_slice_in_dim(v, start, steps_per_call) for k, v in arrays.items()}
    state, stats = jax.lax.scan(update, state, window, unroll=unroll)  # stats [steps, 2]
    return state, stats.sum(axis=0)

  return jax.jit(train_chunk, donate_argnums=0)
