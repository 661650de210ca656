"""HRNN's user-parallel mini-batches as one fixed-shape schedule per epoch.

HRNN (hgru4rec's `iterate`) trains on B parallel slots, each walking one user: all of the user's
sessions in time order, event by event, each session contributing its (event, next event) pairs.
When a slot's user runs out of sessions, the slot takes the next user of the queue; slots freed
at the same step take users in increasing slot order, as in GRU4Rec. The flags tell the model
what to reset: `session_start` (a new session: the session state is initialised from the user
state), `user_start` (a new user: the user state is zeroed) and `session_end` (the last pair of
a session: the final session state can update the user state). In hgru4rec the user GRU takes
that update lazily, at the next session's start, and at a user start both states are zero.

As in `session_parallel`, the epoch is laid out once on the host as `[T, B]` arrays; a slot with
no user left is masked, never dropped, and the steps are padded to a multiple of the number of
steps per compiled call.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seqrec.data.events import Events
from seqrec.data.session_parallel import PAD_ITEM, assign_slots


@dataclasses.dataclass(frozen=True)
class UserSchedule:
  """A user-parallel epoch.

  Attributes:
    inputs: [T, B] int32 item id fed to each slot at each step.
    targets: [T, B] int32 next item the slot must predict.
    valid: [T, B] bool, False where the slot has no user at that step (padding).
    session_start: [T, B] bool, True at the first pair of each session.
    session_end: [T, B] bool, True at the last pair of each session (for a two-event session
      the same step as its start).
    user_start: [T, B] bool, True at the first pair of each user's first session (where
      `session_start` is True as well).
    session: [T, B] int32 index (into the sessions of the source table) of the session a slot
      walks, -1 on padding.
    user: [T, B] int32 index (into the users of the source table, see `user_session_offsets`) of
      the user a slot walks, -1 on padding.
    evaluate: [T, B] bool, True where the target is to be scored: `valid`, unless the schedule
      was built with an `evaluate` mask (history sessions only update the states).
    num_steps: steps that hold at least one valid slot (before padding to a chunk multiple).
  """

  inputs: np.ndarray
  targets: np.ndarray
  valid: np.ndarray
  session_start: np.ndarray
  session_end: np.ndarray
  user_start: np.ndarray
  session: np.ndarray
  user: np.ndarray
  evaluate: np.ndarray
  num_steps: int

  @property
  def batch_size(self) -> int:
    return self.inputs.shape[1]

  @property
  def num_events(self) -> int:
    """Number of (input, target) pairs: every non-first event of every session walked."""
    return int(self.valid.sum())

  def chunks(self, steps_per_chunk: int) -> int:
    return self.inputs.shape[0] // steps_per_chunk

  def arrays(self) -> dict[str, np.ndarray]:
    return {
      'inputs': self.inputs,
      'targets': self.targets,
      'valid': self.valid,
      'session_start': self.session_start,
      'session_end': self.session_end,
      'user_start': self.user_start,
      'evaluate': self.evaluate,
    }


def user_session_offsets(events: Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Groups a table's sessions by user.

  Args:
    events: a table with users, sorted by (session, time), in which each user's sessions are
      contiguous and ordered by start time (as the user-session readers and
      `user_sessions.UserSessionData` tables are).

  Returns:
    (session_offsets [S+1], user_offsets [U+1], users [U]): session s owns rows
    `session_offsets[s]:session_offsets[s+1]`, user u owns sessions
    `user_offsets[u]:user_offsets[u+1]`, and `users[u]` is its id in `events.user`.

  Raises:
    ValueError: if the table has no users, a session has two users, a user's sessions are not
      contiguous, or they are not in start-time order.
  """
  where = events.source or 'events'
  if events.user is None:
    raise ValueError(f'{where}: the table has no user column')
  session_offsets = events.session_offsets()  # [S+1]
  session_user = events.user[session_offsets[:-1]]  # [S]
  if np.any(events.user != np.repeat(session_user, np.diff(session_offsets))):
    raise ValueError(f'{where}: a session has events of more than one user')
  change = np.flatnonzero(session_user[1:] != session_user[:-1]) + 1  # [U-1]
  head = [0] if len(session_user) else []
  user_offsets = np.concatenate([head, change, [len(session_user)]]).astype(np.int64)
  users = session_user[user_offsets[:-1]]  # [U]
  if len(np.unique(users)) != len(users):
    raise ValueError(f"{where}: a user's sessions are not contiguous in session order")
  starts = events.session_start_times()  # [S]
  same_user = session_user[1:] == session_user[:-1]
  if np.any(np.diff(starts)[same_user] < 0):
    raise ValueError(f"{where}: a user's sessions are not numbered in start-time order")
  return session_offsets, user_offsets, users


def build_user_schedule(
  items: np.ndarray,
  session_offsets: np.ndarray,
  user_offsets: np.ndarray,
  batch_size: int,
  order: np.ndarray | None = None,
  steps_multiple: int = 1,
  hgru4rec_tail: bool = False,
  evaluate: np.ndarray | None = None,
) -> UserSchedule:
  """Lays out one user-parallel epoch.

  Sessions with fewer than 2 events have nothing to predict and are walked as if absent; users
  left without pairs are skipped. (hgru4rec passes such a session in a round of zero steps, which
  keeps the start flags for the next session but, when it is a user's last, can let another slot
  freed at the same step take the next user first. Its preprocessing leaves no such sessions.)

  Args:
    items: [E] dense item ids, grouped by session (time-ordered within a session).
    session_offsets: [S+1] start offset of each session's run in `items`.
    user_offsets: [U+1] start of each user's run of sessions (time-ordered within a user).
    batch_size: number of parallel slots B.
    order: [U] queue order of the users (indices into user_offsets); default: table order, which
      is hgru4rec's (users sorted by id).
    steps_multiple: the number of steps is padded with fully masked steps to a multiple of this.
    hgru4rec_tail: end the epoch as hgru4rec's `iterate` does: at the first step where a slot
      needs a user and the queue is empty (the other slots' remaining events are not trained),
      and without the queue's last user (hgru4rec's user offsets lack the final end, so it never
      reaches that user). Off by default: every pair of every user is trained once.
    evaluate: [E] bool, optional: the pair ending at event e is scored only where `evaluate[e]`
      (see `evaluation_events`); default: every pair.

  Returns:
    The `UserSchedule`.

  Raises:
    ValueError: on an empty table, a non-positive batch size, or (with `hgru4rec_tail`) fewer
      than batch_size + 1 users, where hgru4rec's iterator fails.
  """
  if batch_size <= 0:
    raise ValueError(f'batch_size must be positive, got {batch_size}')
  session_offsets = np.asarray(session_offsets, np.int64)
  user_offsets = np.asarray(user_offsets, np.int64)
  n_users = len(user_offsets) - 1
  if n_users <= 0 or len(session_offsets) <= 1:
    raise ValueError('cannot build a user-parallel schedule from an empty event table')
  order = np.arange(n_users) if order is None else np.asarray(order, np.int64)
  if hgru4rec_tail:
    if len(order) - 1 < batch_size:
      raise ValueError(
        f'hgru4rec_tail needs at least batch_size + 1 users: {len(order)} for {batch_size} slots'
      )
    order = order[:-1]
  session_pairs = np.maximum(np.diff(session_offsets) - 1, 0)  # [S]
  cumulative = np.concatenate([[0], np.cumsum(session_pairs)])  # [S+1]
  user_pairs = cumulative[user_offsets[1:]] - cumulative[user_offsets[:-1]]  # [U]
  order = order[user_pairs[order] > 0]
  # A user of P pairs occupies its slot for P steps (assign_slots takes lengths = steps + 1).
  start, slot = assign_slots(user_pairs[order] + 1, batch_size)  # [Q] per queued user
  num_steps = int((start + user_pairs[order]).max()) if len(order) else 0
  if hgru4rec_tail:
    # The first slot to finish its last user finds the queue empty, and the epoch ends there.
    free_at = np.zeros(batch_size, np.int64)  # [B] step at which each slot is done
    np.maximum.at(free_at, slot, start + user_pairs[order])
    num_steps = int(free_at.min())

  # The queued users' sessions with pairs, in walking order.
  n_user_sessions = user_offsets[order + 1] - user_offsets[order]  # [Q]
  queue_pos = np.repeat(np.arange(len(order)), n_user_sessions)  # [S'] queued user of a session
  first_of_user = np.cumsum(n_user_sessions) - n_user_sessions  # [Q]
  sessions = user_offsets[order][queue_pos] + np.arange(len(queue_pos)) - first_of_user[queue_pos]
  has_pairs = session_pairs[sessions] > 0
  sessions, queue_pos = sessions[has_pairs], queue_pos[has_pairs]
  n_pairs = session_pairs[sessions]  # [S']
  # Step at which each session starts: its user's start + the pairs of the user's earlier sessions.
  before = np.cumsum(n_pairs) - n_pairs  # [S'] pairs of all earlier sessions in the queue
  user_first = np.searchsorted(queue_pos, np.arange(len(order)))  # [Q] first session of a user
  session_step = start[queue_pos] + before - before[user_first[queue_pos]]  # [S']

  total = max(num_steps, 1)
  total = -(-total // steps_multiple) * steps_multiple
  inputs = np.full((total, batch_size), PAD_ITEM, np.int32)
  targets = np.full((total, batch_size), PAD_ITEM, np.int32)
  valid = np.zeros((total, batch_size), bool)
  session_start = np.zeros((total, batch_size), bool)
  session_end = np.zeros((total, batch_size), bool)
  user_start = np.zeros((total, batch_size), bool)
  session_index = np.full((total, batch_size), -1, np.int32)
  user_index = np.full((total, batch_size), -1, np.int32)
  scored = np.zeros((total, batch_size), bool)

  # One row per (input, target) pair.
  pair_session = np.repeat(np.arange(len(sessions)), n_pairs)  # [P] position in `sessions`
  pos = np.arange(len(pair_session)) - before[pair_session]  # [P] 0..L-2 within the session
  step = session_step[pair_session] + pos
  col = slot[queue_pos[pair_session]]
  event = session_offsets[sessions[pair_session]] + pos
  kept = step < num_steps  # only hgru4rec_tail drops pairs
  step, col, event, pair_session, pos = (a[kept] for a in (step, col, event, pair_session, pos))
  inputs[step, col] = items[event]
  targets[step, col] = items[event + 1]
  valid[step, col] = True
  session_start[step, col] = pos == 0
  session_end[step, col] = pos == n_pairs[pair_session] - 1
  session_index[step, col] = sessions[pair_session]
  user_index[step, col] = order[queue_pos[pair_session]]
  user_start[step, col] = (pos == 0) & (user_first[queue_pos[pair_session]] == pair_session)
  scored[step, col] = True if evaluate is None else np.asarray(evaluate, bool)[event + 1]
  return UserSchedule(
    inputs,
    targets,
    valid,
    session_start,
    session_end,
    user_start,
    session_index,
    user_index,
    scored,
    num_steps,
  )


def build_user_schedule_from_events(
  events: Events,
  batch_size: int,
  order: np.ndarray | None = None,
  steps_multiple: int = 1,
  hgru4rec_tail: bool = False,
  evaluate: np.ndarray | None = None,
) -> tuple[UserSchedule, np.ndarray]:
  """`build_user_schedule` on a dense table (see `user_session_offsets` for its requirements).

  Returns:
    (the schedule, users [U]): `users[schedule.user]` is the table's user id of each slot.
  """
  session_offsets, user_offsets, users = user_session_offsets(events)
  schedule = build_user_schedule(
    events.item,
    session_offsets,
    user_offsets,
    batch_size,
    order,
    steps_multiple,
    hgru4rec_tail,
    evaluate,
  )
  return schedule, users


def evaluation_events(
  history: Events, held_out: Events, history_sessions: int = -1
) -> tuple[Events, np.ndarray]:
  """Puts each held-out user's history sessions before their held-out session, for evaluation.

  As hgru4rec's `evaluate_sessions_batch_hier_bootstrap`: the user-parallel walk over history
  and held-out sessions builds the user state from the history, and only the held-out pairs are
  scored (build the schedule with `evaluate=in_eval`).

  Args:
    history: e.g. `UserSessionData.train` (for `test`) or `train_tr` (for `valid`).
    held_out: the sessions to score, one or more per user.
    history_sessions: keep only each user's last this many history sessions; -1 keeps all.

  Returns:
    (events, in_eval [E] bool): the history of the held-out users and the held-out sessions,
    sorted by (session, time) (session ids are shared by the two tables, numbered per user in
    time order), and which rows come from `held_out`.
  """
  if history.user is None or held_out.user is None:
    raise ValueError('evaluation_events needs tables with users')
  keep = np.isin(history.user, held_out.user)
  if history_sessions >= 0:
    offsets = history.session_offsets()
    users = history.user[offsets[:-1]]  # [S]
    order = np.lexsort((history.session_start_times(), users))  # [S] per user, in time order
    rank_from_end = np.empty(len(order), np.int64)
    _, first, counts = np.unique(users[order], return_index=True, return_counts=True)
    position = np.arange(len(order)) - np.repeat(first, counts)  # [S] 0.. within the user
    rank_from_end[order] = np.repeat(counts, counts) - 1 - position
    keep &= np.repeat(rank_from_end < history_sessions, np.diff(offsets))
  history = history.select(keep)
  events = Events(
    np.concatenate([history.session, held_out.session]),
    np.concatenate([history.item, held_out.item]),
    np.concatenate([history.time, held_out.time]),
    np.concatenate([history.user, held_out.user]),
    held_out.source,
  )
  in_eval = np.concatenate([np.zeros(history.num_events, bool), np.ones(held_out.num_events, bool)])
  order = np.lexsort((events.time, events.session))  # stable, as `Events.sort`
  return events.select(order), in_eval[order]
