"""Tiny CPU config of the sequence models for tests and smoke runs (seconds): SASRec on synthetic data.

python -m seqrec.main --config=seqrec/configs/sequence_test.py --workdir=/tmp/seqrec_seq_smoke

Other models: `--config.model=bert4rec`, `caser` or `transrec` (each shrunk below).
"""

from seqrec.configs import sequence_base


def get_config():
  config = sequence_base.get_config()
  config.data = sequence_base.data_config(
    format='synthetic',
    name='synthetic-sequences-tiny',
    synthetic_users=300,
    synthetic_items=80,
    synthetic_mean_length=12.0,
  )
  config.sasrec.update(max_len=16, hidden=16, dropout=0.1)
  config.bert4rec.update(max_len=16, hidden=16, intermediate=32, max_predictions=4)
  config.caser.update(L=4, T=2, hidden=16, n_vertical=2, n_horizontal=4)
  config.transrec.update(dim=8)
  config.batch_size = 32
  config.n_epochs = 3
  config.steps_per_call = 4
  config.eval.user_block = 128
  return config
