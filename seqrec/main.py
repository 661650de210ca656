"""Command-line entry point: `python -m seqrec.main --config=<file>.py --workdir=DIR`.

Any config field can be overridden on the command line, e.g. `--config.layers="(512,)"`
`--config.loss=bpr-max`; an unknown field is rejected before anything runs.
"""

import json
import re
import sys

from absl import app, flags
from ml_collections import config_flags

from seqrec import cli, reporting, train

_CONFIG = config_flags.DEFINE_config_file(
  'config', None, 'Path to a config file defining get_config().', lock_config=True
)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory: checkpoints, metrics, results.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  config = _CONFIG.value
  reporting.quiet_library_logs()
  try:
    result = train.train_and_evaluate(config, _WORKDIR.value)
  except train.INPUT_ERRORS as e:  # one line naming the file, line or flag; no traceback
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  print(json.dumps(result, indent=2))
  print(summary(result))


_METRIC_KEY = re.compile(r'(?:(?P<prefix>\w+)/)?(?P<name>[a-z]+)@(?P<k>\d+)(?:/(?P<suffix>\w+))?')


def summary(result: dict) -> str:
  """A short human-readable comparison of the model and the popularity baseline on test."""
  model, pop = result['test'], result['popularity_test']
  # Keys look like `recall@20`, `recall@5/first1` (HRNN) or `sampled100_uniform/ndcg@10`.
  parsed = {k: _METRIC_KEY.fullmatch(k) for k in model}
  names = sorted(
    (k for k, m in parsed.items() if m),
    key=lambda k: (
      parsed[k]['prefix'] or '',
      parsed[k]['suffix'] or '',
      parsed[k]['name'],
      int(parsed[k]['k']),
    ),
  )
  width = max([len('test metric')] + [len(k) for k in names])
  lines = [f'{"test metric":<{width}}  {"model":>8}  {"POP":>8}']
  # POP has no value for some keys (HRNN's /firstN metrics): a dash, not nan.
  lines += [
    f'{k:<{width}}  {model[k]:8.4f}  ' + (f'{pop[k]:8.4f}' if k in pop else f'{"–":>8}')
    for k in names
  ]
  sampled = sorted(
    {parsed[k]['prefix'] for k in names if (parsed[k]['prefix'] or '').startswith('sampled')}
  )
  protocol = 'full-catalogue ranking'
  if sampled:  # e.g. sampled100_uniform: the target among 100 uniformly drawn negatives
    protocol += f'; rows prefixed {", ".join(sampled)} rank among sampled negatives only'
  lines.append(f'({int(model["count"])} test predictions, {protocol})')
  return '\n'.join(lines)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
