"""`ParamError`: a baseline hyperparameter that cannot work, raised by the baseline constructors."""


class ParamError(ValueError):
  """A bad hyperparameter; `field`, `value` and `expected` let callers name the config flag."""

  def __init__(self, field: str, value, expected: str):
    super().__init__(f'{field}={value!r}: expected {expected}')
    self.field = field
    self.value = value
    self.expected = expected


def require(ok: bool, field: str, value, expected: str) -> None:
  """Raises `ParamError(field, value, expected)` unless `ok`."""
  if not ok:
    raise ParamError(field, value, expected)
