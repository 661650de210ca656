"""GRU4Rec (Hidasi et al. 2016; Hidasi & Karatzoglou 2018) as a Flax NNX module.

The structure follows the official PyTorch implementation (hidasib/GRU4Rec_PyTorch_Official):
three input modes (constrained embedding shared with the output table, a separate embedding, or
one-hot input into a first GRU layer), stacked GRU cells, dropout on the embedding and on every
layer's output (the dropped-out output is also the carried hidden state, as there), and scores
`h @ Wy[items].T + By[items]` over an output set of items.

The module works on *gathered rows*: callers look rows of the item tables up themselves and pass
them in. This lets the trainer take gradients with respect to exactly the rows a step touched and
update those rows alone (the official optimiser's row-sparse semantics).
"""

import jax
import jax.numpy as jnp
from flax import nnx

Hidden = tuple[jax.Array, ...]


class ItemTable(nnx.Param):
  """A parameter indexed by item id (one row per item); the optimiser updates it row-sparsely."""


def glorot_blocks(key: jax.Array, fan_in: int, units: int, n_blocks: int) -> jax.Array:
  """Uniform(-s, s), s = sqrt(6 / (fan_in + units)), drawn per gate block: [fan_in, n_blocks*units].

  This is the official code's initialisation in its default compatibility mode.
  """
  sigma = (6.0 / (fan_in + units)) ** 0.5
  return jax.random.uniform(key, (fan_in, n_blocks * units), jnp.float32, -sigma, sigma)


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
  """Inverted dropout (kept units scaled by 1/(1-rate)), the identity when key is None."""
  if key is None or rate <= 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), 0.0)


class GRUCell(nnx.Module):
  """torch.nn.GRUCell semantics, gate blocks ordered (reset, update, new)."""

  def __init__(self, in_features: int, units: int, *, rngs: nnx.Rngs):
    self.w_ih = nnx.Param(glorot_blocks(rngs.params(), in_features, units, 3))  # [In, 3H]
    self.w_hh = nnx.Param(glorot_blocks(rngs.params(), units, units, 3))  # [H, 3H]
    self.b_ih = nnx.Param(jnp.zeros((3 * units,), jnp.float32))
    self.b_hh = nnx.Param(jnp.zeros((3 * units,), jnp.float32))

  def __call__(self, x: jax.Array, h: jax.Array) -> jax.Array:
    gi = x @ self.w_ih[...] + self.b_ih[...]  # [B, 3H]
    gh = h @ self.w_hh[...] + self.b_hh[...]  # [B, 3H]
    i_r, i_z, i_n = jnp.split(gi, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
    r = jax.nn.sigmoid(i_r + h_r)
    z = jax.nn.sigmoid(i_z + h_z)
    n = jnp.tanh(i_n + r * h_n)
    return (1.0 - z) * n + z * h


class GRU4Rec(nnx.Module):
  """GRU4Rec over a catalogue of `n_items` items.

  Args:
    n_items: catalogue size N.
    layers: GRU layer sizes, e.g. (100,).
    embedding: size of a separate input embedding; 0 for none.
    constrained_embedding: share the output table Wy as the input embedding (takes precedence).
    dropout_p_embed: dropout on the input embedding.
    dropout_p_hidden: dropout on each GRU layer's output.
    context_features: width C of an optional per-slot context vector fed with the input to the
      first GRU layer at every step: concatenated to the input, so it enters all three gates;
      in one-hot mode through its own [C, 2*H0] weights into the reset and update gates only,
      as hgru4rec feeds its user state. 0 (the default) for none. HRNN's `all` variant feeds
      its user state here.
    rngs: parameter RNG.
  """

  def __init__(
    self,
    n_items: int,
    layers: tuple[int, ...] = (100,),
    embedding: int = 0,
    constrained_embedding: bool = True,
    dropout_p_embed: float = 0.0,
    dropout_p_hidden: float = 0.0,
    context_features: int = 0,
    *,
    rngs: nnx.Rngs,
  ):
    if not layers:
      raise ValueError('GRU4Rec needs at least one layer, got layers=()')
    self.n_items = n_items
    self.layers = tuple(int(u) for u in layers)
    self.dropout_p_embed = float(dropout_p_embed)
    self.dropout_p_hidden = float(dropout_p_hidden)
    self.context_features = int(context_features)
    if constrained_embedding:
      self.mode = 'constrained'
      n_input = self.layers[-1]
    elif embedding:
      self.mode = 'separate'
      n_input = int(embedding)
    else:
      self.mode = 'onehot'
      n_input = None
    self.item_out = ItemTable(glorot_blocks(rngs.params(), n_items, self.layers[-1], 1))  # Wy
    self.item_bias = ItemTable(jnp.zeros((n_items,), jnp.float32))  # By
    cells = []
    if self.mode == 'separate':
      self.item_in = ItemTable(glorot_blocks(rngs.params(), n_items, n_input, 1))  # E [N, D_e]
    elif self.mode == 'onehot':
      # First layer fed by item id: its input weights are a [N, 3*H0] table (blocks x, r, z).
      h0 = self.layers[0]
      self.item_in = ItemTable(glorot_blocks(rngs.params(), n_items, h0, 3))
      self.onehot_w_hh = nnx.Param(glorot_blocks(rngs.params(), h0, h0, 3))  # [H0, 3H0]
      self.onehot_b = nnx.Param(jnp.zeros((3 * h0,), jnp.float32))
      if self.context_features:
        self.onehot_w_ctx = nnx.Param(
          glorot_blocks(rngs.params(), self.context_features, h0, 2)
        )  # [C, 2H0]: blocks r, z
    first = 1 if self.mode == 'onehot' else 0
    for i in range(first, len(self.layers)):
      fan_in = self.layers[i - 1] if i > 0 else n_input + self.context_features
      cells.append(GRUCell(fan_in, self.layers[i], rngs=rngs))
    self.cells = nnx.List(cells)

  # -- Tables ---------------------------------------------------------------------------------

  @property
  def input_table(self) -> str:
    """Name of the item table that input ids are looked up in."""
    return 'item_out' if self.mode == 'constrained' else 'item_in'

  def input_rows(self, items: jax.Array) -> jax.Array:
    """[B] item ids -> [B, D_in] rows of the input table."""
    return getattr(self, self.input_table)[...][items]

  def output_rows(self, items: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[K] item ids -> ([K, D] output rows, [K] biases)."""
    return self.item_out[...][items], self.item_bias[...][items]

  def init_hidden(self, batch_size: int) -> Hidden:
    return tuple(jnp.zeros((batch_size, u), jnp.float32) for u in self.layers)

  # -- Forward --------------------------------------------------------------------------------

  def step(
    self,
    in_rows: jax.Array,
    hidden: Hidden,
    key: jax.Array | None = None,
    context: jax.Array | None = None,
  ) -> tuple[jax.Array, Hidden]:
    """One event for every slot.

    Args:
      in_rows: [B, D_in] rows of the input table for the current items.
      hidden: per-layer states, each [B, H_l].
      key: dropout key; None for evaluation (no dropout).
      context: [B, C] context fed to the first layer with the input (not dropped out), for a
        model built with `context_features` C > 0; None stands for zeros.

    Returns:
      (out [B, H_last] final representation, new hidden states).
    """
    n_drop = 1 + len(self.layers)
    keys = (None,) * n_drop if key is None else tuple(jax.random.split(key, n_drop))
    if self.context_features and context is None:
      context = jnp.zeros((in_rows.shape[0], self.context_features), in_rows.dtype)
    new_hidden = []
    if self.mode == 'onehot':
      h_prev = hidden[0]
      vx = in_rows + self.onehot_b[...]  # [B, 3H0]
      vh = h_prev @ self.onehot_w_hh[...]  # [B, 3H0]
      vx_x, vx_r, vx_z = jnp.split(vx, 3, axis=-1)
      vh_x, vh_r, vh_z = jnp.split(vh, 3, axis=-1)
      if self.context_features:  # the gates only, not the candidate (hgru4rec)
        ctx_r, ctx_z = jnp.split(context @ self.onehot_w_ctx[...], 2, axis=-1)  # [B, H0] each
        vx_r, vx_z = vx_r + ctx_r, vx_z + ctx_z
      r = jax.nn.sigmoid(vx_r + vh_r)
      z = jax.nn.sigmoid(vx_z + vh_z)
      cand = jnp.tanh(r * vh_x + vx_x)
      x = dropout((1.0 - z) * h_prev + z * cand, self.dropout_p_embed, keys[0])
      new_hidden.append(x)
    else:
      x = dropout(in_rows, self.dropout_p_embed, keys[0])
      if self.context_features:
        x = jnp.concatenate([x, context], axis=-1)  # [B, D_in + C]
    first = len(new_hidden)
    for j, cell in enumerate(self.cells):
      x = dropout(cell(x, hidden[first + j]), self.dropout_p_hidden, keys[1 + j])
      new_hidden.append(x)
    return x, tuple(new_hidden)

  @staticmethod
  def score_rows(out: jax.Array, rows: jax.Array, bias: jax.Array) -> jax.Array:
    """[B, D] x ([K, D], [K]) -> [B, K] scores."""
    return out @ rows.T + bias[None, :]

  def encode(self, items: jax.Array, hidden: Hidden) -> tuple[jax.Array, Hidden]:
    """Evaluation step from item ids: ([B] items, hidden) -> (out [B, D], new hidden)."""
    return self.step(self.input_rows(items), hidden, None)

  def score_all(self, out: jax.Array) -> jax.Array:
    """[B, D] -> [B, N] scores over the whole catalogue, in full float32 precision as the
    evaluator (`evaluation.target_ranks`) scores them, so analysis ranks as the test did also on
    accelerators whose default product is reduced-precision (e.g. TF32)."""
    scores = jnp.matmul(out, self.item_out[...].T, precision=jax.lax.Precision.HIGHEST)
    return scores + self.item_bias[...][None, :]  # [B, N]
