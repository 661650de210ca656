"""Tiny CPU config for tests and smoke runs (seconds): a small synthetic set, one short epoch.

python -m seqrec.main --config=seqrec/configs/test.py --workdir=/tmp/seqrec_smoke
"""

from seqrec.configs import gru4rec_base


def get_config():
  config = gru4rec_base.get_config()
  config.data = gru4rec_base.data_config(
    format='synthetic', name='synthetic-tiny', synthetic_sessions=600, synthetic_items=120
  )
  config.layers = (16,)
  config.batch_size = 8
  config.n_sample = 32
  config.n_epochs = 2
  config.steps_per_call = 16
  config.eval.batch_size = 64
  config.eval.item_chunk = 50
  config.eval.steps_per_call = 8
  return config
