"""End-to-end tests of `seq_train.train_and_evaluate_sequences` on tiny synthetic sequences."""

import ast
import dataclasses
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from absl import flags
from flax import nnx
from ml_collections import config_flags

from seqrec import (
  analysis,
  checkpointing,
  comparison,
  seq_evaluation,
  seq_train,
  seq_train_step,
  sharding,
  train,
)
from seqrec.configs import sequence_base, sequence_test
from seqrec.data.errors import DataError
from seqrec.data.user_sequences import load_sequence_data
from seqrec.models.transrec import TransRec
from seqrec.train import ConfigError

# Run outputs that depend on wall-clock time, never compared between runs.
TIMING_KEYS = (
  'test_events_per_sec',
  'train_events_per_sec_median',
  'eval_seconds',
  'test_eval_seconds',
  'wall_seconds',
)
CONFIG_DIR = pathlib.Path(sequence_base.__file__).parent
RECIPES = ['sasrec_ml1m', 'sasrec_ce_ml1m', 'gsasrec_ml1m', 'bert4rec_ml1m', 'caser_ml1m']
RECIPES += ['transrec_ml1m']
pytestmark = pytest.mark.filterwarnings('ignore:the load_module:DeprecationWarning')


def small_config(**overrides):
  """`configs/sequence_test.py`, trained hard enough to beat popularity in a few epochs."""
  config = sequence_test.get_config()
  config.learning_rate = 1e-2
  config.n_epochs = 8
  for key, value in overrides.items():
    if isinstance(value, dict):
      config[key].update(value)
    else:
      config[key] = value
  return config


def comparable(result: dict) -> dict:
  return {k: v for k, v in result.items() if k not in TIMING_KEYS}


def read_metrics(workdir) -> list[dict]:
  with open(pathlib.Path(workdir) / 'metrics.jsonl') as f:
    return [json.loads(line) for line in f]


def epoch_lines(records):
  return [r for r in records if 'train_loss' in r]


@dataclasses.dataclass(frozen=True)
class Run:
  workdir: pathlib.Path
  result: dict


@pytest.fixture(scope='module')
def reference(tmp_path_factory) -> Run:
  """One uninterrupted SASRec run of `small_config()`."""
  workdir = tmp_path_factory.mktemp('sasrec_reference')
  return Run(workdir, seq_train.train_and_evaluate_sequences(small_config(), str(workdir)))


def test_sasrec_beats_popularity(reference):
  test, pop = reference.result['test'], reference.result['popularity_test']
  assert test['count'] == pop['count'] > 250
  # Observed (seed 0): NDCG@10 0.27 vs 0.16, Recall@10 0.54 vs 0.34.
  assert test['ndcg@10'] >= 1.4 * pop['ndcg@10']
  assert test['recall@10'] >= 1.3 * pop['recall@10']


def test_run_outputs(reference):
  workdir, result = reference.workdir, reference.result
  with open(workdir / 'final_metrics.json') as f:
    assert json.load(f) == result
  assert result['epochs'] == 8 and 1 <= result['best_epoch'] <= 8
  assert all(result[k] > 0 for k in TIMING_KEYS)
  names = {f'{m}@{k}' for m in ('recall', 'mrr', 'ndcg') for k in (1, 5, 10, 20)}
  for metrics in (result['test'], result['popularity_test']):
    assert set(metrics) == names | {'count'}
    assert 0.0 < metrics['mrr@10'] <= metrics['ndcg@10'] <= metrics['recall@10'] <= 1.0
  records = read_metrics(workdir)
  epochs = epoch_lines(records)
  assert [r['epoch'] for r in epochs] == list(range(1, 9))
  assert all('valid/ndcg@10' in r and r['train_positions_per_sec'] > 0 for r in epochs)
  assert epochs[-1]['train_loss'] < epochs[0]['train_loss']
  final = records[-1]
  assert {k[len('test/') :]: v for k, v in final.items() if k.startswith('test/')} == result['test']
  assert list((workdir / 'tensorboard').glob('events.out.tfevents.*'))
  with open(workdir / 'config.json') as f:
    assert json.load(f)['model'] == 'sasrec'
  ids = np.load(workdir / 'ids.npz')
  assert len(ids['item_ids']) == 81 and len(ids['user_ids']) == 300  # raw ids of dense ids
  # Every test prediction's rank, keyed by raw user id: the means are the reported metrics.
  saved = comparison.load_test_ranks(str(workdir))
  assert saved.ranks.shape == (result['test']['count'],) and saved.sampled_ranks is None
  assert np.all(np.isin(saved.keys, ids['user_ids']))
  assert len(np.unique(saved.keys)) == len(saved.keys)
  assert np.all(np.isin(saved.targets, ids['item_ids'][1:]))
  assert (saved.tie_mode, saved.exclude_seen) == ('conservative', False)
  data = load_sequence_data(small_config().data)
  user_row = {raw: u for u, raw in enumerate(ids['user_ids'].tolist())}
  dense_item = {raw: i for i, raw in enumerate(ids['item_ids'].tolist()) if i > 0}
  rows = [user_row[raw] for raw in saved.keys.tolist()]
  np.testing.assert_array_equal(saved.history_length, np.diff(data.test_history.offsets)[rows])
  dense_targets = [dense_item[raw] for raw in saved.targets.tolist()]
  np.testing.assert_array_equal(saved.target_count, data.item_counts[dense_targets])
  for metric in names:
    mean = comparison.per_prediction(saved.ranks, metric).mean()
    assert mean == pytest.approx(result['test'][metric], rel=1e-5, abs=1e-7)


def test_best_checkpoint_gives_the_test_metrics(reference):
  """The tested parameters are the best validation epoch's, restorable from `best`."""
  config = small_config()
  epochs = epoch_lines(read_metrics(reference.workdir))
  best = max(epochs, key=lambda r: r['valid/ndcg@10'])
  assert reference.result['best_epoch'] == best['epoch']
  data = load_sequence_data(config.data)
  model = seq_train.build_model(config, data.n_items, data.n_users)
  graphdef, params, others = nnx.split(model, nnx.Param, ...)
  ckpts = checkpointing.RunCheckpoints(str(reference.workdir))
  try:
    assert ckpts.latest_step('best') == best['step']
    params, _ = ckpts.restore('best', params)
  finally:
    ckpts.close()
  split = seq_train.eval_split(data, 'test', config.sasrec.max_len)
  metrics = seq_train.evaluate(nnx.merge(graphdef, params, others), split, config, data.item_counts)
  assert metrics == reference.result['test']


def test_same_config_and_seed_give_identical_numbers(reference, tmp_path):
  result = seq_train.train_and_evaluate_sequences(small_config(), str(tmp_path))
  assert comparable(result) == comparable(reference.result)
  lines = [{k: v for k, v in r.items() if 'sec' not in k} for r in read_metrics(tmp_path)]
  ref_lines = [
    {k: v for k, v in r.items() if 'sec' not in k} for r in read_metrics(reference.workdir)
  ]
  assert lines == ref_lines


def test_resume_after_finished_epochs_matches_the_uninterrupted_run(reference, tmp_path):
  first = seq_train.train_and_evaluate_sequences(small_config(n_epochs=2), str(tmp_path))
  assert first['epochs'] == 2
  resumed = seq_train.train_and_evaluate_sequences(small_config(), str(tmp_path))
  epochs = epoch_lines(read_metrics(tmp_path))
  assert [r['epoch'] for r in epochs] == list(range(1, 9))  # not restarted
  assert comparable(resumed) == comparable(reference.result)


@pytest.mark.parametrize('model', ['bert4rec', 'caser', 'transrec'])
def test_every_model_resumes_to_the_uninterrupted_numbers(model, tmp_path):
  """The other models' own randomness (BERT4Rec's masks, Caser's windows and dropout, TransRec's
  negatives) continues after a resume exactly as in one uninterrupted run."""
  straight = seq_train.train_and_evaluate_sequences(
    small_config(model=model, n_epochs=4), str(tmp_path / 'straight')
  )
  seq_train.train_and_evaluate_sequences(
    small_config(model=model, n_epochs=2), str(tmp_path / 'resumed')
  )
  resumed = seq_train.train_and_evaluate_sequences(
    small_config(model=model, n_epochs=4), str(tmp_path / 'resumed')
  )
  assert comparable(resumed) == comparable(straight)
  lines = [
    [{k: v for k, v in r.items() if 'sec' not in k} for r in epoch_lines(read_metrics(d))]
    for d in (tmp_path / 'straight', tmp_path / 'resumed')
  ]
  assert lines[0] == lines[1] and [r['epoch'] for r in lines[0]] == [1, 2, 3, 4]


def test_time_limit_stops_at_an_epoch_end_and_the_workdir_trains_on(reference, tmp_path):
  """A spent time budget ends training after the epoch running out of it, tests the best
  validated parameters, and leaves a workdir that trains on to the uninterrupted numbers."""
  first = seq_train.train_and_evaluate_sequences(small_config(time_limit_secs=1e-6), str(tmp_path))
  assert (first['epochs'], first['time_limited']) == (1, True)
  assert 0 < first['test']['count'] and 'ndcg@10' in first['test']
  assert reference.result['time_limited'] is False
  resumed = seq_train.train_and_evaluate_sequences(small_config(), str(tmp_path))
  assert [r['epoch'] for r in epoch_lines(read_metrics(tmp_path))] == list(range(1, 9))
  assert comparable(resumed) == comparable(reference.result)


class Killed(Exception):
  """Stands in for a kill of the training process."""


@pytest.mark.parametrize('every_secs', [0.0, 3600.0])
def test_run_killed_mid_epoch_resumes_to_the_same_numbers(
  every_secs, reference, tmp_path, monkeypatch
):
  """Killed in epoch 3: it resumes after epoch 2 (a checkpoint per epoch) or from the start (no
  checkpoint written yet); either way the log holds each epoch once and the numbers agree."""
  make_real = seq_train_step.make_train_chunk

  def make_killing(*args, **kwargs):
    chunk_fn = make_real(*args, **kwargs)
    calls = [0]

    def killing_chunk(*chunk_args):
      calls[0] += 1
      if calls[0] == 9:  # in the third epoch (3 calls of 4 steps per epoch of 10 batches)
        raise Killed
      return chunk_fn(*chunk_args)

    return killing_chunk

  with monkeypatch.context() as patch:
    patch.setattr(seq_train_step, 'make_train_chunk', make_killing)
    with pytest.raises(Killed):
      seq_train.train_and_evaluate_sequences(
        small_config(checkpoint_every_secs=every_secs), str(tmp_path)
      )
  assert [r['epoch'] for r in epoch_lines(read_metrics(tmp_path))] == [1, 2]
  ckpts = checkpointing.RunCheckpoints(str(tmp_path))
  try:
    assert ckpts.latest_step('latest') == (24 if every_secs == 0 else None)  # 12 steps/epoch
  finally:
    ckpts.close()
  resumed = seq_train.train_and_evaluate_sequences(small_config(), str(tmp_path))
  assert [r['epoch'] for r in epoch_lines(read_metrics(tmp_path))] == list(range(1, 9))
  assert comparable(resumed) == comparable(reference.result)


def test_checkpoint_of_another_run_is_refused(reference, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(reference.workdir, workdir)
  before = sorted(p.name for p in workdir.rglob('*'))
  with pytest.raises(checkpointing.CheckpointMismatchError, match='different run'):
    seq_train.train_and_evaluate_sequences(small_config(sasrec={'hidden': 8}), str(workdir))
  assert sorted(p.name for p in workdir.rglob('*')) == before  # nothing written
  assert (workdir / 'final_metrics.json').read_text() == (
    reference.workdir / 'final_metrics.json'
  ).read_text()


def test_rerun_with_another_seed_is_refused(reference, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(reference.workdir, workdir)
  with pytest.raises(checkpointing.CheckpointMismatchError, match='--config.seed=1'):
    seq_train.train_and_evaluate_sequences(small_config(seed=1), str(workdir))
  assert (workdir / 'config.json').read_text() == (reference.workdir / 'config.json').read_text()


def test_options_added_later_keep_older_checkpoints_resumable():
  data = load_sequence_data(small_config().data)
  old = small_config()
  for option in ('separate_output_embedding', 'init'):
    del old.sasrec[option]  # a config from before the option existed
  assert seq_train.fingerprint(old, data) == seq_train.fingerprint(small_config(), data)
  other = seq_train.fingerprint(small_config(sasrec={'init': 'torch'}), data)
  assert other != seq_train.fingerprint(old, data)


@pytest.mark.parametrize('model', ['bert4rec', 'caser', 'transrec'])
def test_every_model_trains_and_evaluates(model, tmp_path):
  config = small_config(model=model, n_epochs=2)
  result = seq_train.train_and_evaluate_sequences(config, str(tmp_path))
  assert result['epochs'] == 2
  assert result['test']['count'] == result['popularity_test']['count'] > 250
  assert 0.0 < result['test']['ndcg@10'] <= result['test']['recall@10'] <= 1.0
  losses = [r['train_loss'] for r in epoch_lines(read_metrics(tmp_path))]
  assert all(np.isfinite(losses)) and losses[-1] < losses[0]


@pytest.mark.parametrize(
  'overrides',
  [
    dict(loss='gbce', n_negatives=16, negatives_exclude_seen=False),
    dict(loss='sampled_ce', n_negatives=8),
    dict(loss='ce', eval={'exclude_seen': True, 'sampled_n': 20, 'sampled_kind': 'popularity'}),
  ],
  ids=['gbce', 'sampled_ce', 'ce_sampled_eval'],
)
def test_other_losses_and_evaluation_options(overrides, tmp_path):
  config = small_config(n_epochs=2, **overrides)
  result = seq_train.train_and_evaluate_sequences(config, str(tmp_path))
  assert np.isfinite(result['test']['ndcg@10'])
  if config.eval.sampled_n:
    key = f'{seq_evaluation.sampled_prefix(20, "popularity")}/ndcg@10'
    assert key in result['test'] and key in result['popularity_test']
    assert result['test'][key] >= result['test']['ndcg@10']  # 20 negatives are easier than all
    saved = comparison.load_test_ranks(str(tmp_path))
    assert saved.sampled_protocol == 'sampled20_popularity_seed0'
    sampled_ndcg = comparison.per_prediction(saved.sampled_ranks, 'ndcg@10').mean()
    assert sampled_ndcg == pytest.approx(result['test'][key], rel=1e-5)


def test_early_stopping_replays_from_the_logged_validation(tmp_path):
  config = small_config(n_epochs=40, learning_rate=0.05, early_stopping={'patience': 2})
  config.eval.every_epochs = 2
  result = seq_train.train_and_evaluate_sequences(config, str(tmp_path))
  evaluated = [r for r in epoch_lines(read_metrics(tmp_path)) if 'valid/ndcg@10' in r]
  assert [r['epoch'] for r in evaluated] == list(range(2, result['epochs'] + 1, 2))
  best, best_epoch, bad, stopped = -1.0, -1, 0, None
  for r in evaluated:
    if r['valid/ndcg@10'] > best:
      best, best_epoch, bad = r['valid/ndcg@10'], r['epoch'], 0
    else:
      bad += 1
      if bad >= 2:
        stopped = r['epoch']
        break
  assert stopped is not None and result['epochs'] == stopped < 40
  assert result['best_epoch'] == best_epoch
  # Run again in the same workdir: the stopped run stays stopped and tests the same parameters.
  again = seq_train.train_and_evaluate_sequences(config, str(tmp_path))
  assert comparable(again) == comparable(result)
  assert len(epoch_lines(read_metrics(tmp_path))) == len(evaluated) * 2
  # With a larger patience the same workdir trains on from where it stopped.
  config.early_stopping.patience = 1000
  config.n_epochs = result['epochs'] + 4
  longer = seq_train.train_and_evaluate_sequences(config, str(tmp_path))
  assert longer['epochs'] == result['epochs'] + 4
  epochs = [r['epoch'] for r in epoch_lines(read_metrics(tmp_path))]
  assert epochs == list(range(1, result['epochs'] + 5))


def _tiny_examples():
  """Four identical SASRec rows over 20 items: inputs 1 2 3 -> targets 2 3 4."""
  return {
    'inputs': jnp.array([[0, 1, 2, 3]] * 4, jnp.int32),
    'targets': jnp.array([[0, 2, 3, 4]] * 4, jnp.int32),
    'users': jnp.arange(4, dtype=jnp.int32),
  }


def test_loss_scale_scales_the_gradient_not_the_reported_loss():
  config = small_config(loss='gbce', n_negatives=4, negatives_exclude_seen=False)
  model = seq_train.build_model(config, n_items=20, n_users=4)
  graphdef = nnx.split(model, nnx.Param, ...)[0]
  cfg = seq_train_step.step_config(config, n_items=20)
  examples = _tiny_examples()
  idx, ok = jnp.arange(4, dtype=jnp.int32), jnp.ones(4, bool)
  # Plain SGD shows the factor exactly: SGD at rate 257 on the objective scaled by 1/257 takes
  # the same step as SGD at rate 1 on the unscaled one.
  steps = []
  for scale, rate in ((1.0, 1.0), (1.0 / 257, 257.0)):
    sgd = optax.sgd(rate)
    state = seq_train_step.init_state(model, sgd, seed=0)
    loss_fn = seq_train_step.make_loss(cfg, 20)
    update = jax.jit(seq_train_step.make_update_fn(graphdef, loss_fn, sgd, scale))
    steps.append(update(state, examples, idx, ok))
  (full, stats_full), (small, stats_small) = steps
  np.testing.assert_array_equal(stats_full, stats_small)  # the reported loss is unscaled
  for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(small.params), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  gsasrec = load_config(CONFIG_DIR / 'gsasrec_ml1m.py')
  assert seq_train_step.step_config(gsasrec, 3416).loss_scale == pytest.approx(1 / 257)


def test_padded_steps_change_nothing():
  config = small_config()
  model = seq_train.build_model(config, n_items=20, n_users=4)
  graphdef = nnx.split(model, nnx.Param, ...)[0]
  cfg = seq_train_step.step_config(config, n_items=20)
  tx = seq_train_step.make_optimizer(cfg)
  state = seq_train_step.init_state(model, tx, seed=0)
  update = jax.jit(seq_train_step.make_update_fn(graphdef, seq_train_step.make_loss(cfg, 20), tx))
  examples = _tiny_examples()
  idx = jnp.arange(4, dtype=jnp.int32)
  idle, stats = update(state, examples, idx, jnp.zeros(4, bool))
  assert int(idle.step) == 1 and float(stats[1]) == 0.0
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), idle.params, state.params)
  assert all(jax.tree.leaves(same))
  moved, stats = update(state, examples, idx, jnp.array([True, False, False, False]))
  assert float(stats[1]) == 3.0  # the one valid row's target positions (pad targets excluded)
  diff = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), moved.params, state.params)
  assert not all(jax.tree.leaves(diff))


@pytest.mark.parametrize('model_name', ['sasrec', 'bert4rec', 'caser', 'transrec'])
@pytest.mark.parametrize('loss', ['gbce', 'bce', 'sampled_ce'])
def test_catalog_scoring_of_negatives_equals_gathering_their_rows(model_name, loss):
  config = small_config(model=model_name, loss=loss, n_negatives=6)
  data = load_sequence_data(config.data)
  model = seq_train.build_model(config, data.n_items, data.n_users)
  graphdef, params, others = nnx.split(model, nnx.Param, ...)
  batch = {k: jnp.asarray(v[:8]) for k, v in seq_train.build_examples(config, data).items()}
  exclude = jnp.concatenate([batch['inputs'], batch.get('targets', batch['inputs'][:, :0])], 1)
  outputs = {}
  # 'chunked': the catalogue products over chunks of 5 positions, those without a target skipped.
  for scoring, chunk in (('gather', 0), ('catalog', 0), ('chunked', 5)):
    config.negative_scoring = 'gather' if scoring == 'gather' else 'catalog'
    config.negative_score_chunk = chunk
    cfg = seq_train_step.step_config(config, data.n_items)
    assert cfg.negative_scoring == config.negative_scoring and cfg.score_chunk == chunk
    loss_fn = seq_train_step.make_loss(cfg, data.n_items)

    def objective(p, loss_fn=loss_fn):
      m = nnx.merge(graphdef, p, others)
      h, targets = m.training_view(batch, jax.random.PRNGKey(1))
      total, n = loss_fn(m, h, targets, jax.random.PRNGKey(2), exclude)
      return total / n

    outputs[scoring] = jax.value_and_grad(objective)(params)
  value_g, grad_g = outputs['gather']
  for scoring in ('catalog', 'chunked'):
    value_c, grad_c = outputs[scoring]
    np.testing.assert_allclose(value_c, value_g, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(grad_c), jax.tree.leaves(grad_g), strict=True):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_auto_negative_scoring_picks_the_catalog_for_many_negatives():
  config = small_config(loss='gbce', n_negatives=256)
  assert seq_train_step.step_config(config, n_items=3416).negative_scoring == 'catalog'
  assert seq_train_step.step_config(config, n_items=100_000).negative_scoring == 'gather'
  config.n_negatives = 1
  assert seq_train_step.step_config(config, n_items=3416).negative_scoring == 'gather'


@pytest.mark.parametrize(
  'field, value, message',
  [
    ('model', 'gru4rec', 'sequence model'),
    ('loss', 'bpr-max', 'one of'),
    ('n_negatives', -1, 'count'),
    ('negative_reduction', 'max', 'one of'),
    ('negative_scoring', 'dense', 'one of'),
    ('negative_score_chunk', -1, 'non-negative'),
    ('loss_scale', 0.0, 'positive factor'),
    ('gbce_eps', 0.5, 'small probability'),
    ('learning_rate', 0.0, 'positive'),
    ('batch_size', 0, 'positive'),
    ('time_limit_secs', -1.0, 'non-negative'),
    ('num_devices', -1, 'number of devices'),
    ('eval.tie_mode', 'random', 'conservative'),
    ('eval.sampled_kind', 'zipf', 'uniform'),
    ('eval.every_epochs', 0, 'positive'),
    ('early_stopping.metric', 'ndcg@50', 'ndcg@10'),
    ('sasrec.dropout', 1.0, 'probability'),
    ('sasrec.max_len', 0, 'positive'),
    ('sasrec.n_heads', 3, 'multiple'),
    ('sasrec.init', 'jax', 'choose from'),
  ],
)
def test_config_errors_name_the_flag(field, value, message):
  config = small_config()
  node = config
  *groups, key = field.split('.')
  for group in groups:
    node = node[group]
  node[key] = value
  flag = field if field != 'sasrec.n_heads' else 'sasrec.hidden'  # the model names its field
  with pytest.raises(ConfigError, match=f'--config.{flag}.*{message}'):
    seq_train.validate_sequence_config(config)
  seq_train.validate_sequence_config(small_config())  # the unmodified config is fine


def test_a_mesh_request_is_checked_device_count_first():
  """The device count is judged before the batch it splits: asking for 3 of 2 devices names
  num_devices, not a batch size that no batch size would fix."""
  assert sharding.mesh_size(3, 15, n_visible=4) == 3
  assert sharding.mesh_size(0, 16, n_visible=4) == 4
  with pytest.raises(
    ValueError, match='--config.batch_size=16: .*multiple of --config.num_devices=3'
  ):
    sharding.mesh_size(3, 16, n_visible=4)
  with pytest.raises(ValueError, match='--config.num_devices=3: only 2 cpu device'):
    sharding.mesh_size(3, 16, n_visible=2, platform='cpu')
  with pytest.raises(ValueError, match='--config.num_devices=-1: expected 0'):
    sharding.mesh_size(-1, 16, n_visible=2)
  config = small_config(num_devices=len(jax.devices()) + 1)
  config.batch_size = 7 * (len(jax.devices()) + 1) + 1
  with pytest.raises(ConfigError, match='--config.num_devices=.*visible'):
    seq_train.validate_sequence_config(config)
  with pytest.raises(ConfigError, match='--config.num_devices=-1: expected 0'):
    seq_train.validate_sequence_config(small_config(num_devices=-1))


def test_asking_for_more_devices_than_exist_names_the_flag(tmp_path):
  config = small_config(num_devices=len(jax.devices()) + 1, batch_size=8 * (len(jax.devices()) + 1))
  with pytest.raises(ConfigError, match='--config.num_devices=.*visible'):
    seq_train.train_and_evaluate_sequences(config, str(tmp_path))


def test_sampled_metrics_need_a_catalogue_larger_than_the_sample(tmp_path):
  """100 negatives drawn with replacement from 80 items repeat, and the sampled rank can exceed
  the full-catalogue rank (a reviewer's run: sampled Recall@20 0.238 vs full 0.335)."""
  config = small_config()
  config.eval.sampled_n = 500
  with pytest.raises(ConfigError, match=r'--config.eval.sampled_n=500: expected fewer .* items'):
    seq_train.train_and_evaluate_sequences(config, str(tmp_path))


def test_negative_reduction_needs_a_loss_with_several_negatives():
  with pytest.raises(ConfigError, match='--config.negative_reduction'):
    seq_train.validate_sequence_config(small_config(loss='ce', negative_reduction='mean'))


def test_default_loss_takes_the_papers_negatives():
  config = small_config(model='caser')
  assert seq_train_step.resolve_loss(config) == ('bce', 3, {'negative_reduction': 'mean'})
  config.n_negatives = 5
  assert seq_train_step.resolve_loss(config)[1] == 5
  config.loss = 'sampled_ce'
  assert seq_train_step.resolve_loss(config) == ('sampled_ce', 5, {})


def load_config(path: pathlib.Path, *overrides: str):
  """Loads `path` as `seqrec.main` does (locked, with command-line overrides)."""
  argv = ['seqrec.main', f'--config={path}', *overrides]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    'config', flag_values=flag_values, lock_config=True, sys_argv=argv
  )
  flag_values(argv)
  return flag_values.config


@pytest.mark.parametrize('name', ['sequence_base', 'sequence_test', *RECIPES])
def test_sequence_configs_validate_and_document_their_launch(name):
  path = CONFIG_DIR / f'{name}.py'
  config = load_config(path, '--config.n_epochs=1', '--config.eval.user_block=64')
  assert config.is_locked and config.n_epochs == 1
  seq_train.validate_sequence_config(config)
  doc = ast.get_docstring(ast.parse(path.read_text()))
  assert f'python -m seqrec.main --config=seqrec/configs/{name}.py --workdir=' in doc
  if name.endswith('_ml1m'):
    assert 'ml1m_sasrec' in config.data.path
    assert 'Expected' in doc


@pytest.mark.shared_data
@pytest.mark.parametrize('name, valid_users', [('sasrec_ml1m', 6040), ('gsasrec_ml1m', 512)])
def test_ml1m_recipes_find_their_data(name, valid_users):
  config = load_config(CONFIG_DIR / f'{name}.py')
  root = pathlib.Path(__file__).resolve().parents[1]
  if not (root / config.data.path).exists():
    pytest.skip(f'{config.data.path} is not available')
  data = load_sequence_data(config.data)
  assert (data.n_users, data.n_items) == (6040, 3416)
  assert np.count_nonzero(data.test_target) == 6040
  assert np.count_nonzero(data.valid_target) == valid_users


def test_load_run_ranks_a_users_history_as_the_evaluator_does(reference):
  """`analysis.load_run` restores the best parameters; its scores rank like `rank_targets`."""
  config = small_config()
  run = analysis.load_run(str(reference.workdir), device='cpu')
  assert isinstance(run, analysis.SequenceRun)
  data = load_sequence_data(config.data)
  split = seq_train.eval_split(data, 'test', config.sasrec.max_len)
  model = run.model
  ranks, _, _ = seq_evaluation.rank_targets(model, split.history, split.users, split.targets)
  for user in range(5):
    items = run.item_ids[data.test_history.row(user)]
    scores = run.score_history(items.tolist(), user=run.user_ids[user].item())
    target = int(split.targets[user])
    assert np.sum(scores >= scores[target]) == ranks[user]  # conservative ties
    best = run.top_k(items.tolist(), k=3, exclude_seen=True)
    assert len(best) == 3 and not set(i for i, _ in best) & set(items.tolist())
  with pytest.raises(KeyError, match='not in the data'):
    run.top_k([10**9])
  # Never the padding row nor a seen item, however long the list; k is checked everywhere.
  items = run.item_ids[data.test_history.row(0)].tolist()
  listed = [i for i, _ in run.top_k(items, k=10**6, exclude_seen=True)]
  assert len(listed) == data.n_items - len(set(items)) and not set(listed) & set(items)
  assert run.item_ids[0].item() not in [i for i, _ in run.top_k(items, k=10**6)]
  with pytest.raises(ValueError, match='k=-1: expected a positive integer'):
    run.nearest_items(items[0], k=-1)
  with pytest.raises(TypeError, match='items: expected a list of item ids'):
    run.score_history('12')
  # The attention maps of a restored run: one per block, over the last max_len items.
  items = run.item_ids[data.test_history.row(0)].tolist()
  maps = run.attention(items)
  n = min(len(items), config.sasrec.max_len)
  assert maps.items == items[-n:]
  assert maps.probs.shape == (config.sasrec.n_blocks, config.sasrec.n_heads, n, n)
  # Neighbours by cosine in the output table, the item itself and the padding row left out.
  table = run.item_embeddings()
  assert table.shape == (data.n_items + 1, config.sasrec.hidden)
  item = run.item_ids[7].item()
  near = run.nearest_items(item, k=4)
  unit = table[1:] / np.linalg.norm(table[1:], axis=1, keepdims=True)
  cosines = unit @ unit[6]
  cosines[6] = -np.inf
  expected = np.argsort(-cosines, kind='stable')[:4] + 1
  assert [i for i, _ in near] == run.item_ids[expected].tolist()
  np.testing.assert_allclose([c for _, c in near], cosines[expected - 1], rtol=1e-5)


def test_load_run_refuses_an_ids_file_of_another_run(reference, tmp_path):
  """`ids.npz` maps rows to raw ids; one copied from another run (here: the same ids, users
  reordered) is refused by the digest the checkpoint keeps, one of another size by its sizes."""
  workdir = tmp_path / 'run'
  shutil.copytree(reference.workdir, workdir)
  ids = dict(np.load(workdir / 'ids.npz'))
  np.savez(workdir / 'ids.npz', item_ids=ids['item_ids'], user_ids=ids['user_ids'][::-1])
  with pytest.raises(checkpointing.CheckpointMismatchError, match='ids.npz does not belong'):
    analysis.load_run(str(workdir), device='cpu')
  np.savez(workdir / 'ids.npz', item_ids=ids['item_ids'][:-1], user_ids=ids['user_ids'])
  with pytest.raises(checkpointing.CheckpointMismatchError, match='n_items'):
    analysis.load_run(str(workdir), device='cpu')
  np.savez(workdir / 'ids.npz', **ids)
  assert analysis.load_run(str(workdir), device='cpu').item_ids.tolist() == ids['item_ids'].tolist()


def test_transrec_neighbours_are_the_nearest_points():
  """TransRec scores fall with distance, so its neighbours are by Euclidean distance, all of them
  (k above the catalogue) but the item itself, nearest first."""
  model = TransRec(5, 2, dim=3, rngs=nnx.Rngs(0))
  item_ids = np.array([0, 10, 11, 12, 13, 14])
  run = analysis.SequenceRun(
    model, ml_collections.ConfigDict({'model': 'transrec'}), item_ids, np.array([7, 8]), 'tiny'
  )
  points = np.asarray(model.points())  # [6, 3]
  near = run.nearest_items(12, k=10)
  distance = {int(item_ids[j]): float(np.linalg.norm(points[j] - points[3])) for j in (1, 2, 4, 5)}
  assert sorted(i for i, _ in near) == sorted(distance)
  np.testing.assert_allclose([d for _, d in near], [distance[i] for i, _ in near], rtol=1e-5)
  assert [d for _, d in near] == sorted(d for _, d in near)


def test_a_diverging_run_stops_instead_of_testing_nan_scores(tmp_path):
  with pytest.raises(train.TrainingDivergedError, match='learning_rate'):
    seq_train.train_and_evaluate_sequences(small_config(learning_rate=1e30), str(tmp_path))


@pytest.mark.parametrize('model', ['sasrec', 'transrec'])
def test_data_without_a_training_pair_is_named_before_training(model, tmp_path):
  path = tmp_path / 'short.txt'  # every user: 1 training item, then validation and test
  path.write_text('1 1\n1 2\n1 3\n2 2\n2 3\n2 1\n')
  data = {'format': 'user_item_lines', 'path': str(path), 'name': 'short', 'min_item_support': 1}
  config = small_config(model=model, data=data)
  with pytest.raises(DataError, match=r"short.txt'? \(short\): no training sequence"):
    seq_train.train_and_evaluate_sequences(config, str(tmp_path / 'run'))
