"""User-sequence models: numpy re-computations of the official forwards, masking, interface."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx
from scipy.special import erf

from seqrec import seq_losses
from seqrec.models import sequential
from seqrec.models.bert4rec import BERT4Rec, mask_items
from seqrec.models.caser import Caser
from seqrec.models.sasrec import SASRec
from seqrec.models.transrec import TransRec, project_to_unit_ball

N_ITEMS = 23
N_USERS = 5
L = 7

# -- Helpers -------------------------------------------------------------------------------------


def _windows(seed=0, rows=4, width=L, n_items=N_ITEMS):
  """[rows, width] left-padded windows with 0..width-1 leading pads (row 0 is full)."""
  rng = np.random.default_rng(seed)
  out = rng.integers(1, n_items + 1, size=(rows, width))
  for r in range(rows):
    out[r, : r % width] = 0
  return jnp.asarray(out, jnp.int32)


# Tiny versions of every model; TransRec's points are spread wide enough that some leave the ball.
_TINY_SASREC = dict(max_len=L + 2, hidden=8, n_blocks=2, n_heads=2, dropout=0.2)
_TINY_BERT4REC = dict(
  max_len=L + 2, hidden=8, n_layers=2, n_heads=2, intermediate=12, mask_prob=0.4
)
_BUILDERS = {
  'sasrec': lambda rngs: SASRec(N_ITEMS, **_TINY_SASREC, rngs=rngs),
  'bert4rec': lambda rngs: BERT4Rec(N_ITEMS, **_TINY_BERT4REC, rngs=rngs),
  'caser': lambda rngs: Caser(
    N_ITEMS, N_USERS, L=4, hidden=6, n_vertical=2, n_horizontal=3, rngs=rngs
  ),
  'transrec': lambda rngs: TransRec(N_ITEMS, N_USERS, dim=4, rngs=rngs),
}
MODELS = sorted(_BUILDERS)


@functools.cache
def _split_model(name):
  """The tiny model's structure, with every parameter drawn in numpy (no init compilation).

  Layer-norm scales are 1 + N(0, s^2) and everything else N(0, s^2) with s = 0.3 (0.8 for
  TransRec, so that some points leave the unit ball), so that zero-initialised biases and unit
  norms all matter in the comparisons with the references.
  """
  graphdef, state = nnx.split(nnx.eval_shape(lambda: _BUILDERS[name](nnx.Rngs(0))))
  rng = np.random.default_rng(0)
  spread = 0.8 if name == 'transrec' else 0.3

  def draw(path, x):
    centre = 1.0 if any(getattr(k, 'key', None) == 'scale' for k in path) else 0.0
    return jnp.asarray(centre + spread * rng.standard_normal(x.shape), x.dtype)

  return graphdef, jax.tree_util.tree_map_with_path(draw, state)


def _model(name):
  """A fresh copy of the tiny model (tests may change its parameters)."""
  graphdef, state = _split_model(name)
  return nnx.merge(graphdef, jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), state))


# Jitted entry points: one compilation per model (shared by the tests) instead of one per
# primitive in eager mode.
_encode = nnx.jit(lambda model, inputs: model.encode(inputs))
_encode_last = nnx.jit(lambda model, history, users: model.encode_last(history, users))
_catalog = nnx.jit(lambda model, h: model.score_catalog(h))
_view = nnx.jit(lambda model, batch, key: model.training_view(batch, key))
_score_items = nnx.jit(lambda model, h, items: model.score_items(h, items))


def _batch(name, seed=0, rows=4):
  """A training batch of the shape each model's batcher produces."""
  rng = np.random.default_rng(seed + 100)
  inputs = _windows(seed, rows)
  users = jnp.asarray(rng.integers(0, N_USERS, size=rows), jnp.int32)
  if name == 'sasrec':
    nxt = rng.integers(1, N_ITEMS + 1, size=(rows, 1))
    targets = jnp.concatenate([inputs[:, 1:], nxt], axis=1)
    targets = jnp.where(inputs > 0, targets, 0)
    return {'inputs': inputs, 'targets': targets, 'users': users}
  if name == 'bert4rec':
    return {'inputs': inputs, 'users': users}
  if name == 'caser':
    targets = rng.integers(1, N_ITEMS + 1, size=(rows, 3))
    return {'inputs': inputs[:, -4:], 'targets': jnp.asarray(targets, jnp.int32), 'users': users}
  targets = rng.integers(1, N_ITEMS + 1, size=(rows, 1))
  return {'inputs': inputs[:, -1:], 'targets': jnp.asarray(targets, jnp.int32), 'users': users}


def _np(x):
  return np.asarray(x, np.float64)


def _ln(x, norm, eps):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * _np(norm.scale[...]) + _np(norm.bias[...])


def _dense(x, layer):
  return x @ _np(layer.kernel[...]) + _np(layer.bias[...])


def _softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _heads(x, n_heads):
  """[L, D] -> [H, L, D/H]: consecutive chunks of the feature axis, as TF's split along axis 2."""
  return np.stack(np.split(x, n_heads, axis=-1))


# -- SASRec --------------------------------------------------------------------------------------


def ref_sasrec(model, row, scale_inputs=True, eps=1e-8):
  """The official TF forward (kang205/SASRec model.py, modules.py) for one window, in numpy.

  With `scale_inputs=False, eps=1e-5` it is gSASRec-pytorch's forward (same block structure).
  """
  length = len(row)
  d = model.hidden
  n_heads = model.blocks[0].attention.n_heads
  table = _np(model.item_embedding[...])
  table[0] = 0.0  # the TF lookup table concatenates a zero row for id 0
  positions = np.arange(model.max_len - length, model.max_len)
  mask = (row > 0)[:, None].astype(np.float64)
  seq = (
    table[row] * (d**0.5 if scale_inputs else 1.0) + _np(model.position_embedding[...])[positions]
  )
  seq = seq * mask
  for block in model.blocks:
    queries = _ln(seq, block.attention_norm, eps)
    att = block.attention
    q = _heads(_dense(queries, att.query), n_heads)
    k = _heads(_dense(seq, att.key), n_heads)
    v = _heads(_dense(seq, att.value), n_heads)
    logits = q @ np.swapaxes(k, 1, 2) / np.sqrt(d // n_heads)  # [H, L, L]
    key_masks = np.sign(np.abs(seq).sum(-1))[None, None, :]
    logits = np.where(key_masks == 0, -(2.0**32) + 1, logits)
    causal = np.tril(np.ones((length, length)))[None]
    logits = np.where(causal == 0, -(2.0**32) + 1, logits)
    probs = _softmax(logits) * np.sign(np.abs(queries).sum(-1))[None, :, None]
    out = np.concatenate(list(probs @ v), axis=-1) + queries
    f = _ln(out, block.ffn_norm, eps)
    seq = (_dense(np.maximum(_dense(f, block.ffn_in), 0.0), block.ffn_out) + f) * mask
  return _ln(seq, model.final_norm, eps)


def test_sasrec_matches_official_forward():
  model = _model('sasrec')
  inputs = _windows(1)
  out = np.asarray(_encode(model, inputs))
  for r, row in enumerate(np.asarray(inputs)):
    real = row > 0
    np.testing.assert_allclose(out[r][real], ref_sasrec(model, row)[real], rtol=2e-4, atol=2e-4)


def test_sasrec_torch_init_is_gsasrec_pytorchs():
  """`init='torch'`: N(0, 1) tables used unscaled, nn.Linear's U(+-1/sqrt(D)), LN epsilon 1e-5."""
  settings = {**_TINY_SASREC, 'hidden': 64, 'dropout': 0.0}
  model = SASRec(500, **settings, separate_output_embedding=True, init='torch', rngs=nnx.Rngs(0))
  assert model.input_scale == 1.0 and model.final_norm.epsilon == 1e-5
  for table in (model.item_embedding, model.position_embedding, model.output_embedding):
    values = np.asarray(table[...])
    assert abs(values.std() - 1.0) < 0.1 and abs(values.mean()) < 0.1
  bound = 1.0 / np.sqrt(64)
  for layer in (model.blocks[0].attention.query, model.blocks[1].ffn_out):
    for p in (layer.kernel[...], layer.bias[...]):
      p = np.asarray(p)
      assert np.abs(p).max() <= bound and np.abs(p).max() > 0.9 * bound  # biases too
  tf = SASRec(500, **settings, rngs=nnx.Rngs(0))
  assert tf.input_scale == 8.0 and np.all(np.asarray(tf.blocks[0].ffn_in.bias[...]) == 0.0)
  assert np.asarray(tf.item_embedding[...]).std() < 0.1  # Glorot over (501, 64)
  # Same network either way: the torch-initialised model matches the unscaled reference.
  tiny = SASRec(N_ITEMS, **{**_TINY_SASREC, 'dropout': 0.0}, init='torch', rngs=nnx.Rngs(1))
  inputs = _windows(1)
  out = np.asarray(_encode(tiny, inputs))
  for r, row in enumerate(np.asarray(inputs)):
    want = ref_sasrec(tiny, row, scale_inputs=False, eps=1e-5)
    np.testing.assert_allclose(out[r][row > 0], want[row > 0], rtol=2e-4, atol=2e-4)


def test_sasrec_is_causal():
  model = _model('sasrec')
  inputs = _windows(2)
  base = np.asarray(_encode(model, inputs))
  for t in range(3, L):
    changed = inputs.at[:, t].set(inputs[:, t] % N_ITEMS + 1)
    out = np.asarray(_encode(model, changed))
    np.testing.assert_array_equal(out[:, :t], base[:, :t])
    assert np.all(np.abs(out[:, t] - base[:, t]).max(-1) > 1e-4)


def test_sasrec_padding_is_invisible():
  """Whatever the padding slots' embeddings hold, the real positions' outputs do not move."""
  model = _model('sasrec')
  inputs = _windows(3).at[:, :3].set(0)  # every row starts with at least 3 padding slots
  base = np.asarray(_encode(model, inputs))
  model.item_embedding[...] = model.item_embedding[...].at[0].set(5.0)
  first = model.max_len - L  # position id of column 0
  model.position_embedding[...] = model.position_embedding[...].at[first : first + 3].add(7.0)
  out = np.asarray(_encode(model, inputs))
  real = np.asarray(inputs) > 0
  np.testing.assert_allclose(out[real], base[real], rtol=1e-5, atol=1e-5)


def test_sasrec_more_left_padding_changes_nothing():
  """A window's outputs do not depend on how many padding slots precede it."""
  model = _model('sasrec')
  short = jnp.asarray([[0, 4, 9, 2]], jnp.int32)
  wide = jnp.asarray([[0, 0, 0, 0, 4, 9, 2]], jnp.int32)
  np.testing.assert_allclose(
    _encode(model, short)[0, 1:], _encode(model, wide)[0, 4:], rtol=1e-5, atol=1e-5
  )


def test_sasrec_separate_output_embedding_scores_with_its_own_table():
  """gSASRec's option: the encoder is unchanged, the scores use the second table."""
  settings = {**_TINY_SASREC, 'n_blocks': 1, 'n_heads': 1, 'dropout': 0.0}
  shared = SASRec(N_ITEMS, **settings, rngs=nnx.Rngs(4))
  separate = SASRec(N_ITEMS, **settings, separate_output_embedding=True, rngs=nnx.Rngs(4))
  assert shared.output_embedding is None
  separate.item_embedding[...] = shared.item_embedding[...]
  separate.position_embedding[...] = shared.position_embedding[...]
  nnx.update(separate.blocks, nnx.state(shared.blocks))
  inputs = _windows(6)
  h = _encode(separate, inputs)[:, -1]
  np.testing.assert_allclose(h, _encode(shared, inputs)[:, -1], rtol=1e-6)
  out = np.asarray(separate.output_embedding[...])
  assert not np.allclose(out, np.asarray(separate.item_table()))
  np.testing.assert_allclose(_catalog(separate, h), np.asarray(h) @ out.T, rtol=1e-5, atol=1e-6)
  items = jnp.asarray([[1, 5, 9]] * h.shape[0], jnp.int32)
  np.testing.assert_allclose(
    _score_items(separate, h, items), (np.asarray(h) @ out.T)[:, [1, 5, 9]], rtol=1e-5, atol=1e-6
  )


# -- BERT4Rec ------------------------------------------------------------------------------------


def _gelu(x):
  return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def ref_bert4rec(model, row):
  """BERT (FeiSun/BERT4Rec modeling.py) plus the masked-LM transform, for one window, in numpy."""
  length = len(row)
  table = _np(model.item_embedding[...])
  table[0] = 0.0
  positions = np.arange(model.max_len - length, model.max_len)
  x = _ln(table[row] + _np(model.position_embedding[...])[positions], model.embedding_norm, 1e-12)
  n_heads = model.layers[0].attention.n_heads
  width = x.shape[-1]
  for layer in model.layers:
    att = layer.attention
    q = _heads(_dense(x, att.query), n_heads)
    k = _heads(_dense(x, att.key), n_heads)
    v = _heads(_dense(x, att.value), n_heads)
    logits = q @ np.swapaxes(k, 1, 2) / np.sqrt(width // n_heads)
    logits = logits + (1.0 - (row > 0)[None, None, :]) * -10000.0
    context = np.concatenate(list(_softmax(logits) @ v), axis=-1)
    x = _ln(_dense(context, att.output) + x, layer.attention_norm, 1e-12)
    ffn = _dense(_gelu(_dense(x, layer.ffn_in)), layer.ffn_out)
    x = _ln(ffn + x, layer.ffn_norm, 1e-12)
  return _ln(_gelu(_dense(x, model.head)), model.head_norm, 1e-12)


def test_bert4rec_matches_official_forward():
  model = _model('bert4rec')
  inputs = _windows(4).at[:, -2].set(model.mask_token)
  out = np.asarray(_encode(model, inputs))
  for r, row in enumerate(np.asarray(inputs)):
    real = row > 0
    np.testing.assert_allclose(out[r][real], ref_bert4rec(model, row)[real], rtol=2e-4, atol=2e-4)
  # The output layer: dot with the input embedding plus the output bias.
  h = _encode_last(model, _windows(4), None)
  table = _np(model.item_embedding[...])[: N_ITEMS + 1]
  table[0] = 0.0
  expected = _np(h) @ table.T + _np(model.output_bias[...])[: N_ITEMS + 1]
  np.testing.assert_allclose(_catalog(model, h), expected, rtol=1e-4, atol=1e-4)


def test_bert4rec_mask_counts_follow_the_official_generator():
  rng = np.random.default_rng(0)
  width, rows = 20, 3000
  lengths = np.where(rng.random(rows) < 0.5, width, rng.integers(0, width + 1, size=rows))
  inputs = np.where(
    np.arange(width)[None] >= width - lengths[:, None], rng.integers(1, 50, (rows, width)), 0
  )
  inputs = jnp.asarray(inputs, jnp.int32)
  masked, targets = mask_items(jax.random.key(1), inputs, 51, 0.2, 3)
  masked, targets, inputs = np.asarray(masked), np.asarray(targets), np.asarray(inputs)
  chosen = targets > 0
  expected = np.where(lengths > 0, np.clip(np.floor(lengths * 0.2 + 0.5), 1, 3), 0)
  np.testing.assert_array_equal(chosen.sum(1), expected)
  np.testing.assert_array_equal(targets[chosen], inputs[chosen])
  np.testing.assert_array_equal(masked[chosen], 51)
  np.testing.assert_array_equal(masked[~chosen], inputs[~chosen])
  assert not np.any(chosen & (inputs == 0))
  # Every column of the full rows is masked at the same rate, 3/20 (uniform positions).
  full = chosen[lengths == width]
  np.testing.assert_allclose(full.mean(0), 0.15, atol=0.04)
  np.testing.assert_allclose(full.mean(), 0.15, atol=0.01)


def test_bert4rec_masking_rate_and_last_only_rows():
  rows, width = 4000, 10
  inputs = jnp.asarray(np.random.default_rng(1).integers(1, 30, (rows, width)), jnp.int32)
  _, targets = mask_items(jax.random.key(2), inputs, 31, 0.2, 40, mask_last_prob=0.25)
  chosen = np.asarray(targets) > 0
  last_only = (chosen.sum(1) == 1) & chosen[:, -1]
  assert abs(last_only.mean() - 0.25) < 0.03
  others = chosen[~last_only]
  np.testing.assert_array_equal(others.sum(1), 2)  # round(10 * 0.2)
  assert abs(others.mean() - 0.2) < 0.01


def test_bert4rec_loss_counts_only_masked_positions():
  model = _model('bert4rec')
  batch = _batch('bert4rec')
  h, targets = _view(model, batch, jax.random.key(3))
  # Every row masks its share of items, and the gathered targets are exactly those items.
  n_valid = np.sum(np.asarray(batch['inputs']) > 0, axis=1)
  n_mask = np.minimum(np.maximum(np.floor(n_valid * model.mask_prob + 0.5), 1), 40)
  last_only = np.sum(np.asarray(targets) > 0, axis=1) == 1
  np.testing.assert_array_equal(
    np.sum(np.asarray(targets) > 0, axis=1)[~last_only], n_mask[~last_only]
  )
  for row, items in zip(np.asarray(batch['inputs']), np.asarray(targets), strict=True):
    assert set(items[items > 0]) <= set(row[row > 0])
  loss, n = seq_losses.full_softmax(_catalog(model, h), targets)
  assert n == np.sum(np.asarray(targets) > 0) > 0
  unmasked = np.argwhere((np.asarray(targets) == 0))
  noise = jnp.zeros_like(h).at[unmasked[:, 0], unmasked[:, 1]].set(3.0)
  loss_unmasked, _ = seq_losses.full_softmax(_catalog(model, h + noise), targets)
  np.testing.assert_allclose(loss_unmasked, loss, rtol=1e-6)
  masked = np.argwhere(np.asarray(targets) > 0)
  noise = jnp.zeros_like(h).at[masked[0, 0], masked[0, 1]].set(3.0)
  loss_masked, _ = seq_losses.full_softmax(_catalog(model, h + noise), targets)
  assert abs(float(loss_masked - loss)) > 1e-3


def test_bert4rec_training_view_gathers_the_masked_slots_of_the_full_pass():
  settings = {**_TINY_BERT4REC, 'dropout': 0.0, 'attention_dropout': 0.0, 'max_predictions': 3}
  model = BERT4Rec(N_ITEMS, **settings, rngs=nnx.Rngs(0))
  batch = _batch('bert4rec', rows=6)
  key = jax.random.key(7)
  h, targets = _view(model, batch, key)
  assert h.shape == (6, 3, 8) and targets.shape == (6, 3)
  masked, full_targets = mask_items(
    jax.random.split(key)[0], batch['inputs'], model.mask_token, 0.4, 3, model.mask_last_prob
  )
  full = np.asarray(_encode(model, masked))  # [B, L, D]
  for r in range(6):
    slots = np.flatnonzero(np.asarray(full_targets[r]))
    k = len(slots)
    assert k <= 3
    np.testing.assert_array_equal(np.asarray(targets[r, :k]), np.asarray(full_targets[r])[slots])
    np.testing.assert_array_equal(np.asarray(targets[r, k:]), 0)
    np.testing.assert_allclose(np.asarray(h[r, :k]), full[r, slots], rtol=1e-5, atol=1e-6)


def test_bert4rec_encode_last_appends_the_mask_token():
  model = _model('bert4rec')
  history = _windows(5)
  shifted = jnp.concatenate(
    [history[:, 1:], jnp.full((history.shape[0], 1), model.mask_token, jnp.int32)], axis=1
  )
  np.testing.assert_allclose(
    _encode_last(model, history, None), _encode(model, shifted)[:, -1], rtol=1e-6
  )
  # The oldest item falls out of the window.
  other = history.at[:, 0].set(history[:, 0] % N_ITEMS + 1)
  np.testing.assert_allclose(
    _encode_last(model, other, None), _encode_last(model, history, None), rtol=1e-6
  )


# -- Caser ---------------------------------------------------------------------------------------


def ref_caser(model, row, user):
  """The official PyTorch forward (graytowne/caser_pytorch caser.py) for one window, in numpy."""
  table = _np(model.item_embedding[...])
  table[0] = 0.0
  emb = table[row]  # [L, d]
  size = model.L
  vertical = []
  kernel, bias = _np(model.vertical_kernel[...]), _np(model.vertical_bias[...])
  for v in range(model.n_vertical):  # Conv2d(1, nv, (L, 1)): one output row of width d
    vertical.append(
      [sum(kernel[v, a] * emb[a, j] for a in range(size)) + bias[v] for j in range(model.hidden)]
    )
  horizontal = []
  for height, conv in enumerate(model.horizontal, start=1):
    kernel, bias = _np(conv['kernel'][...]), _np(conv['bias'][...])
    for n in range(model.n_horizontal):  # Conv2d(1, nh, (h, d)), ReLU, max-pool over time
      steps = [np.sum(kernel[n] * emb[s : s + height]) + bias[n] for s in range(size - height + 1)]
      horizontal.append(max(max(steps), 0.0))
  features = np.concatenate([np.ravel(vertical), horizontal])
  z = np.maximum(_dense(features, model.fc), 0.0)
  return np.concatenate([z, _np(model.user_embedding[...])[user]])


def test_caser_matches_official_forward():
  model = _model('caser')
  batch = _batch('caser', seed=6)
  out = np.asarray(_encode_last(model, batch['inputs'], batch['users']))
  for r in range(out.shape[0]):
    expected = ref_caser(model, np.asarray(batch['inputs'][r]), int(batch['users'][r]))
    np.testing.assert_allclose(out[r], expected, rtol=1e-4, atol=1e-4)
  scores = np.asarray(_catalog(model, out))
  w2, b2 = _np(model.output_table[...]), _np(model.output_bias[...])
  np.testing.assert_allclose(scores, out @ w2.T + b2, rtol=1e-4, atol=1e-4)


def test_caser_shapes_and_user_dependence():
  model = _model('caser')
  batch = _batch('caser', seed=7)
  h, targets = _view(model, batch, jax.random.key(0))
  assert h.shape == (4, 1, 12) and targets.shape == (4, 3)
  negatives = jnp.ones((4, 3, 5), jnp.int32)
  assert _score_items(model, h, negatives).shape == (4, 3, 5)
  history = jnp.tile(batch['inputs'][:1], (2, 1))
  h = _encode_last(model, history, jnp.asarray([0, 1]))
  assert np.abs(np.asarray(h[0] - h[1])).max() > 1e-3
  scores = _catalog(model, h)
  assert np.abs(np.asarray(scores[0] - scores[1])).max() > 1e-3
  # Only the last L items are read; a shorter history is left-padded.
  longer = jnp.concatenate([jnp.full((2, 3), 7, jnp.int32), history], axis=1)
  np.testing.assert_allclose(_encode_last(model, longer, jnp.asarray([0, 1])), h, rtol=1e-6)
  padded = jnp.asarray([[0, 0, 3, 4]], jnp.int32)
  np.testing.assert_allclose(
    _encode_last(model, padded[:, 2:], jnp.asarray([2])),
    _encode_last(model, padded, jnp.asarray([2])),
    rtol=1e-6,
  )


# -- TransRec ------------------------------------------------------------------------------------


def test_transrec_scores_are_the_translation_formula():
  model = _model('transrec')
  history, users = _windows(8), jnp.asarray([0, 1, 2, 4], jnp.int32)
  h = _encode_last(model, history, users)
  scores = np.asarray(_catalog(model, h))
  gamma = _np(model.item_points[...])
  beta = _np(model.item_bias[...])
  t, t_users = _np(model.translation[...]), _np(model.user_translation[...])

  def point(i):
    g = gamma[i] if i else np.zeros(gamma.shape[1])
    return g / max(1.0, np.linalg.norm(g))

  for r in range(4):
    prev, u = int(history[r, -1]), int(users[r])
    anchor = point(prev) + t + t_users[u]
    expected = [beta[j] - np.sum((anchor - point(j)) ** 2) for j in range(N_ITEMS + 1)]
    np.testing.assert_allclose(scores[r], expected, rtol=1e-4, atol=1e-4)


def test_transrec_points_stay_in_the_unit_ball():
  model = _model('transrec')
  model.item_points[...] = model.item_points[...].at[3].set(10.0)
  raw = np.asarray(model.item_points[...], np.float64)
  points = np.asarray(jax.jit(lambda p: project_to_unit_ball(p).at[0].set(0.0))(raw))
  np.testing.assert_allclose(np.asarray(nnx.jit(lambda m: m.points())(model)), points, rtol=1e-6)
  norms = np.linalg.norm(raw, axis=1)
  assert np.any(norms[1:] < 1.0) and np.sum(norms > 1.0) > 1
  np.testing.assert_allclose(points[1:], raw[1:] / np.maximum(1.0, norms[1:, None]), rtol=1e-5)
  np.testing.assert_array_equal(points[0], 0.0)
  grad = jax.grad(lambda x: jnp.sum(project_to_unit_ball(x)))(jnp.zeros((2, 4)))
  assert np.all(np.isfinite(np.asarray(grad)))


# -- Every model ---------------------------------------------------------------------------------


@pytest.mark.parametrize('name', MODELS)
def test_score_items_equals_gathered_catalog(name):
  model = _model(name)
  batch = _batch(name, seed=9)
  h, targets = _view(model, batch, jax.random.key(4))
  items = jax.random.randint(jax.random.key(5), targets.shape + (6,), 0, N_ITEMS + 1)
  catalog = _catalog(model, h)  # [B, P or 1, N+1]
  catalog = jnp.broadcast_to(catalog, targets.shape + catalog.shape[-1:])
  gathered = jnp.take_along_axis(catalog, items, axis=-1)
  np.testing.assert_allclose(_score_items(model, h, items), gathered, rtol=1e-4, atol=1e-4)
  last = _encode_last(model, _windows(9), batch['users'])
  assert last.shape == (4, h.shape[-1])
  assert _catalog(model, last).shape == (4, N_ITEMS + 1)


@pytest.mark.parametrize('name', MODELS)
def test_item_vectors_are_what_the_catalog_is_scored_with(name):
  """score(h, i) = h . v_i + b_i (TransRec: b_i - |h - v_i|^2) with b independent of h."""
  model = _model(name)
  vectors = np.asarray(model.item_vectors(), np.float64)  # [N+1, D]
  rng = np.random.default_rng(3)
  queries = rng.standard_normal((2, vectors.shape[1]))  # [2, D]
  scores = np.asarray(_catalog(model, jnp.asarray(queries, jnp.float32)), np.float64)  # [2, N+1]
  if name == 'transrec':
    bias = scores + np.sum(np.square(queries[:, None, :] - vectors[None]), axis=-1)
  else:
    bias = scores - queries @ vectors.T
  assert vectors.shape[0] == N_ITEMS + 1
  np.testing.assert_allclose(bias[0], bias[1], atol=1e-4)


@pytest.mark.parametrize('name', MODELS)
def test_default_loss_gradients_are_finite_under_jit(name):
  """One jitted value-and-grad step of each model's own loss, on a split/merged model."""
  model = _model(name)
  graphdef, state = nnx.split(model)
  loss_name, n_neg = seq_losses.DEFAULT_LOSS[name]
  kwargs = seq_losses.DEFAULT_LOSS_KWARGS[name]

  def loss_fn(state, batch, key):
    model = nnx.merge(graphdef, state)
    key_view, key_neg = jax.random.split(key)
    h, targets = model.training_view(batch, key_view)
    if loss_name == 'ce':
      return seq_losses.full_softmax(model.score_catalog(h), targets)
    negatives = seq_losses.sample_negatives(key_neg, targets.shape + (n_neg,), N_ITEMS)
    pos = model.score_items(h, targets[..., None])[..., 0]
    neg = _score_items(model, h, negatives)
    return seq_losses.LOSSES[loss_name](pos, neg, targets > 0, **kwargs)

  @jax.jit
  def step(state, batch, key):
    (loss, n), grads = jax.value_and_grad(lambda s: loss_fn(s, batch, key), has_aux=True)(state)
    return loss / n, grads

  loss, grads = step(state, _batch(name, seed=10), jax.random.key(6))
  assert np.isfinite(float(loss)) and float(loss) > 0
  leaves = jax.tree.leaves(grads)
  assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
  assert any(np.abs(np.asarray(g)).max() > 0 for g in leaves)
  # The padding id's row of the input table is never trained as an item.
  table = grads['item_points' if name == 'transrec' else 'item_embedding']
  np.testing.assert_array_equal(np.asarray(table[...])[0], 0.0)


@pytest.mark.parametrize('name', MODELS)
def test_registry_builds_the_paper_configs(name):
  config = sequential.sequence_model_config(name)
  assert sorted(sequential.SEQUENCE_MODELS) == MODELS
  full = ml_collections.ConfigDict({'model': name, name: config})
  model = nnx.eval_shape(
    lambda: sequential.SEQUENCE_MODELS[name](full, N_ITEMS, N_USERS, nnx.Rngs(0))
  )
  assert model.n_items == N_ITEMS
  assert sequential.history_length(full) == {'sasrec': 200, 'bert4rec': 200, 'caser': 5}.get(
    name, 1
  )
  with pytest.raises(ValueError, match='not a sequence model'):
    sequential.sequence_model_config('gru4rec')


def test_paper_defaults():
  assert dict(sequential.sequence_model_config('sasrec')) == dict(
    max_len=200,
    hidden=50,
    n_blocks=2,
    n_heads=1,
    dropout=0.2,
    separate_output_embedding=False,
    init='tf',
  )
  bert = sequential.sequence_model_config('bert4rec')
  assert (bert.hidden, bert.n_layers, bert.n_heads, bert.mask_prob) == (64, 2, 2, 0.2)
  caser = sequential.sequence_model_config('caser')
  assert (caser.L, caser.T, caser.hidden, caser.n_vertical, caser.n_horizontal) == (5, 3, 50, 4, 16)
  assert sequential.sequence_model_config('transrec').dim == 10
