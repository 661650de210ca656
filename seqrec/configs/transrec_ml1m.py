"""TransRec (He, Kang & McAuley, RecSys 2017) on ML-1M: translation model trained with S-BPR.

Model: the paper's L2 variant with K=10 dimensions, item points in the unit ball. Training is
seqrec's recipe, not a reproduction (the official C++ release trains by SGD with tuned L2; it
is not at hand): S-BPR with one negative per (previous, next) pair drawn outside the pair, Adam
lr 1e-3, batch 1024, 50 epochs, the tested parameters those of the best validation NDCG@10.

Evaluation is SASRec's leave-one-out with both full-catalogue and 100-sampled-negative metrics.
Expected: above POP and below Caser/SASRec on the sampled metrics; the SASRec paper's Table III
lists TransRec on ML-1M at HR@10 0.6413, NDCG@10 0.3969 (100 uniform negatives; quoted without
re-checking the table, and run there with its own settings).

    python -m seqrec.main --config=seqrec/configs/transrec_ml1m.py --workdir=runs/transrec_ml1m
"""

from seqrec.configs import sequence_base


def get_config():
  config = sequence_base.get_config()
  config.model = 'transrec'
  config.data = sequence_base.ml1m_data()
  config.transrec.update(dim=10)
  config.loss = 'sbpr'
  config.n_negatives = 1
  config.negatives_exclude_seen = True
  config.learning_rate = 1e-3
  config.adam_b1, config.adam_b2 = 0.9, 0.999
  config.batch_size = 1024
  config.n_epochs = 50
  config.steps_per_call = 64
  config.eval.sampled_n = 100
  config.eval.sampled_kind = 'uniform'
  config.early_stopping.metric = 'ndcg@10'
  config.early_stopping.patience = 0
  return config
