"""Training and evaluation throughput (events/s) of a config on the local accelerator.

    python experiments/benchmark.py --config=seqrec/configs/gru4rec_rsc15_100k.py \
      --config.n_epochs=4 --output=experiments/benchmarks.jsonl

Training speed is the median events/s of epochs 2.. (epoch 1 includes compilation); evaluation
speed is measured on a second pass over the test set (the first one compiles). One JSON line is
appended to --output with the date, device, config summary and both rates.
"""

import datetime
import json
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from seqrec import cli, reporting, train
from seqrec.data import load_session_data
from seqrec.models import build_model

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_OUTPUT = flags.DEFINE_string('output', 'experiments/benchmarks.jsonl', 'JSON lines file.')
_LABEL = flags.DEFINE_string('label', '', 'Free-text label stored with the result.')
flags.mark_flags_as_required(['config'])


def eval_rate(config, model, events) -> float:
  train.evaluate(model, events, config)  # compile
  t0 = time.perf_counter()
  metrics = train.evaluate(model, events, config)
  return metrics['count'] / (time.perf_counter() - t0)


def main(argv):
  del argv
  reporting.quiet_library_logs()
  config = _CONFIG.value
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
    'eval_events_per_sec': eval_rate(config, model, data.test),
    'eval_batch_size': int(config.eval.batch_size),
    'test': result['test'],
  }
  line = json.dumps(record)
  print(line)
  with open(_OUTPUT.value, 'a') as f:
    f.write(line + '\n')


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
