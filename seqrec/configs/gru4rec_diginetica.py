"""GRU4Rec, official diginetica best parameters (bpr-max), on Diginetica.

Data: the raw CIKM Cup 2016 `train-item-views.csv` (time-based split, GRU4Rec's recipe). For
DynamicRec's untimed `diginetica.csv` (last 10% of sessions in file order as test, unfiltered),
where the official code reached Recall@20 0.5483, MRR@20 0.1768 in 5 epochs, use
`gru4rec_diginetica_dynamicrec.py`: its data config leaves the file unfiltered as that run did
(this config's filters would drop 4% of the events and 20% of the items). seqrec's numbers are in
experiments/gru4rec_fidelity/README.md.

    python -m seqrec.main --config=seqrec/configs/gru4rec_diginetica.py \
      --config.data.train_path=/data/train-item-views.csv --workdir=runs/diginetica
"""

from seqrec.configs import gru4rec_base

# paramfiles/diginetica_bprmax_shared_best.py of the official code.
DIGINETICA_BPRMAX_SHARED_BEST = dict(
  loss='bpr-max',
  constrained_embedding=True,
  embedding=0,
  elu_param=1,
  layers=[512],
  n_epochs=10,
  batch_size=128,
  dropout_p_embed=0.5,
  dropout_p_hidden=0.3,
  learning_rate=0.05,
  momentum=0.15,
  n_sample=2048,
  sample_alpha=0.3,
  bpreg=0.9,
  logq=0.0,
)


def get_config():
  config = gru4rec_base.get_config()
  gru4rec_base.apply_official(config, DIGINETICA_BPRMAX_SHARED_BEST)
  config.data = gru4rec_base.data_config(
    format='diginetica',
    name='diginetica',
    train_path='train-item-views.csv',
    test_days=7.0,
    cache_dir='.cache/seqrec',
  )
  config.steps_per_call = 512
  return config
