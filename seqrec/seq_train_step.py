"""The jitted, scanned update of user-sequence models (SASRec, BERT4Rec, Caser, TransRec).

One step gathers a batch of fixed-shape examples from the device-resident arrays, takes the model's
training view (BERT4Rec draws its masks on device), scores each target against its sampled negatives
or the whole catalogue, and applies one Adam step to the mean loss over the batch's target
positions. `make_train_chunk` scans `steps_per_call` such steps in one compiled call, the state
donated. Every random draw is keyed by (seed, step), so a resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx

from seqrec import seq_losses


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class TrainState:
  """Everything a run needs to continue bit-exactly from a checkpoint."""

  step: jax.Array  # [] int32 update count; step keys are fold_in(rng, step)
  params: nnx.State  # trained parameters (nnx.Param)
  others: nnx.State  # any other model variables (carried, never trained)
  opt_state: Any  # optax state of `params`
  rng: jax.Array  # base key of the steps


def resolve_loss(config: ml_collections.ConfigDict) -> tuple[str, int, dict]:
  """`(loss name in seq_losses.LOSSES, negatives per target, keyword options)` of the run.

  `config.loss='default'` is the model's own loss from its paper (`seq_losses.DEFAULT_LOSS`),
  with the official options (e.g. Caser averages its negatives). `config.n_negatives=0` takes
  that loss's own count (1 for a loss that is not the model's); `config.negative_reduction`
  ('default', 'sum' or 'mean') overrides how the terms of several negatives are combined.
  """
  own, own_negatives = seq_losses.DEFAULT_LOSS[config.model]
  name = own if config.loss == 'default' else config.loss
  n_negatives = int(config.n_negatives) or (own_negatives if name == own else 1)
  kwargs = dict(seq_losses.DEFAULT_LOSS_KWARGS[config.model]) if name == own else {}
  if config.negative_reduction != 'default':
    kwargs['negative_reduction'] = config.negative_reduction
  return name, max(n_negatives, 1), kwargs


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """The static hyperparameters of the update, resolved from the config (hashable)."""

  loss: str  # a name in seq_losses.LOSSES
  n_negatives: int
  loss_kwargs: tuple[tuple[str, Any], ...]
  negatives_exclude_seen: bool
  negative_scoring: str  # 'gather' | 'catalog' (resolved from 'auto')
  score_chunk: int  # catalogue scoring: target positions per chunk (0 = all in one product)
  gbce_t: float
  gbce_eps: float  # gSASRec-pytorch's clamp of s(positive) (0 = none)
  learning_rate: float
  adam_b1: float
  adam_b2: float
  weight_decay: float
  grad_clip_norm: float
  loss_scale: float  # the objective's factor (acts through Adam's epsilon only)


# 'auto' scores negatives against the whole catalogue once they number at least 1/16 of it: a
# [B, P, N+1] matmul is then cheaper than gathering [B, P, K, D] rows (and scatter-adding their
# gradient back), on CPU and GPU alike.
_CATALOG_SCORING_RATIO = 16


def step_config(config: ml_collections.ConfigDict, n_items: int) -> StepConfig:
  name, n_negatives, kwargs = resolve_loss(config)
  scoring = config.get('negative_scoring', 'auto')
  if scoring == 'auto':
    scoring = 'catalog' if _CATALOG_SCORING_RATIO * n_negatives >= n_items + 1 else 'gather'
  return StepConfig(
    loss=name,
    n_negatives=n_negatives,
    loss_kwargs=tuple(sorted(kwargs.items())),
    negatives_exclude_seen=bool(config.negatives_exclude_seen),
    negative_scoring=scoring,
    score_chunk=int(config.get('negative_score_chunk', 0)),
    gbce_t=float(config.gbce_t),
    gbce_eps=float(config.get('gbce_eps', 0.0)),
    learning_rate=float(config.learning_rate),
    adam_b1=float(config.adam_b1),
    adam_b2=float(config.adam_b2),
    weight_decay=float(config.weight_decay),
    grad_clip_norm=float(config.grad_clip_norm),
    loss_scale=float(config.get('loss_scale', 1.0)),
  )


def make_loss(cfg: StepConfig, n_items: int) -> Callable:
  """`loss(model, h, targets, key, exclude) -> (loss_sum, n_targets)` of `cfg.loss`.

  `targets` [B, P] is 0 wherever nothing is predicted. Sampled losses score each target against
  `cfg.n_negatives` negatives of its own, drawn uniformly outside the row's `exclude` items when
  `cfg.negatives_exclude_seen` (SASRec and Caser sample outside the user's items; gSASRec
  samples from the whole catalogue).
  """
  loss_fn = seq_losses.LOSSES[cfg.loss]
  kwargs = dict(cfg.loss_kwargs)

  def loss(model, h, targets, key, exclude):
    mask = targets > 0  # [B, P]
    if cfg.loss == 'ce':
      scores = model.score_catalog(h)  # [B, P or 1, N+1]
      scores = jnp.broadcast_to(scores, targets.shape + scores.shape[-1:])  # [B, P, N+1]
      return loss_fn(scores, targets)
    negatives = seq_losses.sample_negatives(
      key,
      targets.shape + (cfg.n_negatives,),
      n_items,
      exclude=exclude if cfg.negatives_exclude_seen else None,
    )  # [B, P, K]
    if cfg.negative_scoring == 'catalog' and cfg.score_chunk > 0:
      pos, neg, mask = _score_live_chunks(model, h, targets, negatives, cfg.score_chunk)
    elif cfg.negative_scoring == 'catalog':
      scores = model.score_catalog(h)  # [B, P or 1, N+1]
      scores = jnp.broadcast_to(scores, targets.shape + scores.shape[-1:])  # [B, P, N+1]
      pos, neg = _pick_scores(scores, targets, negatives)  # [B, P], [B, P, K]
    else:
      pos = model.score_items(h, targets[..., None])[..., 0]  # [B, P]
      neg = model.score_items(h, negatives)  # [B, P, K]
    if cfg.loss == 'gbce':
      return loss_fn(pos, neg, mask, n_items, cfg.gbce_t, positive_eps=cfg.gbce_eps, **kwargs)
    return loss_fn(pos, neg, mask, **kwargs)

  return loss


def _pick_scores(
  scores: jax.Array, targets: jax.Array, negatives: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """scores [..., N+1], targets [...], negatives [..., K] -> (target [...], negative [..., K])."""
  pos = jnp.take_along_axis(scores, targets[..., None], axis=-1)[..., 0]
  return pos, jnp.take_along_axis(scores, negatives, axis=-1)


def _score_live_chunks(
  model, h: jax.Array, targets: jax.Array, negatives: jax.Array, chunk: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Target and negative scores from catalogue products over only the positions with a target.

  The B x P positions are reordered so that those with a target come first (a stable order) and
  cut into chunks of `chunk`; a chunk without a target skips its [chunk, N+1] product, forward
  and backward (`lax.cond`). Left-padded sequences leave about half of ML-1M's positions without
  a target at max_len 200, so this halves the catalogue work of gSASRec's step. The sampled
  losses sum over positions, so they take the reordered scores as they are.

  Returns:
    `pos` [1, C*S], `neg` [1, C*S, K] and `mask` [1, C*S] in the new order (C chunks of S).
  """
  b, p = targets.shape
  k = negatives.shape[-1]
  h = jnp.broadcast_to(h, (b, p, h.shape[-1])).reshape(b * p, -1)  # [BP, D]
  flat_targets = targets.reshape(-1)  # [BP]
  order = jnp.argsort(flat_targets == 0, stable=True)  # [BP] positions with a target first
  n_chunks = -(-(b * p) // chunk)
  order = jnp.pad(order, (0, n_chunks * chunk - b * p))  # the tail repeats position 0, masked
  live = jnp.arange(n_chunks * chunk) < jnp.sum(flat_targets > 0)  # [C*S]
  xs = (
    h[order].reshape(n_chunks, chunk, -1),  # [C, S, D]
    flat_targets[order].reshape(n_chunks, chunk),  # [C, S]
    negatives.reshape(b * p, k)[order].reshape(n_chunks, chunk, k),  # [C, S, K]
    live.reshape(n_chunks, chunk),  # [C, S]
  )

  def one_chunk(carry, x):
    h_c, t_c, n_c, live_c = x

    def score():
      return _pick_scores(model.score_catalog(h_c), t_c, n_c)  # [S], [S, K]

    def skip():
      return jax.tree.map(lambda a: jnp.zeros(a.shape, a.dtype), jax.eval_shape(score))

    return carry, jax.lax.cond(live_c[0], score, skip)

  _, (pos, neg) = jax.lax.scan(one_chunk, None, xs)  # [C, S], [C, S, K]
  return pos.reshape(1, -1), neg.reshape(1, -1, k), live[None]


def make_optimizer(cfg: StepConfig) -> optax.GradientTransformation:
  """Adam with L2 as the papers' PyTorch/TF code adds it: `weight_decay * w` joins the gradient."""
  parts = []
  if cfg.grad_clip_norm > 0:
    parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  if cfg.weight_decay > 0:
    parts.append(optax.add_decayed_weights(cfg.weight_decay))
  parts += [
    optax.scale_by_adam(b1=cfg.adam_b1, b2=cfg.adam_b2, eps=1e-8),
    optax.scale(-cfg.learning_rate),
  ]
  return optax.chain(*parts)


def init_state(model: nnx.Module, tx: optax.GradientTransformation, seed: int) -> TrainState:
  _, params, others = nnx.split(model, nnx.Param, ...)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    others=others,
    opt_state=tx.init(params),
    rng=jax.random.fold_in(jax.random.PRNGKey(seed), 1),
  )


def make_update_fn(
  graphdef, loss_fn: Callable, tx: optax.GradientTransformation, loss_scale: float = 1.0
) -> Callable:
  """The pure update `update_fn(state, examples, batch_indices [B], valid [B]) -> (state, stats)`.

  Gathers the batch from the device-resident examples, takes the model's training view, and
  applies one Adam step to the mean loss over the batch's target positions. A step with no
  target (the padded tail of an epoch) changes nothing but the step count. `stats` is
  `[loss_sum, n_targets]`, unscaled. `loss_scale` multiplies the objective; under Adam it changes
  the updates only through the epsilon (see `sequence_base.py`).
  """

  def update_fn(state: TrainState, examples: dict, batch_indices: jax.Array, valid: jax.Array):
    batch = {k: v[batch_indices] for k, v in examples.items()}
    k_view, k_neg = jax.random.split(jax.random.fold_in(state.rng, state.step))
    exclude = jnp.concatenate(
      [batch['inputs'], batch.get('targets', batch['inputs'][:, :0])], axis=1
    )  # [B, L'] items of the example the negatives avoid

    def objective(params):
      model = nnx.merge(graphdef, params, state.others)
      h, targets = model.training_view(batch, k_view)  # [B, P, D], [B, P]
      targets = jnp.where(valid[:, None], targets, 0)
      loss_sum, n = loss_fn(model, h, targets, k_neg, exclude)
      mean = loss_sum / jnp.maximum(n, 1).astype(jnp.float32)
      return mean * loss_scale, (loss_sum, n)

    grads, (loss_sum, n) = jax.grad(objective, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    active = n > 0
    params, opt_state = jax.tree.map(
      lambda new, old: jnp.where(active, new, old),
      (params, opt_state),
      (state.params, state.opt_state),
    )
    new_state = dataclasses.replace(state, step=state.step + 1, params=params, opt_state=opt_state)
    return new_state, jnp.stack([loss_sum.astype(jnp.float32), n.astype(jnp.float32)])

  return update_fn


@functools.lru_cache(maxsize=16)
def make_train_chunk(graphdef, cfg: StepConfig, n_items: int, steps_per_call: int) -> Callable:
  """Jitted `chunk(state, examples, indices [S, B], valid [S, B], start)`: `steps_per_call` steps.

  Runs `make_update_fn`'s update over steps `start .. start + steps_per_call` of the epoch's
  batches in one `lax.scan`, the state donated; returns `(state, [loss_sum, n_targets])` summed
  over the steps. Cached per model structure and hyperparameters, so runs in one process share
  the compiled function.
  """
  tx = make_optimizer(cfg)
  update_fn = make_update_fn(graphdef, make_loss(cfg, n_items), tx, cfg.loss_scale)

  def chunk(state, examples, indices, valid, start):
    idx = jax.lax.dynamic_slice_in_dim(indices, start, steps_per_call)  # [C, B]
    ok = jax.lax.dynamic_slice_in_dim(valid, start, steps_per_call)  # [C, B]
    state, stats = jax.lax.scan(lambda s, x: update_fn(s, examples, *x), state, (idx, ok))
    return state, jnp.sum(stats, axis=0)

  return jax.jit(chunk, donate_argnums=0)
