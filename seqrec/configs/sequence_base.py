"""Shared fields of every user-sequence config (SASRec, BERT4Rec, Caser, TransRec) on synthetic data.

The recipes (`sasrec_ml1m.py`, ...) start from `get_config()` and set their paper's values. On
its own this file trains SASRec with the paper's loss on the built-in synthetic sequences:

    python -m seqrec.main --config=seqrec/configs/sequence_base.py --workdir=runs/sequence_base

Any model can be picked on the command line, each with its own hyperparameters under
`config.<model>`, e.g. `--config.model=caser --config.caser.L=3`.
"""

import ml_collections

from seqrec.data.user_sequences import default_sequence_data_config
from seqrec.models.sequential import SEQUENCE_MODELS, sequence_model_config

ML1M_PATH = '../shared/datasets/ml1m_sasrec/ml-1m.txt'


def data_config(**overrides) -> ml_collections.ConfigDict:
  """Dataset fields read by `seqrec.data.user_sequences.load_sequence_data`."""
  data = default_sequence_data_config()
  data.update(overrides)
  return data


def ml1m_data() -> ml_collections.ConfigDict:
  """SASRec's `ml-1m.txt` (already 5-filtered, 6,040 users, 3,416 items), leave-one-out."""
  return data_config(format='user_item_lines', path=ML1M_PATH, name='ml1m', split='leave_one_out')


def get_config() -> ml_collections.ConfigDict:
  """SASRec with its paper's loss on synthetic sequences; every sequence model's sub-config."""
  config = ml_collections.ConfigDict()
  config.model = 'sasrec'
  config.seed = 0
  config.data = data_config(name='synthetic-sequences')
  # The loss: 'default' (the model's paper: SASRec/Caser BCE, BERT4Rec full softmax over the
  # masked positions, TransRec S-BPR) | 'bce' | 'gbce' | 'sampled_ce' | 'ce' | 'sbpr'.
  config.loss = 'default'
  config.n_negatives = 0  # per target; 0: the loss's own count (Caser 3, others 1)
  config.negative_reduction = 'default'  # 'sum' | 'mean' over several negatives' terms
  config.negatives_exclude_seen = True  # draw negatives outside the example's items
  config.gbce_t = 0.75  # gSASRec's calibration t (loss='gbce' only)
  # gSASRec-pytorch clamps s(positive) into [eps, 1 - eps]: targets scoring below ~-23 get no
  # gradient (loss='gbce' only; 0 = no clamp, gsasrec_ml1m.py: 1e-10)
  config.gbce_eps = 0.0
  # How sampled losses score their negatives: 'gather' their output rows ([B, P, K, D] memory),
  # 'catalog' one matmul against the whole output table then pick the K columns, or 'auto'
  # (catalog when the K negatives are at least 1/16 of the catalogue). Same numbers either way.
  config.negative_scoring = 'auto'
  # Catalogue scoring in chunks of this many target positions, skipping the chunks of padding
  # (about half of ML-1M's positions at max_len 200); 0 = one product over all B x P positions.
  config.negative_score_chunk = 0
  # Adam; weight_decay is L2 added to the gradient (torch.optim.Adam's weight_decay), not AdamW.
  config.learning_rate = 1e-3
  config.adam_b1 = 0.9
  config.adam_b2 = 0.999
  config.weight_decay = 0.0
  config.grad_clip_norm = 0.0  # global-norm clipping (0 = off)
  # Factor on the training objective. Adam is blind to it except through its epsilon (1e-8), where
  # a small factor damps parameters with tiny gradients. gsasrec_ml1m.py: 1/257, gSASRec-pytorch's
  # mean over the K + 1 terms of a target.
  config.loss_scale = 1.0
  config.batch_size = 128
  config.n_epochs = 200
  config.steps_per_call = 16  # update steps per compiled lax.scan call
  config.num_devices = 1  # data-parallel mesh over this many local devices (0: all)
  # Checkpoints are written at the first epoch end this many seconds after the last write, and
  # always after the final epoch (0: after every epoch). A killed run redoes at most this much.
  config.checkpoint_every_secs = 60.0
  # Wall-clock budget: training stops at the first epoch end this many seconds after the run
  # started (0 = none); the best validated parameters are then tested as after any last epoch.
  # Not part of the checkpoint fingerprint: rerunning the workdir trains on from where it stopped.
  config.time_limit_secs = 0.0
  config.eval = ml_collections.ConfigDict(
    dict(
      cutoffs=(1, 5, 10, 20),
      tie_mode='conservative',  # conservative | optimistic | median
      exclude_seen=False,  # rank only items the user has not interacted with (target excepted)
      sampled_n=0,  # > 0: also rank each target among this many sampled negatives
      sampled_kind='uniform',  # uniform | popularity
      sampled_seed=0,
      every_epochs=1,  # validate every this many epochs (and after the last one)
      user_block=256,  # users scored at once (bounds memory: user_block x (N+1) scores)
    )
  )
  # Validation metric key (e.g. 'ndcg@10' or 'sampled100_uniform/ndcg@10') and patience in
  # validations without improvement (0 = train all n_epochs; the best validation is tested).
  config.early_stopping = ml_collections.ConfigDict(dict(metric='ndcg@10', patience=0))
  for name in SEQUENCE_MODELS:
    config[name] = sequence_model_config(name)
  return config
