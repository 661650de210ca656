"""`run`: fits a baseline on a config's data, evaluates it, and writes what a model run writes."""

from __future__ import annotations

import json
import os
import time

import ml_collections
from absl import logging

from seqrec import comparison, reporting, train
from seqrec.baselines import build_baseline
from seqrec.baselines.evaluate import evaluate, rank_events
from seqrec.checkpointing import CheckpointMismatchError
from seqrec.data import load_session_data


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Fits `config.model` (a baseline) on the training split and evaluates it like a model.

  The data, training split (`train_tr` when there is a validation split), prediction targets, tie
  handling and metrics are those of `train.train_and_evaluate`. `workdir` receives `config.json`,
  `item_vocab.npz`, `metrics.jsonl` (validation line if any, then the test line) and
  `final_metrics.json`; a baseline run is recomputed whole, so an earlier `metrics.jsonl` is
  replaced.

  Returns:
    The dict `train_and_evaluate` returns (`test`, `popularity_test`, `test_events_per_sec`,
    `epochs`=0, `best_epoch`=-1, `train_events_per_sec_median`=NaN, `wall_seconds`), plus
    `fit_seconds`, `test_seconds` and, with a validation split, `valid`.

  Raises:
    CheckpointMismatchError: if `workdir` holds a checkpointed model run.
  """
  if os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise CheckpointMismatchError(
      f'--workdir={workdir} holds the checkpoints of a trained model. Use a fresh --workdir.'
    )
  os.makedirs(workdir, exist_ok=True)
  t_start = time.perf_counter()
  data = load_session_data(config.data)
  train_events = train.training_events(data)
  baseline = build_baseline(config.model, config.baseline[config.model], int(config.seed))
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json(indent=2))
  data.vocab.save(os.path.join(workdir, 'item_vocab.npz'))
  metrics_path = os.path.join(workdir, 'metrics.jsonl')
  if os.path.exists(metrics_path):
    os.remove(metrics_path)
  writer = reporting.MetricsWriter(workdir)

  t_fit = time.perf_counter()
  try:
    baseline.fit(train_events, data.n_items)
  except FloatingPointError as e:  # a diverged fit would rank every target last, all ties
    raise train.TrainingDivergedError(
      f'{e}. Lower --config.baseline.{config.model}.learning_rate and use a fresh --workdir '
      f'({workdir} holds the diverged run).'
    ) from None
  fit_seconds = time.perf_counter() - t_fit
  logging.info(
    '%s fitted on %d events in %.1f s', config.model, train_events.num_events, fit_seconds
  )
  options = dict(
    batch_size=int(config.eval.batch_size),
    cutoffs=tuple(int(k) for k in config.eval.cutoffs),
    mode=config.eval.tie_mode,
  )
  result = {}
  if data.valid is not None:
    valid = evaluate(baseline, data.valid, data.n_items, desc='valid', **options)
    writer.write(0, {f'valid/{k}': v for k, v in valid.items()}, epoch=0)
    result['valid'] = valid
  t_eval = time.perf_counter()
  test, event_ranks = rank_events(baseline, data.test, data.n_items, desc='test', **options)
  test_seconds = time.perf_counter() - t_eval
  counts = data.item_counts_for(train_events)
  comparison.save_event_ranks(workdir, data.test, data.vocab, event_ranks, counts, options['mode'])
  pop = train.popularity_metrics(data, data.test, options['cutoffs'], options['mode'])
  result = {
    'test': test,
    'test_events_per_sec': test['count'] / test_seconds,
    'popularity_test': pop,
    'epochs': 0,
    'best_epoch': -1,
    'train_events_per_sec_median': float('nan'),
    'fit_seconds': fit_seconds,
    'test_seconds': test_seconds,
    **result,
    'wall_seconds': time.perf_counter() - t_start,
  }
  writer.write(0, {f'test/{k}': v for k, v in test.items()}, epoch=0)
  with open(os.path.join(workdir, 'final_metrics.json'), 'w') as f:
    json.dump(reporting.json_safe(result), f, indent=2)  # the NaN training speed as null
  writer.close()
  return result
