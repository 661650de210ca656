"""Tests of the run outputs: metrics.jsonl lines, their trimming on resume, and TensorBoard tags."""

import json
import logging
import struct

import pytest

from seqrec import reporting


def _tensorboard_scalars(workdir):
  """Reads every (tag, step, value) from the run's TensorBoard event files (TFRecord framing)."""
  event_pb2 = pytest.importorskip('tensorboardX.proto.event_pb2')
  scalars = []
  for path in sorted((workdir / 'tensorboard').glob('events.out.tfevents.*')):
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack('<Q', data[pos : pos + 8])
      record = data[pos + 12 : pos + 12 + length]  # skips the length's crc
      pos += 12 + length + 4  # and the record's crc
      event = event_pb2.Event.FromString(record)
      for value in event.summary.value:
        scalars.append((value.tag, event.step, value.simple_value))
  return scalars


def test_tensorboard_tag_replaces_characters_tensorboard_rejects():
  assert reporting.tensorboard_tag('valid/ndcg@10') == 'valid/ndcg_10'
  assert reporting.tensorboard_tag('train_loss') == 'train_loss'
  assert reporting.tensorboard_tag('test/sampled100_pop/recall@5') == 'test/sampled100_pop/recall_5'
  assert reporting.tensorboard_tag('a-b.c d') == 'a-b.c_d'


def test_writer_logs_json_lines_and_clean_tensorboard_tags(tmp_path, caplog):
  pytest.importorskip('tensorboardX')
  writer = reporting.MetricsWriter(str(tmp_path))
  with caplog.at_level(logging.INFO):
    writer.write(10, {'train_loss': 1.5, 'valid/ndcg@10': 0.25}, epoch=1)
    writer.write(20, {'train_loss': 1.25, 'valid/ndcg@10': 0.5}, epoch=2)
  writer.close()
  assert not [r for r in caplog.records if 'illegal' in r.getMessage()]
  lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert lines == [
    {'step': 10, 'epoch': 1, 'train_loss': 1.5, 'valid/ndcg@10': 0.25},
    {'step': 20, 'epoch': 2, 'train_loss': 1.25, 'valid/ndcg@10': 0.5},
  ]
  assert sorted(_tensorboard_scalars(tmp_path)) == [
    ('train_loss', 10, 1.5),
    ('train_loss', 20, 1.25),
    ('valid/ndcg_10', 10, 0.25),
    ('valid/ndcg_10', 20, 0.5),
  ]


def test_resumed_writer_drops_lines_after_the_checkpoint(tmp_path):
  writer = reporting.MetricsWriter(str(tmp_path))
  for step in (10, 20, 30):
    writer.write(step, {'train_loss': float(step)}, epoch=step // 10)
  writer.close()
  resumed = reporting.MetricsWriter(str(tmp_path), keep_through_step=20)
  resumed.write(30, {'train_loss': 3.0}, epoch=3)
  resumed.close()
  lines = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  kept = [(line['step'], line['train_loss']) for line in lines]
  assert kept == [(10, 10.0), (20, 20.0), (30, 3.0)]


def test_resume_keeps_the_checkpoints_epoch_line_once_and_drops_a_cut_line(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  lines = [
    {'step': 10, 'epoch': 1, 'train_loss': 1.0},
    {'step': 20, 'epoch': 2, 'train_loss': 2.0},
    {'step': 20, 'epoch': 2, 'test/ndcg@10': 0.1},  # a time-limited run's final test line
  ]
  path.write_text(''.join(json.dumps(line) + '\n' for line in lines) + '{"step": 30, "ep')
  reporting.MetricsWriter(str(tmp_path), keep_through_step=20).close()
  assert [json.loads(line) for line in path.read_text().splitlines()] == lines[:2]
  # A complete last line whose newline the kill cut off gets it back before the next write.
  path.write_text(json.dumps(lines[0]))
  writer = reporting.MetricsWriter(str(tmp_path), keep_through_step=20)
  writer.write(20, {'train_loss': 2.0}, epoch=2)
  writer.close()
  assert [json.loads(line) for line in path.read_text().splitlines()] == lines[:2]
  # A run that never checkpointed (n_epochs=0: step 0) writes its test line once, not twice.
  path.write_text(json.dumps({'step': 0, 'epoch': 0, 'test/ndcg@10': 0.1}) + '\n')
  reporting.MetricsWriter(str(tmp_path), keep_through_step=0).close()
  assert path.read_text() == ''
  path.write_text('{"epoch": 1}\n{"step": 2}\n')
  with pytest.raises(reporting.DataError, match=rf'{path}, line 1: .*integer "step"'):
    reporting.MetricsWriter(str(tmp_path), keep_through_step=20)
  # A damaged line before the last is not the kill's: named, not dropped silently.
  path.write_text('{"step": 10\n' + json.dumps(lines[1]) + '\n')
  with pytest.raises(reporting.DataError, match=rf'{path}, line 1: expected one JSON object'):
    reporting.MetricsWriter(str(tmp_path), keep_through_step=20)


def _record(pathname, level):
  return logging.LogRecord('absl', level, pathname, 1, 'message', None, None)


def test_library_info_lines_are_dropped_and_seqrec_lines_kept():
  library_filter = reporting._LibraryInfoFilter()
  orbax_file = '/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpointer.py'
  jax_file = '/venv/lib/python3.11/site-packages/jax/_src/xla_bridge.py'
  seqrec_file = '/work/seqrec/seqrec/seq_train.py'
  own_jax_dir = '/home/me/jax/seqrec/seqrec/train.py'  # a user's directory named like a library
  assert not library_filter.filter(_record(orbax_file, logging.INFO))
  assert not library_filter.filter(_record(jax_file, logging.INFO))
  assert library_filter.filter(_record(orbax_file, logging.WARNING))
  assert library_filter.filter(_record(jax_file, logging.ERROR))
  assert library_filter.filter(_record(seqrec_file, logging.INFO))
  assert library_filter.filter(_record(own_jax_dir, logging.INFO))


def test_quiet_library_logs_installs_one_filter():
  from absl import logging as absl_logging  # noqa: PLC0415

  handler = absl_logging.get_absl_handler()
  before = list(handler.filters)
  try:
    reporting.quiet_library_logs()
    reporting.quiet_library_logs()
    added = [f for f in handler.filters if f not in before]
    assert len([f for f in handler.filters if isinstance(f, reporting._LibraryInfoFilter)]) == 1
    assert len(added) <= 1
  finally:
    for f in list(handler.filters):
      if f not in before:
        handler.removeFilter(f)


def test_read_json_lines_skips_blank_lines_and_names_a_bad_line(tmp_path):
  path = tmp_path / 'results.jsonl'
  path.write_text('{"seed": 0}\n\n{"seed": 1}\n')
  assert reporting.read_json_lines(str(path)) == [{'seed': 0}, {'seed': 1}]
  path.write_text('{"seed": 0}\n{"seed": 1\n')  # e.g. a line cut short
  with pytest.raises(reporting.DataError, match=rf'{path}, line 2: expected one JSON object'):
    reporting.read_json_lines(str(path))
  path.write_text('{"seed": 0}\n[1, 2]\n')
  with pytest.raises(reporting.DataError, match=rf'{path}, line 2: expected a JSON object'):
    reporting.read_json_lines(str(path))
  with pytest.raises(FileNotFoundError, match='missing.jsonl: file not found'):
    reporting.read_json_lines(str(tmp_path / 'missing.jsonl'))


def test_metrics_files_are_strict_json(tmp_path):
  """NaN (e.g. the training rate of a run of 0 epochs) is written as null, never as `NaN`."""
  writer = reporting.MetricsWriter(str(tmp_path))
  writer.write(1, {'train_loss': float('nan'), 'rate': 2.0}, epoch=1)
  writer.finish(1, 1, {'recall@20': 0.5}, {'rate': float('inf'), 'nested': [float('nan'), 1.0]})

  def strict(text):
    return json.loads(text, parse_constant=lambda name: pytest.fail(f'{name} in {text!r}'))

  lines = [strict(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  assert lines[0]['train_loss'] is None and lines[0]['rate'] == 2.0
  final = strict((tmp_path / 'final_metrics.json').read_text())
  assert final == {'rate': None, 'nested': [None, 1.0]}
