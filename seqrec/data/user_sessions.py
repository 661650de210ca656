"""User-session data for HRNN: hgru4rec's preprocessing, the last-session split, `UserSessionData`.

The recipe follows hgru4rec's dataset builder (mquad/hgru4rec, `data/xing/build_dataset.py`, the
code of Quadrana et al., RecSys 2017), on a table whose sessions are already cut (the readers cut
sessions at a 30-minute inactivity gap, as that builder does, when the data has no session ids):

1. drop repeated items within a session, keeping the first (`drop_repeats`);
2. drop items with fewer than 20 events (`min_item_support`);
3. drop sessions with fewer than 3 events (`min_session_length`);
4. keep users with at least 5 and fewer than 200 sessions (`min_sessions_per_user`,
   `max_sessions_per_user` = 199), in one pass as there (no re-filtering afterwards);
5. test = each user's last session, train = the others; test events on items absent from train
   are removed, then test sessions shorter than 2;
6. optionally validation = each user's last train session, carved out of train the same way
   (train minus validation is `train_tr`, as in `SessionData`).

Dense user ids 0..U-1 follow the sorted raw user ids (hgru4rec sorts by user), and the item
vocabulary comes from train in order of first appearance, as for `SessionData`.

ML-100K (`../shared/datasets/ml100k_recbole/ml-100k.inter`) with these defaults: 93,978 events
and 1,990 sessions remain after the item and session filters, 91 users have >= 5 sessions.
The resulting splits are listed in `tests/data/test_user_sessions.py`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from seqrec.data import loading, preprocess, readers, user_synthetic
from seqrec.data.errors import DataError, data_flag
from seqrec.data.events import Events, ItemVocab, count_items
from seqrec.data.session_data import SessionData

USER_FORMATS = ('recbole_inter', 'lastfm_1k', 'cosmetics', 'user_synthetic')
MIN_EVAL_SESSION_LENGTH = 2  # hgru4rec's split keeps cleaned test sessions of >= 2 events.
_FORMAT_VERSION = 1
_CACHE_VERSION = 1  # Bump when a change to this module changes processed data.
_SPLITS = ('train', 'test', 'valid', 'train_tr')


@dataclasses.dataclass(eq=False)
class UserSessionData(SessionData):
  """A `SessionData` whose tables also carry dense user ids.

  Every table holds dense int32 items of `vocab` and dense int64 users in [0, n_users); its
  session ids are numbered so that each user's sessions are contiguous and in time order (the
  order `user_parallel.build_user_schedule` walks them in).

  Attributes:
    user_ids: [U] raw id of each dense user id (sorted ascending).
  """

  user_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

  @property
  def n_users(self) -> int:
    return len(self.user_ids)

  def stats(self) -> dict[str, dict[str, int]]:
    """Events, sessions, distinct items and distinct users of each present table."""
    stats = super().stats()
    for name, table in self.splits().items():
      stats[name]['users'] = len(np.unique(table.user))
    return stats

  def save(self, path: str | os.PathLike) -> None:
    """Writes every array to one `.npz` file (no pickled objects)."""
    arrays = {
      'format_version': np.array(_FORMAT_VERSION),
      'kind': np.array('user_sessions'),
      'name': np.array(self.name),
      'vocab_ids': self.vocab.ids,
      'item_counts': self.item_counts,
      'user_ids': self.user_ids,
    }
    for name, table in self.splits().items():
      for column in ('session', 'item', 'time', 'user'):
        arrays[f'{name}.{column}'] = getattr(table, column)
      arrays[f'{name}.source'] = np.array(table.source)
    with open(path, 'wb') as f:
      np.savez(f, **arrays)

  @classmethod
  def load(cls, path: str | os.PathLike) -> UserSessionData:
    """Reads a file written by `save`.

    Raises:
      ValueError: if the file was written by an incompatible version or is no user-session file.
    """
    with np.load(path, allow_pickle=False) as f:
      arrays = {key: f[key] for key in f.files}
    if str(arrays.get('kind', '')) != 'user_sessions':
      raise ValueError(f'{path}: not a UserSessionData file')
    version = int(arrays['format_version'])
    if version != _FORMAT_VERSION:
      raise ValueError(f'{path}: UserSessionData format {version}, expected {_FORMAT_VERSION}')
    tables = {}
    for name in _SPLITS:
      if f'{name}.session' not in arrays:
        tables[name] = None
        continue
      columns = {column: arrays[f'{name}.{column}'] for column in ('session', 'item', 'time')}
      tables[name] = Events(
        **columns, user=arrays[f'{name}.user'], source=str(arrays[f'{name}.source'])
      )
    return cls(
      vocab=ItemVocab(arrays['vocab_ids']),
      item_counts=arrays['item_counts'],
      name=str(arrays['name']),
      user_ids=arrays['user_ids'],
      **tables,
    )


def _session_users(events: Events) -> np.ndarray:
  """[S] user of each session (its first event's), in `session_offsets` order."""
  return events.user[events.session_offsets()[:-1]]


def _check_users(events: Events) -> None:
  if events.user is None or (events.num_events and events.user.min() < 0):
    raise DataError(f'{events.source or "events"}: user-session data needs a known user per event')


def drop_repeated_items(events: Events) -> Events:
  """Keeps only the first event of each item within each session (later repeats are dropped)."""
  if not events.num_events:
    return events
  item_code = np.unique(events.item, return_inverse=True)[1].reshape(-1)  # [E]
  rows = np.arange(events.num_events)
  order = np.lexsort((rows, item_code, events.session))  # pairs grouped, first row first
  first = np.ones(len(order), bool)
  same_pair = (np.diff(events.session[order]) == 0) & (np.diff(item_code[order]) == 0)
  first[1:] = ~same_pair
  keep = np.zeros(events.num_events, bool)
  keep[order[first]] = True
  return events if np.all(keep) else events.select(keep)


def filter_users(events: Events, min_sessions: int, max_sessions: int = 0) -> Events:
  """Keeps the users with `min_sessions` to `max_sessions` sessions (0: no upper limit)."""
  _check_users(events)
  users = _session_users(events)  # [S]
  _, inverse, counts = np.unique(users, return_inverse=True, return_counts=True)
  per_session = counts[inverse.reshape(-1)]  # [S]
  keep = per_session >= min_sessions
  if max_sessions > 0:
    keep &= per_session <= max_sessions
  if np.all(keep):
    return events
  return events.select(np.repeat(keep, events.session_lengths()))


def preprocess_user_sessions(
  events: Events,
  min_item_support: int = 20,
  min_session_length: int = 3,
  min_sessions_per_user: int = 5,
  max_sessions_per_user: int = 199,
  drop_repeats: bool = True,
) -> Events:
  """hgru4rec's filters, in its order and in one pass (steps 1-4 of the module docstring).

  Args:
    events: sessionised events with users, sorted by (session, time).
    min_item_support: items with fewer events (counted after dropping repeats) go.
    min_session_length: sessions with fewer events (after the item filter) go.
    min_sessions_per_user: users with fewer sessions (after the session filter) go.
    max_sessions_per_user: users with more sessions go; 0 keeps them.
    drop_repeats: keep only the first event of an item within a session.

  Returns:
    The filtered table.
  """
  _check_users(events)
  if drop_repeats:
    events = drop_repeated_items(events)
  events = preprocess.filter_rare_items(events, min_item_support)
  events = preprocess.filter_short_sessions(events, min_session_length)
  return filter_users(events, min_sessions_per_user, max_sessions_per_user)


def split_last_sessions(events: Events) -> tuple[Events, Events]:
  """Splits off each user's last session (latest start; ties: highest session id).

  hgru4rec takes the session of the user's latest event; the two agree unless a user's
  sessions overlap in time (possible only with given session ids).

  Args:
    events: table with users, sorted by (session, time).

  Returns:
    (the other sessions, each user's last session).
  """
  _check_users(events)
  if not events.num_events:
    return events, events
  users = _session_users(events)  # [S]
  order = np.lexsort((events.session_ids(), events.session_start_times(), users))  # [S]
  last = np.ones(len(order), bool)
  last[:-1] = users[order][1:] != users[order][:-1]
  held_out = np.zeros(len(order), bool)
  held_out[order[last]] = True
  mask = np.repeat(held_out, events.session_lengths())
  return events.select(~mask), events.select(mask)


@dataclasses.dataclass(frozen=True)
class UserDataOptions:
  """Every field `load_user_session_data` reads from its config, with its default.

  Attributes:
    format: one of `USER_FORMATS`.
    train_path: the input file (the full data; the splits are cut from it).
    name: dataset name; default: the format for synthetic data, else `train_path`'s stem.
    session_gap_seconds: inactivity gap that ends a session (hgru4rec: 30 minutes).
    time_unit: the unit of recbole_inter's timestamp column, 's' or 'ms' (the other formats'
      times have a known unit).
    use_session_ids: cosmetics: sessions from `user_session` (else cut by the gap).
    event_types: cosmetics event labels to keep, comma-separated; empty = all.
    drop_repeats: keep only the first event of an item within a session (hgru4rec: yes).
    min_item_support: items with fewer events are dropped (hgru4rec: 20).
    min_session_length: shorter sessions are dropped (hgru4rec: 3).
    min_sessions_per_user: users with fewer sessions are dropped (hgru4rec: 5).
    max_sessions_per_user: users with more sessions are dropped; 0 = no limit (hgru4rec keeps
      fewer than 200, i.e. 199).
    valid: also carve a validation split (each user's last train session) and `train_tr`.
    cache_dir: when set, the processed data is cached here as `.npz`, keyed by the options and
      the input file's size and mtime (as `load_session_data` does).
    synthetic_users: user_synthetic format: number of users.
    synthetic_items: user_synthetic format: number of items.
    synthetic_clusters: user_synthetic format: number of item clusters (tastes).
    user_taste: user_synthetic format: probability that a non-Markov click comes from the user's
      cluster; 0 makes sessions independent of the user.
    synthetic_jump_prob: user_synthetic format: probability that a click leaves the chain.
    synthetic_sessions_per_user: user_synthetic format: mean sessions per user.
    seed: user_synthetic format: random seed.
  """

  format: str = ''
  train_path: str = ''
  name: str = ''
  session_gap_seconds: float = 1800.0
  time_unit: str = 's'
  use_session_ids: bool = True
  event_types: str = 'view'
  drop_repeats: bool = True
  min_item_support: int = 20
  min_session_length: int = 3
  min_sessions_per_user: int = 5
  max_sessions_per_user: int = 199
  valid: bool = False
  cache_dir: str = ''
  synthetic_users: int = 1000
  synthetic_items: int = 500
  synthetic_clusters: int = 20
  user_taste: float = 0.8
  synthetic_jump_prob: float = 0.5
  synthetic_sessions_per_user: float = 10.0
  seed: int = 0

  @classmethod
  def from_config(cls, cfg) -> UserDataOptions:
    """Reads the known fields from a ConfigDict, a mapping or any object; others are ignored.

    Raises:
      DataError: on an unknown format, a missing `train_path` or an out-of-range value.
    """
    return loading.options_from_config(cls, cfg)

  def _validate(self) -> None:
    if self.format not in USER_FORMATS:
      raise DataError(
        f'{data_flag("format", self.format)}: expected one of {", ".join(USER_FORMATS)}'
      )
    if self.format != 'user_synthetic' and not self.train_path:
      raise DataError(
        f'{data_flag("format", self.format)} needs --config.data.train_path (the input file)'
      )
    if self.format == 'user_synthetic' and self.train_path:
      raise DataError(loading.unread_path('train_path', self.train_path, self.format, USER_FORMATS))
    loading.check_time_unit(self.time_unit, self.format, ('recbole_inter',))
    if self.session_gap_seconds <= 0:
      raise DataError(
        f'{data_flag("session_gap_seconds", self.session_gap_seconds)}: expected a positive gap'
      )
    minimums = ('min_item_support', 'min_session_length', 'min_sessions_per_user')
    for name in minimums:
      if getattr(self, name) < 1:
        raise DataError(f'{data_flag(name, getattr(self, name))}: expected an integer >= 1')
    if 0 < self.max_sessions_per_user < self.min_sessions_per_user:
      raise DataError(
        f'{data_flag("max_sessions_per_user", self.max_sessions_per_user)} is below '
        f'--config.data.min_sessions_per_user={self.min_sessions_per_user}; 0 means no limit'
      )

  def input_paths(self) -> list[str]:
    return [] if self.format == 'user_synthetic' else [self.train_path]

  def dataset_name(self) -> str:
    if self.name:
      return self.name
    return self.format if self.format == 'user_synthetic' else Path(self.train_path).stem


def default_user_config():
  """An `ml_collections.ConfigDict` holding every `UserDataOptions` field at its default."""
  import ml_collections  # Imported here: only configs need it.

  return ml_collections.ConfigDict(dataclasses.asdict(UserDataOptions()))


def read_user_events(options: UserDataOptions) -> Events:
  """Reads (or generates) the sessionised raw events of `options.format`."""
  gap = options.session_gap_seconds
  if options.format == 'recbole_inter':
    return readers.read_recbole_inter(options.train_path, gap, options.time_unit)
  if options.format == 'lastfm_1k':
    return readers.read_lastfm_1k(options.train_path, gap)
  if options.format == 'cosmetics':
    kinds = tuple(kind.strip() for kind in options.event_types.split(',') if kind.strip())
    return readers.read_cosmetics_events(options.train_path, kinds, options.use_session_ids, gap)
  if options.format == 'user_synthetic':
    if min(options.synthetic_users, options.synthetic_items, options.synthetic_clusters) < 1:
      raise DataError(
        '--config.data.synthetic_users, synthetic_items and synthetic_clusters: expected positive '
        f'integers, got {options.synthetic_users}, {options.synthetic_items} and '
        f'{options.synthetic_clusters}'
      )
    try:
      return user_synthetic.generate_user_sessions(
        options.synthetic_users,
        options.synthetic_items,
        options.seed,
        n_clusters=options.synthetic_clusters,
        user_taste=options.user_taste,
        jump_prob=options.synthetic_jump_prob,
        mean_sessions=options.synthetic_sessions_per_user,
      )
    except ValueError as e:  # sizes or probabilities the generator cannot use
      raise DataError(f'--config.data.synthetic_* (user_synthetic): {e}') from None
  raise DataError(f'format {options.format!r} has no reader')


def _check_not_empty(events: Events, what: str, settings: str) -> None:
  if events.num_events:
    return
  where = events.source or 'events'
  raise DataError(f'{where}: the {what} split is empty after filtering{settings}')


def _settings(options: UserDataOptions) -> str:
  """The filter settings, for error messages."""
  return (
    f' (min_item_support={options.min_item_support}, '
    f'min_session_length={options.min_session_length}, '
    f'min_sessions_per_user={options.min_sessions_per_user}, '
    f'max_sessions_per_user={options.max_sessions_per_user}, '
    f'session_gap_seconds={options.session_gap_seconds})'
  )


def _encode(vocab: ItemVocab, user_ids: np.ndarray, events: Events) -> Events:
  """Dense items and users; every item must be in `vocab` and every user in `user_ids`."""
  user = np.searchsorted(user_ids, events.user).astype(np.int64)
  return dataclasses.replace(events, item=vocab.encode(events.item), user=user)


def split_user_sessions(
  events: Events, valid: bool = False, name: str = '', settings: str = ''
) -> UserSessionData:
  """Steps 5-6 of the module docstring on a filtered table, then dense ids.

  Args:
    events: the preprocessed table (raw items and users).
    valid: also carve the validation split and `train_tr`.
    name: the dataset's name.
    settings: appended to the message of an empty split (the filters that emptied it).

  Returns:
    The dataset.

  Raises:
    DataError: if a split is empty.
  """
  _check_not_empty(events, 'input', settings)
  train, test = split_last_sessions(events)
  _check_not_empty(train, 'train', settings)
  test = preprocess.restrict_to_items(test, np.unique(train.item), MIN_EVAL_SESSION_LENGTH)
  _check_not_empty(test, 'test', settings)
  valid_table = train_tr = None
  if valid:
    train_tr, valid_table = split_last_sessions(train)
    _check_not_empty(train_tr, 'train_tr', settings)
    valid_table = preprocess.restrict_to_items(
      valid_table, np.unique(train_tr.item), MIN_EVAL_SESSION_LENGTH
    )
    _check_not_empty(valid_table, 'valid', settings)

  vocab = ItemVocab.from_events(train)
  user_ids = np.unique(events.user)  # [U] every user of the filtered data
  dense = {
    split: None if table is None else _encode(vocab, user_ids, table)
    for split, table in (('train', train), ('test', test), ('valid', valid_table))
  }
  return UserSessionData(
    train=dense['train'],
    test=dense['test'],
    valid=dense['valid'],
    vocab=vocab,
    item_counts=count_items(dense['train'], vocab.size),
    name=name or Path(events.source).stem or 'user_sessions',
    train_tr=None if train_tr is None else _encode(vocab, user_ids, train_tr),
    user_ids=user_ids,
  )


def build_user_session_data(options: UserDataOptions) -> UserSessionData:
  """Reads, preprocesses and splits (see the module docstring) without the cache."""
  events = read_user_events(options)
  events = preprocess_user_sessions(
    events,
    min_item_support=options.min_item_support,
    min_session_length=options.min_session_length,
    min_sessions_per_user=options.min_sessions_per_user,
    max_sessions_per_user=options.max_sessions_per_user,
    drop_repeats=options.drop_repeats,
  )
  return split_user_sessions(events, options.valid, options.dataset_name(), _settings(options))


def load_user_session_data(cfg) -> UserSessionData:
  """Loads, preprocesses, splits and encodes a user-session dataset, reading or filling the cache.

  Args:
    cfg: an `ml_collections.ConfigDict`, mapping or object with the `UserDataOptions` fields
      (missing fields take their defaults; other fields are ignored).

  Returns:
    The dataset with dense item and user ids.

  Raises:
    DataError: on a bad config, unreadable input, or an empty split (message names the file).
  """
  options = UserDataOptions.from_config(cfg)
  return loading.cached(
    options, build_user_session_data, UserSessionData.load, version=_CACHE_VERSION
  )
