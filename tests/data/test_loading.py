"""Tests for `load_session_data`: formats, the recipe end to end, validation, cache and errors."""

import ml_collections
import numpy as np
import pytest

from seqrec.data import DataError, SessionData, default_config, load_session_data, loading
from tests.data.test_preprocess import RAW, TEST_ITEMS, TEST_SESSIONS, TRAIN_ITEMS, TRAIN_SESSIONS


def _tsv(rows) -> str:
  lines = [f'{session}\t{item}\t{time}' for session, item, time in rows]
  return 'SessionId\tItemId\tTime\n' + '\n'.join(lines) + '\n'


@pytest.fixture
def raw_tsv(write):
  shuffled = [RAW[k] for k in np.random.default_rng(0).permutation(len(RAW))]
  return write('raw.tsv', _tsv(shuffled))


def _config(**fields) -> ml_collections.ConfigDict:
  config = default_config()
  config.update(fields)
  return config


def test_recipe_end_to_end_with_vocab_and_counts(raw_tsv):
  data = load_session_data(
    _config(format='gru4rec_tsv', train_path=str(raw_tsv), preprocess=True, min_item_support=3)
  )
  np.testing.assert_array_equal(data.vocab.ids, [10, 20, 30])  # first appearance in train
  np.testing.assert_array_equal(data.train.session, TRAIN_SESSIONS)
  np.testing.assert_array_equal(data.vocab.decode(data.train.item), TRAIN_ITEMS)
  np.testing.assert_array_equal(data.test.session, TEST_SESSIONS)
  np.testing.assert_array_equal(data.vocab.decode(data.test.item), TEST_ITEMS)
  assert data.train.item.dtype == np.int32 and data.test.item.dtype == np.int32
  np.testing.assert_array_equal(data.item_counts, [2, 4, 3])
  assert data.n_items == 3 and data.name == 'raw' and data.valid is None and data.train_tr is None


def test_a_time_column_in_milliseconds_splits_as_seconds_with_time_unit_ms(write):
  """The same clicks written in ms give the same day split with time_unit='ms'."""
  start = 1.4e9  # unix seconds: RAW's times are offsets in seconds
  seconds = write('s.tsv', _tsv([(s, i, start + t) for s, i, t in RAW]))
  millis = write('ms.tsv', _tsv([(s, i, int((start + t) * 1000)) for s, i, t in RAW]))
  options = dict(format='gru4rec_tsv', preprocess=True, min_item_support=3)
  expected = load_session_data(_config(train_path=str(seconds), **options))
  with pytest.raises(DataError, match=r'ms\.tsv: Time value .* looks like milliseconds'):
    load_session_data(_config(train_path=str(millis), **options))
  got = load_session_data(_config(train_path=str(millis), time_unit='ms', **options))
  for split in ('train', 'test'):
    np.testing.assert_array_equal(getattr(got, split).session, getattr(expected, split).session)
    np.testing.assert_array_equal(getattr(got, split).item, getattr(expected, split).item)
    np.testing.assert_allclose(getattr(got, split).time, getattr(expected, split).time)


def test_validation_is_carved_from_train(raw_tsv):
  data = load_session_data(
    {
      'format': 'gru4rec_tsv',
      'train_path': raw_tsv,
      'preprocess': True,
      'min_item_support': 3,
      'valid_days': 1.0,
    }
  )
  # Train ends at 9 days - 1 s; only session 10 ends within the day before.
  np.testing.assert_array_equal(data.valid.session, [10, 10])
  np.testing.assert_array_equal(data.train_tr.session, [1, 1, 3, 3, 5, 5, 5])
  np.testing.assert_array_equal(data.vocab.decode(data.valid.item), [30, 20])
  np.testing.assert_array_equal(data.item_counts_for(data.train_tr), [2, 3, 2])


def test_given_test_file_only_cleaned(write):
  train = write('train.tsv', _tsv([(1, 5, 0.0), (1, 6, 1.0), (2, 5, 2.0), (2, 7, 3.0)]))
  test = write('test.tsv', _tsv([(3, 5, 4.0), (3, 9, 5.0), (4, 6, 6.0), (4, 9, 7.0), (4, 7, 8.0)]))
  data = load_session_data(dict(format='gru4rec_tsv', train_path=train, test_path=test))
  assert data.train.num_events == 4  # no support filter on a processed format
  np.testing.assert_array_equal(data.test.session, [4, 4])
  np.testing.assert_array_equal(data.vocab.decode(data.test.item), [6, 7])


def test_untimed_session_lines_split_by_fraction(write):
  path = write('sessions.csv', ''.join(f'{k % 3 + 1},{k % 2 + 1},3\n' for k in range(10)))
  data = load_session_data(
    dict(format='session_lines', train_path=path, min_item_support=1, test_fraction=0.2)
  )
  np.testing.assert_array_equal(np.unique(data.test.session), [9, 10])  # the last lines
  with pytest.raises(DataError, match='valid_fraction'):
    load_session_data(dict(format='session_lines', train_path=path, valid_days=1.0))


def test_synthetic_format():
  config = _config(format='synthetic', synthetic_sessions=600, synthetic_items=80)
  data = load_session_data(config)
  assert data.name == 'synthetic' and data.n_items <= 80
  assert 0 < data.test.num_sessions < data.train.num_sessions
  assert data.train.time.max() < data.test.session_end_times().min()


def test_cache_round_trip(raw_tsv, tmp_path, monkeypatch):
  config = _config(
    format='gru4rec_tsv',
    train_path=str(raw_tsv),
    preprocess=True,
    min_item_support=3,
    valid_days=1.0,
    cache_dir=str(tmp_path / 'cache'),
  )
  built = load_session_data(config)
  assert len(list((tmp_path / 'cache').glob('*.npz'))) == 1

  def fail(options):
    raise AssertionError('the cache was not used')

  monkeypatch.setattr(loading, 'build_session_data', fail)
  cached = load_session_data(config)
  for name, table in built.splits().items():
    other = cached.splits()[name]
    for column in ('session', 'item', 'time'):
      np.testing.assert_array_equal(getattr(table, column), getattr(other, column))
      assert getattr(table, column).dtype == getattr(other, column).dtype
  np.testing.assert_array_equal(cached.vocab.ids, built.vocab.ids)
  np.testing.assert_array_equal(cached.item_counts, built.item_counts)
  assert cached.name == built.name and cached.test.source == built.test.source

  raw_tsv.write_text(raw_tsv.read_text() + '11\t10\t5.0\n11\t20\t6.0\n')  # a new file: new key
  with pytest.raises(AssertionError, match='cache was not used'):
    load_session_data(config)


def test_session_data_save_load_with_users(tmp_path, write):
  path = write(
    'views.csv',
    'sessionId;userId;itemId;timeframe;eventdate\n'
    + ''.join(f'{k // 3};{k % 2 or "NA"};{k % 4};{k};2016-01-0{1 + k // 6}\n' for k in range(24)),
  )
  data = load_session_data(dict(format='diginetica', train_path=path, min_item_support=1))
  data.save(tmp_path / 'data.npz')
  loaded = SessionData.load(tmp_path / 'data.npz')
  np.testing.assert_array_equal(loaded.train.user, data.train.user)
  assert loaded.valid is None and loaded.n_items == data.n_items


def test_config_errors(write):
  with pytest.raises(
    DataError, match="--config.data.format='\\w+': expected one of gru4rec_tsv, yoochoose"
  ):
    load_session_data(dict(format='parquet', train_path='x'))
  with pytest.raises(DataError, match='needs --config.data.train_path'):
    load_session_data(dict(format='yoochoose'))
  with pytest.raises(DataError, match='absent.tsv: file not found'):
    load_session_data(dict(format='gru4rec_tsv', train_path='absent.tsv', cache_dir='unused'))
  # A file given to synthetic data would be silently unread: the error names it and the formats.
  with pytest.raises(
    DataError,
    match=r"test_path='t\.tsv' is not read with --config\.data\.format='synthetic': set "
    r'--config\.data\.format to .*\(gru4rec_tsv, .*session_lines\)',
  ):
    load_session_data(dict(format='synthetic', test_path='t.tsv'))


@pytest.mark.parametrize(
  'fields, message',
  [
    ({'test_days': -1.0}, r'test_days=-1.0: expected >= 0 \(0 = split by test_fraction\)'),
    ({'valid_days': -1.0}, r'valid_days=-1.0: expected >= 0 \(0 = no validation\)'),
    ({'synthetic_sessions': 0}, 'synthetic_sessions=0: expected a positive integer'),
    ({'synthetic_items': 3}, r'synthetic_\*: n_items \(3\) must exceed'),
    ({'time_unit': 'h'}, "time_unit='h': expected one of s, ms"),
    ({'time_unit': 'ms'}, "time_unit='ms' is not read with --config.data.format='synthetic'"),
  ],
)
def test_bad_split_and_synthetic_sizes_are_named(fields, message):
  with pytest.raises(DataError, match=message):
    load_session_data(dict(format='synthetic', **fields))


def test_a_test_file_that_is_the_training_file_is_refused(raw_tsv):
  with pytest.raises(DataError, match='test_path=.* is the same file as --config.data.train_path'):
    load_session_data(dict(format='gru4rec_tsv', train_path=str(raw_tsv), test_path=str(raw_tsv)))


def test_a_cache_dir_that_cannot_hold_the_cache_is_named(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  config = dict(format='synthetic', synthetic_sessions=600, synthetic_items=80)
  with pytest.raises(DataError, match=r'--config.data.cache_dir=.*file.*not a directory'):
    load_session_data(dict(config, cache_dir=str(blocker)))


def test_empty_test_split_names_file(write):
  train = write('train.tsv', _tsv([(1, 5, 0.0), (1, 6, 1.0)]))
  test = write('unseen.tsv', _tsv([(2, 8, 2.0), (2, 9, 3.0)]))
  with pytest.raises(DataError, match=r'unseen\.tsv: the test split is empty'):
    load_session_data(dict(format='gru4rec_tsv', train_path=train, test_path=test))
