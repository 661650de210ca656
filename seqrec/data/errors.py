"""The error raised for unreadable or unusable input data."""


class DataError(ValueError):
  """Bad input data: the message names the file, the line when known, and what was expected."""


def data_flag(field: str, value) -> str:
  """How an error names a data option: its command-line spelling, `--config.data.format='csv'`."""
  return f'--config.data.{field}={value!r}'
