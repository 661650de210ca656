"""Shared fixtures of the end-to-end tests: a small CPU config and one trained run to share."""

import dataclasses
import functools
import importlib.util
import pathlib

import ml_collections
import pytest

from seqrec import train
from seqrec.configs import test as test_config


def small_config(**overrides) -> ml_collections.ConfigDict:
  """`configs/test.py` with a catalogue large enough that popularity is a weak baseline.

  300 items and 1,500 sessions train 3 epochs in about 3 s on 2 CPU cores (compilation included).

  Args:
    **overrides: top-level fields to replace; a dict value updates a sub-config (e.g. `data`).

  Returns:
    A fresh, unlocked config.
  """
  config = test_config.get_config()
  config.data.synthetic_sessions = 1500
  config.data.synthetic_items = 300
  config.learning_rate = 0.1
  config.n_epochs = 3
  for key, value in overrides.items():
    if isinstance(value, dict):
      config[key].update(value)
    else:
      config[key] = value
  return config


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  """A finished run of `small_config()`; tests must only read its workdir."""

  workdir: pathlib.Path
  config: ml_collections.ConfigDict
  result: dict


@pytest.fixture(scope='session')
def trained_run(tmp_path_factory) -> TrainedRun:
  """One uninterrupted 3-epoch run, the reference of the resume and analysis tests."""
  workdir = tmp_path_factory.mktemp('reference_run')
  config = small_config()
  result = train.train_and_evaluate(config, str(workdir))
  return TrainedRun(workdir=workdir, config=config, result=result)


@pytest.fixture(scope='session')
def make_config():
  """`small_config` for tests (conftest modules are not imported directly)."""
  return small_config


@functools.cache
def _load_experiment(name: str):
  """`experiments/<name>.py` as a module; once per session, since each script defines absl flags."""
  path = pathlib.Path(__file__).parents[1] / 'experiments' / f'{name}.py'
  spec = importlib.util.spec_from_file_location(f'experiments_{name}'.replace('/', '_'), path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope='session')
def experiment_script():
  """Loader of the `experiments/` scripts (not a package): `experiment_script('profile')`,
  `experiment_script('gsasrec_reference/compare')`."""
  return _load_experiment
