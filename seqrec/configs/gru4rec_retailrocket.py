"""GRU4Rec, official retailrocket best parameters (bpr-max), on RetailRocket `events.csv`.

Views only, visitors' events sessionised at 30 minutes of inactivity, GRU4Rec's recipe, last day
as test (third_party_data/retailrocket/README.md).

    python -m seqrec.main --config=seqrec/configs/gru4rec_retailrocket.py \
      --config.data.train_path=/data/events.csv --workdir=runs/retailrocket
"""

from seqrec.configs import gru4rec_base

# paramfiles/retailrocket_bprmax_shared_best.py of the official code.
RETAILROCKET_BPRMAX_SHARED_BEST = dict(
  loss='bpr-max',
  constrained_embedding=True,
  embedding=0,
  elu_param=0.5,
  layers=[224],
  n_epochs=10,
  batch_size=80,
  dropout_p_embed=0.5,
  dropout_p_hidden=0.05,
  learning_rate=0.05,
  momentum=0.4,
  n_sample=2048,
  sample_alpha=0.4,
  bpreg=1.95,
  logq=0.0,
)


def get_config():
  config = gru4rec_base.get_config()
  gru4rec_base.apply_official(config, RETAILROCKET_BPRMAX_SHARED_BEST)
  config.data = gru4rec_base.data_config(
    format='retailrocket',
    name='retailrocket',
    train_path='events.csv',
    test_days=1.0,
    cache_dir='.cache/seqrec',
  )
  config.steps_per_call = 512
  return config
