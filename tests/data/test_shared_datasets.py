"""Checks on the real public files in ../shared/datasets (skipped when that folder is absent)."""

import numpy as np
import pytest

from seqrec.data import load_session_data, readers

pytestmark = pytest.mark.shared_data

RSC15 = 'yoochoose_rsc15_100k/yoochoose-clicks-100k_{}.txt'


def _counts(events) -> tuple[int, int, int]:
  return events.num_events, events.num_sessions, len(np.unique(events.item))


def test_rsc15_100k_given_split_matches_provenance(shared_datasets):
  data = load_session_data(
    dict(
      format='gru4rec_tsv',
      train_path=shared_datasets / RSC15.format('train_full'),
      test_path=shared_datasets / RSC15.format('test'),
    )
  )
  assert (data.train.num_events, data.train.num_sessions, data.n_items) == (70_278, 17_794, 2_933)
  assert (data.test.num_events, data.test.num_sessions) == (13_568, 3_416)
  assert len(np.unique(data.test.item)) == 1_771
  assert data.item_counts.sum() == 70_278


def test_rsc15_100k_validation_recipe_reproduces_session_rec(shared_datasets):
  """Carving the last day off train_full gives exactly session-rec's train_tr/train_valid."""
  data = load_session_data(
    dict(
      format='gru4rec_tsv',
      train_path=shared_datasets / RSC15.format('train_full'),
      test_path=shared_datasets / RSC15.format('test'),
      valid_days=1.0,
    )
  )
  for ours, name in ((data.train_tr, 'train_tr'), (data.valid, 'train_valid')):
    theirs = readers.read_gru4rec_tsv(shared_datasets / RSC15.format(name))
    np.testing.assert_array_equal(ours.session, theirs.session)
    np.testing.assert_array_equal(data.vocab.decode(ours.item), theirs.item)
    np.testing.assert_array_equal(ours.time, theirs.time)


def test_raw_yoochoose_sample_is_the_prepared_data_shifted(shared_datasets):
  raw = readers.read_yoochoose_clicks(shared_datasets / 'raw_format_samples/yoochoose-clicks.dat')
  assert (raw.num_events, raw.num_sessions) == (1_000, 272)
  test = readers.read_gru4rec_tsv(shared_datasets / RSC15.format('test'))
  # Session 1 appears in both; session-rec's clock is UTC - 2 h (see its PROVENANCE).
  ours, theirs = raw.select(raw.session == 1), test.select(test.session == 1)
  shared = np.isin(ours.item, theirs.item)
  np.testing.assert_allclose(ours.time[shared][:2] - 7200.0, theirs.time[:2], atol=1e-3)


def test_raw_samples_parse(shared_datasets):
  views = readers.read_diginetica_views(
    shared_datasets / 'diginetica_srgnn_sample/sample_train-item-views.csv'
  )
  assert _counts(views) == (12_391, 2_986, 7_139)
  assert np.count_nonzero(views.user >= 0) == 4_710
  retailrocket = shared_datasets / 'raw_format_samples/retailrocket-sample.csv'
  assert readers.read_retailrocket_events(retailrocket).num_events == 96
  lines = shared_datasets / 'diginetica_dynamicrec_sessions/diginetica.csv'
  assert _counts(readers.read_session_lines(lines)) == (579_478, 70_756, 38_970)
