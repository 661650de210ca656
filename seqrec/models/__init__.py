"""Model registry: builds a model from the config and the dataset's item count."""

from flax import nnx

from seqrec.models.gru4rec import GRU4Rec
from seqrec.models.hrnn import HRNN


def build_gru4rec(config, n_items: int, rngs: nnx.Rngs) -> GRU4Rec:
  return GRU4Rec(
    n_items,
    layers=tuple(config.layers),
    embedding=int(config.embedding),
    constrained_embedding=bool(config.constrained_embedding),
    dropout_p_embed=float(config.dropout_p_embed),
    dropout_p_hidden=float(config.dropout_p_hidden),
    rngs=rngs,
  )


def build_hrnn(config, n_items: int, rngs: nnx.Rngs) -> HRNN:
  return HRNN(
    n_items,
    layers=tuple(config.layers),
    user_units=int(config.user_units),
    user_propagation_mode=config.user_propagation_mode,
    embedding=int(config.embedding),
    constrained_embedding=bool(config.constrained_embedding),
    dropout_p_embed=float(config.dropout_p_embed),
    dropout_p_hidden=float(config.dropout_p_hidden),
    dropout_p_user=float(config.dropout_p_user),
    dropout_p_init=float(config.dropout_p_init),
    rngs=rngs,
  )


MODELS = {'gru4rec': build_gru4rec, 'hrnn': build_hrnn}


def build_model(config, n_items: int, seed: int):
  """Builds `config.model` for a catalogue of `n_items` items with parameters drawn from `seed`."""
  if config.model not in MODELS:
    raise ValueError(
      f'--config.model={config.model!r} is not a model; choose from {sorted(MODELS)}'
    )
  return MODELS[config.model](config, n_items, nnx.Rngs(params=seed))
