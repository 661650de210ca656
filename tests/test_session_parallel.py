"""Session-parallel schedule vs a brute-force replay of the official shrinking-batch iterator."""

import numpy as np
import pytest

from seqrec.data.session_parallel import (
  build_schedule,
  session_order_by_start_time,
)


def official_replay(items, offsets, order, batch_size):
  """Replays GRU4Rec's iterator step by step; returns per step a set of (session, in, out)."""
  slots = list(order[:batch_size])  # session per active slot (the batch shrinks at the end)
  pos = [0] * len(slots)  # index of the current event within the slot's session
  queue = list(order[batch_size:])
  steps, starts = [], [set(slots)]
  while slots:
    # Replace finished sessions (no next event) in slot order, dropping slots with nothing left.
    new_slots, new_pos, started = [], [], set()
    for s, p in zip(slots, pos, strict=True):
      while s is not None and offsets[s] + p + 1 >= offsets[s + 1]:
        if queue:
          s, p = queue.pop(0), 0
          started.add(s)
        else:
          s = None
      if s is not None:
        new_slots.append(s)
        new_pos.append(p)
    slots, pos = new_slots, new_pos
    if not slots:
      break
    if steps:
      starts.append(started)
    step = set()
    for s, p in zip(slots, pos, strict=True):
      e = offsets[s] + p
      step.add((int(s), int(items[e]), int(items[e + 1])))
    steps.append(step)
    pos = [p + 1 for p in pos]
  return steps, starts


def random_sessions(rng, n_sessions, max_len=9, n_items=30, min_len=2):
  lengths = rng.integers(min_len, max_len, n_sessions)
  offsets = np.concatenate([[0], np.cumsum(lengths)])
  items = rng.integers(0, n_items, offsets[-1]).astype(np.int32)
  return items, offsets


@pytest.mark.parametrize('batch_size', [1, 3, 8, 50])
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_schedule_matches_official_iterator(batch_size, seed):
  rng = np.random.default_rng(seed)
  items, offsets = random_sessions(rng, 40)
  order = rng.permutation(len(offsets) - 1)
  sched = build_schedule(items, offsets, batch_size, order=order, steps_multiple=7)

  steps, _ = official_replay(items, offsets, order, batch_size)
  assert sched.num_steps == len(steps)
  assert sched.inputs.shape == (len(sched.inputs), batch_size)
  assert sched.inputs.shape[0] % 7 == 0
  for t, expected in enumerate(steps):
    v = sched.valid[t]
    rows = (sched.session[t][v], sched.inputs[t][v], sched.targets[t][v])
    got = set(zip(*(r.tolist() for r in rows), strict=True))
    assert got == expected, f'step {t}'
  assert not sched.valid[len(steps) :].any()


def test_every_non_first_event_is_a_target_exactly_once():
  rng = np.random.default_rng(3)
  items, offsets = random_sessions(rng, 200, min_len=1)  # one-event sessions predict nothing
  sched = build_schedule(items, offsets, 16)
  lengths = np.diff(offsets)
  assert sched.num_events == int(np.maximum(lengths - 1, 0).sum())
  # Each (session, position) pair appears exactly once: rebuild positions from the schedule.
  seen = {}
  for t, k in zip(*np.nonzero(sched.valid), strict=True):
    s = sched.session[t, k]
    seen.setdefault(s, []).append((t, sched.inputs[t, k], sched.targets[t, k]))
  for s in range(len(lengths)):
    pairs = seen.get(s, [])
    assert len(pairs) == max(lengths[s] - 1, 0)
    sess = items[offsets[s] : offsets[s + 1]]
    for j, (_, x, y) in enumerate(sorted(pairs)):
      assert (x, y) == (sess[j], sess[j + 1])
    # Consecutive steps in the same slot, no gaps.
    ts = sorted(t for t, _, _ in pairs)
    assert ts == list(range(ts[0], ts[0] + len(ts))) if ts else True


def test_resets_exactly_at_session_starts():
  rng = np.random.default_rng(4)
  items, offsets = random_sessions(rng, 100)
  sched = build_schedule(items, offsets, 5)
  for k in range(5):
    col = sched.session[:, k]
    valid = sched.valid[:, k]
    for t in range(len(col)):
      starts_here = valid[t] and (t == 0 or col[t - 1] != col[t])
      assert sched.reset[t, k] == starts_here, (t, k)


def test_start_time_order_is_stable():
  offsets = np.array([0, 2, 4, 6])
  times = np.array([5.0, 6.0, 1.0, 2.0, 5.0, 7.0])
  np.testing.assert_array_equal(session_order_by_start_time(offsets, times), [1, 0, 2])


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match='batch_size'):
    build_schedule(np.zeros(4, np.int32), np.array([0, 4]), 0)
  with pytest.raises(ValueError, match='empty'):
    build_schedule(np.zeros(0, np.int32), np.array([0]), 4)
