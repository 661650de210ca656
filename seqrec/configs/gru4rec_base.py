"""Shared defaults of every GRU4Rec config (the official code's parameter names and defaults)."""

import ml_collections
from ml_collections import config_dict

# The official GRU4Rec parameter names; a paramfile of the official code sets exactly these.
OFFICIAL_PARAMS = (
  'loss',
  'constrained_embedding',
  'embedding',
  'elu_param',
  'layers',
  'batch_size',
  'dropout_p_embed',
  'dropout_p_hidden',
  'learning_rate',
  'momentum',
  'n_sample',
  'sample_alpha',
  'bpreg',
  'logq',
  'n_epochs',
)


def data_config(**overrides) -> ml_collections.ConfigDict:
  """Dataset fields read by `seqrec.data.load_session_data`."""
  data = ml_collections.ConfigDict(
    dict(
      format='synthetic',
      name='',
      train_path='',
      test_path='',
      valid_path='',
      test_days=1.0,
      test_fraction=0.1,
      valid_days=0.0,
      valid_fraction=0.0,
      min_session_length=2,
      min_item_support=5,
      time_unit='s',  # of a gru4rec_tsv Time column: 's' or 'ms'
      preprocess=config_dict.placeholder(bool),  # None: True for raw formats only
      cache_dir='',
      synthetic_sessions=6000,
      synthetic_items=1000,
      seed=0,
    )
  )
  data.update(overrides)
  return data


def get_config() -> ml_collections.ConfigDict:
  """GRU4Rec with the official code's defaults on the built-in synthetic data."""
  config = ml_collections.ConfigDict()
  config.model = 'gru4rec'
  config.seed = 0
  config.data = data_config()
  # Official GRU4Rec parameters (gru4rec_pytorch.GRU4Rec defaults).
  config.loss = 'cross-entropy'
  config.constrained_embedding = True
  config.embedding = 0
  config.elu_param = 0.5
  config.layers = (100,)
  config.batch_size = 64
  config.dropout_p_embed = 0.0
  config.dropout_p_hidden = 0.0
  config.learning_rate = 0.05
  config.momentum = 0.0
  config.n_sample = 2048  # 0: in-batch negatives only (as official); -1: full-catalogue softmax
  config.sample_alpha = 0.5
  config.bpreg = 1.0
  config.logq = 0.0
  # Output activation before the loss: 'linear' (the PyTorch code) or 'tanh' (the Theano codes'
  # default for bpr and top1, e.g. hgru4rec's). Ranking always uses the raw scores.
  config.final_act = 'linear'
  config.n_epochs = 10
  # seqrec's own knobs.
  config.steps_per_call = 128  # steps per compiled lax.scan call
  config.num_devices = 1  # data-parallel mesh over this many local devices (0: all)
  config.scan_unroll = 1  # steps per loop iteration inside a call (speed only, same numbers)
  config.checkpoint_every_secs = 600.0  # mid-epoch checkpoints of long epochs (0: epoch ends only)
  # Stop after the first epoch that ends this many seconds after the start (0: no limit); the
  # result says `time_limited`, and re-running the command resumes from the last checkpoint.
  config.time_limit_secs = 0.0
  config.eval = ml_collections.ConfigDict(
    dict(
      cutoffs=(20,),
      tie_mode='conservative',  # conservative | optimistic | median
      batch_size=512,
      item_chunk=65536,  # catalogue scored in chunks of this many items (bounds memory)
      steps_per_call=16,
      test_every_epoch=False,  # without a validation split, also evaluate test every epoch
    )
  )
  config.early_stopping = ml_collections.ConfigDict(dict(metric='recall@20', patience=0))
  return config


def apply_official(config: ml_collections.ConfigDict, params: dict) -> ml_collections.ConfigDict:
  """Copies an official GRU4Rec paramfile's dict (e.g. `layers=[512]`) into `config`.

  Raises:
    KeyError: on a parameter the official code does not have.
  """
  unknown = [key for key in params if key not in OFFICIAL_PARAMS]
  if unknown:
    raise KeyError(
      f'{unknown} are not official GRU4Rec parameters; expected some of {", ".join(OFFICIAL_PARAMS)}'
    )
  for key, value in params.items():
    config[key] = tuple(value) if isinstance(value, list) else value
  return config
