"""The `python -m seqrec.main` command line: a smoke run and clean one-line errors."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

from seqrec import checkpointing, reporting

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_main(*args: str) -> subprocess.CompletedProcess:
  """Runs the entry point from the repository root, on CPU, as a user would."""
  return subprocess.run(
    [sys.executable, '-m', 'seqrec.main', '--config=seqrec/configs/test.py', *args],
    cwd=REPO_ROOT,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_smoke_run_prints_final_metrics(tmp_path):
  workdir = tmp_path / 'smoke'
  proc = run_main(
    f'--workdir={workdir}', '--config.n_epochs=1', '--config.data.synthetic_sessions=300'
  )
  assert proc.returncode == 0, proc.stderr
  assert 'Traceback' not in proc.stderr
  assert 'epoch 1:' in proc.stdout
  start = proc.stdout.index('\n{') + 1
  printed, _ = json.JSONDecoder().raw_decode(proc.stdout[start:])
  assert printed == json.loads((workdir / 'final_metrics.json').read_text())
  assert printed['epochs'] == 1
  assert 0.0 < printed['test']['recall@20'] <= 1.0
  config = json.loads((workdir / 'config.json').read_text())
  assert config['n_epochs'] == 1 and config['data']['synthetic_sessions'] == 300


def test_unknown_config_field_fails_cleanly(tmp_path):
  workdir = tmp_path / 'never'
  proc = run_main(f'--workdir={workdir}', '--config.not_a_field=1')
  assert proc.returncode != 0
  assert 'not_a_field' in proc.stderr
  assert 'Traceback' not in proc.stderr
  assert not workdir.exists()  # rejected before anything runs


def test_missing_data_file_fails_with_exit_code_2(tmp_path):
  proc = run_main(
    f'--workdir={tmp_path / "run"}',
    '--config.data.format=gru4rec_tsv',
    '--config.data.train_path=/nonexistent.tsv',
  )
  assert proc.returncode == 2
  assert 'Traceback' not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if '/nonexistent.tsv' in line]
  assert errors == ['error: /nonexistent.tsv: file not found']  # said once, without a log prefix


def test_a_workdir_that_is_a_file_fails_before_anything_runs(tmp_path):
  taken = tmp_path / 'taken'
  taken.write_text('not a run')
  for workdir, message in (
    (taken, f'error: --workdir={taken} is a file: expected a directory'),
    (taken / 'run', f'error: --workdir={taken / "run"}: {taken} is a file'),
  ):
    proc = run_main(f'--workdir={workdir}')
    assert proc.returncode == 2
    assert 'Traceback' not in proc.stderr
    assert message in proc.stderr
  assert taken.read_text() == 'not a run'


def test_ctrl_c_says_where_a_rerun_resumes_and_the_rerun_does(tmp_path):
  workdir = tmp_path / 'interrupted'
  args = [
    f'--workdir={workdir}',
    '--config.n_epochs=1000',
    '--config.checkpoint_every_secs=0',
    '--config.data.synthetic_sessions=300',
  ]
  proc = subprocess.Popen(
    [sys.executable, '-m', 'seqrec.main', '--config=seqrec/configs/test.py', *args],
    cwd=REPO_ROOT,
    env={**os.environ, 'JAX_PLATFORMS': 'cpu'},
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    # A shell's background job (a CI runner's, say) ignores SIGINT, and so would this child.
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
  )
  try:
    metrics = workdir / 'metrics.jsonl'
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
      if metrics.exists() and metrics.read_text().count('"epoch"') >= 2:
        break
      time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
  finally:
    proc.kill()  # a no-op once it has exited
  assert proc.returncode == 130, stderr
  assert 'Traceback' not in stderr
  line = stderr.strip().splitlines()[-1]
  assert line.startswith(f'interrupted: --workdir={workdir}: a rerun resumes after epoch '), line
  epoch = int(line.split('after epoch ')[1].split()[0])
  assert epoch >= 1
  rerun = run_main(*args[:1], '--config.n_epochs=' + str(epoch + 1), *args[2:])
  assert rerun.returncode == 0, rerun.stderr
  assert f'after epoch {epoch}' in rerun.stderr  # the resume log line
  assert json.loads((workdir / 'final_metrics.json').read_text())['epochs'] == epoch + 1


def test_resume_point_of_a_workdir_without_checkpoints(tmp_path):
  assert 'starts from the beginning' in checkpointing.resume_point(str(tmp_path))


def test_summary_shows_a_dash_where_pop_has_no_value():
  text = reporting.summary(
    {
      'test': {'recall@20': 0.5, 'recall@20/first1': 0.4, 'count': 7.0},
      'popularity_test': {'recall@20': 0.1, 'count': 7.0},
    }
  )
  rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[1:-1]}
  assert rows == {'recall@20': ['0.5000', '0.1000'], 'recall@20/first1': ['0.4000', '–']}
  assert 'nan' not in text and '(7 test predictions' in text
