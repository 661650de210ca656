"""Tiny CPU config of HRNN for tests and smoke runs (seconds): synthetic users, 2 short epochs.

python -m seqrec.main --config=seqrec/configs/hrnn_test.py --workdir=/tmp/hrnn_smoke
"""

from seqrec.configs import hrnn_base


def get_config():
  config = hrnn_base.get_config()
  config.data = hrnn_base.user_data_config(
    format='user_synthetic',
    name='users-tiny',
    synthetic_users=120,
    synthetic_items=80,
    synthetic_clusters=6,
    min_item_support=1,
    min_sessions_per_user=3,
  )
  config.layers = (16,)
  config.user_units = 12
  config.batch_size = 8
  config.n_epochs = 2
  config.steps_per_call = 16
  config.eval.batch_size = 32
  config.eval.item_chunk = 50
  config.eval.steps_per_call = 8
  return config
