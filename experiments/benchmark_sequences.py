"""Training positions/s and full-catalogue evaluation time of a user-sequence config (SASRec & co.).

    python experiments/benchmark_sequences.py --config=seqrec/configs/sasrec_ml1m.py \
      --config.n_epochs=5 --config.eval.every_epochs=1000 --output=experiments/benchmarks.jsonl

Training speed is the median target positions/s of epochs 2.. (epoch 1 includes compilation),
the issue's unit for pmixer/SASRec.pytorch (691k positions/s, 0.953 s/epoch on an H100).
Evaluation time is the wall time of one full-catalogue ranking of every test user, timed on a
second call (the first compiles). One JSON line is appended to --output with date and device.
"""

import datetime
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from seqrec import cli, reporting, seq_evaluation, seq_train
from seqrec.data.user_sequences import load_sequence_data
from seqrec.models.sequential import history_length

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_OUTPUT = flags.DEFINE_string('output', 'experiments/benchmarks.jsonl', 'JSON lines file.')
_LABEL = flags.DEFINE_string('label', '', 'Free-text label stored with the result.')
flags.mark_flags_as_required(['config'])


def full_ranking_seconds(model, split, config) -> float:
  """Seconds for one jitted full-catalogue ranking of all users (after a compiling call)."""

  def rank():
    full, _, _ = seq_evaluation.rank_targets(
      model,
      split.history,
      split.users,
      split.targets,
      mode=config.eval.tie_mode,
      user_block=int(config.eval.user_block),
    )
    return jax.block_until_ready(full)

  rank()  # compile
  t0 = time.perf_counter()
  rank()
  return time.perf_counter() - t0


def main(argv):
  del argv
  reporting.quiet_library_logs()
  cli.benchmark_main(run, _CONFIG.value, _OUTPUT.value)


def run(config) -> dict:
  """Trains and times `config`; the JSON record of the rates (see `cli.benchmark_main`)."""
  with tempfile.TemporaryDirectory() as workdir:
    result = seq_train.train_and_evaluate_sequences(config, workdir)
  data = load_sequence_data(config.data)
  model = seq_train.build_model(config, data.n_items, data.n_users)
  split = seq_train.eval_split(data, 'test', history_length(config))
  record = {
    'date': datetime.date.today().isoformat(),
    'device': jax.devices()[0].device_kind,
    'platform': jax.devices()[0].platform,
    'jax': jax.__version__,
    'label': _LABEL.value,
    'data': config.data.name or config.data.format,
    'model': config.model,
    'n_items': int(data.n_items),
    'n_users': int(data.n_users),
    'batch_size': int(config.batch_size),
    'loss': config.loss,
    'epochs': int(config.n_epochs),
    'steps_per_call': int(config.steps_per_call),
    'train_positions_per_sec': result['train_events_per_sec_median'],
    'eval_full_ranking_seconds': full_ranking_seconds(model, split, config),
    'eval_users': int(split.n_targets),
    'test': result['test'],
  }
  return record


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
