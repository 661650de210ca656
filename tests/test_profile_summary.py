"""Tests of experiments/profile.py: the trace summary (on hand-made traces) and the runners."""

import gzip
import importlib
import json

import pytest


@pytest.fixture(scope='module')
def profile(experiment_script):
  return experiment_script('profile')


def _write(tmp_path, events):
  path = tmp_path / 'perfetto_trace.json.gz'
  with gzip.open(path, 'wt') as f:
    json.dump({'traceEvents': events}, f)
  return str(path)


def _meta(pid, process, threads):
  out = [{'ph': 'M', 'name': 'process_name', 'pid': pid, 'args': {'name': process}}]
  for tid, name in threads.items():
    out.append({'ph': 'M', 'name': 'thread_name', 'pid': pid, 'tid': tid, 'args': {'name': name}})
  return out


def _x(pid, tid, name, ts, dur):
  return {'ph': 'X', 'pid': pid, 'tid': tid, 'name': name, 'ts': ts, 'dur': dur}


def test_device_kernels_are_summed_and_overlaps_merged(profile, tmp_path):
  events = _meta(1, '/host:CPU', {1: 'python'}) + _meta(2, '/device:GPU:0', {7: 'stream 7'})
  events += [
    _x(1, 1, 'PjitFunction', 0, 1000),  # host time is not device time
    _x(2, 7, 'gemm', 100, 50),
    _x(2, 7, 'gemm', 300, 50),
    _x(2, 7, 'fusion.1', 320, 100),  # overlaps the second gemm (another stream in practice)
  ]
  summary = profile.summarize_trace(_write(tmp_path, events))
  assert summary['timeline'] == 'device kernels'
  assert summary['busy_us'] == 50 + 120  # [100, 150) and [300, 420)
  assert summary['span_us'] == 320
  assert summary['ops'] == [
    {'name': 'gemm', 'count': 2, 'total_us': 100.0},
    {'name': 'fusion.1', 'count': 1, 'total_us': 100.0},
  ]


def test_cpu_trace_sums_xla_operations_without_runtime_wrappers(profile, tmp_path):
  events = _meta(1, '/host:CPU', {1: 'python', 2: 'tf_XLAPjRtCpuClient/1', 3: 'tf_XLAEigen/2'})
  events += [
    _x(1, 1, 'sort.1', 0, 500),  # the Python thread is not an XLA thread
    _x(1, 2, 'ThunkExecutor::Execute', 0, 400),
    _x(1, 3, 'ThreadpoolListener::StartRegion', 60, 0),  # the thread pool's zero-length markers
    _x(1, 2, 'while.3', 10, 300),
    _x(1, 2, 'sort.1', 20, 30),
    _x(1, 3, 'dot.2', 60, 40),
  ]
  summary = profile.summarize_trace(_write(tmp_path, events))
  assert summary['timeline'].startswith('host XLA threads')
  assert [op['name'] for op in summary['ops']] == ['dot.2', 'sort.1']
  assert summary['busy_us'] == 70


@pytest.mark.parametrize(
  ('config_name', 'model', 'what'),
  [
    ('test', None, 'train'),
    ('test', None, 'eval'),
    ('sequence_test', 'sasrec', 'train'),
    ('sequence_test', 'bert4rec', 'eval'),
  ],
)
def test_runners_trace_compiled_calls_of_session_and_sequence_configs(
  profile, tmp_path, config_name, model, what
):
  config = importlib.import_module(f'seqrec.configs.{config_name}').get_config()
  if model:
    config.model = model
  runner = profile.sequence_runner if config_name == 'sequence_test' else profile.session_runner
  run, units, n_units = runner(config, what, 2)
  if what == 'train':
    assert (units, n_units) == ('steps', 2 * int(config.steps_per_call))
  else:
    assert (units, n_units) == ('evaluation passes', 1)
  wall, path = profile._trace(run, str(tmp_path))
  summary = profile.summarize_trace(path)
  assert wall > 0 and summary['busy_us'] > 0
  assert len(summary['ops']) >= 5  # XLA operations of the compiled calls
  run()  # again: a training run keeps the state its donated calls returned
