"""Run outputs for people and tools: metrics.jsonl, TensorBoard scalars, log lines, and progress."""

import json
import logging as std_logging
import math
import os
import re
import sys
import time

from absl import logging

from seqrec.data.errors import DataError

# Libraries whose INFO lines describe their own internals (orbax logs about a dozen per checkpoint
# restore and close); their warnings and errors still show.
_CHATTY_LIBRARIES = ('jax', 'orbax', 'tensorboardX')


class MetricsWriter:
  """Appends `{"step", "epoch", **scalars}` lines to `workdir/metrics.jsonl` and TensorBoard.

  TensorBoard event files are written with tensorboardX when it is installed (it is a declared
  dependency); without it the JSON lines are still written and a warning is logged once.
  """

  def __init__(self, workdir: str, keep_through_step: int | None = None):
    """Opens the run's metrics; `keep_through_step` drops what a resumed run will log again.

    A resumed (or restarted) run passes its checkpoint's step (0 when it has none): epochs logged
    after the last checkpoint of a killed run are trained again, and the final test line of a
    finished or time-limited run, which shares its last epoch's step, is written again. The log
    keeps the lines before that step and, at it, only the epoch line (the one with
    `train_loss`), so every epoch and the final test appear once. A line the kill cut short (the
    file's last) is dropped. (TensorBoard's event files keep both copies; the later one is the
    resumed run's.)

    Raises:
      DataError: a line other than the last is not JSON, or one is not an object with an integer
        `step`; the message names the file and line.
    """
    os.makedirs(workdir, exist_ok=True)
    self.workdir = workdir
    self.path = os.path.join(workdir, 'metrics.jsonl')
    if keep_through_step is not None and os.path.exists(self.path):
      with open(self.path) as f:
        lines = [line for line in f if line.strip()]
      kept = _lines_through(self.path, lines, keep_through_step)
      if kept != lines:
        with open(self.path, 'w') as f:
          f.writelines(kept)
    self._tb = None
    try:
      from tensorboardX import SummaryWriter  # noqa: PLC0415 (optional at import time)

      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))
    except ImportError:
      logging.warning('tensorboardX is not installed: TensorBoard scalars are not written.')

  def write(self, step: int, scalars: dict, **context) -> None:
    record = {'step': int(step), **context, **{k: _plain(v) for k, v in scalars.items()}}
    with open(self.path, 'a') as f:
      f.write(json.dumps(json_safe(record)) + '\n')
    if self._tb is not None:
      for name, value in scalars.items():
        if isinstance(value, (int, float)):
          self._tb.add_scalar(tensorboard_tag(name), value, int(step))
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()

  def finish(self, step: int, epoch: int, test_metrics: dict, result: dict) -> None:
    """Writes the final `test/` line and `final_metrics.json` (the run's `result`), and closes."""
    self.write(step, {f'test/{k}': v for k, v in test_metrics.items()}, epoch=epoch)
    with open(os.path.join(self.workdir, 'final_metrics.json'), 'w') as f:
      json.dump(json_safe(result), f, indent=2)
    self.close()


def _lines_through(path: str, lines: list[str], step: int) -> list[str]:
  """The lines of a metrics log a run resumed at `step` keeps (see `MetricsWriter`)."""
  kept = []
  for number, line in enumerate(lines, start=1):
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      if number == len(lines):  # written when the run was killed
        logging.warning('%s: dropped its last line, cut short: %r', path, line[:80])
        break
      raise DataError(f'{path}, line {number}: expected one JSON object per line') from None
    if not isinstance(record, dict) or not isinstance(record.get('step'), int):
      raise DataError(f'{path}, line {number}: expected a JSON object with an integer "step"')
    # At the checkpoint's own step only its epoch line stays; a test line there is written again.
    if record['step'] < step or (record['step'] == step and 'train_loss' in record):
      kept.append(line if line.endswith('\n') else line + '\n')
  return kept


def read_json_lines(path: str) -> list[dict]:
  """The records of a JSON-lines results file (`metrics.jsonl`, a sweep's `--output`), in order.

  Raises:
    FileNotFoundError: `path` does not exist (the message names it).
    DataError: a non-blank line is not a JSON object; the message names the file and line.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f'{path}: file not found')
  records = []
  with open(path) as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(
          f'{path}, line {number}: expected one JSON object per line ({e.msg}), got {line[:80]!r}'
        ) from None
      if not isinstance(record, dict):
        raise DataError(f'{path}, line {number}: expected a JSON object, got {line[:80]!r}')
      records.append(record)
  return records


class _LibraryInfoFilter(std_logging.Filter):
  """Drops records below WARNING logged from an installed copy of one of `_CHATTY_LIBRARIES`.

  A file counts when its path runs `.../site-packages/<library>/...` (or `dist-packages`), so a
  user's own directory that happens to share a library's name is never silenced.
  """

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.WARNING:
      return True
    parts = re.split(r'[/\\]', record.pathname)
    return not any(
      parts[i] in ('site-packages', 'dist-packages') and parts[i + 1] in _CHATTY_LIBRARIES
      for i in range(len(parts) - 1)
    )


def quiet_library_logs() -> None:
  """Shows seqrec's own INFO lines (data, resume, early stopping, time limit), not orbax's or jax's.

  Command lines call this after absl has parsed its flags; it filters absl's handler, so
  `--verbosity` keeps its meaning for seqrec's own lines. Calling it again changes nothing.
  """
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _LibraryInfoFilter) for f in handler.filters):
    handler.addFilter(_LibraryInfoFilter())


def tensorboard_tag(name: str) -> str:
  """The TensorBoard tag of a metric: `valid/ndcg@10` -> `valid/ndcg_10`.

  TensorBoard tags allow letters, digits, `_`, `-`, `.` and `/`; any other character becomes `_`.
  tensorboardX would make the same replacement itself, but with a warning on every write.
  """
  return re.sub(r'[^-/\w.]', '_', name)


def json_safe(value):
  """`value` with every NaN or infinite float (nested in dicts and lists) as None.

  `json.dumps` would write them as `NaN` / `Infinity`, which is not JSON: strict readers (jq,
  JavaScript, other languages' parsers) reject the whole file.
  """
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: json_safe(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [json_safe(v) for v in value]
  return value


def _plain(value):
  try:
    return float(value)
  except (TypeError, ValueError):
    return value


class Progress:
  """A one-line progress display with events/s, refreshed at most every `interval` seconds.

  On a terminal the line is redrawn in place; elsewhere (logs, CI) one line per refresh is printed.
  """

  def __init__(self, total: int, desc: str, interval: float = 2.0, stream=None):
    self.total = max(int(total), 1)
    self.desc = desc
    self.interval = interval
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.start = time.perf_counter()
    self.last = self.start
    self.done = 0

  def due(self) -> bool:
    """True when a refresh is due (callers only sync the device when it is)."""
    return time.perf_counter() - self.last >= self.interval

  def update(self, done: int, events: int, extra: str = '') -> None:
    now = time.perf_counter()
    self.done = done
    self.last = now
    rate = events / max(now - self.start, 1e-9)
    frac = min(done / self.total, 1.0)
    bar = '#' * int(frac * 20)
    line = f'{self.desc} [{bar:<20}] {frac:6.1%} {rate:,.0f} events/s {extra}'
    if self.tty:
      self.stream.write('\r' + line)
    else:
      self.stream.write(line + '\n')
    self.stream.flush()

  def close(self) -> None:
    if self.tty:
      self.stream.write('\n')
      self.stream.flush()


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
