"""Tests of `SequenceRun.attention`: the self-attention maps of SASRec and BERT4Rec."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from seqrec import analysis
from seqrec.models.bert4rec import BERT4Rec
from seqrec.models.caser import Caser
from seqrec.models.sasrec import SASRec

N_ITEMS, MAX_LEN = 12, 6
ITEM_IDS = np.array([0] + [100 + i for i in range(1, N_ITEMS + 1)])  # raw id of each dense id
USER_IDS = np.array([7, 8])


def make_run(model, name: str) -> analysis.SequenceRun:
  config = ml_collections.ConfigDict({'model': name, name: {'max_len': MAX_LEN, 'L': MAX_LEN}})
  return analysis.SequenceRun(model, config, ITEM_IDS, USER_IDS, 'tiny-run')


def sasrec_run(n_heads: int = 1) -> analysis.SequenceRun:
  model = SASRec(N_ITEMS, max_len=MAX_LEN, hidden=8, n_blocks=2, n_heads=n_heads, rngs=nnx.Rngs(0))
  return make_run(model, 'sasrec')


def first_block_probs(model: SASRec, window: np.ndarray) -> np.ndarray:
  """[H, W, W] the first block's attention computed from its parameters (the reference)."""
  inputs = jnp.asarray(window)[None]  # [1, W]
  x = model.item_table()[inputs] * model.input_scale  # [1, W, D]
  x = x + model.position_embedding[...][MAX_LEN - window.size :]
  x = x * (inputs > 0)[..., None]
  block = model.blocks[0]
  q_in = block.attention_norm(x)
  att = block.attention
  heads = att.n_heads
  q = att.query(q_in).reshape(1, window.size, heads, -1)  # [1, W, H, D/H]
  k = att.key(x).reshape(1, window.size, heads, -1)
  logits = jnp.einsum('bqhd,bkhd->bhqk', q, k)[0] / jnp.sqrt(q.shape[-1])  # [H, W, W]
  visible = np.tril(np.ones((window.size, window.size), bool)) & (window > 0)[None, :]
  logits = jnp.where(visible[None], logits, -jnp.inf)
  return np.asarray(jax.nn.softmax(logits, axis=-1))


@pytest.mark.parametrize('n_heads', [1, 2])
def test_sasrec_maps_are_its_causal_attention(n_heads):
  run = sasrec_run(n_heads)
  history = [103, 105, 101, 112]
  maps = run.attention(history)
  assert maps.items == history
  assert maps.probs.shape == (2, n_heads, 4, 4)
  np.testing.assert_allclose(maps.probs.sum(-1), 1.0, rtol=1e-5)
  assert np.all(np.triu(maps.probs, k=1) == 0.0)  # no position sees a later one
  window = np.array([0, 0, 3, 5, 1, 12])  # the left-padded window the model reads
  expected = first_block_probs(run.model, window)[:, 2:, 2:]
  np.testing.assert_allclose(maps.probs[0], expected, rtol=1e-5, atol=1e-6)


def test_sasrec_map_keeps_the_last_max_len_items():
  run = sasrec_run()
  history = [101, 102, 103, 104, 105, 106, 107, 108]
  maps = run.attention(history)
  assert maps.items == history[-MAX_LEN:]
  assert maps.probs.shape == (2, 1, MAX_LEN, MAX_LEN)
  np.testing.assert_allclose(maps.probs, run.attention(history[-MAX_LEN:]).probs)


def test_reading_maps_leaves_the_model_as_it_was():
  run = sasrec_run()
  history = [103, 105, 101]
  before = run.score_history(history)
  graph_before = nnx.graphdef(run.model)
  run.attention(history)
  assert nnx.graphdef(run.model) == graph_before  # no flag left on, nothing sown left behind
  assert not nnx.state(run.model, nnx.Intermediate)
  np.testing.assert_array_equal(run.score_history(history), before)


def test_bert4rec_maps_cover_the_window_with_its_mask_token():
  model = BERT4Rec(N_ITEMS, max_len=MAX_LEN, hidden=8, n_layers=2, n_heads=2, rngs=nnx.Rngs(1))
  run = make_run(model, 'bert4rec')
  history = [103, 105, 101]
  maps = run.attention(history)
  # encode_last drops the oldest slot of the window and appends the mask token.
  assert maps.items == [103, 105, 101, None]
  assert maps.probs.shape == (2, 2, 4, 4)
  np.testing.assert_allclose(maps.probs.sum(-1), 1.0, rtol=1e-5)
  assert np.all(maps.probs > 0)  # bidirectional: every position sees every other one


def test_models_without_attention_are_refused():
  model = Caser(N_ITEMS, 2, L=MAX_LEN, hidden=4, n_vertical=2, n_horizontal=2, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='tiny-run holds a caser model'):
    make_run(model, 'caser').attention([101, 102])


def test_ids_are_checked_not_coerced():
  run = sasrec_run()
  # A digit string is the same integer id; a float is refused, never truncated onto another item.
  np.testing.assert_array_equal(run.dense_items(['101', 102]), [1, 2])
  with pytest.raises(KeyError, match=r'item id 101\.0 is not an integer'):
    run.top_k([101.0])
  with pytest.raises(KeyError, match=r'user id 7\.5 is not an integer'):
    run.score_history([101], user=7.5)
  with pytest.raises(ValueError, match='at least one item'):
    run.score_history([])


def test_models_with_per_user_parameters_need_the_user():
  """Caser scores with the user's embedding: no user is an error, not silently the first user."""
  model = Caser(N_ITEMS, 2, L=MAX_LEN, hidden=4, n_vertical=2, n_horizontal=2, rngs=nnx.Rngs(0))
  run = make_run(model, 'caser')
  with pytest.raises(ValueError, match='per-user parameters: pass user='):
    run.top_k([101, 102])
  first, second = (run.score_history([101, 102], user=u.item()) for u in USER_IDS[:2])
  assert not np.array_equal(first, second)
  assert len(sasrec_run().top_k([101, 102], k=3)) == 3  # SASRec reads no user
