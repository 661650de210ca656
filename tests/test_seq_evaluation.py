"""Tests for seqrec.seq_evaluation against a brute-force numpy ranking of every user."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqrec import evaluation, seq_evaluation

N_ITEMS, N_USERS, MAX_LEN, DIM = 30, 23, 6, 3


class TinySequenceModel(nnx.Module):
  """The sequence-model interface with small-integer weights: exact scores with many ties."""

  def __init__(self, n_items: int, n_users: int, dim: int, seed: int):
    k_items, k_users = jax.random.split(jax.random.PRNGKey(seed))
    self.items = nnx.Param(jax.random.randint(k_items, (n_items + 1, dim), -1, 2) * 1.0)
    self.users = nnx.Param(jax.random.randint(k_users, (n_users, dim), -1, 2) * 1.0)

  def encode_last(self, history, users):
    return self.items[...][history[:, -1]] + self.users[...][users]  # [B, D]

  def score_items(self, h, items):
    return jnp.sum(h[..., None, :] * self.items[...][items], axis=-1)  # [..., K]

  def score_catalog(self, h):
    return h @ self.items[...].T  # [..., N+1]

  def training_view(self, batch, key):
    h = self.items[...][batch['inputs']] + self.users[...][batch['users']][:, None]  # [B, L, D]
    return h, batch['targets']


def make_problem(seed: int = 0):
  """Users with ragged seen lists (longer than the history window), targets, some of them 0."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(0, 12, size=N_USERS)
  lengths[:3] = (0, 1, 11)
  seen = [rng.choice(np.arange(1, N_ITEMS + 1), size=n, replace=False) for n in lengths]
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
  values = np.concatenate(seen).astype(np.int32)
  history = np.zeros((N_USERS, MAX_LEN), np.int32)
  for u, items in enumerate(seen):
    tail = items[-MAX_LEN:]
    history[u, MAX_LEN - len(tail) :] = tail
  targets = rng.integers(1, N_ITEMS + 1, size=N_USERS).astype(np.int32)
  targets[[1, 5, 9]] = 0  # not evaluated
  targets[2] = seen[2][0]  # a seen item as target: never excluded, and outside the window
  targets[3] = seen[3][-1] if len(seen[3]) else targets[3]
  return history, np.arange(N_USERS, dtype=np.int32), targets, (offsets, values), seen


def numpy_scores(model, history, users):
  items = np.asarray(model.items[...], np.float64)
  h = items[history[:, -1]] + np.asarray(model.users[...], np.float64)[users]
  return h @ items.T  # [U, N+1]


def rank_of(row, t, mode):
  greater, equal = int(np.sum(row > row[t])), int(np.sum(row == row[t]))
  if mode == 'conservative':
    return greater + equal
  if mode == 'optimistic':
    return 1 + greater
  return 1 + greater + 0.5 * (equal - 1)


def brute_force_full(scores, targets, seen, mode, exclude_seen):
  ranks = np.full(len(targets), np.nan)
  for u, t in enumerate(targets):
    if t == 0:
      continue
    row = scores[u].copy()
    row[0] = -np.inf
    if exclude_seen:
      row[[i for i in seen[u] if i != t]] = -np.inf
    ranks[u] = rank_of(row, t, mode)
  return ranks


def allowed_matrix(targets, seen):
  allowed = np.ones((len(targets), N_ITEMS + 1), bool)
  allowed[:, 0] = False
  for u, t in enumerate(targets):
    allowed[u, list(seen[u])] = False
    allowed[u, t] = False
  return allowed


def brute_force_sampled(scores, targets, negatives, mode):
  ranks = np.full(len(targets), np.nan)
  for u, t in enumerate(targets):
    if t == 0:
      continue
    row = np.concatenate([[scores[u, t]], scores[u, negatives[u]]])
    ranks[u] = rank_of(row, 0, mode)
  return ranks


def brute_force_metrics(ranks, cutoffs):
  ranks = ranks[~np.isnan(ranks)]
  out = {'count': float(len(ranks))}
  for k in cutoffs:
    hit = ranks <= k
    out[f'recall@{k}'] = float(np.mean(hit))
    out[f'mrr@{k}'] = float(np.mean(np.where(hit, 1.0 / ranks, 0.0)))
    out[f'ndcg@{k}'] = float(np.mean(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)))
  return out


def assert_metrics_close(got, want):
  assert set(got) == set(want)
  for key, value in want.items():
    assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize('mode', evaluation.MODES)
@pytest.mark.parametrize('exclude_seen', [False, True])
@pytest.mark.parametrize('with_seen_lists', [False, True])
def test_full_ranks_match_brute_force(mode, exclude_seen, with_seen_lists):
  model = TinySequenceModel(N_ITEMS, N_USERS, DIM, seed=1)
  history, users, targets, seen_arrays, seen = make_problem()
  # Without seen lists, "seen" is what the history window holds.
  window_seen = [row[row > 0] for row in history]
  scores = numpy_scores(model, history, users)
  want = brute_force_full(
    scores, targets, seen if with_seen_lists else window_seen, mode, exclude_seen
  )
  got, sampled, _ = seq_evaluation.rank_targets(
    model,
    history,
    users,
    targets,
    mode=mode,
    exclude_seen=exclude_seen,
    seen=seen_arrays if with_seen_lists else None,
    user_block=5,
  )
  assert sampled is None
  evaluated = targets > 0
  np.testing.assert_array_equal(got[evaluated], want[evaluated])
  metrics = seq_evaluation.evaluate_sequences(
    model,
    history,
    users,
    targets,
    mode=mode,
    exclude_seen=exclude_seen,
    seen=seen_arrays if with_seen_lists else None,
    user_block=5,
  )
  assert_metrics_close(metrics, brute_force_metrics(want, seq_evaluation.DEFAULT_CUTOFFS))


def test_ties_and_exclusions_are_really_exercised():
  model = TinySequenceModel(N_ITEMS, N_USERS, DIM, seed=1)
  history, users, targets, _, seen = make_problem()
  scores = numpy_scores(model, history, users)
  conservative = brute_force_full(scores, targets, seen, 'conservative', False)
  optimistic = brute_force_full(scores, targets, seen, 'optimistic', False)
  excluded = brute_force_full(scores, targets, seen, 'conservative', True)
  ok = targets > 0
  assert np.mean(conservative[ok] > optimistic[ok]) > 0.5  # most targets tie with other items
  assert np.any(excluded[ok] < conservative[ok])  # excluding seen items moves targets up
  assert targets[2] in seen[2] and targets[2] not in history[2]  # seen target beyond the window


def test_sampled_metrics_match_brute_force_on_the_same_negatives():
  model = TinySequenceModel(N_ITEMS, N_USERS, DIM, seed=2)
  history, users, targets, seen_arrays, seen = make_problem(seed=3)
  scores = numpy_scores(model, history, users)
  allowed = allowed_matrix(targets, seen)
  for kind in seq_evaluation.SAMPLED_KINDS:
    counts = np.arange(N_ITEMS + 1) % 7
    negatives = seq_evaluation.sampled_negatives(allowed, 9, kind, seed=4, item_counts=counts)
    assert negatives.shape == (N_USERS, 9)
    assert all(allowed[u, negatives[u]].all() for u in range(N_USERS))  # never seen/target/0
    if kind == 'popularity':
      assert np.all(counts[negatives] > 0)
    for mode in evaluation.MODES if kind == 'uniform' else ('conservative',):
      want = brute_force_sampled(scores, targets, negatives, mode)
      full, got, _ = seq_evaluation.rank_targets(
        model,
        history,
        users,
        targets,
        mode=mode,
        seen=seen_arrays,
        sampled=dict(n=9, kind=kind, seed=4),
        item_counts=counts,
        user_block=4,
      )
      ok = targets > 0
      np.testing.assert_array_equal(got[ok], want[ok])
      want_full = brute_force_full(scores, targets, seen, mode, False)
      np.testing.assert_array_equal(full[ok], want_full[ok])
      metrics = seq_evaluation.evaluate_sequences(
        model,
        history,
        users,
        targets,
        mode=mode,
        seen=seen_arrays,
        sampled=dict(n=9, kind=kind, seed=4),
        item_counts=counts,
        cutoffs=(1, 5),
      )
      prefix = seq_evaluation.sampled_prefix(9, kind)
      sampled_metrics = {
        k[len(prefix) + 1 :]: v for k, v in metrics.items() if k.startswith(prefix)
      }
      expected = brute_force_metrics(want, (1, 5))
      del expected['count']
      assert_metrics_close(sampled_metrics, expected)
      assert metrics['count'] == float(np.sum(ok))


def test_numbers_do_not_depend_on_the_block_size():
  model = TinySequenceModel(N_ITEMS, N_USERS, DIM, seed=5)
  history, users, targets, seen_arrays, _ = make_problem(seed=6)
  kwargs = dict(exclude_seen=True, seen=seen_arrays, sampled=dict(n=5, kind='uniform', seed=1))
  results = [
    seq_evaluation.evaluate_sequences(model, history, users, targets, user_block=b, **kwargs)
    for b in (1, 7, N_USERS, 1000)
  ]
  assert all(r == results[0] for r in results[1:])
  assert results[0]['count'] == np.sum(targets > 0)


def test_uniform_and_popularity_draws_follow_their_distributions():
  allowed = np.ones((2, 11), bool)
  allowed[:, 0] = False
  allowed[:, [3, 7]] = False
  counts = np.array([0, 1, 2, 50, 4, 5, 6, 50, 8, 9, 10])
  n = 20000
  uniform = seq_evaluation.sampled_negatives(allowed, n, 'uniform', seed=0)
  popular = seq_evaluation.sampled_negatives(allowed, n, 'popularity', seed=0, item_counts=counts)
  for row in range(2):
    freq = np.bincount(uniform[row], minlength=11) / n
    want = allowed[row] / allowed[row].sum()
    np.testing.assert_allclose(freq, want, atol=0.015)
    freq = np.bincount(popular[row], minlength=11) / n
    weights = allowed[row] * counts
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.015)
  assert not np.array_equal(uniform[0], uniform[1])  # rows draw independently


def test_popularity_model_ranks_by_counts():
  history, users, targets, seen_arrays, seen = make_problem(seed=7)
  counts = np.random.default_rng(0).integers(0, 4, size=N_ITEMS + 1)  # many ties
  pop = seq_evaluation.PopularityModel(counts)
  scores = np.broadcast_to(counts.astype(np.float64), (N_USERS, N_ITEMS + 1))
  for mode in evaluation.MODES:
    want = brute_force_full(scores, targets, seen, mode, True)
    got, _, _ = seq_evaluation.rank_targets(
      pop, history, users, targets, mode=mode, exclude_seen=True, seen=seen_arrays
    )
    np.testing.assert_array_equal(got[targets > 0], want[targets > 0])


@pytest.mark.parametrize(
  'kwargs, message',
  [
    (dict(mode='random'), 'tie mode'),
    (dict(sampled=dict(n=10, kind='zipf')), 'kind'),
    (dict(sampled=dict(n=0, kind='uniform')), 'positive'),
    (dict(sampled=dict(n=10, kind='popularity')), 'item_counts'),
    (dict(cutoffs=(0, 10)), 'cutoffs'),
  ],
)
def test_bad_arguments_are_rejected(kwargs, message):
  model = TinySequenceModel(N_ITEMS, N_USERS, DIM, seed=1)
  history, users, targets, _, _ = make_problem()
  with pytest.raises(ValueError, match=message):
    seq_evaluation.evaluate_sequences(model, history, users, targets, **kwargs)
