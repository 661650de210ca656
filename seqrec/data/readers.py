"""Readers that turn public click-log files into sorted `Events` tables with raw item ids.

Parsing is vectorised: numpy's C `loadtxt` reads the columns a chunk of lines at a time, and time
strings are converted with `datetime64` casts. Only when a chunk fails to parse does a slow
line-by-line pass run, to name the first bad line in the `DataError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from seqrec.data.errors import DataError
from seqrec.data.events import Events
from seqrec.data.preprocess import sessionize_by_gap

_CHUNK_BYTES = 1 << 25  # ~32 MB of text per loadtxt call bounds the temporary memory.
_TEXT_DTYPE = 'S32'  # Fixed-width bytes for time, date and label fields.
_TOKEN_BYTES = 64  # Longest id token (e.g. a 36-character UUID); longer ones are an error.
_BOM = b'\xef\xbb\xbf'  # UTF-8 byte-order mark, which some editors put at a file's start
_SEPARATOR_NAMES = {'\t': 'tab', ',': 'comma', ';': 'semicolon', ' ': 'space', '|': 'pipe'}

GRU4REC_HEADER = 'SessionId\tItemId\tTime'
DIGINETICA_HEADER = 'sessionId;userId;itemId;timeframe;eventdate'
RETAILROCKET_HEADER = 'timestamp,visitorid,event,itemid,transactionid'


@dataclasses.dataclass(frozen=True)
class _Column:
  """A column to read.

  Attributes:
    name: the column's name as the expected header spells it.
    kind: 'int', 'float', 'text', 'iso_time', 'date' or 'int_or_na'.
  """

  name: str
  kind: str


def _is_int(token: str) -> bool:
  try:
    int(token)
  except ValueError:
    return False
  return True


def _is_float(token: str) -> bool:
  try:
    return math.isfinite(float(token))  # 'nan' and 'inf' parse, but are no time
  except ValueError:
    return False


# Layout of the accepted time strings: (shortest, longest, {position: character}).
_TIME_LAYOUTS = {
  'iso_time': (19, int(_TEXT_DTYPE[1:]) - 1, {4: '-', 7: '-', 10: 'T', 13: ':', 16: ':'}),
  'date': (10, 10, {4: '-', 7: '-'}),
  'utc_time': (19, int(_TEXT_DTYPE[1:]) - 1, {4: '-', 7: '-', 10: ' ', 13: ':', 16: ':'}),
}
_TIME_UNITS = {'iso_time': 'ms', 'date': 'D', 'utc_time': 'ms'}


def _is_time(token: str, kind: str) -> bool:
  token = token.strip()
  token = token.replace(' UTC', '') if kind == 'utc_time' else token.rstrip('Z')
  shortest, longest, marks = _TIME_LAYOUTS[kind]
  if not shortest <= len(token) <= longest:
    return False
  if any(token[position] != mark for position, mark in marks.items()):
    return False
  try:
    return not np.isnat(np.datetime64(token, _TIME_UNITS[kind]))
  except ValueError:
    return False


_CHECKS: dict[str, Callable[[str], bool]] = {
  'int': _is_int,
  'float': _is_float,
  'text': lambda token: len(token.encode()) <= int(_TEXT_DTYPE[1:]),
  'iso_time': lambda token: _is_time(token, 'iso_time'),
  'date': lambda token: _is_time(token, 'date'),
  'int_or_na': lambda token: token.strip() in ('', 'NA') or _is_int(token),
  'utc_time': lambda token: _is_time(token, 'utc_time'),
  'token': lambda token: len(token.encode()) <= _TOKEN_BYTES,
  'id': lambda token: 0 < len(token.strip().encode()) <= _TOKEN_BYTES,
  'free': lambda token: True,
}
_EXPECTED: dict[str, str] = {
  'int': 'an integer',
  'float': 'a finite number',
  'text': f'a label of at most {_TEXT_DTYPE[1:]} bytes',
  'iso_time': 'an ISO 8601 time like 2014-04-07T10:51:09.277Z',
  'date': 'a date like 2016-05-09',
  'int_or_na': 'an integer or NA',
  'utc_time': 'a time like 2019-10-01 00:00:00 UTC',
  'token': f'an id of at most {_TOKEN_BYTES} bytes',
  'id': f'a non-empty id of at most {_TOKEN_BYTES} bytes',
  'free': 'any text',
}
# One byte more than the longest token, so that an over-long token shows instead of being cut.
# 'free' columns are only checked to exist; readers that need their text take it from the line.
_LOAD_DTYPES = {
  'int': np.int64,
  'float': np.float64,
  'token': f'S{_TOKEN_BYTES + 1}',
  'id': f'S{_TOKEN_BYTES + 1}',  # a token that may not be empty (a user or item id)
  'free': 'S1',
}


def _separator_name(sep: str) -> str:
  return _SEPARATOR_NAMES.get(sep, repr(sep))


def _separator_hint(text: str, sep: str) -> str:
  """Says which other separator a line seems to use, if any."""
  if sep in text:
    return ''
  for other, name in _SEPARATOR_NAMES.items():
    if other != sep and other in text.strip():
      return f' (it looks {name}-separated; this format is {_separator_name(sep)}-separated)'
  return ''


def check_file(path: str | os.PathLike) -> Path:
  """Checks that `path` is a readable, non-empty file.

  Returns:
    The path as a `Path`.

  Raises:
    DataError: if the file is missing, a directory or empty.
  """
  path = Path(path)
  if not path.exists():
    raise DataError(f'{path}: file not found')
  if not path.is_file():
    raise DataError(f'{path}: expected a file, found a directory or special file')
  if path.stat().st_size == 0:
    raise DataError(f'{path}: file is empty')
  return path


def read_text_bytes(path: str | os.PathLike) -> bytes:
  """The bytes of a checked input file (`check_file`), without a leading UTF-8 byte-order mark.

  Every reader drops the mark the same way, so a file saved by an editor that writes one reads
  as the same file without it.
  """
  data = check_file(path).read_bytes()
  return data[len(_BOM) :] if data.startswith(_BOM) else data


def _first_line(path: Path) -> str:
  with open(path, 'rb') as f:
    line = f.readline()
  return line.decode('utf-8-sig', errors='replace').rstrip('\r\n')


def _normalise_name(name: str) -> str:
  return name.strip().strip('"\'').replace('_', '').replace(' ', '').lower()


def _header_columns(
  path: Path, sep: str, columns: Sequence[_Column], expected_header: str
) -> list[int]:
  """Finds each wanted column in the file's header line (ignoring case, '_' and quotes).

  Returns:
    The field index of each column, in `columns` order.

  Raises:
    DataError: if the header uses another separator or lacks a column.
  """
  header = _first_line(path)
  sep_name = _separator_name(sep)
  if sep not in header:
    raise DataError(
      f'{path}, line 1: expected a {sep_name}-separated header like {expected_header!r}, '
      f'got {header!r}{_separator_hint(header, sep)}'
    )
  names = [_normalise_name(name) for name in header.split(sep)]
  indices = []
  for column in columns:
    found = [k for k, name in enumerate(names) if name == _normalise_name(column.name)]
    if not found:
      raise DataError(
        f'{path}, line 1: missing column {column.name!r}; expected a {sep_name}-separated header '
        f'like {expected_header!r}, got {header!r}'
      )
    indices.append(found[0])
  return indices


def _bad_line_error(
  path: Path,
  lines: Sequence[bytes],
  first_line: int,
  sep: str,
  columns: Sequence[_Column],
  usecols: Sequence[int],
) -> DataError | None:
  """Finds the first line of a chunk that does not parse; slow, for error reporting only."""
  n_fields = max(usecols) + 1
  for lineno, raw in enumerate(lines, start=first_line):
    text = raw.decode('utf-8', errors='replace').rstrip('\r\n')
    if not text:
      continue  # loadtxt skips empty lines too.
    fields = text.split(sep)
    if len(fields) < n_fields:
      wanted = ', '.join(column.name for column in columns)
      return DataError(
        f'{path}, line {lineno}: expected at least {n_fields} {_separator_name(sep)}-separated '
        f'fields (with {wanted}), found {len(fields)} in {text!r}{_separator_hint(text, sep)}'
      )
    for column, index in zip(columns, usecols, strict=True):
      token = fields[index]
      if not _CHECKS[column.kind](token):
        return DataError(
          f'{path}, line {lineno}: expected {_EXPECTED[column.kind]} for {column.name!r} '
          f'(field {index + 1}), got {token!r}{_separator_hint(token, sep)}'
        )
  return None


def _convert(column: _Column, values: np.ndarray) -> np.ndarray:
  """Turns a loadtxt column into its final dtype; raises ValueError on a bad value."""
  if column.kind == 'float' and not np.all(np.isfinite(values)):
    raise ValueError('a value that is not a finite number')
  if column.kind in ('int', 'float', 'text', 'free'):
    return values
  if column.kind in ('token', 'id'):
    if len(values) and np.char.str_len(values).max() > _TOKEN_BYTES:
      raise ValueError(f'id longer than {_TOKEN_BYTES} bytes')
    if column.kind == 'id' and len(values) and np.char.str_len(np.char.strip(values)).min() == 0:
      raise ValueError('an empty id')
    return values
  if column.kind == 'int_or_na':
    missing = (values == b'NA') | (values == b'')
    return np.where(missing, b'-1', values).astype(np.int64)
  if column.kind == 'utc_time':
    text = np.char.replace(np.char.strip(values), b' UTC', b'').astype(_TEXT_DTYPE)  # [E]
  else:
    text = np.char.rstrip(np.char.strip(values), b'Z').astype(_TEXT_DTYPE)  # [E]
  shortest, longest, marks = _TIME_LAYOUTS[column.kind]
  length = np.char.str_len(text)  # [E]
  chars = text.view(np.uint8).reshape(len(text), text.itemsize)  # [E, 32]
  laid_out = (length >= shortest) & (length <= longest)
  for position, mark in marks.items():
    laid_out &= chars[:, position] == ord(mark)
  if not np.all(laid_out):
    raise ValueError('time string with another layout')  # numpy would accept e.g. '20160101'.
  parsed = text.astype(f'datetime64[{_TIME_UNITS[column.kind]}]')  # [E]
  if np.any(np.isnat(parsed)):
    raise ValueError('missing time')
  if column.kind == 'date':
    return parsed.astype(np.int64) * 86400.0
  return parsed.astype(np.int64) / 1000.0


def _read_columns(
  path: Path,
  sep: str,
  columns: Sequence[_Column],
  usecols: Sequence[int],
  skiprows: int,
  chunk_hook: Callable[[list[bytes], list[np.ndarray]], list[np.ndarray]] | None = None,
) -> list[np.ndarray]:
  """Reads the given columns of a delimited file, converted per `_Column.kind`.

  Args:
    path: the file.
    sep: the field separator.
    columns: what to read.
    usecols: the field index of each column.
    skiprows: header lines to skip.
    chunk_hook: called on each chunk with its non-empty lines (one per row) and its converted
      columns; what it returns is kept instead of the columns, so a reader can reduce a chunk
      (e.g. derive one narrow column from wide text) before the chunks are joined.

  Returns:
    One [E] array per column: int64, float64 (times in unix seconds) or fixed-width bytes.

  Raises:
    DataError: naming the file and first bad line, or if there are no data rows.
  """
  dtype = [(f'c{k}', _LOAD_DTYPES.get(col.kind, _TEXT_DTYPE)) for k, col in enumerate(columns)]
  parts: list[list[np.ndarray]] = []
  with open(path, 'rb') as f:
    if f.read(len(_BOM)) != _BOM:
      f.seek(0)
    for _ in range(skiprows):
      f.readline()
    first_line = skiprows + 1
    while lines := f.readlines(_CHUNK_BYTES):
      try:
        with warnings.catch_warnings():
          warnings.simplefilter('ignore', UserWarning)  # A chunk of empty lines has no data.
          rows = lines if chunk_hook is None else [line for line in lines if line.rstrip(b'\r\n')]
          table = np.loadtxt(
            rows, delimiter=sep, dtype=dtype, usecols=usecols, ndmin=1, comments=None
          )
        converted = [_convert(column, table[f'c{k}']) for k, column in enumerate(columns)]
      except (ValueError, TypeError) as e:
        error = _bad_line_error(path, lines, first_line, sep, columns, usecols)
        if error is None:
          last_line = first_line + len(lines) - 1
          error = DataError(f'{path}: cannot parse lines {first_line}-{last_line}: {e}')
        raise error from None
      parts.append(converted if chunk_hook is None else chunk_hook(rows, converted))
      first_line += len(lines)
  if not parts or not sum(len(part[0]) for part in parts):
    where = 'after the header ' if skiprows else ''
    raise DataError(f'{path}: no data rows {where}(the file holds no events)')
  return [np.concatenate([part[k] for part in parts]) for k in range(len(parts[0]))]


# Units a numeric time column may be given in, as units per second.
TIME_UNITS = {'s': 1, 'ms': 1000}
# The largest plausible unix time in seconds (the year 5138). Milliseconds exceed it for any time
# after 1973-03-03, so a column above it was written in milliseconds (or finer).
_MAX_UNIX_SECONDS = 1e11
_SECONDS_PER_YEAR = 365.2425 * 86400


def _unix_seconds(time: np.ndarray, unit: str, path: Path, column: str) -> np.ndarray:
  """[E] seconds from a numeric time column in `unit` (a key of `TIME_UNITS`).

  Raises:
    DataError: if a column said to hold seconds holds values only milliseconds would explain;
      test_days and session gaps would otherwise cut the data at a 1000-fold wrong scale.
  """
  if unit not in TIME_UNITS:
    raise ValueError(f'time unit must be one of {list(TIME_UNITS)}, got {unit!r}')
  if unit == 's' and len(time) and time.max() > _MAX_UNIX_SECONDS:
    year = 1970 + time.max() / _SECONDS_PER_YEAR
    raise DataError(
      f'{path}: {column} value {time.max():.0f} would be the year {year:,.0f} in unix seconds; '
      'the column looks like milliseconds. Set --config.data.time_unit=ms (or divide it by 1000)'
    )
  return time / TIME_UNITS[unit]


def read_gru4rec_tsv(path: str | os.PathLike, time_unit: str = 's') -> Events:
  """Reads GRU4Rec's tab-separated format with header `SessionId\\tItemId\\tTime`.

  Columns are found by header name (in any order); extra columns are ignored.

  Args:
    path: the TSV file.
    time_unit: the unit of the Time column, 's' (GRU4Rec's files) or 'ms'.

  Returns:
    Raw events, sorted by (session, time); `time` in unix seconds.

  Raises:
    DataError: on a missing/empty file, a missing column, a value that does not parse, or times
      in milliseconds read as seconds.
  """
  path = check_file(path)
  columns = [
    _Column('SessionId', 'int'),
    _Column('ItemId', 'int'),
    _Column('Time', 'float'),
  ]
  usecols = _header_columns(path, '\t', columns, GRU4REC_HEADER)
  session, item, time = _read_columns(path, '\t', columns, usecols, skiprows=1)
  time = _unix_seconds(time, time_unit, path, 'Time')
  return Events(session, item, time, source=str(path)).sort()


def read_yoochoose_clicks(path: str | os.PathLike) -> Events:
  """Reads the raw RecSys Challenge 2015 `yoochoose-clicks.dat`.

  Lines are `session,timestamp,item,category` with no header, e.g.
  `1,2014-04-07T10:51:09.277Z,214536502,0`; the category is not read. Times are true UTC (note
  that session-rec's prepared files are shifted by -7200 s, see third_party_data/yoochoose).

  Args:
    path: the clicks file.

  Returns:
    Raw events, sorted by (session, time); `time` in unix seconds.

  Raises:
    DataError: on a missing/empty file, the wrong separator, or a value that does not parse.
  """
  path = check_file(path)
  header = _first_line(path)
  if ',' not in header:
    raise DataError(
      f'{path}, line 1: expected comma-separated fields session,timestamp,item,category, got '
      f'{header!r}{_separator_hint(header, ",")}'
    )
  columns = [
    _Column('session', 'int'),
    _Column('timestamp', 'iso_time'),
    _Column('item', 'int'),
  ]
  session, time, item = _read_columns(path, ',', columns, (0, 1, 2), skiprows=0)
  return Events(session, item, time, source=str(path)).sort()


def read_diginetica_views(path: str | os.PathLike) -> Events:
  """Reads DIGINETICA's (CIKM Cup 2016) `train-item-views.csv`.

  Semicolon-separated with header `sessionId;userId;itemId;timeframe;eventdate` (the snake_case
  spelling of SR-GNN's sample is accepted too). An event's time is its eventdate (UTC midnight) in
  unix seconds plus timeframe (ms since the session started) / 1000.

  Args:
    path: the views file.

  Returns:
    Raw events sorted by (session, time), with `user` = userId (-1 where NA).

  Raises:
    DataError: on a missing/empty file, a missing column, or a value that does not parse.
  """
  path = check_file(path)
  columns = [
    _Column('sessionId', 'int'),
    _Column('userId', 'int_or_na'),
    _Column('itemId', 'int'),
    _Column('timeframe', 'int'),
    _Column('eventdate', 'date'),
  ]
  usecols = _header_columns(path, ';', columns, DIGINETICA_HEADER)
  session, user, item, timeframe, day = _read_columns(path, ';', columns, usecols, skiprows=1)
  time = day + timeframe / 1000.0
  return Events(session, item, time, user=user, source=str(path)).sort()


def _event_mask(path: Path, labels: np.ndarray, event_types: Sequence[str], column: str):
  """[E] bool: the rows whose label is one of `event_types`, ignoring case and outer spaces.

  Raises:
    DataError: naming the labels the column holds, if a wanted type occurs in no row (a typo,
      or a type this file lacks, would otherwise silently shrink or empty the data).
  """
  found = np.char.lower(np.char.strip(labels))  # [E]
  wanted = [kind.strip().lower().encode() for kind in event_types]
  present = np.unique(found)
  missing = [kind for kind, key in zip(event_types, wanted, strict=True) if key not in present]
  if missing:
    held = [label.decode('utf-8', 'replace') for label in present[:10].tolist()]
    more = f' and {len(present) - 10} more' if len(present) > 10 else ''
    raise DataError(
      f'{path}: no events of type {", ".join(map(repr, missing))} in column {column!r}, which '
      f'holds {", ".join(map(repr, held))}{more}; set --config.data.event_types to types it holds'
    )
  return np.isin(found, wanted)


def read_retailrocket_events(
  path: str | os.PathLike,
  session_gap_seconds: float = 1800.0,
  event_types: Sequence[str] = ('view',),
) -> Events:
  """Reads RetailRocket's `events.csv` and cuts each visitor's events into sessions.

  The file (`timestamp,visitorid,event,itemid,transactionid`, ms timestamps) has no session ids.
  Events of the kept types are grouped per visitor in time order, and a new session starts when
  more than `session_gap_seconds` pass since the visitor's previous kept event.

  Args:
    path: the events file.
    session_gap_seconds: inactivity gap that ends a session.
    event_types: event labels to keep (`view`, `addtocart`, `transaction`; case is ignored);
      empty keeps all.

  Returns:
    Raw events sorted by (session, time); session ids 1.. in (visitor, start time) order;
    `user` = visitorid; `time` in unix seconds.

  Raises:
    DataError: on a missing/empty file, a missing column, a value that does not parse, or a kept
      type that no event has.
  """
  path = check_file(path)
  columns = [
    _Column('timestamp', 'int'),
    _Column('visitorid', 'int'),
    _Column('event', 'text'),
    _Column('itemid', 'int'),
  ]
  usecols = _header_columns(path, ',', columns, RETAILROCKET_HEADER)
  stamp_ms, visitor, event, item = _read_columns(path, ',', columns, usecols, skiprows=1)
  if event_types:
    keep = _event_mask(path, event, event_types, 'event')
    stamp_ms, visitor, item = stamp_ms[keep], visitor[keep], item[keep]
  time = stamp_ms / 1000.0
  order = np.lexsort((time, visitor))  # stable: ties keep file order
  visitor, item, time = visitor[order], item[order], time[order]
  session = sessionize_by_gap(visitor, time, session_gap_seconds)
  return Events(session, item, time, user=visitor, source=str(path))


def read_session_lines(path: str | os.PathLike, sep: str = ',') -> Events:
  """Reads one session per line as `sep`-separated integer item ids (no time, no ids).

  Empty lines and empty fields (e.g. a trailing comma) are skipped. The session id is the line
  number (1-based) and `time` is the event's position in the file, so time order = file order.

  Args:
    path: the file, e.g. DynamicRec's `diginetica.csv`.
    sep: the separator between item ids.

  Returns:
    Raw events sorted by (session, position).

  Raises:
    DataError: on a missing/empty file or a token that is not an integer (line and text named).
  """
  path = Path(path)
  # Windows (CRLF) and old Mac (CR) line ends are line ends too.
  data = read_text_bytes(path).replace(b'\r\n', b'\n').replace(b'\r', b'\n')
  sep_byte = sep.encode()
  if len(sep_byte) != 1 or sep_byte == b'\n':
    raise ValueError(f'sep must be one character other than newline, got {sep!r}')
  buf = np.frombuffer(data, np.uint8)  # [bytes]
  delims = np.flatnonzero((buf == sep_byte[0]) | (buf == ord('\n')))  # [D]
  # Token k ends at delims[k]; its line is the number of newlines before it.
  newlines_before = np.concatenate([[0], np.cumsum(buf[delims] == ord('\n'))])  # [D+1]
  tokens = np.array(data.replace(b'\n', sep_byte).split(sep_byte))  # [D+1] bytes
  tokens = np.char.strip(tokens)
  keep = tokens != b''
  tokens, line = tokens[keep], newlines_before[keep] + 1  # [E]
  if not len(tokens):
    raise DataError(f'{path}: no item ids found (the file holds no events)')
  # Python's int() would also take '+5', '5_000' or other scripts' digits: only ASCII digits with
  # an optional '-' are an id here.
  unsigned = np.char.lstrip(tokens, b'-')
  n_signs = np.char.str_len(tokens) - np.char.str_len(unsigned)  # [E]
  well_formed = np.char.isdigit(unsigned) & (n_signs <= 1)
  if not np.all(well_formed):
    bad = int(np.argmin(well_formed))
    text = tokens[bad].decode('utf-8', errors='replace')
    raise DataError(
      f'{path}, line {line[bad]}: expected {_separator_name(sep)}-separated integer item ids, '
      f'got {text!r}{_separator_hint(text, sep)}'
    )
  try:
    item = tokens.astype(np.int64)
  except OverflowError:
    bad = next(k for k, token in enumerate(tokens.tolist()) if not -(2**63) <= int(token) < 2**63)
    text = tokens[bad].decode()
    raise DataError(f'{path}, line {line[bad]}: item id {text} does not fit in 64 bits') from None
  time = np.arange(len(item), dtype=np.float64)
  return Events(line.astype(np.int64), item, time, source=str(path))


# User-session formats (HRNN): every reader fills `user` and numbers sessions so that each user's
# sessions are contiguous and in time order, which is what user-parallel batching walks.

RECBOLE_HEADER = 'user_id:token\titem_id:token\trating:float\ttimestamp:float'
LASTFM_1K_FIELDS = 'userid\ttimestamp\tartid\tartname\ttraid\ttraname'
COSMETICS_HEADER = (
  'event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session'
)
_ID_PREFIX_CHARS = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-'


def _token_numbers(tokens: np.ndarray) -> np.ndarray | None:
  """[E] int64 values of integer tokens, or None if one does not parse or two distinct tokens
  (e.g. '7' and '007') would get the same number."""
  try:
    numbers = tokens.astype(np.int64)
  except (ValueError, OverflowError):
    return None
  if len(np.unique(numbers)) != len(np.unique(tokens)):
    return None
  return numbers


def _shrink(tokens: np.ndarray) -> np.ndarray:
  """Narrows a fixed-width bytes array to its longest value."""
  width = int(np.char.str_len(tokens).max()) if len(tokens) else 1
  return tokens.astype(f'S{max(width, 1)}')


def _user_numbers(tokens: np.ndarray) -> np.ndarray:
  """Turns user id tokens into int64 user ids.

  Integer tokens keep their value; tokens of a letter prefix and digits keep the digits'
  value ('user_000042' -> 42); anything else (or a mix whose numbers would collide) gets the
  token's rank among the sorted distinct tokens.
  """
  numbers = _token_numbers(tokens)
  if numbers is None:
    numbers = _token_numbers(np.char.lstrip(tokens, _ID_PREFIX_CHARS))
  if numbers is None:
    numbers = np.unique(tokens, return_inverse=True)[1].reshape(-1).astype(np.int64)
  return numbers


def _item_ids(tokens: np.ndarray) -> np.ndarray:
  """Item id tokens as int64 when they are all integers, else as str."""
  numbers = _token_numbers(tokens)
  if numbers is not None:
    return numbers
  return np.char.decode(_shrink(tokens), 'utf-8', 'replace')


def _sessionize_users(
  user: np.ndarray, item: np.ndarray, time: np.ndarray, gap_seconds: float, path: Path
) -> Events:
  """Orders rows by (user, time), ties in row order, and cuts sessions at inactivity gaps.

  Returns:
    Events sorted by (session, time) with session ids 1..S in (user, start time) order.
  """
  order = np.lexsort((time, user))  # stable: ties keep row order
  user, item, time = user[order], item[order], time[order]
  session = sessionize_by_gap(user, time, gap_seconds)
  return Events(session, item, time, user=user, source=str(path))


def _number_given_sessions(
  user: np.ndarray, key: np.ndarray, item: np.ndarray, time: np.ndarray, path: Path
) -> Events:
  """Numbers sessions given by a key column, per user, in (user, start time, file) order.

  A session is a (user, key) pair, so a key that two users share makes two sessions.

  Returns:
    Events sorted by (session, time) with session ids 1..S.
  """
  key_code = np.unique(key, return_inverse=True)[1].reshape(-1)  # [E]
  user_code = np.unique(user, return_inverse=True)[1].reshape(-1)  # [E]
  pair = user_code.astype(np.int64) * (int(key_code.max()) + 1) + key_code  # [E]
  group = np.unique(pair, return_inverse=True)[1].reshape(-1)  # [E] session index
  n_sessions = int(group.max()) + 1
  start = np.full(n_sessions, np.inf)
  np.minimum.at(start, group, time)
  first_row = np.full(n_sessions, len(time))
  np.minimum.at(first_row, group, np.arange(len(time)))
  session_user = np.empty(n_sessions, np.int64)
  session_user[group] = user
  rank = np.empty(n_sessions, np.int64)
  rank[np.lexsort((first_row, start, session_user))] = np.arange(n_sessions)
  return Events(rank[group] + 1, item, time, user=user, source=str(path)).sort()


def _recbole_columns(path: Path, columns: Sequence[_Column]) -> list[int]:
  """Finds columns in a RecBole atomic-file header (`name:type` fields, tab-separated).

  Returns:
    The field index of each column, in `columns` order.

  Raises:
    DataError: if the header is not tab-separated or lacks a column.
  """
  header = _first_line(path)
  if '\t' not in header:
    raise DataError(
      f'{path}, line 1: expected a tab-separated RecBole header like {RECBOLE_HEADER!r}, '
      f'got {header!r}{_separator_hint(header, chr(9))}'
    )
  names = [_normalise_name(field.split(':')[0]) for field in header.split('\t')]
  indices = []
  for column in columns:
    found = [k for k, name in enumerate(names) if name == _normalise_name(column.name)]
    if not found:
      raise DataError(
        f'{path}, line 1: missing column {column.name!r}; expected a RecBole header like '
        f'{RECBOLE_HEADER!r} (fields name:type), got {header!r}'
      )
    indices.append(found[0])
  return indices


def read_recbole_rows(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Reads a RecBole atomic `.inter` file's user, item and timestamp columns in file order.

  The header names each tab-separated field as `name:type`, e.g. ML-100K's
  `user_id:token\\titem_id:token\\trating:float\\ttimestamp:float`. Columns are found by the name
  before the colon (in any order); other columns (rating, ...) are ignored.

  Returns:
    (user [E] int64, see `_user_numbers` for non-integer ids; item [E] int64, or str when the ids
    are not all integers; timestamp [E] float64 as in the file).

  Raises:
    DataError: on a missing/empty file, a missing column, or a value that does not parse.
  """
  path = check_file(path)
  columns = [
    _Column('user_id', 'id'),
    _Column('item_id', 'id'),
    _Column('timestamp', 'float'),
  ]
  usecols = _recbole_columns(path, columns)
  user, item, time = _read_columns(path, '\t', columns, usecols, skiprows=1)
  return _user_numbers(user), _item_ids(item), time


def read_recbole_inter(
  path: str | os.PathLike, session_gap_seconds: float = 1800.0, time_unit: str = 's'
) -> Events:
  """Reads a RecBole atomic `.inter` file and cuts each user's events into sessions.

  Columns as in `read_recbole_rows`. Each user's events are ordered by time, ties in file order,
  and a new session starts when more than `session_gap_seconds` pass since the user's previous
  event.

  Args:
    path: the `.inter` file.
    session_gap_seconds: inactivity gap that ends a session.
    time_unit: the unit of the timestamp column, 's' (RecBole's files) or 'ms'.

  Returns:
    Raw events sorted by (session, time); session ids 1.. in (user, start time) order; `user`,
    `item` as `read_recbole_rows` gives them; `time` in unix seconds.

  Raises:
    DataError: on a missing/empty file, a missing column, a value that does not parse, or times
      in milliseconds read as seconds.
  """
  user, item, time = read_recbole_rows(path)
  time = _unix_seconds(time, time_unit, Path(path), 'timestamp')
  return _sessionize_users(user, item, time, session_gap_seconds, Path(path))


def _lastfm_track_keys(rows: list[bytes], columns: list[np.ndarray]) -> list[np.ndarray]:
  """Chunk hook of `read_lastfm_1k`: the track id, or a key of the artist and track names."""
  user, time, track, _ = columns
  missing = np.flatnonzero(track == b'')  # [M] rows without a MusicBrainz track id
  if len(missing):
    track = track.copy()
    for row in missing.tolist():
      fields = rows[row].rstrip(b'\r\n').split(b'\t')
      digest = hashlib.blake2b(fields[3] + b'\t' + fields[5], digest_size=16).hexdigest()
      track[row] = b'name:' + digest.encode()
  return [_shrink(user), time, _shrink(track)]


def read_lastfm_1k(path: str | os.PathLike, session_gap_seconds: float = 1800.0) -> Events:
  """Reads Last.fm-1K's `userid-timestamp-artid-artname-traid-traname.tsv` and sessionises it.

  Lines are tab-separated `userid, timestamp, artid, artname, traid, traname`, e.g.
  `user_000001\\t2009-05-03T15:10:18Z\\t<artist MBID>\\tMinus 8\\t<track MBID>\\tElysian Fields`,
  with no header; a first line without a digit in its timestamp field is taken for a header and
  skipped. The item is the track: its MusicBrainz id (traid) when present, else (about one play
  in ten in the full data has none) `'name:'` followed by a 128-bit hash of artist and track
  name, so that such plays still form stable, fixed-width item ids (names are unbounded text).
  The file lists each user's plays newest first; rows are reversed before the stable
  (user, time) sort so that plays with equal timestamps keep their chronological order.

  Args:
    path: the tsv file.
    session_gap_seconds: inactivity gap that ends a session.

  Returns:
    Raw events sorted by (session, time); session ids 1.. in (user, start time) order; `user` =
    the number in the user id ('user_000042' -> 42); `item` as str; `time` in unix seconds.

  Raises:
    DataError: on a missing/empty file, a line with fewer than 6 fields, a bad time or id.
  """
  path = check_file(path)
  header = _first_line(path)
  if '\t' not in header:
    raise DataError(
      f'{path}, line 1: expected tab-separated fields {LASTFM_1K_FIELDS!r}, got '
      f'{header!r}{_separator_hint(header, chr(9))}'
    )
  has_header = not any(char.isdigit() for char in header.split('\t')[1])
  columns = [
    _Column('userid', 'token'),
    _Column('timestamp', 'iso_time'),
    _Column('traid', 'token'),
    _Column('traname', 'free'),
  ]
  user, time, track = _read_columns(
    path, '\t', columns, (0, 1, 4, 5), skiprows=int(has_header), chunk_hook=_lastfm_track_keys
  )
  user, time, track = user[::-1], time[::-1], track[::-1]
  item = np.char.decode(track, 'utf-8', 'replace')
  return _sessionize_users(_user_numbers(user), item, time, session_gap_seconds, path)


def read_cosmetics_events(
  path: str | os.PathLike,
  event_types: Sequence[str] = ('view',),
  use_session_ids: bool = True,
  session_gap_seconds: float = 1800.0,
) -> Events:
  """Reads the Kaggle "eCommerce events history in cosmetics shop" CSV (one month per file).

  Header: `event_time,event_type,product_id,category_id,category_code,brand,price,user_id,
  user_session`, with times like `2019-12-01 00:00:00 UTC`. Sessions are the shop's
  `user_session` ids (per user; rows without one are dropped), or, with `use_session_ids=False`,
  each user's kept events cut at inactivity gaps of more than `session_gap_seconds`.

  Args:
    path: the CSV file.
    event_types: event labels to keep (`view`, `cart`, `remove_from_cart`, `purchase`; case is
      ignored); empty keeps all.
    use_session_ids: take sessions from `user_session` rather than from time gaps.
    session_gap_seconds: inactivity gap that ends a session when `use_session_ids` is False.

  Returns:
    Raw events sorted by (session, time); session ids 1.. in (user, start time) order; `user` =
    user_id; `item` = product_id; `time` in unix seconds.

  Raises:
    DataError: on a missing/empty file, a missing column, a value that does not parse, a kept
      type that no event has, or no kept event with a session id.
  """
  path = check_file(path)
  columns = [
    _Column('event_time', 'utc_time'),
    _Column('event_type', 'text'),
    _Column('product_id', 'int'),
    _Column('user_id', 'int'),
  ]
  if use_session_ids:
    columns.append(_Column('user_session', 'token'))
  usecols = _header_columns(path, ',', columns, COSMETICS_HEADER)
  time, event, item, user, *key = _read_columns(path, ',', columns, usecols, skiprows=1)
  keep = np.ones(len(time), bool)
  if event_types:
    keep = _event_mask(path, event, event_types, 'event_type')
  if not use_session_ids:
    return _sessionize_users(user[keep], item[keep], time[keep], session_gap_seconds, path)
  key = np.char.strip(key[0])
  keep &= key != b''
  if not np.any(keep):
    raise DataError(
      f'{path}: no kept event has a user_session; use_session_ids=False cuts sessions by time'
    )
  return _number_given_sessions(user[keep], key[keep], item[keep], time[keep], path)
