"""Builds a markdown results table (mean ± std over seeds) from seqrec's JSON-lines result files.

    python experiments/results_table.py experiments/gru4rec_fidelity/results.jsonl \
      --metrics=test/recall@20,test/mrr@20
"""

import collections
import json

import numpy as np
from absl import app, flags

_METRICS = flags.DEFINE_list('metrics', ['test/recall@20', 'test/mrr@20'], 'Columns.')
_REFERENCE = flags.DEFINE_string(
  'reference', '', 'JSON {label: {metric: value}} of published/official numbers to show beside.'
)


def table(records: list[dict], metrics: list[str], reference: dict | None = None) -> str:
  """Markdown table with one row per (data, label): mean ± std over seeds, and the seed count."""
  groups = collections.OrderedDict()
  for r in records:
    groups.setdefault((r.get('data', ''), r['label']), []).append(r)
  head = ['data', 'model', 'seeds'] + metrics
  if reference:
    head += [f'reference {m}' for m in metrics] + [f'Δ {m}' for m in metrics]
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for (data, label), rows in groups.items():
    cells = [data, label, str(len(rows))]
    means = {}
    for m in metrics:
      values = np.array([r[m] for r in rows if m in r], float)
      means[m] = values.mean() if len(values) else float('nan')
      std = values.std(ddof=1) if len(values) > 1 else 0.0
      cells.append(f'{means[m]:.4f} ± {std:.4f}' if len(values) else '–')
    if reference:
      ref = reference.get(label, {})
      cells += [f'{ref[m]:.4f}' if m in ref else '–' for m in metrics]
      cells += [f'{(means[m] / ref[m] - 1) * 100:+.1f}%' if m in ref else '–' for m in metrics]
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv):
  records = []
  for path in argv[1:]:
    with open(path) as f:
      records += [json.loads(line) for line in f if line.strip()]
  reference = json.loads(_REFERENCE.value) if _REFERENCE.value else None
  print(table(records, _METRICS.value, reference))


if __name__ == '__main__':
  app.run(main)
