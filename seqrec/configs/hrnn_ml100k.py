"""HRNN (small network) on MovieLens-100K cut into sessions at 30 minutes; last session as test.

    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k.py --workdir=runs/hrnn_ml100k_init
    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k.py:all --workdir=runs/hrnn_ml100k_all
    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k.py --config.model=gru4rec \
      --workdir=runs/gru4rec_ml100k

Filters of hgru4rec (items with >= 20 events, sessions with >= 3 events) except the minimum of
sessions per user, lowered from 5 to 3: with 5 only 91 users remain. That leaves 208 users, 939
items, 906 training sessions and 4,632 test predictions; about 10 s per run on 2 CPU cores.
hgru4rec's settings (hrnn_base.py), 3 seeds (experiments/hrnn/README.md): Recall@5 0.0390
(HRNN-init), 0.0384 (HRNN-all, `:all`) and 0.0389 (GRU4Rec); on the first prediction of a session,
Recall@20 0.131 and 0.136 vs 0.117. ML-100K "sessions" are rating bursts and the data is too small
to show the paper's XING gain.
"""

from seqrec.configs import hrnn_base


def get_config(variant=None):
  config = hrnn_base.get_config(variant)
  config.data = hrnn_base.user_data_config(
    format='recbole_inter',
    train_path='../shared/datasets/ml100k_recbole/ml-100k.inter',
    name='ml100k-30min',
    session_gap_seconds=1800.0,
    min_item_support=20,
    min_session_length=3,
    min_sessions_per_user=3,
  )
  return config
