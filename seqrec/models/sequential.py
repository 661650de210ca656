"""Registry of the user-sequence models: builders from `config.<model>` and their paper defaults."""

import ml_collections
from flax import nnx

from seqrec.models.bert4rec import BERT4Rec
from seqrec.models.caser import Caser
from seqrec.models.sasrec import SASRec
from seqrec.models.transrec import TransRec

# The papers' ML-1M settings (see each model's module docstring for the official-code notes).
_DEFAULTS = {
  'sasrec': dict(
    max_len=200,
    hidden=50,
    n_blocks=2,
    n_heads=1,
    dropout=0.2,
    separate_output_embedding=False,
    init='tf',
  ),
  'bert4rec': dict(
    max_len=200,
    hidden=64,
    n_layers=2,
    n_heads=2,
    intermediate=256,
    dropout=0.1,
    attention_dropout=0.1,
    mask_prob=0.2,
    max_predictions=40,
    mask_last_prob=1.0 / 11.0,
  ),
  'caser': dict(
    L=5,
    T=3,
    hidden=50,
    n_vertical=4,
    n_horizontal=16,
    dropout=0.5,
    conv_activation='relu',
    fc_activation='relu',
  ),
  'transrec': dict(dim=10),
}


def sequence_model_config(name: str) -> ml_collections.ConfigDict:
  """The default `config.<name>` sub-config (the paper's values) of a sequence model.

  Raises:
    ValueError: for an unknown model name.
  """
  if name not in _DEFAULTS:
    raise ValueError(f'{name!r} is not a sequence model; choose from {sorted(_DEFAULTS)}')
  return ml_collections.ConfigDict(dict(_DEFAULTS[name]))


def history_length(config) -> int:
  """Width of the evaluation history matrix the model `config.model` reads."""
  name = config.model
  if name in ('sasrec', 'bert4rec'):
    return int(config[name].max_len)
  if name == 'caser':
    return int(config.caser.L)
  if name == 'transrec':
    return 1
  raise ValueError(f'{name!r} is not a sequence model; choose from {sorted(_DEFAULTS)}')


def build_sasrec(config, n_items: int, n_users: int, rngs: nnx.Rngs) -> SASRec:
  del n_users
  c = config.sasrec
  return SASRec(
    n_items,
    max_len=int(c.max_len),
    hidden=int(c.hidden),
    n_blocks=int(c.n_blocks),
    n_heads=int(c.n_heads),
    dropout=float(c.dropout),
    # Runs saved before this option existed have no key: they used the shared table.
    separate_output_embedding=bool(c.get('separate_output_embedding', False)),
    init=c.get('init', 'tf'),
    rngs=rngs,
  )


def build_bert4rec(config, n_items: int, n_users: int, rngs: nnx.Rngs) -> BERT4Rec:
  del n_users
  c = config.bert4rec
  return BERT4Rec(
    n_items,
    max_len=int(c.max_len),
    hidden=int(c.hidden),
    n_layers=int(c.n_layers),
    n_heads=int(c.n_heads),
    intermediate=int(c.intermediate),
    dropout=float(c.dropout),
    attention_dropout=float(c.attention_dropout),
    mask_prob=float(c.mask_prob),
    max_predictions=int(c.max_predictions),
    mask_last_prob=float(c.mask_last_prob),
    rngs=rngs,
  )


def build_caser(config, n_items: int, n_users: int, rngs: nnx.Rngs) -> Caser:
  c = config.caser
  return Caser(
    n_items,
    n_users,
    L=int(c.L),
    hidden=int(c.hidden),
    n_vertical=int(c.n_vertical),
    n_horizontal=int(c.n_horizontal),
    dropout=float(c.dropout),
    conv_activation=str(c.conv_activation),
    fc_activation=str(c.fc_activation),
    rngs=rngs,
  )


def build_transrec(config, n_items: int, n_users: int, rngs: nnx.Rngs) -> TransRec:
  return TransRec(n_items, n_users, dim=int(config.transrec.dim), rngs=rngs)


SEQUENCE_MODELS = {
  'sasrec': build_sasrec,
  'bert4rec': build_bert4rec,
  'caser': build_caser,
  'transrec': build_transrec,
}
