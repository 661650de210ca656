"""The weight mapping of experiments/gsasrec_reference/compare.py (gSASRec-pytorch -> seqrec).

The comparison itself needs PyTorch and the official code; these tests check the mapping alone,
by writing a seqrec SASRec's weights out in the official layout and loading them back.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqrec.models.sasrec import SASRec

N, L, D = 30, 12, 16


def _model(seed):
  return SASRec(
    N,
    max_len=L,
    hidden=D,
    n_blocks=2,
    dropout=0.0,
    separate_output_embedding=True,
    init='torch',
    rngs=nnx.Rngs(seed),
  )


def _as_official(model, compare):
  """The model's weights named, shaped and padded as gSASRec-pytorch's `state_dict`."""
  flat = compare.flat_params(nnx.state(model, nnx.Param))
  params = {}
  for path, name, transpose in compare.parameter_pairs(len(model.blocks)):
    value = np.asarray(flat[path].get_value())
    value = value.T if transpose else value
    if name in compare.ITEM_TABLES:
      value = np.concatenate([value, np.full((1, D), 7.0, np.float32)])  # the pad row N + 1
    params[name] = value
  return params


def test_weights_round_trip(experiment_script):
  compare = experiment_script('gsasrec_reference/compare')
  source, target = _model(0), _model(1)
  compare.official_to_seqrec(target, _as_official(source, compare))
  inputs = jax.random.randint(jax.random.PRNGKey(0), (3, L), 0, N + 1)
  h_source, h_target = source.encode(inputs), target.encode(inputs)
  np.testing.assert_array_equal(h_source, h_target)
  np.testing.assert_array_equal(source.score_catalog(h_source), target.score_catalog(h_target))
  # Every weight was replaced (no parameter of the second model survived).
  leaves = jax.tree.leaves(nnx.state(target, nnx.Param))
  assert all(
    jnp.array_equal(a, b)
    for a, b in zip(jax.tree.leaves(nnx.state(source, nnx.Param)), leaves, strict=True)
  )


def test_bad_state_dicts_are_named(experiment_script):
  compare = experiment_script('gsasrec_reference/compare')
  params = _as_official(_model(0), compare)
  del params['transformer_blocks.1.dense2.bias']
  with pytest.raises(ValueError, match=r'lacks \[.transformer_blocks.1.dense2.bias.\]'):
    compare.official_to_seqrec(_model(1), params)
  params = _as_official(_model(0), compare)
  params['seq_norm.weight'] = np.ones(D + 1, np.float32)
  with pytest.raises(ValueError, match='seq_norm.weight .* does not fit seqrec final_norm.scale'):
    compare.official_to_seqrec(_model(1), params)
