"""Session data: event tables, item vocabularies, readers, GRU4Rec splits, synthetic data."""

from seqrec.data.errors import DataError
from seqrec.data.events import Events, ItemVocab
from seqrec.data.loading import FORMATS, DataOptions, default_config, load_session_data
from seqrec.data.session_data import SessionData

__all__ = [
  'FORMATS',
  'DataError',
  'DataOptions',
  'Events',
  'ItemVocab',
  'SessionData',
  'default_config',
  'load_session_data',
]
