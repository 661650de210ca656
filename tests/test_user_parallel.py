"""User-parallel schedule vs brute-force replays: slot by slot, and hgru4rec's own iterator."""

import numpy as np
import pytest

from seqrec.data import load_user_session_data, user_synthetic
from seqrec.data.events import Events
from seqrec.data.user_parallel import (
  build_user_schedule,
  build_user_schedule_from_events,
  evaluation_events,
  user_session_offsets,
)


def random_users(rng, n_users, max_sessions=5, max_len=7, min_len=1, n_items=30):
  """Items, session offsets and user offsets of random users (some one-event sessions)."""
  n_sessions = rng.integers(1, max_sessions + 1, n_users)
  user_offsets = np.concatenate([[0], np.cumsum(n_sessions)])
  lengths = rng.integers(min_len, max_len + 1, user_offsets[-1])
  # Every user has at least one session with something to predict.
  lengths[user_offsets[:-1]] = np.maximum(lengths[user_offsets[:-1]], 2)
  session_offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(0, n_items, session_offsets[-1]).astype(np.int32)
  return items, session_offsets, user_offsets


def replay(items, session_offsets, user_offsets, order, batch_size):
  """Walks the slots one step at a time; returns per step {slot: (user, session, x, y, flags)}.

  A free slot takes the next user of the queue before the step, in increasing slot order.
  """
  queue = list(order)
  slots = [None] * batch_size  # per slot: [user, sessions with pairs, session number, position]
  steps = []
  while True:
    for k in range(batch_size):
      if slots[k] is None and queue:
        user = queue.pop(0)
        sessions = [
          s
          for s in range(user_offsets[user], user_offsets[user + 1])
          if session_offsets[s + 1] - session_offsets[s] >= 2
        ]
        slots[k] = [user, sessions, 0, 0]
    if all(state is None for state in slots):
      return steps
    step = {}
    for k, state in enumerate(slots):
      if state is None:
        continue
      user, sessions, number, pos = state
      s = sessions[number]
      e = session_offsets[s] + pos
      last = e + 2 == session_offsets[s + 1]
      flags = (pos == 0, last, number == 0 and pos == 0)
      step[k] = (user, s, int(items[e]), int(items[e + 1]), *flags)
      state[3] += 1
      if last:
        state[2], state[3] = number + 1, 0
        if state[2] == len(sessions):
          slots[k] = None
    steps.append(step)


def hgru4rec_replay(items, session_offsets, user_offsets, batch_size):
  """hgru4rec's `iterate` loop, rewritten: rounds of (shortest remaining session - 1) steps.

  Its offsets omit the final end, so it stops when a slot would move to the last session or the
  last user, and the whole epoch ends at the first slot that finds no user. Its flags are 0 at
  the first step (the states are zero then anyway); here they are set, as in the schedule.
  Returns per step {slot: (user, session, x, y, session_start, user_start)}.
  """
  n_users, n_sessions = len(user_offsets) - 1, len(session_offsets) - 1
  user = list(range(batch_size))
  next_user = batch_size - 1
  session = [user_offsets[u] for u in user]
  pos = [session_offsets[s] for s in session]
  end = [session_offsets[s + 1] for s in session]
  user_end = [session_offsets[user_offsets[u + 1]] for u in user]
  session_flag, user_flag = [True] * batch_size, [True] * batch_size
  steps = []
  while True:
    shortest = min(e - p for e, p in zip(end, pos, strict=True))
    for i in range(shortest - 1):
      steps.append(
        {
          k: (user[k], session[k], int(items[pos[k] + i]), int(items[pos[k] + i + 1]))
          + (session_flag[k], user_flag[k])
          for k in range(batch_size)
        }
      )
      session_flag, user_flag = [False] * batch_size, [False] * batch_size
    pos = [p + shortest - 1 for p in pos]
    for k in range(batch_size):
      if end[k] - pos[k] <= 1:
        session_flag[k] = True
        session[k] += 1
        if session[k] + 1 >= n_sessions:
          return steps
        pos[k], end[k] = session_offsets[session[k]], session_offsets[session[k] + 1]
    for k in range(batch_size):
      if user_end[k] - pos[k] <= 0:
        user_flag[k] = True
        next_user += 1
        if next_user + 1 >= n_users:
          return steps
        user[k] = next_user
        user_end[k] = session_offsets[user_offsets[next_user + 1]]
        session[k] = user_offsets[next_user]
        pos[k], end[k] = session_offsets[session[k]], session_offsets[session[k] + 1]


def _step_rows(sched, t):
  """{slot: (user, session, x, y, session_start, session_end, user_start)} of step t."""
  rows = {}
  for k in np.flatnonzero(sched.valid[t]).tolist():
    rows[k] = (
      int(sched.user[t, k]),
      int(sched.session[t, k]),
      int(sched.inputs[t, k]),
      int(sched.targets[t, k]),
      bool(sched.session_start[t, k]),
      bool(sched.session_end[t, k]),
      bool(sched.user_start[t, k]),
    )
  return rows


@pytest.mark.parametrize('batch_size', [1, 3, 8, 64])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_schedule_matches_slot_by_slot_replay(batch_size, seed):
  rng = np.random.default_rng(seed)
  items, session_offsets, user_offsets = random_users(rng, 40)
  order = rng.permutation(len(user_offsets) - 1)
  sched = build_user_schedule(
    items, session_offsets, user_offsets, batch_size, order=order, steps_multiple=7
  )
  steps = replay(items, session_offsets, user_offsets, order, batch_size)
  assert sched.num_steps == len(steps)
  assert sched.inputs.shape == (sched.inputs.shape[0], batch_size)
  assert sched.inputs.shape[0] % 7 == 0 and sched.inputs.shape[0] - len(steps) < 7
  for name in ('targets', 'valid', 'session_start', 'session_end', 'user_start', 'session', 'user'):
    assert getattr(sched, name).shape == sched.inputs.shape
  assert sched.inputs.dtype == sched.targets.dtype == np.int32
  for t, expected in enumerate(steps):
    assert _step_rows(sched, t) == expected, f'step {t}'
  assert not sched.valid[len(steps) :].any()
  flags = sched.session_start | sched.session_end | sched.user_start
  assert not flags[~sched.valid].any() and (sched.session[~sched.valid] == -1).all()


@pytest.mark.parametrize('batch_size', [1, 4, 10])
@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_hgru4rec_tail_matches_its_iterator(batch_size, seed):
  rng = np.random.default_rng(seed)
  # hgru4rec's data has no one-event sessions (see `build_user_schedule` on those).
  items, session_offsets, user_offsets = random_users(rng, 30, min_len=2)
  sched = build_user_schedule(items, session_offsets, user_offsets, batch_size, hgru4rec_tail=True)
  steps = hgru4rec_replay(items, session_offsets, user_offsets, batch_size)
  assert sched.num_steps == len(steps)
  for t, expected in enumerate(steps):
    got = {k: row[:5] + row[6:] for k, row in _step_rows(sched, t).items()}  # no session_end
    assert got == expected, f'step {t}'
  assert not sched.valid[len(steps) :].any()
  full = build_user_schedule(items, session_offsets, user_offsets, batch_size)
  assert full.num_events > sched.num_events  # the tail and the last user are left out
  assert (sched.user[sched.valid] != len(user_offsets) - 2).all()


def test_every_non_first_event_is_a_target_exactly_once():
  rng = np.random.default_rng(5)
  items, session_offsets, user_offsets = random_users(rng, 120)
  sched = build_user_schedule(items, session_offsets, user_offsets, 16)
  lengths = np.diff(session_offsets)
  assert sched.num_events == int(np.maximum(lengths - 1, 0).sum())
  seen = {}
  for t, k in zip(*np.nonzero(sched.valid), strict=True):
    seen.setdefault(int(sched.session[t, k]), []).append((t, k))
  for s, length in enumerate(lengths.tolist()):
    pairs = sorted(seen.get(s, []))
    assert len(pairs) == max(length - 1, 0)
    if not pairs:
      continue
    # Consecutive steps of one slot, inputs and targets in event order.
    ts, ks = zip(*pairs, strict=True)
    assert list(ts) == list(range(ts[0], ts[0] + len(ts))) and len(set(ks)) == 1
    k = ks[0]
    session_items = items[session_offsets[s] : session_offsets[s + 1]]
    np.testing.assert_array_equal(sched.inputs[list(ts), k], session_items[:-1])
    np.testing.assert_array_equal(sched.targets[list(ts), k], session_items[1:])
    assert sched.session_start[ts[0], k] and sched.session_start[list(ts[1:]), k].sum() == 0
    assert sched.session_end[ts[-1], k] and sched.session_end[list(ts[:-1]), k].sum() == 0


def test_users_walk_their_sessions_in_order_within_one_slot():
  rng = np.random.default_rng(6)
  items, session_offsets, user_offsets = random_users(rng, 60)
  sched = build_user_schedule(items, session_offsets, user_offsets, 5)
  for k in range(5):
    valid = sched.valid[:, k]
    users, sessions = sched.user[valid, k], sched.session[valid, k]
    user_starts, session_starts = sched.user_start[valid, k], sched.session_start[valid, k]
    # A user's run in a slot is contiguous and starts with user_start; its sessions ascend.
    changes = np.r_[True, users[1:] != users[:-1]]
    np.testing.assert_array_equal(user_starts, changes)
    assert len(np.unique(users)) == changes.sum()
    np.testing.assert_array_equal(session_starts, np.r_[True, sessions[1:] != sessions[:-1]])
    same_user = users[1:] == users[:-1]
    assert np.all(np.diff(sessions)[same_user] >= 0)
    for user in np.unique(users).tolist():
      walked = np.unique(sessions[users == user])
      owned = np.arange(user_offsets[user], user_offsets[user + 1])
      np.testing.assert_array_equal(walked, owned[np.diff(session_offsets)[owned] >= 2])


def test_from_events_on_synthetic_users():
  events = user_synthetic.generate_user_sessions(50, 200, seed=0, mean_sessions=4.0)
  sched, users = build_user_schedule_from_events(events, 8, steps_multiple=16)
  np.testing.assert_array_equal(users, np.arange(1, 51))
  assert sched.num_events == events.num_events - events.num_sessions
  assert sched.user_start.sum() == 50 and sched.session_start.sum() == events.num_sessions
  assert sched.session_end.sum() == events.num_sessions
  offsets = events.session_offsets()
  session_users = events.user[offsets[sched.session[sched.valid]]]
  np.testing.assert_array_equal(users[sched.user[sched.valid]], session_users)


def test_user_session_offsets_checks_the_table():
  def table(session, user, time):
    n = len(session)
    return Events(np.array(session), np.zeros(n, np.int32), np.array(time, float), np.array(user))

  session_offsets, user_offsets, users = user_session_offsets(
    table([1, 1, 2, 3, 3, 4], [9, 9, 9, 4, 4, 4], [0, 1, 5, 0, 1, 2])
  )
  np.testing.assert_array_equal(session_offsets, [0, 2, 3, 5, 6])
  np.testing.assert_array_equal(user_offsets, [0, 2, 4])
  np.testing.assert_array_equal(users, [9, 4])
  with pytest.raises(ValueError, match='more than one user'):
    user_session_offsets(table([1, 1], [1, 2], [0, 1]))
  with pytest.raises(ValueError, match='not contiguous'):
    user_session_offsets(table([1, 2, 3], [1, 2, 1], [0, 1, 2]))
  with pytest.raises(ValueError, match='start-time order'):
    user_session_offsets(table([1, 2], [1, 1], [5, 1]))
  with pytest.raises(ValueError, match='no user column'):
    user_session_offsets(Events(np.array([1]), np.array([1]), np.array([0.0])))


def test_rejects_bad_arguments():
  items, session_offsets, user_offsets = np.zeros(4, np.int32), np.array([0, 4]), np.array([0, 1])
  with pytest.raises(ValueError, match='batch_size'):
    build_user_schedule(items, session_offsets, user_offsets, 0)
  with pytest.raises(ValueError, match='empty'):
    build_user_schedule(np.zeros(0, np.int32), np.array([0]), np.array([0]), 4)
  with pytest.raises(ValueError, match='hgru4rec_tail'):
    build_user_schedule(items, session_offsets, user_offsets, 1, hgru4rec_tail=True)


@pytest.mark.parametrize('history_sessions', [-1, 0, 2])
def test_evaluation_walks_history_then_scores_held_out_pairs(history_sessions):
  data = load_user_session_data(
    dict(format='user_synthetic', synthetic_users=60, synthetic_items=200, min_item_support=3)
  )
  events, in_eval = evaluation_events(data.train, data.test, history_sessions)
  sched, users = build_user_schedule_from_events(events, 7, evaluate=in_eval)
  test = data.test
  assert sched.evaluate.sum() == test.num_events - test.num_sessions
  assert not sched.evaluate[~sched.valid].any()
  offsets = events.session_offsets()
  session_ids = events.session[offsets[:-1]]  # [S] id of each walked session
  scored_sessions = np.unique(session_ids[sched.session[sched.evaluate]])
  np.testing.assert_array_equal(scored_sessions, np.unique(test.session))
  history = events.select(~in_eval)
  per_user = np.bincount(history.user[history.session_offsets()[:-1]], minlength=data.n_users)
  train_per_user = np.bincount(data.train.user[data.train.session_offsets()[:-1]])
  test_users = np.unique(test.user)
  if history_sessions < 0:
    np.testing.assert_array_equal(per_user[test_users], train_per_user[test_users])
  else:
    np.testing.assert_array_equal(per_user[test_users], history_sessions)
  # In every slot a user's scored pairs come last, after all of their history pairs.
  for k in range(7):
    valid = sched.valid[:, k]
    slot_users, scored = sched.user[valid, k], sched.evaluate[valid, k]
    for user in np.unique(slot_users).tolist():
      mine = scored[slot_users == user]
      assert mine[-1] and np.all(np.diff(mine.astype(int)) >= 0)
  np.testing.assert_array_equal(users, np.unique(test.user))
