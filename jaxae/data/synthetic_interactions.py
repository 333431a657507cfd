"""Generated rating and implicit-feedback matrices: the embedded default for non-Melon configs.

Every config runs with no dataset on disk; these generators give it data with real structure
(low-rank tastes, taste clusters, power-law popularity) so that a model that learns beats the
popularity baseline. They are not benchmarks of quality: published numbers come from the real files
(docs/results.md). Everything is vectorized numpy and a pure function of the arguments and ``seed``.
"""

from __future__ import annotations

import numpy as np

from jaxae.data.matrix import Interactions

# Candidate draws per wanted item in the first sampling round, and its growth per further round.
_FIRST_OVERSAMPLE = 2.0
_OVERSAMPLE_GROWTH = 4.0
_ROUNDS = 4


def _popularity(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
  """Power-law item popularity ``rank ** -exponent`` over a random permutation of the items."""
  p = rng.permutation(np.arange(1, n + 1, dtype=np.float64) ** -exponent)
  return p / p.sum()


def _sample_pairs(rng: np.random.Generator, group: np.ndarray, per_user: np.ndarray,
                  logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Samples ``per_user[u]`` distinct items for each user, without replacement, vectorized.

  User ``u`` draws from ``softmax(logits[group[u]])`` (users of one group share a distribution), so
  the result has the law of drawing one item at a time and discarding repeats. That is done
  literally, for all users at once: each user gets about ``2 * per_user[u]`` draws (inverse-CDF
  lookups in one flat table of the groups' CDFs), repeats are dropped and the first ``per_user[u]``
  distinct items kept. Users that drew too few distinct items are redrawn with more candidates; the
  rare users still short after that (a request near the catalogue size under a steep popularity
  curve) fall back to the Gumbel-top-k trick over their full logit row. No per-user Python loop.

  Returns:
    (user index, item index) of every sampled pair, grouped by user.
  """
  n_groups, n_items = logits.shape
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  cdf = np.cumsum(p, axis=1)
  cdf /= cdf[:, -1:]
  flat = (cdf + np.arange(n_groups)[:, None]).ravel()  # row g spans (g, g + 1]
  users, items = [], []
  todo = np.flatnonzero(per_user > 0)
  factor = _FIRST_OVERSAMPLE
  for _ in range(_ROUNDS):
    if len(todo) == 0:
      break
    want = per_user[todo]
    n_draw = np.ceil(want * factor).astype(np.int64) + 4
    u = np.repeat(todo, n_draw)
    g = group[u]
    pos = np.searchsorted(flat, g + rng.random(len(u)), side="right")
    item = np.clip(pos - g * n_items, 0, n_items - 1)
    _, first = np.unique(u * n_items + item, return_index=True)
    first.sort()  # back in draw order: grouped by user, earliest draw first
    slot = np.repeat(np.arange(len(todo)), n_draw)[first]
    counts = np.bincount(slot, minlength=len(todo))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(first)) - starts[slot]
    done = counts >= want
    keep = done[slot] & (rank < want[slot])
    users.append(u[first][keep])
    items.append(item[first][keep])
    todo = todo[~done]
    factor *= _OVERSAMPLE_GROWTH
  if len(todo):
    u, i = _gumbel_top_k(rng, todo, per_user[todo], np.log(p[group[todo]]))
    users.append(u)
    items.append(i)
  if not users:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  u, i = np.concatenate(users), np.concatenate(items)
  order = np.argsort(u, kind="stable")
  return u[order], i[order]


def _gumbel_top_k(rng: np.random.Generator, users: np.ndarray, k: np.ndarray,
                  logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Exact sampling without replacement: the ``k[r]`` largest of ``logits[r] + Gumbel noise``."""
  noisy = logits + rng.gumbel(size=logits.shape)
  kmax = int(k.max())
  top = np.argpartition(-noisy, kmax - 1, axis=1)[:, :kmax]
  # Sort the kmax candidates by their noisy logit so the first k[r] are the top k[r].
  top = np.take_along_axis(top, np.argsort(-np.take_along_axis(noisy, top, 1), axis=1), 1)
  take = np.arange(kmax)[None, :] < k[:, None]
  return np.broadcast_to(users[:, None], top.shape)[take], top[take]


def ratings(n_users: int = 600, n_items: int = 1000, mean_per_user: int = 60, rank: int = 8,
            noise: float = 0.6, seed: int = 0) -> Interactions:
  """Explicit 1..5 ratings from a low-rank model: r = clip(round(3.5 + b_u + b_i + 2 u.v + noise)).

  Each user rates ``~mean_per_user`` (geometric, at least 5) distinct items chosen by power-law
  popularity; ids are 1-based ints like MovieLens (rows ``1..n_users``, columns ``1..n_items``).
  Timestamps are uniform over about four months, so time splits have something to split.
  """
  rng = np.random.default_rng(seed)
  u_vec = rng.normal(0, 1 / np.sqrt(rank), (n_users, rank)) * 1.2
  i_vec = rng.normal(0, 1 / np.sqrt(rank), (n_items, rank)) * 1.2
  b_u = rng.normal(0, 0.3, n_users)
  b_i = rng.normal(0, 0.4, n_items)
  per_user = np.clip(rng.geometric(1.0 / mean_per_user, n_users), 5, n_items // 2)
  pop = _popularity(rng, n_items, 0.8)
  u, i = _sample_pairs(rng, np.zeros(n_users, np.int64), per_user, np.log(pop)[None, :])
  r = 3.5 + b_u[u] + b_i[i] + np.einsum("nk,nk->n", u_vec[u], i_vec[i]) * 2.0
  r = np.clip(np.rint(r + rng.normal(0, noise, len(u))), 1, 5).astype(np.float32)
  ts = 900_000_000 + rng.integers(0, 10_000_000, len(u))
  return Interactions.from_coo(u + 1, i + 1, r, ts, row_ids=np.arange(1, n_users + 1),
                               col_ids=np.arange(1, n_items + 1), source="synthetic ratings")


def implicit(n_users: int = 2000, n_items: int = 3000, mean_per_user: int = 30,
             n_clusters: int = 20, cluster_strength: float = 3.0,
             seed: int = 0) -> tuple[Interactions, Interactions]:
  """Implicit feedback from taste clusters, split 80/20 per user like the LightGCN files.

  Each user belongs to one of ``n_clusters`` clusters; each item has a N(0, 1) affinity to every
  cluster; a user's ``~mean_per_user`` (geometric, at least 5) distinct items are drawn with
  probability ~ popularity x exp(cluster_strength * affinity). Of each user's ``n`` items,
  ``max(1, floor(0.2 n))`` chosen at random go to test. Returns (train, test), both users x items
  with the same 0-based id maps (``0..n_users-1`` x ``0..n_items-1``).
  """
  rng = np.random.default_rng(seed)
  user_cluster = rng.integers(0, n_clusters, n_users)
  item_aff = rng.normal(0, 1, (n_clusters, n_items))
  per_user = np.clip(rng.geometric(1.0 / mean_per_user, n_users), 5, n_items // 4)
  pop = _popularity(rng, n_items, 0.9)
  u, i = _sample_pairs(rng, user_cluster, per_user,
                       np.log(pop)[None, :] + cluster_strength * item_aff)
  # Per user, a random 20% go to test; vectorized via ranks within user.
  order = np.lexsort((rng.random(len(u)), u))
  u, i = u[order], i[order]
  starts = np.searchsorted(u, np.arange(n_users))
  rank = np.arange(len(u)) - starts[u]
  n_test = np.maximum(1, np.floor(per_user * 0.2)).astype(int)
  is_test = rank >= (per_user - n_test)[u]
  ids_u, ids_i = np.arange(n_users), np.arange(n_items)
  train = Interactions.from_coo(u[~is_test], i[~is_test], row_ids=ids_u, col_ids=ids_i,
                                source="synthetic implicit")
  test = Interactions.from_coo(u[is_test], i[is_test], row_ids=ids_u, col_ids=ids_i,
                               source="synthetic implicit")
  return train, test
