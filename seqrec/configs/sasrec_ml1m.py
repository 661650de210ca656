"""SASRec (Kang & McAuley, ICDM 2018) on ML-1M with the paper's settings and BCE loss.

Paper/official-code settings (kang205/SASRec, ML-1M): max_len 200, d=50, 2 blocks, 1 head,
dropout 0.2, Adam lr 1e-3 with betas (0.9, 0.98), batch 128, 200 epochs, BCE with one negative
per position drawn outside the user's sequence, no L2 on the embeddings (`l2_emb=0`; here
`weight_decay=0`). The official code validates every 20 epochs; here the validation every 20
epochs picks the tested checkpoint by sampled NDCG@10, as the paper selects models.

Evaluation is leave-one-out over all 6,040 users. The paper ranks each test target among 100
negatives drawn uniformly from the items the user has not interacted with. Expected: the
paper's ML-1M result, HR@10 0.8245 and NDCG@10 0.5905, in `sampled100_uniform/recall@10` and
`sampled100_uniform/ndcg@10`. The full-catalogue metrics (`recall@10`, `ndcg@10`, ...) are
reported beside them; the paper gives none (for scale: gSASRec-pytorch's BCE SASRec, d=128,
reaches full-ranking NDCG@10 0.1259 on its own split).

    python -m seqrec.main --config=seqrec/configs/sasrec_ml1m.py --workdir=runs/sasrec_ml1m
"""

from seqrec.configs import sequence_base


def get_config():
  config = sequence_base.get_config()
  config.model = 'sasrec'
  config.data = sequence_base.ml1m_data()
  config.sasrec.update(max_len=200, hidden=50, n_blocks=2, n_heads=1, dropout=0.2)
  config.loss = 'bce'
  config.n_negatives = 1
  config.negatives_exclude_seen = True
  config.learning_rate = 1e-3
  config.adam_b1, config.adam_b2 = 0.9, 0.98
  config.weight_decay = 0.0
  config.batch_size = 128
  config.n_epochs = 200
  config.steps_per_call = 48  # one ML-1M epoch is 48 steps of 128 users
  config.eval.sampled_n = 100
  config.eval.sampled_kind = 'uniform'
  config.eval.exclude_seen = False
  config.eval.every_epochs = 20
  config.early_stopping.metric = 'sampled100_uniform/ndcg@10'
  config.early_stopping.patience = 0
  return config
