"""User sequences for SASRec-style models: readers, filters, leave-one-out/gSASRec splits, cache.

Every reader returns raw interactions as `Events` whose `session` is the user, sorted by (user,
time) with ties in file order (files without time use the line position, so file order is kept).
`build_sequence_data` then filters, numbers and splits them:

- items with fewer than `min_item_support` interactions go first (SASRec's ML-1M recipe uses 5),
  then users with fewer than `min_user_length` of the remaining items; one pass, not an iterated
  k-core. Users left without items always go.
- Items get dense ids 1..N in ascending raw-id order, so files that already hold dense 1-based ids
  (SASRec's `ml-1m.txt`, S3-Rec's files) keep them; 0 is padding. Users get 0..U-1 in ascending
  raw-id order.
- Leave-one-out follows SASRec's `data_partition`: a user with n >= 3 items trains on the first
  n - 2, is validated on item n - 1 (history: the first n - 2) and tested on item n (history: the
  first n - 1). A user with fewer than 3 items trains on all of them and is not evaluated (targets
  0): evaluating such a user would need an empty history, and dropping them would lose training
  data that SASRec keeps.
- The given gSASRec split (`format='gsasrec_split'`) takes every user's full sequence from `path`
  (SASRec's `ml-1m.txt`) and checks the split files against it (see `gsasrec_split`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqrec.data import loading, preprocess, readers, synthetic
from seqrec.data.errors import DataError, data_flag
from seqrec.data.events import Events, ItemVocab

SEQUENCE_FORMATS = (
  'user_item_lines',
  'sequence_lines',
  'ml1m_ratings',
  'recbole_inter',
  'gsasrec_split',
  'synthetic',
)
SEQUENCE_SPLITS = ('leave_one_out', 'given')
GSASREC_FILES = ('train/input.txt', 'val/input.txt', 'val/output.txt', 'test/output.txt')
_FORMAT_VERSION = 1
_CACHE_VERSION = 1  # Bump when a change to this module changes processed data.
_WHITESPACE = np.frombuffer(b' \t\r\n\x0b\x0c', np.uint8)
_RAGGED_FIELDS = ('train', 'valid_history', 'test_history')


@dataclasses.dataclass(frozen=True, eq=False)
class Ragged:
  """One int32 sequence per row (user), stored flat.

  Attributes:
    offsets: [U+1] int64; row u is `values[offsets[u]:offsets[u+1]]`.
    values: [E] int32 item ids.
  """

  offsets: np.ndarray
  values: np.ndarray

  def __post_init__(self):
    if self.offsets.ndim != 1 or not len(self.offsets) or self.offsets[0] != 0:
      raise ValueError('Ragged.offsets must be 1-D and start at 0')
    if self.offsets[-1] != len(self.values) or np.any(np.diff(self.offsets) < 0):
      raise ValueError('Ragged.offsets must be non-decreasing and end at len(values)')

  @classmethod
  def from_lengths(cls, values, lengths) -> Ragged:
    """Rows of the given lengths cut from `values` in order."""
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64)
    return cls(offsets, np.asarray(values, np.int32))

  @classmethod
  def from_rows(cls, rows: Sequence[Sequence[int]]) -> Ragged:
    """Builds from a list of sequences (for tests and small inputs)."""
    values = [item for row in rows for item in row]
    return cls.from_lengths(np.array(values, np.int32), [len(row) for row in rows])

  @property
  def n_rows(self) -> int:
    return len(self.offsets) - 1

  def row(self, u: int) -> np.ndarray:
    return self.values[self.offsets[u] : self.offsets[u + 1]]

  def lengths(self) -> np.ndarray:
    """[U] int64 length of each row."""
    return np.diff(self.offsets)

  def row_ids(self) -> np.ndarray:
    """[E] int64 row of each value."""
    return np.repeat(np.arange(self.n_rows), self.lengths())

  def positions(self) -> np.ndarray:
    """[E] int64 position of each value within its row."""
    return np.arange(len(self.values)) - np.repeat(self.offsets[:-1], self.lengths())

  def prefixes(self, lengths) -> Ragged:
    """Cuts every row u to its first `lengths[u]` values (at most the row's length)."""
    lengths = np.asarray(lengths, np.int64)
    if np.any(lengths < 0) or np.any(lengths > self.lengths()):
      raise ValueError('prefix lengths must lie between 0 and the row lengths')
    keep = self.positions() < np.repeat(lengths, self.lengths())  # [E]
    return Ragged.from_lengths(self.values[keep], lengths)

  def take(self, rows) -> Ragged:
    """The given rows, in the given order."""
    rows = np.asarray(rows, np.int64)
    lengths = self.lengths()[rows]
    firsts = np.cumsum(lengths) - lengths
    index = np.arange(lengths.sum()) + np.repeat(self.offsets[rows] - firsts, lengths)
    return Ragged.from_lengths(self.values[index], lengths)


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceData:
  """Per-user item sequences and their evaluation split, in dense ids.

  For every user, `train` is a prefix of `valid_history`, which is a prefix of `test_history`;
  a target of 0 means the user is not evaluated on that split.

  Attributes:
    name: dataset name.
    n_items: N; items are 1..N and 0 is padding.
    train: [U] training sequences (time order): what the batchers see.
    valid_history: [U] the items before each user's validation target.
    valid_target: [U] int32 validation target, 0 = user not in validation.
    test_history: [U] the items before each user's test target.
    test_target: [U] int32 test target, 0 = user not evaluated.
    item_ids: [N+1] raw id of each dense item id (entry 0 unused).
    user_ids: [U] raw id of each dense user id.
  """

  name: str
  n_items: int
  train: Ragged
  valid_history: Ragged
  valid_target: np.ndarray
  test_history: Ragged
  test_target: np.ndarray
  item_ids: np.ndarray
  user_ids: np.ndarray

  @property
  def n_users(self) -> int:
    return len(self.user_ids)

  @functools.cached_property
  def item_counts(self) -> np.ndarray:
    """[N+1] int64 number of training interactions of each item (entry 0 is 0)."""
    return np.bincount(self.train.values, minlength=self.n_items + 1).astype(np.int64)

  def stats(self) -> dict[str, int]:
    """Users, items, training interactions and evaluated users."""
    return {
      'users': self.n_users,
      'items': self.n_items,
      'train_interactions': len(self.train.values),
      'valid_users': int(np.count_nonzero(self.valid_target)),
      'test_users': int(np.count_nonzero(self.test_target)),
    }

  def save(self, path: str | os.PathLike) -> None:
    """Writes every array to one `.npz` file (no pickled objects)."""
    arrays = {
      'format_version': np.array(_FORMAT_VERSION),
      'kind': np.array('user_sequences'),
      'name': np.array(self.name),
      'n_items': np.array(self.n_items),
      'valid_target': self.valid_target,
      'test_target': self.test_target,
      'item_ids': self.item_ids,
      'user_ids': self.user_ids,
    }
    for field in _RAGGED_FIELDS:
      arrays[f'{field}.offsets'] = getattr(self, field).offsets
      arrays[f'{field}.values'] = getattr(self, field).values
    with open(path, 'wb') as f:
      np.savez(f, **arrays)

  @classmethod
  def load(cls, path: str | os.PathLike) -> SequenceData:
    """Reads a file written by `save`.

    Raises:
      ValueError: if the file was written by an incompatible version or is no sequence file.
    """
    with np.load(path, allow_pickle=False) as f:
      arrays = {key: f[key] for key in f.files}
    if str(arrays.get('kind', '')) != 'user_sequences':
      raise ValueError(f'{path}: not a SequenceData file')
    if int(arrays['format_version']) != _FORMAT_VERSION:
      version = int(arrays['format_version'])
      raise ValueError(f'{path}: SequenceData format {version}, expected {_FORMAT_VERSION}')
    ragged = {
      field: Ragged(arrays[f'{field}.offsets'], arrays[f'{field}.values'])
      for field in _RAGGED_FIELDS
    }
    return cls(
      name=str(arrays['name']),
      n_items=int(arrays['n_items']),
      valid_target=arrays['valid_target'],
      test_target=arrays['test_target'],
      item_ids=arrays['item_ids'],
      user_ids=arrays['user_ids'],
      **ragged,
    )


# Readers.


def _line_text(data: bytes, line: int) -> str:
  """The text of 1-based line `line`, for error messages."""
  return data.split(b'\n')[line - 1].rstrip(b'\r').decode('utf-8', 'replace')


def _line_error(path: Path, data: bytes, line: int, expected: str) -> DataError:
  return DataError(f'{path}, line {line}: expected {expected}, got {_line_text(data, line)!r}')


def _int_lines(
  path: Path, data: bytes, expected: str, shown: bytes | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """Parses whitespace-separated non-negative integers, line by line.

  Args:
    path: the file, for error messages.
    data: its bytes.
    expected: what a line should hold, for error messages.
    shown: the text that error messages quote (default: `data`).

  Returns:
    (values [T] int64 in file order, counts [lines] int64 number of values on each line).

  Raises:
    DataError: naming the first line with a character that is neither a digit nor whitespace.
  """
  shown = data if shown is None else shown
  buf = np.frombuffer(data, np.uint8)  # [bytes]
  space = np.isin(buf, _WHITESPACE)
  newlines = np.flatnonzero(buf == ord('\n'))
  bad = np.flatnonzero(~space & ((buf < ord('0')) | (buf > ord('9'))))
  if len(bad):
    raise _line_error(path, shown, int(np.searchsorted(newlines, bad[0])) + 1, expected)
  starts = np.flatnonzero(~space & np.r_[True, space[:-1]])  # [T] first byte of each token
  n_lines = len(newlines) + int(not data.endswith(b'\n'))
  counts = np.bincount(np.searchsorted(newlines, starts), minlength=n_lines).astype(np.int64)
  try:
    values = np.array(data.split()).astype(np.int64)
  except OverflowError:
    raise DataError(f'{path}: an id does not fit in 64 bits; expected {expected}') from None
  return values, counts


def _check_counts(
  path: Path, data: bytes, counts: np.ndarray, ok: np.ndarray, expected: str
) -> None:
  """Raises a DataError naming the first line where `ok` [lines] is False, or when all are empty."""
  if not np.all(ok):
    raise _line_error(path, data, int(np.argmin(ok)) + 1, expected)
  if not counts.any():
    raise DataError(f'{path}: no interactions found; expected lines of {expected}')


def _user_events(user: np.ndarray, item: np.ndarray, time: np.ndarray, path) -> Events:
  """Events keyed by user (session = user), sorted by (user, time), ties in row order."""
  return Events(user, item, time.astype(np.float64), user=user, source=str(path)).sort()


def read_user_item_lines(path: str | os.PathLike) -> Events:
  """Reads SASRec's `user item` lines (one interaction per line, each user's in time order).

  Returns:
    Raw interactions sorted by user, each user's in file order (`time` = line position).

  Raises:
    DataError: on a missing/empty file, a non-integer id or a line without exactly two ids.
  """
  path = Path(path)
  data = readers.read_text_bytes(path)
  expected = "'user item' (two integer ids)"
  values, counts = _int_lines(path, data, expected)
  _check_counts(path, data, counts, (counts == 2) | (counts == 0), expected)
  pairs = values.reshape(-1, 2)  # [E, 2]
  return _user_events(pairs[:, 0], pairs[:, 1], np.arange(len(pairs)), path)


def read_sequence_lines(path: str | os.PathLike) -> Events:
  """Reads S3-Rec's one-user-per-line `uid i1 i2 ...` files (items in time order).

  Returns:
    Raw interactions sorted by user, each user's in line order.

  Raises:
    DataError: on a missing/empty file, a non-integer id, a line without items, or a user on two
      lines.
  """
  path = Path(path)
  data = readers.read_text_bytes(path)
  expected = "'user item1 item2 ...' (integer ids)"
  values, counts = _int_lines(path, data, expected)
  _check_counts(path, data, counts, counts != 1, expected)
  first = np.cumsum(counts) - counts  # [lines] index of each line's user id
  has_user = counts > 0
  line_users = values[first[has_user]]  # [U]
  unique, seen = np.unique(line_users, return_counts=True)
  if np.any(seen > 1):
    lines = np.flatnonzero(has_user)[np.flatnonzero(line_users == unique[seen > 1][0])] + 1
    raise DataError(f'{path}: user {unique[seen > 1][0]} is on lines {lines[0]} and {lines[1]}')
  is_item = np.ones(len(values), bool)
  is_item[first[has_user]] = False
  user = np.repeat(line_users, counts[has_user] - 1)
  return _user_events(user, values[is_item], np.arange(len(user)), path)


def read_ml1m_ratings(path: str | os.PathLike) -> Events:
  """Reads MovieLens-1M's `ratings.dat` (`UserID::MovieID::Rating::Timestamp`); ratings ignored.

  Returns:
    Raw interactions sorted by user, each user's by timestamp, ties in file order.

  Raises:
    DataError: on a missing/empty file, a non-integer field or a line without four fields.
  """
  path = Path(path)
  data = readers.read_text_bytes(path)
  expected = "'UserID::MovieID::Rating::Timestamp' (four integers separated by '::')"
  blank = np.flatnonzero(np.isin(np.frombuffer(data, np.uint8), [ord(' '), ord('\t')]))
  if len(blank):
    raise _line_error(path, data, data.count(b'\n', 0, int(blank[0])) + 1, expected)
  values, counts = _int_lines(path, data.replace(b'::', b' '), expected, shown=data)
  _check_counts(path, data, counts, (counts == 4) | (counts == 0), expected)
  rows = values.reshape(-1, 4)  # [E, 4]
  return _user_events(rows[:, 0], rows[:, 1], rows[:, 3], path)


def read_recbole_sequences(path: str | os.PathLike) -> Events:
  """Reads a RecBole `.inter` file (see `readers.read_recbole_rows`) as per-user sequences.

  Returns:
    Raw interactions sorted by user, each user's by timestamp (in any unit), ties in file order.
  """
  user, item, time = readers.read_recbole_rows(path)
  return _user_events(user, item, time, path)


def synthetic_sequences(
  n_users: int, n_items: int, mean_length: float, seed: int
) -> tuple[Events, synthetic.MarkovChain]:
  """Users whose sequences walk `synthetic.make_chain`'s sparse Markov chain (one walk per user).

  Lengths are 1 + geometric with mean `mean_length`, clipped at 4 * mean_length, so every user
  has at least 2 items. The same arguments always give the same data.

  Returns:
    (raw interactions with users 1..U and items 1..N, sorted by user and time; the chain, whose
    item index i is raw item i + 1).
  """
  walks, chain = synthetic.generate_with_chain(
    n_users, n_items, seed, mean_length=mean_length, max_length=int(4 * mean_length)
  )
  return _user_events(walks.session, walks.item, walks.time, 'synthetic'), chain


# Filters, ids and splits.


def filter_interactions(events: Events, min_item_support: int, min_user_length: int) -> Events:
  """Drops rare items, then short users, in one pass (0 disables a filter).

  Args:
    events: user-keyed interactions sorted by (user, time).
    min_item_support: items with fewer interactions go.
    min_user_length: users with fewer items left go.

  Returns:
    The remaining interactions, still sorted.
  """
  if min_item_support > 0:
    events = preprocess.filter_rare_items(events, min_item_support)
  if min_user_length > 0:
    events = preprocess.filter_short_sessions(events, min_user_length)
  return events


def encode_sequences(events: Events) -> tuple[Ragged, ItemVocab, np.ndarray]:
  """Dense ids (see the module docstring) for user-keyed events sorted by (user, time).

  Returns:
    (full sequences [U] with item ids 1..N, the vocabulary (dense id - 1 = position), [U] raw
    user ids).
  """
  vocab = ItemVocab(np.unique(events.item))
  full = Ragged(events.session_offsets(), vocab.encode(events.item) + 1)
  return full, vocab, events.session_ids()


def leave_one_out(full: Ragged) -> dict[str, Ragged | np.ndarray]:
  """SASRec's split of full sequences (see the module docstring).

  Returns:
    The `SequenceData` fields train, valid_history, valid_target, test_history, test_target.
  """
  n = full.lengths()  # [U]
  held = n >= 3
  last = full.offsets[1:] - 1  # [U] index of each user's last item
  train = full.prefixes(n - 2 * held)
  return {
    'train': train,
    'valid_history': train,
    'valid_target': np.where(held, full.values[last - 1], 0).astype(np.int32),
    'test_history': full.prefixes(n - held),
    'test_target': np.where(held, full.values[last], 0).astype(np.int32),
  }


def _read_split_file(path: Path, what: str) -> tuple[bytes, np.ndarray, np.ndarray]:
  """(bytes, values [T], counts [lines]) of a gSASRec split file (see `_int_lines`)."""
  data = readers.read_text_bytes(path)
  return (data, *_int_lines(path, data, f'{what} (integer ids)'))


def _check_lines(path: Path, vocab: ItemVocab, expected: Ragged, what: str, parsed=None) -> None:
  """Checks that line k of a split file holds exactly row k of `expected`.

  Args:
    path: the split file.
    vocab: the item vocabulary of `expected`.
    expected: [lines] the dense item ids each line should hold.
    what: what a line holds, for error messages.
    parsed: the file's `_read_split_file`, when already read.

  Raises:
    DataError: naming the file and the first line that differs.
  """
  data, values, counts = parsed or _read_split_file(path, what)
  if len(counts) != expected.n_rows:
    raise DataError(f'{path}: {len(counts)} lines, expected {expected.n_rows} ({what})')
  differs = counts != expected.lengths()  # [lines]
  if not differs.any():
    rows = np.repeat(np.arange(len(counts)), counts)  # [T]
    differs[rows[vocab.encode(values) + 1 != expected.values]] = True
  if differs.any():
    row = int(np.argmax(differs))
    ending = ' '.join(str(i) for i in vocab.decode(expected.row(row)[-5:] - 1))
    raise DataError(
      f'{path}, line {row + 1}: expected {what}: {expected.lengths()[row]} items ending '
      f'{ending!r}, got {counts[row]} items ending {_line_text(data, row + 1)[-40:]!r}'
    )


def gsasrec_split(
  full: Ragged, vocab: ItemVocab, user_ids: np.ndarray, split_dir: str | os.PathLike, source: str
) -> dict[str, Ragged | np.ndarray]:
  """gSASRec's given split, checked against every user's full sequence.

  `train/input.txt` holds line u = user u's items minus the last 2, or minus the last 3 for the
  validation users; `val/input.txt` and `val/output.txt` hold, for the validation users in
  ascending order, the items minus the last 2 and the second-to-last item; `test/output.txt` holds
  every user's last item. The validation users are those whose training line is 3 items short.

  Args:
    full: every user's full sequence, dense ids.
    vocab: the item vocabulary of `full`.
    user_ids: raw ids of `full`'s users; must be 1..U (line u of the split files is user u).
    split_dir: the directory of the split files.
    source: the file `full` came from, for error messages.

  Returns:
    The `SequenceData` split fields: test history = the full sequence minus its last item.

  Raises:
    DataError: if a file is missing or disagrees with the full sequences.
  """
  split_dir = Path(split_dir)
  n_users = full.n_rows
  if not np.array_equal(user_ids, np.arange(1, n_users + 1)):
    raise DataError(f'{source}: gsasrec_split needs users 1..{n_users}, one line each in the split')
  n = full.lengths()  # [U]
  if np.any(n < 3):
    raise DataError(f'{source}: user {user_ids[np.argmax(n < 3)]} has fewer than 3 items')
  train_path = split_dir / GSASREC_FILES[0]
  train_what = "each user's items minus the last 2 (3 for validation users)"
  parsed = _read_split_file(train_path, train_what)
  if len(parsed[2]) != n_users:
    raise DataError(f'{train_path}: {len(parsed[2])} lines, expected one per user of {source}')
  in_valid = parsed[2] == n - 3  # [U]
  train = full.prefixes(n - 2 - in_valid)
  _check_lines(train_path, vocab, train, train_what, parsed)
  valid_users = np.flatnonzero(in_valid)
  last = full.offsets[1:] - 1  # [U]
  valid_history = full.prefixes(n - 2)
  _check_lines(
    split_dir / GSASREC_FILES[1],
    vocab,
    valid_history.take(valid_users),
    "a validation user's items minus the last 2",
  )
  _check_lines(
    split_dir / GSASREC_FILES[2],
    vocab,
    Ragged.from_lengths(full.values[last[valid_users] - 1], np.ones(len(valid_users), np.int64)),
    "a validation user's second-to-last item",
  )
  test_target = full.values[last]
  _check_lines(
    split_dir / GSASREC_FILES[3],
    vocab,
    Ragged.from_lengths(test_target, np.ones(n_users, np.int64)),
    "each user's last item",
  )
  return {
    'train': train,
    'valid_history': valid_history,
    'valid_target': np.where(in_valid, full.values[last - 1], 0).astype(np.int32),
    'test_history': full.prefixes(n - 1),
    'test_target': test_target.astype(np.int32),
  }


# Options, building and the cache.


@dataclasses.dataclass(frozen=True)
class SequenceDataOptions:
  """Every field `load_sequence_data` reads from its config, with its default.

  Attributes:
    format: one of `SEQUENCE_FORMATS`.
    path: the input file; for 'gsasrec_split', SASRec's `ml-1m.txt` (the full sequences).
    split: 'leave_one_out', or 'given' (only with 'gsasrec_split', which requires it).
    split_dir: 'gsasrec_split' only: the directory of the split files; default: the folder
      `gsasrec_split` beside `path`.
    min_item_support: items with fewer interactions go (0 = no filter; SASRec's ML-1M: 5).
    min_user_length: users with fewer items (after the item filter) go (0 = no filter).
    name: dataset name; default: the format for synthetic data, else `path`'s stem.
    cache_dir: when set, the processed data is cached here as `.npz`, keyed by a hash of these
      options and the input files' size and mtime.
    synthetic_users: synthetic format: number of users.
    synthetic_items: synthetic format: number of items.
    synthetic_mean_length: synthetic format: mean sequence length (> 1).
    synthetic_seed: synthetic format: random seed.
  """

  format: str = 'synthetic'
  path: str = ''
  split: str = 'leave_one_out'
  split_dir: str = ''
  min_item_support: int = 0
  min_user_length: int = 0
  name: str = ''
  cache_dir: str = ''
  synthetic_users: int = 1000
  synthetic_items: int = 500
  synthetic_mean_length: float = 20.0
  synthetic_seed: int = 0

  @classmethod
  def from_config(cls, cfg) -> SequenceDataOptions:
    """Reads the known fields from a ConfigDict, a mapping or any object; others are ignored.

    Raises:
      DataError: on an unknown format or split, a missing path or an out-of-range value.
    """
    return loading.options_from_config(cls, cfg)

  def _validate(self) -> None:
    if self.format not in SEQUENCE_FORMATS:
      raise DataError(
        f'{data_flag("format", self.format)}: expected one of {", ".join(SEQUENCE_FORMATS)}'
      )
    if self.split not in SEQUENCE_SPLITS:
      raise DataError(
        f'{data_flag("split", self.split)}: expected one of {", ".join(SEQUENCE_SPLITS)}'
      )
    if (self.split == 'given') != (self.format == 'gsasrec_split'):
      raise DataError(
        f'{data_flag("split", self.split)} does not fit {data_flag("format", self.format)}: '
        "'gsasrec_split' is a given split (split='given'); every other format is split "
        'leave_one_out'
      )
    if self.format != 'synthetic' and not self.path:
      raise DataError(
        f'{data_flag("format", self.format)} needs --config.data.path (the input file)'
      )
    if self.format == 'synthetic' and self.path:
      raise DataError(loading.unread_path('path', self.path, self.format, SEQUENCE_FORMATS))
    if self.split_dir and self.format != 'gsasrec_split':
      raise DataError(
        f'{data_flag("split_dir", self.split_dir)} is only read with '
        f"--config.data.format='gsasrec_split', not {data_flag('format', self.format)}"
      )
    for name in ('min_item_support', 'min_user_length'):
      if getattr(self, name) < 0:
        raise DataError(f'{data_flag(name, getattr(self, name))}: expected >= 0 (0 = no filter)')
    if self.format == 'gsasrec_split' and (self.min_item_support or self.min_user_length):
      raise DataError(
        'gsasrec_split is a fixed split: set --config.data.min_item_support=0 and '
        f'--config.data.min_user_length=0, got {self.min_item_support} and '
        f'{self.min_user_length}'
      )
    synthetic_ok = self.synthetic_users >= 1 and self.synthetic_items >= 6
    if self.format == 'synthetic' and not (synthetic_ok and self.synthetic_mean_length > 1):
      raise DataError(
        'synthetic data needs --config.data.synthetic_users >= 1, synthetic_items >= 6 and '
        f'synthetic_mean_length > 1, got {self.synthetic_users}, {self.synthetic_items}, '
        f'{self.synthetic_mean_length}'
      )

  def gsasrec_dir(self) -> Path:
    return Path(self.split_dir) if self.split_dir else Path(self.path).parent / 'gsasrec_split'

  def input_paths(self) -> list[str]:
    if self.format == 'synthetic':
      return []
    if self.format == 'gsasrec_split':
      return [self.path, *(str(self.gsasrec_dir() / name) for name in GSASREC_FILES)]
    return [self.path]

  def dataset_name(self) -> str:
    if self.name:
      return self.name
    return self.format if self.format == 'synthetic' else Path(self.path).stem


def default_sequence_data_config():
  """An `ml_collections.ConfigDict` holding every `SequenceDataOptions` field at its default."""
  import ml_collections  # Imported here: only configs need it.

  return ml_collections.ConfigDict(dataclasses.asdict(SequenceDataOptions()))


def read_interactions(options: SequenceDataOptions) -> Events:
  """Reads (or generates) the raw interactions of `options.format`, keyed by user."""
  if options.format in ('user_item_lines', 'gsasrec_split'):
    return read_user_item_lines(options.path)
  if options.format == 'sequence_lines':
    return read_sequence_lines(options.path)
  if options.format == 'ml1m_ratings':
    return read_ml1m_ratings(options.path)
  if options.format == 'recbole_inter':
    return read_recbole_sequences(options.path)
  if options.format == 'synthetic':
    return synthetic_sequences(
      options.synthetic_users,
      options.synthetic_items,
      options.synthetic_mean_length,
      options.synthetic_seed,
    )[0]
  # A format listed in SEQUENCE_FORMATS without a branch here must not fall back to other data.
  raise DataError(f'{data_flag("format", options.format)} has no reader')


def build_sequence_data(options: SequenceDataOptions) -> SequenceData:
  """Reads, filters, numbers and splits (see the module docstring) without the cache."""
  events = read_interactions(options)
  events = filter_interactions(events, options.min_item_support, options.min_user_length)
  if not events.num_events:
    raise DataError(
      f'{events.source}: no interactions left after filtering (min_item_support='
      f'{options.min_item_support}, min_user_length={options.min_user_length})'
    )
  full, vocab, user_ids = encode_sequences(events)
  if options.format == 'gsasrec_split':
    split = gsasrec_split(full, vocab, user_ids, options.gsasrec_dir(), events.source)
  else:
    split = leave_one_out(full)
  if not np.any(split['test_target']):
    raise DataError(
      f'{events.source}: no user has the 3 items a test target needs (training items, then the '
      'validation and test items), so there is nothing to evaluate'
    )
  return SequenceData(
    name=options.dataset_name(),
    n_items=vocab.size,
    item_ids=np.concatenate([np.zeros(1, vocab.ids.dtype), vocab.ids]),
    user_ids=user_ids,
    **split,
  )


def load_sequence_data(cfg) -> SequenceData:
  """Loads, filters and splits a user-sequence dataset, reading or filling the cache.

  Args:
    cfg: `config.data`: an `ml_collections.ConfigDict`, mapping or object with the
      `SequenceDataOptions` fields (missing fields take their defaults; others are ignored).

  Returns:
    The dataset in dense ids.

  Raises:
    DataError: on a bad config or unreadable/inconsistent input (the message names the file).
  """
  options = SequenceDataOptions.from_config(cfg)
  return loading.cached(options, build_sequence_data, SequenceData.load, version=_CACHE_VERSION)
