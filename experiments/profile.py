"""Where a training chunk or evaluation pass of a config spends its time: a profiler trace, summed.

    python experiments/profile.py --config=seqrec/configs/gru4rec_rsc15_100k.py \
      --config.data.train_path=$D/yoochoose-clicks-100k_train_full.txt \
      --config.data.test_path=$D/yoochoose-clicks-100k_test.txt --what=train --chunks=4 \
      --out=/tmp/profile
    python experiments/profile.py --config=seqrec/configs/sasrec_ml1m.py \
      --config.data.path=$D/ml-1m.txt --what=train --chunks=2 --out=/tmp/profile_sasrec

Compiles first, then traces `--chunks` compiled training calls (or one evaluation pass of the test
set: for a user-sequence model, a full-catalogue ranking of every test user) with `jax.profiler`.
Prints the kernels (on a GPU) or XLA operations (on a CPU) that take the most time, how often each
runs per training step, and how much of the wall time the device was busy at all: a low share means
the step is bound by launches and loop overhead, not arithmetic. The summary is written to
`--out/summary.json`; the trace itself (Perfetto / TensorBoard format) is under
`--out/plugins/profile/`.
"""

import collections
import glob
import gzip
import json
import os
import time

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx
from ml_collections import config_flags

from seqrec import cli, seq_train, sharding, train
from seqrec.models import sequential
from seqrec.models.sequential import SEQUENCE_MODELS

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_WHAT = flags.DEFINE_enum('what', 'train', ['train', 'eval'], 'What to trace.')
_CHUNKS = flags.DEFINE_integer('chunks', 4, 'Compiled training calls to trace (--what=train).')
_TOP = flags.DEFINE_integer('top', 25, 'Rows of the printed table.')
_OUT = flags.DEFINE_string('out', '/tmp/seqrec_profile', 'Directory for the trace and summary.')
flags.mark_flags_as_required(['config'])


def _merged_length(intervals: list[tuple[float, float]]) -> float:
  """Total length covered by a set of (start, end) intervals."""
  total, reach = 0.0, float('-inf')
  for start, end in sorted(intervals):
    if end > reach:
      total += end - max(start, reach)
      reach = end
  return total


# Host-side events of the CPU runtime that wrap or mark XLA operations rather than being one.
_CPU_WRAPPERS = ('ThunkExecutor', 'SlinkyThreadPool', 'ThreadpoolListener', 'end: ', 'while')


def summarize_trace(path: str) -> dict:
  """Sums the complete ('X') events of a Perfetto trace by name on the devices' timelines.

  GPU kernels live in processes named '/device:GPU:n'; on a CPU-only trace the XLA operations run
  on the host client's threads (named 'tf_XLA...'), and those are summed instead, without the
  runtime's wrapper events (a rougher picture: CPU operations may run on several threads at once).

  Returns:
    `{'timeline': which events were summed, 'busy_us': time any of them ran (overlaps merged),
    'span_us': first start to last end, 'ops': [{name, count, total_us}] by decreasing total}`.
  """
  with gzip.open(path, 'rt') as f:
    trace = json.load(f)
  events = trace['traceEvents'] if isinstance(trace, dict) else trace
  meta = [e for e in events if e.get('ph') == 'M']
  procs = {e['pid']: e['args'].get('name', '') for e in meta if e.get('name') == 'process_name'}
  threads = {
    (e['pid'], e['tid']): e['args'].get('name', '') for e in meta if e.get('name') == 'thread_name'
  }
  complete = [e for e in events if e.get('ph') == 'X' and 'dur' in e]
  on_device = [e for e in complete if procs.get(e['pid'], '').startswith('/device:')]
  if on_device:
    chosen, timeline = on_device, 'device kernels'
  else:
    chosen = [
      e
      for e in complete
      if threads.get((e['pid'], e['tid']), '').startswith('tf_XLA')
      and not e['name'].startswith(_CPU_WRAPPERS)
    ]
    timeline = 'host XLA threads (no device timeline: CPU run)'
  totals, counts = collections.Counter(), collections.Counter()
  for e in chosen:
    totals[e['name']] += float(e['dur'])
    counts[e['name']] += 1
  intervals = [(float(e['ts']), float(e['ts']) + float(e['dur'])) for e in chosen]
  span = (max(b for _, b in intervals) - min(a for a, _ in intervals)) if intervals else 0.0
  return {
    'timeline': timeline,
    'busy_us': _merged_length(intervals),
    'span_us': span,
    'ops': [{'name': n, 'count': counts[n], 'total_us': t} for n, t in totals.most_common()],
  }


def _trace(run, out: str) -> tuple[float, str]:
  """Runs `run()` under the profiler; returns (wall seconds, path of the Perfetto trace)."""
  before = set(glob.glob(os.path.join(out, '**', 'perfetto_trace.json.gz'), recursive=True))
  with jax.profiler.trace(out, create_perfetto_trace=True):
    t0 = time.perf_counter()
    run()
    wall = time.perf_counter() - t0
  after = set(glob.glob(os.path.join(out, '**', 'perfetto_trace.json.gz'), recursive=True))
  (path,) = after - before
  return wall, path


def _training_run(call, state, chunks: int):
  """Compiles `call(0, state)`; returns `run()`, which makes calls 1..chunks carrying the state.

  `call(c, state) -> (state, stats)` runs compiled chunk `c` and donates `state`, so each run
  starts from the state the previous one returned.
  """
  state, stats = call(0, state)  # compile
  jax.block_until_ready(stats)
  holder = {'state': state}

  def run():
    s = holder['state']
    for c in range(1, chunks + 1):
      s, out = call(c, s)
    jax.block_until_ready(out)
    holder['state'] = s

  return run


def session_runner(config, what: str, chunks: int):
  """GRU4Rec / HRNN: (run, units, n_units) with `run()` tracing `chunks` calls or one test pass."""
  task = train.build_session_task(config)
  steps_per_call = int(config.steps_per_call)
  state = task.state

  if what == 'train':

    def call(c, state):
      start = jnp.int32((c % task.n_chunks) * steps_per_call)
      return task.chunk_fn(state, task.arrays, start)

    return _training_run(call, state, chunks), 'steps', chunks * steps_per_call

  model = nnx.merge(task.graphdef, state.tables, state.dense)
  task.evaluate(model, 'test')  # compile

  def run_eval():
    task.evaluate(model, 'test')

  return run_eval, 'evaluation passes', 1


def sequence_runner(config, what: str, chunks: int):
  """SASRec & co.: the same on one epoch's batches, or a full-catalogue ranking of test users."""
  task = seq_train.build_sequence_task(config)
  steps_per_call = task.steps_per_call
  state = sharding.replicate(task.state, task.mesh)

  if what == 'train':
    indices, ok, n_chunks = task.epoch_schedule(0)  # [S, B] each: the first epoch's batches

    def call(c, state):
      start = jnp.int32((c % n_chunks) * steps_per_call)
      return task.chunk_fn(state, task.examples, indices, ok, start)

    return _training_run(call, state, chunks), 'steps', chunks * steps_per_call

  model = nnx.merge(task.graphdef, state.params, state.others)
  split = seq_train.eval_split(task.data, 'test', sequential.history_length(config))
  counts = task.data.item_counts

  def run_eval():
    seq_train.evaluate(model, split, config, counts)

  run_eval()  # compile
  return run_eval, 'evaluation passes', 1


def main(argv):
  del argv
  config = _CONFIG.value
  runner = sequence_runner if config.model in SEQUENCE_MODELS else session_runner
  run, units, n_units = runner(config, _WHAT.value, _CHUNKS.value)
  wall, path = _trace(run, _OUT.value)
  summary = summarize_trace(path)
  summary.update(
    what=_WHAT.value,
    device=jax.devices()[0].device_kind,
    wall_us=wall * 1e6,
    units=units,
    n_units=n_units,
    trace=path,
  )
  print(
    f'{jax.devices()[0].device_kind}: {n_units} {units} in {wall * 1e3:.1f} ms wall; '
    f'{summary["timeline"]} busy {summary["busy_us"] / 1e3:.1f} ms '
    f'({100 * summary["busy_us"] / max(wall * 1e6, 1e-9):.0f}% of wall), '
    f'{sum(op["count"] for op in summary["ops"]) / n_units:.1f} events per unit'
  )
  busy = max(summary['busy_us'], 1e-9)
  print(f'{"share":>6} {"per unit":>9} {"mean us":>9}  name')
  for op in summary['ops'][: _TOP.value]:
    print(
      f'{100 * op["total_us"] / busy:5.1f}% {op["count"] / n_units:9.2f} '
      f'{op["total_us"] / op["count"]:9.1f}  {op["name"][:100]}'
    )
  with open(os.path.join(_OUT.value, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=1)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
