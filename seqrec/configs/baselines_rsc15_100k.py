"""Classic baselines on the session-rec 100k-click YooChoose sample, GRU4Rec's rsc15 protocol.

The data section is `gru4rec_rsc15_100k.py`'s (the sample's own train_full/test split, conservative
ties), so the numbers sit beside GRU4Rec's in experiments/baselines/README.md. Pick the baseline
with --config.model=pop|spop|itemknn|sknn|vsknn|bprmf (hyperparameters: config.baseline.<model>).

    python -m seqrec.main --config=seqrec/configs/baselines_rsc15_100k.py --config.model=itemknn \
      --workdir=runs/rsc15_100k_itemknn

Measured (test Recall@20 / MRR@20; each run < 5 s on 2 CPU cores; experiments/baselines/README.md):
pop 0.0894 / 0.0264, spop 0.3813 / 0.2648, itemknn 0.3900 / 0.1669, sknn 0.6390 / 0.3193,
vsknn 0.6708 / 0.3565, bprmf 0.4130 / 0.2586 (3 seeds); GRU4Rec 0.6823 / 0.3574.
"""

from seqrec.configs import baseline_base, gru4rec_rsc15_100k


def get_config():
  config = baseline_base.get_config()
  config.model = 'itemknn'
  config.data = gru4rec_rsc15_100k.get_config().data
  return config
