"""BERT4Rec (Sun et al., CIKM 2019): a bidirectional transformer trained as a cloze task, in NNX.

The network is BERT as in the official code (FeiSun/BERT4Rec, `modeling.py`, `run.py`):

* input: item embedding plus a learned position embedding, LayerNorm, dropout (the token-type
  embedding of BERT is left out: with a single type it is one constant vector added at every
  position, which the position table absorbs exactly);
* each layer (post-LN): multi-head self-attention over the non-padding slots, output dense,
  dropout, `LN(x + attention)`; dense to `intermediate` with exact (erf) GELU, dense back,
  dropout, `LN(x + ffn)`;
* output: dense + GELU + LayerNorm, then a dot product with the input item embedding plus a
  per-item output bias.

Initialisation is the official truncated normal (stddev 0.02) for every table and kernel, zero
biases; layer norms use TF's epsilon 1e-12. The mask token is id N+1; its row exists in the
item table but is never scored (`score_catalog` covers ids 0..N).

Masking (`mask_items`) is drawn on device from the step's key and reproduces the official data
generator (`gen_data_fin.py`): every training row masks exactly
`min(max_predictions, max(1, round(n * mask_prob)))` of its `n` items, a uniformly random
subset, each replaced by the mask token (the official `mask_prob=1.0`: no random or kept
tokens). With probability `mask_last_prob` a row instead masks only its newest item, which is
the paper's extra "mask the last item" samples: the official generator adds one such copy per
user next to `dupe_factor=10` random ones, so 1/11 of its rows. A row is therefore never left
without a target unless it has no items at all (an all-padding row, which contributes nothing).

Differences from the official code: windows are left-padded (the official code right-pads), so
positions are numbered from the newest item (`right_aligned_positions`); the padding row of the
item table is zeroed on lookup; scores and the full softmax cover items 1..N only, not the mask
and other special tokens of the official vocabulary.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from seqrec.models.attention import (
  LayerNorm,
  MultiHeadAttention,
  right_aligned_positions,
  split_keys,
  truncated_normal,
)
from seqrec.models.gru4rec import dropout as apply_dropout

_LN_EPSILON = 1e-12
_INIT_STDDEV = 0.02


def mask_items(
  key: jax.Array,
  inputs: jax.Array,
  mask_token: int,
  mask_prob: float,
  max_predictions: int,
  mask_last_prob: float = 0.0,
) -> tuple[jax.Array, jax.Array]:
  """Draws BERT4Rec's cloze masks for a batch of left-padded windows.

  Args:
    key: random key.
    inputs: [B, L] item ids, 0 = padding.
    mask_token: the id that replaces a masked item (N+1).
    mask_prob: fraction of each row's items to mask (rounded half up, at least one).
    max_predictions: the most positions masked in one row.
    mask_last_prob: probability that a row masks only its newest (last) item instead.

  Returns:
    (masked inputs [B, L], targets [B, L]: the original item at masked positions, else 0).
  """
  key_order, key_last = jax.random.split(key)
  valid = inputs > 0  # [B, L]
  n_valid = jnp.sum(valid, axis=-1)  # [B]
  # Python 2's round() (the official generator's) rounds halves up.
  n_mask = jnp.floor(n_valid.astype(jnp.float32) * mask_prob + 0.5).astype(jnp.int32)
  n_mask = jnp.where(n_valid > 0, jnp.clip(n_mask, 1, max_predictions), 0)
  # A uniformly random order of each row's items: padding sorts after every item.
  noise = jnp.where(valid, jax.random.uniform(key_order, inputs.shape), 2.0)  # [B, L]
  order = jnp.argsort(jnp.argsort(noise, axis=-1), axis=-1)  # [B, L] rank of each slot
  chosen = order < n_mask[:, None]  # [B, L]
  if mask_last_prob > 0.0:
    last_only = jax.random.bernoulli(key_last, mask_last_prob, inputs.shape[:1])  # [B]
    newest = valid & (jnp.arange(inputs.shape[1]) == inputs.shape[1] - 1)[None]  # [B, L]
    chosen = jnp.where(last_only[:, None], newest, chosen)
  targets = jnp.where(chosen, inputs, 0)
  return jnp.where(chosen, mask_token, inputs), targets


class BERT4RecLayer(nnx.Module):
  """One post-LN BERT encoder layer."""

  def __init__(
    self,
    hidden: int,
    n_heads: int,
    intermediate: int,
    dropout: float,
    attention_dropout: float,
    *,
    rngs: nnx.Rngs,
  ):
    init = truncated_normal(_INIT_STDDEV)
    self.dropout_rate = float(dropout)
    self.attention_dropout = float(attention_dropout)
    self.attention = MultiHeadAttention(
      hidden, n_heads, output_projection=True, kernel_init=init, rngs=rngs
    )
    self.attention_norm = LayerNorm(hidden, _LN_EPSILON)
    self.ffn_in = nnx.Linear(hidden, intermediate, kernel_init=init, rngs=rngs)
    self.ffn_out = nnx.Linear(intermediate, hidden, kernel_init=init, rngs=rngs)
    self.ffn_norm = LayerNorm(hidden, _LN_EPSILON)

  def __call__(self, x: jax.Array, visible: jax.Array, key: jax.Array | None) -> jax.Array:
    """x [B, L, D], visible [B, 1, L] bool -> [B, L, D]."""
    k_probs, k_att, k_ffn = split_keys(key, 3)
    att = self.attention(x, x, visible, self.attention_dropout, k_probs)
    x = self.attention_norm(x + apply_dropout(att, self.dropout_rate, k_att))
    ffn = self.ffn_out(jax.nn.gelu(self.ffn_in(x), approximate=False))
    return self.ffn_norm(x + apply_dropout(ffn, self.dropout_rate, k_ffn))


class BERT4Rec(nnx.Module):
  """BERT4Rec over a catalogue of `n_items` items (ids 1..N, 0 = padding, N+1 = mask).

  Args:
    n_items: catalogue size N.
    max_len: longest window the position table covers (paper, ML-1M: 200).
    hidden: model width D (paper: 64).
    n_layers: encoder layers (paper: 2).
    n_heads: attention heads (paper: 2).
    intermediate: feed-forward width (official: 4 * D = 256).
    dropout: dropout on the embeddings and after each sub-layer (paper: 0.1; the official ML-1M
      run config uses 0.2).
    attention_dropout: dropout on the attention probabilities (paper: 0.1; official ML-1M: 0.2).
    mask_prob: cloze masking proportion (paper, ML-1M: 0.2).
    max_predictions: most masked positions per row (official ML-1M: 40).
    mask_last_prob: share of rows that mask only their newest item (official generator: 1/11).
    rngs: parameter RNG.
  """

  def __init__(
    self,
    n_items: int,
    *,
    max_len: int = 200,
    hidden: int = 64,
    n_layers: int = 2,
    n_heads: int = 2,
    intermediate: int = 256,
    dropout: float = 0.1,
    attention_dropout: float = 0.1,
    mask_prob: float = 0.2,
    max_predictions: int = 40,
    mask_last_prob: float = 1.0 / 11.0,
    rngs: nnx.Rngs,
  ):
    if not 0.0 < mask_prob <= 1.0:
      raise ValueError(f'mask_prob must be in (0, 1], got {mask_prob}')
    if not 0.0 <= mask_last_prob <= 1.0:
      raise ValueError(f'mask_last_prob must be in [0, 1], got {mask_last_prob}')
    init = truncated_normal(_INIT_STDDEV)
    self.n_items = int(n_items)
    self.mask_token = int(n_items) + 1
    self.max_len = int(max_len)
    self.dropout_rate = float(dropout)
    self.mask_prob = float(mask_prob)
    self.max_predictions = int(max_predictions)
    self.mask_last_prob = float(mask_last_prob)
    self.item_embedding = nnx.Param(init(rngs.params(), (n_items + 2, hidden)))  # ids 0..N+1
    self.position_embedding = nnx.Param(init(rngs.params(), (max_len, hidden)))
    self.embedding_norm = LayerNorm(hidden, _LN_EPSILON)
    self.layers = nnx.List(
      [
        BERT4RecLayer(hidden, n_heads, intermediate, dropout, attention_dropout, rngs=rngs)
        for _ in range(n_layers)
      ]
    )
    self.head = nnx.Linear(hidden, hidden, kernel_init=init, rngs=rngs)
    self.head_norm = LayerNorm(hidden, _LN_EPSILON)
    self.output_bias = nnx.Param(jnp.zeros((n_items + 2,), jnp.float32))

  def item_table(self) -> jax.Array:
    """[N+2, D] item embeddings (mask token included) with the padding row forced to zero."""
    return self.item_embedding[...].at[0].set(0.0)

  def encode(self, inputs: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """Runs the encoder and the output transform over left-padded windows.

    Args:
      inputs: [B, L] ids in 0..N+1 (0 = padding), L <= max_len.
      key: dropout key; None for a deterministic pass.

    Returns:
      [B, L, D]: at each position, the query that scores the item hidden there.
    """
    return self.output_transform(self.encode_body(inputs, key))

  def encode_body(self, inputs: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """[B, L] ids -> [B, L, D] outputs of the last encoder layer (before the output transform)."""
    keys = split_keys(key, 1 + len(self.layers))
    x = self.item_table()[inputs]  # [B, L, D]
    x = x + self.position_embedding[...][right_aligned_positions(inputs.shape[1], self.max_len)]
    x = apply_dropout(self.embedding_norm(x), self.dropout_rate, keys[0])
    visible = (inputs > 0)[:, None, :]  # [B, 1, L]: every query sees every non-padding slot
    for layer, k in zip(self.layers, keys[1:], strict=True):
      x = layer(x, visible, k)
    return x

  def output_transform(self, x: jax.Array) -> jax.Array:
    """The masked-LM transform (dense, GELU, LayerNorm): [..., D] -> [..., D]."""
    return self.head_norm(jax.nn.gelu(self.head(x), approximate=False))

  def training_view(self, batch: dict, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """({'inputs' [B, L]}, key) -> (h [B, P, D], targets [B, P]) at the masked slots.

    Only the masked slots are scored, so the loss (a softmax over the whole catalogue) is paid
    for P = min(max_predictions, L) slots per row instead of L: a row masks at most
    `max_predictions` items. Slots are gathered in window order; a row with fewer masked items
    pads the rest with target 0, which every loss ignores.
    """
    key_mask, key_dropout = jax.random.split(key)
    inputs, targets = mask_items(
      key_mask,
      batch['inputs'],
      self.mask_token,
      self.mask_prob,
      self.max_predictions,
      self.mask_last_prob,
    )
    n_slots = min(self.max_predictions, inputs.shape[1])
    slots = jnp.argsort(targets == 0, axis=-1, stable=True)[:, :n_slots]  # [B, P] masked first
    x = jnp.take_along_axis(self.encode_body(inputs, key_dropout), slots[..., None], axis=1)
    return self.output_transform(x), jnp.take_along_axis(targets, slots, axis=1)

  def encode_last(self, history: jax.Array, users: jax.Array) -> jax.Array:
    """[B, L] left-padded histories (users unused) -> [B, D] query for the next item.

    The oldest slot is dropped and the mask token appended, so the window keeps its width and
    the model predicts the item hidden in the newest position, as in the official evaluation.
    """
    del users
    mask = jnp.full(history.shape[:1] + (1,), self.mask_token, history.dtype)
    inputs = jnp.concatenate([history[:, 1:], mask], axis=1)[:, -self.max_len :]  # [B, L]
    return self.encode(inputs)[:, -1]

  def score_items(self, h: jax.Array, items: jax.Array) -> jax.Array:
    """h [..., D] (broadcastable against items' leading axes), items [..., K] -> [..., K]."""
    rows = self.item_table()[items]  # [..., K, D]
    dots = (h[..., None, :] @ jnp.swapaxes(rows, -1, -2))[..., 0, :]
    return dots + self.output_bias[...][items]

  def score_catalog(self, h: jax.Array) -> jax.Array:
    """[..., D] -> [..., N+1] scores of ids 0..N (column 0 is padding; the mask is not scored)."""
    return h @ self.item_vectors().T + self.output_bias[...][: self.n_items + 1]

  def item_vectors(self) -> jax.Array:
    """[N+1, D] the vectors items are scored with: score = query . vector + bias."""
    return self.item_table()[: self.n_items + 1]
