"""`SessionData`: a dataset's dense-id train/validation/test tables and its `.npz` serialisation."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from seqrec.data.events import Events, ItemVocab, count_items

_FORMAT_VERSION = 1
_SPLITS = ('train', 'test', 'valid', 'train_tr')


@dataclasses.dataclass(eq=False)
class SessionData:
  """A preprocessed session dataset; every table holds dense int32 item ids of `vocab`.

  Attributes:
    train: the training table (the model that is evaluated on `test` learns from it).
    test: the test table: its items all occur in `train` and its sessions have >= 2 events.
    valid: the validation table, or None. It is carved out of `train` as `test` is out of the
      full data; events on items absent from `train_tr` are dropped, then sessions < 2 removed.
    vocab: raw <-> dense item ids, built from `train` in order of first appearance.
    item_counts: [N] int64 popularity of each item in `train`.
    name: the dataset's name.
    train_tr: `train` minus the validation sessions (dense, same `vocab`), to train the model
      that is evaluated on `valid`; None when there is no validation split. Some vocabulary items
      may not occur in it (see `item_counts_for`).
  """

  train: Events
  test: Events
  valid: Events | None
  vocab: ItemVocab
  item_counts: np.ndarray
  name: str
  train_tr: Events | None = None

  @property
  def n_items(self) -> int:
    return self.vocab.size

  def item_counts_for(self, events: Events) -> np.ndarray:
    """[N] int64 popularity of each item in a dense table (e.g. `train_tr`)."""
    return count_items(events, self.n_items)

  def splits(self) -> dict[str, Events]:
    """The tables that are present, by name (`train`, `test`, `valid`, `train_tr`)."""
    tables = {name: getattr(self, name) for name in _SPLITS}
    return {name: table for name, table in tables.items() if table is not None}

  def stats(self) -> dict[str, dict[str, int]]:
    """Events, sessions and distinct items of each present table."""
    return {
      name: {
        'events': table.num_events,
        'sessions': table.num_sessions,
        'items': len(np.unique(table.item)),
      }
      for name, table in self.splits().items()
    }

  def save(self, path: str | os.PathLike) -> None:
    """Writes every array to one `.npz` file (no pickled objects)."""
    arrays = {
      'format_version': np.array(_FORMAT_VERSION),
      'name': np.array(self.name),
      'vocab_ids': self.vocab.ids,
      'item_counts': self.item_counts,
    }
    for name, table in self.splits().items():
      arrays[f'{name}.session'] = table.session
      arrays[f'{name}.item'] = table.item
      arrays[f'{name}.time'] = table.time
      arrays[f'{name}.source'] = np.array(table.source)
      if table.user is not None:
        arrays[f'{name}.user'] = table.user
    with open(path, 'wb') as f:
      np.savez(f, **arrays)

  @classmethod
  def load(cls, path: str | os.PathLike) -> SessionData:
    """Reads a file written by `save`.

    Raises:
      ValueError: if the file was written by an incompatible version.
    """
    with np.load(path, allow_pickle=False) as f:
      arrays = {key: f[key] for key in f.files}
    version = int(arrays['format_version'])
    if version != _FORMAT_VERSION:
      raise ValueError(f'{path}: SessionData format {version}, expected {_FORMAT_VERSION}')
    tables = {}
    for name in _SPLITS:
      if f'{name}.session' not in arrays:
        tables[name] = None
        continue
      tables[name] = Events(
        session=arrays[f'{name}.session'],
        item=arrays[f'{name}.item'],
        time=arrays[f'{name}.time'],
        user=arrays.get(f'{name}.user'),
        source=str(arrays[f'{name}.source']),
      )
    return cls(
      vocab=ItemVocab(arrays['vocab_ids']),
      item_counts=arrays['item_counts'],
      name=str(arrays['name']),
      **tables,
    )
