"""Classic session-based baselines (POP, S-POP, Item-KNN, SKNN, V-SKNN, BPR-MF): a registry."""

from __future__ import annotations

from collections.abc import Mapping

from seqrec.baselines.bprmf import BPRMF
from seqrec.baselines.itemknn import ItemKNN
from seqrec.baselines.params import ParamError
from seqrec.baselines.popularity import Pop, SessionPop
from seqrec.baselines.protocol import Baseline, Prefixes
from seqrec.baselines.sknn import SKNN, VSKNN

# name -> builder(hyperparameters, seed). Only BPR-MF draws random numbers.
BASELINES = {
  'pop': lambda params, seed: Pop(**params),
  'spop': lambda params, seed: SessionPop(**params),
  'itemknn': lambda params, seed: ItemKNN(**params),
  'sknn': lambda params, seed: SKNN(**params),
  'vsknn': lambda params, seed: VSKNN(**params),
  'bprmf': lambda params, seed: BPRMF(**params, seed=seed),
}


def build_baseline(name: str, params: Mapping | None = None, seed: int = 0) -> Baseline:
  """An unfitted baseline `name` with hyperparameters `params` (e.g. `config.baseline[name]`).

  Raises:
    ValueError: on an unknown name.
    ParamError: on a hyperparameter value that cannot work.
    TypeError: on a hyperparameter the baseline does not have.
  """
  if name not in BASELINES:
    raise ValueError(f'unknown baseline {name!r}; choose from {sorted(BASELINES)}')
  params = params.to_dict() if hasattr(params, 'to_dict') else dict(params or {})
  return BASELINES[name](params, int(seed))


def run(config, workdir: str) -> dict:
  """Fits and evaluates the baseline `config.model`; see `seqrec.baselines.runner.run`."""
  from seqrec.baselines import runner  # noqa: PLC0415 (runner imports seqrec.train)

  return runner.run(config, workdir)


__all__ = [
  'BASELINES',
  'BPRMF',
  'SKNN',
  'VSKNN',
  'Baseline',
  'ItemKNN',
  'ParamError',
  'Pop',
  'Prefixes',
  'SessionPop',
  'build_baseline',
  'run',
]
