"""Runs one config over several seeds and appends each run's final metrics to a JSON-lines file.

    python experiments/seeds.py --config=seqrec/configs/gru4rec_rsc15_100k.py --seeds=0,1,2 \
      --label=gru4rec-rsc15-100k --output=experiments/gru4rec_fidelity/results.jsonl

Each line: label, seed, date, device, the test metrics and training speed. The markdown table is
made from these files by experiments/results_table.py. A run that `config.time_limit_secs` ended
early is recorded with `"time_limited": true` and the epoch it reached; the table leaves such rows
out unless asked, and the same command trains on from the run's checkpoint.
"""

import datetime
import json
import os

import jax
from absl import app, flags
from ml_collections import config_flags

from seqrec import train

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.', lock_config=True)
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds to run.')
_LABEL = flags.DEFINE_string('label', None, 'Row label in the results table.')
_OUTPUT = flags.DEFINE_string('output', None, 'JSON-lines file the results are appended to.')
_WORKDIR = flags.DEFINE_string('workdir_root', 'runs/seeds', 'Run directories go below this.')
flags.mark_flags_as_required(['config', 'label', 'output'])


def main(argv):
  del argv
  config = _CONFIG.value
  for seed in _SEEDS.value:
    with config.unlocked():
      config.seed = int(seed)
    workdir = os.path.join(_WORKDIR.value, f'{_LABEL.value}-seed{seed}')
    result = train.train_and_evaluate(config, workdir)
    record = {
      'label': _LABEL.value,
      'seed': int(seed),
      'date': datetime.date.today().isoformat(),
      'device': jax.devices()[0].device_kind,
      'data': config.data.name or config.data.format,
      'model': config.model,
      **{f'test/{k}': v for k, v in result['test'].items()},
      **{f'pop/{k}': v for k, v in result['popularity_test'].items()},
      'train_events_per_sec': result['train_events_per_sec_median'],
      'test_events_per_sec': result['test_events_per_sec'],
      'epochs': result['epochs'],
      # Sequence models: the validated epoch that was tested, and whether the time limit ended
      # training before its schedule did.
      **{k: result[k] for k in ('best_epoch', 'time_limited') if k in result},
      'wall_seconds': result['wall_seconds'],
      # Baselines (seqrec.baselines) also report how long fitting and the test evaluation took.
      **{k: result[k] for k in ('fit_seconds', 'test_seconds') if k in result},
    }
    print(json.dumps(record), flush=True)
    os.makedirs(os.path.dirname(_OUTPUT.value) or '.', exist_ok=True)
    with open(_OUTPUT.value, 'a') as f:
      f.write(json.dumps(record) + '\n')


if __name__ == '__main__':
  app.run(main)
