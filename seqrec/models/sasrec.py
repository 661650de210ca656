"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over a user's item sequence, in NNX.

The structure follows the official TF code (kang205/SASRec, `model.py` / `modules.py`), which
pmixer/SASRec.pytorch mirrors:

* input: item embedding times sqrt(D) plus a learned position embedding, dropout, then every
  padding slot zeroed (the "timeline mask");
* each block: `q = LN(x)`; causal multi-head attention with queries from `q` and keys/values from
  the unnormalised `x`, padding keys hidden, dropout on the attention probabilities, no output
  projection; residual `x = q + attention`; padding zeroed; `f = LN(x)`; point-wise
  `ReLU(f W1 + b1)` with dropout, `W2 + b2` with dropout; residual `x = f + FFN(f)`; padding
  zeroed (the residuals add the *normalised* inputs, as both official codes do);
* a final LN; scores are dot products with the (shared, unscaled) item embedding, no bias.
  With `separate_output_embedding=True` they use a second item table instead, the option the
  SASRec paper describes and gSASRec-pytorch uses by default (`reuse_item_embeddings=False`).

Initialisation (`init='tf'`, the default) is TF's default Glorot-uniform for the embedding tables
and the dense kernels, zero biases, unit layer-norm scales; layer norms use the official epsilon
1e-8. `init='torch'` is gSASRec-pytorch's instead: N(0, 1) embedding tables added *unscaled* (no
sqrt(D)), PyTorch's `nn.Linear` default U(+-1/sqrt(fan_in)) for kernels and biases, layer-norm
epsilon 1e-5. The two give the same network; they start it at very different scales (input
embeddings of norm ~sqrt(D) instead of ~1.5, initial logits of spread ~sqrt(D) instead of ~0.3),
which changes how training unfolds.

Deviations, all without effect on real positions: the padding row of the item table is zeroed
on lookup (the TF code does the same by concatenating a zero row); padding slots are also
zeroed after the attention sub-layer (the TF code only zeroes them after the FFN, and nothing
reads them in between). Positions are numbered from the right end of the window (see
`right_aligned_positions`), which is the TF numbering whenever the window is `max_len` wide.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from seqrec.models.attention import (
  LayerNorm,
  MultiHeadAttention,
  glorot_uniform,
  right_aligned_positions,
  split_keys,
  torch_linear_init,
)
from seqrec.models.gru4rec import dropout as apply_dropout

INITS = ('tf', 'torch')


@dataclasses.dataclass(frozen=True)
class InitScheme:
  """How a SASRec starts: initialisers, input-embedding scale and layer-norm epsilon."""

  kernel: Callable
  bias: Callable
  table: Callable  # item, position and output embedding tables
  scale_inputs: bool  # multiply the item embeddings by sqrt(D)
  ln_epsilon: float


def init_scheme(name: str, hidden: int) -> InitScheme:
  """`'tf'`: the official SASRec TF code's; `'torch'`: gSASRec-pytorch's (see module docstring)."""
  if name == 'tf':
    return InitScheme(glorot_uniform, nnx.initializers.zeros_init(), glorot_uniform, True, 1e-8)
  if name == 'torch':
    linear = torch_linear_init(hidden)
    return InitScheme(linear, linear, jax.nn.initializers.normal(1.0), False, 1e-5)
  raise ValueError(f'init {name!r} is not a SASRec initialisation; choose from {INITS}')


class SASRecBlock(nnx.Module):
  """One pre-LN SASRec block: causal attention then the point-wise feed-forward net."""

  def __init__(
    self, hidden: int, n_heads: int, dropout_rate: float, scheme: InitScheme, *, rngs: nnx.Rngs
  ):
    self.dropout_rate = float(dropout_rate)
    self.attention_norm = LayerNorm(hidden, scheme.ln_epsilon)
    self.attention = MultiHeadAttention(
      hidden,
      n_heads,
      output_projection=False,
      kernel_init=scheme.kernel,
      bias_init=scheme.bias,
      rngs=rngs,
    )
    self.ffn_norm = LayerNorm(hidden, scheme.ln_epsilon)
    inits = dict(kernel_init=scheme.kernel, bias_init=scheme.bias)
    self.ffn_in = nnx.Linear(hidden, hidden, **inits, rngs=rngs)
    self.ffn_out = nnx.Linear(hidden, hidden, **inits, rngs=rngs)

  def __call__(
    self, x: jax.Array, visible: jax.Array, valid: jax.Array, key: jax.Array | None
  ) -> jax.Array:
    """x [B, L, D], visible [B, L, L] bool, valid [B, L, 1] float -> [B, L, D]."""
    k_att, k_ffn1, k_ffn2 = split_keys(key, 3)
    q = self.attention_norm(x)
    x = q + self.attention(q, x, visible, self.dropout_rate, k_att)
    x = x * valid
    f = self.ffn_norm(x)
    hidden = apply_dropout(jax.nn.relu(self.ffn_in(f)), self.dropout_rate, k_ffn1)
    x = f + apply_dropout(self.ffn_out(hidden), self.dropout_rate, k_ffn2)
    return x * valid


class SASRec(nnx.Module):
  """SASRec over a catalogue of `n_items` items (ids 1..N, 0 = padding).

  Args:
    n_items: catalogue size N.
    max_len: longest window the position table covers (paper, ML-1M: 200).
    hidden: model width D (paper: 50).
    n_blocks: number of self-attention blocks (paper: 2).
    n_heads: attention heads (paper: 1).
    dropout: dropout rate on the embeddings, attention probabilities and FFN (paper, ML-1M: 0.2).
    separate_output_embedding: score items with their own output table instead of the input
      item embedding (official SASRec: shared; gSASRec: separate).
    init: 'tf' (official SASRec) or 'torch' (gSASRec-pytorch); see the module docstring.
    rngs: parameter RNG.
  """

  def __init__(
    self,
    n_items: int,
    *,
    max_len: int = 200,
    hidden: int = 50,
    n_blocks: int = 2,
    n_heads: int = 1,
    dropout: float = 0.2,
    separate_output_embedding: bool = False,
    init: str = 'tf',
    rngs: nnx.Rngs,
  ):
    scheme = init_scheme(init, hidden)
    self.n_items = int(n_items)
    self.max_len = int(max_len)
    self.hidden = int(hidden)
    self.dropout_rate = float(dropout)
    self.input_scale = float(hidden) ** 0.5 if scheme.scale_inputs else 1.0
    self.item_embedding = nnx.Param(scheme.table(rngs.params(), (n_items + 1, hidden)))
    self.position_embedding = nnx.Param(scheme.table(rngs.params(), (max_len, hidden)))
    self.blocks = nnx.List(
      [SASRecBlock(hidden, n_heads, dropout, scheme, rngs=rngs) for _ in range(n_blocks)]
    )
    self.final_norm = LayerNorm(hidden, scheme.ln_epsilon)
    self.output_embedding = (
      nnx.Param(scheme.table(rngs.params(), (n_items + 1, hidden)))
      if separate_output_embedding
      else None
    )

  def item_table(self) -> jax.Array:
    """[N+1, D] item embeddings with the padding row forced to zero."""
    table = self.item_embedding[...]
    return table.at[0].set(0.0)

  def output_table(self) -> jax.Array:
    """[N+1, D] the table items are scored with (the input table unless a separate one exists)."""
    if self.output_embedding is None:
      return self.item_table()
    return self.output_embedding[...]

  def encode(self, inputs: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Runs the network over left-padded windows.

    Args:
      inputs: [B, L] item ids, 0 = padding, L <= max_len.
      key: dropout key; None for a deterministic pass.

    Returns:
      [B, L] -> [B, L, D]: at each position, the query for the item that follows it.
    """
    keys = split_keys(key, 1 + len(self.blocks))
    length = inputs.shape[1]
    valid = (inputs > 0)[..., None].astype(jnp.float32)  # [B, L, 1]
    x = self.item_table()[inputs] * self.input_scale  # [B, L, D]
    x = x + self.position_embedding[...][right_aligned_positions(length, self.max_len)]
    x = apply_dropout(x, self.dropout_rate, keys[0]) * valid
    causal = jnp.tril(jnp.ones((length, length), bool))  # [L, L]
    visible = causal[None] & (inputs > 0)[:, None, :]  # [B, L, L]: past, non-padding keys
    for block, k in zip(self.blocks, keys[1:], strict=True):
      x = block(x, visible, valid, k)
    return self.final_norm(x)

  def training_view(self, batch: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """({'inputs' [B, L], 'targets' [B, L]}, key) -> (h [B, L, D], targets [B, L])."""
    return self.encode(batch['inputs'], key), batch['targets']

  def encode_last(self, history: jax.Array, users: jax.Array) -> jax.Array:
    """[B, L] left-padded histories (users unused) -> [B, D] query for the next item."""
    del users
    return self.encode(history[:, -self.max_len :])[:, -1]

  def score_items(self, h: jax.Array, items: jax.Array) -> jax.Array:
    """h [..., D] (broadcastable against items' leading axes), items [..., K] -> [..., K]."""
    rows = self.output_table()[items]  # [..., K, D]
    return (h[..., None, :] @ jnp.swapaxes(rows, -1, -2))[..., 0, :]

  def score_catalog(self, h: jax.Array) -> jax.Array:
    """[..., D] -> [..., N+1] scores of every id (column 0 is padding)."""
    return h @ self.item_vectors().T

  def item_vectors(self) -> jax.Array:
    """[N+1, D] the vectors items are scored with: score = query . vector."""
    return self.output_table()
