"""End-to-end tests of `train.train_and_evaluate`: accuracy, determinism, checkpoints, resume."""

import json
import math
import os
import shutil
import signal

import numpy as np
import pytest

from seqrec import analysis, checkpointing, comparison, train, train_step
from seqrec.data import load_session_data

# Run outputs that depend on wall-clock time, never compared between runs.
TIMING_KEYS = ('test_events_per_sec', 'train_events_per_sec_median', 'wall_seconds')


class Interrupted(Exception):
  """Stands in for a kill of the training process."""


def interrupt_before(monkeypatch, config, epoch: int, chunk: int) -> None:
  """Makes the next run raise `Interrupted` just before chunk `chunk` of epoch `epoch` (0-based).

  Epochs are counted by the chunks that start at step 0, so this is meant for a run from scratch.
  """
  make_real = train_step.make_train_chunk
  steps_per_call = int(config.steps_per_call)

  def make_interrupting(*args, **kwargs):
    chunk_fn = make_real(*args, **kwargs)
    epochs_started = [-1]

    def interrupting_chunk(state, arrays, start):
      first_step = int(start)
      if first_step == 0:
        epochs_started[0] += 1
      if epochs_started[0] == epoch and first_step == chunk * steps_per_call:
        raise Interrupted(f'epoch {epoch} chunk {chunk}')
      return chunk_fn(state, arrays, start)

    return interrupting_chunk

  monkeypatch.setattr(train_step, 'make_train_chunk', make_interrupting)


def comparable(result: dict) -> dict:
  """A run's result without the wall-clock fields."""
  return {k: v for k, v in result.items() if k not in TIMING_KEYS}


def read_metrics(workdir) -> list[dict]:
  with open(workdir / 'metrics.jsonl') as f:
    return [json.loads(line) for line in f]


def epoch_lines(records: list[dict]) -> list[dict]:
  """The per-epoch lines of metrics.jsonl (the final line carries test/ metrics instead)."""
  return [r for r in records if 'train_loss' in r]


def latest_progress(workdir) -> dict:
  ckpts = checkpointing.RunCheckpoints(str(workdir))
  try:
    return ckpts.restore_meta('latest')['progress']
  finally:
    ckpts.close()


def test_beats_popularity_by_a_wide_margin(trained_run):
  test, pop = trained_run.result['test'], trained_run.result['popularity_test']
  assert test['count'] == pop['count'] > 300
  # Observed (seed 0): recall@20 0.66 vs 0.27, MRR@20 0.41 vs 0.063.
  assert test['recall@20'] >= 0.5
  assert test['recall@20'] >= 1.8 * pop['recall@20']
  assert test['mrr@20'] >= 3.0 * pop['mrr@20']


def test_run_saves_every_test_targets_rank_at_its_event_row(trained_run):
  data = load_session_data(trained_run.config.data)
  saved = comparison.load_test_ranks(str(trained_run.workdir))
  first_rows = data.test.session_offsets()[:-1]
  assert len(saved.keys) == trained_run.result['test']['count']
  assert not np.isin(saved.keys, first_rows).any()  # a session's first event is no target
  np.testing.assert_array_equal(saved.targets, data.vocab.decode(data.test.item[saved.keys]))
  starts = np.repeat(first_rows, np.diff(data.test.session_offsets()))
  np.testing.assert_array_equal(saved.history_length, saved.keys - starts[saved.keys])
  counts = np.bincount(train.training_events(data).item, minlength=data.n_items)
  np.testing.assert_array_equal(saved.target_count, counts[data.test.item[saved.keys]])
  for metric in ('recall@20', 'mrr@20'):
    mean = comparison.per_prediction(saved.ranks, metric).mean()
    assert mean == pytest.approx(trained_run.result['test'][metric], rel=1e-5), metric


def test_same_config_and_seed_give_identical_metrics(trained_run, make_config, tmp_path):
  result = train.train_and_evaluate(make_config(), str(tmp_path))
  assert comparable(result) == comparable(trained_run.result)


def test_restored_run_reproduces_final_test_metrics(trained_run):
  config = trained_run.config
  data = load_session_data(config.data)
  run = analysis.load_run(str(trained_run.workdir), device='cpu')
  metrics = train.evaluate(run.model, data.test, config)
  assert metrics == trained_run.result['test']


def test_resume_after_finished_epoch_is_bit_exact(trained_run, make_config, tmp_path):
  first = train.train_and_evaluate(make_config(n_epochs=1), str(tmp_path))
  assert first['epochs'] == 1
  resumed = train.train_and_evaluate(make_config(), str(tmp_path))
  assert [r['epoch'] for r in epoch_lines(read_metrics(tmp_path))] == [1, 2, 3]  # not restarted
  assert comparable(resumed) == comparable(trained_run.result)


def test_resume_from_mid_epoch_checkpoint_is_bit_exact(
  trained_run, make_config, tmp_path, monkeypatch
):
  config = make_config(checkpoint_every_secs=1e-9)  # a checkpoint after every chunk
  with monkeypatch.context() as patch:
    # Early in the first epoch (of 54 chunks): every checkpoint costs ~0.1 s.
    interrupt_before(patch, config, epoch=0, chunk=5)
    with pytest.raises(Interrupted):
      train.train_and_evaluate(config, str(tmp_path))
  progress = latest_progress(tmp_path)
  assert (progress['epoch'], progress['chunk']) == (0, 5)
  assert not (tmp_path / 'metrics.jsonl').exists()  # no epoch finished

  # Resumed with the reference's own config (the checkpoint interval is not part of the run).
  resumed = train.train_and_evaluate(make_config(), str(tmp_path))
  assert [r['epoch'] for r in epoch_lines(read_metrics(tmp_path))] == [1, 2, 3]
  assert comparable(resumed) == comparable(trained_run.result)
  # The cut epoch's loss covers its chunks from before the kill too (float32 sums, grouped
  # by when the progress bar reads them).
  losses = [
    {r['epoch']: r['train_loss'] for r in epoch_lines(read_metrics(d))}
    for d in (tmp_path, trained_run.workdir)
  ]
  assert losses[0] == pytest.approx(losses[1], rel=1e-6)


def test_epoch_logged_but_not_yet_checkpointed_is_logged_once_after_resume(
  trained_run, make_config, tmp_path, monkeypatch
):
  """A kill between epoch 2's metrics line and its checkpoint: the resumed run trains epoch 2
  again, and metrics.jsonl still has each epoch once, then one test line."""
  save = checkpointing.RunCheckpoints.save

  def killed_at_epoch_2s_checkpoint(self, kind, step, tree, meta):
    if kind == 'latest' and meta['progress']['epoch'] == 2:
      raise Interrupted
    return save(self, kind, step, tree, meta)

  with monkeypatch.context() as patch:
    patch.setattr(checkpointing.RunCheckpoints, 'save', killed_at_epoch_2s_checkpoint)
    with pytest.raises(Interrupted):
      train.train_and_evaluate(make_config(), str(tmp_path))
  assert [r['epoch'] for r in read_metrics(tmp_path)] == [1, 2]
  resumed = train.train_and_evaluate(make_config(), str(tmp_path))
  records = read_metrics(tmp_path)
  assert [r['epoch'] for r in epoch_lines(records)] == [1, 2, 3]
  assert len(records) == 4 and 'test/recall@20' in records[-1]
  assert comparable(resumed) == comparable(trained_run.result)


def test_ctrl_c_during_a_save_waits_for_a_complete_checkpoint(tmp_path, monkeypatch):
  """SIGINT arriving while orbax writes is raised once the write is done, not inside it."""
  ckpts = checkpointing.RunCheckpoints(str(tmp_path))
  manager = ckpts._managers['latest']
  real_save = manager.save

  def save_interrupted_halfway(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)  # handled between bytecodes, i.e. right here
    return real_save(*args, **kwargs)

  monkeypatch.setattr(manager, 'save', save_interrupted_halfway)
  # Python's own handler, also where this runs as a background job (which ignores SIGINT).
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  tree = {'w': np.arange(6, dtype=np.float32).reshape(2, 3)}
  try:
    with pytest.raises(KeyboardInterrupt):
      ckpts.save('latest', 7, tree, {'progress': {'epoch': 3}})
    restored, meta = ckpts.restore('latest', tree)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
  finally:
    ckpts.close()
    signal.signal(signal.SIGINT, previous)
  np.testing.assert_array_equal(restored['w'], tree['w'])
  assert meta == {'progress': {'epoch': 3}}
  assert checkpointing.resume_point(str(tmp_path)) == (
    'a rerun resumes after epoch 3 (its latest checkpoint)'
  )


def test_time_limit_stops_at_an_epoch_end_and_the_workdir_trains_on(
  trained_run, make_config, tmp_path
):
  """A spent time budget ends training after the epoch that ran out of it and still tests; the
  workdir then trains on to the uninterrupted run's numbers."""
  first = train.train_and_evaluate(make_config(time_limit_secs=1e-6), str(tmp_path))
  assert (first['epochs'], first['time_limited']) == (1, True)
  assert first['test']['count'] == trained_run.result['test']['count']
  assert trained_run.result['time_limited'] is False
  resumed = train.train_and_evaluate(make_config(), str(tmp_path))
  records = read_metrics(tmp_path)
  assert [r['epoch'] for r in epoch_lines(records)] == [1, 2, 3]
  assert len(records) == 4  # the time-limited run's test line made way for the resumed run's
  assert comparable(resumed) == comparable(trained_run.result)


def test_validation_early_stopping_tests_the_best_epoch(make_config, tmp_path):
  n_epochs = 30  # far more than the tiny validation set can reward: patience=1 must stop it
  config = make_config(n_epochs=n_epochs, data={'valid_days': 1.0}, early_stopping={'patience': 1})
  result = train.train_and_evaluate(config, str(tmp_path))

  records = read_metrics(tmp_path)
  epochs = epoch_lines(records)
  assert [r['epoch'] for r in epochs] == list(range(1, result['epochs'] + 1))
  assert all('valid/recall@20' in r and 'valid/mrr@20' in r for r in epochs)
  assert not any(k.startswith('test/') for r in epochs for k in r)

  # Replay the early-stopping rule on the logged validation scores.
  best, best_epoch, bad, stopped = -1.0, -1, 0, n_epochs
  for r in epochs:
    if r['valid/recall@20'] > best:
      best, best_epoch, bad = r['valid/recall@20'], r['epoch'], 0
    else:
      bad += 1
      if bad >= 1:
        stopped = r['epoch']
        break
  assert result['epochs'] == stopped < n_epochs
  assert result['best_epoch'] == best_epoch

  # The best checkpoint holds the best epoch's parameters, and those produced the test metrics.
  best_step = next(r['step'] for r in epochs if r['epoch'] == best_epoch)
  ckpts = checkpointing.RunCheckpoints(str(tmp_path))
  try:
    assert ckpts.latest_step('best') == best_step
    assert ckpts.latest_step('latest') == epochs[-1]['step']
  finally:
    ckpts.close()
  data = load_session_data(config.data)
  run = analysis.load_run(str(tmp_path), device='cpu')
  assert train.evaluate(run.model, data.test, config) == result['test']
  assert records[-1]['test/recall@20'] == result['test']['recall@20']
  # Re-running the command tests the stopped run again: no more training, the same numbers.
  again = train.train_and_evaluate(config, str(tmp_path))
  assert (again['epochs'], again['test']) == (result['epochs'], result['test'])
  assert read_metrics(tmp_path) == records


def test_run_outputs(trained_run):
  workdir, config, result = trained_run.workdir, trained_run.config, trained_run.result
  with open(workdir / 'final_metrics.json') as f:
    assert json.load(f) == result
  assert result['epochs'] == config.n_epochs
  assert result['best_epoch'] == -1  # no validation split
  assert set(result) >= {'test', 'popularity_test', *TIMING_KEYS}
  for metrics in (result['test'], result['popularity_test']):
    assert set(metrics) == {'recall@20', 'mrr@20', 'ndcg@20', 'count'}
    # One relevant item per prediction: MRR <= NDCG <= Recall.
    assert 0.0 < metrics['mrr@20'] <= metrics['ndcg@20'] <= metrics['recall@20'] <= 1.0
  assert all(result[k] > 0 for k in TIMING_KEYS)

  records = read_metrics(workdir)
  epochs = epoch_lines(records)
  assert [r['epoch'] for r in epochs] == [1, 2, 3]
  steps = [r['step'] for r in epochs]
  assert steps[0] > 0 and steps == [steps[0] * (i + 1) for i in range(3)]  # equal epochs
  assert all(math.isfinite(r['train_loss']) and r['train_loss'] > 0 for r in epochs)
  assert epochs[-1]['train_loss'] < epochs[0]['train_loss']
  final = records[-1]
  assert final['step'] == steps[-1] and final['epoch'] == 3
  assert {k[len('test/') :]: v for k, v in final.items() if k.startswith('test/')} == result['test']
  assert len(records) == 4

  with open(workdir / 'config.json') as f:
    assert json.load(f) == json.loads(config.to_json())
  vocab = np.load(workdir / 'item_vocab.npz')
  assert len(vocab[vocab.files[0]]) <= config.data.synthetic_items
  events = list((workdir / 'tensorboard').glob('events.out.tfevents.*'))
  assert events and all(f.stat().st_size > 0 for f in events)


@pytest.mark.parametrize(
  'key, value', [('seed', 1), ('loss', 'bpr-max'), ('learning_rate', 0.2), ('n_sample', 4)]
)
def test_rerun_with_other_training_settings_is_refused(
  trained_run, make_config, tmp_path, key, value
):
  """Settings the checkpoint's shapes do not reveal still make another run: resuming the workdir
  under them would silently report the old run's numbers as the new settings'."""
  workdir = tmp_path / 'run'
  shutil.copytree(trained_run.workdir, workdir)
  with pytest.raises(checkpointing.CheckpointMismatchError, match='different run') as info:
    train.train_and_evaluate(make_config(**{key: value}), str(workdir))
  assert f'--config.{key}={value!r}' in str(info.value)
  assert str(workdir) in str(info.value)
  assert (workdir / 'config.json').read_text() == (trained_run.workdir / 'config.json').read_text()


def test_config_changes_name_the_flags_a_rerun_may_not_change():
  saved = {'seed': 0, 'n_epochs': 3, 'eval': {'cutoffs': [20], 'batch_size': 64}, 'old': 1}
  current = {'seed': 2, 'n_epochs': 9, 'eval': {'cutoffs': [10, 20], 'batch_size': 8}, 'new': 1}
  assert checkpointing.config_changes(saved, current) == [
    "--config.eval.cutoffs=[10, 20] (the workdir's: [20])",
    "--config.seed=2 (the workdir's: 0)",
  ]
  assert checkpointing.config_changes(saved, saved) == []


@pytest.mark.parametrize(
  'overrides', [{'layers': (8,)}, {'data': {'synthetic_items': 250}}], ids=['layers', 'dataset']
)
def test_checkpoint_of_another_config_is_rejected(trained_run, make_config, tmp_path, overrides):
  workdir = tmp_path / 'run'
  shutil.copytree(trained_run.workdir, workdir)
  with pytest.raises(checkpointing.CheckpointMismatchError, match='different run') as info:
    train.train_and_evaluate(make_config(**overrides), str(workdir))
  assert str(workdir) in str(info.value)
  # The refused run must leave the existing run intact and loadable.
  assert (workdir / 'config.json').read_text() == (trained_run.workdir / 'config.json').read_text()
  assert (workdir / 'item_vocab.npz').read_bytes() == (
    trained_run.workdir / 'item_vocab.npz'
  ).read_bytes()
  assert analysis.load_run(str(workdir), device='cpu').vocab.size > 0


def test_a_blown_up_model_is_never_reported_as_accurate(make_config, tmp_path):
  """At lr 1e30 GRU4Rec's loss stays finite but its scores overflow to NaN: those rank each
  target behind every item (NaN compares false both ways, which used to give rank 0)."""
  result = train.train_and_evaluate(make_config(learning_rate=1e30, n_epochs=1), str(tmp_path))
  test = result['test']
  assert all(math.isfinite(v) for v in test.values())
  assert test['recall@20'] < result['popularity_test']['recall@20'] / 10


@pytest.mark.parametrize(
  'overrides, flag',
  [
    ({'learning_rate': float('inf')}, 'learning_rate'),
    ({'layers': ('a', 'b')}, 'layers'),
    ({'layers': (16.5,)}, 'layers'),
    ({'eval': {'cutoffs': (5.5,)}}, 'eval.cutoffs'),
  ],
)
def test_non_numeric_or_non_finite_values_are_named(make_config, overrides, flag):
  with pytest.raises(train.ConfigError, match=f'--config.{flag}='):
    train.validate_config(make_config(**overrides))


def test_a_changed_shape_setting_and_a_damaged_checkpoint_are_named(
  trained_run, make_config, tmp_path
):
  workdir = tmp_path / 'run'
  shutil.copytree(trained_run.workdir, workdir)
  with pytest.raises(
    checkpointing.CheckpointMismatchError, match=r"layers: the checkpoint's \["
  ) as info:
    train.train_and_evaluate(make_config(layers=(8,)), str(workdir))
  assert "this run's [8]" in str(info.value)
  metas = [p for p in (workdir / 'checkpoints' / 'latest').glob('*/meta/*') if p.is_file()]
  assert metas
  for path in metas:
    path.write_text('garbage')
  with pytest.raises(checkpointing.CheckpointMismatchError, match='cannot be read'):
    train.train_and_evaluate(make_config(), str(workdir))
