"""Tests for the `prepare` command's report, cache and errors."""

import subprocess
import sys
from pathlib import Path

from seqrec.data import prepare

ROOT = Path(__file__).resolve().parents[2]


def test_prepare_reports_stats_and_writes_cache(tmp_path):
  cache_dir = tmp_path / 'cache'
  report = prepare.prepare(
    dict(format='synthetic', synthetic_sessions=400, synthetic_items=60, cache_dir=str(cache_dir))
  )
  assert report.splitlines()[1].split() == ['split', 'events', 'sessions', 'items']
  assert report.splitlines()[2].startswith('train') and report.splitlines()[3].startswith('test')
  (cached,) = cache_dir.glob('synthetic-*.npz')
  assert str(cached) in report


def test_prepare_errors_name_its_own_flags(tmp_path):
  """The data layer names options as training configs spell them; `prepare` names its flags."""
  path = tmp_path / 'ms.tsv'
  path.write_text('SessionId\tItemId\tTime\n1\t5\t1396861869277\n1\t6\t1396861870277\n')
  command = [sys.executable, '-m', 'seqrec.data.prepare', '--format=gru4rec_tsv']
  done = subprocess.run(
    [*command, f'--train_path={path}'], cwd=ROOT, capture_output=True, text=True
  )
  assert done.returncode == 1
  assert 'Set --time_unit=ms' in done.stderr and '--config.data' not in done.stderr
  assert 'Traceback' not in done.stderr
