"""BERT4Rec (Sun et al., CIKM 2019) on ML-1M: bidirectional encoder, cloze task, full softmax.

Architecture of the paper for ML-1M: max_len 200, d=64, 2 layers, 2 heads, feed-forward 256,
dropout 0.1, masking proportion 0.2. Training follows Klenitskiy & Vasilev's BERT4Rec setup
(antklen/sasrec-bert4rec-recsys23, `configs/BERT4Rec.yaml` with `dataset.max_length=200`), the
comparison that also gives SASRec+ (`sasrec_ce_ml1m.py`): cross-entropy over all items at the
masked positions, Adam lr 1e-3, batch 128, 200 epochs, seen items filtered from the ranking, no
forced masking of the last item; the test uses the epoch with the best validation NDCG@10. K&V
also stop after 20 epochs without a better validation; seqrec's default trains all 200 epochs
(`early_stopping.patience=0`), because on ML-1M that rule stopped a run at epoch 146 on a noisy
dip while validation was still rising (test NDCG@10 0.1358 there; see below). (The original
BERT4Rec code instead trains 400k steps at lr 1e-4, batch 256.)
Two differences from that setup remain, both from the official BERT4Rec code: each row masks
exactly round(0.2 n) of its n items (at most 40) where K&V draw each item's mask independently
with probability 0.2, and the scores pass through BERT's output transform (dense, GELU,
LayerNorm) and add a per-item bias, where K&V score the encoder output directly.

Expected (full-catalogue ranking, leave-one-out test, seen items excluded): published NDCG@10
0.1537 (`ndcg@10` in the result). seqrec, CPU, validated every 2 epochs, seeds 0, 1 and 2:
0.1553 +- 0.0022 (0.1528, 0.1561 and 0.1569), Recall@10 0.2794 +- 0.0025, best validation at
epochs 196, 200 and 196 (experiments/sequential/README.md).

    python -m seqrec.main --config=seqrec/configs/bert4rec_ml1m.py --workdir=runs/bert4rec_ml1m
    # as measured (validation every 2 epochs on CPU):
    python -m seqrec.main --config=seqrec/configs/bert4rec_ml1m.py --config.eval.every_epochs=2 \
      --workdir=runs/bert4rec_ml1m_every2
"""

from seqrec.configs import sequence_base


def get_config():
  config = sequence_base.get_config()
  config.model = 'bert4rec'
  config.data = sequence_base.ml1m_data()
  config.bert4rec.update(
    max_len=200,
    hidden=64,
    n_layers=2,
    n_heads=2,
    intermediate=256,
    dropout=0.1,
    attention_dropout=0.1,
    mask_prob=0.2,
    mask_last_prob=0.0,
  )
  config.loss = 'default'  # full softmax over the masked positions
  config.learning_rate = 1e-3
  config.adam_b1, config.adam_b2 = 0.9, 0.999
  config.batch_size = 128
  config.n_epochs = 200
  config.steps_per_call = 48  # one ML-1M epoch is 48 steps of 128 users
  config.eval.exclude_seen = True
  config.early_stopping.metric = 'ndcg@10'
  config.early_stopping.patience = 0  # all 200 epochs; K&V: 20
  return config
