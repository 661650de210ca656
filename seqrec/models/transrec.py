"""TransRec (He, Kang & McAuley, RecSys 2017): users as translations between items, in NNX.

Items are points `gamma_i` in R^K; a user u moves from the previous item i by the translation
`t + t_u` (a global vector plus a personal offset), and the next item j is scored by
`beta_j - d(gamma_i + t + t_u, gamma_j)` with an item bias `beta_j` and the squared Euclidean
distance d (the paper's "L2" variant; its L1 variant is not implemented).

Item points live in the unit L2 ball, as in the paper: the paper renormalises `gamma_i` to
`gamma_i / max(1, ||gamma_i||)` after its SGD steps; here every lookup applies that map (so the
scores only ever see points inside the ball whatever the optimiser does to the raw table), and
`project_to_unit_ball` is available to clip the raw table itself after an update. The
translations and biases are unconstrained.

The query `h` is the translated point `a = gamma_i + t + t_u`, so that
`score(a, j) = beta_j - ||a||^2 + 2 a . gamma_j - ||gamma_j||^2`: the whole catalogue is one
matrix product plus per-row and per-item terms.

Initialisation (the official C++ release is not at hand): item points Glorot-normal, biases
and both translations zero, so that every user starts from the global translation. The padding
id 0 has the zero point and its bias is never a target (it is masked by the evaluator).
"""

import jax
import jax.numpy as jnp
from flax import nnx


def project_to_unit_ball(points: jax.Array) -> jax.Array:
  """[..., K] -> [..., K]: `x / max(1, ||x||)`, with a finite gradient at x = 0."""
  sq = jnp.sum(jnp.square(points), axis=-1, keepdims=True)
  outside = sq > 1.0
  scale = jnp.where(outside, jax.lax.rsqrt(jnp.where(outside, sq, 1.0)), 1.0)
  return points * scale


class TransRec(nnx.Module):
  """TransRec over `n_items` items (ids 1..N, 0 = padding) and `n_users` users.

  Args:
    n_items: catalogue size N.
    n_users: number of users U.
    dim: dimension K of the transition space (paper: 10).
    rngs: parameter RNG.
  """

  def __init__(self, n_items: int, n_users: int, *, dim: int = 10, rngs: nnx.Rngs):
    self.n_items = int(n_items)
    self.dim = int(dim)
    init = jax.nn.initializers.glorot_normal()
    self.item_points = nnx.Param(init(rngs.params(), (n_items + 1, dim)))  # gamma
    self.item_bias = nnx.Param(jnp.zeros((n_items + 1,), jnp.float32))  # beta
    self.translation = nnx.Param(jnp.zeros((dim,), jnp.float32))  # t
    self.user_translation = nnx.Param(jnp.zeros((n_users, dim), jnp.float32))  # t_u

  def points(self) -> jax.Array:
    """[N+1, K] item points inside the unit ball, the padding point at the origin."""
    return project_to_unit_ball(self.item_points[...]).at[0].set(0.0)

  def translate(self, previous: jax.Array, users: jax.Array) -> jax.Array:
    """previous [...] item ids, users [...] -> [..., K] translated points `gamma_i + t + t_u`."""
    return self.points()[previous] + self.translation[...] + self.user_translation[...][users]

  def training_view(self, batch: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """({'inputs' [B, 1], 'targets' [B, 1], 'users' [B]}, key unused) -> (h [B, 1, K], targets)."""
    del key
    return self.translate(batch['inputs'], batch['users'][:, None]), batch['targets']

  def encode_last(self, history: jax.Array, users: jax.Array) -> jax.Array:
    """[B, L] left-padded histories, [B] users -> [B, K] query from the newest item."""
    return self.translate(history[:, -1], users)

  def score_items(self, h: jax.Array, items: jax.Array) -> jax.Array:
    """h [..., K] (broadcastable against items' leading axes), items [..., K'] -> [..., K']."""
    rows = self.points()[items]  # [..., K', K]
    diff = h[..., None, :] - rows
    return self.item_bias[...][items] - jnp.sum(jnp.square(diff), axis=-1)

  def score_catalog(self, h: jax.Array) -> jax.Array:
    """[..., K] -> [..., N+1]: the squared distance expanded around one matrix product."""
    points = self.item_vectors()  # [N+1, K]
    item_term = self.item_bias[...] - jnp.sum(jnp.square(points), axis=-1)  # [N+1]
    query_term = jnp.sum(jnp.square(h), axis=-1, keepdims=True)  # [..., 1]
    return 2.0 * (h @ points.T) - query_term + item_term

  def item_vectors(self) -> jax.Array:
    """[N+1, K] the item points: score = bias - squared distance from the query."""
    return self.points()
