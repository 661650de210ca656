"""GRU4Rec, official rsc15 best parameters, on the session-rec 100k-click YooChoose sample.

Uses the sample's own train_full/test split (last day as test), conservative ties, as the
official evaluation does. The official PyTorch code reached Recall@20 0.6784, MRR@20 0.3547 here
(H100); seqrec's 3-seed mean is recorded in experiments/gru4rec_fidelity/README.md.

    python -m seqrec.main --config=seqrec/configs/gru4rec_rsc15_100k.py \
      --config.data.train_path=../shared/datasets/yoochoose_rsc15_100k/yoochoose-clicks-100k_train_full.txt \
      --config.data.test_path=../shared/datasets/yoochoose_rsc15_100k/yoochoose-clicks-100k_test.txt \
      --workdir=runs/rsc15_100k
"""

from seqrec.configs import gru4rec_base

DATA_DIR = '../shared/datasets/yoochoose_rsc15_100k'

# paramfiles/rsc15_xe_shared_100_best.py of the official code.
RSC15_XE_SHARED_100_BEST = dict(
  loss='cross-entropy',
  constrained_embedding=True,
  embedding=0,
  elu_param=0,
  layers=[100],
  n_epochs=10,
  batch_size=32,
  dropout_p_embed=0.0,
  dropout_p_hidden=0.4,
  learning_rate=0.2,
  momentum=0.2,
  n_sample=2048,
  sample_alpha=0.5,
  bpreg=0.0,
  logq=1.0,
)


def get_config():
  config = gru4rec_base.get_config()
  gru4rec_base.apply_official(config, RSC15_XE_SHARED_100_BEST)
  config.data = gru4rec_base.data_config(
    format='gru4rec_tsv',
    name='yoochoose_rsc15_100k',
    train_path=f'{DATA_DIR}/yoochoose-clicks-100k_train_full.txt',
    test_path=f'{DATA_DIR}/yoochoose-clicks-100k_test.txt',
  )
  config.steps_per_call = 512
  return config
