"""Synthetic click sessions with planted sequential structure (a sparse Markov chain over items).

Each item has a Zipf-like popularity and a few likely successors. A session starts at a
popularity-drawn item; each next click follows the current item's successor distribution, or with
probability `jump_prob` jumps to a popularity-drawn item. A model of the next item given the
current one should therefore beat popularity by a wide margin, and `MarkovChain.top_k` gives the
oracle ranking to compare against.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seqrec.data.events import Events

DEFAULT_START_TIME = 1704067200.0  # 2024-01-01T00:00:00Z


@dataclasses.dataclass(frozen=True, eq=False)
class MarkovChain:
  """The generating process over item indices 0..N-1 (raw item id = index + 1).

  Attributes:
    popularity: [N] float64 probabilities of session starts and random jumps (Zipf-like).
    successors: [N, K] int64 likely next items of each item, most likely first; -1 pads.
    successor_probs: [N, K] float64 probability of each successor given a non-jump step (0 on
      padding; rows sum to 1).
    jump_prob: probability that a step ignores the successors and draws from `popularity`.
  """

  popularity: np.ndarray
  successors: np.ndarray
  successor_probs: np.ndarray
  jump_prob: float

  @property
  def n_items(self) -> int:
    return len(self.popularity)

  def next_item_probs(self, current: int) -> np.ndarray:
    """[N] exact distribution of the item after `current` (an index)."""
    probs = self.jump_prob * self.popularity
    valid = self.successors[current] >= 0
    np.add.at(
      probs,
      self.successors[current][valid],
      (1.0 - self.jump_prob) * self.successor_probs[current][valid],
    )
    return probs

  def top_k(self, current: int, k: int) -> np.ndarray:
    """[k] indices of the k most likely next items after `current`: the Bayes-optimal list."""
    return np.argsort(-self.next_item_probs(current), kind='stable')[:k]


def make_chain(
  n_items: int,
  rng: np.random.Generator,
  zipf_exponent: float = 0.8,
  min_successors: int = 3,
  max_successors: int = 5,
  successor_skew: float = 0.5,
  jump_prob: float = 0.2,
) -> MarkovChain:
  """Draws a random sparse Markov chain with popularity-skewed successors.

  Args:
    n_items: number of items N.
    rng: the random generator.
    zipf_exponent: popularity of the item of popularity rank r is proportional to r**-exponent;
      ranks are assigned to items at random.
    min_successors: fewest successors per item.
    max_successors: most successors per item.
    successor_skew: successors are drawn (without repeats or self-loops) with probability
      proportional to popularity**skew: 0 is uniform, 1 follows popularity.
    jump_prob: probability of a popularity-drawn jump instead of a successor.

  Returns:
    The chain. Successor j (0-based) of an item with k successors has probability proportional
    to 1 / (j + 1).
  """
  if n_items <= max_successors:
    raise ValueError(f'n_items ({n_items}) must exceed max_successors ({max_successors})')
  ranks = rng.permutation(n_items) + 1  # [N] popularity rank of each item
  popularity = ranks.astype(np.float64) ** -zipf_exponent
  popularity /= popularity.sum()
  skewed = popularity**successor_skew
  skewed /= skewed.sum()

  n_successors = rng.integers(min_successors, max_successors + 1, size=n_items)  # [N]
  # Draw spare candidates with replacement and keep the first distinct, non-self ones.
  candidates = rng.choice(n_items, size=(n_items, 4 * max_successors + 4), p=skewed)
  successors = np.full((n_items, max_successors), -1, np.int64)  # [N, K]
  for item in range(n_items):
    picked = [c for c in dict.fromkeys(candidates[item].tolist()) if c != item]
    picked = picked[: n_successors[item]]
    successors[item, : len(picked)] = picked
  weights = np.where(successors >= 0, 1.0 / np.arange(1, max_successors + 1), 0.0)  # [N, K]
  successor_probs = weights / weights.sum(axis=1, keepdims=True)
  return MarkovChain(popularity, successors, successor_probs, float(jump_prob))


def sample_sessions(
  chain: MarkovChain,
  n_sessions: int,
  rng: np.random.Generator,
  mean_length: float = 6.0,
  max_length: int = 30,
  days: float = 10.0,
  mean_gap_seconds: float = 60.0,
  start_time: float = DEFAULT_START_TIME,
) -> Events:
  """Walks the chain to produce sessions.

  Args:
    chain: the generating process.
    n_sessions: number of sessions S.
    rng: the random generator.
    mean_length: mean session length before clipping; lengths are 1 + geometric, so >= 2.
    max_length: longest session.
    days: session start times are uniform over this many days.
    mean_gap_seconds: mean of the exponential time between clicks of a session.
    start_time: unix time of the start of the period.

  Returns:
    Events with raw item ids 1..N, session ids 1..S in start-time order, increasing times.
  """
  if mean_length <= 1.0:
    raise ValueError(f'mean_length must exceed 1, got {mean_length}')
  lengths = np.minimum(1 + rng.geometric(1.0 / (mean_length - 1.0), size=n_sessions), max_length)
  n_steps = int(lengths.max()) if n_sessions else 0
  walk = np.zeros((n_sessions, n_steps), np.int64)  # [S, T]
  cumulative = np.cumsum(chain.successor_probs, axis=1)  # [N, K]
  walk[:, 0] = rng.choice(chain.n_items, size=n_sessions, p=chain.popularity)
  for t in range(1, n_steps):
    current = walk[:, t - 1]  # [S]
    draw = rng.random(n_sessions)  # [S]
    slot = np.sum(draw[:, None] >= cumulative[current], axis=1)  # [S]
    slot = np.minimum(slot, chain.successors.shape[1] - 1)
    follow = chain.successors[current, slot]  # [S]
    jump = rng.choice(chain.n_items, size=n_sessions, p=chain.popularity)  # [S]
    jumped = (rng.random(n_sessions) < chain.jump_prob) | (follow < 0)
    walk[:, t] = np.where(jumped, jump, follow)

  in_session = np.arange(n_steps)[None, :] < lengths[:, None]  # [S, T]
  starts = np.sort(rng.uniform(0.0, days * 86400.0, size=n_sessions))  # [S]
  gaps = rng.exponential(mean_gap_seconds, size=(n_sessions, n_steps))  # [S, T]
  gaps[:, 0] = 0.0
  times = start_time + starts[:, None] + np.cumsum(gaps, axis=1)  # [S, T]
  session = np.broadcast_to(np.arange(1, n_sessions + 1)[:, None], walk.shape)
  return Events(
    session=session[in_session].astype(np.int64),
    item=walk[in_session] + 1,
    time=np.round(times[in_session], 3),
    source='synthetic',
  )


def generate_sessions(
  n_sessions: int = 8000,
  n_items: int = 1000,
  seed: int = 0,
  *,
  jump_prob: float = 0.2,
  zipf_exponent: float = 0.8,
  successor_skew: float = 0.5,
  mean_length: float = 6.0,
  max_length: int = 30,
  days: float = 10.0,
) -> Events:
  """Generates a synthetic click log; the same arguments always give the same table.

  Defaults give about 48k events over 1,000 items in 10 days, so GRU4Rec's one-day time split
  holds out about a tenth of the sessions.

  Args:
    n_sessions: number of sessions.
    n_items: number of items.
    seed: random seed.
    jump_prob: probability that a click ignores the chain (see `make_chain`).
    zipf_exponent: popularity skew (see `make_chain`).
    successor_skew: popularity skew of the successors (see `make_chain`).
    mean_length: mean session length (see `sample_sessions`).
    max_length: longest session.
    days: time span of the log.

  Returns:
    Raw events (item ids 1..n_items), sorted by (session, time).
  """
  return generate_with_chain(
    n_sessions,
    n_items,
    seed,
    jump_prob=jump_prob,
    zipf_exponent=zipf_exponent,
    successor_skew=successor_skew,
    mean_length=mean_length,
    max_length=max_length,
    days=days,
  )[0]


def generate_with_chain(
  n_sessions: int,
  n_items: int,
  seed: int,
  *,
  jump_prob: float = 0.2,
  zipf_exponent: float = 0.8,
  successor_skew: float = 0.5,
  mean_length: float = 6.0,
  max_length: int = 30,
  days: float = 10.0,
) -> tuple[Events, MarkovChain]:
  """Like `generate_sessions`, but also returns the chain that generated the sessions."""
  chain_seed, session_seed = np.random.SeedSequence(seed).spawn(2)
  chain = make_chain(
    n_items,
    np.random.default_rng(chain_seed),
    zipf_exponent=zipf_exponent,
    successor_skew=successor_skew,
    jump_prob=jump_prob,
  )
  events = sample_sessions(
    chain,
    n_sessions,
    np.random.default_rng(session_seed),
    mean_length=mean_length,
    max_length=max_length,
    days=days,
  )
  return events, chain
