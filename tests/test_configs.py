"""Every config file loads the way `seqrec.main` loads it, validates, and documents its launch."""

import ast
import dataclasses
import pathlib
import re

import pytest
from absl import flags
from ml_collections import config_flags

from seqrec import baselines, evaluation, losses, seq_train, train, train_step
from seqrec.configs import gru4rec_base
from seqrec.data import FORMATS, DataOptions
from seqrec.data.user_sequences import SequenceDataOptions, default_sequence_data_config
from seqrec.data.user_sessions import USER_FORMATS, UserDataOptions
from seqrec.models import MODELS, build_model
from seqrec.models.sequential import SEQUENCE_MODELS

CONFIG_DIR = pathlib.Path(gru4rec_base.__file__).parent
CONFIG_FILES = sorted(p for p in CONFIG_DIR.glob('*.py') if p.name != '__init__.py')
METRICS = ('recall', 'mrr', 'ndcg')

# ml_collections loads config files with the deprecated importlib `load_module`.
pytestmark = pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')


def load_config(path: pathlib.Path, *overrides: str):
  """Loads `path` with `config_flags.DEFINE_config_file`, locked, as the command line does."""
  argv = ['seqrec.main', f'--config={path}', *overrides]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    'config', flag_values=flag_values, lock_config=True, sys_argv=argv
  )
  flag_values(argv)
  return flag_values.config


def has_field(config, dotted: str) -> bool:
  node = config
  for name in dotted.split('.'):
    if name not in node:
      return False
    node = node[name]
  return True


def test_every_config_file_is_found():
  names = {p.name for p in CONFIG_FILES}
  assert {'default.py', 'test.py', 'gru4rec_base.py', 'gru4rec_rsc15_100k.py'} <= names


def is_sequence(config) -> bool:
  return config.model in SEQUENCE_MODELS


def is_baseline(config) -> bool:
  return config.model in baselines.BASELINES


@pytest.mark.parametrize('path', CONFIG_FILES, ids=lambda p: p.stem)
def test_config_loads_and_validates(path):
  config = load_config(path)
  assert config.is_locked
  if is_sequence(config):  # SASRec & co. have their own data options, fields and checks
    assert set(config.data.keys()) <= set(default_sequence_data_config().keys())
    SequenceDataOptions.from_config(config.data)
    seq_train.validate_sequence_config(config)
    return
  assert config.model in MODELS or is_baseline(config)
  assert config.eval.tie_mode in evaluation.MODES
  # Every data field is one the loader reads (others would be silently ignored), and valid.
  options = UserDataOptions if config.data.format in USER_FORMATS else DataOptions
  assert config.data.format in FORMATS + USER_FORMATS
  known = {f.name for f in dataclasses.fields(options)}
  assert set(config.data.keys()) <= known, set(config.data.keys()) - known
  options.from_config(config.data)
  train.validate_config(config)

  if is_baseline(config):
    # Every baseline's hyperparameters are present and accepted, whichever --config.model picks.
    assert set(config.baseline.keys()) == set(baselines.BASELINES)
    for name in baselines.BASELINES:
      baselines.build_baseline(name, config.baseline[name], seed=int(config.seed))
    assert isinstance(config.eval.batch_size, int) and config.eval.batch_size > 0
    assert config.eval.cutoffs and all(isinstance(k, int) and k > 0 for k in config.eval.cutoffs)
    return

  assert config.loss in losses.LOSSES

  assert isinstance(config.layers, tuple) and config.layers
  assert all(isinstance(u, int) and u > 0 for u in config.layers)
  for name in ('batch_size', 'n_epochs', 'steps_per_call', 'scan_unroll'):
    assert isinstance(config[name], int) and config[name] > 0, name
  assert config.n_sample >= -1
  assert 0.0 <= config.dropout_p_embed < 1.0 and 0.0 <= config.dropout_p_hidden < 1.0
  assert config.learning_rate > 0 and 0.0 <= config.momentum < 1.0
  assert config.checkpoint_every_secs >= 0
  for name in ('batch_size', 'item_chunk', 'steps_per_call'):
    assert isinstance(config.eval[name], int) and config.eval[name] > 0, name
  cutoffs = tuple(config.eval.cutoffs)
  assert cutoffs and all(isinstance(k, int) and k > 0 for k in cutoffs)

  # Early stopping reads `valid/<metric>` from the evaluation's keys: it must be one of them.
  metric, _, k = config.early_stopping.metric.partition('@')
  assert metric in METRICS and k.isdigit() and int(k) in cutoffs
  assert config.early_stopping.patience >= 0

  # Everything the training step and the model read is present and well-typed.
  train_step.step_config(config)
  build_model(config, n_items=7, seed=0)


@pytest.mark.parametrize('path', CONFIG_FILES, ids=lambda p: p.stem)
def test_config_accepts_command_line_overrides(path):
  if is_sequence(load_config(path)):
    model = load_config(path).model
    config = load_config(
      path, '--config.n_epochs=1', '--config.data.synthetic_seed=3', '--config.seed=4'
    )
    assert (config.n_epochs, config.data.synthetic_seed, config.seed) == (1, 3, 4)
    field = sorted(config[model].keys())[0]  # e.g. sasrec.dropout, caser.L, transrec.dim
    value = type(config[model][field])(7)
    config = load_config(path, f'--config.{model}.{field}={value}')
    assert config[model][field] == value
    return
  if is_baseline(load_config(path)):
    config = load_config(
      path, '--config.model=vsknn', '--config.data.seed=3', '--config.baseline.vsknn.k=7'
    )
    assert (config.model, config.data.seed, config.baseline.vsknn.k) == ('vsknn', 3, 7)
    return
  config = load_config(path, '--config.n_epochs=1', '--config.data.seed=3', '--config.layers=(8,)')
  assert (config.n_epochs, config.data.seed, config.layers) == (1, 3, (8,))


# gru4rec_base.py is the shared library module behind the recipes, not a recipe of its own.
RECIPES = [p for p in CONFIG_FILES if p.name != 'gru4rec_base.py']


@pytest.mark.parametrize('path', RECIPES, ids=lambda p: p.stem)
def test_docstring_holds_the_launch_command(path):
  doc = ast.get_docstring(ast.parse(path.read_text()))
  assert doc and doc.splitlines()[0].strip()
  assert 'python -m seqrec.main' in doc
  assert f'--config=seqrec/configs/{path.name}' in doc
  assert '--workdir=' in doc
  # Fields the docstring tells users to override must exist.
  config = load_config(path)
  for dotted in re.findall(r'--config\.([\w.]+)=', doc):
    assert has_field(config, dotted), f'{path.name} documents --config.{dotted}, not a field'


def test_official_params_are_config_fields():
  config = gru4rec_base.get_config()
  assert all(name in config for name in gru4rec_base.OFFICIAL_PARAMS)


def test_apply_official_copies_params_and_turns_lists_into_tuples():
  config = gru4rec_base.apply_official(
    gru4rec_base.get_config(), {'layers': [32, 16], 'loss': 'bpr-max', 'n_epochs': 3}
  )
  assert (config.layers, config.loss, config.n_epochs) == ((32, 16), 'bpr-max', 3)


def test_apply_official_rejects_unknown_keys():
  config = gru4rec_base.get_config()
  with pytest.raises(KeyError, match='hidden_size'):
    gru4rec_base.apply_official(config, {'layers': [8], 'hidden_size': 100})


@pytest.mark.parametrize(
  'field, value, message',
  [
    ('loss', 'xe', 'cross-entropy'),
    ('layers', (), 'non-empty'),
    ('batch_size', 0, 'positive'),
    ('dropout_p_hidden', 1.0, 'probability'),
    ('n_sample', -2, 'full softmax'),
    ('embedding', -3, 'no separate embedding'),
    ('elu_param', -1.0, 'no ELU'),
    ('bpreg', -0.5, 'non-negative'),
    ('logq', -1.0, 'non-negative'),
    ('final_act', 'relu', "one of \\('linear', 'tanh'\\)"),
    ('final_act', 'tanh', 'goes with loss bpr or top1'),  # test.py's loss is cross-entropy
    ('eval.tie_mode', 'random', 'conservative'),
    ('early_stopping.metric', 'recall@10', 'recall@20'),
    ('checkpoint_every_secs', -1.0, 'non-negative'),
    ('time_limit_secs', -1.0, 'non-negative'),
  ],
)
def test_validate_config_names_the_flag(field, value, message):
  from seqrec.configs import test as test_config
  from seqrec.train import ConfigError, validate_config

  config = test_config.get_config()
  node, key = config, field
  if '.' in field:
    group, key = field.split('.')
    node = config[group]
  node[key] = value
  with pytest.raises(ConfigError, match=f'--config.{field}=.*{message}'):
    validate_config(config)
  validate_config(test_config.get_config())  # the unmodified config is fine


def test_hrnn_configs_carry_hgru4rec_settings_per_variant():
  from seqrec.configs import hrnn_base, hrnn_ml100k, hrnn_ml100k_large

  small_all = hrnn_ml100k.get_config('all')
  assert small_all.user_propagation_mode == 'all'
  assert (small_all.batch_size, small_all.momentum, small_all.dropout_p_init) == (100, 0.2, 0.2)
  large_all = hrnn_ml100k_large.get_config('all')
  assert large_all.layers == (500,) and large_all.user_units == 500
  assert (large_all.learning_rate, large_all.batch_size, large_all.momentum) == (0.05, 50, 0.3)
  assert large_all.dropout_p_embed == large_all.dropout_p_hidden == 0.2
  init = hrnn_ml100k.get_config()
  assert init.user_propagation_mode == 'init' and init.batch_size == 50
  assert (init.loss, init.final_act, init.constrained_embedding) == ('top1', 'tanh', False)
  assert init.data.name == large_all.data.name == 'ml100k-30min'
  with pytest.raises(ValueError, match="'both': expected 'init' or 'all'"):
    hrnn_base.get_config('both')
