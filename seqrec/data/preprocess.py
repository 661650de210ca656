"""GRU4Rec's preprocessing recipe: session/item filters, time and fraction splits, sessionising.

The recipe (GRU4Rec's `preprocess.py`, also session-rec's `split_data_org`) on a raw table:
drop sessions shorter than 2, drop items with fewer than 5 events, drop sessions shorter than 2
again; test = sessions whose last event lies in the final day; remove test events on items absent
from training, then test sessions shorter than 2. Every function takes and returns sorted `Events`.
"""

from __future__ import annotations

import numpy as np

from seqrec.data.events import Events

SECONDS_PER_DAY = 86400.0


def sessionize_by_gap(user: np.ndarray, time: np.ndarray, gap_seconds: float) -> np.ndarray:
  """Cuts each user's time-ordered events into sessions at inactivity gaps.

  Args:
    user: [E] user ids, rows grouped by user and time-ordered within a user.
    time: [E] event times in seconds.
    gap_seconds: a new session starts when more than this many seconds pass since the user's
      previous event.

  Returns:
    [E] int64 session ids 1..S, increasing along the rows.
  """
  if not len(user):
    return np.zeros(0, np.int64)
  starts = np.ones(len(user), bool)  # [E]
  starts[1:] = (user[1:] != user[:-1]) | (np.diff(time) > gap_seconds)
  return np.cumsum(starts).astype(np.int64)


def _per_event(events: Events, per_session: np.ndarray) -> np.ndarray:
  """Broadcasts a [S] per-session value to the session's [E] rows."""
  return np.repeat(per_session, events.session_lengths())


def filter_short_sessions(events: Events, min_length: int) -> Events:
  """Drops sessions with fewer than `min_length` events."""
  lengths = events.session_lengths()  # [S]
  if np.all(lengths >= min_length):
    return events
  return events.select(_per_event(events, lengths >= min_length))


def filter_rare_items(events: Events, min_support: int) -> Events:
  """Drops the events of items that occur fewer than `min_support` times in `events`."""
  _, inverse, counts = np.unique(events.item, return_inverse=True, return_counts=True)
  keep = counts[inverse.reshape(-1)] >= min_support  # [E]
  return events if np.all(keep) else events.select(keep)


def filter_sessions_and_items(
  events: Events, min_session_length: int = 2, min_item_support: int = 5
) -> Events:
  """GRU4Rec's filters: short sessions, then rare items, then sessions left too short."""
  events = filter_short_sessions(events, min_session_length)
  events = filter_rare_items(events, min_item_support)
  return filter_short_sessions(events, min_session_length)


def restrict_to_items(
  events: Events, known_items: np.ndarray, min_session_length: int = 2
) -> Events:
  """Removes events on items outside `known_items`, then sessions left shorter than the minimum.

  This is how GRU4Rec cleans an evaluation split against its training split.

  Args:
    events: the evaluation table.
    known_items: raw ids the model can score (the training table's items).
    min_session_length: sessions shorter than this are dropped afterwards.

  Returns:
    The cleaned table.
  """
  known = np.isin(events.item, known_items)
  events = events if np.all(known) else events.select(known)
  return filter_short_sessions(events, min_session_length)


def split_by_last_days(events: Events, days: float) -> tuple[Events, Events]:
  """Splits off the sessions whose last event lies within the final `days` days.

  Args:
    events: the table, `time` in unix seconds.
    days: length of the held-out period; test sessions have `end >= max(time) - days * 86400`.

  Returns:
    (earlier sessions, held-out sessions).
  """
  if not events.num_events:
    return events, events
  ends = events.session_end_times()  # [S]
  held_out = ends >= events.time.max() - days * SECONDS_PER_DAY
  mask = _per_event(events, held_out)
  return events.select(~mask), events.select(mask)


def split_by_last_fraction(events: Events, fraction: float) -> tuple[Events, Events]:
  """Splits off the last `fraction` of sessions, ordered by their last event's time.

  For tables without time (`time` = position in the file) this is the last sessions in file order.

  Args:
    events: the table.
    fraction: share of sessions held out, in (0, 1); the count is rounded to the nearest integer.

  Returns:
    (earlier sessions, held-out sessions).
  """
  if not 0.0 < fraction < 1.0:
    raise ValueError(f'fraction must be in (0, 1), got {fraction}')
  ends = events.session_end_times()  # [S]
  n_held_out = int(round(fraction * len(ends)))
  order = np.argsort(ends, kind='stable')  # [S]
  held_out = np.zeros(len(ends), bool)
  held_out[order[len(ends) - n_held_out :]] = True
  mask = _per_event(events, held_out)
  return events.select(~mask), events.select(mask)
