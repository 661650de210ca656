"""Tests for seqrec.losses against plain numpy re-computations of the official formulas."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec import losses

# Each numpy reference below takes a compact problem: every row is a real slot and
# every column other than the row's positive is a negative, which is what the
# official code sees after it shrinks its batch.


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _official_softmax_neg(row, pos):
  """softmax_neg of the official code for one row: positive zeroed, then excluded."""
  hm = np.ones_like(row)
  hm[pos] = 0.0
  x = row * hm
  e = np.exp(x - x.max()) * hm
  return e / e.sum()


def ref_cross_entropy(o, pos, log_q=None, logq=0.0):
  total = 0.0
  for i in range(o.shape[0]):
    z = o[i].copy()
    if logq > 0:
      z = z - logq * log_q
    p = np.exp(z - z.max())
    p = p / p.sum()
    total += -np.log(p[pos[i]] + 1e-24)
  return total


def ref_bpr_max(o, pos, elu_param=0.5, bpreg=1.0):
  if elu_param > 0:
    o = np.where(o > 0, o, elu_param * (np.exp(o) - 1.0))
  total = 0.0
  for i in range(o.shape[0]):
    s = _official_softmax_neg(o[i], pos[i])
    t = o[i, pos[i]]
    ranking = 0.0
    reg = 0.0
    for j in range(o.shape[1]):
      ranking += _sigmoid(t - o[i, j]) * s[j]
      reg += o[i, j] ** 2 * s[j]
    total += -np.log(ranking + 1e-24) + bpreg * reg
  return total


def ref_top1_max(o, pos):
  total = 0.0
  for i in range(o.shape[0]):
    s = _official_softmax_neg(o[i], pos[i])
    t = o[i, pos[i]]
    for j in range(o.shape[1]):
      total += s[j] * (_sigmoid(o[i, j] - t) + _sigmoid(o[i, j] ** 2))
  return total


def ref_bpr(o, pos, final_act='linear'):
  o = np.tanh(o) if final_act == 'tanh' else o
  total = 0.0
  for i in range(o.shape[0]):
    t = o[i, pos[i]]
    terms = [-np.log(_sigmoid(t - o[i, j])) for j in range(o.shape[1]) if j != pos[i]]
    total += np.mean(terms)
  return total


def ref_top1(o, pos, final_act='linear'):
  o = np.tanh(o) if final_act == 'tanh' else o
  total = 0.0
  for i in range(o.shape[0]):
    t = o[i, pos[i]]
    terms = [
      _sigmoid(o[i, j] - t) + _sigmoid(o[i, j] ** 2) for j in range(o.shape[1]) if j != pos[i]
    ]
    total += np.mean(terms)
  return total


REFERENCES = {
  'cross-entropy': ref_cross_entropy,
  'bpr-max': ref_bpr_max,
  'top1-max': ref_top1_max,
  'bpr': ref_bpr,
  'top1': ref_top1,
}

# Hyperparameter settings exercised for each loss (logq needs a col_log_q, added below).
SETTINGS = [
  ('cross-entropy', {}),
  ('cross-entropy', {'logq': 1.0}),
  ('cross-entropy', {'logq': 0.5}),
  ('bpr-max', {'elu_param': 0.5, 'bpreg': 1.0}),
  ('bpr-max', {'elu_param': 0.0, 'bpreg': 0.3}),
  ('bpr-max', {'elu_param': 1.0, 'bpreg': 0.0}),
  ('top1-max', {}),
  ('bpr', {}),
  ('bpr', {'final_act': 'tanh'}),
  ('top1', {}),
  ('top1', {'final_act': 'tanh'}),
]


def _session_parallel_problem(seed, batch, n_sample, n_items=50, scale=2.0):
  """Random scores [B, B+S], per-column log q and the target/sample popularity."""
  rng = np.random.default_rng(seed)
  scores = rng.normal(size=(batch, batch + n_sample)) * scale
  counts = rng.integers(1, 100, size=n_items).astype(np.float64)
  targets = rng.integers(0, n_items, size=batch)
  samples = rng.integers(0, n_items, size=n_sample)
  alpha = 0.75
  log_q = np.concatenate([np.log(counts[targets]), np.log(counts[samples] ** alpha)])
  return scores, log_q


def _call(name, params, scores, row_valid, col_valid=None, positive_col=None, log_q=None):
  kwargs = dict(params)
  if 'logq' in params:
    kwargs['col_log_q'] = jnp.asarray(log_q, jnp.float32)
  fn = losses.get_loss(name)
  return fn(
    jnp.asarray(scores, jnp.float32),
    jnp.asarray(row_valid),
    None if col_valid is None else jnp.asarray(col_valid),
    None if positive_col is None else jnp.asarray(positive_col),
    **kwargs,
  )


def _reference(name, params, o, pos, log_q=None):
  ref_params = dict(params)
  if 'logq' in params:
    ref_params['log_q'] = log_q
  return REFERENCES[name](o, pos, **ref_params)


@pytest.mark.parametrize('name,params', SETTINGS)
@pytest.mark.parametrize('n_sample', [0, 7])
def test_session_parallel_matches_reference(name, params, n_sample):
  batch = 6
  scores, log_q = _session_parallel_problem(0, batch, n_sample)
  row_valid = np.ones(batch, bool)
  got = _call(name, params, scores, row_valid, log_q=log_q)
  want = _reference(name, params, scores, np.arange(batch), log_q)
  np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name,params', SETTINGS)
@pytest.mark.parametrize('n_sample', [0, 5])
def test_masked_rows_match_shrunk_batch_reference(name, params, n_sample):
  batch = 7
  scores, log_q = _session_parallel_problem(1, batch, n_sample)
  row_valid = np.array([True, False, True, True, False, True, True])
  # What a padding slot holds must not matter: put garbage there.
  scores[~row_valid] = 1e4
  scores[:, :batch][:, ~row_valid] = np.nan
  log_q[:batch][~row_valid] = -np.inf
  got = _call(name, params, scores, row_valid, log_q=log_q)
  keep_cols = np.concatenate([row_valid, np.ones(n_sample, bool)])
  compact = scores[row_valid][:, keep_cols]
  want = _reference(name, params, compact, np.arange(row_valid.sum()), log_q[keep_cols])
  np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name,params', SETTINGS)
def test_masking_a_row_equals_removing_the_slot(name, params):
  batch, n_sample, k = 5, 4, 2
  scores, log_q = _session_parallel_problem(2, batch, n_sample)
  row_valid = np.ones(batch, bool)
  row_valid[k] = False
  masked = _call(name, params, scores, row_valid, log_q=log_q)
  keep_rows = np.arange(batch) != k
  keep_cols = np.concatenate([keep_rows, np.ones(n_sample, bool)])
  removed = _call(
    name, params, scores[keep_rows][:, keep_cols], np.ones(batch - 1, bool), log_q=log_q[keep_cols]
  )
  np.testing.assert_allclose(float(masked), float(removed), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('name,params', SETTINGS)
def test_full_catalogue_with_positive_col(name, params):
  batch, n_items = 5, 30
  rng = np.random.default_rng(3)
  scores = rng.normal(size=(batch, n_items)) * 2.0
  positive = rng.integers(0, n_items, size=batch)
  row_valid = np.array([True, True, False, True, True])
  log_q = np.log(rng.integers(1, 50, size=n_items).astype(np.float64))
  got = _call(name, params, scores, row_valid, positive_col=positive, log_q=log_q)
  want = _reference(name, params, scores[row_valid], positive[row_valid], log_q)
  np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name,params', SETTINGS)
def test_explicit_col_valid_drops_columns(name, params):
  batch, n_items = 4, 20
  rng = np.random.default_rng(4)
  scores = rng.normal(size=(batch, n_items)) * 2.0
  positive = np.array([0, 3, 3, 7])
  col_valid = np.ones(n_items, bool)
  col_valid[[1, 5, 6, 19]] = False
  log_q = np.log(rng.integers(1, 50, size=n_items).astype(np.float64))
  got = _call(
    name,
    params,
    scores,
    np.ones(batch, bool),
    col_valid=col_valid,
    positive_col=positive,
    log_q=log_q,
  )
  new_index = np.cumsum(col_valid) - 1
  want = _reference(name, params, scores[:, col_valid], new_index[positive], log_q[col_valid])
  np.testing.assert_allclose(float(got), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name,params', SETTINGS)
def test_gradients_finite_and_zero_on_masked_entries(name, params):
  batch, n_sample = 6, 3
  scores, log_q = _session_parallel_problem(5, batch, n_sample)
  row_valid = np.array([True, False, True, False, True, True])
  scores[~row_valid] = 1e4
  scores[:, :batch][:, ~row_valid] = -1e4
  scores[1, 0] = np.nan
  log_q[:batch][~row_valid] = -np.inf
  kwargs = dict(params)
  if 'logq' in params:
    kwargs['col_log_q'] = jnp.asarray(log_q, jnp.float32)
  fn = functools.partial(losses.get_loss(name), **kwargs)
  value, grad = jax.value_and_grad(fn)(jnp.asarray(scores, jnp.float32), jnp.asarray(row_valid))
  grad = np.asarray(grad)
  assert np.isfinite(float(value))
  assert np.all(np.isfinite(grad))
  assert np.all(grad[~row_valid] == 0.0)
  assert np.all(grad[:, :batch][:, ~row_valid] == 0.0)
  assert np.any(grad[row_valid] != 0.0)


@pytest.mark.parametrize('name,params', SETTINGS)
def test_jit_matches_eager(name, params):
  batch, n_sample = 4, 3
  scores, log_q = _session_parallel_problem(6, batch, n_sample)
  row_valid = jnp.array([True, True, False, True])
  kwargs = dict(params)
  if 'logq' in params:
    kwargs['col_log_q'] = jnp.asarray(log_q, jnp.float32)
  fn = functools.partial(losses.get_loss(name), **kwargs)
  x = jnp.asarray(scores, jnp.float32)
  np.testing.assert_allclose(float(jax.jit(fn)(x, row_valid)), float(fn(x, row_valid)), rtol=1e-6)


def test_cross_entropy_epsilon_caps_the_loss():
  # The positive's probability underflows: the official code then returns -log(1e-24).
  scores = np.array([[-200.0, 200.0, 150.0], [0.0, 0.0, 0.0]])
  got = losses.cross_entropy(jnp.asarray(scores, jnp.float32), jnp.array([True, False]))
  np.testing.assert_allclose(float(got), -np.log(1e-24), rtol=1e-6)


def test_row_without_negatives_contributes_nothing():
  # A single real slot and no samples: nothing to rank against.
  scores = jnp.array([[1.0, 2.0], [3.0, 4.0]])
  row_valid = jnp.array([True, False])
  for name in ['bpr-max', 'top1-max', 'bpr', 'top1']:
    value, grad = jax.value_and_grad(losses.get_loss(name))(scores, row_valid)
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0.0)
  assert abs(float(losses.cross_entropy(scores, row_valid))) < 1e-6


def test_bpr_and_top1_relate_to_theano_column_means():
  # Theano averages over all C columns, the positive included; see the docstrings.
  batch, n_sample = 5, 6
  scores, _ = _session_parallel_problem(7, batch, n_sample)
  n_cols = batch + n_sample
  theano_bpr = 0.0
  theano_top1 = 0.0
  for i in range(batch):
    t = scores[i, i]
    theano_bpr += np.mean(-np.log(_sigmoid(t - scores[i])))
    theano_top1 += np.mean(_sigmoid(scores[i] - t) + _sigmoid(scores[i] ** 2))
    theano_top1 -= _sigmoid(t**2) / n_cols
  x = jnp.asarray(scores, jnp.float32)
  row_valid = jnp.ones(batch, bool)
  n_neg = n_cols - 1
  ours_bpr = float(losses.bpr(x, row_valid))
  ours_top1 = float(losses.top1(x, row_valid))
  np.testing.assert_allclose((n_neg * ours_bpr + batch * np.log(2.0)) / n_cols, theano_bpr, 1e-5)
  np.testing.assert_allclose((n_neg * ours_top1 + batch * 0.5) / n_cols, theano_top1, 1e-5)


def test_top1_with_tanh_matches_hgru4rec_up_to_its_offset_and_scale():
  """hgru4rec: y = tanh(preact) over the batch's own targets, then
  mean_i [mean_j (s(y_ij - y_ii) + s(y_ij^2)) - s(y_ii^2) / B]."""
  batch = 6
  preact, _ = _session_parallel_problem(8, batch, 0, scale=3.0)
  y = np.tanh(preact)
  diag = np.diag(y)
  hgru = np.mean(
    np.mean(_sigmoid(y - diag[:, None]) + _sigmoid(y**2), axis=1) - _sigmoid(diag**2) / batch
  )
  ours = float(
    losses.top1(jnp.asarray(preact, jnp.float32), jnp.ones(batch, bool), final_act='tanh')
  )
  np.testing.assert_allclose(((batch - 1) * ours + batch * 0.5) / batch / batch, hgru, rtol=1e-5)
  linear = float(losses.top1(jnp.asarray(preact, jnp.float32), jnp.ones(batch, bool)))
  assert abs(linear - ours) > 1e-3  # the activation changes the loss


def test_unknown_final_act_is_refused():
  with pytest.raises(ValueError, match="final_act 'relu'"):
    losses.top1(jnp.zeros((2, 2)), jnp.ones(2, bool), final_act='relu')


def test_get_loss_and_registry():
  assert set(losses.LOSSES) == {'cross-entropy', 'bpr-max', 'top1-max', 'bpr', 'top1'}
  assert losses.get_loss('bpr-max') is losses.bpr_max
  with pytest.raises(ValueError, match='bpr-max.*cross-entropy'):
    losses.get_loss('bpr_max')


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match='at least B'):
    losses.bpr_max(jnp.zeros((4, 3)), jnp.ones(4, bool))
  with pytest.raises(ValueError, match='row_valid'):
    losses.bpr_max(jnp.zeros((4, 6)), jnp.ones(3, bool))
  with pytest.raises(ValueError, match='col_log_q'):
    losses.cross_entropy(jnp.zeros((4, 6)), jnp.ones(4, bool), logq=1.0)
