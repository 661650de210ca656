"""Shared defaults of every HRNN config: GRU4Rec's fields, the user level, user-session data.

    python -m seqrec.main --config=seqrec/configs/hrnn_base.py --workdir=runs/hrnn_synthetic
    python -m seqrec.main --config=seqrec/configs/hrnn_base.py:all --workdir=runs/hrnn_all

On its own it trains HRNN-init on 1,000 synthetic users whose sessions share a planted taste.

The settings are hgru4rec's (mquad/hgru4rec, `scripts/xing_dense_{small,large}.sh`, the runs
behind Quadrana et al., RecSys 2017): TOP1 over in-batch negatives on tanh-activated scores
(`final_act='tanh'`), items fed one-hot to the first session layer with a separate output table
(`constrained_embedding=False`, `embedding=0`), Adagrad with momentum, 10 epochs, and per variant
(`HGRU4REC_SETTINGS`; the config-file argument `:init` (default) or `:all` picks one):

    variant      units  batch  lr    momentum  dropout user / session / init
    small init   100    50     0.1   0.0       0.0 / 0.1 / 0.0
    small all    100    100    0.1   0.2       0.1 / 0.1 / 0.2
    large init   500    100    0.1   0.1       0.1 / 0.2 / 0.2
    large all    500    50     0.05  0.3       0.0 / 0.2 / 0.2

The session dropout is hgru4rec's `dropout_p_hidden_ses`, applied to every session layer's
output: here `dropout_p_embed` (the one-hot first layer's output) and `dropout_p_hidden` (any
further layers). Set `--config.model=gru4rec` to train a session-only GRU4Rec on the identical
sessions and evaluate it on the identical held-out events.
"""

import ml_collections

from seqrec.configs import gru4rec_base
from seqrec.data.user_sessions import default_user_config


def user_data_config(**overrides) -> ml_collections.ConfigDict:
  """Dataset fields read by `seqrec.data.load_user_session_data`."""
  data = default_user_config()
  data.update(overrides)
  return data


# hgru4rec's scripts, by (network size, user propagation mode): units, batch_size, learning_rate,
# momentum, and dropout_p_hidden_usr / dropout_p_hidden_ses / dropout_p_init.
HGRU4REC_SETTINGS = {
  ('small', 'init'): (100, 50, 0.1, 0.0, (0.0, 0.1, 0.0)),
  ('small', 'all'): (100, 100, 0.1, 0.2, (0.1, 0.1, 0.2)),
  ('large', 'init'): (500, 100, 0.1, 0.1, (0.1, 0.2, 0.2)),
  ('large', 'all'): (500, 50, 0.05, 0.3, (0.0, 0.2, 0.2)),
}


def apply_hgru4rec(config: ml_collections.ConfigDict, size: str, variant: str | None) -> None:
  """Sets hgru4rec's settings of one variant (see the module docstring) on `config`.

  Args:
    config: an HRNN config.
    size: 'small' or 'large'.
    variant: the config file's argument: 'init' (also for None or '') or 'all'.

  Raises:
    ValueError: for another variant, naming the accepted ones.
  """
  variant = variant or 'init'
  if (size, variant) not in HGRU4REC_SETTINGS:
    raise ValueError(
      f"HRNN config argument {variant!r}: expected 'init' or 'all' (e.g. --config=FILE.py:all)"
    )
  units, batch, lr, momentum, (p_user, p_session, p_init) = HGRU4REC_SETTINGS[(size, variant)]
  config.user_propagation_mode = variant
  config.layers = (units,)
  config.user_units = units
  config.batch_size = batch
  config.learning_rate = lr
  config.momentum = momentum
  config.dropout_p_user = p_user
  config.dropout_p_embed = p_session  # the one-hot first session layer's output
  config.dropout_p_hidden = p_session  # any further session layer's output
  config.dropout_p_init = p_init


def get_config(variant: str | None = None) -> ml_collections.ConfigDict:
  """HRNN with hgru4rec's small-network settings on synthetic users with a planted taste.

  Args:
    variant: the config file's argument (`--config=hrnn_base.py:all`): 'init' (default) or 'all'.
  """
  config = gru4rec_base.get_config()
  config.model = 'hrnn'
  config.data = user_data_config(format='user_synthetic')
  config.loss = 'top1'
  config.final_act = 'tanh'  # hgru4rec's default activation before TOP1
  config.constrained_embedding = False  # one-hot input (Ws_in) and a separate output table (Wsy)
  config.embedding = 0
  config.n_sample = 0  # hgru4rec scores the batch's own targets only
  config.n_epochs = 10
  # Sizes, optimiser, dropout and the user level (user_units, user_propagation_mode,
  # dropout_p_user, dropout_p_init: HRNN only, a gru4rec run ignores them).
  apply_hgru4rec(config, 'small', variant)
  config.steps_per_call = 64
  config.eval.cutoffs = (5, 10, 20)
  config.eval.batch_size = 256
  config.eval.first_n = (1, 3)  # also report the first k predictions of each held-out session
  config.eval.history_sessions = -1  # user history sessions walked before scoring; -1: all
  config.early_stopping.metric = 'recall@5'
  return config
