"""Shared defaults of every HRNN config: GRU4Rec's fields, the user level, user-session data.

    python -m seqrec.main --config=seqrec/configs/hrnn_base.py --workdir=runs/hrnn_synthetic

On its own it trains HRNN-init on 1,000 synthetic users whose sessions share a planted taste.

HRNN's settings in Quadrana et al. (RecSys 2017) and hgru4rec: TOP1 loss over in-batch
negatives, Adagrad (learning rate 0.1, no momentum), 10 epochs; small networks of 100 units
(batch 50) and large ones of 500 units (batch 100) for both the session and the user GRU.
Set `--config.model=gru4rec` to train a session-only GRU4Rec on the identical sessions and
evaluate it on the identical held-out events.
"""

import ml_collections

from seqrec.configs import gru4rec_base
from seqrec.data.user_sessions import default_user_config


def user_data_config(**overrides) -> ml_collections.ConfigDict:
  """Dataset fields read by `seqrec.data.load_user_session_data`."""
  data = default_user_config()
  data.update(overrides)
  return data


def get_config() -> ml_collections.ConfigDict:
  """HRNN-init with the paper's small-network settings on synthetic users with a planted taste."""
  config = gru4rec_base.get_config()
  config.model = 'hrnn'
  config.data = user_data_config(format='user_synthetic')
  config.loss = 'top1'
  config.n_sample = 0  # hgru4rec scores the batch's own targets only
  config.learning_rate = 0.1
  config.momentum = 0.0
  config.layers = (100,)
  config.batch_size = 50
  config.dropout_p_hidden = 0.1  # hgru4rec's dropout_p_hidden_ses
  config.n_epochs = 10
  # The user level (HRNN only; a gru4rec run ignores these).
  config.user_units = 100
  config.user_propagation_mode = 'init'  # 'init' | 'all'
  config.dropout_p_user = 0.1  # hgru4rec's dropout_p_hidden_usr
  config.dropout_p_init = 0.1
  config.steps_per_call = 64
  config.eval.cutoffs = (5, 10, 20)
  config.eval.batch_size = 256
  config.eval.first_n = (1, 3)  # also report the first k predictions of each held-out session
  config.eval.history_sessions = -1  # user history sessions walked before scoring; -1: all
  config.early_stopping.metric = 'recall@5'
  return config
