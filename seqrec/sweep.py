"""Grids over config fields for sweeps: axes, per-point configs, run names, result rows, ranking."""

import ast
import datetime
import difflib
import hashlib
import itertools
import json
import os
import re

import jax
import ml_collections
import numpy as np

from seqrec import checkpointing, reporting, seq_train, train
from seqrec.models.sequential import SEQUENCE_MODELS


class AxisError(ValueError):
  """A malformed sweep flag: an `--axis` (or one naming no field or a wrong type), `--worker`,
  or a `--label` whose `--output` already records its runs under another config."""


# Config fields a results row's `config_sha256` leaves out: the seed (each row names its own), where
# the data lies (the same data on another machine) and what changes only how fast a run goes or
# when it stops to save. Rows of one label that differ in anything else are different experiments.
_NOT_IN_DIGEST = (
  {'seed', 'steps_per_call', 'data.train_path', 'data.test_path', 'data.valid_path'}
  | checkpointing.RERUN_MAY_CHANGE
) - {'n_epochs', 'early_stopping.patience'}


# Config fields added after rows carried digests, with the value that does what runs did before
# them. At that value a field is left out, so the rows already written keep matching new runs.
_LATER_FIELDS = {'data.time_unit': 's', 'final_act': 'linear'}


def config_digest(config: ml_collections.ConfigDict) -> str:
  """16 hex digits identifying what a run computes (see `_NOT_IN_DIGEST` for what it ignores)."""
  fields = checkpointing.dotted(json.loads(config.to_json()))
  kept = {
    k: v
    for k, v in fields.items()
    if k not in _NOT_IN_DIGEST and (k not in _LATER_FIELDS or v != _LATER_FIELDS[k])
  }
  return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def parse_axes(specs: list[str]) -> list[tuple[str, list]]:
  """`['lr=[0.1, 0.2]', ...]` -> `[('lr', [0.1, 0.2]), ...]`.

  Raises:
    AxisError: naming the `--axis` that is not `FIELD=[non-empty list]`, or a field given
      twice.
  """
  axes = []
  for spec in specs:
    field, sep, values = spec.partition('=')
    field = field.strip()
    try:
      parsed = ast.literal_eval(values.strip()) if sep else None
    except (ValueError, SyntaxError):
      parsed = None
    if not field or not isinstance(parsed, list) or not parsed:
      raise AxisError(
        f'--axis={spec!r}: expected FIELD=[v1, v2, ...], a config field and a non-empty Python '
        "list literal, e.g. --axis='learning_rate=[0.05, 0.1]'"
      )
    if field == 'seed':
      raise AxisError(
        f'--axis={spec!r}: seeds are not an axis; give them as --seeds={",".join(map(str, parsed))}'
      )
    if field in [f for f, _ in axes]:
      raise AxisError(f'--axis: {field!r} is given twice; put all its values in one list')
    axes.append((field, parsed))
  return axes


def grid(axes: list[tuple[str, list]], label: str) -> list[dict]:
  """The product of the axes as `{field: value}` points, the last axis varying fastest.

  Raises:
    AxisError: when two points would share a run directory (values that differ only in
      characters a directory name drops).
  """
  fields = [f for f, _ in axes]
  combos = itertools.product(*(values for _, values in axes))
  points = [dict(zip(fields, combo, strict=True)) for combo in combos]
  names = [workdir_name(label, point, 0) for point in points]
  if len(set(names)) < len(names):
    raise AxisError(f'--axis values give clashing run directories: {names}')
  return points


def parse_worker(spec: str) -> tuple[int, int]:
  """`'1/4'` -> `(1, 4)`: this process is worker 1 of 4 sharing one sweep.

  Raises:
    AxisError: naming `--worker` when `spec` is not `I/N` with 0 <= I < N.
  """
  match = re.fullmatch(r'\s*(\d+)\s*/\s*(\d+)\s*', spec)
  if not match or not int(match[1]) < int(match[2]):
    raise AxisError(f'--worker={spec!r}: expected I/N with 0 <= I < N, e.g. --worker=0/4')
  return int(match[1]), int(match[2])


def worker_runs(runs: list, worker: tuple[int, int]) -> list:
  """The share of `runs` (the sweep's (point, seed) list, in order) that `worker` does.

  Runs are dealt round-robin, so N processes started with `--worker=0/N` ... `--worker=N-1/N`
  (e.g. one per GPU) do every run exactly once between them, each a fixed share.
  """
  index, count = worker
  return runs[index::count]


def point_config(config: ml_collections.ConfigDict, point: dict) -> ml_collections.ConfigDict:
  """A copy of `config` with the point's values set, checked as the trainer would check it.

  Raises:
    AxisError: naming the axis whose field does not exist or whose value has the wrong type.
    seqrec.train.ConfigError: a value the trainer rejects, naming the field (and the grid point,
      when the grid has axes).
  """
  config = config.copy_and_resolve_references()
  for field, value in point.items():
    node, path = config, field.split('.')
    for depth, key in enumerate(path):
      if not isinstance(node, ml_collections.ConfigDict) or key not in node:
        where = '.'.join(path[:depth]) or 'the config'
        known = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        close = difflib.get_close_matches(key, known, n=1)
        hint = f'; did you mean {close[0]!r}?' if close else ''
        raise AxisError(f'--axis {field}=...: {where} has no field {key!r}{hint}')
      node = node[key]
    try:
      config.update_from_flattened_dict({field: value})
    except (KeyError, AttributeError, TypeError) as e:
      raise AxisError(f'--axis {field}={value!r}: {e}') from None
  try:
    if config.model in SEQUENCE_MODELS:
      seq_train.validate_sequence_config(config)
    else:
      train.validate_config(config)
  except train.ConfigError as e:
    if not point:
      raise
    raise train.ConfigError(f'at the grid point {point_name(point)}: {e}') from None
  return config


def point_name(point: dict) -> str:
  """`{'lr': 0.1, 'layers': (100,)}` -> `'lr=0.1,layers=(100,)'` (the row label's suffix)."""
  return ','.join(f'{k}={v!r}' for k, v in point.items())


def workdir_name(label: str, point: dict, seed: int) -> str:
  """`LABEL-seedS` for the point of an empty grid, `LABEL-lr=0.1,layers=100-seedS` otherwise."""
  if not point:
    return f'{label}-seed{seed}'
  safe = re.sub(r'[^A-Za-z0-9_.,=+-]', '', point_name(point))
  return f'{label}-{safe}-seed{seed}'


def row_label(label: str, point: dict) -> str:
  """`LABEL[lr=0.1,layers=(100,)]`, or `LABEL` for the point of an empty grid."""
  return f'{label}[{point_name(point)}]' if point else label


def read_rows(path: str) -> list[dict]:
  """The finished (not time-limited) rows of a results file; none when it does not exist yet."""
  if not os.path.exists(path):
    return []
  return [r for r in reporting.read_json_lines(path) if not r.get('time_limited')]


def data_name(config: ml_collections.ConfigDict) -> str:
  """The dataset a results row names (`data`): the config's data name, else its format."""
  return config.data.name or config.data.format


def finished_runs(path: str) -> dict[tuple[str, str, int], str | None]:
  """`{(data, label, seed): config_sha256}` of the finished runs the results file `path` records
  (None for a row written before rows carried the digest). One label may hold runs on several
  datasets, as `results_table.py --by_data` shows them."""
  return {
    (r.get('data', ''), r['label'], int(r['seed'])): r.get('config_sha256') for r in read_rows(path)
  }


def record(
  config: ml_collections.ConfigDict, label: str, point: dict, seed: int, result: dict
) -> dict:
  """One results row from a trainer's result dict."""
  valid = result.get('valid_best') or {}
  return {
    'label': row_label(label, point),
    'seed': seed,
    'date': datetime.date.today().isoformat(),
    'device': jax.devices()[0].device_kind,
    'data': data_name(config),
    'model': config.model,
    **({'sweep': point} if point else {}),
    'config_sha256': config_digest(config),
    **{f'valid/{k}': v for k, v in valid.items()},
    **{f'test/{k}': v for k, v in result['test'].items()},
    **{f'pop/{k}': v for k, v in result['popularity_test'].items()},
    'train_events_per_sec': result['train_events_per_sec_median'],
    'test_events_per_sec': result['test_events_per_sec'],
    'epochs': result['epochs'],
    # The validated epoch that was tested, and whether the time limit (sequence models) ended
    # training before its schedule did.
    **{k: result[k] for k in ('best_epoch', 'time_limited') if k in result},
    'wall_seconds': result['wall_seconds'],
    # Baselines (seqrec.baselines) also report how long fitting and the test evaluation took.
    **{k: result[k] for k in ('fit_seconds', 'test_seconds') if k in result},
  }


def ranking(rows: list[dict]) -> list[str]:
  """Lines listing the points by mean validation value, best first, with the matching test value.

  Rows without a validation value (no validation split) are listed after the others, in order.
  """
  by_label = {}
  for r in rows:
    by_label.setdefault(r['label'], []).append(r)
  lines = []
  for label, group in by_label.items():
    seeds = f'{len(group)} seed' + ('s' if len(group) > 1 else '')
    valid_keys = sorted(k for k in group[0] if k.startswith('valid/'))
    if valid_keys:
      key = valid_keys[0]
      test_key = 'test/' + key.removeprefix('valid/')
      v = float(np.mean([r[key] for r in group if key in r]))
      t = float(np.mean([r[test_key] for r in group if test_key in r] or [np.nan]))
      lines.append((-v, f'{label}: {key} {v:.4f}, {test_key} {t:.4f} ({seeds})'))
    else:
      lines.append((np.inf, f'{label}: no validation split ({seeds})'))
  return [text for _, text in sorted(lines, key=lambda item: item[0])]
