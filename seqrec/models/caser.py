"""Caser (Tang & Wang, WSDM 2018): convolutional embedding of the last L items, in NNX.

The structure follows the official PyTorch code (graytowne/caser_pytorch, `caser.py`):

* the last L items are embedded into an [L, d] "image";
* vertical convolution: `n_vertical` filters of shape [L, 1] (a weighted sum of the L rows),
  no activation, flattened filter-major to `n_vertical * d` features;
* horizontal convolutions: for every height h in 1..L, `n_horizontal` filters of shape [h, d]
  slid over time, `conv_activation` (ReLU), max-pooled over time;
* the concatenation goes through dropout, then `fc_activation(W1 x + b1)` to d features, which
  are concatenated with the user embedding into the 2d-wide query;
* scores are `query . W2[j] + b2[j]` with an output table W2 [N+1, 2d] and bias b2 [N+1].

Initialisation is the official one: user and item embeddings N(0, (1/d)^2), W2 N(0, (1/2d)^2),
b2 zero, and PyTorch's defaults, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for the convolution and
fully-connected weights and biases. One deviation: the padding row of the item embedding is
zeroed on lookup (the official table learns a vector for the padding id 0 that left-pads short
sequences).
"""

import jax
import jax.numpy as jnp
from flax import nnx

from seqrec.models.gru4rec import dropout as apply_dropout

ACTIVATIONS = {
  'iden': lambda x: x,
  'relu': jax.nn.relu,
  'tanh': jnp.tanh,
  'sigm': jax.nn.sigmoid,
}


def torch_default_init(fan_in: int):
  """PyTorch's default initialiser of Linear/Conv weights and biases: U(-b, b), b = fan_in^-1/2."""
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def normal(stddev: float):
  def init(key, shape, dtype=jnp.float32):
    return stddev * jax.random.normal(key, shape, dtype)

  return init


class Caser(nnx.Module):
  """Caser over `n_items` items (ids 1..N, 0 = padding) and `n_users` users.

  Args:
    n_items: catalogue size N.
    n_users: number of users U.
    L: number of previous items the model reads (paper: 5).
    hidden: embedding size d (paper: 50); the query is 2d wide.
    n_vertical: vertical filters (paper: 4).
    n_horizontal: horizontal filters per height (paper: 16).
    dropout: dropout on the convolution features (paper: 0.5).
    conv_activation: activation of the horizontal convolutions ('relu', 'tanh', 'sigm', 'iden').
    fc_activation: activation of the fully-connected layer (same choices).
    rngs: parameter RNG.
  """

  def __init__(
    self,
    n_items: int,
    n_users: int,
    *,
    L: int = 5,
    hidden: int = 50,
    n_vertical: int = 4,
    n_horizontal: int = 16,
    dropout: float = 0.5,
    conv_activation: str = 'relu',
    fc_activation: str = 'relu',
    rngs: nnx.Rngs,
  ):
    for name, value in (('conv_activation', conv_activation), ('fc_activation', fc_activation)):
      if value not in ACTIVATIONS:
        raise ValueError(f'{name}={value!r} is not one of {sorted(ACTIVATIONS)}')
    if n_vertical < 1 and n_horizontal < 1:
      raise ValueError('Caser needs vertical or horizontal filters')
    self.n_items = int(n_items)
    self.L = int(L)
    self.hidden = int(hidden)
    self.n_vertical = int(n_vertical)
    self.n_horizontal = int(n_horizontal)
    self.dropout_rate = float(dropout)
    self.conv_activation = conv_activation
    self.fc_activation = fc_activation
    d = self.hidden
    self.user_embedding = nnx.Param(normal(1.0 / d)(rngs.params(), (n_users, d)))
    self.item_embedding = nnx.Param(normal(1.0 / d)(rngs.params(), (n_items + 1, d)))
    if self.n_vertical:
      init = torch_default_init(self.L)
      self.vertical_kernel = nnx.Param(init(rngs.params(), (self.n_vertical, self.L)))
      self.vertical_bias = nnx.Param(init(rngs.params(), (self.n_vertical,)))
    horizontal = []
    for height in range(1, self.L + 1):
      init = torch_default_init(height * d)
      kernel = nnx.Param(init(rngs.params(), (self.n_horizontal, height, d)))
      bias = nnx.Param(init(rngs.params(), (self.n_horizontal,)))
      horizontal.append(nnx.Dict(kernel=kernel, bias=bias))
    self.horizontal = nnx.List(horizontal if self.n_horizontal else [])
    fc_in = self.n_vertical * d + self.n_horizontal * self.L
    self.fc = nnx.Linear(
      fc_in,
      d,
      kernel_init=torch_default_init(fc_in),
      bias_init=torch_default_init(fc_in),
      rngs=rngs,
    )
    self.output_table = nnx.Param(normal(1.0 / (2 * d))(rngs.params(), (n_items + 1, 2 * d)))
    self.output_bias = nnx.Param(jnp.zeros((n_items + 1,), jnp.float32))

  def encode(self, inputs: jax.Array, users: jax.Array, key: jax.Array | None = None):
    """[B, L'] left-padded items (the last L are read), [B] users -> [B, 2d] queries.

    Args:
      inputs: [B, L'] item ids, 0 = padding; windows narrower than L are left-padded.
      users: [B] user ids.
      key: dropout key; None for a deterministic pass.
    """
    width = inputs.shape[1]
    if width < self.L:
      inputs = jnp.pad(inputs, ((0, 0), (self.L - width, 0)))
    inputs = inputs[:, -self.L :]
    table = self.item_embedding[...].at[0].set(0.0)
    emb = table[inputs]  # [B, L, d]
    features = []
    if self.n_vertical:
      vertical = jnp.einsum('bld,vl->bvd', emb, self.vertical_kernel[...])  # [B, nv, d]
      vertical = vertical + self.vertical_bias[...][None, :, None]
      features.append(vertical.reshape(emb.shape[0], -1))  # [B, nv*d], filter-major
    conv_act = ACTIVATIONS[self.conv_activation]
    for height, conv in enumerate(self.horizontal, start=1):
      steps = self.L - height + 1
      windows = jnp.stack([emb[:, a : a + steps] for a in range(height)], axis=2)  # [B, S, h, d]
      out = jnp.einsum('bshd,nhd->bsn', windows, conv['kernel'][...]) + conv['bias'][...]
      features.append(jnp.max(conv_act(out), axis=1))  # [B, nh]
    x = apply_dropout(jnp.concatenate(features, axis=-1), self.dropout_rate, key)
    z = ACTIVATIONS[self.fc_activation](self.fc(x))  # [B, d]
    return jnp.concatenate([z, self.user_embedding[...][users]], axis=-1)  # [B, 2d]

  def training_view(self, batch: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """({'inputs' [B, L], 'targets' [B, T], 'users' [B]}, key) -> (h [B, 1, 2d], targets [B, T]).

    The query is shared by the T targets of a window; `score_items` broadcasts it.
    """
    h = self.encode(batch['inputs'], batch['users'], key)
    return h[:, None, :], batch['targets']

  def encode_last(self, history: jax.Array, users: jax.Array) -> jax.Array:
    """[B, L'] left-padded histories, [B] users -> [B, 2d] query from the last L items."""
    return self.encode(history, users)

  def score_items(self, h: jax.Array, items: jax.Array) -> jax.Array:
    """h [..., 2d] (broadcastable against items' leading axes), items [..., K] -> [..., K]."""
    rows = self.output_table[...][items]  # [..., K, 2d]
    dots = (h[..., None, :] @ jnp.swapaxes(rows, -1, -2))[..., 0, :]
    return dots + self.output_bias[...][items]

  def score_catalog(self, h: jax.Array) -> jax.Array:
    """[..., 2d] -> [..., N+1] scores of every id (column 0 is padding)."""
    return h @ self.item_vectors().T + self.output_bias[...]

  def item_vectors(self) -> jax.Array:
    """[N+1, 2d] the vectors items are scored with: score = query . vector + bias."""
    return self.output_table[...]
