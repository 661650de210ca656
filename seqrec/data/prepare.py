"""Command line: preprocess a dataset with `load_session_data`, fill its cache, print stats.

Example (the recipes in third_party_data/ give one command per public dataset):

  python -m seqrec.data.prepare --format=yoochoose \
    --train_path=/data/yoochoose/yoochoose-clicks.dat --cache_dir=/data/cache
"""

from __future__ import annotations

import dataclasses
import sys

from absl import app, flags

from seqrec.data.errors import DataError
from seqrec.data.loading import FORMATS, DataOptions, cache_path, load_session_data
from seqrec.data.session_data import SessionData


def define_flags() -> None:
  """Defines the command-line flags (only when run as a program, so imports define none)."""
  defaults = DataOptions()
  flags.DEFINE_enum('format', None, FORMATS, 'Input format.', required=True)
  flags.DEFINE_string('train_path', '', 'Input file (the full data unless test_path is set).')
  flags.DEFINE_string('test_path', '', 'Ready test file; empty = split test off train_path.')
  flags.DEFINE_string('valid_path', '', 'Ready validation file.')
  flags.DEFINE_string('train_tr_path', '', 'Train-minus-validation file (with valid_path).')
  flags.DEFINE_string('name', '', 'Dataset name (default: the input file stem).')
  flags.DEFINE_enum(
    'preprocess',
    'auto',
    ['auto', 'true', 'false'],
    'Session-length/item-support filters; auto = on for raw formats, off for gru4rec_tsv.',
  )
  flags.DEFINE_float('test_days', defaults.test_days, 'Days held out for test.')
  flags.DEFINE_float('test_fraction', defaults.test_fraction, 'Session share for test (untimed).')
  flags.DEFINE_float('valid_days', defaults.valid_days, 'Days of train held out for validation.')
  flags.DEFINE_float('valid_fraction', defaults.valid_fraction, 'Session share for validation.')
  flags.DEFINE_integer('min_session_length', defaults.min_session_length, 'Shorter sessions go.')
  flags.DEFINE_integer('min_item_support', defaults.min_item_support, 'Rarer items go.')
  flags.DEFINE_enum('time_unit', defaults.time_unit, ['s', 'ms'], 'gru4rec_tsv Time unit.')
  flags.DEFINE_float('session_gap_seconds', defaults.session_gap_seconds, 'RetailRocket gap.')
  flags.DEFINE_string('event_types', defaults.event_types, 'RetailRocket events to keep.')
  flags.DEFINE_string('cache_dir', '', 'Where to write the processed .npz.')
  flags.DEFINE_integer('synthetic_sessions', defaults.synthetic_sessions, 'Synthetic: sessions.')
  flags.DEFINE_integer('synthetic_items', defaults.synthetic_items, 'Synthetic: items.')
  flags.DEFINE_float('synthetic_jump_prob', defaults.synthetic_jump_prob, 'Synthetic: jumps.')
  flags.DEFINE_float('synthetic_days', defaults.synthetic_days, 'Synthetic: days spanned.')
  flags.DEFINE_integer('seed', defaults.seed, 'Synthetic: random seed.')


def format_stats(data: SessionData) -> str:
  """A small table of events, sessions and items per split."""
  rows = [f'{data.name}: {data.n_items:,} items in the vocabulary']
  rows.append(f'{"split":<10}{"events":>12}{"sessions":>12}{"items":>10}')
  for split, stats in data.stats().items():
    rows.append(f'{split:<10}{stats["events"]:>12,}{stats["sessions"]:>12,}{stats["items"]:>10,}')
  return '\n'.join(rows)


def options_from_flags() -> DataOptions:
  """Collects the flags into `DataOptions`."""
  preprocess = {'auto': None, 'true': True, 'false': False}[flags.FLAGS.preprocess]
  values = {
    field.name: flags.FLAGS[field.name].value
    for field in dataclasses.fields(DataOptions)
    if field.name in flags.FLAGS and field.name != 'preprocess'
  }
  return DataOptions.from_config({**values, 'preprocess': preprocess})


def prepare(cfg) -> str:
  """Loads (and, with `cache_dir`, caches) a dataset; returns the report that `main` prints.

  Args:
    cfg: anything `load_session_data` accepts.

  Returns:
    The split statistics, and the cache file when there is one.
  """
  options = DataOptions.from_config(cfg)
  report = format_stats(load_session_data(options))
  if options.cache_dir:
    report += f'\ncached at {cache_path(options)}'
  return report


def main(argv: list[str]) -> None:
  del argv
  try:
    print(prepare(options_from_flags()))
  except DataError as e:
    sys.exit(f'error: {command_line_spelling(str(e))}')


def command_line_spelling(message: str) -> str:
  """An error as this command's flags spell the data options: `--time_unit`, not the training
  configs' `--config.data.time_unit` (`DataOptions` fields are this command's flags)."""
  return message.replace('--config.data.', '--')


if __name__ == '__main__':
  define_flags()
  app.run(main)
