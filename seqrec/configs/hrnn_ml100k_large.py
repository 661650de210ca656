"""HRNN with the paper's large network (500 units, batch 100) on ML-100K at 30 minutes.

    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k_large.py --workdir=runs/hrnn_large
    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k_large.py --config.model=gru4rec \
      --workdir=runs/gru4rec_large

Same data as hrnn_ml100k.py. Measured over 3 seeds (experiments/hrnn/README.md): HRNN-init
Recall@5 0.042 vs GRU4Rec 0.045; HRNN-all degrades (0.012) at this width on this small set.
"""

from seqrec.configs import hrnn_ml100k


def get_config():
  config = hrnn_ml100k.get_config()
  config.layers = (500,)
  config.user_units = 500
  config.batch_size = 100
  return config
