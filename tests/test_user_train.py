"""End-to-end tests of HRNN (and GRU4Rec) runs on user-session data through `train_and_evaluate`."""

import json
import shutil

import numpy as np
import pytest

from seqrec import analysis, comparison, train, user_evaluation, user_train_step
from seqrec.checkpointing import CheckpointMismatchError
from seqrec.configs import hrnn_test
from seqrec.data.user_sessions import load_user_session_data

TIMING_KEYS = ('test_events_per_sec', 'train_events_per_sec_median', 'wall_seconds')


def make_config(**overrides):
  config = hrnn_test.get_config()
  for key, value in overrides.items():
    if isinstance(value, dict):
      config[key].update(value)
    else:
      config[key] = value
  return config


def comparable(result: dict) -> dict:
  return {k: v for k, v in result.items() if k not in TIMING_KEYS}


@pytest.fixture(scope='module')
def hrnn_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp('hrnn_run')
  config = make_config()
  return workdir, config, train.train_and_evaluate(config, str(workdir))


def test_hrnn_run_saves_every_held_out_targets_rank(hrnn_run):
  workdir, config, result = hrnn_run
  saved = comparison.load_test_ranks(str(workdir))
  assert len(saved.keys) == len(set(saved.keys.tolist())) == result['test']['count']
  users, positions = zip(*(key.split(':') for key in saved.keys.tolist()), strict=True)
  data = load_user_session_data(config.data)
  assert set(users) <= {str(u) for u in data.user_ids.tolist()}
  assert min(int(p) for p in positions) == 0
  assert saved.history_length.min() == 1 and np.all(saved.target_count >= 0)
  for metric in ('recall@5', 'mrr@5', 'recall@20'):
    mean = comparison.per_prediction(saved.ranks, metric).mean()
    assert mean == pytest.approx(result['test'][metric], rel=1e-5), metric


def test_hrnn_run_writes_test_and_first_n_metrics(hrnn_run):
  workdir, config, result = hrnn_run
  test, pop = result['test'], result['popularity_test']
  data = load_user_session_data(config.data)
  assert test['count'] == pop['count'] == data.test.num_events - data.test.num_sessions
  for k in config.eval.cutoffs:
    assert f'recall@{k}/first1' in test and f'mrr@{k}/first3' in test
  assert test['count/first1'] == data.test.num_sessions
  assert test['recall@20'] > pop['recall@20']
  with open(workdir / 'final_metrics.json') as f:
    assert json.load(f) == result


def test_load_run_restores_a_run_that_has_only_its_latest_checkpoint(hrnn_run, tmp_path):
  """A killed HRNN run without validation has no 'best' checkpoint yet: load_run falls back to
  'latest', whose state also carries the user-level hidden state."""
  workdir, _, _ = hrnn_run
  interrupted = tmp_path / 'run'
  shutil.copytree(workdir, interrupted)
  shutil.rmtree(interrupted / 'checkpoints' / 'best')
  (interrupted / 'checkpoints' / 'best').mkdir()
  latest = analysis.load_run(str(interrupted), device='cpu')
  best = analysis.load_run(str(workdir), device='cpu')  # the final parameters, as 'latest' holds
  np.testing.assert_array_equal(latest.item_embeddings(), best.item_embeddings())


def test_final_metrics_are_the_restored_models(hrnn_run):
  workdir, config, result = hrnn_run
  run = analysis.load_run(str(workdir), device='cpu')
  data = load_user_session_data(config.data)
  metrics = user_evaluation.evaluate_users(
    run.model,
    data.train,
    data.test,
    batch_size=int(config.eval.batch_size),
    cutoffs=tuple(config.eval.cutoffs),
    item_chunk=int(config.eval.item_chunk),
    steps_per_call=int(config.eval.steps_per_call),
    first_n=tuple(config.eval.first_n),
  )
  assert metrics == result['test']


def test_resume_after_an_epoch_equals_an_uninterrupted_run(hrnn_run, tmp_path):
  _, _, reference = hrnn_run
  first = train.train_and_evaluate(make_config(n_epochs=1), str(tmp_path))
  assert first['epochs'] == 1
  resumed = train.train_and_evaluate(make_config(), str(tmp_path))
  assert comparable(resumed) == comparable(reference)


def test_resume_mid_epoch_equals_an_uninterrupted_run(hrnn_run, tmp_path, monkeypatch):
  _, _, reference = hrnn_run
  make_real = user_train_step.make_user_train_chunk
  calls = [0]

  def make_interrupting(*args, **kwargs):
    chunk_fn = make_real(*args, **kwargs)

    def chunk(state, arrays, start):
      calls[0] += 1
      if calls[0] == 4:
        raise KeyboardInterrupt
      return chunk_fn(state, arrays, start)

    return chunk

  config = make_config(checkpoint_every_secs=1e-9)
  with monkeypatch.context() as patch:
    patch.setattr(user_train_step, 'make_user_train_chunk', make_interrupting)
    with pytest.raises(KeyboardInterrupt):
      train.train_and_evaluate(config, str(tmp_path))
  resumed = train.train_and_evaluate(make_config(), str(tmp_path))
  assert comparable(resumed) == comparable(reference)


def test_gru4rec_on_user_data_scores_the_same_test_events(hrnn_run, tmp_path):
  _, _, hrnn = hrnn_run
  result = train.train_and_evaluate(make_config(model='gru4rec'), str(tmp_path))
  assert result['test']['count'] == hrnn['test']['count']
  assert result['test']['count/first1'] == hrnn['test']['count/first1']
  assert result['popularity_test'] == hrnn['popularity_test']
  assert result['test'] != hrnn['test']


def test_all_variant_and_validation_split_run(tmp_path):
  config = make_config(
    user_propagation_mode='all', data={'valid': True}, early_stopping={'patience': 1}
  )
  result = train.train_and_evaluate(config, str(tmp_path))
  assert result['best_epoch'] >= 1
  lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert 'valid/recall@5/first1' in lines[0]


@pytest.mark.parametrize(
  'overrides, flag',
  [
    ({'user_propagation_mode': 'both'}, '--config.user_propagation_mode'),
    ({'user_units': 0}, '--config.user_units'),
    ({'dropout_p_init': 1.0}, '--config.dropout_p_init'),
    ({'data': {'format': 'synthetic'}}, '--config.data.format'),
  ],
)
def test_bad_hrnn_config_names_the_flag(overrides, flag, tmp_path):
  with pytest.raises(train.ConfigError, match=flag):
    train.train_and_evaluate(make_config(**overrides), str(tmp_path))


def test_checkpoint_of_the_other_variant_is_rejected(hrnn_run, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(hrnn_run[0], workdir)
  with pytest.raises(CheckpointMismatchError, match='different run'):
    train.train_and_evaluate(make_config(user_propagation_mode='all'), str(workdir))


def test_analysis_scores_a_session_from_the_users_history(hrnn_run):
  """`score_session(history=...)` equals the evaluator's scoring of the held-out session."""
  workdir, config, _ = hrnn_run
  run = analysis.load_run(str(workdir), device='cpu')
  data = load_user_session_data(config.data)
  user = int(data.test.user[0])
  sessions = []
  for table in (data.train, data.test):
    offsets = table.session_offsets()
    for s in range(len(offsets) - 1):
      if int(table.user[offsets[s]]) == user:
        sessions.append(table.item[offsets[s] : offsets[s + 1]])
  *history, current = [list(run.vocab.decode(s)) for s in sessions]
  ranks = user_evaluation.held_out_ranks(
    run.model, data.train, data.test.select(data.test.user == user), batch_size=4, steps_per_call=8
  )
  first_rank = ranks.ranks[ranks.scored][0]
  scores = run.score_session(current[:1], history=history)
  target = run.dense_ids(current[1:2])[0]
  assert np.sum(scores >= scores[target]) == first_rank  # conservative ties
  without = run.score_session(current[:1])
  assert not np.allclose(scores, without)  # the history changes the scores
  # Empty sessions, like one-item ones, have no pair to walk; a numpy history works too.
  np.testing.assert_array_equal(run.score_session(current[:1], history=[[], *history]), scores)
  flat = [i for session in history for i in session]
  with pytest.raises(TypeError, match=r'history: expected a list of sessions .*\[\[\.\.\.\]\]'):
    run.score_session(current[:1], history=flat)
