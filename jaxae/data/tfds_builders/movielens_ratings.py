"""TFDS builder ``movielens_ratings``: MovieLens rating files, one example per rating.

Configs ``100k`` (``u.data``), ``1m`` (``ratings.dat``) and ``20m`` (``ratings.csv``), read from the
``manual_dir`` (directly in it or in the original ``ml-100k/`` ... folder; gzip allowed) with
:func:`jaxae.data.readers.movielens.read_movielens`, written as one ``train`` split in the
array_record format (no TensorFlow). A repeated (user, movie) pair was already merged by the
reader (last rating kept), so every example is a distinct pair.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from jaxae.data.readers.movielens import read_movielens
from jaxae.errors import DataError


@dataclasses.dataclass
class MovielensConfig(tfds.core.BuilderConfig):
  """A MovieLens release: the rating file name and the folder it ships in."""

  file_name: str = ""
  folder: str = ""


def rating_file(manual_dir: str | os.PathLike, config: MovielensConfig) -> str | None:
  """The rating file of ``config`` in ``manual_dir`` (plain or gzip, in the folder or not)."""
  for sub in ("", config.folder):
    for suffix in ("", ".gz"):
      path = os.path.join(os.fspath(manual_dir), sub, config.file_name + suffix)
      if os.path.isfile(path):
        return path
  return None


class MovielensRatings(tfds.core.GeneratorBasedBuilder):
  """MovieLens explicit ratings (user, movie, rating, timestamp)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "One example per rating."}
  BUILDER_CONFIGS = [
      MovielensConfig(name="100k", description="MovieLens 100K (u.data)", file_name="u.data",
                      folder="ml-100k"),
      MovielensConfig(name="1m", description="MovieLens 1M (ratings.dat)",
                      file_name="ratings.dat", folder="ml-1m"),
      MovielensConfig(name="20m", description="MovieLens 20M (ratings.csv)",
                      file_name="ratings.csv", folder="ml-20m"),
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download the MovieLens release from https://grouplens.org/datasets/movielens/ (its terms "
      "forbid redistribution) and put its rating file in the manual_dir, directly or in the "
      "original folder: ml-100k/u.data, ml-1m/ratings.dat or ml-20m/ratings.csv (gzip allowed).")

  @classmethod
  def check_manual_dir(cls, manual_dir: str, config: str | None = None) -> None:
    cfg = next(c for c in cls.BUILDER_CONFIGS if c.name == (config or cls.BUILDER_CONFIGS[0].name))
    if rating_file(manual_dir, cfg) is None:
      raise DataError(f"{manual_dir}: no {cfg.file_name} (or {cfg.folder}/{cfg.file_name}) found "
                      f"for the {cfg.name} config. {cls.MANUAL_DOWNLOAD_INSTRUCTIONS}")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "user_id": np.int64,
            "movie_id": np.int64,
            "rating": np.float32,
            "timestamp": np.int64,
        }),
        homepage="https://grouplens.org/datasets/movielens/",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    manual_dir = os.fspath(dl_manager.manual_dir)
    self.check_manual_dir(manual_dir, self.builder_config.name)
    return {"train": self._generate_examples(rating_file(manual_dir, self.builder_config))}

  def _generate_examples(self, path: str):
    inter = read_movielens(path)
    users, movies, ratings = inter.to_coo_ids()
    times = inter.timestamps.data if inter.timestamps is not None else np.zeros(len(users), np.int64)
    rows = zip(users.tolist(), movies.tolist(), ratings.tolist(), times.tolist())
    for k, (u, m, r, t) in enumerate(rows):      # one example per rating: tfds serializes each
      yield k, {"user_id": u, "movie_id": m, "rating": r, "timestamp": t}
