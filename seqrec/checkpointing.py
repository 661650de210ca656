"""Orbax checkpoints of a run: the latest training state (for resuming) and the best parameters.

This is the only module that imports orbax. A state is stored as a flat `{path: array}` dict keyed
by the pytree paths of the live state, so restoring needs only a template of the same structure
(built from the config) and a mismatch is reported by name instead of failing deep in orbax.
"""

import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointMismatchError(ValueError):
  """A checkpoint does not fit the model/config/dataset it is restored into."""


# Config fields a rerun of a workdir may change and still resume it: how long it trains and how
# often it saves, the devices it runs on, how much it scores at once (the same numbers), and where
# the data lies where the checkpoint's fingerprint covers the data's content. Any other change
# (seed, loss, learning rate, ...) makes it another run, which needs its own workdir.
RERUN_MAY_CHANGE = frozenset(
  {
    'n_epochs',
    'time_limit_secs',
    'checkpoint_every_secs',
    'early_stopping.patience',
    'num_devices',
    'scan_unroll',
    'negative_score_chunk',
    'negative_scoring',
    'eval.batch_size',
    'eval.item_chunk',
    'eval.steps_per_call',
    'eval.user_block',
    'data.cache_dir',
    'data.path',
    'data.split_dir',
  }
)


def dotted(tree: dict, prefix: str = '') -> dict[str, Any]:
  """A nested config dict as `{'eval.cutoffs': ..., ...}`."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(dotted(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def config_changes(saved: dict, current: dict) -> list[str]:
  """The fields of `current` that differ from `saved` and may not change on a rerun.

  Both are JSON-normalised config dicts (`json.loads(config.to_json())`). A field only one of them
  has (added to or removed from seqrec after the run started) is not a change.

  Returns:
    `--config.field=value (the workdir's: value)` per changed field, sorted by field.
  """
  old, new = dotted(saved), dotted(current)
  return [
    f"--config.{key}={new[key]!r} (the workdir's: {old[key]!r})"
    for key in sorted(old.keys() & new.keys())
    if key not in RERUN_MAY_CHANGE and old[key] != new[key]
  ]


def _fingerprint_changes(saved: dict, current: dict) -> str:
  """The entries in which a checkpoint's fingerprint and this run's differ, as one phrase."""
  keys = sorted(set(saved) | set(current))
  return '; '.join(
    f"{k}: the checkpoint's {saved.get(k)!r}, this run's {current.get(k)!r}"
    for k in keys
    if saved.get(k) != current.get(k)
  )


def check_same_run(workdir: str, saved_fingerprint: dict | None, fingerprint: dict, config) -> None:
  """Refuses to resume `workdir` as another run: its checkpoint's shapes and data first (the
  fingerprint), then every config field a rerun may not change (`check_rerun_config`).

  Raises:
    CheckpointMismatchError: naming the differing fingerprint entries or changed flags.
  """
  if saved_fingerprint != fingerprint:
    raise CheckpointMismatchError(
      f'--workdir={workdir} holds a checkpoint of a different run '
      f'({_fingerprint_changes(saved_fingerprint or {}, fingerprint)}). Use a fresh --workdir.'
    )
  check_rerun_config(workdir, config)


def check_rerun_config(workdir: str, config) -> None:
  """Refuses to resume `workdir` under a config that makes it another run.

  Args:
    workdir: a run directory holding a checkpoint and the `config.json` it was started with.
    config: the rerun's `ml_collections.ConfigDict`.

  Raises:
    CheckpointMismatchError: naming every changed flag with the workdir's value.
  """
  path = os.path.join(workdir, 'config.json')
  try:
    with open(path) as f:
      saved = json.load(f)
  except (OSError, ValueError):
    return  # nothing to compare with; the fingerprint still guards the checkpoint's structure
  changes = config_changes(saved, json.loads(config.to_json()))
  if changes:
    raise CheckpointMismatchError(
      f'--workdir={workdir} holds a checkpoint of a different run, started with other values of '
      f'{len(changes)} flag(s): {"; ".join(changes)}. Resuming would train on under the old '
      "settings. Use a fresh --workdir, or rerun with the workdir's values (its config.json); "
      f'only {", ".join(sorted(RERUN_MAY_CHANGE))} may change on a rerun.'
    )


def resume_point(workdir: str) -> str:
  """Where a rerun of `workdir` resumes, in words: for the message after an interruption.

  Args:
    workdir: a run directory, with or without checkpoints.

  Returns:
    E.g. 'a rerun resumes after epoch 12 (its latest checkpoint)'.
  """
  meta = None
  if os.path.isdir(os.path.join(workdir, 'checkpoints', 'latest')):  # else create nothing
    ckpts = RunCheckpoints(workdir)
    try:
      meta = ckpts.restore_meta('latest')
    except CheckpointMismatchError as e:
      return str(e)
    finally:
      ckpts.close()
  if meta is None:
    return 'no checkpoint yet: a rerun starts from the beginning'
  progress = meta.get('progress', {})
  epoch, chunk = int(progress.get('epoch', 0)), int(progress.get('chunk', 0))
  where = f'after epoch {epoch}' if not chunk else f'in epoch {epoch + 1}, after chunk {chunk}'
  return f'a rerun resumes {where} (its latest checkpoint)'


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
  """Holds a Ctrl-C that arrives inside the block until the block is done, then raises it.

  Orbax writes with worker threads; interrupted halfway it leaves them failing with tracebacks
  of their own. A save is short, so it finishes first and the run stops at a complete checkpoint.
  """
  if (
    threading.current_thread() is not threading.main_thread()
    or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
  ):  # e.g. ignored, as in a shell's background job: nothing to defer
    yield
    return
  caught = []
  previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
  try:
    yield
  finally:
    signal.signal(signal.SIGINT, previous)
  if caught:
    raise KeyboardInterrupt


def _flatten(tree: Any) -> dict[str, np.ndarray]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): leaf for path, leaf in leaves}


def _unflatten(template: Any, flat: dict[str, Any], where: str) -> Any:
  paths, treedef = jax.tree_util.tree_flatten_with_path(template)
  leaves = []
  for path, leaf in paths:
    name = jax.tree_util.keystr(path)
    if np.size(leaf) == 0:  # empty buffers (e.g. no momentum) are not stored
      leaves.append(leaf)
      continue
    if name not in flat:
      raise CheckpointMismatchError(f'{where}: the checkpoint has no entry {name}')
    value = flat[name]
    if tuple(np.shape(value)) != tuple(np.shape(leaf)):
      raise CheckpointMismatchError(
        f'{where}: {name} has shape {np.shape(value)} in the checkpoint but {np.shape(leaf)} in '
        'the model built from this config (different dataset or hyperparameters?)'
      )
    leaves.append(jax.numpy.asarray(value, dtype=leaf.dtype))
  return jax.tree_util.tree_unflatten(treedef, leaves)


class RunCheckpoints:
  """`latest` (resumable state, rotated) and `best` (parameters at the best validation score).

  Args:
    workdir: the run directory; checkpoints live in `workdir/checkpoints/{latest,best}`.
  """

  def __init__(self, workdir: str):
    root = os.path.join(os.path.abspath(workdir), 'checkpoints')
    self._managers = {
      kind: ocp.CheckpointManager(
        os.path.join(root, kind),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True),
      )
      for kind in ('latest', 'best')
    }

  def save(self, kind: str, step: int, tree: Any, meta: dict) -> None:
    """Writes `tree` (any pytree of arrays) and a JSON `meta` dict under `kind` at `step`."""
    flat = {k: np.asarray(v) for k, v in _flatten(tree).items() if np.size(v) > 0}
    manager = self._managers[kind]
    with _sigint_deferred():
      if step in manager.all_steps():  # e.g. an epoch-end save right after a timed one
        manager.delete(step)
      manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(flat), meta=ocp.args.JsonSave(meta)),
        force=True,
      )
      manager.wait_until_finished()

  def latest_step(self, kind: str) -> int | None:
    return self._managers[kind].latest_step()

  def restore(self, kind: str, template: Any) -> tuple[Any, dict] | None:
    """Restores the newest `kind` checkpoint into the structure of `template`, or None if none."""
    manager = self._managers[kind]
    step = manager.latest_step()
    if step is None:
      return None
    flat_template = {k: np.asarray(v) for k, v in _flatten(template).items() if np.size(v) > 0}
    restored = manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(
          {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in flat_template.items()}
        ),
        meta=ocp.args.JsonRestore(),
      ),
    )
    where = str(manager.directory)
    return _unflatten(template, dict(restored['state']), where), dict(restored['meta'])

  def restore_meta(self, kind: str) -> dict | None:
    """The JSON meta of the newest `kind` checkpoint, None if there is none.

    Raises:
      CheckpointMismatchError: naming the checkpoint directory when its meta cannot be read.
    """
    manager = self._managers[kind]
    step = manager.latest_step()
    if step is None:
      return None
    try:
      restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    except (OSError, ValueError) as e:  # json's decode errors are ValueErrors
      raise CheckpointMismatchError(
        f'{manager.directory / str(step)}: the checkpoint cannot be read ({type(e).__name__}: '
        f'{e}). Move that step directory away to resume from an earlier one, or use a fresh '
        '--workdir.'
      ) from e
    return dict(restored['meta'])

  def close(self) -> None:
    for manager in self._managers.values():
      manager.close()
