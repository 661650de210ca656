"""Classic baselines on DynamicRec's untimed Diginetica sessions, GRU4Rec's diginetica protocol.

The data section is `gru4rec_diginetica_dynamicrec.py`'s (last 10% of sessions in file order as
test, conservative ties). Pick the baseline with --config.model=pop|spop|itemknn|sknn|vsknn|bprmf
(hyperparameters: config.baseline.<model>).

    python -m seqrec.main --config=seqrec/configs/baselines_diginetica_dynamicrec.py \
      --config.model=sknn --workdir=runs/diginetica_dynamicrec_sknn

Measured (test Recall@20 / MRR@20; fit + evaluation 8-16 s on 2 CPU cores;
experiments/baselines/README.md): pop 0.0089 / 0.0021, spop 0.2356 / 0.1424, itemknn 0.3802 /
0.1144, sknn 0.5234 / 0.1697, vsknn 0.5179 / 0.1744, bprmf 0.2122 / 0.1268 (3 seeds); GRU4Rec
0.5498 / 0.1782.
"""

from seqrec.configs import baseline_base, gru4rec_diginetica_dynamicrec


def get_config():
  config = baseline_base.get_config()
  config.model = 'sknn'
  config.data = gru4rec_diginetica_dynamicrec.get_config().data
  return config
