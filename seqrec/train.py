"""The training loop: data, model, compiled epochs, evaluation, checkpoints, early stopping."""

import dataclasses
import inspect
import math
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from seqrec import checkpointing, comparison, evaluation, reporting, sharding, train_step
from seqrec.data import DataError, SessionData, load_session_data
from seqrec.data.session_parallel import build_schedule, session_order_by_start_time
from seqrec.models import build_model
from seqrec.models.gru4rec import ItemTable


@dataclasses.dataclass
class Progress:
  """Where a run stands; stored as JSON with every checkpoint."""

  epoch: int = 0  # epochs finished
  chunk: int = 0  # chunks finished within the current epoch
  best_metric: float = -1.0
  best_epoch: int = -1
  bad_epochs: int = 0
  epoch_seconds: list = dataclasses.field(default_factory=list)
  epoch_events: list = dataclasses.field(default_factory=list)
  # [loss sum, events] of the current epoch's finished chunks, so that a run resumed mid-epoch
  # logs that epoch's loss over all of it.
  epoch_totals: list = dataclasses.field(default_factory=lambda: [0.0, 0.0])


def fingerprint(config: ml_collections.ConfigDict, data: SessionData) -> dict:
  """What a checkpoint must agree on with the run restoring it."""
  return {
    'model': config.model,
    'n_items': int(data.n_items),
    'vocab_sha256': data.vocab.digest(),
    'layers': [int(u) for u in config.layers],
    'batch_size': int(config.batch_size),
    **(
      {'user_units': int(config.user_units), 'user_propagation': config.user_propagation_mode}
      if config.model == 'hrnn'
      else {}
    ),
  }


def training_events(data: SessionData):
  """Validation runs train on train-minus-validation; otherwise on the full training set."""
  return data.train_tr if data.valid is not None else data.train


def popularity_metrics(data: SessionData, events, cutoffs, tie_mode: str) -> dict[str, float]:
  """POP baseline on the same targets: every prediction ranks items by training popularity.

  Popularity is counted on the events the models train on (`training_events`: `train_tr` when
  there is a validation split), so the column equals the `pop` baseline's run on the same data.
  """
  counts = np.asarray(data.item_counts_for(training_events(data)))
  offsets = events.session_offsets()
  is_first = np.zeros(events.num_events, bool)
  is_first[offsets[:-1]] = True
  target_counts = counts[np.asarray(events.item)[~is_first]]  # [P]
  ordered = np.sort(counts)
  n_greater = len(ordered) - np.searchsorted(ordered, target_counts, side='right')
  n_equal = np.searchsorted(ordered, target_counts, side='right') - np.searchsorted(
    ordered, target_counts, side='left'
  )
  ranks = evaluation.ranks_from_counts(jnp.asarray(n_greater), jnp.asarray(n_equal), tie_mode)
  sums = evaluation.metric_sums(ranks, jnp.ones(ranks.shape, bool), tuple(cutoffs))
  return evaluation.finalize(sums)


def evaluate(model, events, config: ml_collections.ConfigDict) -> dict[str, float]:
  """Full-catalogue next-item metrics of `model` on `events` with the run's `config.eval`."""
  return evaluation.evaluate_sessions(model, events, **eval_options(config))


def eval_options(config: ml_collections.ConfigDict) -> dict:
  """The `config.eval` settings every session evaluator takes, as keyword arguments."""
  return dict(
    batch_size=int(config.eval.batch_size),
    cutoffs=tuple(config.eval.cutoffs),
    mode=config.eval.tie_mode,
    item_chunk=int(config.eval.item_chunk),
    steps_per_call=int(config.eval.steps_per_call),
  )


class ConfigError(ValueError):
  """A config value that cannot work; the message names the `--config.` flag."""


class TrainingDivergedError(ConfigError):
  """Training produced a non-finite loss: its settings (mostly the learning rate) do not work."""


@jax.jit
def _all_finite(tree) -> jax.Array:
  """Whether every floating-point array of `tree` is free of NaN and infinity (one call)."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)]
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves] or [jnp.bool_(True)]))


def check_finite_training(
  loss: float, state, epoch: int, config: ml_collections.ConfigDict, workdir: str
) -> None:
  """Stops a run whose epoch loss or training state is NaN or infinite, instead of testing a
  broken model (NaN scores would rank every target last).

  Raises:
    TrainingDivergedError: naming the epoch, the learning rate and the workdir.
  """
  if not math.isfinite(loss) or not bool(_all_finite(state)):
    what = (
      f'the mean training loss is {loss}'
      if not math.isfinite(loss)
      else 'the parameters or optimiser state hold NaN or infinite values'
    )
    raise TrainingDivergedError(
      f'training diverged in epoch {epoch}: {what}. Lower '
      f'--config.learning_rate (now {config.learning_rate!r}) and use a fresh --workdir '
      f'({workdir} holds the diverged run).'
    )


def positive_ints(values) -> bool:
  """A non-empty sequence of positive integers (a float, string or bool entry fails)."""
  try:
    return len(values) > 0 and all(
      isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values
    )
  except TypeError:
    return False


# What a bad config, input file or workdir raises (and a config that makes training diverge).
# Each message names the flag, file or directory, so the entry points print it as one line
# instead of a traceback.
INPUT_ERRORS = (ConfigError, DataError, checkpointing.CheckpointMismatchError, FileNotFoundError)


def check_workdir(workdir: str) -> None:
  """Rejects a `--workdir` that cannot hold a run, before any data is read; creates nothing.

  Raises:
    ConfigError: when `workdir` is an existing file, lies under one, or cannot be written.
  """
  if not workdir:
    raise ConfigError('--workdir is empty: expected a directory (new, or a run to resume)')
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ConfigError(
      f'--workdir={workdir} is a file: expected a directory (new, or a run to resume)'
    )
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ConfigError(f'--workdir={workdir}: {existing} is a file, so the directory cannot be made')
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ConfigError(f'--workdir={workdir}: no permission to write in {existing}')


def check_run_timing(config: ml_collections.ConfigDict, check) -> None:
  """The timing fields every trained model has, checked with its validator's `check`."""
  check(
    float(config.checkpoint_every_secs) >= 0,
    'checkpoint_every_secs',
    'a non-negative number of seconds (0 = at every epoch end)',
  )
  check(
    float(config.get('time_limit_secs', 0.0)) >= 0,
    'time_limit_secs',
    'a non-negative number of seconds (0 = no limit)',
  )


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Rejects bad values before any data is read or anything is compiled.

  Raises:
    ConfigError: naming the offending `--config.` field and what is expected.
  """

  def check(ok: bool, field: str, expected: str) -> None:
    if not ok:
      value = config
      for part in field.split('.'):
        value = value[part]
      raise ConfigError(f'--config.{field}={value!r}: expected {expected}')

  from seqrec import baselines, losses  # noqa: PLC0415 (only needed here)
  from seqrec.models import MODELS  # noqa: PLC0415
  from seqrec.models.sequential import SEQUENCE_MODELS  # noqa: PLC0415

  check(
    config.model in MODELS or config.model in baselines.BASELINES,
    'model',
    f'a session model, one of {sorted(MODELS)}, a user-sequence model, one of '
    f'{sorted(SEQUENCE_MODELS)} (with a sequence config), or a baseline, one of '
    f'{sorted(baselines.BASELINES)}',
  )
  check(config.eval.tie_mode in evaluation.MODES, 'eval.tie_mode', f'one of {evaluation.MODES}')
  check(
    positive_ints(config.eval.cutoffs),
    'eval.cutoffs',
    'a non-empty tuple of positive K, e.g. "(5,10,20)"',
  )
  check(int(config.eval.batch_size) > 0, 'eval.batch_size', 'a positive integer')
  if config.model in baselines.BASELINES:  # no GRU4Rec fields; the baseline checks its own
    check(
      'baseline' in config and config.model in config.baseline,
      'model',
      'a baseline with its hyperparameters in config.baseline.<model>',
    )
    try:
      baselines.build_baseline(config.model, config.baseline[config.model], int(config.seed))
    except baselines.ParamError as e:
      raise ConfigError(
        f'--config.baseline.{config.model}.{e.field}={e.value!r}: expected {e.expected}'
      ) from e
    except TypeError as e:  # a field in config.baseline.<model> the baseline does not take
      raise ConfigError(
        f'config.baseline.{config.model} holds a field {config.model} does not take ({e}); '
        'its fields are those of baseline_params() in seqrec/configs/baseline_base.py'
      ) from None
    return
  check(config.loss in losses.LOSSES, 'loss', f'one of {sorted(losses.LOSSES)}')
  check(
    positive_ints(config.layers),
    'layers',
    'a non-empty tuple of positive sizes, e.g. "(100,)"',
  )
  check(int(config.batch_size) > 0, 'batch_size', 'a positive integer')
  check(int(config.n_epochs) >= 0, 'n_epochs', 'a non-negative integer')
  check(int(config.n_sample) >= -1, 'n_sample', '-1 (full softmax), 0 (in-batch) or a count')
  check(int(config.embedding) >= 0, 'embedding', '0 (no separate embedding) or a positive size')
  check(float(config.elu_param) >= 0, 'elu_param', '0 (no ELU) or a positive alpha')
  check(float(config.bpreg) >= 0, 'bpreg', 'a non-negative score regularisation weight')
  check(float(config.logq) >= 0, 'logq', 'a non-negative logQ correction weight (0 = off)')
  final_act = config.get('final_act', 'linear')
  check(final_act in losses.FINAL_ACTIVATIONS, 'final_act', f'one of {losses.FINAL_ACTIVATIONS}')
  takes_it = 'final_act' in inspect.signature(losses.LOSSES[config.loss]).parameters
  check(
    final_act == 'linear' or takes_it,
    'final_act',
    "'linear' with this loss ('tanh' goes with loss bpr or top1, as in the Theano codes)",
  )
  for name in ('dropout_p_embed', 'dropout_p_hidden'):
    check(0.0 <= float(config[name]) < 1.0, name, 'a probability in [0, 1)')
  check(0 < float(config.learning_rate) < math.inf, 'learning_rate', 'a positive, finite number')
  check(0.0 <= float(config.momentum) < 1.0, 'momentum', 'a number in [0, 1)')
  check(int(config.steps_per_call) > 0, 'steps_per_call', 'a positive integer')
  check(int(config.scan_unroll) > 0, 'scan_unroll', 'a positive integer')
  check_run_timing(config, check)
  if config.model == 'hrnn':
    from seqrec.data.user_sessions import USER_FORMATS  # noqa: PLC0415
    from seqrec.models.hrnn import USER_PROPAGATION_MODES  # noqa: PLC0415

    check(
      config.data.get('format', '') in USER_FORMATS,
      'data.format',
      f'user-session data for HRNN, one of {USER_FORMATS}',
    )

    check(int(config.user_units) > 0, 'user_units', 'a positive integer')
    check(
      config.user_propagation_mode in USER_PROPAGATION_MODES,
      'user_propagation_mode',
      f'one of {USER_PROPAGATION_MODES}',
    )
    for name in ('dropout_p_user', 'dropout_p_init'):
      check(0.0 <= float(config[name]) < 1.0, name, 'a probability in [0, 1)')
  names = {f'{m}@{k}' for m in ('recall', 'mrr', 'ndcg') for k in config.eval.cutoffs}
  check(config.early_stopping.metric in names, 'early_stopping.metric', f'one of {sorted(names)}')


@dataclasses.dataclass
class Task:
  """What the training loop needs from one kind of data and model.

  Attributes:
    data: the dataset (`SessionData`, or its subclass `UserSessionData`).
    graphdef: the model's structure; parameters are `state.tables` and `state.dense`.
    arrays: the epoch's `[T, B]` schedule arrays, placed on the devices.
    n_chunks: compiled calls per epoch.
    chunk_fn: `chunk_fn(state, arrays, start) -> (state, [loss_sum, n_valid])`.
    state: the initial train state (placed on the devices).
    reset_carry: `state -> state` with the recurrent states zeroed (at each epoch start).
    evaluate: `evaluate(model, split) -> metrics` for split 'valid' or 'test'.
    evaluate_test: `evaluate_test(model, workdir) -> metrics` on 'test', also writing the rank of
      every test prediction to `workdir/test_ranks.npz` (see `seqrec.comparison`).
    has_valid: whether the data has a validation split.
  """

  data: SessionData
  graphdef: nnx.GraphDef
  arrays: dict
  n_chunks: int
  chunk_fn: Callable
  state: train_step.TrainState
  reset_carry: Callable
  evaluate: Callable
  evaluate_test: Callable
  has_valid: bool


def zero_carry(state):
  """The state with every recurrent state (`hidden`, and `user_hidden` if any) set to zero."""
  carry = {'hidden': tuple(jnp.zeros_like(h) for h in state.hidden)}
  if hasattr(state, 'user_hidden'):
    carry['user_hidden'] = jnp.zeros_like(state.user_hidden)
  return dataclasses.replace(state, **carry)


def make_mesh(config: ml_collections.ConfigDict):
  """The data-parallel mesh of `--config.num_devices`."""
  try:
    return sharding.make_mesh(int(config.num_devices), int(config.batch_size))
  except ValueError as e:
    raise ConfigError(str(e)) from None


def build_session_task(config: ml_collections.ConfigDict) -> Task:
  """GRU4Rec on session data: session-parallel epochs, session-parallel evaluation."""
  data = load_session_data(config.data)
  train_events = training_events(data)
  model = build_model(config, data.n_items, seed=int(config.seed))
  graphdef, _, _ = nnx.split(model, ItemTable, nnx.Param)
  batch_size = int(config.batch_size)
  steps_per_call = int(config.steps_per_call)
  offsets = train_events.session_offsets()
  schedule = build_schedule(
    np.asarray(train_events.item),
    offsets,
    batch_size,
    order=session_order_by_start_time(offsets, np.asarray(train_events.time)),
    steps_multiple=steps_per_call,
  )
  mesh = make_mesh(config)
  counts = np.bincount(np.asarray(train_events.item), minlength=data.n_items)
  chunk_fn = train_step.make_train_chunk(
    graphdef, train_step.step_config(config), counts, steps_per_call, int(config.scan_unroll)
  )
  state = train_step.init_train_state(
    model, batch_size, float(config.momentum), jax.random.PRNGKey(int(config.seed))
  )

  def evaluate_split(model, split: str) -> dict[str, float]:
    return evaluate(model, data.valid if split == 'valid' else data.test, config)

  def evaluate_test(model, workdir: str) -> dict[str, float]:
    metrics, ranks = evaluation.rank_sessions(model, data.test, **eval_options(config))
    tie_mode = config.eval.tie_mode
    comparison.save_event_ranks(workdir, data.test, data.vocab, ranks, counts, tie_mode)
    return metrics

  return Task(
    data=data,
    graphdef=graphdef,
    arrays=sharding.shard_schedule(schedule.arrays(), mesh),
    n_chunks=schedule.chunks(steps_per_call),
    chunk_fn=chunk_fn,
    state=sharding.place_state(state, mesh),
    reset_carry=zero_carry,
    evaluate=evaluate_split,
    evaluate_test=evaluate_test,
    has_valid=data.valid is not None,
  )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `config.model` on `config.data`, evaluates it, and writes everything to `workdir`.

  A `workdir` holding a checkpoint of the same config and dataset is resumed from where it stopped.
  A baseline (`config.model` in `seqrec.baselines.BASELINES`) is fitted and evaluated by
  `seqrec.baselines.run` on the same data, targets and metrics instead; a user-sequence model
  (`seqrec.models.sequential.SEQUENCE_MODELS`: SASRec, BERT4Rec, Caser, TransRec) is trained by
  `seqrec.seq_train.train_and_evaluate_sequences`. User-session data
  (`config.data.format` in `USER_FORMATS`: HRNN, or GRU4Rec on the same sessions) is laid out by
  `seqrec.user_train.build_user_task`.

  Returns:
    The final metrics (also written to `workdir/final_metrics.json`). `time_limited` is true when
    `config.time_limit_secs` ended training before its last epoch or early stopping.
  """
  from seqrec import baselines, seq_train, user_train  # noqa: PLC0415 (they import this module)
  from seqrec.models.sequential import SEQUENCE_MODELS  # noqa: PLC0415

  check_workdir(workdir)
  if config.model in SEQUENCE_MODELS:  # user-sequence models: their own data, loop and checks
    return seq_train.train_and_evaluate_sequences(config, workdir)
  validate_config(config)

  if config.model in baselines.BASELINES:
    return baselines.run(config, workdir)
  os.makedirs(workdir, exist_ok=True)
  t_start = time.perf_counter()
  if user_train.is_user_data(config):
    task = user_train.build_user_task(config)
  else:
    task = build_session_task(config)
  data, graphdef, state = task.data, task.graphdef, task.state
  eval_split = 'valid' if task.has_valid else 'test'
  logging.info('data %s: %d items', data.name, data.n_items)
  steps_per_call = int(config.steps_per_call)

  ckpts = checkpointing.RunCheckpoints(workdir)
  progress = Progress()
  fp = fingerprint(config, data)
  meta = ckpts.restore_meta('latest')
  if meta is not None:
    checkpointing.check_same_run(workdir, meta.get('fingerprint'), fp, config)
    state, meta = ckpts.restore('latest', state)
    progress = Progress(**meta['progress'])
    state = sharding.place_state(state, make_mesh(config))
    logging.info(
      'resumed from %s after epoch %d and %d chunks of epoch %d',
      workdir,
      progress.epoch,
      progress.chunk,
      progress.epoch + 1,
    )
  # Written only once the workdir is known to be this run's, so a refused run leaves it intact.
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json(indent=2))
  data.vocab.save(os.path.join(workdir, 'item_vocab.npz'))
  writer = reporting.MetricsWriter(workdir, keep_through_step=int(state.step))

  def save(kind: str, tree) -> None:
    meta = {'fingerprint': fp, 'progress': dataclasses.asdict(progress)}
    ckpts.save(kind, int(state.step), tree, meta)

  es = config.early_stopping
  n_chunks = task.n_chunks
  ckpt_every = float(config.checkpoint_every_secs)
  time_limit = float(config.get('time_limit_secs', 0.0))
  out_of_time = False
  # An early-stopped run stays stopped when its command is re-run (to test it again); a larger
  # `early_stopping.patience` on the command line trains it on.
  while progress.epoch < int(config.n_epochs) and not (
    eval_split == 'valid' and es.patience > 0 and progress.bad_epochs >= es.patience
  ):
    epoch = progress.epoch
    if progress.chunk == 0:  # the official code starts every epoch from a zero hidden state
      state = task.reset_carry(state)
    bar = reporting.Progress(n_chunks, f'epoch {epoch + 1}/{config.n_epochs}')
    t0 = time.perf_counter()
    last_ckpt = t0
    first_chunk = progress.chunk
    carried = np.asarray(progress.epoch_totals if first_chunk else [0.0, 0.0], np.float32)
    pending = [jnp.asarray(carried)] if first_chunk else []
    for c in range(first_chunk, n_chunks):
      state, stats = task.chunk_fn(state, task.arrays, jnp.int32(c * steps_per_call))
      pending.append(stats)
      progress.chunk = c + 1
      if bar.due() or c == n_chunks - 1:
        totals = np.sum(jax.device_get(pending), axis=0)
        pending = [jnp.asarray(totals)]
        bar.update(c + 1, int(totals[1]), f'loss {totals[0] / max(totals[1], 1):.4f}')
      if ckpt_every > 0 and time.perf_counter() - last_ckpt >= ckpt_every and c < n_chunks - 1:
        totals = np.sum(jax.device_get(pending), axis=0)
        pending = [jnp.asarray(totals)]
        progress.epoch_totals = [float(t) for t in totals]
        save('latest', state)
        last_ckpt = time.perf_counter()
    bar.close()
    totals = np.sum(jax.device_get(pending), axis=0)
    seconds = time.perf_counter() - t0
    events = int(totals[1] - carried[1])  # trained by this process
    loss = float(totals[0] / max(totals[1], 1))
    check_finite_training(loss, state, progress.epoch + 1, config, workdir)
    train_scalars = {
      'train_loss': loss,
      'train_events_per_sec': events / seconds,
      'epoch_seconds': seconds,
    }
    if first_chunk == 0:  # only whole epochs count for speed statistics
      progress.epoch_seconds.append(seconds)
      progress.epoch_events.append(events)
    progress.epoch += 1
    progress.chunk = 0
    progress.epoch_totals = [0.0, 0.0]
    scalars = dict(train_scalars)
    run_eval = eval_split == 'valid' or bool(config.eval.test_every_epoch)
    if run_eval:
      model_now = nnx.merge(graphdef, state.tables, state.dense)
      t_eval = time.perf_counter()
      metrics = task.evaluate(model_now, eval_split)
      scalars.update({f'{eval_split}/{k}': v for k, v in metrics.items()})
      scalars[f'{eval_split}/events_per_sec'] = metrics['count'] / (time.perf_counter() - t_eval)
    writer.write(int(state.step), scalars, epoch=progress.epoch)
    print(
      f'epoch {progress.epoch}: '
      + ' '.join(f'{k}={v:.4f}' for k, v in scalars.items() if '/' in k or k == 'train_loss'),
      flush=True,
    )

    stop = False
    if run_eval and eval_split == 'valid':
      value = scalars[f'valid/{es.metric}']
      if value > progress.best_metric:
        progress.best_metric, progress.best_epoch, progress.bad_epochs = value, progress.epoch, 0
        save('best', {'tables': state.tables, 'dense': state.dense})
      else:
        progress.bad_epochs += 1
        stop = es.patience > 0 and progress.bad_epochs >= es.patience
    save('latest', state)
    if stop:
      logging.info(
        'early stopping after epoch %d (best epoch %d)', progress.epoch, progress.best_epoch
      )
      break
    out_of_time = (
      progress.epoch < int(config.n_epochs)
      and time_limit > 0
      and time.perf_counter() - t_start >= time_limit
    )
    if out_of_time:
      logging.info('time limit of %.0f s reached after epoch %d', time_limit, progress.epoch)
      break

  # Final test evaluation with the best parameters (validation runs) or the last ones.
  params = {'tables': state.tables, 'dense': state.dense}
  if eval_split == 'valid' and ckpts.latest_step('best') is not None:
    params, _ = ckpts.restore('best', params)
  else:
    save('best', params)
  final_model = nnx.merge(graphdef, params['tables'], params['dense'])
  t_eval = time.perf_counter()
  test_metrics = task.evaluate_test(final_model, workdir)
  eval_seconds = time.perf_counter() - t_eval
  pop = popularity_metrics(data, data.test, config.eval.cutoffs, config.eval.tie_mode)
  result = {
    'test': test_metrics,
    'test_events_per_sec': test_metrics['count'] / eval_seconds,
    'popularity_test': pop,
    'epochs': progress.epoch,
    'best_epoch': progress.best_epoch,
    **(
      {'valid_best': {es.metric: progress.best_metric}}
      if eval_split == 'valid' and progress.best_epoch > 0
      else {}
    ),
    'time_limited': out_of_time,
    'train_events_per_sec_median': _median_rate(progress),
    'wall_seconds': time.perf_counter() - t_start,
  }
  writer.finish(int(state.step), progress.epoch, test_metrics, result)
  ckpts.close()
  return result


def _median_rate(progress: Progress) -> float:
  """Median training events/s over epochs 2.. (epoch 1 includes compilation)."""
  rates = [e / s for e, s in zip(progress.epoch_events, progress.epoch_seconds, strict=True)]
  rates = rates[1:] if len(rates) > 1 else rates
  return float(np.median(rates)) if rates else float('nan')
