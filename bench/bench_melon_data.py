"""Times the Melon data path at Melon scale: synthetic generation, JSON load, song_as_user build.

Usage: ``python bench/bench_melon_data.py [--size melon] [--seed 0]``. Files go to a temporary
directory that is removed afterwards; nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from jaxae.data import melon_features, synthetic
from jaxae.data.readers import melon


def _timed(fn):
  t = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - t


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", default="melon", choices=sorted(synthetic.SIZES))
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--min-song-count", type=int, default=2)
  parser.add_argument("--min-tag-count", type=int, default=10)
  parser.add_argument("--no-meta", action="store_true", help="build song_as_user without song meta")
  args = parser.parse_args()

  rows = []
  world, t_gen = _timed(lambda: synthetic.synthesize_melon(args.size, args.seed))
  rows.append(("synthesize (in memory)", t_gen, f"{len(world.train)} train playlists, "
               f"{len(world.train.songs)} song entries, {len(world.song_meta)} songs"))
  with tempfile.TemporaryDirectory(prefix="jaxae_bench_melon_") as tmp:
    paths, t_write = _timed(lambda: world.write(tmp))
    size_mb = sum(os.path.getsize(p) for p in paths.values()) / 2**20
    rows.append(("write JSON files", t_write, f"{len(paths)} files, {size_mb:.0f} MiB"))
    train, t_load = _timed(lambda: melon.read_playlists(paths["train"]))
    rows.append(("load train.json", t_load, f"{len(train)} playlists"))
    meta, t_meta = _timed(lambda: melon.read_song_meta(paths["song_meta"]))
    rows.append(("load song_meta.json", t_meta, f"{len(meta)} songs"))
  (sau, blocks), t_sau = _timed(lambda: melon_features.song_as_user_matrix(
      train, None if args.no_meta else meta, min_song_count=args.min_song_count,
      min_tag_count=args.min_tag_count))
  rows.append(("song_as_user matrix", t_sau,
               f"{sau.shape[0]} x {sau.shape[1]}, nnz {sau.nnz}, blocks "
               + ", ".join(f"{k} {b - a}" for k, (a, b) in blocks.items())))
  rows.append(("generation total (synthesize + write)", t_gen + t_write, ""))

  print(f"Melon data bench: size={args.size} seed={args.seed} "
        f"min_song_count={args.min_song_count} min_tag_count={args.min_tag_count}")
  width = max(len(r[0]) for r in rows)
  for name, secs, note in rows:
    print(f"  {name:<{width}}  {secs:8.2f} s  {note}")


if __name__ == "__main__":
  main()
