"""Session data: event tables, vocabularies, readers, GRU4Rec and HRNN splits, synthetic data."""

from seqrec.data.errors import DataError
from seqrec.data.events import Events, ItemVocab
from seqrec.data.loading import FORMATS, DataOptions, default_config, load_session_data
from seqrec.data.session_data import SessionData
from seqrec.data.user_sessions import (
  USER_FORMATS,
  UserDataOptions,
  UserSessionData,
  default_user_config,
  load_user_session_data,
)

__all__ = [
  'FORMATS',
  'USER_FORMATS',
  'DataError',
  'DataOptions',
  'Events',
  'ItemVocab',
  'SessionData',
  'UserDataOptions',
  'UserSessionData',
  'default_config',
  'default_user_config',
  'load_session_data',
  'load_user_session_data',
]

# User sequences (SASRec, BERT4Rec, Caser, TransRec); the batchers are in `sequence_batches`.
from seqrec.data.user_sequences import (  # noqa: E402
  SEQUENCE_FORMATS,
  Ragged,
  SequenceData,
  SequenceDataOptions,
  default_sequence_data_config,
  load_sequence_data,
)

__all__ += [
  'SEQUENCE_FORMATS',
  'Ragged',
  'SequenceData',
  'SequenceDataOptions',
  'default_sequence_data_config',
  'load_sequence_data',
]
