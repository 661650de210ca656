"""Readers that turn public click-log files into sorted `Events` tables with raw item ids.

Parsing is vectorised: numpy's C `loadtxt` reads the columns a chunk of lines at a time, and time
strings are converted with `datetime64` casts. Only when a chunk fails to parse does a slow
line-by-line pass run, to name the first bad line in the `DataError`.
"""

from __future__ import annotations

import dataclasses
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
    float(token)
  except ValueError:
    return False
  return True


# Layout of the accepted time strings: (shortest, longest, {position: character}).
_TIME_LAYOUTS = {
  'iso_time': (19, int(_TEXT_DTYPE[1:]) - 1, {4: '-', 7: '-', 10: 'T', 13: ':', 16: ':'}),
  'date': (10, 10, {4: '-', 7: '-'}),
}
_TIME_UNITS = {'iso_time': 'ms', 'date': 'D'}


def _is_time(token: str, kind: str) -> bool:
  token = token.strip().rstrip('Z')
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
}
_EXPECTED: dict[str, str] = {
  'int': 'an integer',
  'float': 'a number',
  'text': f'a label of at most {_TEXT_DTYPE[1:]} bytes',
  'iso_time': 'an ISO 8601 time like 2014-04-07T10:51:09.277Z',
  'date': 'a date like 2016-05-09',
  'int_or_na': 'an integer or NA',
}
_LOAD_DTYPES = {'int': np.int64, 'float': np.float64}


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
  if column.kind in ('int', 'float', 'text'):
    return values
  if column.kind == 'int_or_na':
    missing = (values == b'NA') | (values == b'')
    return np.where(missing, b'-1', values).astype(np.int64)
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
  path: Path, sep: str, columns: Sequence[_Column], usecols: Sequence[int], skiprows: int
) -> list[np.ndarray]:
  """Reads the given columns of a delimited file, converted per `_Column.kind`.

  Returns:
    One [E] array per column: int64, float64 (times in unix seconds) or fixed-width bytes.

  Raises:
    DataError: naming the file and first bad line, or if there are no data rows.
  """
  dtype = [(f'c{k}', _LOAD_DTYPES.get(col.kind, _TEXT_DTYPE)) for k, col in enumerate(columns)]
  parts: list[list[np.ndarray]] = []
  with open(path, 'rb') as f:
    for _ in range(skiprows):
      f.readline()
    first_line = skiprows + 1
    while lines := f.readlines(_CHUNK_BYTES):
      try:
        with warnings.catch_warnings():
          warnings.simplefilter('ignore', UserWarning)  # A chunk of empty lines has no data.
          table = np.loadtxt(
            lines, delimiter=sep, dtype=dtype, usecols=usecols, ndmin=1, comments=None
          )
        parts.append([_convert(column, table[f'c{k}']) for k, column in enumerate(columns)])
      except (ValueError, TypeError) as e:
        error = _bad_line_error(path, lines, first_line, sep, columns, usecols)
        if error is None:
          last_line = first_line + len(lines) - 1
          error = DataError(f'{path}: cannot parse lines {first_line}-{last_line}: {e}')
        raise error from None
      first_line += len(lines)
  if not parts or not sum(len(part[0]) for part in parts):
    where = 'after the header ' if skiprows else ''
    raise DataError(f'{path}: no data rows {where}(the file holds no events)')
  return [np.concatenate([part[k] for part in parts]) for k in range(len(columns))]


def read_gru4rec_tsv(path: str | os.PathLike) -> Events:
  """Reads GRU4Rec's tab-separated format with header `SessionId\\tItemId\\tTime`.

  Columns are found by header name (in any order); extra columns are ignored.

  Args:
    path: the TSV file.

  Returns:
    Raw events, sorted by (session, time); `time` as in the file (unix seconds).

  Raises:
    DataError: on a missing/empty file, a missing column, or a value that does not parse.
  """
  path = check_file(path)
  columns = [
    _Column('SessionId', 'int'),
    _Column('ItemId', 'int'),
    _Column('Time', 'float'),
  ]
  usecols = _header_columns(path, '\t', columns, GRU4REC_HEADER)
  session, item, time = _read_columns(path, '\t', columns, usecols, skiprows=1)
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
    event_types: event labels to keep (`view`, `addtocart`, `transaction`); empty keeps all.

  Returns:
    Raw events sorted by (session, time); session ids 1.. in (visitor, start time) order;
    `user` = visitorid; `time` in unix seconds.

  Raises:
    DataError: on a missing/empty file, a missing column, a value that does not parse, or no
      events of the kept types.
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
    keep = np.isin(np.char.strip(event), [kind.encode() for kind in event_types])
    if not np.any(keep):
      raise DataError(f'{path}: no events of type {list(event_types)} (column "event")')
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
  path = check_file(path)
  data = path.read_bytes().replace(b'\r', b'')
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
  try:
    item = tokens.astype(np.int64)
  except ValueError:
    for token, lineno in zip(tokens.tolist(), line.tolist(), strict=True):
      text = token.decode('utf-8', errors='replace')
      if not _is_int(text):
        raise DataError(
          f'{path}, line {lineno}: expected {_separator_name(sep)}-separated integer item ids, '
          f'got {text!r}{_separator_hint(text, sep)}'
        ) from None
    raise
  time = np.arange(len(item), dtype=np.float64)
  return Events(line.astype(np.int64), item, time, source=str(path))
