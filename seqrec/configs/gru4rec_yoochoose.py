"""GRU4Rec, official yoochoose best parameters (cross-entropy, 480 units), on raw YooChoose clicks.

    python -m seqrec.main --config=seqrec/configs/gru4rec_yoochoose.py \
      --config.data.train_path=/data/yoochoose-clicks.dat --workdir=runs/yoochoose
"""

from seqrec.configs import gru4rec_base

# paramfiles/yoochoose_xe_shared_best.py of the official code.
YOOCHOOSE_XE_SHARED_BEST = dict(
  loss='cross-entropy',
  constrained_embedding=True,
  embedding=0,
  elu_param=0,
  layers=[480],
  n_epochs=10,
  batch_size=48,
  dropout_p_embed=0.0,
  dropout_p_hidden=0.2,
  learning_rate=0.07,
  momentum=0.0,
  n_sample=2048,
  sample_alpha=0.2,
  bpreg=0.0,
  logq=1.0,
)


def get_config():
  config = gru4rec_base.get_config()
  gru4rec_base.apply_official(config, YOOCHOOSE_XE_SHARED_BEST)
  config.data = gru4rec_base.data_config(
    format='yoochoose',
    name='yoochoose',
    train_path='yoochoose-clicks.dat',
    test_days=1.0,
    cache_dir='.cache/seqrec',
  )
  config.steps_per_call = 512
  return config
