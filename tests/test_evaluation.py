"""Tests for seqrec.evaluation against brute-force numpy ranking and hand-computed metrics."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from seqrec import evaluation
from seqrec.data.events import Events
from seqrec.models.gru4rec import GRU4Rec


def brute_force_ranks(scores, targets, mode):
  """Ranks by counting over the full [B, N] score matrix, one row at a time."""
  ranks = []
  for i, target in enumerate(targets):
    row = scores[i]
    t = row[target]
    greater = int(np.sum(row > t))
    equal = int(np.sum(row == t))  # includes the target itself
    if mode == 'conservative':
      ranks.append(greater + equal)
    elif mode == 'optimistic':
      ranks.append(1 + greater)
    else:
      ranks.append(1 + greater + 0.5 * (equal - 1))
  return np.array(ranks, np.float64)


def _tied_problem(seed, batch=9, n_items=37, dim=3, with_bias=True):
  """Small-integer embeddings and biases: scores are exact, with many ties."""
  rng = np.random.default_rng(seed)
  query = rng.integers(-1, 2, size=(batch, dim)).astype(np.float32)
  item_emb = rng.integers(-1, 2, size=(n_items, dim)).astype(np.float32)
  item_bias = rng.integers(0, 2, size=n_items).astype(np.float32) if with_bias else None
  targets = rng.integers(0, n_items, size=batch)
  targets[0] = n_items - 1  # the very last item, inside the shifted last chunk
  targets[1] = 0
  return query, item_emb, item_bias, targets


def _scores_np(query, item_emb, item_bias):
  scores = query.astype(np.float64) @ item_emb.astype(np.float64).T
  if item_bias is not None:
    scores = scores + item_bias[None, :]
  return scores


@pytest.mark.parametrize('mode', evaluation.MODES)
@pytest.mark.parametrize('chunk_size', [1, 5, 8, 36, 37, 64, 1000])
@pytest.mark.parametrize('with_bias', [True, False])
def test_target_ranks_match_brute_force_with_ties(mode, chunk_size, with_bias):
  query, item_emb, item_bias, targets = _tied_problem(0, with_bias=with_bias)
  want = brute_force_ranks(_scores_np(query, item_emb, item_bias), targets, mode)
  got = evaluation.target_ranks(
    jnp.asarray(query),
    jnp.asarray(item_emb),
    None if item_bias is None else jnp.asarray(item_bias),
    jnp.asarray(targets),
    mode=mode,
    chunk_size=chunk_size,
  )
  assert got.dtype == jnp.float32
  np.testing.assert_array_equal(np.asarray(got), want)


def test_planted_ties_are_really_there():
  query, item_emb, item_bias, targets = _tied_problem(0)
  scores = _scores_np(query, item_emb, item_bias)
  conservative = brute_force_ranks(scores, targets, 'conservative')
  optimistic = brute_force_ranks(scores, targets, 'optimistic')
  assert np.all(conservative - optimistic >= 1)  # every target ties with another item


@pytest.mark.parametrize('mode', evaluation.MODES)
def test_ranks_from_scores_match_brute_force(mode):
  query, item_emb, item_bias, targets = _tied_problem(1, batch=12, n_items=50)
  scores = _scores_np(query, item_emb, item_bias)
  got = evaluation.ranks_from_scores(jnp.asarray(scores, jnp.float32), jnp.asarray(targets), mode)
  np.testing.assert_array_equal(np.asarray(got), brute_force_ranks(scores, targets, mode))


@pytest.mark.parametrize('chunk_size', [7, 64, 500])
def test_float_scores_target_is_counted_exactly_once(chunk_size):
  # Without real ties, conservative == optimistic only if the target's own score is
  # found bit-identically among the chunked scores.
  rng = np.random.default_rng(2)
  query = jnp.asarray(rng.normal(size=(16, 24)), jnp.float32)
  item_emb = jnp.asarray(rng.normal(size=(301, 24)), jnp.float32)
  item_bias = jnp.asarray(rng.normal(size=301) * 0.1, jnp.float32)
  targets = jnp.asarray(rng.integers(0, 301, size=16))
  run = functools.partial(
    evaluation.target_ranks, query, item_emb, item_bias, targets, chunk_size=chunk_size
  )
  conservative = np.asarray(run(mode='conservative'))
  optimistic = np.asarray(run(mode='optimistic'))
  np.testing.assert_array_equal(conservative, optimistic)
  assert np.all(conservative >= 1) and np.all(conservative <= 301)


def test_hand_made_ranks():
  # Scores of the 5 items are [3, 1, 2, 2, 0] for the only query.
  query = jnp.array([[1.0, 0.0]])
  item_emb = jnp.array([[3.0, 9.0], [1.0, 0.0], [2.0, 5.0], [2.0, -1.0], [0.0, 4.0]])
  expected = {
    # target: (conservative, optimistic, median)
    0: (1.0, 1.0, 1.0),
    2: (3.0, 2.0, 2.5),
    4: (5.0, 5.0, 5.0),
  }
  for target, want in expected.items():
    for mode, value in zip(evaluation.MODES, want, strict=True):
      got = evaluation.target_ranks(query, item_emb, None, jnp.array([target]), mode, 2)
      assert float(got[0]) == value, (target, mode)


def test_catalogue_scores_never_materialised():
  batch, n_items, chunk = 8, 4099, 512
  args = (
    jnp.zeros((batch, 16)),
    jnp.zeros((n_items, 16)),
    jnp.zeros((n_items,)),
    jnp.zeros((batch,), jnp.int32),
  )
  hlo = evaluation.target_ranks.lower(*args, chunk_size=chunk).as_text()
  assert f'{batch}x{chunk}x' in hlo
  assert f'{batch}x{n_items}x' not in hlo


def brute_force_metrics(ranks, valid, cutoffs):
  out = {}
  ranks = np.asarray(ranks, np.float64)[valid]
  for k in cutoffs:
    hit = ranks <= k
    out[f'recall@{k}'] = hit.mean()
    out[f'mrr@{k}'] = np.mean(np.where(hit, 1.0 / ranks, 0.0))
    out[f'ndcg@{k}'] = np.mean(np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0))
  out['count'] = float(len(ranks))
  return out


def test_metrics_match_numpy():
  rng = np.random.default_rng(3)
  ranks = rng.integers(1, 60, size=200).astype(np.float32)
  ranks[::7] += 0.5  # median-mode ranks
  valid = rng.random(200) > 0.2
  cutoffs = (1, 5, 20, 50)
  sums = evaluation.metric_sums(jnp.asarray(ranks), jnp.asarray(valid), cutoffs)
  got = evaluation.finalize(sums)
  want = brute_force_metrics(ranks, valid, cutoffs)
  assert set(got) == set(want)
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


def test_hand_made_recall_and_mrr_at_20():
  ranks = jnp.array([1.0, 3.0, 25.0, 20.0, 21.0, 2.0])
  valid = jnp.array([True, True, True, True, True, False])
  got = evaluation.finalize(evaluation.metric_sums(ranks, valid, (20,)))
  assert set(got) == {'recall@20', 'mrr@20', 'ndcg@20', 'count'}
  assert got['count'] == 5.0
  np.testing.assert_allclose(got['recall@20'], 3 / 5)
  np.testing.assert_allclose(got['mrr@20'], (1 + 1 / 3 + 1 / 20) / 5, rtol=1e-6)
  np.testing.assert_allclose(got['ndcg@20'], (1 + 1 / 2 + 1 / np.log2(21)) / 5, rtol=1e-6)


def test_sums_accumulate_over_batches():
  cutoffs = (5, 20)
  total = evaluation.zero_sums(cutoffs)
  all_ranks, all_valid = [], []
  rng = np.random.default_rng(4)
  for _ in range(3):
    ranks = rng.integers(1, 40, size=10).astype(np.float32)
    valid = rng.random(10) > 0.3
    sums = evaluation.metric_sums(jnp.asarray(ranks), jnp.asarray(valid), cutoffs)
    total = jax.tree.map(jnp.add, total, sums)
    all_ranks.append(ranks)
    all_valid.append(valid)
  got = evaluation.finalize(total)
  want = brute_force_metrics(np.concatenate(all_ranks), np.concatenate(all_valid), cutoffs)
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


def test_finalize_without_rows_is_nan():
  got = evaluation.finalize(evaluation.zero_sums((20,)))
  assert got['count'] == 0.0 and np.isnan(got['recall@20'])


def test_everything_under_one_jit():
  query, item_emb, item_bias, targets = _tied_problem(5, batch=6, n_items=23)
  valid = np.array([True, True, False, True, True, True])

  @functools.partial(jax.jit, static_argnames=('mode', 'chunk_size', 'cutoffs'))
  def evaluate(query, item_emb, item_bias, targets, valid, mode, chunk_size, cutoffs):
    ranks = evaluation.target_ranks(query, item_emb, item_bias, targets, mode, chunk_size)
    return evaluation.metric_sums(ranks, valid, cutoffs)

  sums = evaluate(
    jnp.asarray(query),
    jnp.asarray(item_emb),
    jnp.asarray(item_bias),
    jnp.asarray(targets),
    jnp.asarray(valid),
    mode='median',
    chunk_size=4,
    cutoffs=(1, 3, 10),
  )
  ranks = brute_force_ranks(_scores_np(query, item_emb, item_bias), targets, 'median')
  want = brute_force_metrics(ranks, valid, (1, 3, 10))
  got = evaluation.finalize(sums)
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-6, err_msg=name)


def _one_session_at_a_time(model, events, cutoffs, mode):
  """Reference: each session walked alone from a zero state, next items ranked by brute force.

  Returns the metrics and [E] each event's rank as a target (NaN for a session's first event).
  """
  offsets = events.session_offsets()
  by_event = np.full(events.num_events, np.nan)
  for s in range(len(offsets) - 1):
    items = events.item[offsets[s] : offsets[s + 1]]
    hidden = model.init_hidden(1)
    for t in range(len(items) - 1):
      out, hidden = model.encode(jnp.asarray(items[t : t + 1]), hidden)
      scores = np.asarray(model.score_all(out), np.float64)
      rank = brute_force_ranks(scores, np.asarray(items[t + 1 : t + 2]), mode)[0]
      by_event[offsets[s] + t + 1] = rank
  ranks = by_event[~np.isnan(by_event)]
  return brute_force_metrics(ranks, np.ones(len(ranks), bool), cutoffs), by_event


@pytest.mark.parametrize('batch_size, steps_per_call', [(1, 64), (3, 4), (7, 5), (40, 1)])
def test_session_driver_equals_one_session_at_a_time(batch_size, steps_per_call):
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 9, size=23)  # one-event sessions predict nothing
  session = np.repeat(np.arange(len(lengths)), lengths)
  item = rng.integers(1, 30, size=len(session)).astype(np.int32)
  events = Events(session=session, item=item, time=np.arange(len(session), dtype=np.float64))
  model = GRU4Rec(30, layers=(8,), rngs=nnx.Rngs(3))
  want, want_ranks = _one_session_at_a_time(model, events, (1, 5, 20), 'median')
  options = dict(batch_size=batch_size, cutoffs=(1, 5, 20), mode='median')
  got, ranks = evaluation.rank_sessions(model, events, steps_per_call=steps_per_call, **options)
  assert got['count'] == np.sum(lengths - 1)
  for name, value in want.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-5, err_msg=name)
  # Each target event's own rank, at its row of the table (rank ties only at exact score ties).
  np.testing.assert_array_equal(np.isnan(ranks), np.isnan(want_ranks))
  np.testing.assert_allclose(ranks, want_ranks, rtol=1e-6)
  assert evaluation.evaluate_sessions(model, events, **options) == got


def test_bad_arguments_raise():
  args = (jnp.zeros((2, 3)), jnp.zeros((5, 3)), None, jnp.zeros((2,), jnp.int32))
  with pytest.raises(ValueError, match='conservative'):
    evaluation.target_ranks(*args, mode='standard')
  with pytest.raises(ValueError, match='chunk_size'):
    evaluation.target_ranks(*args, chunk_size=0)
  with pytest.raises(ValueError, match='median'):
    evaluation.ranks_from_scores(jnp.zeros((2, 5)), jnp.zeros((2,), jnp.int32), 'best')
  # Every evaluator refuses cutoffs that would report a recall@0 of 0 (or nothing at all).
  events = Events(session=np.zeros(3, np.int64), item=np.arange(1, 4), time=np.arange(3.0))
  model = GRU4Rec(5, layers=(4,), rngs=nnx.Rngs(0))
  for cutoffs in ((), (0,), (20, -1)):
    with pytest.raises(ValueError, match='cutoffs must be positive integers'):
      evaluation.rank_sessions(model, events, cutoffs=cutoffs)
  with pytest.raises(ValueError, match='Unknown tie mode'):
    evaluation.rank_sessions(model, events, mode='best')


@pytest.mark.parametrize('mode', evaluation.MODES)
def test_nan_scores_rank_the_target_last_not_first(mode):
  """A diverged model's NaN scores compare false both ways; they must not make a rank of 0."""
  scores = jnp.array([[0.1, jnp.nan, 0.3, 0.2], [jnp.nan] * 4, [0.5, 0.1, 0.2, 0.3]])
  targets = jnp.array([2, 1, 0])
  ranks = np.asarray(evaluation.ranks_from_scores(scores, targets, mode))
  assert ranks[0] == 2.0  # the NaN item ranks ahead of the target (0.3)
  assert ranks[1] >= 4.0  # a NaN target is behind every item
  assert ranks[2] == 1.0
