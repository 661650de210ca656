"""HRNN with hgru4rec's large network (500 units) on ML-100K at 30 minutes.

    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k_large.py --workdir=runs/hrnn_large
    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k_large.py:all --workdir=runs/hrnn_large_all
    python -m seqrec.main --config=seqrec/configs/hrnn_ml100k_large.py --config.model=gru4rec \
      --workdir=runs/gru4rec_large

Same data as hrnn_ml100k.py; hgru4rec's large-init (batch 100, lr 0.1, momentum 0.1) and
large-all (batch 50, lr 0.05, momentum 0.3) settings. Measured, seed 0 (experiments/hrnn/README.md):
Recall@5 0.0382 (HRNN-init), 0.0425 (HRNN-all) vs GRU4Rec 0.0417; about 10 min a run on 2 CPU cores.
"""

from seqrec.configs import hrnn_base, hrnn_ml100k


def get_config(variant=None):
  config = hrnn_ml100k.get_config()
  hrnn_base.apply_hgru4rec(config, 'large', variant)
  return config
