"""The training task on user-session data: HRNN user-parallel, or GRU4Rec on the same sessions.

`train.train_and_evaluate` runs the loop (checkpoints, resume, early stopping, metrics files);
this module lays out what differs for user-session data (`config.data.format` in
`USER_FORMATS`, loaded by `load_user_session_data`):

* `hrnn` trains on user-parallel epochs (`seqrec.data.user_parallel`, each slot walks one user's
  sessions in time order) with the user state carried beside the session state
  (`seqrec.user_train_step`).
* `gru4rec` trains session-parallel on the identical training sessions, as a session-based model.

Both are evaluated on the identical held-out events (`seqrec.user_evaluation.evaluate_users`):
HRNN with the user state built from the user's earlier sessions, GRU4Rec from a zero state at
every held-out session. `config.eval.first_n` adds the metrics over the first k predictions of
each held-out session, where a user state matters most.
"""

import jax
import ml_collections
import numpy as np
from flax import nnx

from seqrec import comparison, sharding, train_step, user_evaluation, user_train_step
from seqrec.data.session_parallel import build_schedule, session_order_by_start_time
from seqrec.data.user_parallel import build_user_schedule_from_events
from seqrec.data.user_sessions import USER_FORMATS, load_user_session_data
from seqrec.models import build_model
from seqrec.models.gru4rec import ItemTable
from seqrec.train import Task, eval_options, make_mesh, zero_carry

# Models that train on user-session data.
USER_DATA_MODELS = ('hrnn', 'gru4rec')


def is_user_data(config: ml_collections.ConfigDict) -> bool:
  """Whether `config.data` is user-session data (HRNN's formats)."""
  return config.data.get('format', '') in USER_FORMATS


def evaluate_user_split(model, data, split: str, config: ml_collections.ConfigDict) -> dict:
  """Next-item metrics on the held-out sessions of `split` ('valid' or 'test').

  The history is what the model trained on before that split: `train_tr` before `valid`, `train`
  (which includes the validation sessions) before `test`.
  """
  return user_split_ranks(model, data, split, config)[0]


def evaluate_user_test(model, data, config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Test metrics, with every held-out target's rank written to `workdir/test_ranks.npz`."""
  metrics, ranks = user_split_ranks(model, data, 'test', config)
  keys, targets, target_ranks, positions = ranks.keyed(data.user_ids)
  counts = data.item_counts  # of `train`, the history before the test sessions
  comparison.save_test_ranks(
    workdir,
    keys=keys,
    targets=data.vocab.decode(targets),
    ranks=target_ranks,
    sampled_ranks=None,
    history_length=positions + 1,  # the session's items before the target
    target_count=counts[targets],
    tie_mode=config.eval.tie_mode,
    exclude_seen=False,
  )
  return metrics


def user_split_ranks(
  model, data, split: str, config: ml_collections.ConfigDict
) -> tuple[dict, user_evaluation.UserRanks]:
  """`(metrics, UserRanks)` of `split`, as `evaluate_user_split` describes."""
  hierarchical = config.model == 'hrnn'
  history, held_out = (data.train_tr, data.valid) if split == 'valid' else (data.train, data.test)
  return user_evaluation.evaluate_users_with_ranks(
    model,
    history,
    held_out,
    **eval_options(config),
    use_user_state=hierarchical,
    first_n=tuple(config.eval.get('first_n', ())),
    history_sessions=int(config.eval.get('history_sessions', -1)),
  )


def build_user_task(config: ml_collections.ConfigDict) -> Task:
  """Data, model, compiled epoch and evaluation of `config.model` on user-session data.

  Raises:
    train.ConfigError: for a model that cannot train on user-session data.
  """
  from seqrec.train import ConfigError, training_events  # noqa: PLC0415

  if config.model not in USER_DATA_MODELS:
    raise ConfigError(
      f'--config.model={config.model!r}: expected one of {USER_DATA_MODELS} on user-session '
      f'data (--config.data.format={config.data.format!r})'
    )
  data = load_user_session_data(config.data)
  train_events = training_events(data)
  model = build_model(config, data.n_items, seed=int(config.seed))
  graphdef, _, _ = nnx.split(model, ItemTable, nnx.Param)
  batch_size = int(config.batch_size)
  steps_per_call = int(config.steps_per_call)
  counts = np.bincount(np.asarray(train_events.item), minlength=data.n_items)
  step_cfg = train_step.step_config(config)
  rng = jax.random.PRNGKey(int(config.seed))
  if config.model == 'hrnn':
    schedule, _ = build_user_schedule_from_events(
      train_events, batch_size, steps_multiple=steps_per_call
    )
    chunk_fn = user_train_step.make_user_train_chunk(
      graphdef, step_cfg, counts, steps_per_call, int(config.scan_unroll)
    )
    state = user_train_step.init_user_train_state(model, batch_size, float(config.momentum), rng)
  else:
    offsets = train_events.session_offsets()
    schedule = build_schedule(
      np.asarray(train_events.item),
      offsets,
      batch_size,
      order=session_order_by_start_time(offsets, np.asarray(train_events.time)),
      steps_multiple=steps_per_call,
    )
    chunk_fn = train_step.make_train_chunk(
      graphdef, step_cfg, counts, steps_per_call, int(config.scan_unroll)
    )
    state = train_step.init_train_state(model, batch_size, float(config.momentum), rng)
  mesh = make_mesh(config)
  arrays = schedule.arrays()
  if config.model == 'hrnn':  # what the update reads; the other flags would ride along unused
    arrays = {k: arrays[k] for k in user_train_step.BATCH_KEYS}
  return Task(
    data=data,
    graphdef=graphdef,
    arrays=sharding.shard_schedule(arrays, mesh),
    n_chunks=schedule.chunks(steps_per_call),
    chunk_fn=chunk_fn,
    state=sharding.place_state(state, mesh),
    reset_carry=zero_carry,
    evaluate=lambda model, split: evaluate_user_split(model, data, split, config),
    evaluate_test=lambda model, workdir: evaluate_user_test(model, data, config, workdir),
    has_valid=data.valid is not None,
  )
