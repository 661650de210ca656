"""HRNN's evaluation: each user's history walked user-parallel, held-out sessions fully ranked."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from seqrec.data.events import Events
from seqrec.data.user_parallel import (
  UserSchedule,
  build_user_schedule,
  build_user_schedule_from_events,
  evaluation_events,
)
from seqrec.evaluation import finalize, metric_sums, target_ranks, zero_sums
from seqrec.models.hrnn import HRNN


@dataclasses.dataclass(frozen=True)
class UserRanks:
  """Per-pair results of a user-parallel evaluation walk, laid out like its schedule.

  Attributes:
    schedule: the walked `UserSchedule`.
    user: [T, B] int64 user id (the tables' dense id) of each slot, -1 on padding.
    position: [T, B] int32 index of each pair within its session (0: the session's first
      prediction), -1 on padding.
    scored: [T, B] bool, the held-out pairs (valid and `evaluate`).
    ranks: [T, B] float32 full-catalogue rank of each scored target, NaN elsewhere.
  """

  schedule: UserSchedule
  user: np.ndarray
  position: np.ndarray
  scored: np.ndarray
  ranks: np.ndarray

  def keyed(self, user_ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """The held-out pairs keyed so that two runs on the same data pair up.

    Args:
      user_ids: [U] raw id of each of the tables' dense user ids.

    Returns:
      `(keys, targets, ranks, positions)`, each [P]: `'<raw user>:<k>'` for a user's k-th
      held-out pair in time order (sessions in table order, pairs in session order, whatever
      the slots and batch size), the dense target items, their ranks, and each pair's index
      within its session (0: the session's first prediction).
    """
    steps, slots = np.nonzero(self.scored)
    users, sessions = self.user[steps, slots], self.schedule.session[steps, slots]  # [P]
    positions = self.position[steps, slots]
    order = np.lexsort((positions, sessions, users))  # by user, then time
    first = np.searchsorted(users[order], users[order], side='left')
    k = np.empty(len(users), np.int64)
    k[order] = np.arange(len(users)) - first
    keys = np.array([f'{u}:{i}' for u, i in zip(user_ids[users].tolist(), k.tolist(), strict=True)])
    return keys, self.schedule.targets[steps, slots], self.ranks[steps, slots], positions

  def by_user(self) -> dict[int, np.ndarray]:
    """{user id: ranks of the user's held-out targets, in walking (time) order}."""
    out = {}
    steps, slots = np.nonzero(self.scored)  # step-major: each user's pairs in time order
    for user in np.unique(self.user[steps, slots]).tolist():
      mine = self.user[steps, slots] == user
      out[user] = self.ranks[steps[mine], slots[mine]]
    return out


def session_positions(schedule: UserSchedule) -> np.ndarray:
  """[T, B] int32 index of each pair within its session, -1 on padding."""
  steps = np.arange(schedule.inputs.shape[0])[:, None]  # [T, 1]
  started = np.where(schedule.session_start, steps, -1)  # [T, B]
  last_start = np.maximum.accumulate(started, axis=0)  # [T, B]
  return np.where(schedule.valid, steps - last_start, -1).astype(np.int32)


def _schedule(
  history: Events,
  held_out: Events,
  batch_size: int,
  steps_per_call: int,
  use_user_state: bool,
  history_sessions: int,
) -> tuple[UserSchedule, np.ndarray]:
  """The walk: (schedule, [T, B] user id per slot)."""
  if use_user_state:
    events, in_eval = evaluation_events(history, held_out, history_sessions)
    schedule, users = build_user_schedule_from_events(
      events, batch_size, steps_multiple=steps_per_call, evaluate=in_eval
    )
    user = np.where(schedule.valid, users[schedule.user], -1)
    return schedule, user.astype(np.int64)
  # Every held-out session on its own, as a user of one session: all states start from zero.
  offsets = held_out.session_offsets()
  n_sessions = len(offsets) - 1
  schedule = build_user_schedule(
    held_out.item, offsets, np.arange(n_sessions + 1), batch_size, steps_multiple=steps_per_call
  )
  session_user = held_out.user[offsets[:-1]]  # [S]
  user = np.where(schedule.valid, session_user[schedule.session], -1)
  return schedule, user.astype(np.int64)


@functools.lru_cache(maxsize=32)
def _user_eval_chunk(
  graphdef,
  cutoffs: tuple[int, ...],
  mode: str,
  item_chunk: int,
  steps: int,
  first_n: tuple[int, ...],
  hierarchical: bool,
):
  """Jitted evaluation of `steps` user-parallel steps for one model structure."""

  def one_step(carry, batch):
    state, hidden, user_hidden, sums = carry
    model = nnx.merge(graphdef, state)
    if hierarchical:
      out, hidden, user_hidden = model.user_encode(
        batch['inputs'], hidden, user_hidden, batch['session_start'], batch['user_start']
      )
    else:  # a session-only model: GRU4Rec's evaluation
      hidden = tuple(jnp.where(batch['session_start'][:, None], 0.0, h) for h in hidden)
      out, hidden = model.encode(batch['inputs'], hidden)  # [B, D]
    scored = batch['valid'] & batch['evaluate']  # [B]

    def rank(out):
      return target_ranks(
        out,
        model.item_out[...],
        model.item_bias[...],
        batch['targets'],
        mode=mode,
        chunk_size=item_chunk,
      )

    # History steps only move the states: the catalogue is scored where a target counts.
    ranks = jax.lax.cond(
      scored.any(), rank, lambda out: jnp.zeros(out.shape[:1], jnp.float32), out
    )  # [B]
    step_sums = {'': metric_sums(ranks, scored, cutoffs)}
    for k in first_n:
      step_sums[f'first{k}'] = metric_sums(ranks, scored & (batch['position'] < k), cutoffs)
    sums = jax.tree.map(jnp.add, sums, step_sums)
    return (state, hidden, user_hidden, sums), jnp.where(scored, ranks, jnp.nan)

  def run(state, hidden, user_hidden, sums, arrays, start):
    window = {k: jax.lax.dynamic_slice_in_dim(v, start, steps) for k, v in arrays.items()}
    carry, ranks = jax.lax.scan(one_step, (state, hidden, user_hidden, sums), window)
    return carry[1:], ranks  # ranks [steps, B]

  return jax.jit(run)


def _walk(
  model,
  history: Events,
  held_out: Events,
  *,
  batch_size: int,
  cutoffs: tuple[int, ...],
  mode: str,
  item_chunk: int,
  steps_per_call: int,
  use_user_state: bool,
  first_n: tuple[int, ...],
  history_sessions: int,
) -> tuple[dict[str, dict[str, jax.Array]], UserRanks]:
  """Runs the evaluation walk; returns (metric sums per group, per-pair ranks)."""
  hierarchical = isinstance(model, HRNN)
  if use_user_state and not hierarchical:
    raise ValueError(
      f'{type(model).__name__} has no user state; evaluate it with use_user_state=False'
    )
  if held_out.user is None or (use_user_state and history.user is None):
    raise ValueError('evaluate_users needs event tables with users')
  cutoffs = tuple(int(k) for k in cutoffs)
  first_n = tuple(int(k) for k in first_n)
  schedule, user = _schedule(
    history, held_out, batch_size, steps_per_call, use_user_state, history_sessions
  )
  position = session_positions(schedule)
  arrays = {k: jnp.asarray(v) for k, v in schedule.arrays().items()}
  arrays['position'] = jnp.asarray(position)
  graphdef, state = nnx.split(model)
  run = _user_eval_chunk(
    graphdef, cutoffs, mode, int(item_chunk), int(steps_per_call), first_n, hierarchical
  )
  hidden = model.init_hidden(batch_size)
  user_hidden = (
    model.init_user_hidden(batch_size) if hierarchical else jnp.zeros((batch_size, 0), jnp.float32)
  )
  sums = {'': zero_sums(cutoffs), **{f'first{k}': zero_sums(cutoffs) for k in first_n}}
  ranks = []
  for c in range(schedule.chunks(steps_per_call)):
    (hidden, user_hidden, sums), chunk_ranks = run(
      state, hidden, user_hidden, sums, arrays, jnp.int32(c * steps_per_call)
    )
    ranks.append(chunk_ranks)
  ranks = np.concatenate(jax.device_get(ranks), axis=0)  # [T, B]
  scored = schedule.valid & schedule.evaluate
  return sums, UserRanks(schedule, user, position, scored, ranks)


def evaluate_users(model, history_events: Events, held_out_events: Events, **options) -> dict:
  """Next-item metrics of held-out sessions: `evaluate_users_with_ranks` without the ranks."""
  return evaluate_users_with_ranks(model, history_events, held_out_events, **options)[0]


def evaluate_users_with_ranks(
  model,
  history_events: Events,
  held_out_events: Events,
  *,
  batch_size: int = 512,
  cutoffs: tuple[int, ...] = (20,),
  mode: str = 'conservative',
  item_chunk: int = 16384,
  steps_per_call: int = 64,
  use_user_state: bool = True,
  first_n: tuple[int, ...] = (),
  history_sessions: int = -1,
) -> tuple[dict[str, float], UserRanks]:
  """Next-item evaluation of held-out sessions with the user state built from each user's history.

  As hgru4rec's `evaluate_sessions_batch_hier_bootstrap`: the held-out users are walked
  user-parallel over their history sessions and then their held-out sessions
  (`user_parallel.evaluation_events`); history pairs only move the session and user states, every
  held-out pair is ranked against the whole catalogue (`evaluation.target_ranks`, ties by `mode`).
  A held-out session is scored before it could feed the user state: the user GRU only takes a
  session when the next one starts. The batch size changes only speed, never a rank.

  Args:
    model: an `HRNN`; with `use_user_state=False` also any session model with `init_hidden`,
      `encode`, `item_out` and `item_bias` (e.g. GRU4Rec).
    history_events: the users' earlier sessions (e.g. `UserSessionData.train`).
    held_out_events: the sessions to score (e.g. `UserSessionData.test`).
    batch_size: parallel slots per step.
    cutoffs: the K of Recall@K / MRR@K / NDCG@K.
    mode: tie handling, 'conservative' | 'optimistic' | 'median'.
    item_chunk: catalogue items scored at once (bounds memory for large catalogues).
    steps_per_call: steps per compiled call.
    use_user_state: False scores the same held-out pairs without the history: every state starts
      from zero at the held-out session's start, as a session-based model is evaluated.
    first_n: also report the metrics over the first k predictions of each held-out session only,
      for each k here, under keys like `recall@20/first1` (with `count/first1`).
    history_sessions: use only each user's last this many history sessions; -1 for all
      (hgru4rec's `bootstrap_length`).

  Returns:
    `(metrics, ranks)`: `{'recall@K': .., 'mrr@K': .., 'ndcg@K': .., 'count': n_predictions}`
    plus the `/first{k}` entries, and the `UserRanks` of every held-out target.

  Raises:
    ValueError: with `use_user_state` for a model without a user level, or tables without users.
  """
  sums, ranks = _walk(
    model,
    history_events,
    held_out_events,
    batch_size=batch_size,
    cutoffs=cutoffs,
    mode=mode,
    item_chunk=item_chunk,
    steps_per_call=steps_per_call,
    use_user_state=use_user_state,
    first_n=first_n,
    history_sessions=history_sessions,
  )
  metrics = finalize(sums.pop(''))
  for group, group_sums in sums.items():
    metrics.update({f'{name}/{group}': value for name, value in finalize(group_sums).items()})
  return metrics, ranks


def held_out_ranks(
  model,
  history_events: Events,
  held_out_events: Events,
  *,
  batch_size: int = 512,
  mode: str = 'conservative',
  item_chunk: int = 16384,
  steps_per_call: int = 64,
  use_user_state: bool = True,
  history_sessions: int = -1,
) -> UserRanks:
  """The rank of every held-out target, from the same walk as `evaluate_users` (same arguments)."""
  _, ranks = _walk(
    model,
    history_events,
    held_out_events,
    batch_size=batch_size,
    cutoffs=(1,),
    mode=mode,
    item_chunk=item_chunk,
    steps_per_call=steps_per_call,
    use_user_state=use_user_state,
    first_n=(),
    history_sessions=history_sessions,
  )
  return ranks
