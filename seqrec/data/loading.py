"""`load_session_data`: config -> read -> GRU4Rec filters and splits -> dense `SessionData`.

Steps, for a config `cfg` (see `DataOptions` for every field and its default):

1. Read `cfg.train_path` with the reader of `cfg.format` (or generate synthetic sessions).
2. If `preprocess` (default: True for raw formats, False for the already processed
   `gru4rec_tsv`): drop sessions shorter than `min_session_length`, items with fewer than
   `min_item_support` events, then sessions left too short.
3. Test split: `cfg.test_path` as given, else the sessions whose last event is in the final
   `test_days` days (for data without time, or `test_days=0`: the last `test_fraction` of
   sessions by last event). Test events on items absent from train are removed, then test
   sessions shorter than `min_session_length`.
4. Validation, when `valid_path` is given or `valid_days`/`valid_fraction` > 0: carved out of
   train exactly as test is out of the full data, leaving `train_tr`; validation events on items
   absent from `train_tr` are dropped, then short sessions.
5. The vocabulary comes from train (order of first appearance) and all tables are encoded with it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from seqrec.data import preprocess, readers, synthetic
from seqrec.data.errors import DataError, data_flag
from seqrec.data.events import Events, ItemVocab, count_items
from seqrec.data.session_data import SessionData

# The option fields that name input files.
_PATH_FIELDS = ('train_path', 'test_path', 'valid_path', 'train_tr_path')
FORMATS = ('gru4rec_tsv', 'yoochoose', 'diginetica', 'retailrocket', 'session_lines', 'synthetic')
_UNTIMED_FORMATS = ('session_lines',)  # `time` is the position in the file.
_PROCESSED_FORMATS = ('gru4rec_tsv',)  # `preprocess` defaults to False for these.
_NUMERIC_TIME_FORMATS = ('gru4rec_tsv',)  # `time_unit` says what their time numbers count.
_CACHE_VERSION = 1  # Bump when a change to this package changes processed data.


@dataclasses.dataclass(frozen=True)
class DataOptions:
  """Every field `load_session_data` reads from its config, with its default.

  Attributes:
    format: one of `FORMATS`.
    train_path: the input file (the full data unless `test_path` is given).
    test_path: a ready test file; empty = split the test set off `train_path`'s data.
    valid_path: a ready validation file (its sessions should come from `train_path`).
    train_tr_path: with `valid_path`: the matching train-minus-validation file; empty = train
      without the sessions whose ids occur in `valid_path`.
    name: dataset name; default: the format for synthetic data, else `train_path`'s stem.
    preprocess: apply the session-length/item-support filters; None = True for raw formats,
      False for `gru4rec_tsv`. With a given `test_path`, the filters apply to train only.
    test_days: test = sessions whose last event lies in the last `test_days` days.
    test_fraction: used instead when the data has no time or `test_days` is 0: the last
      fraction of sessions ordered by their last event.
    valid_days: like `test_days`, for validation carved from train; 0 = no validation split.
    valid_fraction: like `test_fraction`, for validation; 0 = no validation split.
    min_session_length: shorter sessions are dropped (GRU4Rec: 2).
    min_item_support: items with fewer events are dropped (GRU4Rec: 5).
    time_unit: the unit of gru4rec_tsv's Time column, 's' or 'ms' (the other formats' times
      have a known unit).
    session_gap_seconds: RetailRocket inactivity gap that ends a session.
    event_types: RetailRocket event labels to keep, comma-separated; empty = all.
    cache_dir: when set, the processed data is cached here as `.npz`, keyed by the options and
      the input files' size and mtime.
    synthetic_sessions: synthetic format: number of sessions.
    synthetic_items: synthetic format: number of items.
    synthetic_jump_prob: synthetic format: probability that a click ignores the Markov chain.
    synthetic_days: synthetic format: time span in days.
    seed: synthetic format: random seed.
  """

  format: str = ''
  train_path: str = ''
  test_path: str = ''
  valid_path: str = ''
  train_tr_path: str = ''
  name: str = ''
  preprocess: bool | None = None
  test_days: float = 1.0
  test_fraction: float = 0.1
  valid_days: float = 0.0
  valid_fraction: float = 0.0
  min_session_length: int = 2
  min_item_support: int = 5
  time_unit: str = 's'
  session_gap_seconds: float = 1800.0
  event_types: str = 'view'
  cache_dir: str = ''
  synthetic_sessions: int = 8000
  synthetic_items: int = 1000
  synthetic_jump_prob: float = 0.2
  synthetic_days: float = 10.0
  seed: int = 0

  @classmethod
  def from_config(cls, cfg) -> DataOptions:
    """Reads the known fields from a ConfigDict, a mapping or any object; others are ignored.

    Raises:
      DataError: on an unknown format, a missing `train_path` or an out-of-range value.
    """
    return options_from_config(cls, cfg)

  def _validate(self) -> None:
    if self.format not in FORMATS:
      raise DataError(f'{data_flag("format", self.format)}: expected one of {", ".join(FORMATS)}')
    if self.format != 'synthetic' and not self.train_path:
      raise DataError(
        f'{data_flag("format", self.format)} needs --config.data.train_path (the input file)'
      )
    if self.format == 'synthetic':
      for name in _PATH_FIELDS:
        if getattr(self, name):
          raise DataError(unread_path(name, getattr(self, name), self.format, FORMATS))
    if self.train_tr_path and not self.valid_path:
      raise DataError(
        f'{data_flag("train_tr_path", self.train_tr_path)} is only used together with '
        '--config.data.valid_path'
      )
    given = [(name, getattr(self, name)) for name in ('train_path', 'valid_path', 'test_path')]
    given = [(name, path) for name, path in given if path]
    for i, (name, path) in enumerate(given):
      for other, other_path in given[i + 1 :]:
        if os.path.realpath(path) == os.path.realpath(other_path):
          raise DataError(
            f'{data_flag(other, other_path)} is the same file as --config.data.{name}: the model '
            'would be evaluated on what it trained on'
          )
    check_time_unit(self.time_unit, self.format, _NUMERIC_TIME_FORMATS)
    for name in ('test_fraction', 'valid_fraction'):
      if not 0.0 <= getattr(self, name) < 1.0:
        raise DataError(f'{data_flag(name, getattr(self, name))}: expected a value in [0, 1)')
    for name in ('min_session_length', 'min_item_support'):
      if getattr(self, name) < 1:
        raise DataError(f'{data_flag(name, getattr(self, name))}: expected an integer >= 1')
    for name, meaning in (('test_days', 'split by test_fraction'), ('valid_days', 'no validation')):
      if getattr(self, name) < 0:
        raise DataError(f'{data_flag(name, getattr(self, name))}: expected >= 0 (0 = {meaning})')
    if self.format == 'synthetic':
      for name in ('synthetic_sessions', 'synthetic_items'):
        if getattr(self, name) < 1:
          raise DataError(f'{data_flag(name, getattr(self, name))}: expected a positive integer')

  @property
  def filters_input(self) -> bool:
    """Whether the session-length/item-support filters run (`preprocess`, resolved)."""
    if self.preprocess is None:
      return self.format not in _PROCESSED_FORMATS
    return self.preprocess

  @property
  def timed(self) -> bool:
    return self.format not in _UNTIMED_FORMATS

  @property
  def wants_validation(self) -> bool:
    return bool(self.valid_path) or self.valid_days > 0 or self.valid_fraction > 0

  def input_paths(self) -> list[str]:
    if self.format == 'synthetic':
      return []
    return [getattr(self, name) for name in _PATH_FIELDS if getattr(self, name)]

  def dataset_name(self) -> str:
    if self.name:
      return self.name
    return 'synthetic' if self.format == 'synthetic' else Path(self.train_path).stem


def check_time_unit(unit: str, fmt: str, numeric_time_formats: tuple[str, ...]) -> None:
  """Refuses an unknown `time_unit`, or one set for a format whose times have a known unit.

  Raises:
    DataError: naming the flag and what it takes.
  """
  if unit not in readers.TIME_UNITS:
    units = ', '.join(readers.TIME_UNITS)
    raise DataError(f'{data_flag("time_unit", unit)}: expected one of {units}')
  if unit != 's' and fmt not in numeric_time_formats:
    raise DataError(
      f'{data_flag("time_unit", unit)} is not read with {data_flag("format", fmt)}, whose times '
      f'have a known unit; only {", ".join(numeric_time_formats)} read it'
    )


def unread_path(field: str, value: str, fmt: str, formats: tuple[str, ...]) -> str:
  """The error for a file given to synthetic data, which would otherwise go silently unread."""
  file_formats = ', '.join(f for f in formats if f != fmt)
  return (
    f'{data_flag(field, value)} is not read with {data_flag("format", fmt)}: set '
    f"--config.data.format to the file's format ({file_formats}), or leave the path empty"
  )


def options_from_config(cls, cfg):
  """A data options dataclass `cls` from a ConfigDict, a mapping or any object, validated.

  Fields the config lacks take their defaults, and fields `cls` lacks are ignored. Values are
  coerced to the field's type so that equal settings (1 vs 1.0, Path vs str) give equal cache
  keys; a list given for a `str` field (e.g. event labels) is joined with commas; None keeps the
  default.

  Raises:
    DataError: from `cls._validate` on a bad value.
  """
  values = {}
  for field in dataclasses.fields(cls):
    if isinstance(cfg, Mapping):
      value = cfg.get(field.name, field.default)
    else:
      value = getattr(cfg, field.name, field.default)
    if value is None:
      value = field.default
    elif field.type == 'str':
      if isinstance(value, (list, tuple)):
        value = ','.join(value)  # e.g. a list of event labels
      value = str(value)
    elif field.type in ('int', 'float'):
      value = int(value) if field.type == 'int' else float(value)
    else:  # bool, or DataOptions.preprocess (bool | None)
      value = bool(value)
    values[field.name] = value
  options = cls(**values)
  options._validate()
  return options


def default_config():
  """An `ml_collections.ConfigDict` holding every `DataOptions` field at its default."""
  import ml_collections  # Imported here: only configs need it.

  return ml_collections.ConfigDict(dataclasses.asdict(DataOptions()))


def read_events(options: DataOptions, path: str) -> Events:
  """Reads one input file with the reader of `options.format`."""
  if options.format == 'gru4rec_tsv':
    return readers.read_gru4rec_tsv(path, options.time_unit)
  if options.format == 'yoochoose':
    return readers.read_yoochoose_clicks(path)
  if options.format == 'diginetica':
    return readers.read_diginetica_views(path)
  if options.format == 'retailrocket':
    kinds = tuple(kind.strip() for kind in options.event_types.split(',') if kind.strip())
    return readers.read_retailrocket_events(path, options.session_gap_seconds, kinds)
  if options.format == 'session_lines':
    return readers.read_session_lines(path)
  raise DataError(f'format {options.format!r} has no file reader')


def _split_off(
  events: Events, days: float, fraction: float, timed: bool, what: str
) -> tuple[Events, Events]:
  """Splits the last sessions off by days when the data has time, else by fraction."""
  if timed and days > 0:
    return preprocess.split_by_last_days(events, days)
  if fraction > 0:
    return preprocess.split_by_last_fraction(events, fraction)
  if days > 0:
    raise DataError(
      f'{events.source}: the data has no timestamps, so {what}_days cannot split it; '
      f'set {what}_fraction instead'
    )
  raise DataError(f'{events.source}: no {what} split requested ({what}_days = {what}_fraction = 0)')


def _check_not_empty(events: Events, what: str, options: DataOptions) -> None:
  if events.num_events:
    return
  raise DataError(
    f'{events.source or options.format}: the {what} split is empty after filtering '
    f'(test_days={options.test_days}, test_fraction={options.test_fraction}, '
    f'valid_days={options.valid_days}, valid_fraction={options.valid_fraction}, '
    f'min_session_length={options.min_session_length}, '
    f'min_item_support={options.min_item_support}, preprocess={options.filters_input})'
  )


def _encode(vocab: ItemVocab, events: Events, what: str) -> Events:
  dense = vocab.encode(events.item)
  if np.any(dense < 0):
    unknown = events.item[dense < 0][0]
    raise DataError(f'{events.source}: the {what} table has item {unknown!r}, which train lacks')
  return events.with_items(dense)


def build_session_data(options: DataOptions) -> SessionData:
  """Runs the whole recipe (see the module docstring) without the cache."""
  if options.format == 'synthetic':
    try:
      data = synthetic.generate_sessions(
        options.synthetic_sessions,
        options.synthetic_items,
        options.seed,
        jump_prob=options.synthetic_jump_prob,
        days=options.synthetic_days,
      )
    except ValueError as e:  # sizes or probabilities the generator cannot use
      raise DataError(f'--config.data.synthetic_*: {e}') from None
  else:
    data = read_events(options, options.train_path)
  given_test = read_events(options, options.test_path) if options.test_path else None

  min_length = options.min_session_length
  if options.filters_input:
    data = preprocess.filter_sessions_and_items(data, min_length, options.min_item_support)
    _check_not_empty(data, 'input', options)

  if given_test is None:
    train, test = _split_off(data, options.test_days, options.test_fraction, options.timed, 'test')
  else:
    train, test = data, given_test
  _check_not_empty(train, 'train', options)
  test = preprocess.restrict_to_items(test, np.unique(train.item), min_length)
  _check_not_empty(test, 'test', options)

  valid = train_tr = None
  if options.valid_path:
    valid = read_events(options, options.valid_path)
    if options.train_tr_path:
      train_tr = read_events(options, options.train_tr_path)
    else:
      train_tr = train.select(~np.isin(train.session, valid.session))
  elif options.wants_validation:
    train_tr, valid = _split_off(
      train, options.valid_days, options.valid_fraction, options.timed, 'valid'
    )
  if valid is not None:
    _check_not_empty(train_tr, 'train_tr', options)
    valid = preprocess.restrict_to_items(valid, np.unique(train_tr.item), min_length)
    _check_not_empty(valid, 'valid', options)

  vocab = ItemVocab.from_events(train)
  train = _encode(vocab, train, 'train')
  return SessionData(
    train=train,
    test=_encode(vocab, test, 'test'),
    valid=None if valid is None else _encode(vocab, valid, 'valid'),
    vocab=vocab,
    item_counts=count_items(train, vocab.size),
    name=options.dataset_name(),
    train_tr=None if train_tr is None else _encode(vocab, train_tr, 'train_tr'),
  )


def cache_path(options: DataOptions, version: int = _CACHE_VERSION) -> Path:
  """Where the processed data of `options` is cached (`options.cache_dir` must be set).

  The key hashes every option except `cache_dir`, the input files' resolved paths, sizes and
  mtimes, and a version of the processing code.

  Args:
    options: the options; any dataclass with `cache_dir`, `input_paths()` and `dataset_name()`
      (e.g. `user_sessions.UserDataOptions`) works the same way.
    version: the version of the code that processes data for these options.

  Raises:
    DataError: if an input file is missing.
  """
  files = []
  for path in options.input_paths():
    stat = readers.check_file(path).stat()
    files.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
  fields = dataclasses.asdict(options)
  fields.pop('cache_dir')
  payload = json.dumps({'options': fields, 'files': files, 'version': version}, sort_keys=True)
  key = hashlib.sha256(payload.encode()).hexdigest()[:16]
  stem = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in options.dataset_name())
  return Path(options.cache_dir) / f'{stem}-{key}.npz'


def load_session_data(cfg) -> SessionData:
  """Loads, preprocesses, splits and encodes a dataset, reading or filling the cache.

  Args:
    cfg: an `ml_collections.ConfigDict`, mapping or object with the `DataOptions` fields
      (missing fields take their defaults; other fields are ignored).

  Returns:
    The dataset with dense item ids.

  Raises:
    DataError: on a bad config, unreadable input, or an empty split (message names the file).
  """
  options = DataOptions.from_config(cfg)
  return cached(options, build_session_data, SessionData.load)


def cached(options, build: Callable, load: Callable, version: int = _CACHE_VERSION):
  """`build(options)`, read from / written to `options.cache_dir` when one is set.

  The file is `cache_path(options, version)`; an unreadable one is rebuilt (with a warning), and a
  new one is written atomically, so concurrent readers never see half a file.

  Args:
    options: a dataset options dataclass with `cache_dir` and `dataset_name()`.
    build: `options -> data`, the data's `save(path)` writing the cache.
    load: `path -> data`, reading it back.
    version: the loader's cache version (bumped when processing changes).
  """
  if not options.cache_dir:
    return build(options)
  path = cache_path(options, version=version)
  if path.parent.exists() and not path.parent.is_dir():
    raise DataError(
      f'{data_flag("cache_dir", options.cache_dir)}: {path.parent} is not a directory'
    )
  if path.is_dir():
    raise DataError(f'{data_flag("cache_dir", options.cache_dir)}: {path} is a directory')
  if path.exists():
    try:
      return load(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
      logging.warning('Ignoring unreadable cache %s (%s); rebuilding it.', path, e)
  data = build(options)
  partial = path.with_name(f'{path.name}.{os.getpid()}.tmp')
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    data.save(partial)
    os.replace(partial, path)
  except OSError as e:
    raise DataError(
      f'{data_flag("cache_dir", options.cache_dir)}: cannot write {path} ({e})'
    ) from e
  return data
