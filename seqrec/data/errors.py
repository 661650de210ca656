"""The error raised for unreadable or unusable input data."""


class DataError(ValueError):
  """Bad input data: the message names the file, the line when known, and what was expected."""
