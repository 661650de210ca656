"""Compares two finished runs prediction by prediction: is B better than A, and by how much?

    python experiments/compare.py runs/sequential/sasrec-bce-paper-200ep-cpu-seed1 \
      runs/sequential/caser-ml1m-cpu-seed1 --metrics=ndcg@10,recall@10
    # several runs a side (comma-separated, e.g. seeds): a prediction's value is their mean;
    # an argument naming a directory is one run (a sweep's run names hold commas)
    python experiments/compare.py A_SEED0,A_SEED1,A_SEED2 B_SEED0,B_SEED1,B_SEED2

All runs must have been tested on the same predictions (same data, split and ranking rules);
each run's `test_ranks.npz` holds the rank of every test target. For each metric it prints A's
and B's means, the difference B - A with its relative size, a percentile bootstrap 95% interval
of the difference (resampling the predictions, `--resamples`, fixed `--seed`) and the p-value of
a two-sided paired t-test. Pairing removes the variance between users, so it finds differences
that two unpaired means with overlapping spreads hide. `--sampled` compares the sampled-metric
ranks instead (runs evaluated with the same `eval.sampled_*`). `--by=history_length` (the items
before the target: the user's history, or the target session's prefix) or `--by=target_count`
(the target's training popularity) also compares within `--buckets` quantile groups of the
predictions, e.g. to see whether B's gain comes from short histories or long-tail targets.
`--output` appends the result as a JSON line.
"""

import json
import os
import sys

import numpy as np
from absl import app, flags

from seqrec import cli, comparison

_METRICS = flags.DEFINE_list('metrics', ['ndcg@10', 'recall@10'], 'recall@K, mrr@K or ndcg@K.')
_SAMPLED = flags.DEFINE_bool('sampled', False, 'Compare the sampled-metric ranks.')
_RESAMPLES = flags.DEFINE_integer('resamples', 10_000, 'Bootstrap resamples.')
_SEED = flags.DEFINE_integer('seed', 0, 'Bootstrap seed.')
_OUTPUT = flags.DEFINE_string('output', '', 'JSON-lines file to append the result to.')
_BY = flags.DEFINE_enum(
  'by',
  None,
  ['history_length', 'target_count'],
  'Also compare within groups of predictions: by the history before the target, or by the '
  "target's training popularity.",
)
_BUCKETS = flags.DEFINE_integer(
  'buckets', 4, 'Groups for --by (quantiles of its values).', lower_bound=1
)


def compare(side_a: list[str], side_b: list[str]) -> dict:
  """`{'a': side_a, 'b': side_b, 'sampled': bool, metric: paired_difference(...)}`.

  Every run is paired with the first run of A, so all of them must hold the same predictions; a
  side's per-prediction values are the mean over its runs (e.g. its seeds).
  """
  runs_a = [comparison.load_test_ranks(w) for w in side_a]
  runs_b = [comparison.load_test_ranks(w) for w in side_b]
  reference = runs_a[0]
  ranks_a = [comparison.pair(reference, r, _SAMPLED.value)[1] for r in runs_a]
  ranks_b = [comparison.pair(reference, r, _SAMPLED.value)[1] for r in runs_b]
  result = {'a': side_a, 'b': side_b, 'sampled': _SAMPLED.value}
  groups = []
  if _BY.value:
    groups = comparison.quantile_buckets(getattr(reference, _BY.value), _BUCKETS.value)
  for metric in _METRICS.value:
    values_a = np.mean([comparison.per_prediction(r, metric) for r in ranks_a], axis=0)  # [P]
    values_b = np.mean([comparison.per_prediction(r, metric) for r in ranks_b], axis=0)
    options = dict(n_resamples=_RESAMPLES.value, seed=_SEED.value)
    result[metric] = comparison.paired_difference(values_a, values_b, **options)
    if groups:
      result[metric][f'by_{_BY.value}'] = {
        label: comparison.paired_difference(values_a[mask], values_b[mask], **options)
        for label, mask in groups
      }
  return result


def _run_dirs(arg: str) -> list[str]:
  """One side's run directories: `arg` itself when it is a directory (a sweep's run names hold
  commas), else its comma-separated parts."""
  if os.path.isdir(arg):
    return [arg]
  return [w for w in arg.split(',') if w]


def main(argv):
  if len(argv) != 3:
    raise app.UsageError('expected two run directories (or comma-separated lists): A, then B')
  side_a, side_b = (_run_dirs(arg) for arg in argv[1:])
  try:
    result = compare(side_a, side_b)
  except (OSError, ValueError) as e:  # a missing file, other predictions, a bad metric
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  n = next(v['n'] for k, v in result.items() if isinstance(v, dict))
  print(f'A = {", ".join(side_a)}\nB = {", ".join(side_b)}\n{n} paired test predictions')
  print(f'{"metric":<12} {"A":>8} {"B":>8} {"B - A":>9} {"rel.":>7}  {"95% interval":>19}  p')
  for metric in _METRICS.value:
    rows = [(metric, result[metric])]
    rows += [(f'  {label}', r) for label, r in result[metric].get(f'by_{_BY.value}', {}).items()]
    for name, r in rows:
      print(
        f'{name:<12} {r["a"]:8.4f} {r["b"]:8.4f} {r["diff"]:+9.4f} {100 * r["relative"]:+6.1f}%  '
        f'[{r["ci_low"]:+.4f}, {r["ci_high"]:+.4f}]  {r["p_value"]:.2g}  n={r["n"]}'
      )
  if _OUTPUT.value:
    with open(_OUTPUT.value, 'a') as f:
      f.write(json.dumps(result) + '\n')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
