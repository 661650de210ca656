"""Command-line entry point: `python -m seqrec.main --config=<file>.py --workdir=DIR`.

Any config field can be overridden on the command line, e.g. `--config.layers="(512,)"`
`--config.loss=bpr-max`; an unknown field is rejected before anything runs.
"""

import json
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
  except KeyboardInterrupt:
    cli.exit_interrupted(_WORKDIR.value)
  print(json.dumps(result, indent=2))
  print(reporting.summary(result))


if __name__ == '__main__':
  app.run(main, flags_parser=cli.parse_flags)
