"""seqrec's SASRec + gBCE against a batch exported from gSASRec-pytorch: outputs, loss, gradients.

    python experiments/gsasrec_reference/compare.py --batch=/tmp/gsasrec_batch.npz

The batch comes from `official_side.py export`. Its weights are loaded into a seqrec SASRec of
the same shape (`init='torch'`, separate output table); the official pad id N + 1 becomes
seqrec's 0. Printed: the largest difference of the hidden states over real positions, the loss
(seqrec sums the K + 1 terms of a target, the official code averages them, so seqrec's is
divided by K + 1), and per parameter the largest gradient difference relative to the largest
official gradient. `--gbce_eps=0` drops the official clamp of s(pos) to show what it changes.
Exits with status 1 when a difference exceeds `--tolerance`.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import nnx

from seqrec import seq_losses
from seqrec.models.sasrec import SASRec

_BATCH = flags.DEFINE_string('batch', None, 'npz written by official_side.py export.')
_EPS = flags.DEFINE_float('gbce_eps', 1e-10, "seqrec's gbce positive_eps (0: no clamp).")
_TOL = flags.DEFINE_float('tolerance', 1e-4, 'Largest relative difference accepted.')
flags.mark_flag_as_required('batch')


def parameter_pairs(n_blocks: int) -> list[tuple[str, str, bool]]:
  """(seqrec parameter path, gSASRec-pytorch `state_dict` name, transposed) for every weight.

  `nn.Linear` stores its kernel as [out, in]; seqrec's is [in, out], hence the transposes.
  """
  pairs = [
    ('item_embedding', 'item_embedding.weight', False),
    ('output_embedding', 'output_embedding.weight', False),
    ('position_embedding', 'position_embedding.weight', False),
    ('final_norm.scale', 'seq_norm.weight', False),
    ('final_norm.bias', 'seq_norm.bias', False),
  ]
  sublayers = [
    ('attention_norm', 'first_norm'),
    ('ffn_norm', 'second_norm'),
    ('attention.query', 'multihead_attention.query_proj'),
    ('attention.key', 'multihead_attention.key_proj'),
    ('attention.value', 'multihead_attention.val_proj'),
    ('ffn_in', 'dense1'),
    ('ffn_out', 'dense2'),
  ]
  for i in range(n_blocks):
    for ours, theirs in sublayers:
      weight = 'scale' if ours.endswith('norm') else 'kernel'
      official = f'transformer_blocks.{i}.{theirs}'
      pairs.append((f'blocks.{i}.{ours}.{weight}', f'{official}.weight', weight == 'kernel'))
      pairs.append((f'blocks.{i}.{ours}.bias', f'{official}.bias', False))
  return pairs


ITEM_TABLES = ('item_embedding.weight', 'output_embedding.weight')


def flat_params(tree) -> dict:
  """{'blocks.0.ffn_in.kernel': leaf, ...} of an nnx state (parameters or their gradients)."""
  return {'.'.join(map(str, path)): leaf for path, leaf in nnx.to_flat_state(tree)}


def to_seqrec_layout(name: str, value: np.ndarray, transpose: bool, n_items: int) -> np.ndarray:
  """An official array (weight or gradient) in seqrec's layout: kernels transposed, item tables
  cut to their first N + 1 rows (official: 0 unused, 1..N items, N + 1 padding; seqrec: 0
  padding, 1..N items)."""
  value = value.T if transpose else value
  return value[: n_items + 1] if name in ITEM_TABLES else value


def official_to_seqrec(model: SASRec, params: dict) -> list[tuple[str, str, bool]]:
  """Copies gSASRec-pytorch's `state_dict` arrays into `model` in place (`to_seqrec_layout`).

  Returns:
    `parameter_pairs` of the model, for comparing gradients.

  Raises:
    ValueError: when a parameter is missing on either side or a shape differs.
  """
  pairs = parameter_pairs(len(model.blocks))
  state = nnx.state(model, nnx.Param)
  flat = flat_params(state)
  unmatched = sorted(set(flat) - {p for p, _, _ in pairs})
  if unmatched:
    raise ValueError(f'seqrec parameters without an official counterpart: {unmatched}')
  missing = sorted({n for _, n, _ in pairs} - set(params))
  if missing:
    raise ValueError(f'the official state_dict lacks {missing}')
  for path, name, transpose in pairs:
    value = to_seqrec_layout(name, params[name], transpose, model.n_items)
    expected = flat[path].get_value().shape
    if value.shape != expected:
      raise ValueError(f'official {name} {value.shape} does not fit seqrec {path} {expected}')
    flat[path].set_value(jnp.asarray(value))
  nnx.update(model, state)
  return pairs


def main(argv):
  del argv
  z = np.load(_BATCH.value)
  params = {k[len('param/') :]: z[k] for k in z.files if k.startswith('param/')}
  grads = {k[len('grad/') :]: z[k] for k in z.files if k.startswith('grad/')}
  n, t = int(z['n_items']), float(z['t'])
  pad = n + 1
  max_len, dim = params['position_embedding.weight'].shape
  n_blocks = len({k.split('.')[1] for k in params if k.startswith('transformer_blocks.')})
  model = SASRec(
    n,
    max_len=max_len,
    hidden=dim,
    n_blocks=n_blocks,
    n_heads=1,
    dropout=0.0,
    separate_output_embedding=True,
    init='torch',
    rngs=nnx.Rngs(0),
  )
  pairs = official_to_seqrec(model, params)
  inputs = jnp.asarray(np.where(z['inputs'] == pad, 0, z['inputs']))  # [B, L]
  targets = jnp.where(inputs > 0, jnp.asarray(z['labels']), 0)  # [B, L]
  negatives = jnp.asarray(z['negatives'])  # [B, L, K]
  n_neg = negatives.shape[-1]

  real = np.asarray(inputs > 0)
  hidden = np.asarray(model.encode(inputs))
  h_diff = np.abs(hidden - z['hidden'])[real].max() / np.abs(z['hidden'][real]).max()
  print(f'hidden states: max difference {h_diff:.2e} (relative to the largest value)')

  def loss_fn(m):
    h = m.encode(inputs)  # [B, L, D]
    pos = m.score_items(h, targets[..., None])[..., 0]  # [B, L]
    neg = m.score_items(h, negatives)  # [B, L, K]
    total, count = seq_losses.gbce(pos, neg, targets > 0, n, t, positive_eps=_EPS.value)
    return total / count / (n_neg + 1)

  loss, g = nnx.value_and_grad(loss_fn)(model)
  loss_diff = abs(float(loss) - float(z['loss'])) / abs(float(z['loss']))
  print(
    f'loss: seqrec {float(loss):.8f}, official {float(z["loss"]):.8f} (relative {loss_diff:.2e})'
  )
  flat = flat_params(g)
  largest = max(np.abs(v).max() for v in grads.values())
  worst = 0.0
  for path, name, transpose in pairs:
    ours = np.asarray(flat[path].get_value())
    theirs = to_seqrec_layout(name, grads[name], transpose, n)
    # A key bias adds the same logit to every key of a query, so its exact gradient is zero and
    # only rounding is left on both sides: such near-zero gradients are measured against 1e-3 of
    # the largest gradient of the batch instead of their own size.
    scale = max(np.abs(theirs).max(), 1e-3 * largest)
    rel = np.abs(ours - theirs).max() / scale
    worst = max(worst, rel)
    print(f'gradient {path:34s} {rel:.2e}  (largest official entry {np.abs(theirs).max():.1e})')
  verdict = max(h_diff, loss_diff, worst)
  print(f'largest relative difference {verdict:.2e} (tolerance {_TOL.value:g})')
  sys.exit(0 if verdict <= _TOL.value else 1)


if __name__ == '__main__':
  jax.config.update('jax_default_matmul_precision', 'highest')
  app.run(main)
