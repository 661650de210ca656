"""Sweeps: grid axes and their errors, result rows, the ranking, and the scripts end to end."""

import json
import pathlib
import subprocess
import sys

import pytest

from seqrec import sweep
from seqrec.configs import sequence_test
from seqrec.train import ConfigError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _config():
  config = sequence_test.get_config()
  config.lock()
  return config


def test_axes_make_a_grid_in_flag_order():
  axes = sweep.parse_axes(['learning_rate=[0.1, 0.2]', 'sasrec.hidden = [8, 16, 32]'])
  assert axes == [('learning_rate', [0.1, 0.2]), ('sasrec.hidden', [8, 16, 32])]
  points = sweep.grid(axes, 'x')
  assert len(points) == 6
  assert points[:2] == [
    {'learning_rate': 0.1, 'sasrec.hidden': 8},
    {'learning_rate': 0.1, 'sasrec.hidden': 16},
  ]
  assert sweep.grid([], 'x') == [{}]  # no axis: a plain seed sweep


def test_seed_is_not_an_axis():
  with pytest.raises(sweep.AxisError, match='--seeds=5,6'):
    sweep.parse_axes(['seed=[5, 6]'])


def test_config_digest_ignores_seed_paths_and_speed_settings_only(make_config):
  base = sweep.config_digest(make_config())
  assert sweep.config_digest(make_config(seed=4, steps_per_call=2, time_limit_secs=60.0)) == base
  assert sweep.config_digest(make_config(data={'train_path': '/elsewhere/x.tsv'})) == base
  for changed in ({'learning_rate': 0.2}, {'n_epochs': 4}, {'eval': {'cutoffs': (10,)}}):
    assert sweep.config_digest(make_config(**changed)) != base, changed
  # A field added later counts only away from the value that does what runs did before it.
  older = make_config()
  del older.data['time_unit']
  assert sweep.config_digest(older) == base
  assert sweep.config_digest(make_config(data={'time_unit': 'ms'})) != base


@pytest.mark.parametrize(
  'specs, message',
  [
    (['learning_rate'], 'expected FIELD='),
    (['learning_rate=0.1'], 'expected FIELD='),
    (['learning_rate=[]'], 'non-empty'),
    (['learning_rate=[0.1, oops]'], "'learning_rate=\\[0.1, oops\\]'"),
    (['=[1]'], 'expected FIELD='),
    (['learning_rate=[0.1]', 'learning_rate=[0.2]'], 'given twice'),
  ],
)
def test_malformed_axes_are_named(specs, message):
  with pytest.raises(sweep.AxisError, match=message):
    sweep.parse_axes(specs)


def test_point_configs_are_checked_before_anything_runs():
  config = _config()
  point = sweep.point_config(config, {'learning_rate': 0.5, 'sasrec.hidden': 8})
  assert (point.learning_rate, point.sasrec.hidden) == (0.5, 8)
  assert (config.learning_rate, config.sasrec.hidden) != (0.5, 8)  # the base is untouched
  with pytest.raises(sweep.AxisError, match="sasrec has no field 'hiden'; did you mean 'hidden'"):
    sweep.point_config(config, {'sasrec.hiden': 8})
  with pytest.raises(sweep.AxisError, match="the config has no field 'sasrek'"):
    sweep.point_config(config, {'sasrek.hidden': 8})
  with pytest.raises(sweep.AxisError, match="learning_rate has no field 'x'"):
    sweep.point_config(config, {'learning_rate.x': 8})
  with pytest.raises(sweep.AxisError, match='learning_rate'):
    sweep.point_config(config, {'learning_rate': 'fast'})
  with pytest.raises(ConfigError, match=r'^at the grid point batch_size=0: --config.batch_size=0'):
    sweep.point_config(config, {'batch_size': 0})
  config.unlock().learning_rate = -1.0  # a bad value of the config itself: no point to name
  with pytest.raises(ConfigError, match=r'^--config.learning_rate=-1.0: expected a positive'):
    sweep.point_config(config, {})


def test_run_directories_and_labels():
  point = {'learning_rate': 0.1, 'layers': (100,)}
  assert sweep.row_label('g', point) == 'g[learning_rate=0.1,layers=(100,)]'
  assert sweep.workdir_name('g', point, 2) == 'g-learning_rate=0.1,layers=100,-seed2'
  assert sweep.workdir_name('g', {}, 2) == 'g-seed2'  # as experiments/seeds.py always named them
  with pytest.raises(sweep.AxisError, match='clashing'):
    sweep.grid([('tag', ['a/b', 'ab'])], 'g')


def test_workers_share_the_runs_round_robin_each_exactly_once():
  runs = [(point, seed) for point in 'abc' for seed in (0, 1)]
  shares = [sweep.worker_runs(runs, (i, 4)) for i in range(4)]
  assert shares[0] == [('a', 0), ('c', 0)] and shares[3] == [('b', 1)]
  assert sorted(r for share in shares for r in share) == sorted(runs)
  assert sweep.worker_runs(runs, sweep.parse_worker('0/1')) == runs
  for bad in ('4/4', '1', '-1/2', 'a/b', '1/0'):
    with pytest.raises(sweep.AxisError, match=f'--worker={bad!r}: expected I/N'):
      sweep.parse_worker(bad)


def test_ranking_is_by_mean_validation_value():
  rows = [
    {'label': 'a', 'valid/ndcg@10': 0.2, 'test/ndcg@10': 0.9},
    {'label': 'b', 'valid/ndcg@10': 0.3, 'test/ndcg@10': 0.1},
    {'label': 'a', 'valid/ndcg@10': 0.6, 'test/ndcg@10': 0.7},
    {'label': 'c', 'test/ndcg@10': 0.5},
  ]
  lines = sweep.ranking(rows)
  assert lines[0] == 'a: valid/ndcg@10 0.4000, test/ndcg@10 0.8000 (2 seeds)'
  assert lines[1].startswith('b: valid/ndcg@10 0.3000')
  assert lines[2] == 'c: no validation split (1 seed)'


def _run(name, *args):
  """`python experiments/<name>.py ARGS` from the repository root, output captured."""
  command = [sys.executable, str(ROOT / 'experiments' / f'{name}.py'), *args]
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def _script(name, *args):
  """The stdout of a run of `experiments/<name>.py` that must succeed."""
  done = _run(name, *args)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


def _tiny_args(tmp_path, out, n_epochs, seed):
  """Flags of a tiny SASRec run labelled 'tiny', its workdirs under `tmp_path`, rows to `out`."""
  return [
    '--config=' + str(ROOT / 'seqrec' / 'configs' / 'sequence_test.py'),
    f'--config.n_epochs={n_epochs}',
    f'--seeds={seed}',
    '--label=tiny',
    f'--workdir_root={tmp_path}',
    f'--output={out}',
  ]


def test_sweep_script_runs_the_grid_records_validation_and_skips_finished_runs(tmp_path):
  out = tmp_path / 'sweep.jsonl'
  base = _tiny_args(tmp_path, out, n_epochs=2, seed=3)
  args = [*base, '--axis=sasrec.hidden=[8, 16]']
  printed = _script('sweep', *args)
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [r['label'] for r in rows] == ['tiny[sasrec.hidden=8]', 'tiny[sasrec.hidden=16]']
  assert [r['sweep'] for r in rows] == [{'sasrec.hidden': 8}, {'sasrec.hidden': 16}]
  assert all(0.0 <= r['valid/ndcg@10'] <= 1.0 and r['seed'] == 3 for r in rows)
  assert (tmp_path / 'tiny-sasrec.hidden=16-seed3' / 'final_metrics.json').exists()
  assert 'The points by validation' in printed
  again = _script('sweep', *args)  # finished runs are not run twice
  assert again.count('skipped') == 2
  assert len(out.read_text().splitlines()) == 2
  # The same label and output under another base config is another experiment: refused.
  other = _run('sweep', *args, '--config.learning_rate=0.01')
  assert other.returncode == 2 and 'another config' in other.stderr
  assert len(out.read_text().splitlines()) == 2
  # The same label on another dataset is its own run (results_table.py --by_data shows both).
  elsewhere = _script(
    'sweep',
    *args,
    '--worker=0/2',
    '--config.data.name=tiny-elsewhere',
    f'--workdir_root={tmp_path / "elsewhere"}',
  )
  assert 'skipped' not in elsewhere
  rows = [json.loads(line) for line in out.read_text().splitlines()]
  assert [(r['data'], r['label']) for r in rows[2:]] == [
    ('tiny-elsewhere', 'tiny[sasrec.hidden=8]')
  ]
  # A bad axis is one line naming it, before anything runs.
  bad = _run('sweep', *base, '--axis=sasrec.hiden=[8]')
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1].startswith('error: --axis sasrec.hiden=...: sasrec')


def test_seeds_script_marks_a_time_limited_run_and_trains_it_on(tmp_path, experiment_script):
  out = tmp_path / 'results.jsonl'
  args = _tiny_args(tmp_path, out, n_epochs=3, seed=4)
  # Any positive limit is spent by the first epoch's end: training stops after epoch 1 of 3.
  _script('seeds', *args, '--config.time_limit_secs=0.001')
  # The same command without the limit trains on from the checkpoint to the schedule's end.
  _script('seeds', *args)
  cut, done = [json.loads(line) for line in out.read_text().splitlines()]
  assert (cut['label'], cut['seed'], cut['model'], cut['epochs']) == ('tiny', 4, 'sasrec', 1)
  assert cut['time_limited'] is True and cut['best_epoch'] == 1
  assert done['time_limited'] is False and done['epochs'] == 3
  assert 0.0 <= done['test/ndcg@10'] <= 1.0 and done['train_events_per_sec'] > 0
  table = experiment_script('results_table').table([cut, done], ['test/ndcg@10'])
  assert '| tiny | 1 |' in table and 'time-limited' not in table


@pytest.mark.parametrize('name', ['sweep', 'seeds', 'benchmark_sequences'])
def test_unknown_config_field_is_named_before_anything_runs(tmp_path, name):
  out = tmp_path / 'never.jsonl'
  config = '--config=' + str(ROOT / 'seqrec' / 'configs' / 'sequence_test.py')
  args = [config, '--config.n_epochs=1', '--config.sasrec.hiden=8', f'--output={out}']
  if name != 'benchmark_sequences':
    args += ['--label=tiny', f'--workdir_root={tmp_path}']
  bad = _run(name, *args)
  assert bad.returncode == 2
  assert 'Traceback' not in bad.stderr
  fields = '--config.n_epochs=1 --config.sasrec.hiden=8'
  assert f"error: unknown config field in {fields}: 'hiden'" in bad.stderr
  assert 'Did you mean "hidden"' in bad.stderr
  assert not out.exists()


def test_a_damaged_results_file_is_named_with_its_line(tmp_path):
  out = tmp_path / 'results.jsonl'
  out.write_text('{"label": "tiny", "seed": 0}\n{"label": "tiny", "se\n')
  bad = _run('seeds', *_tiny_args(tmp_path, out, n_epochs=1, seed=1))
  assert bad.returncode == 2
  assert f'error: {out}, line 2: expected one JSON object per line' in bad.stderr
  assert 'Traceback' not in bad.stderr


def test_two_workers_run_a_sweep_between_them(tmp_path):
  out = tmp_path / 'sweep.jsonl'
  args = [*_tiny_args(tmp_path, out, n_epochs=1, seed=0), '--axis=sasrec.hidden=[8, 16]']
  first = _script('sweep', *args, '--worker=1/2')
  assert [json.loads(line)['label'] for line in out.read_text().splitlines()] == [
    'tiny[sasrec.hidden=16]'
  ]
  assert '1 of the 2 runs are in' in first
  _script('sweep', *args, '--worker=0/2')
  labels = sorted(json.loads(line)['label'] for line in out.read_text().splitlines())
  assert labels == ['tiny[sasrec.hidden=16]', 'tiny[sasrec.hidden=8]']
