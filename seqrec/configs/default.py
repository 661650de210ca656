"""Default run: GRU4Rec on the built-in synthetic session data (no downloads), ~2 min on 2 CPU cores.

    python -m seqrec.main --config=seqrec/configs/default.py --workdir=runs/default

Expected: Recall@20 around 0.5 and MRR@20 around 0.2 on the synthetic test sessions, several
times the popularity baseline printed beside it (about 0.1 Recall@20).
"""

from seqrec.configs import gru4rec_base


def get_config():
  config = gru4rec_base.get_config()
  config.data = gru4rec_base.data_config(format='synthetic', name='synthetic')
  config.layers = (64,)
  config.batch_size = 64
  config.n_sample = 256
  config.learning_rate = 0.1
  config.momentum = 0.1
  config.dropout_p_hidden = 0.1
  config.logq = 1.0
  config.n_epochs = 5
  config.steps_per_call = 64
  config.eval.cutoffs = (5, 10, 20)
  config.eval.test_every_epoch = True
  return config
