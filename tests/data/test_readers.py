"""Tests for the raw-format readers: expected arrays on tiny files, and clear errors on bad ones."""

import datetime

import numpy as np
import pytest

from seqrec.data import DataError, readers, user_sequences

DAY = 86400.0


def _utc(year, month, day, hour, minute, second) -> float:
  start = datetime.datetime(year, month, day, hour, minute, tzinfo=datetime.timezone.utc)
  return start.timestamp() + second


MAY_9_2016 = 16930 * DAY  # 2016-05-09T00:00:00Z in unix seconds


def test_gru4rec_tsv_columns_by_name_and_sorted(write):
  path = write(
    'clicks.tsv',
    'Time\tSessionId\tExtra\tItemId\n'
    '20.5\t2\tx\t300\n'
    '10.0\t1\ty\t100\n'
    '5.0\t2\tz\t200\n'
    '12.0\t1\tw\t101\n',
  )
  events = readers.read_gru4rec_tsv(path)
  np.testing.assert_array_equal(events.session, [1, 1, 2, 2])
  np.testing.assert_array_equal(events.item, [100, 101, 200, 300])
  np.testing.assert_array_equal(events.time, [10.0, 12.0, 5.0, 20.5])
  assert events.session.dtype == np.int64 and events.item.dtype == np.int64
  assert events.user is None and str(path) in events.source


def test_gru4rec_tsv_tolerates_crlf_and_blank_lines(write):
  path = write('clicks.tsv', 'SessionId\tItemId\tTime\r\n1\t5\t1.5\r\n\r\n1\t6\t2.5\r\n')
  events = readers.read_gru4rec_tsv(path)
  np.testing.assert_array_equal(events.item, [5, 6])


def test_yoochoose_clicks(write):
  path = write(
    'yoochoose-clicks.dat',
    '1,2014-04-07T10:54:09.868Z,214536500,0\n'
    '1,2014-04-07T10:51:09.277Z,214536502,0\n'
    '11,2014-04-03T10:44:35.672Z,214821275,S\n'
    '2,2014-04-07T13:56:37.614Z,214662742,1234567890\n',
  )
  events = readers.read_yoochoose_clicks(path)
  np.testing.assert_array_equal(events.session, [1, 1, 2, 11])
  np.testing.assert_array_equal(events.item, [214536502, 214536500, 214662742, 214821275])
  expected = [
    _utc(2014, 4, 7, 10, 51, 9.277),
    _utc(2014, 4, 7, 10, 54, 9.868),
    _utc(2014, 4, 7, 13, 56, 37.614),
    _utc(2014, 4, 3, 10, 44, 35.672),
  ]
  np.testing.assert_allclose(events.time, expected, rtol=0, atol=1e-6)
  assert events.time[0] == pytest.approx(1396867869.277)


def test_diginetica_views_both_header_spellings(write):
  rows = '1;NA;81766;526309;2016-05-09\n1;5;31331;1031;2016-05-09\n2;NA;9654;75848;2016-05-10\n'
  headers = (
    'sessionId;userId;itemId;timeframe;eventdate',
    'session_id;user_id;item_id;timeframe;eventdate',
  )
  for header in headers:
    events = readers.read_diginetica_views(write('views.csv', header + '\n' + rows))
    np.testing.assert_array_equal(events.session, [1, 1, 2])
    np.testing.assert_array_equal(events.item, [31331, 81766, 9654])  # sorted by timeframe
    np.testing.assert_array_equal(events.user, [5, -1, -1])
    np.testing.assert_allclose(
      events.time, [MAY_9_2016 + 1.031, MAY_9_2016 + 526.309, MAY_9_2016 + DAY + 75.848]
    )


def test_retailrocket_sessionized_by_gap_and_type(write):
  path = write(
    'events.csv',
    'timestamp,visitorid,event,itemid,transactionid\n'
    '1000000,7,view,1,\n'
    '1600000,7,view,2,\n'  # 600 s later: same session
    '3500000,7,view,3,\n'  # 1900 s later: new session (gap 1800 s)
    '1200000,7,addtocart,2,\n'  # not a view: dropped
    '500000,3,view,9,\n'
    '2000000,3,transaction,9,42\n',
  )
  events = readers.read_retailrocket_events(path)
  np.testing.assert_array_equal(events.session, [1, 2, 2, 3])
  np.testing.assert_array_equal(events.user, [3, 7, 7, 7])
  np.testing.assert_array_equal(events.item, [9, 1, 2, 3])
  np.testing.assert_array_equal(events.time, [500.0, 1000.0, 1600.0, 3500.0])
  everything = readers.read_retailrocket_events(path, session_gap_seconds=3600.0, event_types=())
  np.testing.assert_array_equal(everything.session, [1, 1, 2, 2, 2, 2])
  np.testing.assert_array_equal(everything.item, [9, 9, 1, 2, 2, 3])


def test_session_lines(write):
  path = write('sessions.csv', '1,2,3\r\n\n4,4,\n 5 , 6\n')
  events = readers.read_session_lines(path)
  np.testing.assert_array_equal(events.session, [1, 1, 1, 3, 3, 4, 4])
  np.testing.assert_array_equal(events.item, [1, 2, 3, 4, 4, 5, 6])
  np.testing.assert_array_equal(events.time, np.arange(7.0))


def _error(fn, path, *args) -> str:
  with pytest.raises(DataError) as info:
    fn(path, *args)
  message = str(info.value)
  assert path.name in message
  return message


def test_missing_and_empty_files(tmp_path, write):
  assert 'not found' in _error(readers.read_gru4rec_tsv, tmp_path / 'absent.tsv')
  assert 'empty' in _error(readers.read_yoochoose_clicks, write('empty.dat', ''))
  header_only = write('header.tsv', 'SessionId\tItemId\tTime\n')
  assert 'no data rows' in _error(readers.read_gru4rec_tsv, header_only)


def test_missing_column_names_expected_header(write):
  message = _error(readers.read_gru4rec_tsv, write('a.tsv', 'SessionId\tItem\tTime\n1\t2\t3\n'))
  assert 'line 1' in message and "'ItemId'" in message and 'SessionId\\tItemId\\tTime' in message
  message = _error(readers.read_retailrocket_events, write('e.csv', 'timestamp,visitorid,itemid\n'))
  assert 'line 1' in message and "'event'" in message


def test_non_integer_id_names_line_and_text(write):
  path = write('b.tsv', 'SessionId\tItemId\tTime\n1\t5\t1.0\n1\tabc\t2.0\n')
  message = _error(readers.read_gru4rec_tsv, path)
  assert 'line 3' in message and "'abc'" in message and 'ItemId' in message
  path = write(
    'v.csv',
    'sessionId;userId;itemId;timeframe;eventdate\n1;NA;7;1;2016-01-01\n'
    '1;NA;7;2;2016-01-01\n1;NA;x7;3;2016-01-01\n',
  )
  assert 'line 4' in _error(readers.read_diginetica_views, path)
  message = _error(readers.read_session_lines, write('s.csv', '1,2\n3,b4\n'))
  assert 'line 2' in message and "'b4'" in message


def test_wrong_separator(write):
  message = _error(readers.read_gru4rec_tsv, write('c.tsv', 'SessionId,ItemId,Time\n1,2,3\n'))
  assert 'line 1' in message and 'comma' in message and 'tab' in message
  path = write('y.dat', '1;2014-04-07T10:51:09.277Z;5;0\n')
  message = _error(readers.read_yoochoose_clicks, path)
  assert 'line 1' in message and 'semicolon' in message
  message = _error(readers.read_session_lines, write('s.csv', '1,2\n3;4\n'))
  assert 'line 2' in message and 'semicolon' in message


def test_bad_time_and_short_line(write):
  path = write('t.dat', '1,2014-04-07T10:51:09.277Z,5,0\n1,yesterday,6,0\n')
  message = _error(readers.read_yoochoose_clicks, path)
  assert 'line 2' in message and "'yesterday'" in message and 'ISO 8601' in message
  path = write('u.tsv', 'SessionId\tItemId\tTime\n1\t2\t3\n4\t5\n')
  message = _error(readers.read_gru4rec_tsv, path)
  assert 'line 3' in message and 'found 2' in message


def test_non_finite_times_name_their_line(write):
  for bad in ('nan', 'inf', '-inf'):
    path = write('n.tsv', f'SessionId\tItemId\tTime\n1\t2\t3\n1\t5\t{bad}\n')
    message = _error(readers.read_gru4rec_tsv, path)
    assert 'line 3' in message and 'finite' in message and repr(bad) in message


def test_session_lines_old_mac_line_ends_and_huge_ids(write):
  events = readers.read_session_lines(write('cr.csv', '1,2,3\r4,5\r'))
  np.testing.assert_array_equal(events.session, [1, 1, 1, 2, 2])
  np.testing.assert_array_equal(events.item, [1, 2, 3, 4, 5])
  message = _error(readers.read_session_lines, write('big.csv', '1,2\n4,99999999999999999999\n'))
  assert 'line 2' in message and '64 bits' in message


def test_line_numbers_across_chunks(write, monkeypatch):
  monkeypatch.setattr(readers, '_CHUNK_BYTES', 16)  # a few lines per loadtxt call
  rows = ''.join(f'{k},2014-04-07T10:51:{k:02d}.000Z,{100 + k},0\n' for k in range(40))
  events = readers.read_yoochoose_clicks(write('ok.dat', rows))
  np.testing.assert_array_equal(events.item, 100 + np.arange(40))
  bad = rows.replace('130,', '1e30,')
  assert 'line 31' in _error(readers.read_yoochoose_clicks, write('bad.dat', bad))


_BOM_CASES = {
  'gru4rec_tsv': (readers.read_gru4rec_tsv, 'SessionId\tItemId\tTime\n1\t5\t1.5\n1\t6\t2.5\n'),
  'yoochoose': (
    readers.read_yoochoose_clicks,
    '1,2014-04-07T10:51:09.277Z,214536502,0\n1,2014-04-07T10:54:09.868Z,214536500,0\n',
  ),
  'diginetica': (
    readers.read_diginetica_views,
    'sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;0;2016-05-09\n1;3;6;10;2016-05-09\n',
  ),
  'retailrocket': (
    readers.read_retailrocket_events,
    'timestamp,visitorid,event,itemid,transactionid\n1000000,7,view,1,\n1600000,7,view,2,\n',
  ),
  'session_lines': (readers.read_session_lines, '1,2,3\n4,5\n'),
  'recbole_inter': (
    readers.read_recbole_inter,
    'user_id:token\titem_id:token\ttimestamp:float\n1\t5\t10\n2\t6\t20\n',
  ),
  'lastfm_1k': (
    readers.read_lastfm_1k,
    'user_000002\t2009-05-03T15:10:18Z\ta\tA\tt1\tT\n'
    'user_000002\t2009-05-03T15:00:18Z\ta\tA\tt2\tT\n'
    'user_000001\t2009-05-03T15:20:18Z\ta\tA\tt1\tT\n',
  ),
  'cosmetics': (
    readers.read_cosmetics_events,
    f'{readers.COSMETICS_HEADER}\n'
    '2019-12-01 00:00:00 UTC,view,5,1,,,1.0,7,abc\n'
    '2019-12-01 00:01:00 UTC,view,6,1,,,1.0,7,abc\n',
  ),
  'user_item_lines': (user_sequences.read_user_item_lines, '1 5\n1 6\n2 5\n'),
  'sequence_lines': (user_sequences.read_sequence_lines, '1 5 6\n2 5\n'),
  'ml1m_ratings': (user_sequences.read_ml1m_ratings, '1::5::3::100\n1::6::4::200\n'),
}


@pytest.mark.parametrize('fmt', sorted(_BOM_CASES))
def test_every_reader_reads_a_file_with_a_byte_order_mark_as_without(write, fmt):
  """A UTF-8 BOM (as some editors save) changes nothing: before, it was glued to the first id of
  header-less files, refusing them or (Last.fm) making the first line's user another user."""
  read, text = _BOM_CASES[fmt]
  plain = read(write(f'{fmt}.txt', text))
  marked = read(write(f'{fmt}-bom.txt', '\ufeff' + text))
  for field in ('session', 'item', 'time', 'user'):
    expected, got = getattr(plain, field), getattr(marked, field)
    if expected is None:
      assert got is None
    else:
      np.testing.assert_array_equal(got, expected, err_msg=field)


@pytest.mark.parametrize('token', ['+5', '5_000', '٣', '--5', '5-'])
def test_session_lines_take_only_ascii_digit_ids(write, token):
  """Python's int() takes '+5', '5_000' and other scripts' digits; an item id here is ASCII
  digits with an optional minus sign, so such tokens (likely a garbled file) are named."""
  path = write('sessions.csv', f'1,2\n3,{token}\n')
  message = _error(readers.read_session_lines, path)
  assert 'line 2' in message and repr(token) in message


def test_times_in_milliseconds_read_as_seconds_are_named(write):
  """A Time column in ms would make test_days=1 hold out the last 86 s and a 30-minute gap
  1.8 s; such values (past the year 5138 as seconds) are refused, and time_unit='ms' reads them."""
  path = write('clicks.tsv', 'SessionId\tItemId\tTime\n1\t5\t1396861869277\n1\t6\t1396861870277\n')
  message = _error(readers.read_gru4rec_tsv, path)
  assert 'milliseconds' in message and 'time_unit=ms' in message
  events = readers.read_gru4rec_tsv(path, 'ms')
  np.testing.assert_allclose(events.time, [1396861869.277, 1396861870.277])
  inter = write('x.inter', 'user_id:token\titem_id:token\ttimestamp:float\n1\t5\t1396861869277\n')
  assert 'milliseconds' in _error(readers.read_recbole_inter, inter)
  assert readers.read_recbole_inter(inter, 1800.0, 'ms').time[0] == pytest.approx(1396861869.277)


def test_event_types_ignore_case_and_a_type_the_file_lacks_is_named(write):
  path = write(
    'events.csv',
    'timestamp,visitorid,event,itemid,transactionid\n'
    '1000000,7,View,1,\n'
    '1600000,7,view,2,\n'
    '1700000,7,addtocart,2,\n',
  )
  np.testing.assert_array_equal(readers.read_retailrocket_events(path).item, [1, 2])
  kinds = ('view', 'Transaction')
  message = _error(readers.read_retailrocket_events, path, 1800.0, kinds)
  assert "'Transaction'" in message and "'addtocart', 'view'" in message
