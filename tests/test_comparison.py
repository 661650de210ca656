"""Tests of the paired comparison of runs: per-prediction metrics, pairing, bootstrap, t-test."""

import dataclasses
import json
import pathlib
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from seqrec import comparison
from seqrec.data.errors import DataError
from seqrec.evaluation import finalize, metric_sums

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_per_prediction_values_average_to_the_evaluators_metrics():
  rng = np.random.default_rng(0)
  ranks = rng.integers(1, 60, size=500).astype(np.float32)
  ranks[:50] += 0.5  # median tie mode gives half ranks
  cutoffs = (1, 5, 10, 20)
  expected = finalize(metric_sums(jnp.asarray(ranks), jnp.ones(500, bool), cutoffs))
  for name in ('recall', 'mrr', 'ndcg'):
    for k in cutoffs:
      value = comparison.per_prediction(ranks, f'{name}@{k}').mean()
      assert value == pytest.approx(expected[f'{name}@{k}'], rel=1e-5)
  with pytest.raises(ValueError, match="metric 'hr@10': expected recall@K"):
    comparison.per_prediction(ranks, 'hr@10')


def _ranks(keys, targets, ranks, path, tie_mode='conservative'):
  keys, targets, ranks = np.asarray(keys), np.asarray(targets), np.asarray(ranks, np.float32)
  context = np.ones(len(keys), np.int64)
  return comparison.RunRanks(
    keys=keys,
    targets=targets,
    ranks=ranks,
    sampled_ranks=None,
    sampled_protocol='',
    history_length=context,
    target_count=context,
    tie_mode=tie_mode,
    exclude_seen=False,
    path=path,
  )


def test_quantile_buckets_split_by_value_and_never_split_a_value():
  values = np.array([1, 1, 1, 1, 2, 3, 5, 8, 13, 21])
  buckets = comparison.quantile_buckets(values, 2)
  assert [label for label, _ in buckets] == ['1-2', '3-21']
  assert sum(mask.sum() for _, mask in buckets) == len(values)
  (label, mask), *rest = comparison.quantile_buckets(np.full(5, 4), 4)
  assert (label, mask.all(), rest) == ('4', True, [])  # one value: one group


def test_pairing_follows_the_keys_and_refuses_other_predictions():
  a = _ranks([3, 1, 2], [30, 10, 20], [1, 2, 3], 'a')
  b = _ranks([1, 2, 3], [10, 20, 30], [5, 6, 7], 'b')  # the same predictions, another order
  ranks_a, ranks_b = comparison.pair(a, b)
  np.testing.assert_array_equal(ranks_a, [1, 2, 3])
  np.testing.assert_array_equal(ranks_b, [7, 5, 6])
  with pytest.raises(DataError, match='a and b: the runs were tested on different predictions'):
    comparison.pair(a, _ranks([1, 2, 4], [10, 20, 30], [1, 1, 1], 'b'))
  with pytest.raises(DataError, match='different targets'):
    comparison.pair(a, _ranks([1, 2, 3], [10, 20, 31], [1, 1, 1], 'b'))
  with pytest.raises(DataError, match='different rules'):
    comparison.pair(a, _ranks([1, 2, 3], [10, 20, 30], [1, 1, 1], 'b', tie_mode='median'))
  with pytest.raises(DataError, match='^a and b: no sampled ranks; sampled metrics need every'):
    comparison.pair(a, b, sampled=True)
  with_sampled = dataclasses.replace(a, sampled_ranks=np.ones(3, np.float32))
  with pytest.raises(DataError, match='^b: no sampled ranks'):  # only the run without them
    comparison.pair(with_sampled, b, sampled=True)
  protocol = 'sampled100_uniform_seed0'
  a, b = (
    dataclasses.replace(r, sampled_ranks=np.ones(3, np.float32), sampled_protocol=protocol)
    for r in (a, b)
  )
  np.testing.assert_array_equal(comparison.pair(a, b, sampled=True)[1], [1, 1, 1])
  other = dataclasses.replace(b, sampled_protocol='sampled100_popularity_seed0')
  with pytest.raises(DataError, match='other sampled negatives'):
    comparison.pair(a, other, sampled=True)


def test_paired_difference_finds_a_planted_gain_and_not_a_null_one():
  rng = np.random.default_rng(1)
  a = rng.random(2000)  # per-user values vary a lot between users ...
  b = a + 0.02 + 0.01 * rng.standard_normal(2000)  # ... B adds a small, consistent gain
  result = comparison.paired_difference(a, b, n_resamples=2000, seed=0)
  assert result['n'] == 2000
  assert result['diff'] == pytest.approx(np.mean(b - a))
  assert 0.0 < result['ci_low'] < result['diff'] < result['ci_high'] < 0.03
  assert result['p_value'] < 1e-10
  assert result == comparison.paired_difference(a, b, n_resamples=2000, seed=0)  # seeded
  same = comparison.paired_difference(a, a, n_resamples=500)
  assert (same['diff'], same['ci_low'], same['ci_high'], same['p_value']) == (0, 0, 0, 1.0)
  shifted = comparison.paired_difference(a, a + 0.5, n_resamples=500)  # every user gains 0.5
  assert shifted['ci_low'] == shifted['ci_high'] == pytest.approx(0.5)
  assert shifted['p_value'] == 0.0
  single = comparison.paired_difference(a[:1], b[:1])
  assert single['n'] == 1 and np.isnan(single['p_value']) and np.isnan(single['ci_low'])
  noise = comparison.paired_difference(a, a + 0.01 * rng.standard_normal(2000), n_resamples=2000)
  assert noise['ci_low'] < 0.0 < noise['ci_high']


def test_compare_script_on_saved_ranks(tmp_path):
  keys, targets = np.arange(1, 401), np.arange(1001, 1401)
  rng = np.random.default_rng(2)
  ranks_a = rng.integers(1, 40, size=400).astype(np.float32)
  history = np.arange(400) % 8 + 1  # [P] 1..8 items before each target
  # B ranks every target a little higher, and the ones with long histories a lot higher.
  ranks_b = np.maximum(ranks_a - np.where(history > 4, 10, 3), 1)
  # A's directory has a comma in its name, as a sweep's runs do: it is one run, not two.
  sides = (('a-lr=1,d=8', ranks_a, slice(None)), ('b', ranks_b, slice(None, None, -1)))
  for name, ranks, order in sides:
    (tmp_path / name).mkdir()
    comparison.save_test_ranks(
      str(tmp_path / name),
      keys=keys[order],
      targets=targets[order],
      ranks=ranks[order],
      sampled_ranks=None,
      history_length=history[order],
      target_count=np.ones(400, np.int64),
      tie_mode='conservative',
      exclude_seen=True,
    )
  out = tmp_path / 'compare.jsonl'
  command = [sys.executable, str(ROOT / 'experiments' / 'compare.py'), str(tmp_path / 'a-lr=1,d=8')]
  done = subprocess.run(
    [*command, str(tmp_path / 'b'), '--metrics=ndcg@10,recall@20', f'--output={out}'],
    capture_output=True,
    text=True,
  )
  assert done.returncode == 0, done.stderr
  assert '400 paired test predictions' in done.stdout
  row = json.loads(out.read_text())
  expected = comparison.per_prediction(ranks_b, 'ndcg@10') - comparison.per_prediction(
    ranks_a, 'ndcg@10'
  )
  assert row['ndcg@10']['diff'] == pytest.approx(expected.mean())
  assert row['ndcg@10']['ci_low'] > 0 and row['recall@20']['p_value'] < 1e-3
  # Several runs a side: each prediction's value is their mean (here B twice: the same result).
  twice = f'{tmp_path / "b"},{tmp_path / "b"}'
  again = subprocess.run(
    [*command, twice, f'--output={out}', '--metrics=ndcg@10'], capture_output=True, text=True
  )
  assert again.returncode == 0
  assert json.loads(out.read_text().splitlines()[-1])['ndcg@10'] == row['ndcg@10']
  # Within groups of predictions by history length: the gain of the long histories is larger.
  by = subprocess.run(
    [*command, str(tmp_path / 'b'), '--metrics=ndcg@10', '--by=history_length', '--buckets=2'],
    capture_output=True,
    text=True,
  )
  assert by.returncode == 0, by.stderr
  assert '  1-4 ' in by.stdout and '  5-8 ' in by.stdout
  assert by.stdout.count('n=200') == 2
  missing = subprocess.run([*command, str(tmp_path)], capture_output=True, text=True)
  assert missing.returncode == 2 and 'Traceback' not in missing.stderr
  assert 'test_ranks.npz not found' in missing.stderr


def test_a_cut_off_below_one_is_refused():
  with pytest.raises(ValueError, match=r"metric 'ndcg@0': expected a cut-off K >= 1"):
    comparison.per_prediction(np.ones(3), 'ndcg@0')
