"""GRU4Rec, official diginetica parameters, 5 epochs, on the DynamicRec Diginetica sessions.

The fidelity check of the spine issue: last 10% of sessions in file order as test, conservative
ties. Official PyTorch code: Recall@20 0.5483, MRR@20 0.1768.

    python -m seqrec.main --config=seqrec/configs/gru4rec_diginetica_dynamicrec.py \
      --workdir=runs/diginetica_dynamicrec
"""

from seqrec.configs import gru4rec_base
from seqrec.configs.gru4rec_diginetica import DIGINETICA_BPRMAX_SHARED_BEST


def get_config():
  config = gru4rec_base.get_config()
  gru4rec_base.apply_official(config, DIGINETICA_BPRMAX_SHARED_BEST)
  config.n_epochs = 5
  config.data = gru4rec_base.data_config(
    format='session_lines',
    name='diginetica_dynamicrec',
    train_path='../shared/datasets/diginetica_dynamicrec_sessions/diginetica.csv',
    test_fraction=0.1,
    preprocess=False,
  )
  config.steps_per_call = 512
  return config
