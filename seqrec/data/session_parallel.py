"""GRU4Rec's session-parallel mini-batches as one fixed-shape schedule per epoch.

GRU4Rec trains on B parallel "slots": each slot walks one session event by event; when its session
runs out, the slot takes the next session of the queue and its hidden state is reset. The official
code lets the batch shrink when the queue is exhausted, so every late step has a new shape. Here the
whole epoch is laid out once on the host as `[T, B]` arrays; a slot with no session left is masked,
never dropped, so one compiled step serves the whole epoch.
"""

import dataclasses
import heapq

import numpy as np

PAD_ITEM = 0  # Item fed at masked positions; its scores and gradients are masked out.


@dataclasses.dataclass(frozen=True)
class Schedule:
  """A session-parallel epoch.

  Attributes:
    inputs: [T, B] int32 item id fed to each slot at each step.
    targets: [T, B] int32 next item the slot must predict.
    valid: [T, B] bool, False where the slot has no session at that step (padding).
    reset: [T, B] bool, True where the slot starts a new session at that step (hidden state is
      zeroed before the step).
    session: [T, B] int32 index (into the sessions of the source table) of the session a slot
      walks, -1 on padding. Lets analysis code map predictions back to sessions.
    num_steps: steps that hold at least one valid slot (before padding to a chunk multiple).
  """

  inputs: np.ndarray
  targets: np.ndarray
  valid: np.ndarray
  reset: np.ndarray
  session: np.ndarray
  num_steps: int

  @property
  def batch_size(self) -> int:
    return self.inputs.shape[1]

  @property
  def num_events(self) -> int:
    """Number of (input, target) pairs: every non-first event of every session."""
    return int(self.valid.sum())

  def chunks(self, steps_per_chunk: int) -> int:
    return self.inputs.shape[0] // steps_per_chunk

  def arrays(self) -> dict[str, np.ndarray]:
    return {
      'inputs': self.inputs,
      'targets': self.targets,
      'valid': self.valid,
      'reset': self.reset,
    }


def assign_slots(lengths: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Assigns sessions, in queue order, to slots exactly as GRU4Rec's iterator does.

  A session of length L occupies its slot for L - 1 steps. When several slots become free at the
  same step they take the next sessions in increasing slot order (the official iterator's
  `iters[finished_mask] = maxiter + arange(...)`).

  Args:
    lengths: [S] number of events of each session, in queue order.
    batch_size: number of slots B.

  Returns:
    (start_step [S], slot [S]) int64 arrays.
  """
  free = [(0, k) for k in range(batch_size)]  # (step at which the slot is free, slot)
  heapq.heapify(free)
  start = np.empty(len(lengths), np.int64)
  slot = np.empty(len(lengths), np.int64)
  busy = np.maximum(np.asarray(lengths, np.int64) - 1, 0).tolist()
  pop, push = heapq.heappop, heapq.heappush
  for s, n_steps in enumerate(busy):
    t, k = pop(free)
    start[s] = t
    slot[s] = k
    push(free, (t + n_steps, k))
  return start, slot


def build_schedule(
  items: np.ndarray,
  offsets: np.ndarray,
  batch_size: int,
  order: np.ndarray | None = None,
  steps_multiple: int = 1,
) -> Schedule:
  """Lays out one session-parallel epoch.

  Args:
    items: [E] dense item ids, grouped by session (time-ordered within a session).
    offsets: [S+1] start offset of each session's run in `items`.
    batch_size: number of parallel slots B.
    order: [S] queue order of the sessions (indices into offsets); default: table order. GRU4Rec
      trains with sessions ordered by their start time and evaluates in session-id order.
    steps_multiple: the number of steps is padded with fully masked steps to a multiple of this
      (the number of steps per compiled call), so every call has the same shape.

  Returns:
    The `Schedule`.

  Raises:
    ValueError: on an empty table or a non-positive batch size.
  """
  if batch_size <= 0:
    raise ValueError(f'batch_size must be positive, got {batch_size}')
  offsets = np.asarray(offsets, np.int64)
  n_sessions = len(offsets) - 1
  if n_sessions <= 0:
    raise ValueError('cannot build a session-parallel schedule from an empty event table')
  order = np.arange(n_sessions) if order is None else np.asarray(order, np.int64)
  # A one-event session has nothing to predict. The official iterator gives it a slot for a
  # zero-step round; skipping it starts the same sessions at the same steps.
  order = order[(offsets[order + 1] - offsets[order]) >= 2]
  lengths = (offsets[1:] - offsets[:-1])[order]  # [S] in queue order
  start, slot = assign_slots(lengths, batch_size)
  n_pairs = np.maximum(lengths - 1, 0)  # [S]
  num_steps = int((start + n_pairs).max()) if len(start) else 0
  total = max(num_steps, 1)
  total = -(-total // steps_multiple) * steps_multiple

  inputs = np.full((total, batch_size), PAD_ITEM, np.int32)
  targets = np.full((total, batch_size), PAD_ITEM, np.int32)
  valid = np.zeros((total, batch_size), bool)
  reset = np.zeros((total, batch_size), bool)
  session = np.full((total, batch_size), -1, np.int32)

  # One row per (input, target) pair: which session, which position within it.
  pair_session = np.repeat(np.arange(len(order)), n_pairs)  # [P] queue position
  first_pair = np.cumsum(n_pairs) - n_pairs  # [S]
  pos = np.arange(len(pair_session)) - first_pair[pair_session]  # [P] 0..L-2
  step = start[pair_session] + pos
  col = slot[pair_session]
  event = offsets[order[pair_session]] + pos
  inputs[step, col] = items[event]
  targets[step, col] = items[event + 1]
  valid[step, col] = True
  session[step, col] = order[pair_session]
  has_pairs = n_pairs > 0
  reset[start[has_pairs], slot[has_pairs]] = True
  return Schedule(inputs, targets, valid, reset, session, num_steps)


def session_order_by_start_time(offsets: np.ndarray, times: np.ndarray) -> np.ndarray:
  """Queue order used for GRU4Rec training: sessions sorted by their first event's time."""
  starts = np.minimum.reduceat(times, offsets[:-1]) if len(times) else np.zeros(0)
  return np.argsort(starts, kind='stable')
