"""BPR-MF for sessions as in the GRU4Rec paper: session factors to train, item means to predict."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from seqrec.baselines.params import require
from seqrec.baselines.protocol import Prefixes
from seqrec.data import Events


def sgd_steps(params, session, positive, negative, valid, hyper):
  """Minibatch BPR SGD over a [M, B] grid of training triples (one `lax.scan` step per row).

  Each triple (session s, clicked item p, sampled item n) contributes the official per-event
  update, from the parameters as they stand before its minibatch:

      c = 1 - sigmoid(U_s . (I_p - I_n))
      U_s += lr (c (I_p - I_n) - lambda_session U_s)
      I_p += lr (c U_s - lambda_item I_p)
      I_n += lr (-c U_s - lambda_item I_n)

  and the contributions of a minibatch are summed (scatter-add). With B = 1 this is exactly the
  official sequential SGD.

  Args:
    params: `(U [S, D], I [N, D])` float32 session and item factors.
    session: [M, B] int32 training session of each triple.
    positive: [M, B] int32 its clicked item.
    negative: [M, B] int32 its sampled item.
    valid: [M, B] bool; False rows (padding) change nothing.
    hyper: `(learning_rate, lambda_session, lambda_item)` float32 scalars.

  Returns:
    `(params, log_likelihood)`: the updated factors and the sum of log sigmoid(x) over the valid
    triples, each x taken before its minibatch's update.
  """
  lr, lambda_session, lambda_item = hyper

  def step(carry, batch):
    sessions, items = carry
    s, p, n, ok = batch
    weight = ok.astype(jnp.float32)[:, None]  # [B, 1]
    u, ip, ineg = sessions[s], items[p], items[n]  # [B, D]
    x = jnp.sum(u * (ip - ineg), axis=1)  # [B]
    c = (1.0 - jax.nn.sigmoid(x))[:, None]  # [B, 1]
    sessions = sessions.at[s].add(weight * lr * (c * (ip - ineg) - lambda_session * u))
    items = items.at[p].add(weight * lr * (c * u - lambda_item * ip))
    items = items.at[n].add(weight * lr * (-c * u - lambda_item * ineg))
    return (sessions, items), jnp.sum(jnp.where(ok, jax.nn.log_sigmoid(x), 0.0))

  params, log_lik = jax.lax.scan(step, params, (session, positive, negative, valid))
  return params, jnp.sum(log_lik)


@functools.partial(jax.jit, static_argnames=('batch_size', 'n_items'))
def _epoch(params, session, item, key, hyper, *, batch_size: int, n_items: int):
  """One pass over the training events in a random order, each with a uniform negative item."""
  n_events = session.shape[0]
  k_order, k_negative = jax.random.split(key)
  order = jax.random.permutation(k_order, n_events)  # [E]
  negative = jax.random.randint(k_negative, (n_events,), 0, n_items, jnp.int32)  # [E]
  n_steps = math.ceil(n_events / batch_size)
  pad = n_steps * batch_size - n_events

  def grid(x):  # [E] -> [M, B], padded at the end
    return jnp.pad(x, (0, pad)).reshape(n_steps, batch_size)

  valid = grid(jnp.ones((n_events,), bool))
  return sgd_steps(params, grid(session[order]), grid(item[order]), grid(negative), valid, hyper)


class BPRMF:
  """BPR-MF as GRU4Rec's `baselines.BPR`, the GRU4Rec paper's matrix-factorisation baseline.

  Training treats every training session as a user: session and item factors are learned with BPR
  on (session, clicked item, sampled item) triples, one per training event, in a new random order
  every iteration. A prediction represents the prefix by the mean of the item factors of its clicks
  (repeats counted) and scores every item by the dot product with its factors. Official defaults:
  n_factors=100, n_iterations=10, learning_rate=0.01, lambda_session=lambda_item=0, sigma=0.05
  with uniform initialisation in [-sigma, sigma] (`init_normal`: normal with std sigma).

  Deviations from the official code, none of which the paper describes:
  - SGD runs in minibatches of `batch_size` triples whose updates are computed from the same
    parameters and summed (one `lax.scan` step each); `batch_size=1` is the official per-event SGD.
  - Negatives are drawn uniformly from the catalogue. The official code takes the item of the
    training row at a uniform index below n_items (`data.ItemIdx.values[randint(n_items)]`), which
    depends on the row order of its merged frame.
  - The official item bias `bI` is never updated there (it stays 0), so it is left out.
  The session factor table has one row per training session ([S, n_factors] float32).
  """

  def __init__(
    self,
    n_factors: int = 100,
    n_iterations: int = 10,
    learning_rate: float = 0.01,
    lambda_session: float = 0.0,
    lambda_item: float = 0.0,
    sigma: float = 0.05,
    init_normal: bool = False,
    batch_size: int = 32,
    seed: int = 0,
  ):
    require(int(n_factors) > 0, 'n_factors', n_factors, 'a positive integer')
    require(int(n_iterations) >= 0, 'n_iterations', n_iterations, 'a non-negative integer')
    require(float(learning_rate) > 0, 'learning_rate', learning_rate, 'a positive number')
    for name, value in (('lambda_session', lambda_session), ('lambda_item', lambda_item)):
      require(float(value) >= 0, name, value, 'a non-negative number')
    require(float(sigma) > 0, 'sigma', sigma, 'a positive number')
    require(int(batch_size) > 0, 'batch_size', batch_size, 'a positive integer')
    self.n_factors = int(n_factors)
    self.n_iterations = int(n_iterations)
    self.hyper = (float(learning_rate), float(lambda_session), float(lambda_item))
    self.sigma = float(sigma)
    self.init_normal = bool(init_normal)
    self.batch_size = int(batch_size)
    self.seed = int(seed)

  def init_params(self, n_sessions: int, n_items: int, key: jax.Array):
    """`(U [S, D], I [N, D])` float32 initial session and item factors."""
    k_sessions, k_items = jax.random.split(key)
    shape = lambda rows: (rows, self.n_factors)
    if self.init_normal:
      draw = lambda k, rows: self.sigma * jax.random.normal(k, shape(rows), jnp.float32)
    else:
      draw = lambda k, rows: jax.random.uniform(
        k, shape(rows), jnp.float32, -self.sigma, self.sigma
      )
    return draw(k_sessions, n_sessions), draw(k_items, n_items)

  def fit(self, train: Events, n_items: int) -> None:
    lengths = train.session_lengths()
    session = jnp.asarray(np.repeat(np.arange(len(lengths)), lengths), jnp.int32)  # [E]
    item = jnp.asarray(train.item, jnp.int32)  # [E]
    key, k_init = jax.random.split(jax.random.PRNGKey(self.seed))
    params = self.init_params(len(lengths), n_items, k_init)
    hyper = tuple(jnp.float32(v) for v in self.hyper)
    for iteration in range(self.n_iterations):
      key, k_epoch = jax.random.split(key)
      params, log_lik = _epoch(
        params, session, item, k_epoch, hyper, batch_size=self.batch_size, n_items=n_items
      )
      mean = float(log_lik) / len(item)
      logging.info('bprmf iteration %d: mean log sigmoid %.4f', iteration, mean)
      if not (math.isfinite(mean) and all(bool(jnp.all(jnp.isfinite(p))) for p in params)):
        raise FloatingPointError(
          f'BPR-MF diverged in iteration {iteration}: the mean log sigmoid is {mean} (or the '
          f'factors hold NaN or infinite values) at learning rate {self.hyper[0]!r}'
        )
    self.item_factors = np.asarray(params[1])  # [N, D]
    self._item_factors = jnp.asarray(self.item_factors)

  def score(self, prefixes: Prefixes) -> np.ndarray:
    d = prefixes.distinct
    mean_of_clicks = prefixes.item_matrix(d.count / prefixes.lengths[d.rows])  # [P, N]
    query = (mean_of_clicks @ self.item_factors).astype(np.float32)  # [P, D]
    return _dot_items(jnp.asarray(query), self._item_factors)  # [P, N] float32, kept by JAX


@jax.jit
def _dot_items(query: jax.Array, item_factors: jax.Array) -> jax.Array:
  """[P, N] = query [P, D] . item_factors [N, D]^T in full float32 precision."""
  return jnp.dot(query, item_factors.T, precision=jax.lax.Precision.HIGHEST)
