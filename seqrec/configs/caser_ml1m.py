"""Caser (Tang & Wang, WSDM 2018) on ML-1M with the official code's settings.

Settings of graytowne/caser_pytorch's `train_caser.py` defaults (its ML-1M run): L=5 previous
items, T=3 targets, d=50, 4 vertical and 16 horizontal filters, dropout 0.5, ReLU in the
convolutions and the fully-connected layer, BCE with 3 negatives per target drawn from the items
the user has not rated (their terms averaged), Adam lr 1e-3 with L2 1e-6 added to the gradient
(`weight_decay`), batch 512, 50 epochs. The tested parameters are those of the best validation
NDCG@10 (the official code evaluates on test after every epoch and trains all 50).

Evaluation is SASRec's leave-one-out (the Caser paper used its own 70/10/20 split and MAP/Prec@N,
not comparable). Expected: the SASRec paper's Caser row on ML-1M, 100 uniform sampled
negatives, HR@10 0.7886 and NDCG@10 0.5538 (`sampled100_uniform/recall@10`, `.../ndcg@10`);
full-catalogue metrics are reported beside them. seqrec, CPU, validated every 5 epochs, seeds 0,
1 and 2: 0.8028 +- 0.0069 / 0.5803 +- 0.0045; full ranking Recall@10 0.1563, NDCG@10 0.0760
(experiments/sequential/README.md).

    python -m seqrec.main --config=seqrec/configs/caser_ml1m.py --workdir=runs/caser_ml1m
    # as measured:
    python -m seqrec.main --config=seqrec/configs/caser_ml1m.py --config.eval.every_epochs=5 \
      --workdir=runs/caser_ml1m_every5
"""

from seqrec.configs import sequence_base


def get_config():
  config = sequence_base.get_config()
  config.model = 'caser'
  config.data = sequence_base.ml1m_data()
  config.caser.update(
    L=5,
    T=3,
    hidden=50,
    n_vertical=4,
    n_horizontal=16,
    dropout=0.5,
    conv_activation='relu',
    fc_activation='relu',
  )
  config.loss = 'bce'
  config.n_negatives = 3
  config.negative_reduction = 'mean'
  config.negatives_exclude_seen = True
  config.learning_rate = 1e-3
  config.adam_b1, config.adam_b2 = 0.9, 0.999
  config.weight_decay = 1e-6
  config.batch_size = 512
  config.n_epochs = 50
  config.steps_per_call = 64
  config.eval.sampled_n = 100
  config.eval.sampled_kind = 'uniform'
  config.early_stopping.metric = 'ndcg@10'
  config.early_stopping.patience = 0
  return config
