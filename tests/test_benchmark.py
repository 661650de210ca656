"""The GRU4Rec throughput script end to end: its JSON line, and its flag errors."""

import json
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _benchmark(*args):
  command = [sys.executable, str(ROOT / 'experiments' / 'benchmark.py'), *args]
  return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_benchmark_records_training_and_evaluation_rates_per_batch_size(tmp_path):
  out = tmp_path / 'bench.jsonl'
  config = '--config=' + str(ROOT / 'seqrec' / 'configs' / 'test.py')
  done = _benchmark(config, '--eval_batch_sizes=3,64', '--label=tiny', f'--output={out}')
  assert done.returncode == 0, done.stderr[-3000:]
  (record,) = [json.loads(line) for line in out.read_text().splitlines()]
  assert record['label'] == 'tiny' and record['platform'] == 'cpu'
  assert record['train_events_per_sec'] > 0 and record['eval_events_per_sec'] > 0
  assert sorted(record['eval_events_per_sec_by_batch']) == ['3', '64']
  assert all(rate > 0 for rate in record['eval_events_per_sec_by_batch'].values())
  assert record['test']['count'] > 0 and 0.0 < record['test']['recall@20'] <= 1.0


def test_a_bad_eval_batch_size_is_one_line_before_anything_runs(tmp_path):
  out = tmp_path / 'never.jsonl'
  config = '--config=' + str(ROOT / 'seqrec' / 'configs' / 'test.py')
  bad = _benchmark(config, '--eval_batch_sizes=512,0', f'--output={out}')
  assert bad.returncode != 0
  assert 'Traceback' not in bad.stderr
  assert 'expected comma-separated positive integers' in bad.stderr
  assert not out.exists()


@pytest.mark.parametrize(
  'script, config, flags, message',
  [
    ('benchmark', 'test', ['--config.batch_size=-1'], '--config.batch_size=-1: expected'),
    ('benchmark', 'sequence_test', [], "--config.model='sasrec': expected gru4rec"),
    ('benchmark', 'test', ['--config.n_epochs=1'], '--config.n_epochs=1: expected at least 2'),
    ('benchmark_sequences', 'test', [], "--config.model='gru4rec': expected a sequence model"),
  ],
)
def test_bad_config_values_are_one_line_before_anything_trains(
  tmp_path, script, config, flags, message
):
  out = tmp_path / 'new_dir' / 'never.jsonl'
  path = ROOT / 'seqrec' / 'configs' / f'{config}.py'
  command = [sys.executable, str(ROOT / 'experiments' / f'{script}.py'), f'--config={path}']
  done = subprocess.run([*command, *flags, f'--output={out}'], capture_output=True, text=True)
  assert done.returncode == 2 and 'Traceback' not in done.stderr
  assert message in done.stderr.strip().splitlines()[-1]
  assert not out.exists()
