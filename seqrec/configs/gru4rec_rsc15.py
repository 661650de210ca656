"""GRU4Rec, official rsc15 best parameters, on the full RSC15 clicks (raw yoochoose-clicks.dat).

The raw file is preprocessed with GRU4Rec's recipe (sessions of length 1 dropped, items with
support < 5 dropped, last day's sessions as test); see third_party_data/yoochoose/README.md.
The GRU4Rec papers report Recall@20 ~0.63-0.65 / MRR@20 ~0.27-0.28 for cross-entropy here.

    python -m seqrec.main --config=seqrec/configs/gru4rec_rsc15.py \
      --config.data.train_path=/data/yoochoose-clicks.dat --workdir=runs/rsc15
"""

from seqrec.configs import gru4rec_base
from seqrec.configs.gru4rec_rsc15_100k import RSC15_XE_SHARED_100_BEST


def get_config():
  config = gru4rec_base.get_config()
  gru4rec_base.apply_official(config, RSC15_XE_SHARED_100_BEST)
  config.data = gru4rec_base.data_config(
    format='yoochoose',
    name='rsc15',
    train_path='yoochoose-clicks.dat',
    test_days=1.0,
    cache_dir='.cache/seqrec',
  )
  config.steps_per_call = 1024
  config.eval.batch_size = 2048
  return config
