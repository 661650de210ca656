"""Losses of the user-sequence models and their negative sampler, as pure jittable functions.

Every loss scores B x P target positions, of which those with a target (`mask`, i.e.
`targets > 0`) count, and returns `(loss_sum, n_targets)`: the per-target losses summed over the
counted positions and their number, both float32 scalars, so that the caller chooses the
normalisation (the official SASRec, Caser and BERT4Rec codes all divide by the number of
targets). Positions that do not count contribute exactly zero loss and zero gradient, whatever
their scores hold (inf and NaN included).

Sampled losses take `pos` [B, P] (the target's score) and `neg` [B, P, K] (the scores of K
sampled items for that target). With K > 1 negatives, `negative_reduction` says whether their
terms are summed ('sum', the papers' formulas) or averaged ('mean': the official Caser code
averages its negatives, so that its per-target loss is `-log s(pos) - mean_k log(1 - s(neg_k))`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

NEGATIVE_REDUCTIONS = ('sum', 'mean')


def _reduce_negatives(terms: jax.Array, negative_reduction: str) -> jax.Array:
  """[B, P, K] -> [B, P]."""
  if negative_reduction == 'sum':
    return jnp.sum(terms, axis=-1)
  if negative_reduction == 'mean':
    return jnp.mean(terms, axis=-1)
  raise ValueError(
    f'negative_reduction={negative_reduction!r} is not one of {", ".join(NEGATIVE_REDUCTIONS)}'
  )


def _sanitise(
  pos: jax.Array, neg: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Zeroes the scores of positions that do not count, so they cannot leak NaN into gradients."""
  mask = mask.astype(bool)
  return jnp.where(mask, pos, 0.0), jnp.where(mask[..., None], neg, 0.0), mask


def _total(per_target: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
  loss = jnp.sum(jnp.where(mask, per_target, 0.0), dtype=jnp.float32)
  return loss, jnp.sum(mask, dtype=jnp.float32)


def bce(
  pos: jax.Array, neg: jax.Array, mask: jax.Array, *, negative_reduction: str = 'sum'
) -> tuple[jax.Array, jax.Array]:
  """Binary cross-entropy of SASRec / Caser: `-log s(pos) - sum_k log(1 - s(neg_k))`.

  Args:
    pos: [B, P] target scores.
    neg: [B, P, K] negative scores.
    mask: [B, P] bool, the positions that count.
    negative_reduction: 'sum' or 'mean' over the K negatives.

  Returns:
    (loss summed over counted positions, number of counted positions).
  """
  pos, neg, mask = _sanitise(pos, neg, mask)
  negatives = _reduce_negatives(jax.nn.softplus(neg), negative_reduction)
  return _total(jax.nn.softplus(-pos) + negatives, mask)


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
  """gSASRec's exponent `beta = alpha (t (1 - 1/alpha) + 1/alpha)`, `alpha = K / (N - 1)`.

  Equivalently `beta = 1 - t (1 - alpha)`: t = 0 gives 1 (plain BCE), t = 1 gives alpha.
  """
  alpha = n_negatives / (n_items - 1)
  return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce(
  pos: jax.Array,
  neg: jax.Array,
  mask: jax.Array,
  n_items: int,
  t: float,
  *,
  negative_reduction: str = 'sum',
  positive_eps: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
  """Generalised BCE of gSASRec (Petrov & Macdonald, RecSys 2023).

  The positive term is `-log(s(pos)^beta) = beta * softplus(-pos)` with `beta = gbce_beta(K,
  n_items, t)` for the K negatives in `neg`; the negative terms are BCE's. (The gSASRec code
  additionally averages over the K + 1 terms of a position, a constant factor.)

  gSASRec-pytorch clamps `s(pos)` into `[eps, 1 - eps]` (eps = 1e-10) before raising it to the
  power `-beta`. `positive_eps=eps` reproduces the lower clamp: a target scoring below
  `log(eps / (1 - eps))` (about -23.03) costs `beta * 23.03` and gets no gradient. That happens
  to ~2% of targets at gSASRec-pytorch's N(0, 1) start and hardly ever after. (The upper clamp
  only touches targets whose loss is below `beta * 1e-10`; it is not reproduced.)

  Args:
    pos: [B, P] target scores.
    neg: [B, P, K] scores of K uniformly sampled negatives.
    mask: [B, P] bool, the positions that count.
    n_items: catalogue size N.
    t: calibration parameter in [0, 1] (gSASRec, ML-1M: 0.75).
    negative_reduction: 'sum' or 'mean' over the K negatives.
    positive_eps: 0 (no clamp) or gSASRec-pytorch's eps; see above.

  Returns:
    (loss summed over counted positions, number of counted positions).
  """
  beta = gbce_beta(neg.shape[-1], n_items, t)
  pos, neg, mask = _sanitise(pos, neg, mask)
  if positive_eps > 0:
    pos = jnp.maximum(pos, math.log(positive_eps / (1.0 - positive_eps)))  # [B, P]
  negatives = _reduce_negatives(jax.nn.softplus(neg), negative_reduction)
  return _total(beta * jax.nn.softplus(-pos) + negatives, mask)


def sampled_softmax(
  pos: jax.Array, neg: jax.Array, mask: jax.Array, log_q: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy of the target against its K sampled negatives (a softmax over K + 1 items).

  Args:
    pos: [B, P] target scores.
    neg: [B, P, K] negative scores.
    mask: [B, P] bool, the positions that count.
    log_q: None, or log sampling probabilities broadcastable to [B, P, 1 + K] (target first),
      subtracted from the logits (the logQ correction of non-uniform sampling; a uniform
      sampler needs none).

  Returns:
    (loss summed over counted positions, number of counted positions).
  """
  pos, neg, mask = _sanitise(pos, neg, mask)
  logits = jnp.concatenate([pos[..., None], neg], axis=-1)  # [B, P, 1+K]
  if log_q is not None:
    logits = logits - log_q
  per_target = jax.nn.logsumexp(logits, axis=-1) - logits[..., 0]
  return _total(per_target, mask)


def full_softmax(scores: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Cross-entropy over the whole catalogue, items 1..N (the padding column 0 is left out).

  Args:
    scores: [B, P, N+1] catalogue scores (`score_catalog`).
    targets: [B, P] target ids, 0 = no target.

  Returns:
    (loss summed over positions with a target, number of such positions).
  """
  mask = targets > 0
  scores = jnp.where(mask[..., None], scores, 0.0)
  target_scores = jnp.take_along_axis(scores, targets[..., None], axis=-1)[..., 0]  # [B, P]
  per_target = jax.nn.logsumexp(scores[..., 1:], axis=-1) - target_scores
  return _total(per_target, mask)


def sbpr(
  pos: jax.Array, neg: jax.Array, mask: jax.Array, *, negative_reduction: str = 'sum'
) -> tuple[jax.Array, jax.Array]:
  """Sequential BPR of TransRec: `-log s(pos - neg_k)`, over the K negatives.

  Args:
    pos: [B, P] target scores.
    neg: [B, P, K] negative scores.
    mask: [B, P] bool, the positions that count.
    negative_reduction: 'sum' or 'mean' over the K negatives.

  Returns:
    (loss summed over counted positions, number of counted positions).
  """
  pos, neg, mask = _sanitise(pos, neg, mask)
  terms = jax.nn.softplus(neg - pos[..., None])  # [B, P, K] = -log s(pos - neg)
  return _total(_reduce_negatives(terms, negative_reduction), mask)


def sample_negatives(
  key: jax.Array,
  shape: tuple[int, ...],
  n_items: int,
  exclude: jax.Array | None = None,
) -> jax.Array:
  """Draws item ids uniformly from 1..N, or from the ids a row does not exclude.

  With `exclude`, each row's draws are uniform over the ids of 1..N absent from its exclude
  row, exactly and without rejection rounds: draw a rank r among the allowed ids and map it to
  the id by counting the excluded ids it must skip (a binary search in the sorted, de-duplicated
  exclude row). Entries of `exclude` outside 1..N (padding 0, a mask token) are ignored. A row
  that excludes every item draws uniformly from all of 1..N instead.

  Args:
    key: random key.
    shape: output shape; with `exclude`, its first axis is the B rows of `exclude`.
    n_items: catalogue size N.
    exclude: None, or [B, L] ids per row to avoid (e.g. the user's sequence).

  Returns:
    int32 ids of `shape`.
  """
  if exclude is None:
    return jax.random.randint(key, shape, 1, n_items + 1, dtype=jnp.int32)
  if exclude.shape[0] != shape[0]:
    raise ValueError(f'exclude has {exclude.shape[0]} rows but shape asks for {shape[0]}')
  key_rank, key_fallback = jax.random.split(key)
  rows, width = exclude.shape
  sentinel = n_items + 1
  ex = exclude.astype(jnp.int32)
  ex = jnp.sort(jnp.where((ex >= 1) & (ex <= n_items), ex, sentinel), axis=-1)  # [B, L]
  repeated = jnp.concatenate([jnp.zeros((rows, 1), bool), ex[:, 1:] == ex[:, :-1]], axis=-1)
  ex = jnp.sort(jnp.where(repeated, sentinel, ex), axis=-1)  # sorted unique ids, then sentinels
  is_id = ex <= n_items
  n_allowed = n_items - jnp.sum(is_id, axis=-1, dtype=jnp.int32)  # [B]
  # skip[j] = number of allowed ids below the j-th excluded id; non-decreasing along the row.
  skip = jnp.where(is_id, ex - 1 - jnp.arange(width, dtype=jnp.int32), jnp.iinfo(jnp.int32).max)
  flat = (rows, -1)
  u = jax.random.uniform(key_rank, shape).reshape(flat)  # [B, M]
  limit = jnp.maximum(n_allowed, 1)[:, None]
  rank = jnp.minimum(jnp.floor(u * limit).astype(jnp.int32), limit - 1)  # [B, M]
  # Straight-line binary search: the default method is a while loop, nested in the training scan.
  search = functools.partial(jnp.searchsorted, side='right', method='scan_unrolled')
  passed = jax.vmap(search)(skip, rank)  # [B, M]
  ids = rank + 1 + passed.astype(jnp.int32)
  fallback = jax.random.randint(key_fallback, ids.shape, 1, n_items + 1, dtype=jnp.int32)
  ids = jnp.where((n_allowed > 0)[:, None], ids, fallback)
  return ids.reshape(shape)


LOSSES = {
  'bce': bce,
  'gbce': gbce,
  'sampled_ce': sampled_softmax,
  'ce': full_softmax,
  'sbpr': sbpr,
}

# Each model's own loss as (name in LOSSES, negatives per target) and the keyword options that
# make it the official one: SASRec one negative per position outside the user's sequence;
# Caser three per target (`neg_samples=3`), averaged; TransRec one; BERT4Rec the full softmax.
DEFAULT_LOSS = {
  'sasrec': ('bce', 1),
  'bert4rec': ('ce', 0),
  'caser': ('bce', 3),
  'transrec': ('sbpr', 1),
}
DEFAULT_LOSS_KWARGS = {
  'sasrec': {},
  'bert4rec': {},
  'caser': {'negative_reduction': 'mean'},
  'transrec': {},
}
