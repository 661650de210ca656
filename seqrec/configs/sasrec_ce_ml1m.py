"""SASRec+ (Klenitskiy & Vasilev, RecSys 2023): SASRec trained with full-softmax cross-entropy, ML-1M.

Settings of the authors' code (antklen/sasrec-bert4rec-recsys23, `configs/SASRec.yaml` run with
`dataset.max_length=200`): max_len 200, d=64, 2 blocks, 1 head, dropout 0.1, cross-entropy over
all items at every position, Adam lr 1e-3 (PyTorch default betas), batch 128, at most 100
epochs with early stopping after 10 validations without a better NDCG@10. Validation is the
second-to-last item of every user (training without the last two); seen items are filtered out
of the ranking (their `filter_seen=True`; here `eval.exclude_seen=True`).

Expected (full-catalogue ranking, leave-one-out test, seen items excluded): the published SASRec+
NDCG@10 on ML-1M is 0.1821 (`ndcg@10` in the result). seqrec, 3 seeds on 2 CPU cores:
0.1769 +- 0.0018, Recall@10 0.3068 +- 0.0039 (experiments/sequential/README.md).

    python -m seqrec.main --config=seqrec/configs/sasrec_ce_ml1m.py --workdir=runs/sasrec_ce_ml1m
"""

from seqrec.configs import sequence_base


def get_config():
  config = sequence_base.get_config()
  config.model = 'sasrec'
  config.data = sequence_base.ml1m_data()
  config.sasrec.update(max_len=200, hidden=64, n_blocks=2, n_heads=1, dropout=0.1)
  config.loss = 'ce'
  config.learning_rate = 1e-3
  config.adam_b1, config.adam_b2 = 0.9, 0.999
  config.batch_size = 128
  config.n_epochs = 100
  config.steps_per_call = 48  # one ML-1M epoch is 48 steps of 128 users
  config.eval.exclude_seen = True
  config.early_stopping.metric = 'ndcg@10'
  config.early_stopping.patience = 10
  return config
