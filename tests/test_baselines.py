"""Baselines vs brute-force re-computations of their reference code; prefix evaluator; runner."""

import json
import math

import numpy as np
import pytest

from seqrec import baselines, comparison, train
from seqrec.baselines import bprmf, evaluate, sknn
from seqrec.configs import baseline_base
from seqrec.configs import test as test_config
from seqrec.data import Events, load_session_data
from seqrec.models import build_model

N_ITEMS = 25


def random_events(seed: int, n_sessions: int = 80, n_items: int = N_ITEMS) -> Events:
  """Sessions of 1-8 clicks with repeats; start times on a coarse grid so end times can tie."""
  rng = np.random.default_rng(seed)
  session, item, time = [], [], []
  for s in range(n_sessions):
    length = int(rng.integers(1, 9))
    start = float(rng.integers(0, 30)) * 10.0
    favourites = rng.choice(n_items, size=3, replace=False)
    for j in range(length):
      pick = favourites[rng.integers(3)] if rng.random() < 0.6 else rng.integers(n_items)
      session.append(s)
      item.append(int(pick))
      time.append(start + j)
  return Events(np.array(session, np.int64), np.array(item, np.int32), np.array(time))


def sessions_of(events: Events) -> list[list[int]]:
  offsets = events.session_offsets()
  return [list(events.item[a:b]) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def end_times(events: Events) -> list[float]:
  offsets = events.session_offsets()
  return [float(events.time[b - 1]) for b in offsets[1:]]


PREFIXES = [
  [3],
  [3, 7],
  [7, 3, 3],
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  [24, 24],
  [5, 9, 5, 9, 1],
]


def fitted(name: str, events: Events, **params):
  model = baselines.build_baseline(name, params, seed=0)
  model.fit(events, N_ITEMS)
  return model


def scores_of(model, prefixes=PREFIXES) -> np.ndarray:
  return np.asarray(model.score(baselines.Prefixes.from_lists(prefixes, N_ITEMS)))


# --- POP and S-POP -------------------------------------------------------------------------------


def test_pop_scores_are_training_counts():
  events = random_events(0)
  counts = [0] * N_ITEMS
  for s in sessions_of(events):
    for i in s:
      counts[i] += 1
  scores = scores_of(fitted('pop', events))
  assert scores.shape == (len(PREFIXES), N_ITEMS)
  np.testing.assert_array_equal(scores, np.tile(counts, (len(PREFIXES), 1)))


def same_order(ours: np.ndarray, reference: np.ndarray) -> bool:
  """Whether two [P, N] score matrices order every pair of items in a row alike (ties too)."""
  pairwise = lambda s: np.sign(s[:, :, None] - s[:, None, :])
  return bool(np.array_equal(pairwise(ours.astype(np.float64)), pairwise(reference)))


def test_spop_orders_items_as_the_official_formula():
  events = random_events(1)
  supp = np.bincount(events.item, minlength=N_ITEMS).astype(np.float64)
  reference = np.zeros((len(PREFIXES), N_ITEMS))
  for p, prefix in enumerate(PREFIXES):  # baselines.SessionPop: supp_{s,i} + supp_i / (supp_i + 1)
    for i in range(N_ITEMS):
      reference[p, i] = prefix.count(i) + supp[i] / (supp[i] + 1)
  scores = scores_of(fitted('spop', events))
  assert scores.dtype == np.int32
  assert same_order(scores, reference)


# --- Item-KNN ------------------------------------------------------------------------------------


def itemknn_reference(events: Events, n_sims: int, lmbd: float, alpha: float) -> np.ndarray:
  """[N, N] similarities kept by baselines.ItemKNN, computed with its loops (ties: smaller id)."""
  sessions = sessions_of(events)
  supp = np.zeros(N_ITEMS)
  for s in sessions:
    for i in s:
      supp[i] += 1
  sims = np.zeros((N_ITEMS, N_ITEMS))
  for i in range(N_ITEMS):
    row = np.zeros(N_ITEMS)
    for s in sessions:
      for e in s:  # every event of item i ...
        if e == i:
          for other in s:  # ... adds 1 for every event of its session
            row[other] += 1
    row[i] = 0
    norm = (supp[i] + lmbd) ** alpha * (supp + lmbd) ** (1 - alpha)
    norm[norm == 0] = 1
    row = row / norm
    best = sorted((j for j in range(N_ITEMS) if row[j] > 0), key=lambda j: (-row[j], j))[:n_sims]
    sims[i, best] = row[best]
  return sims


@pytest.mark.parametrize('n_sims, lmbd, alpha', [(100, 20.0, 0.5), (3, 2.0, 0.8), (5, 0.0, 1.0)])
def test_itemknn_matches_official_loops(n_sims, lmbd, alpha):
  events = random_events(2)
  reference = itemknn_reference(events, n_sims, lmbd, alpha)
  model = fitted('itemknn', events, n_sims=n_sims, lmbd=lmbd, alpha=alpha, block_items=7)
  np.testing.assert_allclose(model.sims.toarray(), reference, rtol=1e-6)
  expected = reference[[p[-1] for p in PREFIXES]]
  np.testing.assert_allclose(scores_of(model), expected, rtol=1e-6)


# --- SKNN and V-SKNN: session-rec's ContextKNN / VMContextKNN with dicts and sets ----------------


class SessionRecKNN:
  """session-rec's candidate and neighbour search, on Python sets (recency ties: later session)."""

  def __init__(self, events: Events, k: int, sample_size: int):
    self.k, self.sample_size = k, sample_size
    self.session_items = [set(s) for s in sessions_of(events)]
    ends = end_times(events)
    self.recency = {s: (ends[s], s) for s in range(len(ends))}
    self.item_sessions = {}
    for s, items in enumerate(self.session_items):
      for i in items:
        self.item_sessions.setdefault(i, set()).add(s)

  def candidates(self, prefix: list[int]) -> set[int]:
    relevant = set()
    for i in prefix:
      relevant |= self.item_sessions.get(i, set())
    if self.sample_size and len(relevant) > self.sample_size:
      newest = sorted(relevant, key=lambda s: self.recency[s], reverse=True)
      relevant = set(newest[: self.sample_size])
    return relevant

  def neighbours(self, similarities: dict[int, float]) -> list[tuple[int, float]]:
    positive = [(s, sim) for s, sim in similarities.items() if sim > 0]
    positive.sort(key=lambda e: (e[1], self.recency[e[0]]), reverse=True)
    return positive[: self.k]


def sknn_reference(events, prefixes, k, sample_size, similarity) -> np.ndarray:
  knn = SessionRecKNN(events, k, sample_size)
  out = np.zeros((len(prefixes), N_ITEMS))
  for p, prefix in enumerate(prefixes):
    items = set(prefix)
    sims = {}
    for s in knn.candidates(prefix):
      other = knn.session_items[s]
      shared = len(items & other)
      if similarity == 'cosine':
        sims[s] = shared / math.sqrt(len(items) * len(other))
      else:
        sims[s] = shared / len(items | other)
    for s, sim in knn.neighbours(sims):
      for i in knn.session_items[s]:
        out[p, i] += sim
  return out


@pytest.mark.parametrize(
  'k, sample_size, similarity',
  [(100, 1000, 'cosine'), (3, 6, 'cosine'), (4, 0, 'jaccard'), (2, 10, 'jaccard')],
)
def test_sknn_matches_session_rec_procedure(k, sample_size, similarity):
  events = random_events(3)
  model = fitted('sknn', events, k=k, sample_size=sample_size, similarity=similarity)
  reference = sknn_reference(events, PREFIXES, k, sample_size, similarity)
  np.testing.assert_allclose(scores_of(model), reference, rtol=1e-6, atol=1e-7)


def vsknn_reference(events, prefixes, k, sample_size, weighting, weighting_score, idf_weighting):
  knn = SessionRecKNN(events, k, sample_size)
  supp = np.bincount(events.item, minlength=N_ITEMS)
  idf = {i: math.log(len(knn.session_items) / supp[i]) for i in range(N_ITEMS) if supp[i]}
  out = np.zeros((len(prefixes), N_ITEMS))
  for p, prefix in enumerate(prefixes):
    length = len(prefix)
    weight = {}
    for position, i in enumerate(prefix, start=1):  # a repeated item keeps its last position
      weight[i] = float(
        sknn.position_weight(weighting, np.array([position]), np.array([length]))[0]
      )
    sims = {}
    for s in knn.candidates(prefix):
      shared = sorted(set(prefix) & knn.session_items[s])
      sims[s] = sum(weight[i] for i in shared) / len(weight)
    for s, sim in knn.neighbours(sims):
      step = next(n for n, i in enumerate(reversed(prefix), start=1) if i in knn.session_items[s])
      decay = float(sknn.step_weight(weighting_score, np.array([step]))[0])
      for i in knn.session_items[s]:
        out[p, i] += sim * (1 + idf_weighting * idf[i]) * decay
  return out


@pytest.mark.parametrize(
  'k, sample_size, weighting, weighting_score, idf_weighting',
  [
    (100, 1000, 'div', 'div', 0.0),
    (3, 6, 'linear', 'linear', 0.0),
    (4, 0, 'log', 'quadratic', 1.0),
    (2, 10, 'quadratic', 'log', 0.5),
    (5, 8, 'same', 'same', 0.0),
  ],
)
def test_vsknn_matches_session_rec_procedure(
  k, sample_size, weighting, weighting_score, idf_weighting
):
  events = random_events(4)
  params = dict(
    k=k,
    sample_size=sample_size,
    weighting=weighting,
    weighting_score=weighting_score,
    idf_weighting=idf_weighting,
  )
  model = fitted('vsknn', events, **params)
  reference = vsknn_reference(events, PREFIXES, **params)
  np.testing.assert_allclose(scores_of(model), reference, rtol=1e-5, atol=1e-7)


def test_session_rec_weightings():
  position = np.array([1, 5, 10, 12])
  length = np.array([12, 12, 12, 12])
  np.testing.assert_allclose(sknn.position_weight('div', position, length), position / 12)
  np.testing.assert_allclose(sknn.position_weight('linear', position, length), [0, 0.3, 0.8, 1])
  np.testing.assert_allclose(
    sknn.position_weight('log', position, length), 1 / np.log10(12 - position + 1.7)
  )
  step = np.array([1, 2, 10, 11])
  np.testing.assert_allclose(sknn.step_weight('div', step), 1 / step)
  np.testing.assert_allclose(sknn.step_weight('linear', step), [0.9, 0.8, 0.0, 0.0], atol=1e-12)
  np.testing.assert_allclose(sknn.step_weight('quadratic', step), 1 / step**2)


def test_item_session_truncation_keeps_the_exact_sample():
  """The per-item truncation gives the same result as keeping every session per item."""
  events = random_events(5, n_sessions=200)
  few = fitted('sknn', events, k=5, sample_size=4)
  reference = sknn_reference(events, PREFIXES, 5, 4, 'cosine')
  assert few.item_sessions.nnz < fitted('sknn', events, k=5, sample_size=0).item_sessions.nnz
  np.testing.assert_allclose(scores_of(few), reference, rtol=1e-6, atol=1e-7)


# --- BPR-MF ---------------------------------------------------------------------------------------


def official_bpr_updates(sessions, items, triples, lr, lambda_session, lambda_item, batch_size):
  """baselines.BPR.update on float64 copies; a minibatch's updates all start from its parameters."""
  sessions, items = sessions.astype(np.float64), items.astype(np.float64)
  for start in range(0, len(triples), batch_size):
    d_sessions, d_items = np.zeros_like(sessions), np.zeros_like(items)
    for s, p, n in triples[start : start + batch_size]:
      u, ip, ineg = sessions[s].copy(), items[p].copy(), items[n].copy()
      c = 1.0 - 1.0 / (1.0 + np.exp(-(ip @ u - ineg @ u)))
      d_sessions[s] += lr * (c * (ip - ineg) - lambda_session * u)
      d_items[p] += lr * (c * u - lambda_item * ip)
      d_items[n] += lr * (-c * u - lambda_item * ineg)
    sessions, items = sessions + d_sessions, items + d_items
  return sessions, items


@pytest.mark.parametrize('batch_size', [1, 4])
def test_bpr_sgd_matches_the_official_update(batch_size):
  rng = np.random.default_rng(6)
  n_sessions, n_items, dim, n = 5, 7, 4, 12
  sessions = rng.uniform(-0.5, 0.5, (n_sessions, dim)).astype(np.float32)
  items = rng.uniform(-0.5, 0.5, (n_items, dim)).astype(np.float32)
  triples = np.stack(
    [
      rng.integers(n_sessions, size=n),
      rng.integers(n_items, size=n),
      rng.integers(n_items, size=n),
    ],
    axis=1,
  )
  triples[0, 2] = triples[0, 1]  # a negative equal to its positive
  triples[1, 0] = triples[2, 0]  # a session twice in a minibatch
  hyper = (np.float32(0.3), np.float32(0.01), np.float32(0.02))
  pad = -n % batch_size
  grid = lambda x: np.pad(x, (0, pad)).reshape(-1, batch_size).astype(np.int32)
  valid = grid(np.ones(n, bool)).astype(bool)
  (sessions_new, items_new), log_lik = bprmf.sgd_steps(
    (sessions, items), grid(triples[:, 0]), grid(triples[:, 1]), grid(triples[:, 2]), valid, hyper
  )
  sessions_ref, items_ref = official_bpr_updates(
    sessions, items, triples, 0.3, 0.01, 0.02, batch_size
  )
  np.testing.assert_allclose(sessions_new, sessions_ref, atol=2e-6)
  np.testing.assert_allclose(items_new, items_ref, atol=2e-6)
  assert float(log_lik) < 0


def test_bpr_scores_are_mean_prefix_factors_times_item_factors():
  events = random_events(7)
  model = fitted('bprmf', events, n_factors=8, n_iterations=2, batch_size=16)
  factors = model.item_factors.astype(np.float64)
  reference = np.stack([factors[p].mean(axis=0) @ factors.T for p in PREFIXES])
  np.testing.assert_allclose(scores_of(model), reference, rtol=1e-4, atol=1e-6)


def test_bpr_learns_and_is_seeded():
  events = random_events(8, n_sessions=300)
  a = fitted('bprmf', events, n_factors=8, n_iterations=3)
  b = fitted('bprmf', events, n_factors=8, n_iterations=3)
  np.testing.assert_array_equal(a.item_factors, b.item_factors)
  untrained = fitted('bprmf', events, n_factors=8, n_iterations=0)
  assert not np.allclose(a.item_factors, untrained.item_factors)


# --- The prefix evaluator -------------------------------------------------------------------------


def tiny_config(model: str):
  config = baseline_base.get_config()
  config.model = model
  config.data = test_config.get_config().data
  config.data.update(dict(synthetic_sessions=1500, synthetic_items=300))  # as conftest's runs
  config.eval.batch_size = 100
  return config


def test_prediction_targets_are_the_gru4rec_evaluators():
  gru_config = test_config.get_config()
  data = load_session_data(gru_config.data)
  model = build_model(gru_config, data.n_items, seed=0)
  expected = train.evaluate(model, data.test, gru_config)['count']
  target, start = evaluate.prediction_targets(data.test)
  assert len(target) == expected
  assert np.all(data.test.session[target] == data.test.session[start])
  metrics = evaluate.evaluate(fitted_on(data, 'pop'), data.test, data.n_items, batch_size=64)
  assert metrics['count'] == expected


def fitted_on(data, name, **params):
  model = baselines.build_baseline(name, params)
  model.fit(data.train, data.n_items)
  return model


@pytest.mark.parametrize('mode', ['conservative', 'optimistic', 'median'])
def test_evaluator_matches_a_loop_over_predictions(mode):
  data = load_session_data(tiny_config('itemknn').data)
  model = fitted_on(data, 'itemknn')
  sims = model.sims.toarray()
  hits, reciprocal, count = 0, 0.0, 0
  for session in sessions_of(data.test):
    for t in range(1, len(session)):
      scores, target = sims[session[t - 1]], session[t]
      above = np.sum(scores > scores[target])
      tied = np.sum(scores == scores[target])  # the target included
      rank = {'conservative': above + tied, 'optimistic': above + 1}.get(
        mode, above + (tied + 1) / 2
      )
      hits += rank <= 20
      reciprocal += 1 / rank if rank <= 20 else 0.0
      count += 1
  # An odd batch size leaves a short last batch.
  metrics = evaluate.evaluate(model, data.test, data.n_items, batch_size=37, mode=mode)
  assert metrics['count'] == count
  assert metrics['recall@20'] == pytest.approx(hits / count)
  assert metrics['mrr@20'] == pytest.approx(reciprocal / count, rel=1e-5)


def test_pop_through_the_evaluator_is_popularity_metrics():
  data = load_session_data(tiny_config('pop').data)
  metrics = evaluate.evaluate(fitted_on(data, 'pop'), data.test, data.n_items, cutoffs=(5, 20))
  expected = train.popularity_metrics(data, data.test, (5, 20), 'conservative')
  assert metrics == pytest.approx(expected)


# --- End to end through train.train_and_evaluate --------------------------------------------------


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  out = {}
  for name in baselines.BASELINES:
    workdir = tmp_path_factory.mktemp(name)
    config = tiny_config(name)
    if name == 'bprmf':
      config.baseline.bprmf.n_factors = 16
    out[name] = (workdir, train.train_and_evaluate(config, str(workdir)))
  return out


def test_every_baseline_runs_end_to_end(runs):
  for name, (workdir, result) in runs.items():
    assert result['epochs'] == 0 and result['best_epoch'] == -1, name
    assert math.isnan(result['train_events_per_sec_median'])
    assert result['fit_seconds'] >= 0 and result['test_events_per_sec'] > 0
    assert result['test']['count'] == result['popularity_test']['count'] > 100
    # Strict JSON: the NaN training speed is written as null (NaN is not JSON).
    on_disk = json.loads(
      (workdir / 'final_metrics.json').read_text(), parse_constant=lambda c: pytest.fail(c)
    )
    assert on_disk['test'] == result['test'] and on_disk['train_events_per_sec_median'] is None
    lines = [json.loads(x) for x in (workdir / 'metrics.jsonl').read_text().splitlines()]
    assert lines[-1]['test/recall@20'] == result['test']['recall@20']
    assert json.loads((workdir / 'config.json').read_text())['model'] == name
    assert (workdir / 'item_vocab.npz').exists()


def test_pop_run_is_the_popularity_baseline(runs):
  _, result = runs['pop']
  assert result['test'] == pytest.approx(result['popularity_test'])


def test_neighbourhood_methods_beat_popularity(runs):
  pop = runs['pop'][1]['test']
  for name in ('itemknn', 'sknn', 'vsknn'):
    test = runs[name][1]['test']
    assert test['recall@20'] > 1.5 * pop['recall@20'], name
    assert test['mrr@20'] > 2.0 * pop['mrr@20'], name


def test_rerun_replaces_metrics(runs):
  workdir, result = runs['itemknn']
  again = train.train_and_evaluate(tiny_config('itemknn'), str(workdir))
  assert again['test'] == result['test']
  assert len((workdir / 'metrics.jsonl').read_text().splitlines()) == 1


def test_validation_split_is_scored_and_trains_on_train_tr(tmp_path):
  config = tiny_config('itemknn')
  config.data.valid_fraction = 0.1
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result['valid']['count'] > 0
  lines = [json.loads(x) for x in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert 'valid/recall@20' in lines[0] and 'test/recall@20' in lines[1]


def test_the_popularity_column_counts_what_the_models_train_on(tmp_path):
  """With a validation split the models fit on train_tr; the POP column beside them did count
  all of train, so it differed from the `pop` baseline's own run on the same data."""
  config = tiny_config('pop')
  config.data.valid_fraction = 0.2
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result['test'] == pytest.approx(result['popularity_test'])


def test_model_workdir_is_refused(tmp_path):
  (tmp_path / 'checkpoints').mkdir()
  with pytest.raises(Exception, match='fresh --workdir'):
    train.train_and_evaluate(tiny_config('pop'), str(tmp_path))


@pytest.mark.parametrize(
  'model, field, value, message',
  [
    ('sknn', 'k', 0, 'positive'),
    ('vsknn', 'weighting', 'exp', 'linear'),
    ('itemknn', 'alpha', 1.5, r'\[0, 1\]'),
    ('bprmf', 'learning_rate', 0.0, 'positive'),
  ],
)
def test_bad_hyperparameters_name_the_flag(model, field, value, message):
  config = tiny_config(model)
  config.baseline[model][field] = value
  with pytest.raises(train.ConfigError, match=f'--config.baseline.{model}.{field}=.*{message}'):
    train.validate_config(config)


def test_a_diverging_bprmf_stops_instead_of_testing_nan_scores(tmp_path):
  """NaN factors tie every item, so the test would report Recall 0 as if it were a result."""
  config = tiny_config('bprmf')
  config.baseline.bprmf.learning_rate = 1e6
  with pytest.raises(train.TrainingDivergedError, match='bprmf.learning_rate'):
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / 'final_metrics.json').exists()


def test_a_hyperparameter_the_baseline_lacks_is_named():
  """A config file may add fields the command line could not; one the baseline lacks is a named
  config error, not a TypeError from its constructor."""
  config = tiny_config('itemknn')
  config.baseline.itemknn.n_neighbours = 5
  with pytest.raises(train.ConfigError, match=r"config.baseline.itemknn holds .*'n_neighbours'"):
    train.validate_config(config)


def test_unknown_model_lists_models_and_baselines():
  config = tiny_config('pop')
  config.model = 'knn'
  with pytest.raises(train.ConfigError, match='gru4rec.*itemknn'):
    train.validate_config(config)


def test_test_ranks_pair_a_baseline_with_gru4rec_on_the_same_predictions(runs, trained_run):
  """A baseline run and a GRU4Rec run on the same data save the same predictions' ranks."""
  pop_workdir, pop_result = runs['pop']
  pop = comparison.load_test_ranks(str(pop_workdir))
  gru = comparison.load_test_ranks(str(trained_run.workdir))
  ranks_pop, ranks_gru = comparison.pair(pop, gru)
  assert len(ranks_pop) == pop_result['test']['count'] == trained_run.result['test']['count']
  for ranks, result in ((ranks_pop, pop_result), (ranks_gru, trained_run.result)):
    for metric in ('recall@20', 'mrr@20'):
      mean = comparison.per_prediction(ranks, metric).mean()
      assert mean == pytest.approx(result['test'][metric], rel=1e-5), metric
  gain = comparison.paired_difference(
    comparison.per_prediction(ranks_pop, 'recall@20'),
    comparison.per_prediction(ranks_gru, 'recall@20'),
    n_resamples=1000,
  )
  assert gain['ci_low'] > 0 and gain['p_value'] < 1e-6  # GRU4Rec is far ahead of POP here
