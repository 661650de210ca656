"""Transformer pieces shared by SASRec and BERT4Rec: layer norm, multi-head attention, helpers."""

import jax
import jax.numpy as jnp
from flax import nnx

from seqrec.models.gru4rec import dropout

# Added to the logits of keys a query must not see. Large enough that exp() underflows to exactly
# zero next to any real logit, small enough that a row with no visible key stays finite (uniform).
_NEG_INF = -1e9

glorot_uniform = jax.nn.initializers.glorot_uniform()  # TF's default for variables and layers


def torch_linear_init(fan_in: int):
  """PyTorch's `nn.Linear` default for kernels and biases alike: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  (Its kaiming-uniform kernel init with a = sqrt(5) reduces to this bound.)
  """
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def truncated_normal(stddev: float):
  """TF's `truncated_normal_initializer(stddev)`: N(0, stddev^2) truncated at two deviations."""
  return jax.nn.initializers.truncated_normal(stddev=stddev)


def split_keys(key: jax.Array | None, n: int) -> tuple[jax.Array | None, ...]:
  """`n` independent dropout keys, or `n` Nones for a deterministic pass."""
  if key is None:
    return (None,) * n
  return tuple(jax.random.split(key, n))


def right_aligned_positions(length: int, max_len: int) -> jax.Array:
  """[length] position ids of a left-padded window, counted so that the newest slot is max_len-1.

  The batchers left-pad, so the most recent item always sits in the last column. Numbering the
  columns from the right keeps its position embedding the same whatever the window width.

  Raises:
    ValueError: when the window is wider than the position table.
  """
  if length > max_len:
    raise ValueError(f'a window of {length} items does not fit max_len={max_len}')
  return jnp.arange(max_len - length, max_len)


class LayerNorm(nnx.Module):
  """Layer normalisation over the last axis with a learned scale and offset.

  Written out (rather than `nnx.LayerNorm`) so that the variance is the two-pass one of the
  official TF code and the epsilon is exactly theirs (SASRec 1e-8, BERT 1e-12).
  """

  def __init__(self, features: int, epsilon: float):
    self.epsilon = float(epsilon)
    self.scale = nnx.Param(jnp.ones((features,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))

  def __call__(self, x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + self.epsilon) * self.scale[...] + self.bias[...]


class MultiHeadAttention(nnx.Module):
  """Scaled dot-product attention with `n_heads` heads split from one `hidden`-wide projection.

  Args:
    hidden: model width D (split into heads of D / n_heads).
    n_heads: number of heads.
    output_projection: add BERT's dense layer after the heads are concatenated (SASRec's
      official code has none).
    kernel_init: initialiser of the projection kernels.
    bias_init: initialiser of their biases (None: zeros).
    rngs: parameter RNG.

  Setting `record_probs = True` (analysis only; training never does) makes each call sow its
  attention probabilities, before dropout, as an `nnx.Intermediate` named `probs`.
  """

  def __init__(
    self,
    hidden: int,
    n_heads: int,
    *,
    output_projection: bool,
    kernel_init,
    bias_init=None,
    rngs: nnx.Rngs,
  ):
    if hidden % n_heads:
      raise ValueError(f'hidden={hidden} is not a multiple of n_heads={n_heads}')
    self.n_heads = int(n_heads)
    self.output_projection = bool(output_projection)
    self.record_probs = False

    bias_init = nnx.initializers.zeros_init() if bias_init is None else bias_init

    def dense():
      return nnx.Linear(hidden, hidden, kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)

    self.query = dense()
    self.key = dense()
    self.value = dense()
    if self.output_projection:
      self.output = dense()

  def __call__(
    self,
    queries: jax.Array,
    keys: jax.Array,
    visible: jax.Array,
    dropout_rate: float,
    key: jax.Array | None,
  ) -> jax.Array:
    """Attends from `queries` to `keys` (which also give the values).

    Args:
      queries: [B, Lq, D].
      keys: [B, Lk, D].
      visible: [B, Lq or 1, Lk] bool: which keys each query may attend to.
      dropout_rate: dropout on the attention probabilities.
      key: dropout key; None for a deterministic pass.

    Returns:
      [B, Lq, D] concatenated head outputs (after the output projection when there is one).
    """
    batch, n_q, width = queries.shape
    n_k = keys.shape[1]
    head = width // self.n_heads
    q = self.query(queries).reshape(batch, n_q, self.n_heads, head)  # [B, Lq, H, D/H]
    k = self.key(keys).reshape(batch, n_k, self.n_heads, head)  # [B, Lk, H, D/H]
    v = self.value(keys).reshape(batch, n_k, self.n_heads, head)  # [B, Lk, H, D/H]
    logits = jnp.einsum('bqhd,bkhd->bhqk', q, k) / jnp.sqrt(float(head))  # [B, H, Lq, Lk]
    logits = jnp.where(visible[:, None], logits, _NEG_INF)
    probs = jax.nn.softmax(logits, axis=-1)  # [B, H, Lq, Lk]
    if self.record_probs:
      self.sow(nnx.Intermediate, 'probs', probs)
    probs = dropout(probs, dropout_rate, key)
    out = jnp.einsum('bhqk,bkhd->bqhd', probs, v).reshape(batch, n_q, width)  # [B, Lq, D]
    if self.output_projection:
      out = self.output(out)
    return out
