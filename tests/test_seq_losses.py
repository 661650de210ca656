"""Sequence-model losses and the negative sampler against plain numpy re-computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqrec import seq_losses

B, P, K, N = 3, 5, 4, 40


def _log_sigmoid(x):
  return -np.log1p(np.exp(-x))


def _problem(seed=0, k=K):
  rng = np.random.default_rng(seed)
  pos = rng.normal(size=(B, P)) * 2.0
  neg = rng.normal(size=(B, P, k)) * 2.0
  mask = rng.random((B, P)) < 0.7
  mask[0, 0] = True
  return pos.astype(np.float32), neg.astype(np.float32), mask


def _masked_sum(per_position, mask):
  return float(np.sum(per_position[mask])), float(mask.sum())


def ref_bce(pos, neg, mask, beta=1.0, mean=False):
  """The official SASRec formula, `-log s(pos) - log(1 - s(neg))`, per target (beta: gBCE)."""
  negatives = -_log_sigmoid(-neg.astype(np.float64))
  negatives = negatives.mean(-1) if mean else negatives.sum(-1)
  return _masked_sum(-beta * _log_sigmoid(pos.astype(np.float64)) + negatives, mask)


def _check(result, expected, rtol=1e-5):
  loss, n = result
  assert loss.dtype == jnp.float32 and n.dtype == jnp.float32
  np.testing.assert_allclose(float(loss), expected[0], rtol=rtol)
  assert float(n) == expected[1]


@pytest.mark.parametrize('reduction', ['sum', 'mean'])
def test_bce(reduction):
  pos, neg, mask = _problem()
  result = seq_losses.bce(pos, neg, mask, negative_reduction=reduction)
  _check(result, ref_bce(pos, neg, mask, mean=reduction == 'mean'))


def test_bce_caser_mean_is_the_official_batch_mean():
  """caser_pytorch: mean over targets of -log s(pos) plus mean over all negatives."""
  pos, neg, _ = _problem(1, k=3)
  mask = np.ones((B, P), bool)
  loss, n = seq_losses.bce(pos, neg, mask, **seq_losses.DEFAULT_LOSS_KWARGS['caser'])
  official = -np.mean(_log_sigmoid(pos.astype(np.float64))) - np.mean(
    _log_sigmoid(-neg.astype(np.float64))
  )
  np.testing.assert_allclose(float(loss / n), official, rtol=1e-5)


def test_gbce_matches_the_formula():
  pos, neg, mask = _problem(2)
  t = 0.75
  alpha = K / (N - 1)
  beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
  assert seq_losses.gbce_beta(K, N, t) == pytest.approx(beta)
  # The positive term is -log(s(pos)^beta), as gSASRec's transformed logit gives it.
  _check(seq_losses.gbce(pos, neg, mask, N, t), ref_bce(pos, neg, mask, beta=beta))


def test_gbce_limits():
  """beta = 1 - t (1 - alpha): t = 0 is plain BCE, t = 1 gives beta = alpha = K / (N - 1)."""
  pos, neg, mask = _problem(3)
  assert seq_losses.gbce_beta(K, N, 0.0) == pytest.approx(1.0)
  assert seq_losses.gbce_beta(K, N, 1.0) == pytest.approx(K / (N - 1))
  np.testing.assert_allclose(
    seq_losses.gbce(pos, neg, mask, N, 0.0)[0], seq_losses.bce(pos, neg, mask)[0], rtol=1e-6
  )
  _check(seq_losses.gbce(pos, neg, mask, N, 1.0), ref_bce(pos, neg, mask, beta=K / (N - 1)))
  # With every item sampled (K = N - 1), alpha = 1 and gBCE is BCE for any t.
  pos, neg, mask = _problem(4, k=N - 1)
  np.testing.assert_allclose(
    seq_losses.gbce(pos, neg, mask, N, 0.6)[0], seq_losses.bce(pos, neg, mask)[0], rtol=1e-6
  )


def _gsasrec_pytorch_gbce(pos, neg, beta, eps=1e-10):
  """gSASRec-pytorch's training loss per target, in float64: the positive's logit is replaced by
  gamma(pos) = log(1 / (s(pos)^-beta - 1)) with s(pos) clamped into [eps, 1 - eps], then BCE."""
  pos, neg = pos.astype(np.float64), neg.astype(np.float64)
  prob = np.clip(1.0 / (1.0 + np.exp(-pos)), eps, 1 - eps)
  adjusted = np.maximum(prob**-beta, 1 + eps)
  gamma = np.log(np.maximum(1.0 / (adjusted - 1.0), eps))
  return -_log_sigmoid(gamma) - _log_sigmoid(-neg).sum(-1)


def test_gbce_positive_eps_is_gsasrec_pytorchs_clamp():
  pos, neg, _ = _problem(7)
  pos[0, :] = [-40.0, -23.5, -22.5, 15.0, 21.0]  # below, around and above the clamp
  mask = np.ones((B, P), bool)
  beta = seq_losses.gbce_beta(K, N, 0.75)
  loss, n = seq_losses.gbce(pos, neg, mask, N, 0.75, positive_eps=1e-10)
  expected = _gsasrec_pytorch_gbce(pos, neg, beta)
  np.testing.assert_allclose(float(loss), expected.sum(), rtol=1e-5)
  # Without the clamp the two targets below -23.03 cost more (and are pushed up).
  unclamped = float(seq_losses.gbce(pos, neg, mask, N, 0.75)[0])
  assert unclamped == pytest.approx(expected.sum() + beta * (40.0 + 23.5 - 2 * 23.0259), rel=1e-4)
  grad = jax.grad(lambda p: seq_losses.gbce(p, neg, mask, N, 0.75, positive_eps=1e-10)[0])(pos)
  grad = np.asarray(grad)
  assert np.all(grad[0, :2] == 0.0)
  sigmoid = 1.0 / (1.0 + np.exp(pos[0, 2:].astype(np.float64)))
  np.testing.assert_allclose(grad[0, 2:], -beta * sigmoid, rtol=1e-5)


def test_sampled_softmax():
  pos, neg, mask = _problem(5)
  logits = np.concatenate([pos[..., None], neg], -1).astype(np.float64)
  lse = np.log(np.exp(logits).sum(-1))
  _check(seq_losses.sampled_softmax(pos, neg, mask), _masked_sum(lse - logits[..., 0], mask))
  log_q = np.random.default_rng(6).normal(size=(B, P, K + 1)).astype(np.float32)
  corrected = logits - log_q
  expected = np.log(np.exp(corrected).sum(-1)) - corrected[..., 0]
  _check(seq_losses.sampled_softmax(pos, neg, mask, log_q), _masked_sum(expected, mask))


def test_full_softmax_leaves_out_the_padding_column():
  rng = np.random.default_rng(7)
  scores = rng.normal(size=(B, P, N + 1)).astype(np.float32)
  targets = rng.integers(1, N + 1, size=(B, P))
  targets[rng.random((B, P)) < 0.3] = 0
  mask = targets > 0
  items = scores[..., 1:].astype(np.float64)
  lse = np.log(np.exp(items).sum(-1))
  chosen = np.take_along_axis(scores, targets[..., None], -1)[..., 0]
  expected = _masked_sum(lse - chosen, mask)
  _check(seq_losses.full_softmax(scores, targets), expected)
  scores[..., 0] = 50.0  # the padding column must not enter the softmax
  _check(seq_losses.full_softmax(scores, targets), expected)


def test_sbpr():
  pos, neg, mask = _problem(8)
  diff = pos[..., None].astype(np.float64) - neg
  _check(seq_losses.sbpr(pos, neg, mask), _masked_sum(-_log_sigmoid(diff).sum(-1), mask))
  expected = _masked_sum(-_log_sigmoid(diff).mean(-1), mask)
  _check(seq_losses.sbpr(pos, neg, mask, negative_reduction='mean'), expected)


def test_unknown_negative_reduction():
  pos, neg, mask = _problem()
  with pytest.raises(ValueError, match='negative_reduction'):
    seq_losses.bce(pos, neg, mask, negative_reduction='max')


@pytest.mark.parametrize('name', ['bce', 'gbce', 'sampled_ce', 'sbpr', 'ce'])
def test_positions_without_target_give_no_loss_and_no_gradient(name):
  """Padding positions may hold anything (inf, NaN): loss and gradients stay finite and exact."""
  pos, neg, mask = _problem(9)
  targets = np.where(mask, 3, 0)
  bad_pos = np.where(mask, pos, np.nan).astype(np.float32)
  bad_neg = np.where(mask[..., None], neg, np.inf).astype(np.float32)
  fn = seq_losses.LOSSES[name]
  if name == 'ce':
    scores = np.random.default_rng(10).normal(size=(B, P, N + 1)).astype(np.float32)
    bad = np.where(mask[..., None], scores, np.nan).astype(np.float32)
    value = lambda s: fn(s, targets)[0]
    clean, bad = scores, bad
  else:
    kwargs = {'n_items': N, 't': 0.5} if name == 'gbce' else {}
    value = lambda pn: fn(pn[0], pn[1], mask, **kwargs)[0]
    clean, bad = (pos, neg), (bad_pos, bad_neg)
  loss, grads = jax.value_and_grad(value)(bad)
  np.testing.assert_allclose(loss, value(clean), rtol=1e-6)
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(np.asarray(g)))


def test_sample_negatives_without_exclusion_is_uniform():
  ids = np.asarray(seq_losses.sample_negatives(jax.random.key(0), (50, 40, 10), 20))
  assert ids.dtype == np.int32 and ids.min() >= 1 and ids.max() <= 20
  counts = np.bincount(ids.ravel(), minlength=21)[1:]
  np.testing.assert_allclose(counts / ids.size, 1 / 20, rtol=0.08)


def test_sample_negatives_skips_excluded_ids_uniformly():
  n_items = 12
  exclude = jnp.asarray(
    [
      [0, 0, 3, 5, 5, 1, 13],  # padding, a repeat, and the mask token id (ignored)
      [12, 11, 0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0, 0, 0],  # nothing excluded
      [2, 4, 6, 8, 10, 12, 7],
    ],
    jnp.int32,
  )
  ids = np.asarray(
    jax.jit(seq_losses.sample_negatives, static_argnums=(1, 2))(
      jax.random.key(1), (4, 3000, 2), n_items, exclude
    )
  )
  assert ids.shape == (4, 3000, 2)
  for row in range(4):
    banned = {int(i) for i in np.asarray(exclude[row]) if 1 <= i <= n_items}
    allowed = sorted(set(range(1, n_items + 1)) - banned)
    drawn = ids[row].ravel()
    assert set(np.unique(drawn)) == set(allowed)  # every allowed id, nothing else (no 0)
    freq = np.array([np.mean(drawn == i) for i in allowed])
    np.testing.assert_allclose(freq, 1 / len(allowed), rtol=0.15)


def test_sample_negatives_has_no_loop():
  """The exclusion search is straight-line code, not a while loop nested in the training scan.

  An 'unsafe_rbg' key keeps the threefry rounds (a rolled loop on CPU) out of the lowered program.
  """
  exclude = jnp.asarray([[0, 3, 5, 9], [2, 2, 0, 0]], jnp.int32)
  sample = jax.jit(seq_losses.sample_negatives, static_argnums=(1, 2))
  hlo = sample.lower(jax.random.key(0, impl='unsafe_rbg'), (2, 6), 12, exclude).as_text()
  assert 'while' not in hlo


def test_sample_negatives_row_excluding_everything_falls_back_to_uniform():
  exclude = jnp.asarray([[1, 2, 3], [0, 0, 0]], jnp.int32)
  ids = np.asarray(seq_losses.sample_negatives(jax.random.key(2), (2, 500), 3, exclude))
  assert ids.min() >= 1 and ids.max() <= 3
  assert set(np.unique(ids[0])) == {1, 2, 3}
  with pytest.raises(ValueError, match='rows'):
    seq_losses.sample_negatives(jax.random.key(2), (3, 5), 3, exclude)


def test_registries():
  assert set(seq_losses.LOSSES) == {'bce', 'gbce', 'sampled_ce', 'ce', 'sbpr'}
  assert seq_losses.DEFAULT_LOSS == {
    'sasrec': ('bce', 1),
    'bert4rec': ('ce', 0),
    'caser': ('bce', 3),
    'transrec': ('sbpr', 1),
  }
  assert set(seq_losses.DEFAULT_LOSS_KWARGS) == set(seq_losses.DEFAULT_LOSS)
