"""User-sequence data: readers, filters, leave-one-out and gSASRec splits, cache, synthetic data."""

from pathlib import Path

import numpy as np
import pytest

from seqrec.data import (
  DataError,
  Ragged,
  SequenceData,
  default_sequence_data_config,
  load_sequence_data,
  user_sequences,
)

SHARED_DATASETS = Path(__file__).resolve().parents[1] / '..' / 'shared' / 'datasets'
ML1M = SHARED_DATASETS / 'ml1m_sasrec' / 'ml-1m.txt'
RECBOLE_HEADER = 'user_id:token\titem_id:token\trating:float\ttimestamp:float\n'


@pytest.fixture
def write(tmp_path):
  """Writes text to a file under tmp_path (creating folders) and returns its path."""

  def _write(name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path

  return _write


def _rows(ragged: Ragged) -> list[list[int]]:
  return [ragged.row(u).tolist() for u in range(ragged.n_rows)]


def _sequences(events) -> dict[int, list[int]]:
  """{raw user: raw items in order} of user-keyed events."""
  out = {}
  for user, item in zip(events.session.tolist(), events.item.tolist(), strict=True):
    out.setdefault(user, []).append(item)
  return out


def _check_no_leakage(data: SequenceData) -> None:
  """Training never holds a target at its position: train <= valid history <= test history."""
  for u in range(data.n_users):
    train, valid, test = data.train.row(u), data.valid_history.row(u), data.test_history.row(u)
    np.testing.assert_array_equal(valid[: len(train)], train)
    np.testing.assert_array_equal(test[: len(valid)], valid)
    if data.valid_target[u]:
      assert len(test) > len(valid)
      assert test[len(valid)] == data.valid_target[u]
  assert np.all(data.train.lengths() <= data.valid_history.lengths())
  assert np.all(data.valid_history.lengths() <= data.test_history.lengths())


# Readers.


def test_user_item_lines_keep_file_order_per_user(write):
  path = write('seq.txt', '2 20\n1 10\n2 21\n1 12\n1 11\n')
  events = user_sequences.read_user_item_lines(path)
  assert _sequences(events) == {1: [10, 12, 11], 2: [20, 21]}


def test_sequence_lines(write):
  path = write('Beauty.txt', '3 7 8 9\n1 5\n\n2 6 5\n')
  events = user_sequences.read_sequence_lines(path)
  assert _sequences(events) == {1: [5], 2: [6, 5], 3: [7, 8, 9]}


def test_ml1m_ratings_sorted_by_time_stably(write):
  path = write(
    'ratings.dat',
    '1::10::5::300\n1::11::3::100\n1::12::4::300\n1::13::4::200\n2::10::1::5\n',
  )
  events = user_sequences.read_ml1m_ratings(path)
  assert _sequences(events) == {1: [11, 13, 10, 12], 2: [10]}


def test_recbole_inter_sorted_by_time(write):
  rows = ['7\t100\t4\t30', '7\t101\t4\t10', '3\t100\t5\t5', '7\t102\t1\t20']
  path = write('x.inter', RECBOLE_HEADER + '\n'.join(rows) + '\n')
  events = user_sequences.read_recbole_sequences(path)
  assert _sequences(events) == {3: [100], 7: [101, 102, 100]}


READERS = {
  'user_item_lines': (user_sequences.read_user_item_lines, '1 2\n', ['1 2\n1 x\n', '1 2\n1 2 3\n']),
  'sequence_lines': (user_sequences.read_sequence_lines, '1 2 3\n', ['1 2\n2 3.5\n', '1 2\n4\n']),
  'ml1m_ratings': (
    user_sequences.read_ml1m_ratings,
    '1::2::3::4\n',
    ['1::2::3::4\n1::b::3::4\n', '1::2::3::4\n1::2::3\n', '1::2::3::4\n1 2 3 4\n'],
  ),
}


@pytest.mark.parametrize('name', sorted(READERS))
def test_readers_name_file_and_line_of_bad_input(write, tmp_path, name):
  reader, good, bad_texts = READERS[name]
  assert reader(write('good.txt', good)).num_events >= 1
  for k, text in enumerate(bad_texts):
    path = write(f'bad{k}.txt', text)
    with pytest.raises(DataError, match=rf'bad{k}\.txt, line 2: expected'):
      reader(path)
  for path, message in (
    (write('empty.txt', ''), 'empty'),
    (write('blank.txt', '\n\n'), 'no interactions'),
    (tmp_path / 'missing.txt', 'not found'),
  ):
    with pytest.raises(DataError, match=f'{path.name}.*{message}'):
      reader(path)


def test_sequence_lines_reject_repeated_users(write):
  with pytest.raises(DataError, match=r'dup\.txt: user 1 is on lines 1 and 3'):
    user_sequences.read_sequence_lines(write('dup.txt', '1 5\n2 6\n1 7\n'))


# Filters and leave-one-out.


def test_leave_one_out_split(write):
  # Users 5, 6, 7, 8 with 1, 2, 3 and 5 items; short users train on everything, unevaluated.
  path = write('seq.txt', '5 1\n6 2\n6 3\n7 4\n7 5\n7 6\n8 1\n8 2\n8 3\n8 4\n8 5\n')
  data = load_sequence_data(dict(format='user_item_lines', path=str(path)))
  assert (data.n_users, data.n_items, data.name) == (4, 6, 'seq')
  np.testing.assert_array_equal(data.user_ids, [5, 6, 7, 8])
  np.testing.assert_array_equal(data.item_ids[1:], [1, 2, 3, 4, 5, 6])
  assert _rows(data.train) == [[1], [2, 3], [4], [1, 2, 3]]
  assert _rows(data.valid_history) == _rows(data.train)
  np.testing.assert_array_equal(data.valid_target, [0, 0, 5, 4])
  assert _rows(data.test_history) == [[1], [2, 3], [4, 5], [1, 2, 3, 4]]
  np.testing.assert_array_equal(data.test_target, [0, 0, 6, 5])
  np.testing.assert_array_equal(data.item_counts, [0, 2, 2, 2, 1, 0, 0])
  _check_no_leakage(data)


@pytest.mark.parametrize(
  'text, message',
  [
    ('1 1\n2 2\n2 3\n', 'nothing to evaluate'),  # no user has 3 items
  ],
)
def test_data_with_nothing_to_test_or_train_on_is_named(write, text, message):
  path = write('short.txt', text)
  with pytest.raises(DataError, match=message) as info:
    load_sequence_data(dict(format='user_item_lines', path=str(path), min_item_support=1))
  assert 'short.txt' in str(info.value)


def test_filters_and_dense_ids(write):
  # Item 50 occurs once; without it, user 2 has only 2 items and goes too.
  text = '1 30\n1 40\n1 30\n2 40\n2 50\n2 30\n3 40\n3 30\n3 40\n'
  path = write('seq.txt', text)
  data = load_sequence_data(
    dict(format='user_item_lines', path=str(path), min_item_support=2, min_user_length=3)
  )
  np.testing.assert_array_equal(data.item_ids[1:], [30, 40])
  np.testing.assert_array_equal(data.user_ids, [1, 3])
  assert _rows(data.test_history) == [[1, 2], [2, 1]]
  np.testing.assert_array_equal(data.test_target, [1, 2])
  with pytest.raises(DataError, match='no interactions left'):
    load_sequence_data(dict(format='user_item_lines', path=str(path), min_user_length=9))


def test_synthetic_leakage_and_planted_structure():
  data = load_sequence_data(dict(synthetic_users=300, synthetic_items=60, synthetic_seed=3))
  _check_no_leakage(data)
  assert data.stats()['test_users'] > 250
  events, chain = user_sequences.synthetic_sequences(300, 60, 20.0, 3)
  items = events.item - 1  # chain indices
  same_user = events.session[1:] == events.session[:-1]
  follows = np.any(chain.successors[items[:-1]] == items[1:, None], axis=1)  # [E-1]
  assert follows[same_user].mean() > 0.75  # jump_prob is 0.2; by chance it would be ~7%
  again = load_sequence_data(dict(synthetic_users=300, synthetic_items=60, synthetic_seed=3))
  np.testing.assert_array_equal(again.test_history.values, data.test_history.values)
  other = load_sequence_data(dict(synthetic_users=300, synthetic_items=60, synthetic_seed=4))
  assert not np.array_equal(other.test_target, data.test_target)


# The gSASRec split.


def _write_gsasrec(write, full: dict[int, list[int]], valid_users: set[int], **replace) -> Path:
  """Writes a full `user item` file and a gSASRec split directory beside it."""
  path = write('ml/ml-1m.txt', ''.join(f'{u} {i}\n' for u, items in full.items() for i in items))
  files = {
    'train/input.txt': [items[: -3 if u in valid_users else -2] for u, items in full.items()],
    'val/input.txt': [items[:-2] for u, items in full.items() if u in valid_users],
    'val/output.txt': [items[-2:-1] for u, items in full.items() if u in valid_users],
    'test/output.txt': [items[-1:] for items in full.values()],
  }
  files.update(replace)
  for name, lines in files.items():
    write(f'ml/gsasrec_split/{name}', ''.join(' '.join(map(str, line)) + '\n' for line in lines))
  return path


FULL = {1: [1, 2, 3, 4], 2: [5, 1, 6, 2, 7], 3: [3, 5, 1], 4: [2, 4, 6, 8, 3, 1]}


def test_gsasrec_split(write):
  path = _write_gsasrec(write, FULL, valid_users={2, 4})
  data = load_sequence_data(dict(format='gsasrec_split', split='given', path=str(path)))
  assert _rows(data.train) == [[1, 2], [5, 1], [3], [2, 4, 6]]
  assert _rows(data.valid_history) == [[1, 2], [5, 1, 6], [3], [2, 4, 6, 8]]
  np.testing.assert_array_equal(data.valid_target, [0, 2, 0, 3])
  assert _rows(data.test_history) == [items[:-1] for items in FULL.values()]
  np.testing.assert_array_equal(data.test_target, [4, 7, 1, 1])
  _check_no_leakage(data)
  loo = load_sequence_data(dict(format='user_item_lines', path=str(path)))
  np.testing.assert_array_equal(data.test_target, loo.test_target)


@pytest.mark.parametrize(
  'replace, where',
  [
    ({'test/output.txt': [[4], [7], [5], [1]]}, r'test/output\.txt, line 3'),
    ({'val/output.txt': [[2], [8]]}, r'val/output\.txt, line 2'),
    ({'val/input.txt': [[5, 1, 6]]}, r'val/input\.txt: 1 lines, expected 2'),
    ({'train/input.txt': [[1, 2], [5, 1], [3], [2, 4, 8]]}, r'train/input\.txt, line 4'),
    ({'train/input.txt': [[1, 2], [5, 1], [3]]}, r'train/input\.txt: 3 lines'),
    ({'train/input.txt': [[1, 2], [5], [3], [2, 4, 6]]}, r'train/input\.txt, line 2'),
  ],
)
def test_gsasrec_split_disagreements_name_the_file(write, replace, where):
  path = _write_gsasrec(write, FULL, valid_users={2, 4}, **replace)
  with pytest.raises(DataError, match=where):
    load_sequence_data(dict(format='gsasrec_split', split='given', path=str(path)))


def test_gsasrec_split_missing_file(write):
  path = _write_gsasrec(write, FULL, valid_users={2})
  (path.parent / 'gsasrec_split' / 'val' / 'output.txt').unlink()
  with pytest.raises(DataError, match=r'output\.txt: file not found'):
    load_sequence_data(dict(format='gsasrec_split', split='given', path=str(path)))


# Config, cache and storage.


def test_config_and_bad_options():
  cfg = default_sequence_data_config()
  for field in ('format', 'path', 'split', 'min_item_support', 'min_user_length', 'name'):
    assert field in cfg
  for field in ('cache_dir', 'synthetic_users', 'synthetic_items', 'synthetic_mean_length'):
    assert field in cfg
  assert 'synthetic_seed' in cfg
  cfg.synthetic_users = 20
  assert load_sequence_data(cfg).n_users == 20
  for bad, message in (
    (dict(format='csv'), "--config.data.format='csv': expected one of user_item_lines"),
    (dict(split='random'), "--config.data.split='random': expected one of"),
    (dict(format='gsasrec_split', path='x'), 'does not fit'),
    (dict(split='given'), 'does not fit'),
    (dict(format='user_item_lines'), 'needs --config.data.path'),
    (dict(path='ml-1m.txt'), "path='ml-1m.txt' is not read with --config.data.format='synthetic'"),
    (dict(format='user_item_lines', path='x', split_dir='s'), "split_dir='s' is only read with"),
    (dict(min_item_support=-1), r'--config.data.min_item_support=-1: expected >= 0'),
  ):
    with pytest.raises(DataError, match=message):
      load_sequence_data(bad)


def test_a_listed_format_without_a_reader_is_named_not_replaced_by_synthetic_data(monkeypatch):
  """A format added to SEQUENCE_FORMATS but not to `read_interactions` (docs/extending.md)."""
  monkeypatch.setattr(
    user_sequences, 'SEQUENCE_FORMATS', (*user_sequences.SEQUENCE_FORMATS, 'clicks_csv')
  )
  options = user_sequences.SequenceDataOptions.from_config(dict(format='clicks_csv', path='x'))
  with pytest.raises(DataError, match="--config.data.format='clicks_csv' has no reader"):
    user_sequences.read_interactions(options)


def test_cache_round_trip(tmp_path):
  cfg = dict(synthetic_users=50, synthetic_items=30, cache_dir=str(tmp_path))
  data = load_sequence_data(cfg)
  files = list(tmp_path.glob('synthetic-*.npz'))
  assert len(files) == 1
  cached = load_sequence_data(cfg)
  for field in ('valid_target', 'test_target', 'item_ids', 'user_ids'):
    np.testing.assert_array_equal(getattr(cached, field), getattr(data, field))
  for field in ('train', 'valid_history', 'test_history'):
    np.testing.assert_array_equal(getattr(cached, field).offsets, getattr(data, field).offsets)
    np.testing.assert_array_equal(getattr(cached, field).values, getattr(data, field).values)
  assert (cached.name, cached.n_items) == (data.name, data.n_items)
  load_sequence_data({**cfg, 'synthetic_seed': 1})
  assert len(list(tmp_path.glob('synthetic-*.npz'))) == 2


def test_string_item_ids_survive_save_and_load(write, tmp_path):
  rows = ['u1\ta\t1\t1', 'u1\tb\t1\t2', 'u1\tc\t1\t3', 'u2\tb\t1\t1']
  data = load_sequence_data(
    dict(format='recbole_inter', path=str(write('s.inter', RECBOLE_HEADER + '\n'.join(rows))))
  )
  np.testing.assert_array_equal(data.item_ids[1:], ['a', 'b', 'c'])
  data.save(tmp_path / 'd.npz')
  np.testing.assert_array_equal(SequenceData.load(tmp_path / 'd.npz').item_ids, data.item_ids)


def test_ragged_prefixes_and_take():
  ragged = Ragged.from_rows([[1, 2, 3], [], [4, 5]])
  assert _rows(ragged.prefixes([1, 0, 2])) == [[1], [], [4, 5]]
  assert _rows(ragged.take([2, 0])) == [[4, 5], [1, 2, 3]]
  np.testing.assert_array_equal(ragged.positions(), [0, 1, 2, 0, 1])
  with pytest.raises(ValueError):
    ragged.prefixes([4, 0, 0])


# The real files (skipped when ../shared/datasets is absent).


@pytest.mark.shared_data
def test_real_ml1m_sasrec_and_gsasrec_split():
  if not ML1M.is_file():
    pytest.skip(f'{ML1M} not found')
  loo = load_sequence_data(dict(format='user_item_lines', path=str(ML1M)))
  assert (loo.n_users, loo.n_items) == (6_040, 3_416)
  assert len(loo.test_history.values) + loo.n_users == 999_611
  np.testing.assert_array_equal(loo.item_ids[1:], np.arange(1, 3_417))  # SASRec's ids kept
  given = load_sequence_data(dict(format='gsasrec_split', split='given', path=str(ML1M)))
  assert given.stats() == {
    'users': 6_040,
    'items': 3_416,
    'train_interactions': 999_611 - 2 * 6_040 - 512,
    'valid_users': 512,
    'test_users': 6_040,
  }
  np.testing.assert_array_equal(given.test_target, loo.test_target)
  validated = given.valid_target > 0
  np.testing.assert_array_equal(given.valid_target[validated], loo.valid_target[validated])
  _check_no_leakage(given)


@pytest.mark.shared_data
def test_real_ml1m_ratings_sample_and_s3rec_beauty():
  sample = SHARED_DATASETS / 'raw_format_samples' / 'ml-1m_sample.dat'
  beauty = SHARED_DATASETS / 's3rec_amazon_yelp_lastfm' / 'Beauty.txt'
  if not (sample.is_file() and beauty.is_file()):
    pytest.skip('shared datasets not found')
  lines = [line.split('::') for line in sample.read_text().splitlines()]
  user1 = sorted((int(f[3]), k, int(f[1])) for k, f in enumerate(lines) if f[0] == '1')
  events = user_sequences.read_ml1m_ratings(sample)
  assert events.num_events == 10_000 and len(np.unique(events.session)) == 70
  assert _sequences(events)[1] == [item for _, _, item in user1]
  data = load_sequence_data(dict(format='sequence_lines', path=str(beauty)))
  assert (data.n_users, data.n_items) == (22_363, 12_101)
  assert len(data.test_history.values) + data.n_users == 198_502
