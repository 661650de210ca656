"""Training and evaluation throughput (events/s) of a config on the local accelerator.

    python experiments/benchmark.py --config=seqrec/configs/gru4rec_rsc15_100k.py \
      --config.n_epochs=4 --output=experiments/benchmarks.jsonl

Training speed is the median events/s of epochs 2.. (epoch 1 includes compilation); evaluation
speed is measured on a second pass over the test set (the first one compiles), at the config's
`eval.batch_size` and at each of `--eval_batch_sizes` (the numbers do not depend on it; the speed
does). One JSON line is appended to --output with the date, device, config summary and the rates.
"""

import datetime
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from seqrec import cli, evaluation, reporting, train
from seqrec.data import load_session_data
from seqrec.models import build_model

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_OUTPUT = flags.DEFINE_string('output', 'experiments/benchmarks.jsonl', 'JSON lines file.')
_LABEL = flags.DEFINE_string('label', '', 'Free-text label stored with the result.')
_EVAL_BATCH_SIZES = flags.DEFINE_list(
  'eval_batch_sizes', [], 'Further evaluation batch sizes to time (comma-separated).'
)
flags.mark_flags_as_required(['config'])
flags.register_validator(
  'eval_batch_sizes',
  lambda values: all(v.isdigit() and int(v) > 0 for v in values),
  message='--eval_batch_sizes: expected comma-separated positive integers',
)


def eval_rate(config, model, events, batch_size: int) -> float:
  """Predictions/s of a second full-catalogue pass over `events` at `batch_size` slots."""
  options = dict(train.eval_options(config), batch_size=batch_size)
  evaluation.evaluate_sessions(model, events, **options)  # compile
  t0 = time.perf_counter()
  metrics = evaluation.evaluate_sessions(model, events, **options)
  return metrics['count'] / (time.perf_counter() - t0)


def main(argv):
  del argv
  reporting.quiet_library_logs()
  cli.benchmark_main(run, _CONFIG.value, _OUTPUT.value)


def run(config) -> dict:
  """Trains and times `config`; the JSON record of the rates (see `cli.benchmark_main`)."""
  if config.model != 'gru4rec':
    raise train.ConfigError(
      f'--config.model={config.model!r}: expected gru4rec (benchmark_sequences.py times the '
      'user-sequence models)'
    )
  with tempfile.TemporaryDirectory() as workdir:
    result = train.train_and_evaluate(config, workdir)
  data = load_session_data(config.data)
  model = build_model(config, data.n_items, seed=int(config.seed))
  record = {
    'date': datetime.date.today().isoformat(),
    'device': jax.devices()[0].device_kind,
    'platform': jax.devices()[0].platform,
    'jax': jax.__version__,
    'label': _LABEL.value,
    'data': config.data.name or config.data.format,
    'n_items': int(data.n_items),
    'layers': list(config.layers),
    'batch_size': int(config.batch_size),
    'loss': config.loss,
    'n_sample': int(config.n_sample),
    'epochs': int(config.n_epochs),
    'steps_per_call': int(config.steps_per_call),
    'train_events_per_sec': result['train_events_per_sec_median'],
    'eval_events_per_sec': eval_rate(config, model, data.test, int(config.eval.batch_size)),
    'eval_batch_size': int(config.eval.batch_size),
    'eval_events_per_sec_by_batch': {
      str(b): eval_rate(config, model, data.test, b) for b in map(int, _EVAL_BATCH_SIZES.value)
    },
    'test': result['test'],
  }
  return record


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
