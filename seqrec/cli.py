"""Command-line plumbing for `seqrec.main` and the experiment scripts: one-line flag errors."""

import sys

from absl import app


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
