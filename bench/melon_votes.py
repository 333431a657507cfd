"""Seed B's answer time at Melon scale: the published votes against the configured ones.

Usage: ``python -m bench.melon_votes [--size melon] [--dim 1024] [--repeats 3]``.

A synthetic Melon world (``--size melon``: 115k training playlists, the real data's scale) and
random song embeddings of the song-as-user code width for every training song: the neighbour
searches, vote products and rankings cost what they cost on trained embeddings (what the
embeddings change is which playlists are near, not how many songs they hold). Every validation
question is answered with the published seed B votes (plain counts of the 10 / 50 nearest
playlists, no title route), with ``configs/song_as_user.py``'s ``eval.recommender_args``, and with
those without the title route (``votes_only``, when the config has it on), alternately; one
warm-up call of each compiles, then the best of ``--repeats`` is reported. CPU figures compare as
ratios only.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from configs import song_as_user as song_as_user_config
from jaxae.data import synthetic
from jaxae.recommend.song_as_user import song_as_user

PUBLISHED = dict(song_neighbours=10, tag_neighbours=50, song_vote_power=0.0, tag_vote_power=0.0,
                 titles=False)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="melon", choices=sorted(synthetic.SIZES))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--dim", type=int, default=1024, help="song code width (the config's 1024)")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  world = synthetic.synthesize_melon(args.size, args.seed)
  song_ids = np.unique(world.train.songs)
  emb = jax.random.normal(jax.random.PRNGKey(args.seed), (len(song_ids), args.dim))
  configured = dict(song_as_user_config.get_config().eval.recommender_args)
  settings = {"published": PUBLISHED, "configured": configured}
  if configured.get("titles"):
    settings["votes_only"] = dict(configured, titles=False)

  def answer(kw):
    t = time.perf_counter()
    song_as_user(world.train, world.val, song_embeddings=emb, song_ids=song_ids, **kw)
    return time.perf_counter() - t

  times = {name: [] for name in settings}
  for name, kw in settings.items():
    answer(kw)                                    # compiles this setting's shapes
  for _ in range(args.repeats):
    for name, kw in settings.items():
      times[name].append(answer(kw))

  print(f"seed B votes: size={args.size} ({len(world.train)} train playlists, {len(world.val)} "
        f"questions, {len(song_ids)} songs x {args.dim}), best of {args.repeats}")
  best = {name: min(t) for name, t in times.items()}
  for name, kw in settings.items():
    print(f"  {name:<10}  {best[name]:7.2f} s  {len(world.val) / best[name]:9,.0f} questions/s  "
          f"({', '.join(f'{k}={v}' for k, v in sorted(kw.items()))}; all: "
          f"{', '.join(f'{t:.2f}' for t in times[name])} s)")
  for name in settings:
    if name != "published":
      print(f"  {name} / published: {best[name] / best['published']:.2f}x the time")


if __name__ == "__main__":
  main()
