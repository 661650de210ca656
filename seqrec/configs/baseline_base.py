"""Classic baselines (POP, S-POP, Item-KNN, SKNN, V-SKNN, BPR-MF) on the built-in synthetic sessions.

The baseline is picked with `--config.model` and its hyperparameters are
`config.baseline.<model>.<field>`; the defaults are those of the code each baseline comes from
(GRU4Rec's baselines.py, session-rec's knn; see seqrec/baselines). Seconds on 2 CPU cores.

    python -m seqrec.main --config=seqrec/configs/baseline_base.py --config.model=sknn \
      --workdir=runs/sknn_synthetic

Measured on the synthetic test sessions of configs/default.py (Recall@20 / MRR@20, conservative
ties; 2 CPU cores, each < 5 s): pop 0.122 / 0.033, spop 0.109 / 0.019 (the Markov chain rarely
repeats items), itemknn 0.769 / 0.386 (the chain is first-order, Item-KNN's home ground), sknn
0.535 / 0.118, vsknn 0.703 / 0.170, bprmf 0.172 / 0.044; GRU4Rec (default.py) ~0.81 / ~0.51.
"""

import ml_collections

from seqrec.configs import gru4rec_base


def baseline_params() -> ml_collections.ConfigDict:
  """Every baseline's hyperparameters, by model name (the constructor arguments)."""
  return ml_collections.ConfigDict(
    dict(
      pop={},
      spop={},
      itemknn=dict(n_sims=100, lmbd=20.0, alpha=0.5),
      sknn=dict(k=100, sample_size=1000, similarity='cosine'),
      vsknn=dict(
        k=100, sample_size=1000, weighting='div', weighting_score='div', idf_weighting=0.0
      ),
      bprmf=dict(
        n_factors=100,
        n_iterations=10,
        learning_rate=0.01,
        lambda_session=0.0,
        lambda_item=0.0,
        sigma=0.05,
        init_normal=False,
        batch_size=32,
      ),
    )
  )


def get_config() -> ml_collections.ConfigDict:
  """A baseline run on the synthetic sessions of `configs/default.py`."""
  config = ml_collections.ConfigDict()
  config.model = 'sknn'  # pop | spop | itemknn | sknn | vsknn | bprmf
  config.seed = 0  # BPR-MF's initialisation and sampling
  config.data = gru4rec_base.data_config(
    format='synthetic', name='synthetic', synthetic_sessions=20000, synthetic_items=2000
  )
  config.eval = ml_collections.ConfigDict(
    dict(
      cutoffs=(20,),
      tie_mode='conservative',  # conservative | optimistic | median
      batch_size=1024,  # predictions scored at once: batch_size x items scores in memory
    )
  )
  config.baseline = baseline_params()
  return config
