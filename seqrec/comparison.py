"""Per-prediction test ranks of a run (`test_ranks.npz`) and paired comparisons of two runs."""

import dataclasses
import math
import os
import re

import numpy as np
from scipy import stats

from seqrec.data.errors import DataError

RANKS_FILE = 'test_ranks.npz'
_REQUIRED = ('keys', 'targets', 'ranks', 'history_length', 'target_count', 'tie_mode')
_REQUIRED += ('exclude_seen', 'sampled_protocol')
_METRIC = re.compile(r'(recall|mrr|ndcg)@(\d+)')


@dataclasses.dataclass(frozen=True)
class RunRanks:
  """The rank of every test prediction of one run, keyed so that two runs can be paired."""

  # [P] what each prediction is for: the raw user id (user-sequence models), the target's row in
  # the test table (session models and baselines), 'user:k' for the k-th held-out pair of a user
  # (user-session models)
  keys: np.ndarray
  targets: np.ndarray  # [P] raw id of the item to predict
  ranks: np.ndarray  # [P] float32 rank of the target in the full catalogue (1 is best)
  sampled_ranks: np.ndarray | None  # [P] rank among the sampled negatives, when evaluated
  sampled_protocol: str  # how they were drawn, e.g. 'sampled100_uniform_seed0'; '' for none
  # [P] how much the model had to go on: the items of the user's history before the target
  # (user-sequence models), or of the target's session before it (session models, baselines,
  # and HRNN/GRU4Rec on user sessions, whose earlier sessions are not counted)
  history_length: np.ndarray
  target_count: np.ndarray  # [P] the target's number of training events (its popularity)
  tie_mode: str
  exclude_seen: bool
  path: str


def save_test_ranks(
  workdir: str,
  *,
  keys: np.ndarray,
  targets: np.ndarray,
  ranks: np.ndarray,
  sampled_ranks: np.ndarray | None,
  history_length: np.ndarray,
  target_count: np.ndarray,
  tie_mode: str,
  exclude_seen: bool,
  sampled_protocol: str = '',
) -> None:
  """Writes `workdir/test_ranks.npz` (arrays as in `RunRanks`; no pickled objects), atomically."""
  arrays = dict(
    keys=keys,
    targets=targets,
    ranks=np.asarray(ranks, np.float32),
    history_length=np.asarray(history_length, np.int64),
    target_count=np.asarray(target_count, np.int64),
  )
  if sampled_ranks is not None:
    arrays['sampled_ranks'] = np.asarray(sampled_ranks, np.float32)
  path = os.path.join(workdir, RANKS_FILE)
  with open(path + '.tmp', 'wb') as f:  # replaced in one step: a kill never leaves half a file
    np.savez(
      f,
      tie_mode=np.array(tie_mode),
      exclude_seen=np.array(exclude_seen),
      sampled_protocol=np.array(sampled_protocol),
      **arrays,
    )
  os.replace(path + '.tmp', path)


def save_event_ranks(
  workdir: str, events, vocab, event_ranks: np.ndarray, item_counts: np.ndarray, tie_mode: str
) -> None:
  """`save_test_ranks` for a session evaluation: its targets keyed by their row in the test table.

  Args:
    workdir: the run directory.
    events: the test `Events` (dense item ids, sorted by session and time).
    vocab: the run's `ItemVocab` (dense -> raw item ids).
    event_ranks: [E] each event's rank as a target, NaN for a session's first event (from
      `seqrec.evaluation.rank_sessions` or `seqrec.baselines.evaluate.rank_events`).
    item_counts: [N] training events of each dense item.
    tie_mode: the evaluation's tie mode.
  """
  rows = np.flatnonzero(~np.isnan(event_ranks))  # [P]
  offsets = events.session_offsets()
  session_start = np.repeat(offsets[:-1], np.diff(offsets))  # [E]
  items = np.asarray(events.item)
  save_test_ranks(
    workdir,
    keys=rows,
    targets=vocab.decode(items[rows]),
    ranks=event_ranks[rows],
    sampled_ranks=None,
    history_length=rows - session_start[rows],
    target_count=np.asarray(item_counts)[items[rows]],
    tie_mode=tie_mode,
    exclude_seen=False,
  )


def load_test_ranks(workdir: str) -> RunRanks:
  """Reads a run's `test_ranks.npz`.

  Raises:
    FileNotFoundError: naming the file, when the run has none (an unfinished run, or one from
      before test ranks were saved: re-running its command on its workdir writes them).
    DataError: naming the file, when an older seqrec wrote it without a field read here.
  """
  path = os.path.join(workdir, RANKS_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(
      f'{path} not found: {workdir} is not a finished run that saved its test ranks (re-run its '
      'command on the same --workdir to test it again and write them)'
    )
  with np.load(path, allow_pickle=False) as f:
    missing = [k for k in _REQUIRED if k not in f]
    if missing:  # written by an older seqrec
      raise DataError(
        f"{path}: lacks {', '.join(missing)}; re-run the run's command on the same --workdir to "
        'test it again and rewrite the file'
      )
    return RunRanks(
      keys=f['keys'],
      targets=f['targets'],
      ranks=f['ranks'],
      sampled_ranks=f['sampled_ranks'] if 'sampled_ranks' in f else None,
      sampled_protocol=str(f['sampled_protocol']),
      history_length=f['history_length'],
      target_count=f['target_count'],
      tie_mode=str(f['tie_mode']),
      exclude_seen=bool(f['exclude_seen']),
      path=path,
    )


def per_prediction(ranks: np.ndarray, metric: str) -> np.ndarray:
  """[P] each prediction's value of `metric` (`recall@K`, `mrr@K` or `ndcg@K`) from its rank.

  Their mean is the run's metric, as `seqrec.evaluation.metric_sums` computes it.

  Raises:
    ValueError: naming `metric` when it is not one of those forms.
  """
  match = _METRIC.fullmatch(metric)
  if not match:
    raise ValueError(f'metric {metric!r}: expected recall@K, mrr@K or ndcg@K, e.g. ndcg@10')
  name, k = match[1], int(match[2])
  if k < 1:
    raise ValueError(f'metric {metric!r}: expected a cut-off K >= 1')
  ranks = np.asarray(ranks, np.float64)
  hit = ranks <= k
  if name == 'recall':
    return hit.astype(np.float64)
  if name == 'mrr':
    return np.where(hit, 1.0 / ranks, 0.0)
  return np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)


def pair(a: RunRanks, b: RunRanks, sampled: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """The ranks of `a` and `b` on the same predictions, in the order of `a`'s keys.

  Args:
    a: one run's ranks.
    b: another run's.
    sampled: pair the sampled-metric ranks instead of the full-catalogue ones.

  Raises:
    DataError: naming both files, when the runs were not tested on the same predictions (other
      keys or targets, e.g. other data or split), under another tie mode or seen-item rule, or
      (with `sampled`) without sampled ranks or with other sampled negatives.
  """
  where = f'{a.path} and {b.path}'
  if (a.tie_mode, a.exclude_seen) != (b.tie_mode, b.exclude_seen):
    raise DataError(
      f'{where}: ranked under different rules (tie_mode {a.tie_mode} vs {b.tie_mode}, '
      f'exclude_seen {a.exclude_seen} vs {b.exclude_seen}); their metrics do not compare'
    )
  if sampled and (a.sampled_ranks is None or b.sampled_ranks is None):
    without = [r.path for r in (a, b) if r.sampled_ranks is None]
    raise DataError(
      f'{" and ".join(dict.fromkeys(without))}: no sampled ranks; sampled metrics need every run '
      'evaluated with eval.sampled_n > 0'
    )
  if sampled and a.sampled_protocol != b.sampled_protocol:
    raise DataError(
      f'{where}: other sampled negatives ({a.sampled_protocol} vs {b.sampled_protocol})'
    )
  order_a, order_b = np.argsort(a.keys, kind='stable'), np.argsort(b.keys, kind='stable')
  same_keys = a.keys.shape == b.keys.shape and np.array_equal(a.keys[order_a], b.keys[order_b])
  if not same_keys or len(np.unique(a.keys)) != len(a.keys):
    raise DataError(f'{where}: the runs were tested on different predictions (keys differ)')
  to_b = np.empty_like(order_a)
  to_b[order_a] = order_b  # a's i-th key sits at b's to_b[i]
  if not np.array_equal(a.targets, b.targets[to_b]):
    raise DataError(f'{where}: the same keys have different targets; other data or split?')
  if sampled:
    return a.sampled_ranks, b.sampled_ranks[to_b]
  return a.ranks, b.ranks[to_b]


def paired_difference(
  values_a: np.ndarray, values_b: np.ndarray, n_resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
  """Mean of `b - a` over paired per-prediction values, a bootstrap 95% interval and a t-test.

  Args:
    values_a: [P] per-prediction metric values of run A (e.g. from `per_prediction`).
    values_b: [P] the same predictions' values of run B.
    n_resamples: bootstrap resamples of the predictions (with replacement).
    seed: the bootstrap's seed; the same inputs and seed give the same interval.

  Returns:
    `{'n', 'a', 'b', 'diff', 'relative', 'ci_low', 'ci_high', 'p_value'}`: the means, their
    difference and relative difference (b / a - 1), the percentile bootstrap 95% interval of the
    difference, and the two-sided paired t-test's p-value. With fewer than 2 predictions the
    interval and p-value are NaN; when every difference is the same, the interval is that value
    and the p-value is 1 if it is 0, else 0 (the t statistic is infinite).
  """
  diff = np.asarray(values_b, np.float64) - np.asarray(values_a, np.float64)  # [P]
  n = diff.size
  mean_a = float(np.mean(values_a)) if n else math.nan
  mean_b = float(np.mean(values_b)) if n else math.nan
  # Equal up to rounding (e.g. (a + 0.5) - a): the t statistic is infinite, or 0 / 0.
  if n < 2 or np.ptp(diff) <= 1e-12 * max(1.0, float(np.abs(diff).max())):
    constant = n >= 2  # every difference equal
    value = float(diff.mean()) if n else math.nan
    low = high = value if constant else math.nan
    p_value = (1.0 if value == 0 else 0.0) if constant else math.nan
  else:
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    batch = max(1, min(n_resamples, 2**22 // n))  # resamples at a time: ~32 MB of indices
    for start in range(0, n_resamples, batch):  # (the draws do not depend on the batch)
      rows = rng.integers(0, n, size=(min(batch, n_resamples - start), n))
      means[start : start + rows.shape[0]] = diff[rows].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    p_value = float(stats.ttest_rel(values_b, values_a).pvalue)
  return {
    'n': n,
    'a': mean_a,
    'b': mean_b,
    'diff': float(diff.mean()) if n else math.nan,
    'relative': mean_b / mean_a - 1.0 if mean_a else math.nan,
    'ci_low': float(low),
    'ci_high': float(high),
    'p_value': p_value,
  }


def quantile_buckets(values: np.ndarray, n_buckets: int) -> list[tuple[str, np.ndarray]]:
  """Splits predictions into about equal-sized groups by `values` (e.g. `history_length`).

  Each distinct value goes, whole, to the quantile group in which the middle of its share of the
  predictions falls, so a value never straddles two groups, and a value that holds many
  predictions (e.g. a session prefix of one item) gets a group of its own.

  Args:
    values: [P] one number per prediction.
    n_buckets: the number of groups wanted (>= 1); fewer come back when values repeat a lot.

  Returns:
    `[(label, mask [P] bool), ...]` in increasing order of values, labelled by the range of the
    values they hold, e.g. `'3-7'`; empty when there are no predictions.
  """
  values = np.asarray(values)
  if not values.size:
    return []
  distinct, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
  middle = (np.cumsum(counts) - counts / 2) / values.size  # [V] in (0, 1)
  group = np.minimum((middle * n_buckets).astype(np.int64), n_buckets - 1)[inverse]  # [P]
  buckets = []
  for g in np.unique(group):
    mask = group == g
    low, high = values[mask].min(), values[mask].max()
    buckets.append((f'{low}' if low == high else f'{low}-{high}', mask))
  return buckets
