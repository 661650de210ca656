"""experiments/seeds.py end to end: a JSON line per seed; a time-limited run is marked as such."""

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_a_time_limited_run_is_recorded_as_such_and_resumes(tmp_path, experiment_script):
  out = tmp_path / 'results.jsonl'
  command = [
    sys.executable,
    str(ROOT / 'experiments' / 'seeds.py'),
    '--config=' + str(ROOT / 'seqrec' / 'configs' / 'sequence_test.py'),
    '--config.n_epochs=3',
    '--config.eval.every_epochs=1',
    '--seeds=4',
    '--label=tiny',
    f'--workdir_root={tmp_path}',
    f'--output={out}',
  ]
  # Any positive limit is spent by the first epoch's end: training stops after epoch 1 of 3.
  subprocess.run(command + ['--config.time_limit_secs=0.001'], check=True, cwd=ROOT)
  # The same command without the limit trains on from the checkpoint to the schedule's end.
  subprocess.run(command, check=True, cwd=ROOT)
  cut, done = [json.loads(line) for line in out.read_text().splitlines()]
  assert (cut['label'], cut['seed'], cut['model'], cut['epochs']) == ('tiny', 4, 'sasrec', 1)
  assert cut['time_limited'] is True and cut['best_epoch'] == 1
  assert done['time_limited'] is False and done['epochs'] == 3
  assert 1 <= done['best_epoch'] <= 3
  assert 0.0 <= done['test/ndcg@10'] <= 1.0 and done['train_events_per_sec'] > 0
  table = experiment_script('results_table').table([cut, done], ['test/ndcg@10'])
  assert '| tiny | 1 |' in table and 'time-limited' not in table
