"""The canonical click table (`Events`) and the raw <-> dense item id vocabulary (`ItemVocab`)."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Events:
  """An event table: one row per click, grouped by session, time-ordered within session.

  Readers return sorted tables (see `sort`); tables derived with `select` stay sorted. Methods that
  need the grouping (`session_offsets` and what builds on it) check it and raise otherwise.

  Attributes:
    session: [E] int64 session ids.
    item: [E] item ids: raw ids (int64, or str for string ids) or dense int32 ids after encoding.
    time: [E] float64 unix seconds; for files without time, the event's position in the file.
    user: [E] int64 user ids (-1 where unknown), or None when the source has no users.
    source: where the table came from, for error messages.
  """

  session: np.ndarray
  item: np.ndarray
  time: np.ndarray
  user: np.ndarray | None = None
  source: str = ''

  def __post_init__(self):
    columns = {'session': self.session, 'item': self.item, 'time': self.time}
    if self.user is not None:
      columns['user'] = self.user
    for name, column in columns.items():
      if not isinstance(column, np.ndarray) or column.ndim != 1:
        raise ValueError(f'Events.{name} must be a 1-D numpy array, got {type(column).__name__}')
    lengths = {name: len(column) for name, column in columns.items()}
    if len(set(lengths.values())) > 1:
      raise ValueError(f'Events columns differ in length: {lengths} ({self.source})')

  @property
  def num_events(self) -> int:
    return len(self.session)

  @functools.cached_property
  def num_sessions(self) -> int:
    """Number of distinct session ids."""
    if self.is_sorted:
      return int(np.count_nonzero(self.session[1:] != self.session[:-1])) + int(self.num_events > 0)
    return len(np.unique(self.session))

  @functools.cached_property
  def is_sorted(self) -> bool:
    """Whether rows are ordered by (session, time)."""
    if self.num_events < 2:
      return True
    step = np.diff(self.session)  # [E-1]
    if np.any(step < 0):
      return False
    same = step == 0
    return bool(np.all(self.time[1:][same] >= self.time[:-1][same]))

  def sort(self) -> Events:
    """Stably sorts rows by (session, time), so ties keep their file order.

    Returns:
      `self` when already sorted, else a sorted copy.
    """
    if self.is_sorted:
      return self
    order = np.lexsort((self.time, self.session))  # lexsort is stable
    return self.select(order)

  def session_offsets(self) -> np.ndarray:
    """Start offsets of each session's run of rows.

    Returns:
      [S+1] int64: session s owns rows `offsets[s]:offsets[s+1]`.

    Raises:
      ValueError: if the table is not sorted by session (call `sort` first).
    """
    if self.num_events and np.any(self.session[1:] < self.session[:-1]):
      raise ValueError(f'Events from {self.source or "?"} are not sorted by session; call sort()')
    starts = np.flatnonzero(self.session[1:] != self.session[:-1]) + 1  # [S-1]
    head = [0] if self.num_events else []
    return np.concatenate([head, starts, [self.num_events]]).astype(np.int64)

  def session_lengths(self) -> np.ndarray:
    """[S] int64 number of events per session, in `session_offsets` order."""
    return np.diff(self.session_offsets())

  def session_ids(self) -> np.ndarray:
    """[S] session id of each session, in `session_offsets` order."""
    return self.session[self.session_offsets()[:-1]]

  def session_start_times(self) -> np.ndarray:
    """[S] earliest event time of each session, in `session_offsets` order."""
    return self._reduce_time(np.minimum)

  def session_end_times(self) -> np.ndarray:
    """[S] latest event time of each session, in `session_offsets` order."""
    return self._reduce_time(np.maximum)

  def _reduce_time(self, ufunc: np.ufunc) -> np.ndarray:
    offsets = self.session_offsets()
    if not self.num_events:
      return np.zeros(0, np.float64)
    return ufunc.reduceat(self.time, offsets[:-1])

  def select(self, mask: np.ndarray) -> Events:
    """Returns the rows picked by a boolean mask [E] or an index array."""
    user = None if self.user is None else self.user[mask]
    return Events(self.session[mask], self.item[mask], self.time[mask], user, self.source)

  def with_items(self, item: np.ndarray) -> Events:
    """Returns the same table with the item column replaced (e.g. by dense ids)."""
    return dataclasses.replace(self, item=item)


def count_items(events: Events, n_items: int) -> np.ndarray:
  """Popularity counts of dense item ids.

  Args:
    events: table with dense item ids in [0, n_items).
    n_items: vocabulary size N.

  Returns:
    [N] int64 number of events of each item.
  """
  return np.bincount(events.item, minlength=n_items).astype(np.int64)


def _as_id_array(raw) -> np.ndarray:
  """Normalises raw ids to int64 or to a unicode array (for string ids)."""
  raw = np.asarray(raw)
  if raw.dtype.kind in 'iu':
    return raw.astype(np.int64, copy=False)
  if raw.dtype.kind == 'S':
    return np.char.decode(raw, 'utf-8')
  if raw.dtype.kind in 'UO':
    return raw.astype(str) if raw.size else raw.astype('U1')
  raise ValueError(f'item ids must be integers or strings, got dtype {raw.dtype}')


class ItemVocab:
  """Maps raw item ids to dense int32 ids 0..N-1 and back.

  Attributes:
    ids: [N] raw ids (int64 or unicode); position = dense id.
  """

  def __init__(self, ids):
    ids = _as_id_array(ids)
    if ids.ndim != 1:
      raise ValueError(f'vocabulary ids must be 1-D, got shape {ids.shape}')
    self.ids = ids
    self._sorter = np.argsort(ids, kind='stable')  # [N]
    self._sorted = ids[self._sorter]  # [N]
    if len(ids) > 1 and np.any(self._sorted[1:] == self._sorted[:-1]):
      raise ValueError('vocabulary ids must be unique')

  @property
  def size(self) -> int:
    return len(self.ids)

  def __len__(self) -> int:
    return self.size

  def __repr__(self) -> str:
    return f'ItemVocab(size={self.size}, dtype={self.ids.dtype})'

  @classmethod
  def from_events(cls, events: Events) -> ItemVocab:
    """Builds the vocabulary in order of first appearance in the (session, time)-sorted table.

    This is the id order the official GRU4Rec code gives its training data.
    """
    items = _as_id_array(events.sort().item)
    if not len(items):
      return cls(items)
    unique, first = np.unique(items, return_index=True)
    return cls(unique[np.argsort(first)])

  def encode(self, raw) -> np.ndarray:
    """Maps raw ids to dense ids.

    Args:
      raw: [...] raw ids, of the same kind (integer or string) as the vocabulary.

    Returns:
      [...] int32 dense ids, -1 for ids not in the vocabulary.

    Raises:
      ValueError: if `raw` holds strings and the vocabulary integers, or the other way round.
    """
    raw = _as_id_array(raw)
    if (raw.dtype.kind == 'U') != (self.ids.dtype.kind == 'U') and raw.size and self.size:
      raise ValueError(f'cannot encode ids of dtype {raw.dtype} with a {self.ids.dtype} vocabulary')
    if not self.size:
      return np.full(raw.shape, -1, np.int32)
    pos = np.minimum(np.searchsorted(self._sorted, raw), self.size - 1)
    found = self._sorted[pos] == raw
    return np.where(found, self._sorter[pos], -1).astype(np.int32)

  def digest(self) -> str:
    """A short SHA-256 of the ids in dense order: equal only for the same id-to-row mapping."""
    return hashlib.sha256(np.ascontiguousarray(self.ids).tobytes()).hexdigest()[:16]

  def decode(self, dense) -> np.ndarray:
    """Maps dense ids (in [0, N)) back to raw ids."""
    return self.ids[np.asarray(dense)]

  def save(self, path: str | os.PathLike) -> None:
    """Writes the ids to an `.npz` file (no pickle; string ids as a unicode array)."""
    with open(path, 'wb') as f:
      np.savez(f, ids=self.ids)

  @classmethod
  def load(cls, path: str | os.PathLike) -> ItemVocab:
    """Reads a vocabulary written by `save`."""
    with np.load(path, allow_pickle=False) as f:
      return cls(f['ids'])
