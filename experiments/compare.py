"""Compares two finished runs prediction by prediction: is B better than A, and by how much?

    python experiments/compare.py runs/sequential/bert4rec-ml1m-cpu-200ep-seed0 \
      runs/sequential/sasrec-ce-cpu-seed1 --metrics=ndcg@10,recall@10

Both runs must have been tested on the same predictions (same data, split and ranking rules);
each run's `test_ranks.npz` holds the rank of every test target. For each metric it prints A's
and B's means, the difference B - A with its relative size, a percentile bootstrap 95% interval
of the difference (resampling the predictions, `--resamples`, fixed `--seed`) and the p-value of
a two-sided paired t-test. Pairing removes the variance between users, so it finds differences
that two unpaired means with overlapping spreads hide. `--sampled` compares the sampled-metric
ranks instead (runs evaluated with `eval.sampled_n`). `--output` appends the result as a JSON
line.
"""

import json
import sys

from absl import app, flags

from seqrec import cli, comparison

_METRICS = flags.DEFINE_list('metrics', ['ndcg@10', 'recall@10'], 'recall@K, mrr@K or ndcg@K.')
_SAMPLED = flags.DEFINE_bool('sampled', False, 'Compare the sampled-metric ranks.')
_RESAMPLES = flags.DEFINE_integer('resamples', 10_000, 'Bootstrap resamples.')
_SEED = flags.DEFINE_integer('seed', 0, 'Bootstrap seed.')
_OUTPUT = flags.DEFINE_string('output', '', 'JSON-lines file to append the result to.')


def compare(workdir_a: str, workdir_b: str) -> dict:
  """`{'a': workdir_a, 'b': workdir_b, 'sampled': bool, metric: paired_difference(...)}`."""
  a, b = comparison.load_test_ranks(workdir_a), comparison.load_test_ranks(workdir_b)
  if _SAMPLED.value:
    if a.sampled_ranks is None or b.sampled_ranks is None:
      raise ValueError('--sampled: both runs must have been evaluated with eval.sampled_n > 0')
    a, b = (comparison.RunRanks(**{**vars(r), 'ranks': r.sampled_ranks}) for r in (a, b))
  ranks_a, ranks_b = comparison.pair(a, b)
  result = {'a': workdir_a, 'b': workdir_b, 'sampled': _SAMPLED.value}
  for metric in _METRICS.value:
    result[metric] = comparison.paired_difference(
      comparison.per_prediction(ranks_a, metric),
      comparison.per_prediction(ranks_b, metric),
      n_resamples=_RESAMPLES.value,
      seed=_SEED.value,
    )
  return result


def main(argv):
  if len(argv) != 3:
    raise app.UsageError('expected two run directories: A (the baseline) and B')
  try:
    result = compare(argv[1], argv[2])
  except (OSError, ValueError) as e:  # a missing file, other predictions, a bad metric
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  n = next(v['n'] for k, v in result.items() if isinstance(v, dict))
  print(f'A = {argv[1]}\nB = {argv[2]}\n{n} paired test predictions')
  print(f'{"metric":<12} {"A":>8} {"B":>8} {"B - A":>9} {"rel.":>7}  {"95% interval":>19}  p')
  for metric in _METRICS.value:
    r = result[metric]
    print(
      f'{metric:<12} {r["a"]:8.4f} {r["b"]:8.4f} {r["diff"]:+9.4f} {100 * r["relative"]:+6.1f}%  '
      f'[{r["ci_low"]:+.4f}, {r["ci_high"]:+.4f}]  {r["p_value"]:.2g}'
    )
  if _OUTPUT.value:
    with open(_OUTPUT.value, 'a') as f:
      f.write(json.dumps(result) + '\n')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
