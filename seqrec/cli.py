"""Command-line plumbing for `seqrec.main` and the experiment scripts: one-line flag errors."""

import json
import os
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import app

from seqrec import checkpointing


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a `--config.<field>` the config lacks reported in one line.

  Pass it as `app.run(main, flags_parser=cli.parse_flags)`. ml_collections raises
  AttributeError/KeyError (not a flags error) for an unknown override, which absl would let through
  as a traceback; here it exits with status 2 and `error: unknown config field in ...`.

  Args:
    argv: the process's arguments, program name first.

  Returns:
    The arguments absl left unparsed, program name first.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as e:
    overrides = ' '.join(a for a in argv[1:] if a.startswith('--config.'))
    if not overrides:  # raised by the config file itself: its traceback is the useful report
      raise
    detail = e
    while isinstance(detail, BaseException) and detail.args:  # AttributeError(KeyError(message))
      detail = detail.args[0]
    print(f'error: unknown config field in {overrides}: {detail}', file=sys.stderr)
    sys.exit(2)


def exit_interrupted(workdir: str, also: str = '') -> NoReturn:
  """Ends the process after Ctrl-C with one line saying where a rerun resumes (status 130).

  Args:
    workdir: the run directory that was training.
    also: more to say, e.g. what a rerun of a sweep skips.
  """
  where = checkpointing.resume_point(workdir)
  print(f'interrupted: --workdir={workdir}: {where}{also}', file=sys.stderr)
  sys.exit(130)


def benchmark_main(measure: Callable[..., dict], config, output: str) -> None:
  """The benchmark scripts' entry: checks, `measure(config)`, one JSON line appended to `output`.

  A config of fewer than 2 epochs (the rate is the median of epochs 2..), an `--output` whose
  directory cannot be made, or any bad input `measure` meets ends the script with one line
  naming it (status 2) before anything trains or is written.
  """
  from seqrec import reporting, train  # noqa: PLC0415 (seqrec.main imports this module)

  try:
    if int(config.n_epochs) < 2:
      raise train.ConfigError(
        f'--config.n_epochs={config.n_epochs!r}: expected at least 2 (epoch 1 compiles; the '
        'training rate is the median of epochs 2..)'
      )
    try:
      os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    except OSError as e:
      raise train.ConfigError(f'--output={output}: cannot create its directory ({e})') from e
    record = measure(config)
  except train.INPUT_ERRORS as e:  # one line naming the flag, file or directory
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  line = json.dumps(reporting.json_safe(record))
  print(line)
  with open(output, 'a') as f:
    f.write(line + '\n')
