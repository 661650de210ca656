"""Builds a markdown results table (mean ± std over seeds) from seqrec's JSON-lines result files.

    python experiments/results_table.py experiments/gru4rec_fidelity/results.jsonl \
      --metrics=test/recall@20,test/mrr@20
    python experiments/results_table.py experiments/baselines/results.jsonl \
      experiments/gru4rec_fidelity/results.jsonl --metrics=test/recall@20,test/mrr@20,fit_seconds \
      --by_data

Rows of runs that their time limit ended early (`"time_limited": true`, written by
experiments/seeds.py) are left out, or with --include_time_limited shown under their own label.
A run trained on across several time-limited sessions writes a record per session; only the
latest record of each (data, label, seed) counts.
"""

import collections
import difflib
import json
import sys

import numpy as np
from absl import app, flags

from seqrec import reporting

_METRICS = flags.DEFINE_list('metrics', ['test/recall@20', 'test/mrr@20'], 'Columns.')
_BY_DATA = flags.DEFINE_bool('by_data', False, 'Keep the rows of each dataset together.')
_INCLUDE_TIME_LIMITED = flags.DEFINE_bool(
  'include_time_limited', False, 'Show runs cut short by their time limit, labelled as such.'
)
_REFERENCE = flags.DEFINE_string(
  'reference',
  '',
  'JSON {label: {metric: value}} of published/official numbers to show beside, or a .json file.',
)


def _mean_std(mean: float, std: float) -> str:
  """4 decimals for metrics; 1 for values of 10 or more, such as seconds."""
  digits = 4 if abs(mean) < 10 else 1
  return f'{mean:.{digits}f} ± {std:.{digits}f}'


def _run_key(record: dict) -> tuple:
  return record.get('data', ''), record['label'], record['seed']


def _check_same_config(rows: list[dict]) -> None:
  """Refuses to average (or replace) rows of one label made with different configs.

  Raises:
    ValueError: naming the label and the seeds of each config digest.
  """
  seeds = collections.defaultdict(list)
  for r in rows:
    if 'config_sha256' in r:  # older rows carry no digest
      seeds[r['config_sha256']].append(r.get('seed'))
  if len(seeds) > 1:
    parts = '; '.join(f'seeds {s} with config_sha256 {d}' for d, s in seeds.items())
    raise ValueError(
      f'label {rows[0]["label"]!r} (data {rows[0].get("data", "")!r}) holds runs of different '
      f'configs: {parts}. Give each experiment its own --label.'
    )


def table(
  records: list[dict],
  metrics: list[str],
  reference: dict | None = None,
  by_data: bool = False,
  include_time_limited: bool = False,
) -> str:
  """Markdown table with one row per (data, label): mean ± std over seeds, and the seed count.

  Rows come in order of first appearance; with `by_data`, rows of the same dataset are kept
  together (datasets in order of first appearance), e.g. for baselines and a model read from two
  files. A column may be any numeric record field, e.g. `fit_seconds`; records without it show '–'.
  A time-limited record (`"time_limited": true`) is left out, or with `include_time_limited` put
  in a row of its own, labelled '<label> (time-limited, epoch E)'. Of several records of one
  (data, label, seed), e.g. a run resumed after its time limit, only the last one counts.
  """
  last = {_run_key(r): i for i, r in enumerate(records) if 'seed' in r}
  groups = collections.OrderedDict()
  data_order = {}
  for i, r in enumerate(records):
    if 'seed' in r and last[_run_key(r)] != i:
      _check_same_config([r, records[last[_run_key(r)]]])
      continue  # superseded by a later record of the same run
    label = r['label']
    if r.get('time_limited'):
      if not include_time_limited:
        continue
      label = f'{label} (time-limited, epoch {r.get("epochs", "?")})'
    data_order.setdefault(r.get('data', ''), len(data_order))
    groups.setdefault((r.get('data', ''), label), []).append(r)
  if by_data:
    groups = dict(sorted(groups.items(), key=lambda item: data_order[item[0][0]]))  # stable
  head = ['data', 'model', 'seeds'] + metrics
  if reference:
    head += [f'reference {m}' for m in metrics] + [f'Δ {m}' for m in metrics]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for (data, label), rows in groups.items():
    _check_same_config(rows)
    cells = [data, label, str(len(rows))]
    means = {}
    for m in metrics:
      values = np.array([r[m] for r in rows if m in r], float)
      means[m] = values.mean() if len(values) else float('nan')
      std = values.std(ddof=1) if len(values) > 1 else 0.0
      cells.append(_mean_std(means[m], std) if len(values) else '–')
    if reference:
      ref = reference.get(label, {})
      cells += [f'{ref[m]:.4f}' if m in ref else '–' for m in metrics]
      cells += [f'{(means[m] / ref[m] - 1) * 100:+.1f}%' if m in ref else '–' for m in metrics]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def check_metrics(records: list[dict], metrics: list[str]) -> None:
  """Raises ValueError naming `--metrics` when a column is a field of none of the records.

  A mistyped metric (`test/ndcg@11`) would otherwise fill its column with '–' for every row.
  """
  for m in metrics:
    if any(m in r for r in records):
      continue
    numeric = sorted(
      {
        k
        for r in records
        for k, v in r.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k != 'seed'
      }
    )
    close = difflib.get_close_matches(m, numeric, n=3)
    hint = f'did you mean {", ".join(close)}?' if close else f'numeric fields: {", ".join(numeric)}'
    raise ValueError(f'--metrics: {m!r} is a field of none of the {len(records)} records; {hint}')


def load_reference(value: str) -> dict | None:
  """`--reference`: None when empty, the contents of a `.json` file, or inline JSON."""
  if not value:
    return None
  try:
    if value.endswith('.json'):
      with open(value) as f:
        reference = json.load(f)
    else:
      reference = json.loads(value)
  except json.JSONDecodeError as e:
    raise ValueError(f'--reference={value}: not valid JSON ({e})') from None
  if not isinstance(reference, dict) or not all(isinstance(v, dict) for v in reference.values()):
    raise ValueError(f'--reference={value}: expected JSON {{label: {{metric: value}}}}')
  return reference


def main(argv):
  if len(argv) < 2:
    raise app.UsageError('expected one or more JSON-lines results files after the flags')
  try:
    records = [r for path in argv[1:] for r in reporting.read_json_lines(path)]
    check_metrics(records, _METRICS.value)
    reference = load_reference(_REFERENCE.value)
    text = table(
      records,
      _METRICS.value,
      reference,
      by_data=_BY_DATA.value,
      include_time_limited=_INCLUDE_TIME_LIMITED.value,
    )
  except (OSError, ValueError) as e:  # DataError and json's errors are ValueErrors
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(text)


if __name__ == '__main__':
  app.run(main)
