"""The Melon recommenders' answer time at Melon scale: the published settings against the configured.

Usage: ``python -m bench.melon_votes [--recommender song_as_user|hybrid] [--size melon] [--dim 1024]
[--repeats 3]``.

A synthetic Melon world (``--size melon``: 115k training playlists, the real data's scale). Every
validation question is answered with the published settings, with the config's
``eval.recommender_args``, and with those without the title route (``votes_only``, when the config
has it on), alternately; one warm-up call of each compiles (and reports how many questions took
each route), then the best of ``--repeats`` is reported. CPU figures compare as ratios only.

* ``song_as_user`` (seed B, ``configs/song_as_user.py``): random song embeddings of the
  song-as-user code width for every training song: the neighbour searches, vote products and
  rankings cost what they cost on trained embeddings (what the embeddings change is which
  playlists are near, not how many songs they hold). Published: plain counts of the 10 / 50
  nearest playlists, tag-only questions' songs from their tag-overlap neighbours, no title route.
* ``hybrid`` (seed A, ``configs/melon_hybrid.py``, no content AE): the CF AE's ranking is replaced
  by one fixed order of the songs (the question's own songs excluded), so the figures are the
  recommender's own work (routes, tag votes, title route, fill-up) without the model's scoring,
  which the settings do not change. Published: plain co-occurrence tags, no title route.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

import scipy.sparse as sp

from configs import melon_hybrid as melon_hybrid_config
from configs import song_as_user as song_as_user_config
from jaxae.data import synthetic
from jaxae.recommend import get_recommender
from jaxae.recommend.hybrid import hybrid
from jaxae.recommend.song_as_user import song_as_user

PUBLISHED = {
    "song_as_user": dict(song_neighbours=10, tag_neighbours=50, song_vote_power=0.0,
                         tag_vote_power=0.0, titles=False, cooccurrence_songs=False),
    "hybrid": dict(tag_rank_discount=False, tag_song_norm=0.0, own_tag_weight=0.0, titles=False),
}
CONFIGS = {"song_as_user": song_as_user_config, "hybrid": melon_hybrid_config}


def fixed_order_top_k(order: np.ndarray):
  """A stand-in for the CF AE's ``score_top_k``: every query ranks the columns by ``order``,
  its own songs (``exclude``) left out."""
  def top_k(query: sp.csr_matrix, exclude: sp.csr_matrix, k: int):
    m = min(len(order), k + int(np.diff(exclude.indptr).max(initial=0)))
    head = order[:m]
    valid = ~(exclude[:, head].toarray() > 0)
    pick = np.argsort(~valid, axis=1, kind="stable")[:, :k]   # valid first, order kept
    return np.take_along_axis(np.broadcast_to(head, valid.shape), pick, 1), \
        np.take_along_axis(valid, pick, 1)
  return top_k


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--recommender", default="song_as_user", choices=sorted(PUBLISHED))
  parser.add_argument("--size", default="melon", choices=sorted(synthetic.SIZES))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--dim", type=int, default=1024, help="song code width (the config's 1024)")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  world = synthetic.synthesize_melon(args.size, args.seed)
  song_ids = np.unique(world.train.songs)
  configured = dict(CONFIGS[args.recommender].get_config().eval.recommender_args)
  for name in get_recommender(args.recommender).setup_arg_names():   # no content AE here
    configured.pop(name, None)
  settings = {"published": PUBLISHED[args.recommender], "configured": configured}
  if configured.get("titles"):
    settings["votes_only"] = dict(configured, titles=False)
  if args.recommender == "song_as_user":
    emb = jax.random.normal(jax.random.PRNGKey(args.seed), (len(song_ids), args.dim))
    inputs = dict(song_embeddings=emb, song_ids=song_ids)
    what = f"{len(song_ids)} songs x {args.dim}"
  else:
    order = np.random.default_rng(args.seed).permutation(len(song_ids))
    inputs = dict(score_top_k=fixed_order_top_k(order), score_song_ids=song_ids)
    what = f"{len(song_ids)} songs, fixed CF order"
  recommend = song_as_user if args.recommender == "song_as_user" else hybrid

  def answer(kw, report=None):
    t = time.perf_counter()
    recommend(world.train, world.val, **inputs, **kw, report=report)
    return time.perf_counter() - t

  times = {name: [] for name in settings}
  routes = {name: {} for name in settings}
  for name, kw in settings.items():
    answer(kw, routes[name])                      # compiles this setting's shapes
  for _ in range(args.repeats):
    for name, kw in settings.items():
      times[name].append(answer(kw))

  print(f"{args.recommender}: size={args.size} ({len(world.train)} train playlists, "
        f"{len(world.val)} questions, {what}), best of {args.repeats}")
  best = {name: min(t) for name, t in times.items()}
  for name, kw in settings.items():
    print(f"  {name:<10}  {best[name]:7.2f} s  {len(world.val) / best[name]:9,.0f} questions/s  "
          f"({', '.join(f'{k}={v}' for k, v in sorted(kw.items()))}; all: "
          f"{', '.join(f'{t:.2f}' for t in times[name])} s)")
    print(f"  {'':<10}  questions per route: " + ", ".join(
        f"{k[len('questions_'):]} {v:,}" for k, v in routes[name].items()
        if k.startswith("questions_") and v))
  for name in settings:
    if name != "published":
      print(f"  {name} / published: {best[name] / best['published']:.2f}x the time")


if __name__ == "__main__":
  main()
