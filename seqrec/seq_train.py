"""Training loop of user-sequence models (SASRec, BERT4Rec, Caser, TransRec) on leave-one-out data.

One run: `load_sequence_data(config.data)` -> the model's fixed-shape training examples (built
once) -> epochs of device-side permutations of the example indices, trained by one pure
`update_fn` (`seqrec.seq_train_step`) scanned over `config.steps_per_call` steps per compiled
call (state donated) ->
validation every `config.eval.every_epochs` epochs with early stopping and orbax latest/best
checkpoints -> test metrics of the best parameters beside a popularity baseline on the same
targets. A killed run resumes from its last finished epoch and ends with the numbers an
uninterrupted run would have produced: every random draw is keyed by (seed, epoch) or (seed, step).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx

from seqrec import (
  checkpointing,
  comparison,
  evaluation,
  reporting,
  seq_evaluation,
  seq_losses,
  seq_train_step,
  sharding,
)
from seqrec.data import sequence_batches
from seqrec.data.errors import DataError
from seqrec.data.user_sequences import SequenceData, load_sequence_data
from seqrec.models import sequential

METRICS = ('recall', 'mrr', 'ndcg')
# Sub-config fields of the sequence models that must be probabilities or positive integers.
_PROBABILITIES = ('dropout', 'attention_dropout', 'mask_last_prob')
_POSITIVE = ('max_len', 'hidden', 'n_blocks', 'n_heads', 'n_layers', 'intermediate', 'L', 'T')
_POSITIVE += ('dim', 'max_predictions')


@dataclasses.dataclass
class Progress:
  """Where a run stands; stored as JSON with every checkpoint (epoch granularity)."""

  epoch: int = 0  # epochs finished
  best_metric: float = -1.0
  best_epoch: int = -1
  bad_evals: int = 0  # validations without improvement since the best one
  stopped: bool = False  # early stopping ended the run (a rerun with the same patience stops)
  epoch_seconds: list = dataclasses.field(default_factory=list)
  epoch_positions: list = dataclasses.field(default_factory=list)
  epoch_warm: list = dataclasses.field(default_factory=list)  # False: included compilation
  eval_seconds: list = dataclasses.field(default_factory=list)

  def judge_stop(self, patience: int) -> None:
    """Early stopping: `patience` validations without improvement end the run (0 = never)."""
    self.stopped = patience > 0 and self.bad_evals >= patience


# --- Config ---


class _Checker:
  """Raises `train.ConfigError` naming the `--config.` flag of a bad value."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  def __call__(self, ok: bool, field: str, expected: str) -> None:
    if ok:
      return
    from seqrec.train import ConfigError  # noqa: PLC0415 (train dispatches to this module)

    value = self.config
    for part in field.split('.'):
      if isinstance(value, ml_collections.ConfigDict):
        value = value.get(part, '<missing>')
    raise ConfigError(f'--config.{field}={value!r}: expected {expected}')


def metric_names(config: ml_collections.ConfigDict) -> list[str]:
  """Every metric key the validation reports (full-catalogue, then sampled if configured)."""
  names = [f'{m}@{int(k)}' for m in METRICS for k in config.eval.cutoffs]
  if int(config.eval.sampled_n) > 0:
    prefix = seq_evaluation.sampled_prefix(int(config.eval.sampled_n), config.eval.sampled_kind)
    names += [f'{prefix}/{n}' for n in names]
  return names


def validate_sequence_config(config: ml_collections.ConfigDict) -> None:
  """Rejects bad values before any data is read or anything is compiled.

  Raises:
    seqrec.train.ConfigError: naming the offending `--config.` field and what is expected.
  """
  check = _Checker(config)
  models = sorted(sequential.SEQUENCE_MODELS)
  check(config.model in sequential.SEQUENCE_MODELS, 'model', f'a sequence model, one of {models}')
  check(
    config.model in config,
    'model',
    f'a model whose hyperparameters are in config.{config.model} (a sequence config file)',
  )
  losses = ['default', *seq_losses.LOSSES]
  check(config.loss in losses, 'loss', f'one of {losses}')
  check(int(config.n_negatives) >= 0, 'n_negatives', "0 (the loss's own count) or a positive count")
  reductions = ('default', *seq_losses.NEGATIVE_REDUCTIONS)
  check(config.negative_reduction in reductions, 'negative_reduction', f'one of {reductions}')
  if config.model in sequential.SEQUENCE_MODELS and config.loss in losses:
    name = seq_train_step.resolve_loss(config)[0]
    check(
      config.negative_reduction == 'default' or name in ('bce', 'gbce', 'sbpr'),
      'negative_reduction',
      f"'default' for loss {name!r}, which does not combine negative terms",
    )
  check(0.0 <= float(config.gbce_t) <= 1.0, 'gbce_t', 'a calibration t in [0, 1]')
  check(
    0.0 <= float(config.get('gbce_eps', 0.0)) < 0.5,
    'gbce_eps',
    "0 (no clamp) or a small probability (gSASRec-pytorch's 1e-10)",
  )
  scoring = ('auto', 'gather', 'catalog')
  check(config.get('negative_scoring', 'auto') in scoring, 'negative_scoring', f'one of {scoring}')
  check(
    int(config.get('negative_score_chunk', 0)) >= 0,
    'negative_score_chunk',
    'a non-negative number of positions (0 = no chunks)',
  )
  check(
    0 < float(config.learning_rate) < float('inf'), 'learning_rate', 'a positive, finite number'
  )
  check(0.0 <= float(config.adam_b1) < 1.0, 'adam_b1', 'a number in [0, 1)')
  check(0.0 <= float(config.adam_b2) < 1.0, 'adam_b2', 'a number in [0, 1)')
  check(float(config.weight_decay) >= 0, 'weight_decay', 'a non-negative L2 coefficient')
  check(float(config.grad_clip_norm) >= 0, 'grad_clip_norm', 'a non-negative norm (0 = off)')
  check(float(config.get('loss_scale', 1.0)) > 0, 'loss_scale', 'a positive factor')
  check(int(config.batch_size) > 0, 'batch_size', 'a positive integer')
  check(int(config.n_epochs) >= 0, 'n_epochs', 'a non-negative integer')
  check(int(config.steps_per_call) > 0, 'steps_per_call', 'a positive integer')
  local = jax.local_devices()
  try:
    sharding.mesh_size(
      int(config.get('num_devices', 1)), int(config.batch_size), len(local), local[0].platform
    )
  except ValueError as e:
    from seqrec.train import ConfigError  # noqa: PLC0415 (train dispatches to this module)

    raise ConfigError(str(e)) from None
  from seqrec.train import check_run_timing, positive_ints  # noqa: PLC0415 (train imports this)

  check_run_timing(config, check)
  ev = config.eval
  check(ev.tie_mode in evaluation.MODES, 'eval.tie_mode', f'one of {evaluation.MODES}')
  check(
    positive_ints(ev.cutoffs),
    'eval.cutoffs',
    'a non-empty tuple of positive K, e.g. "(1,5,10,20)"',
  )
  check(int(ev.sampled_n) >= 0, 'eval.sampled_n', '0 (off) or a number of sampled negatives')
  kinds = seq_evaluation.SAMPLED_KINDS
  check(ev.sampled_kind in kinds, 'eval.sampled_kind', f'one of {kinds}')
  check(int(ev.every_epochs) >= 1, 'eval.every_epochs', 'a positive integer')
  check(int(ev.user_block) >= 1, 'eval.user_block', 'a positive integer')
  names = metric_names(config)
  check(config.early_stopping.metric in names, 'early_stopping.metric', f'one of {names}')
  check(int(config.early_stopping.patience) >= 0, 'early_stopping.patience', '>= 0 (0 = off)')
  sub = config[config.model]
  for field, value in sub.items():
    if field in _PROBABILITIES:
      check(0.0 <= float(value) < 1.0, f'{config.model}.{field}', 'a probability in [0, 1)')
    elif field in _POSITIVE:
      check(int(value) > 0, f'{config.model}.{field}', 'a positive integer')
  # What only the model knows: build it abstractly (no arrays) on a toy catalogue.
  try:
    nnx.eval_shape(lambda: build_model(config, n_items=7, n_users=3))
  except (ValueError, TypeError, KeyError, AttributeError) as e:
    from seqrec.train import ConfigError  # noqa: PLC0415

    words = re.match(r'\w+', str(e))
    field = words.group(0) if words and words.group(0) in sub else ''
    flag = f'{config.model}.{field}' if field else config.model
    raise ConfigError(f'--config.{flag}: {e}') from e


# --- Model, examples, loss ---


def build_model(config: ml_collections.ConfigDict, n_items: int, n_users: int) -> nnx.Module:
  """`config.model` from its registry builder, parameters drawn from `config.seed`."""
  build = sequential.SEQUENCE_MODELS[config.model]
  return build(config, n_items, n_users, nnx.Rngs(params=int(config.seed)))


def build_examples(config: ml_collections.ConfigDict, data: SequenceData) -> dict[str, np.ndarray]:
  """The model's fixed-shape training examples (leading example axis)."""
  sub = config[config.model]
  if config.model == 'sasrec':
    return sequence_batches.sasrec_examples(data.train, int(sub.max_len))
  if config.model == 'bert4rec':
    return sequence_batches.bert4rec_examples(data.train, int(sub.max_len))
  if config.model == 'caser':
    return sequence_batches.caser_examples(data.train, int(sub.L), int(sub.T))
  if config.model == 'transrec':
    return sequence_batches.transrec_examples(data.train)
  raise ValueError(f'no training examples for model {config.model!r}')


# --- Evaluation ---


@dataclasses.dataclass(frozen=True)
class EvalSplit:
  """One evaluation split, laid out once per run."""

  history: np.ndarray  # [U, L] latest items before the target
  users: np.ndarray  # [U]
  targets: np.ndarray  # [U], 0 = not evaluated
  seen: tuple[np.ndarray, np.ndarray]  # (offsets, values) of everything before the target

  @property
  def n_targets(self) -> int:
    return int(np.count_nonzero(self.targets))


def eval_split(data: SequenceData, split: str, max_len: int) -> EvalSplit:
  if split == 'valid':
    history, targets = data.valid_history, data.valid_target
  else:
    history, targets = data.test_history, data.test_target
  return EvalSplit(
    history=sequence_batches.history_matrix(history, max_len),
    users=np.arange(data.n_users, dtype=np.int32),
    targets=np.asarray(targets, np.int32),
    seen=(history.offsets, history.values),
  )


def _sampled(config: ml_collections.ConfigDict) -> dict | None:
  ev = config.eval
  if int(ev.sampled_n) <= 0:
    return None
  return dict(n=int(ev.sampled_n), kind=ev.sampled_kind, seed=int(ev.sampled_seed))


def _sampled_protocol(config: ml_collections.ConfigDict) -> str:
  """`'sampled100_uniform_seed0'`: which sampled negatives a run's sampled metrics used."""
  sampled = _sampled(config)
  if sampled is None:
    return ''
  return f'{seq_evaluation.sampled_prefix(sampled["n"], sampled["kind"])}_seed{sampled["seed"]}'


def evaluate_with_ranks(
  model, split: EvalSplit, config: ml_collections.ConfigDict, item_counts
) -> tuple[dict, np.ndarray, np.ndarray | None]:
  """Next-item metrics of `model` on `split` with the run's `config.eval`, and the ranks.

  Returns:
    `(metrics, full [U], sampled [U] or None)`: the ranks of every row of `split` (1 is best;
    rows whose target is 0 hold meaningless values).
  """
  ev, sampled = config.eval, _sampled(config)
  full, sampled_ranks, sums = seq_evaluation.rank_targets(
    model,
    split.history,
    split.users,
    split.targets,
    mode=ev.tie_mode,
    exclude_seen=bool(ev.exclude_seen),
    seen=split.seen,
    sampled=sampled,
    item_counts=item_counts,
    user_block=int(ev.user_block),
    cutoffs=tuple(int(k) for k in ev.cutoffs),
  )
  return seq_evaluation.summarize(sums, sampled), full, sampled_ranks


def evaluate(model, split: EvalSplit, config: ml_collections.ConfigDict, item_counts) -> dict:
  """Next-item metrics of `model` on `split` with the run's `config.eval`."""
  return evaluate_with_ranks(model, split, config, item_counts)[0]


# --- The loop ---


def data_hash(data: SequenceData) -> str:
  """A short hash of the dataset's ids, sequences and targets."""
  h = hashlib.sha256()
  for a in (
    data.item_ids,
    data.user_ids,
    data.train.offsets,
    data.train.values,
    data.valid_target,
    data.test_target,
  ):
    h.update(np.ascontiguousarray(a).tobytes())
  return h.hexdigest()[:16]


def ids_digest(item_ids: np.ndarray, user_ids: np.ndarray) -> str:
  """A short SHA-256 of a run's raw item and user ids in row order (what `ids.npz` holds)."""
  h = hashlib.sha256()
  for ids in (item_ids, user_ids):
    h.update(np.ascontiguousarray(ids).tobytes())
  return h.hexdigest()[:16]


# Model options added after runs had been saved, with the behaviour those runs had. At that value
# an option is left out of the fingerprint, so an older checkpoint still resumes.
_LATER_OPTIONS = {'sasrec': {'separate_output_embedding': False, 'init': 'tf'}}


def fingerprint(config: ml_collections.ConfigDict, data: SequenceData) -> dict:
  """What a checkpoint must agree on with the run restoring it (JSON-normalised)."""
  later = _LATER_OPTIONS.get(config.model, {})
  hyper = {
    k: v for k, v in config[config.model].to_dict().items() if k not in later or v != later[k]
  }
  fp = {
    'model': config.model,
    'hyperparameters': hyper,
    'n_items': int(data.n_items),
    'n_users': int(data.n_users),
    'data_sha256': data_hash(data),
    'loss': list(seq_train_step.resolve_loss(config)[:2]),
    'batch_size': int(config.batch_size),
  }
  return json.loads(json.dumps(fp))


class _Progress(reporting.Progress):
  """The progress line, counting target positions."""

  def update(self, done: int, events: int, extra: str = '') -> None:
    now = time.perf_counter()
    self.done, self.last = done, now
    rate = events / max(now - self.start, 1e-9)
    frac = min(done / self.total, 1.0)
    line = f'{self.desc} [{"#" * int(frac * 20):<20}] {frac:6.1%} {rate:,.0f} positions/s {extra}'
    self.stream.write(('\r' + line) if self.tty else (line + '\n'))
    self.stream.flush()


def _median_rate(progress: Progress) -> float:
  """Median training positions/s over the epochs that did not compile (all if none)."""
  rates = [p / s for p, s in zip(progress.epoch_positions, progress.epoch_seconds, strict=True)]
  warm = [r for r, w in zip(rates, progress.epoch_warm, strict=True) if w]
  rates = warm or rates
  return float(np.median(rates)) if rates else float('nan')


@dataclasses.dataclass
class SequenceTask:
  """What training a sequence config needs, built once: data, fresh state and the compiled chunk.

  `chunk_fn(state, examples, indices, ok, start)` runs `steps_per_call` update steps on the
  batches `indices[start:start + steps_per_call]` of an epoch (`epoch_schedule`) and returns
  `(state, [loss sum, positions])`; `state` is donated.
  """

  data: SequenceData
  graphdef: nnx.GraphDef
  # Freshly initialised from `config.seed`, not yet replicated (None once a caller took it).
  state: seq_train_step.TrainState | None
  mesh: jax.sharding.Mesh
  examples: dict[str, jax.Array]  # replicated over the mesh, leading example axis
  n_examples: int
  chunk_fn: Callable
  batch_size: int
  steps_per_call: int
  epoch_key: jax.Array  # epoch e's batches are drawn with fold_in(epoch_key, e)

  def epoch_schedule(self, epoch: int) -> tuple[jax.Array, jax.Array, int]:
    """Epoch `epoch`'s batches, placed on the mesh: `(indices, ok, n_chunks)`, [S, B] each."""
    indices, ok = sequence_batches.epoch_batches(
      jax.random.fold_in(self.epoch_key, epoch),
      self.n_examples,
      self.batch_size,
      self.steps_per_call,
    )  # [S, B] each
    order = sharding.shard_schedule({'indices': indices, 'ok': ok}, self.mesh)
    return order['indices'], order['ok'], indices.shape[0] // self.steps_per_call


def build_sequence_task(config: ml_collections.ConfigDict) -> SequenceTask:
  """Checks `config`, loads `config.data` and builds the model, its optimizer state and chunk.

  Raises:
    seqrec.train.ConfigError: on a bad config value (naming the flag), before the data is read.
  """
  validate_sequence_config(config)
  data = load_sequence_data(config.data)
  logging.info('data %s: %s', data.name, data.stats())
  # Drawn with replacement from fewer items, negatives repeat and the sampled rank can exceed the
  # full-catalogue one: the protocol assumes a catalogue much larger than its sample.
  _Checker(config)(
    int(config.eval.sampled_n) < data.n_items,
    'eval.sampled_n',
    f'fewer sampled negatives than the {data.n_items} items of {data.name} (0 turns sampled '
    'metrics off)',
  )
  model = build_model(config, data.n_items, data.n_users)
  graphdef = nnx.split(model, nnx.Param, ...)[0]
  step_cfg = seq_train_step.step_config(config, data.n_items)
  tx = seq_train_step.make_optimizer(step_cfg)
  state = seq_train_step.init_state(model, tx, int(config.seed))
  # Data parallelism: batch rows split over the mesh, examples and the state replicated.
  from seqrec.train import make_mesh  # noqa: PLC0415 (train dispatches to this module)

  mesh = make_mesh(config)
  host_examples = build_examples(config, data)
  n_examples = int(next(iter(host_examples.values())).shape[0])
  if n_examples == 0 or int(data.train.lengths().max(initial=0)) < 2:
    raise DataError(
      f'--config.data.path={config.data.get("path", "")!r} ({data.name}): no training sequence '
      f'has the 2 items {config.model} needs to learn a next item from (besides the held-out '
      'validation and test items)' + (' or the windows it trains on' if not n_examples else '')
    )
  examples = sharding.replicate(host_examples, mesh)
  steps_per_call = int(config.steps_per_call)
  return SequenceTask(
    data=data,
    graphdef=graphdef,
    state=state,
    mesh=mesh,
    examples=examples,
    n_examples=n_examples,
    chunk_fn=seq_train_step.make_train_chunk(graphdef, step_cfg, data.n_items, steps_per_call),
    batch_size=int(config.batch_size),
    steps_per_call=steps_per_call,
    epoch_key=jax.random.fold_in(jax.random.PRNGKey(int(config.seed)), 2),
  )


def train_and_evaluate_sequences(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the sequence model `config.model` on `config.data` and evaluates it in `workdir`.

  A `workdir` holding a checkpoint of the same model, hyperparameters and dataset resumes from
  its last finished epoch.

  Returns:
    `{'test', 'popularity_test', 'epochs', 'best_epoch', 'time_limited' (the time limit ended
    training), 'train_events_per_sec_median' (target positions/s), 'eval_seconds',
    'test_events_per_sec', 'wall_seconds', ...}`, also written to `workdir/final_metrics.json`.

  Raises:
    seqrec.train.ConfigError: on a bad config value (naming the flag), before anything runs.
    seqrec.checkpointing.CheckpointMismatchError: when `workdir` holds another run.
  """
  from seqrec.train import check_finite_training  # noqa: PLC0415 (train dispatches to this module)

  t_start = time.perf_counter()
  task = build_sequence_task(config)
  os.makedirs(workdir, exist_ok=True)
  data, graphdef, mesh = task.data, task.graphdef, task.mesh
  examples, chunk_fn, steps_per_call = task.examples, task.chunk_fn, task.steps_per_call
  state, task.state = task.state, None  # donated below: no second reference keeps its buffers
  max_len = sequential.history_length(config)
  valid = eval_split(data, 'valid', max_len)
  has_valid = valid.n_targets > 0
  item_counts = data.item_counts

  ckpts = checkpointing.RunCheckpoints(workdir)
  progress = Progress()
  fp = fingerprint(config, data)
  meta = ckpts.restore_meta('latest')
  if meta is not None:
    try:
      checkpointing.check_same_run(workdir, meta.get('fingerprint'), fp, config)
    except checkpointing.CheckpointMismatchError:
      ckpts.close()
      raise
    state, meta = ckpts.restore('latest', state)
    progress = Progress(**meta['progress'])
    # Stopping is judged with this run's patience: a rerun with a larger one (or 0) trains on.
    progress.judge_stop(int(config.early_stopping.patience))
    logging.info('resumed from %s after epoch %d', workdir, progress.epoch)
  state = sharding.replicate(state, mesh)
  # Written only once the workdir is known to be this run's, so a refused run leaves it intact.
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json(indent=2))
  np.savez(os.path.join(workdir, 'ids.npz'), item_ids=data.item_ids, user_ids=data.user_ids)
  writer = reporting.MetricsWriter(workdir, keep_through_step=int(state.step))

  # The ids' digest is kept beside the fingerprint (not in it, so older runs still resume):
  # `analysis.load_run` checks `ids.npz` against it.
  ids_sha256 = ids_digest(data.item_ids, data.user_ids)

  def save(kind: str, tree, step: int | None = None) -> None:
    meta = {'fingerprint': fp, 'ids_sha256': ids_sha256, 'progress': dataclasses.asdict(progress)}
    ckpts.save(kind, int(state.step) if step is None else step, tree, meta)

  def current_model(params):
    return nnx.merge(graphdef, params, state.others)

  # Checkpoint writes are spaced in time: on a GPU an epoch can take well under a second, far
  # less than a write. The best parameters wait on device until the next write, which stores
  # them before the 'latest' state whose progress refers to them.
  ckpt_every = float(config.checkpoint_every_secs)
  last_write = time.perf_counter()
  unsaved_best = None

  es, n_epochs = config.early_stopping, int(config.n_epochs)
  time_limit = float(config.get('time_limit_secs', 0.0))
  out_of_time = False
  first_epoch = progress.epoch
  while progress.epoch < n_epochs and not progress.stopped:
    epoch = progress.epoch
    indices, ok, n_chunks = task.epoch_schedule(epoch)  # [S, B] each
    bar = _Progress(n_chunks, f'epoch {epoch + 1}/{n_epochs}')
    t0 = time.perf_counter()
    pending = []
    for c in range(n_chunks):
      state, stats = chunk_fn(state, examples, indices, ok, jnp.int32(c * steps_per_call))
      pending.append(stats)
      if bar.due() or c == n_chunks - 1:
        totals = np.sum(jax.device_get(pending), axis=0)
        pending = [jnp.asarray(totals)]
        bar.update(c + 1, int(totals[1]), f'loss {totals[0] / max(totals[1], 1):.4f}')
    bar.close()
    totals = np.sum(jax.device_get(pending), axis=0)
    seconds = time.perf_counter() - t0
    positions = int(totals[1])
    progress.epoch_seconds.append(seconds)
    progress.epoch_positions.append(positions)
    progress.epoch_warm.append(epoch > first_epoch)  # this process compiled in its first epoch
    progress.epoch += 1
    train_loss = float(totals[0] / max(totals[1], 1))
    check_finite_training(train_loss, state, progress.epoch, config, workdir)
    scalars = {
      'train_loss': train_loss,
      'train_positions_per_sec': positions / seconds,
      'epoch_seconds': seconds,
    }
    run_eval = has_valid and (
      progress.epoch % int(config.eval.every_epochs) == 0 or progress.epoch == n_epochs
    )
    if run_eval:
      t_eval = time.perf_counter()
      metrics = evaluate(current_model(state.params), valid, config, item_counts)
      progress.eval_seconds.append(time.perf_counter() - t_eval)
      scalars.update({f'valid/{k}': v for k, v in metrics.items()})
      scalars['valid/seconds'] = progress.eval_seconds[-1]
      value = metrics[es.metric]
      if value > progress.best_metric:
        progress.best_metric, progress.best_epoch, progress.bad_evals = value, progress.epoch, 0
        # A copy: the next training call donates the state's buffers.
        unsaved_best = (int(state.step), jax.tree.map(jnp.copy, state.params))
      else:
        progress.bad_evals += 1
        progress.judge_stop(int(es.patience))
    writer.write(int(state.step), scalars, epoch=progress.epoch)
    print(
      f'epoch {progress.epoch}: '
      + ' '.join(
        f'{k}={v:.4f}'
        for k, v in scalars.items()
        if k in ('train_loss', 'train_positions_per_sec', f'valid/{es.metric}')
      ),
      flush=True,
    )
    finished = progress.stopped or progress.epoch >= n_epochs
    out_of_time = not finished and time_limit > 0 and time.perf_counter() - t_start >= time_limit
    final = finished or out_of_time
    if final or time.perf_counter() - last_write >= ckpt_every:
      if unsaved_best is not None:
        save('best', unsaved_best[1], step=unsaved_best[0])
        unsaved_best = None
      save('latest', state)
      last_write = time.perf_counter()
    if progress.stopped:
      logging.info('early stopping after epoch %d (best %d)', progress.epoch, progress.best_epoch)
      break
    if out_of_time:
      logging.info('time limit of %.0f s reached after epoch %d', time_limit, progress.epoch)
      break

  # Test metrics of the best validated parameters (or the last ones without validation).
  params = state.params
  if has_valid and ckpts.latest_step('best') is not None:
    params, _ = ckpts.restore('best', params)
  else:
    save('best', params)
  test = eval_split(data, 'test', max_len)
  t_eval = time.perf_counter()
  test_metrics, ranks, sampled_ranks = evaluate_with_ranks(
    current_model(params), test, config, item_counts
  )
  test_seconds = time.perf_counter() - t_eval
  rows = test.targets > 0  # [U]
  comparison.save_test_ranks(
    workdir,
    keys=data.user_ids[test.users[rows]],
    targets=data.item_ids[test.targets[rows]],
    ranks=ranks[rows],
    sampled_ranks=None if sampled_ranks is None else sampled_ranks[rows],
    history_length=np.diff(data.test_history.offsets)[test.users[rows]],
    target_count=np.asarray(item_counts)[test.targets[rows]],
    tie_mode=config.eval.tie_mode,
    exclude_seen=bool(config.eval.exclude_seen),
    sampled_protocol=_sampled_protocol(config),
  )
  pop = evaluate(seq_evaluation.PopularityModel(item_counts), test, config, item_counts)
  result = {
    'test': test_metrics,
    'test_events_per_sec': test.n_targets / test_seconds,
    'popularity_test': pop,
    'epochs': progress.epoch,
    'best_epoch': progress.best_epoch,
    **({'valid_best': {es.metric: progress.best_metric}} if progress.best_epoch > 0 else {}),
    'time_limited': out_of_time,
    'train_events_per_sec_median': _median_rate(progress),
    'eval_seconds': float(np.sum(progress.eval_seconds)),
    'test_eval_seconds': test_seconds,
    'wall_seconds': time.perf_counter() - t_start,
  }
  writer.finish(int(state.step), progress.epoch, test_metrics, result)
  ckpts.close()
  return result
