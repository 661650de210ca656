"""Runs a config over a grid of overrides and seeds, one JSON line of final metrics per run.

    python experiments/sweep.py --config=seqrec/configs/sequence_test.py \
      --axis='learning_rate=[0.001, 0.003]' --axis='sasrec.hidden=[16, 32]' --seeds=0,1 \
      --label=tiny-sasrec --output=runs/sweeps/tiny.jsonl --workdir_root=runs/sweeps

Each `--axis` is `FIELD=[v1, v2, ...]`: a config field (dotted inside a sub-config) and a Python
list literal of its values. The grid is the product of the axes, in flag order, and every point
runs under every seed; without `--axis` this is a seed sweep (`experiments/seeds.py`). Every
point's config is checked before the first run starts, so a bad value fails at once, naming its
axis.

Runs: `WORKDIR_ROOT/LABEL[-POINT]-seedS`. A point's rows are labelled `LABEL[field=value,...]`,
so experiments/results_table.py shows one row per point. Each row holds the label, seed, date,
device, the point's values (`sweep`), the test metrics, POP's, the training speed and, when the
config validates, the best validation value (`valid/<early_stopping.metric>`). A run whose
`config.time_limit_secs` ended it early is marked `"time_limited": true`.

Re-running the same command skips the runs that `--output` already records as finished and resumes
the others from their checkpoints, so a killed sweep loses nothing. `--worker=I/N` runs only the
I-th of N round-robin shares of the (point, seed) runs, so N processes, e.g. one per GPU, share a
sweep and its `--output` file:

    for i in 0 1 2 3; do
      CUDA_VISIBLE_DEVICES=$i python experiments/sweep.py ... --worker=$i/4 &
    done; wait

At the end, the points are listed by their validation value (mean over seeds), best first: choose
on validation, and read the test columns only for the chosen point.
"""

import json
import os
import re
import sys

from absl import app, flags
from ml_collections import config_flags

from seqrec import cli, reporting, sweep, train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_AXES = flags.DEFINE_multi_string(
  'axis', [], "A grid axis, 'FIELD=[v1, v2, ...]' (a Python list literal); repeat for a grid."
)
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds to run at every point.')
_LABEL = flags.DEFINE_string('label', None, 'Row label in the results table.')
_OUTPUT = flags.DEFINE_string('output', None, 'JSON-lines file the results are appended to.')
_WORKDIR = flags.DEFINE_string('workdir_root', 'runs/seeds', 'Run directories go below this.')
_WORKER = flags.DEFINE_string(
  'worker', '0/1', 'I/N: run the I-th of N round-robin shares of the runs (one process per GPU).'
)
flags.mark_flags_as_required(['config', 'label', 'output'])
flags.register_validator(
  'seeds',
  lambda seeds: bool(seeds) and all(re.fullmatch(r'\d+', s.strip()) for s in seeds),
  message='--seeds: expected one or more comma-separated non-negative integers, e.g. --seeds=0,1,2',
)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  reporting.quiet_library_logs()
  try:
    run_sweep()
  except (sweep.AxisError, *train.INPUT_ERRORS) as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)


def run_sweep():
  label, output = _LABEL.value, _OUTPUT.value
  worker = sweep.parse_worker(_WORKER.value)
  points = sweep.grid(sweep.parse_axes(_AXES.value), label)
  configs = [sweep.point_config(_CONFIG.value, point) for point in points]  # before any run
  runs = [(p, c, int(s)) for p, c in zip(points, configs, strict=True) for s in _SEEDS.value]
  done = sweep.finished_runs(output)
  for point, config, seed in sweep.worker_runs(runs, worker):
    name = sweep.row_label(label, point)
    config = config.copy_and_resolve_references()
    with config.unlocked():
      config.seed = seed
    key = (sweep.data_name(config), name, seed)
    if key in done:
      if done[key] not in (None, sweep.config_digest(config)):
        raise sweep.AxisError(
          f'{name} seed {seed} on {key[0]}: {output} already holds this run made with another '
          f'config (config_sha256 {done[key]}, this command {sweep.config_digest(config)}); '
          'give this experiment its own --label (and --workdir_root)'
        )
      print(f'{name} seed {seed} on {key[0]}: already in {output}, skipped', flush=True)
      continue
    workdir = os.path.join(_WORKDIR.value, sweep.workdir_name(label, point, seed))
    try:
      result = train.train_and_evaluate(config, workdir)
    except train.TrainingDivergedError as e:  # an outcome of the grid, not a broken command
      print(f'{name} seed {seed}: not recorded: {e}', flush=True)
      continue
    except KeyboardInterrupt:
      cli.exit_interrupted(workdir, f'; a rerun of this command skips the runs {output} holds')
    row = reporting.json_safe(sweep.record(config, label, point, seed, result))
    print(json.dumps(row), flush=True)
    os.makedirs(os.path.dirname(output) or '.', exist_ok=True)
    with open(output, 'a') as f:  # one short write per row: workers can share the file
      f.write(json.dumps(row) + '\n')
  if len(points) > 1:
    labels = {sweep.row_label(label, point) for point in points}
    rows = [r for r in sweep.read_rows(output) if r['label'] in labels]
    wanted = {(sweep.row_label(label, point), seed) for point, _, seed in runs}
    recorded = wanted & {(r['label'], int(r['seed'])) for r in rows}
    if len(recorded) < len(wanted):  # other workers still running, or runs that failed
      print(f'\n{len(recorded)} of the {len(wanted)} runs are in {output} so far.')
    print('\nThe points by validation, best first (choose here; read test for the chosen one):')
    print('\n'.join(sweep.ranking(rows)))


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
