"""Synthetic users with sessions: a planted per-user taste over item clusters, plus a Markov chain.

Items are split at random into equal-sized clusters; every user prefers one cluster. A session's
first click is drawn from global (Zipf-like) popularity, so it says nothing about the user. Each
later click follows a sparse Markov chain whose successors stay within the current item's
cluster, or, with probability `jump_prob`, jumps: with probability `user_taste` to an item of the
user's cluster (by popularity within the cluster), else to a popularity-drawn item. Sessions are
therefore mostly drawn from the user's cluster, and predicting the first clicks after a session's
first item needs the user's past sessions: the situation HRNN's user state is meant for. With
`user_taste=0` the user is never consulted, so sessions are independent of the user.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seqrec.data.events import Events
from seqrec.data.synthetic import DEFAULT_START_TIME, MarkovChain

_MIN_SESSION_GAP_SECONDS = 3600.0  # > the 30-minute sessionisation gap: sessions survive it.
_MAX_CLICK_GAP_SECONDS = 600.0  # < the gap, so a session is never cut in two.


@dataclasses.dataclass(frozen=True, eq=False)
class UserTaste:
  """The generating process over item indices 0..N-1 and user indices 0..U-1.

  Raw ids are index + 1 for both items and users.

  Attributes:
    chain: popularity [N] (first clicks, untasted jumps) and the within-cluster successors.
    item_cluster: [N] int64 cluster of each item.
    user_cluster: [U] int64 preferred cluster of each user.
    user_taste: probability that a jump goes to the user's cluster.
  """

  chain: MarkovChain
  item_cluster: np.ndarray
  user_cluster: np.ndarray
  user_taste: float

  @property
  def n_items(self) -> int:
    return self.chain.n_items

  @property
  def n_clusters(self) -> int:
    return int(self.item_cluster.max()) + 1

  def cluster_probs(self, cluster: int) -> np.ndarray:
    """[N] popularity restricted to one cluster, normalised."""
    probs = np.where(self.item_cluster == cluster, self.chain.popularity, 0.0)
    return probs / probs.sum()

  def jump_probs(self, user: int) -> np.ndarray:
    """[N] distribution of a jump of `user` (an index)."""
    tasted = self.cluster_probs(int(self.user_cluster[user]))
    return self.user_taste * tasted + (1.0 - self.user_taste) * self.chain.popularity

  def next_item_probs(self, user: int, current: int) -> np.ndarray:
    """[N] exact distribution of `user`'s click after item `current` (indices)."""
    probs = self.chain.jump_prob * self.jump_probs(user)
    valid = self.chain.successors[current] >= 0
    np.add.at(
      probs,
      self.chain.successors[current][valid],
      (1.0 - self.chain.jump_prob) * self.chain.successor_probs[current][valid],
    )
    return probs


def make_taste(
  n_users: int,
  n_items: int,
  n_clusters: int,
  rng: np.random.Generator,
  user_taste: float = 0.8,
  jump_prob: float = 0.5,
  zipf_exponent: float = 0.8,
  min_successors: int = 3,
  max_successors: int = 5,
) -> UserTaste:
  """Draws clusters, users' preferred clusters and a within-cluster Markov chain.

  Args:
    n_users: number of users U.
    n_items: number of items N.
    n_clusters: number of clusters C; items are dealt to clusters at random, N // C or one more
      each.
    rng: the random generator.
    user_taste: probability that a jump goes to the user's cluster.
    jump_prob: probability that a click leaves the chain.
    zipf_exponent: popularity of rank r is proportional to r**-exponent (ranks at random).
    min_successors: fewest successors per item.
    max_successors: most successors per item (each cluster must hold more items).

  Returns:
    The process. Successors are distinct items of the same cluster (no self-loops), drawn by
    popularity; successor j (0-based) has probability proportional to 1 / (j + 1).
  """
  if not 0.0 <= user_taste <= 1.0 or not 0.0 <= jump_prob <= 1.0:
    raise ValueError(f'user_taste and jump_prob must be in [0, 1], got {user_taste}, {jump_prob}')
  if n_items // n_clusters <= max_successors:
    raise ValueError(
      f'{n_items} items in {n_clusters} clusters leave too few items per cluster for '
      f'{max_successors} successors'
    )
  ranks = rng.permutation(n_items) + 1  # [N]
  popularity = ranks.astype(np.float64) ** -zipf_exponent
  popularity /= popularity.sum()
  item_cluster = rng.permutation(np.arange(n_items) % n_clusters).astype(np.int64)  # [N]
  user_cluster = rng.integers(0, n_clusters, size=n_users).astype(np.int64)  # [U]

  successors = np.full((n_items, max_successors), -1, np.int64)  # [N, K]
  n_successors = rng.integers(min_successors, max_successors + 1, size=n_items)  # [N]
  for cluster in range(n_clusters):
    members = np.flatnonzero(item_cluster == cluster)  # [M]
    weights = popularity[members] / popularity[members].sum()
    for item in members.tolist():
      others = members != item
      picked = rng.choice(
        members[others],
        size=n_successors[item],
        replace=False,
        p=weights[others] / weights[others].sum(),
      )
      successors[item, : len(picked)] = picked
  weights = np.where(successors >= 0, 1.0 / np.arange(1, max_successors + 1), 0.0)  # [N, K]
  successor_probs = weights / weights.sum(axis=1, keepdims=True)
  chain = MarkovChain(popularity, successors, successor_probs, float(jump_prob))
  return UserTaste(chain, item_cluster, user_cluster, float(user_taste))


def sample_user_sessions(
  taste: UserTaste,
  rng: np.random.Generator,
  mean_sessions: float = 10.0,
  mean_length: float = 6.0,
  max_length: int = 30,
  days: float = 60.0,
  mean_click_gap_seconds: float = 60.0,
  start_time: float = DEFAULT_START_TIME,
) -> Events:
  """Draws every user's sessions from the process.

  Args:
    taste: the process.
    rng: the random generator.
    mean_sessions: mean sessions per user (2 + Poisson, so every user has >= 2).
    mean_length: mean session length before clipping (1 + geometric, so >= 2).
    max_length: longest session.
    days: mean span of a user's sessions; the time between sessions is exponential with mean
      `days / mean_sessions` days, plus one hour after the previous session's last click.
    mean_click_gap_seconds: mean of the exponential time between clicks (clipped at 10 min).
    start_time: unix time of the first users' earliest possible session.

  Returns:
    Events with raw user ids 1..U, item ids 1..N, session ids 1..S in (user, time) order,
    increasing times within each user, and more than an hour between a user's sessions.
  """
  if mean_sessions < 2.0 or mean_length <= 1.0:
    raise ValueError(
      f'need mean_sessions >= 2 and mean_length > 1, got {mean_sessions} and {mean_length}'
    )
  chain = taste.chain
  n_users = len(taste.user_cluster)
  per_user = 2 + rng.poisson(mean_sessions - 2.0, size=n_users)  # [U]
  session_user = np.repeat(np.arange(n_users), per_user)  # [S]
  n_sessions = len(session_user)
  lengths = np.minimum(1 + rng.geometric(1.0 / (mean_length - 1.0), size=n_sessions), max_length)
  n_steps = int(lengths.max())

  walk = np.zeros((n_sessions, n_steps), np.int64)  # [S, T]
  walk[:, 0] = rng.choice(taste.n_items, size=n_sessions, p=chain.popularity)
  cluster_of_session = taste.user_cluster[session_user]  # [S]
  cluster_members = [np.flatnonzero(taste.item_cluster == c) for c in range(taste.n_clusters)]
  cluster_probs = [chain.popularity[m] / chain.popularity[m].sum() for m in cluster_members]
  cumulative = np.cumsum(chain.successor_probs, axis=1)  # [N, K]
  for t in range(1, n_steps):
    current = walk[:, t - 1]  # [S]
    slot = np.sum(rng.random(n_sessions)[:, None] >= cumulative[current], axis=1)  # [S]
    follow = chain.successors[current, np.minimum(slot, chain.successors.shape[1] - 1)]  # [S]
    jump = rng.choice(taste.n_items, size=n_sessions, p=chain.popularity)  # [S]
    tasted = rng.random(n_sessions) < taste.user_taste  # [S]
    for cluster, (members, probs) in enumerate(zip(cluster_members, cluster_probs, strict=True)):
      rows = np.flatnonzero(tasted & (cluster_of_session == cluster))
      jump[rows] = rng.choice(members, size=len(rows), p=probs)
    jumped = (rng.random(n_sessions) < chain.jump_prob) | (follow < 0)
    walk[:, t] = np.where(jumped, jump, follow)

  in_session = np.arange(n_steps)[None, :] < lengths[:, None]  # [S, T]
  click_gaps = rng.exponential(mean_click_gap_seconds, (n_sessions, n_steps))  # [S, T]
  click_gaps = np.minimum(click_gaps, _MAX_CLICK_GAP_SECONDS)
  click_gaps[:, 0] = 0.0
  offsets = np.cumsum(click_gaps, axis=1)  # [S, T] seconds since the session's first click
  duration = offsets[np.arange(n_sessions), lengths - 1]  # [S]
  pause = rng.exponential(days * 86400.0 / mean_sessions, n_sessions)  # [S]
  # A user's first session starts one pause after `start_time`; each later one a pause plus an
  # hour after the previous session's last click.
  first = np.r_[True, session_user[1:] != session_user[:-1]]  # [S]
  step = pause + np.where(first, 0.0, _MIN_SESSION_GAP_SECONDS)
  step[1:] += np.where(first[1:], 0.0, duration[:-1])
  total = np.cumsum(step)  # [S]
  starts = total - np.repeat((total - step)[first], per_user)  # [S] since start_time
  times = start_time + starts[:, None] + offsets  # [S, T]
  session = np.broadcast_to(np.arange(1, n_sessions + 1)[:, None], walk.shape)
  user = np.broadcast_to(session_user[:, None] + 1, walk.shape)
  return Events(
    session=session[in_session].astype(np.int64),
    item=walk[in_session] + 1,
    time=np.round(times[in_session], 3),
    user=user[in_session].astype(np.int64),
    source='user_synthetic',
  )


def generate_user_sessions(
  n_users: int = 1000,
  n_items: int = 500,
  seed: int = 0,
  *,
  n_clusters: int = 20,
  user_taste: float = 0.8,
  jump_prob: float = 0.5,
  mean_sessions: float = 10.0,
  mean_length: float = 6.0,
  max_length: int = 30,
  days: float = 60.0,
) -> Events:
  """Generates users with sessions; the same arguments always give the same table.

  Defaults give 1,000 users, about 10,000 sessions and 60,000 events over 500 items.

  Args:
    n_users: number of users.
    n_items: number of items.
    seed: random seed.
    n_clusters: number of item clusters (tastes).
    user_taste: probability that a jump goes to the user's cluster; 0 = no user effect.
    jump_prob: probability that a click leaves the chain.
    mean_sessions: mean sessions per user.
    mean_length: mean session length.
    max_length: longest session.
    days: mean span of a user's sessions.

  Returns:
    Raw events (see `sample_user_sessions`), sorted by (session, time).
  """
  return generate_with_taste(
    n_users,
    n_items,
    seed,
    n_clusters=n_clusters,
    user_taste=user_taste,
    jump_prob=jump_prob,
    mean_sessions=mean_sessions,
    mean_length=mean_length,
    max_length=max_length,
    days=days,
  )[0]


def generate_with_taste(
  n_users: int,
  n_items: int,
  seed: int,
  *,
  n_clusters: int = 20,
  user_taste: float = 0.8,
  jump_prob: float = 0.5,
  mean_sessions: float = 10.0,
  mean_length: float = 6.0,
  max_length: int = 30,
  days: float = 60.0,
) -> tuple[Events, UserTaste]:
  """Like `generate_user_sessions`, but also returns the process that generated the sessions.

  The clusters, the users' clusters and the chain depend only on the seed and the sizes, not on
  `user_taste` or `jump_prob`, so tables that differ only in taste share the same items and users.
  """
  taste_seed, session_seed = np.random.SeedSequence(seed).spawn(2)
  taste = make_taste(
    n_users, n_items, n_clusters, np.random.default_rng(taste_seed), user_taste, jump_prob
  )
  events = sample_user_sessions(
    taste,
    np.random.default_rng(session_seed),
    mean_sessions=mean_sessions,
    mean_length=mean_length,
    max_length=max_length,
    days=days,
  )
  return events, taste
