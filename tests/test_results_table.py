"""Tests of experiments/results_table.py: mean ± std over seeds, references and their deltas."""

import json

import pytest


@pytest.fixture(scope='module')
def results_table(experiment_script):
  return experiment_script('results_table')


RECORDS = [
  {'data': 'd1', 'label': 'a', 'seed': 0, 'test/recall@20': 0.5, 'fit_seconds': 12.0},
  {'data': 'd2', 'label': 'b', 'seed': 0, 'test/recall@20': 0.2},
  {'data': 'd1', 'label': 'a', 'seed': 1, 'test/recall@20': 0.7, 'fit_seconds': 14.0},
]


def _rows(text):
  return [[c.strip() for c in line.strip('|').split('|')] for line in text.splitlines()[2:]]


def test_rows_are_mean_and_sample_std_over_seeds(results_table):
  rows = _rows(results_table.table(RECORDS, ['test/recall@20', 'fit_seconds']))
  # a: mean 0.6, sample std sqrt(0.02); seconds get one decimal; a missing column shows '–'.
  assert rows[0] == ['d1', 'a', '2', '0.6000 ± 0.1414', '13.0 ± 1.4']
  assert rows[1] == ['d2', 'b', '1', '0.2000 ± 0.0000', '–']


def test_reference_columns_and_relative_delta(results_table, tmp_path):
  path = tmp_path / 'reference.json'
  path.write_text(json.dumps({'a': {'test/recall@20': 0.5}}))
  reference = results_table.load_reference(str(path))
  assert reference == results_table.load_reference('{"a": {"test/recall@20": 0.5}}')
  assert results_table.load_reference('') is None
  rows = _rows(results_table.table(RECORDS, ['test/recall@20'], reference))
  assert rows[0][-2:] == ['0.5000', '+20.0%']
  assert rows[1][-2:] == ['–', '–']  # no reference for b


def test_by_data_keeps_a_datasets_rows_together(results_table):
  records = RECORDS + [{'data': 'd1', 'label': 'c', 'seed': 0, 'test/recall@20': 0.1}]
  labels = [r[1] for r in _rows(results_table.table(records, ['test/recall@20'], by_data=True))]
  assert labels == ['a', 'c', 'b']


def test_time_limited_runs_are_left_out_unless_asked(results_table):
  cut = {'data': 'd1', 'label': 'a', 'seed': 2, 'test/recall@20': 0.1, 'epochs': 40}
  records = RECORDS + [{**cut, 'time_limited': True}]
  rows = _rows(results_table.table(records, ['test/recall@20']))
  assert rows[0] == ['d1', 'a', '2', '0.6000 ± 0.1414']  # the cut run does not enter a's mean
  assert len(rows) == 2
  rows = _rows(results_table.table(records, ['test/recall@20'], include_time_limited=True))
  assert rows[0] == ['d1', 'a', '2', '0.6000 ± 0.1414']
  assert rows[2] == ['d1', 'a (time-limited, epoch 40)', '1', '0.1000 ± 0.0000']
  # A finished run's record (time_limited false) is an ordinary row.
  rows = _rows(results_table.table(RECORDS + [{**cut, 'time_limited': False}], ['test/recall@20']))
  assert rows[0][2] == '3'


def test_a_run_resumed_across_time_limits_counts_once_with_its_latest_record(results_table):
  cut = {'data': 'd1', 'label': 'a', 'seed': 2, 'time_limited': True}
  records = RECORDS + [
    {**cut, 'test/recall@20': 0.1, 'epochs': 40},
    {**cut, 'test/recall@20': 0.3, 'epochs': 90},  # the same workdir, trained on
  ]
  rows = _rows(results_table.table(records, ['test/recall@20'], include_time_limited=True))
  assert rows[2:] == [['d1', 'a (time-limited, epoch 90)', '1', '0.3000 ± 0.0000']]
  # Resumed once more without a limit, it finishes and joins the finished seeds.
  finished = {**cut, 'time_limited': False, 'test/recall@20': 0.5, 'epochs': 120}
  rows = _rows(results_table.table(records + [finished], ['test/recall@20']))
  assert rows[0] == ['d1', 'a', '3', '0.5667 ± 0.1155']
  assert len(rows) == 2


def test_a_bad_reference_names_the_flag(results_table):
  with pytest.raises(ValueError, match='--reference=.*not valid JSON'):
    results_table.load_reference('{"a": ')
  with pytest.raises(ValueError, match=r'--reference=.*expected JSON \{label: \{metric: value\}\}'):
    results_table.load_reference('{"a": 0.5}')


def test_a_metric_no_record_has_names_the_flag_and_the_nearest_fields(results_table):
  results_table.check_metrics(RECORDS, ['test/recall@20', 'fit_seconds'])  # each is in a record
  with pytest.raises(
    ValueError, match=r"--metrics: 'test/recall@200' .*did you mean test/recall@20"
  ):
    results_table.check_metrics(RECORDS, ['test/recall@20', 'test/recall@200'])
  with pytest.raises(
    ValueError, match=r"'seed' is a field of none.*; numeric fields: fit_seconds, test/recall@20$"
  ):
    results_table.check_metrics(
      [{k: v for k, v in r.items() if k != 'seed'} for r in RECORDS], ['seed']
    )


def test_rows_of_one_label_from_different_configs_are_refused(results_table):
  rows = [
    {'data': 'd', 'label': 'a', 'seed': 0, 'config_sha256': 'x', 'test/recall@20': 0.5},
    {'data': 'd', 'label': 'a', 'seed': 1, 'config_sha256': 'x', 'test/recall@20': 0.6},
    {'data': 'd', 'label': 'a', 'seed': 2, 'test/recall@20': 0.7},  # an older row: no digest
  ]
  assert _rows(results_table.table(rows, ['test/recall@20']))[0][2] == '3'
  other = {'data': 'd', 'label': 'a', 'seed': 3, 'config_sha256': 'y', 'test/recall@20': 0.9}
  with pytest.raises(ValueError, match=r"label 'a' .* seeds \[0, 1\] with config_sha256 x"):
    results_table.table([*rows, other], ['test/recall@20'])
  # Nor may a later row of another config replace a seed's row.
  with pytest.raises(ValueError, match='different configs'):
    results_table.table([*rows, {**other, 'seed': 0}], ['test/recall@20'])
