"""User-session data: readers, sessionisation, hgru4rec's filters, the last-session split, loader.

ML-100K (`../shared/datasets/ml100k_recbole/ml-100k.inter`), sessionised at 30 minutes: 100,000
ratings of 943 users in 2,793 sessions. With hgru4rec's filters (items >= 20 events, sessions
>= 3 events, users with 5..199 sessions) 91 users and 938 items remain:

| split    | users | sessions | events |
|----------|------:|---------:|-------:|
| train    |    91 |      626 | 16,767 |
| test     |    91 |       91 |  1,545 |
| valid    |    91 |       91 |  1,597 |
| train_tr |    91 |      535 | 15,166 |

With looser filters (items >= 5, sessions >= 2, users >= 2 sessions, no upper limit): 364 users,
1,340 items; train 364 users / 1,332 sessions / 46,004 events, test 363 / 363 / 9,499.
"""

import datetime

import numpy as np
import pytest

from seqrec.data import (
  DataError,
  UserSessionData,
  default_user_config,
  load_user_session_data,
  readers,
  user_sessions,
  user_synthetic,
)
from seqrec.data.events import Events
from seqrec.data.preprocess import sessionize_by_gap
from seqrec.data.session_data import SessionData

GAP = 1800.0


def _utc(*fields) -> float:
  return datetime.datetime(*fields, tzinfo=datetime.timezone.utc).timestamp()


def _error(fn, path, *args, **kwargs) -> str:
  with pytest.raises(DataError) as info:
    fn(path, *args, **kwargs)
  message = str(info.value)
  assert path.name in message
  return message


def _check_user_order(events: Events) -> None:
  """Sessions of a user are contiguous and numbered in start-time order; one user per session."""
  assert events.is_sorted
  offsets = events.session_offsets()
  users = events.user[offsets[:-1]]
  np.testing.assert_array_equal(events.user, np.repeat(users, np.diff(offsets)))
  changes = np.flatnonzero(users[1:] != users[:-1]) + 1
  assert len(np.unique(users)) == len(changes) + 1
  starts = events.session_start_times()
  assert np.all(np.diff(starts)[users[1:] == users[:-1]] >= 0)


# --- Readers ---------------------------------------------------------------------------------


def test_recbole_inter_columns_by_name_and_gap(write):
  path = write(
    'ml.inter',
    'timestamp:float\trating:float\titem_id:token\tuser_id:token\textra:token_seq\n'
    '5000\t4\t30\t2\ta b\n'
    '1000\t3\t10\t1\tx\n'
    '2800\t5\t11\t1\tx\n'  # 1800 s after the previous event: same session
    '4601\t1\t12\t1\tx\n'  # 1801 s later: a new session
    '4601\t2\t13\t1\tx\n'  # same time: same session, file order kept
    '100\t3\t31\t2\tc\n',
  )
  events = readers.read_recbole_inter(path)
  np.testing.assert_array_equal(events.session, [1, 1, 2, 2, 3, 4])
  np.testing.assert_array_equal(events.user, [1, 1, 1, 1, 2, 2])
  np.testing.assert_array_equal(events.item, [10, 11, 12, 13, 31, 30])
  np.testing.assert_array_equal(events.time, [1000, 2800, 4601, 4601, 100, 5000])
  assert events.item.dtype == np.int64 and events.user.dtype == np.int64
  _check_user_order(events)
  # user 2's events are 4,900 s apart: one session only with a longer gap
  assert readers.read_recbole_inter(path, session_gap_seconds=5000.0).num_sessions == 2


def test_recbole_inter_string_ids(write):
  path = write(
    'beauty.inter',
    'user_id:token\titem_id:token\ttimestamp:float\nA2X\tB00Z\t10\nA1Y\tB00Y\t20\nA2X\tB01Q\t30\n',
  )
  events = readers.read_recbole_inter(path)
  assert events.item.dtype.kind == 'U'
  np.testing.assert_array_equal(events.item, ['B00Y', 'B00Z', 'B01Q'])
  np.testing.assert_array_equal(events.user, [0, 1, 1])  # ranks of A1Y, A2X


def test_recbole_inter_errors(write):
  message = _error(readers.read_recbole_inter, write('a.inter', 'user_id:token\titem:token\n1\t2'))
  assert 'line 1' in message and "'item_id'" in message and 'name:type' in message
  message = _error(readers.read_recbole_inter, write('b.inter', 'user_id,item_id,timestamp\n1,2,3'))
  assert 'line 1' in message and 'comma' in message
  path = write('c.inter', 'user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\tlate\n')
  message = _error(readers.read_recbole_inter, path)
  assert 'line 3' in message and "'late'" in message and 'timestamp' in message
  path = write('d.inter', f'user_id:token\titem_id:token\ttimestamp:float\n1\t{"x" * 70}\t3\n')
  assert 'line 2' in _error(readers.read_recbole_inter, path)  # an over-long id is not cut
  for row in ('1\t\t5', '\t7\t5'):  # an empty item or user id is no id
    path = write('e.inter', f'user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n{row}\n')
    message = _error(readers.read_recbole_inter, path)
    assert 'line 3' in message and 'a non-empty id' in message


LASTFM_ROWS = [
  # userid, timestamp, artid, artname, traid, traname (newest first, as in the dataset)
  ('user_000010', '2009-05-04T12:00:00Z', 'a1', 'Artist', 't3', 'Three'),
  ('user_000010', '2009-05-04T11:40:00Z', 'a1', 'Artist', '', 'No Id'),
  ('user_000010', '2009-05-04T11:40:00Z', 'a1', 'Artist', 't2', 'Two'),
  ('user_000010', '2009-05-04T11:00:00Z', 'a1', 'Artist', 't1', 'One'),  # 40 min before
  ('user_000002', '2009-05-01T08:00:05Z', '', 'Other', '', 'No Id'),
  ('user_000002', '2009-05-01T08:00:00Z', 'a1', 'Artist', '', 'No Id'),
]


def _lastfm_text(rows, header=False) -> str:
  lines = ['\t'.join(row) for row in rows]
  if header:
    lines.insert(0, 'user\ttimestamp\tartist_id\tartist\tartist_id\tsong')
  return '\n'.join(lines)  # no trailing newline, as the shared excerpt


@pytest.mark.parametrize('header', [False, True])
def test_lastfm_1k(write, header):
  events = readers.read_lastfm_1k(write('lastfm.tsv', _lastfm_text(LASTFM_ROWS, header)))
  np.testing.assert_array_equal(events.user, [2, 2, 10, 10, 10, 10])
  np.testing.assert_array_equal(events.session, [1, 1, 2, 3, 3, 3])
  expected_times = [_utc(2009, 5, 1, 8, 0, 0), _utc(2009, 5, 1, 8, 0, 5)]
  expected_times += [_utc(2009, 5, 4, 11, 0), _utc(2009, 5, 4, 11, 40), _utc(2009, 5, 4, 11, 40)]
  expected_times += [_utc(2009, 5, 4, 12, 0)]
  np.testing.assert_array_equal(events.time, expected_times)
  # Equal timestamps keep chronological (reverse file) order: 't2' was played before 'No Id'.
  np.testing.assert_array_equal(events.item[2:4], ['t1', 't2'])
  assert events.item[5] == 't3'
  by_name = events.item[[0, 1, 4]]
  assert all(item.startswith('name:') and len(item) == 37 for item in by_name)
  assert by_name[0] == by_name[2] != by_name[1]  # same artist + track name, same key
  _check_user_order(events)


def test_lastfm_1k_errors(write):
  rows = [list(row) for row in LASTFM_ROWS]
  rows[2][1] = '04/05/2009 11:40'
  message = _error(readers.read_lastfm_1k, write('t.tsv', _lastfm_text(rows)))
  assert 'line 3' in message and 'ISO 8601' in message
  short = _lastfm_text(LASTFM_ROWS[:2]) + '\nuser_000010\t2009-05-04T10:00:00Z\ta1\tArtist\tt0\n'
  message = _error(readers.read_lastfm_1k, write('s.tsv', short))
  assert 'line 3' in message and 'at least 6' in message
  message = _error(readers.read_lastfm_1k, write('c.tsv', 'user_1,2009-05-04T10:00:00Z,a,b,c,d'))
  assert 'line 1' in message and 'comma' in message


COSMETICS_HEADER = (
  'event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session'
)


def _cosmetics(rows) -> str:
  """The CSV of (time, event type, product, user, session) rows."""
  lines = [COSMETICS_HEADER]
  for time, kind, item, user, key in rows:
    lines.append(f'{time} UTC,{kind},{item},1487580005268456287,,brand,1.5,{user},{key}')
  return '\n'.join(lines) + '\n'


COSMETICS_ROWS = [
  ('2019-12-01 00:10:00', 'view', 5, 77, 'bbbbbbbb-0000-0000-0000-000000000002'),
  ('2019-12-01 00:00:00', 'view', 3, 77, 'aaaaaaaa-0000-0000-0000-000000000001'),
  ('2019-12-01 00:00:30', 'cart', 3, 77, 'aaaaaaaa-0000-0000-0000-000000000001'),
  ('2019-12-01 00:01:00', 'view', 4, 77, 'aaaaaaaa-0000-0000-0000-000000000001'),
  ('2019-12-01 00:05:00', 'view', 9, 12, 'cccccccc-0000-0000-0000-000000000003'),
  ('2019-12-01 00:06:00', 'view', 8, 12, ''),
  ('2019-12-01 01:00:00', 'view', 6, 77, 'bbbbbbbb-0000-0000-0000-000000000002'),
]


def test_cosmetics_sessions_from_ids(write):
  events = readers.read_cosmetics_events(write('2019-Dec.csv', _cosmetics(COSMETICS_ROWS)))
  np.testing.assert_array_equal(events.session, [1, 2, 2, 3, 3])
  np.testing.assert_array_equal(events.user, [12, 77, 77, 77, 77])
  np.testing.assert_array_equal(events.item, [9, 3, 4, 5, 6])  # views only; no-session row gone
  assert events.time[1] == _utc(2019, 12, 1, 0, 0) and events.time[4] == _utc(2019, 12, 1, 1, 0)
  _check_user_order(events)
  every = readers.read_cosmetics_events(write('all.csv', _cosmetics(COSMETICS_ROWS)), ())
  np.testing.assert_array_equal(every.item, [9, 3, 3, 4, 5, 6])


def test_cosmetics_sessions_by_gap(write):
  path = write('gap.csv', _cosmetics(COSMETICS_ROWS))
  events = readers.read_cosmetics_events(path, use_session_ids=False)
  # user 12: 00:05, 00:06; user 77: 00:00, 00:01, 00:10 | 01:00 (50 min later)
  np.testing.assert_array_equal(events.session, [1, 1, 2, 2, 2, 3])
  np.testing.assert_array_equal(events.item, [9, 8, 3, 4, 5, 6])


def test_cosmetics_errors(write):
  rows = list(COSMETICS_ROWS)
  rows[3] = ('2019-12-01T00:01:00', *rows[3][1:])
  message = _error(readers.read_cosmetics_events, write('t.csv', _cosmetics(rows)))
  assert 'line 5' in message and '2019-10-01 00:00:00 UTC' in message
  path = write('k.csv', _cosmetics(COSMETICS_ROWS[:1]))
  assert 'no events of type' in _error(readers.read_cosmetics_events, path, ('purchase',))
  header = COSMETICS_HEADER.replace('user_session', 'session')
  assert "'user_session'" in _error(readers.read_cosmetics_events, write('h.csv', header + '\n'))


# --- Shared samples --------------------------------------------------------------------------


@pytest.mark.shared_data
def test_shared_raw_samples(shared_datasets):
  samples = shared_datasets / 'raw_format_samples'
  lastfm = readers.read_lastfm_1k(samples / 'userid-timestamp-artid-artname-traid-traname.tsv')
  assert lastfm.num_events == 85 and np.all(lastfm.user == 1)  # the header line is skipped
  np.testing.assert_array_equal(lastfm.session_lengths(), [18, 7, 3, 34, 23])
  by_name = lastfm.item[np.char.startswith(lastfm.item, 'name:')]
  assert (len(by_name), len(np.unique(by_name))) == (48, 24)  # plays without a track id
  cosmetics = readers.read_cosmetics_events(samples / 'cosmeticsshop-sample.csv')
  assert (cosmetics.num_events, cosmetics.num_sessions, len(np.unique(cosmetics.user))) == (
    47,
    38,
    28,
  )
  for events in (lastfm, cosmetics):
    _check_user_order(events)


@pytest.mark.shared_data
def test_shared_ml100k_split(shared_datasets):
  path = shared_datasets / 'ml100k_recbole' / 'ml-100k.inter'
  events = readers.read_recbole_inter(path)
  assert (events.num_events, events.num_sessions, len(np.unique(events.user))) == (
    100_000,
    2_793,
    943,
  )
  _check_user_order(events)
  data = load_user_session_data(dict(format='recbole_inter', train_path=path, valid=True))
  assert (data.n_users, data.n_items) == (91, 938)
  counts = {name: (s['users'], s['sessions'], s['events']) for name, s in data.stats().items()}
  assert counts == {
    'train': (91, 626, 16_767),
    'test': (91, 91, 1_545),
    'valid': (91, 91, 1_597),
    'train_tr': (91, 535, 15_166),
  }
  _check_split(data)


# --- Preprocessing and split -----------------------------------------------------------------


def _table(rows) -> Events:
  """Events from (user, session, item, time) rows."""
  user, session, item, time = (np.array(column) for column in zip(*rows, strict=True))
  return Events(session.astype(np.int64), item, time.astype(float), user=user.astype(np.int64))


def test_sessionize_by_gap_cuts_strictly_above_the_gap():
  user = np.array([1, 1, 1, 1, 2, 2])
  time = np.array([0.0, GAP, 2 * GAP + 1, 2 * GAP + 1, 2 * GAP + 2, 10 * GAP])
  np.testing.assert_array_equal(sessionize_by_gap(user, time, GAP), [1, 1, 2, 2, 3, 4])


def test_drop_repeated_items_keeps_first():
  events = _table([(1, 1, 5, 0), (1, 1, 6, 1), (1, 1, 5, 2), (1, 2, 5, 3), (1, 2, 5, 4)])
  kept = user_sessions.drop_repeated_items(events)
  np.testing.assert_array_equal(kept.item, [5, 6, 5])
  np.testing.assert_array_equal(kept.time, [0, 1, 3])


def test_filters_follow_hgru4rec_order():
  rows = []
  time = 0
  # user 1: 3 sessions of items 1,2,3; user 2: 2 sessions; user 3: 3 sessions, one with item 9
  for user, n_sessions in ((1, 3), (2, 2), (3, 3)):
    for s in range(n_sessions):
      session = user * 10 + s
      items = [1, 2, 3] if (user, s) != (3, 0) else [1, 9, 9]
      for item in items:
        rows.append((user, session, item, time))
        time += 1
  events = _table(rows)
  filtered = user_sessions.preprocess_user_sessions(
    events, min_item_support=2, min_session_length=3, min_sessions_per_user=3
  )
  # item 9 repeats inside its session and is counted once, so it goes; that session drops to
  # one event and goes; user 3 is left with 2 sessions and goes, as does user 2.
  np.testing.assert_array_equal(np.unique(filtered.user), [1])
  assert filtered.num_sessions == 3
  kept = user_sessions.preprocess_user_sessions(
    events, min_item_support=2, min_session_length=3, min_sessions_per_user=2
  )
  np.testing.assert_array_equal(np.unique(kept.user), [1, 2, 3])
  capped = user_sessions.filter_users(events, 1, max_sessions=2)
  np.testing.assert_array_equal(np.unique(capped.user), [2])


def _check_split(data: UserSessionData) -> None:
  """No test (or valid) event in train; each user's held-out session after all their others."""
  assert isinstance(data, SessionData)
  for held_out, rest in ((data.test, data.train), (data.valid, data.train_tr)):
    if held_out is None:
      continue
    assert not np.isin(held_out.session, rest.session).any()
    assert np.isin(held_out.item, rest.item).all()  # cleaned against its training table
    assert held_out.session_lengths().min() >= 2
    assert len(np.unique(held_out.user)) == held_out.num_sessions  # one session per user
    rest_end = np.full(data.n_users, -np.inf)
    np.maximum.at(rest_end, rest.user, rest.time)
    starts = held_out.session_start_times()
    users = held_out.user[held_out.session_offsets()[:-1]]
    assert np.all(starts >= rest_end[users])
  if data.valid is not None:
    assert not np.isin(data.valid.session, data.test.session).any()
    assert np.isin(data.train_tr.session, data.train.session).all()
  for table in data.splits().values():
    _check_user_order(table)
    assert table.item.dtype == np.int32 and table.user.dtype == np.int64
    assert table.user.min() >= 0 and table.user.max() < data.n_users


def test_last_session_split_and_cleaning():
  rows = [
    (7, 1, 10, 0),
    (7, 1, 11, 1),
    (7, 2, 10, 100),
    (7, 2, 12, 101),
    (7, 3, 13, 200),  # item 13 is never in train: removed, and the session is left too short
    (7, 3, 10, 201),
    (5, 4, 10, 50),
    (5, 4, 11, 51),
    (5, 5, 11, 300),
    (5, 5, 12, 301),
  ]
  data = user_sessions.split_user_sessions(_table(rows), valid=True)
  np.testing.assert_array_equal(data.user_ids, [5, 7])
  np.testing.assert_array_equal(data.train.session, [1, 1, 2, 2, 4, 4])
  np.testing.assert_array_equal(data.test.session, [5, 5])  # user 7's test session was dropped
  np.testing.assert_array_equal(data.test.user, [0, 0])
  # Validation: each user's last train session (2 and 4), cleaned against train_tr (session 1):
  # item 12 goes, and session 2 with it.
  np.testing.assert_array_equal(data.valid.session, [4, 4])
  np.testing.assert_array_equal(data.train_tr.session, [1, 1])
  np.testing.assert_array_equal(data.vocab.ids, [10, 11, 12])
  np.testing.assert_array_equal(data.vocab.decode(data.valid.item), [10, 11])
  np.testing.assert_array_equal(data.item_counts, [3, 2, 1])
  _check_split(data)


# --- Loader ----------------------------------------------------------------------------------


def _synthetic_config(**fields):
  config = default_user_config()
  config.update(
    dict(format='user_synthetic', synthetic_users=200, synthetic_items=200, min_item_support=5)
  )
  config.update(fields)
  return config


def test_loader_on_synthetic_users():
  data = load_user_session_data(_synthetic_config(valid=True))
  assert data.name == 'user_synthetic' and 150 < data.n_users <= 200
  assert data.train.session_lengths().min() >= 3
  assert np.all(np.diff(data.user_ids) > 0)
  sessions_per_user = np.bincount(data.train.user[data.train.session_offsets()[:-1]])
  assert sessions_per_user.min() >= 4  # >= 5 sessions per user, the last one is test
  _check_split(data)


def test_cache_round_trip(tmp_path, monkeypatch):
  config = _synthetic_config(valid=True, cache_dir=str(tmp_path / 'cache'))
  built = load_user_session_data(config)
  assert len(list((tmp_path / 'cache').glob('*.npz'))) == 1

  def fail(options):
    raise AssertionError('the cache was not used')

  monkeypatch.setattr(user_sessions, 'build_user_session_data', fail)
  cached = load_user_session_data(config)
  assert isinstance(cached, UserSessionData)
  for name, table in built.splits().items():
    other = cached.splits()[name]
    for column in ('session', 'item', 'time', 'user'):
      np.testing.assert_array_equal(getattr(table, column), getattr(other, column))
      assert getattr(table, column).dtype == getattr(other, column).dtype
  np.testing.assert_array_equal(cached.user_ids, built.user_ids)
  np.testing.assert_array_equal(cached.vocab.ids, built.vocab.ids)
  assert cached.n_users == built.n_users and cached.name == built.name
  with pytest.raises(AssertionError, match='cache was not used'):
    load_user_session_data(_synthetic_config(valid=True, cache_dir=config.cache_dir, seed=1))


def test_file_loader_and_save_load(tmp_path, write):
  path = write('ml.inter', 'user_id:token\titem_id:token\ttimestamp:float\n' + _inter_rows())
  data = load_user_session_data(
    dict(
      format='recbole_inter',
      train_path=path,
      min_item_support=1,
      min_session_length=2,
      min_sessions_per_user=2,
    )
  )
  assert data.name == 'ml' and data.n_users == 4 and data.test.num_sessions == 4
  _check_split(data)
  data.save(tmp_path / 'data.npz')
  loaded = UserSessionData.load(tmp_path / 'data.npz')
  np.testing.assert_array_equal(loaded.test.user, data.test.user)
  assert loaded.valid is None and loaded.n_users == 4
  assert SessionData.load(tmp_path / 'data.npz').train.num_events == data.train.num_events


def _inter_rows() -> str:
  """Four users, three sessions of two events each, two hours apart."""
  rows = []
  for user in range(1, 5):
    for session in range(3):
      for k in range(2):
        rows.append(f'{user}\t{(user + session + k) % 5}\t{session * 7200 + k * 60}')
  return '\n'.join(rows) + '\n'


def test_config_errors(write):
  with pytest.raises(
    DataError, match="--config.data.format='\\w+': expected one of recbole_inter, lastfm_1k"
  ):
    load_user_session_data(dict(format='gru4rec_tsv', train_path='x'))
  with pytest.raises(DataError, match='needs --config.data.train_path'):
    load_user_session_data(dict(format='lastfm_1k'))
  with pytest.raises(DataError, match='min_sessions_per_user'):
    load_user_session_data(dict(format='user_synthetic', min_sessions_per_user=0))
  with pytest.raises(DataError, match='max_sessions_per_user'):
    load_user_session_data(dict(format='user_synthetic', max_sessions_per_user=3))
  with pytest.raises(
    DataError,
    match=r"train_path='u\.inter' is not read with .*\(recbole_inter, lastfm_1k, cosmetics\)",
  ):
    load_user_session_data(dict(format='user_synthetic', train_path='u.inter'))
  with pytest.raises(DataError, match="time_unit='ms' is not read with .*'lastfm_1k'"):
    load_user_session_data(dict(format='lastfm_1k', train_path='x.tsv', time_unit='ms'))
  path = write('few.inter', 'user_id:token\titem_id:token\ttimestamp:float\n' + _inter_rows())
  with pytest.raises(DataError, match=r'few\.inter: the input split is empty'):
    load_user_session_data(dict(format='recbole_inter', train_path=path))


# --- Synthetic users -------------------------------------------------------------------------


def test_synthetic_deterministic_and_well_formed():
  a = user_synthetic.generate_user_sessions(100, 200, seed=3)
  b = user_synthetic.generate_user_sessions(100, 200, seed=3)
  c = user_synthetic.generate_user_sessions(100, 200, seed=4)
  for column in ('session', 'item', 'time', 'user'):
    np.testing.assert_array_equal(getattr(a, column), getattr(b, column))
  assert a.num_events != c.num_events or np.any(a.item != c.item)
  _check_user_order(a)
  assert a.session_lengths().min() >= 2 and a.item.min() >= 1 and a.item.max() <= 200
  # Re-cutting at 30 minutes gives back exactly the generated sessions.
  np.testing.assert_array_equal(sessionize_by_gap(a.user, a.time, GAP), a.session)


def _taste_recall(events: Events, k: int = 20) -> tuple[float, float]:
  """Recall@k of test-session items (after the first) by the user's train items vs popularity."""
  train, test = user_sessions.split_last_sessions(events)
  n_items = int(events.item.max()) + 1
  popular = np.argsort(-np.bincount(train.item, minlength=n_items), kind='stable')[:k]
  user_counts = np.zeros((int(events.user.max()) + 1, n_items))
  np.add.at(user_counts, (train.user, train.item), 1.0)
  offsets = test.session_offsets()
  later = np.ones(test.num_events, bool)
  later[offsets[:-1]] = False  # the first click is drawn by popularity for everyone
  personal_hits = popular_hits = 0
  for user, item in zip(test.user[later].tolist(), test.item[later].tolist(), strict=True):
    # The user's own items first, popularity breaking ties.
    scores = user_counts[user] + 1e-3 * np.bincount(train.item, minlength=n_items)
    personal_hits += item in np.argsort(-scores, kind='stable')[:k]
    popular_hits += item in popular
  return personal_hits / later.sum(), popular_hits / later.sum()


def test_planted_taste_is_detectable_only_when_on():
  on, taste = user_synthetic.generate_with_taste(300, 400, seed=0, user_taste=0.8)
  off, _ = user_synthetic.generate_with_taste(300, 400, seed=0, user_taste=0.0)
  personal, popular = _taste_recall(on)  # about 0.51 vs 0.24
  assert personal > 0.45 and personal > 1.8 * popular
  personal, popular = _taste_recall(off)  # about 0.25 vs 0.34: a user's own items are noise
  assert personal < popular
  # Later clicks of a tasted session fall mostly in the user's cluster; the first click does not.
  offsets = on.session_offsets()
  first = np.zeros(on.num_events, bool)
  first[offsets[:-1]] = True
  in_cluster = taste.item_cluster[on.item - 1] == taste.user_cluster[on.user - 1]
  assert in_cluster[~first].mean() > 0.6 and in_cluster[first].mean() < 0.15
  np.testing.assert_allclose(taste.next_item_probs(0, 5).sum(), 1.0)
