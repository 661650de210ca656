"""Tests for the `prepare` command's report and cache."""

from seqrec.data import prepare


def test_prepare_reports_stats_and_writes_cache(tmp_path):
  cache_dir = tmp_path / 'cache'
  report = prepare.prepare(
    dict(format='synthetic', synthetic_sessions=400, synthetic_items=60, cache_dir=str(cache_dir))
  )
  assert report.splitlines()[1].split() == ['split', 'events', 'sessions', 'items']
  assert report.splitlines()[2].startswith('train') and report.splitlines()[3].startswith('test')
  (cached,) = cache_dir.glob('synthetic-*.npz')
  assert str(cached) in report
