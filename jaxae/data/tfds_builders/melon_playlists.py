"""TFDS builder ``melon_playlists``: the Kakao Arena Melon playlist files, one example per playlist.

Reads ``train.json`` / ``val.json`` / ``test.json`` (any that exist; gzip allowed) from the
``manual_dir`` with :func:`jaxae.data.readers.melon.read_playlists` and writes one split per file
(``train`` / ``val`` / ``test``) in the array_record format, so it builds and reads without
TensorFlow. ``index`` is the playlist's position in its file, so a reader can restore file order.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from jaxae.data.readers.melon import format_updt_dates, read_playlists
from jaxae.errors import DataError

SPLITS = ("train", "val", "test")


def split_files(manual_dir: str | os.PathLike) -> dict[str, str]:
  """split -> path of its JSON file (``<split>.json`` or ``<split>.json.gz``) in ``manual_dir``."""
  found = {}
  for split in SPLITS:
    for name in (f"{split}.json", f"{split}.json.gz"):
      path = os.path.join(os.fspath(manual_dir), name)
      if os.path.isfile(path):
        found[split] = path
        break
  return found


class MelonPlaylists(tfds.core.GeneratorBasedBuilder):
  """Kakao Arena 2020 Melon Playlist Continuation playlists."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "One example per playlist."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put the Kakao Arena Melon playlist files train.json, val.json and/or test.json (as "
      "downloaded from arena.kakao.com, optionally gzip-compressed) in the manual_dir; one split "
      "is built per file found.")

  @classmethod
  def check_manual_dir(cls, manual_dir: str, config: str | None = None) -> None:
    del config
    if not split_files(manual_dir):
      raise DataError(f"{manual_dir}: no train.json, val.json or test.json found. "
                      f"{cls.MANUAL_DOWNLOAD_INSTRUCTIONS}")

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "index": np.int64,
            "id": np.int64,
            "title": tfds.features.Text(),
            "tags": tfds.features.Sequence(tfds.features.Text()),
            "songs": tfds.features.Sequence(np.int64),
            "like_cnt": np.int64,
            "updt_date": tfds.features.Text(),
        }),
        homepage="https://arena.kakao.com/c/8",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    self.check_manual_dir(os.fspath(dl_manager.manual_dir))
    return {split: self._generate_examples(path)
            for split, path in split_files(dl_manager.manual_dir).items()}

  def _generate_examples(self, path: str):
    pl = read_playlists(path)
    ids, likes = pl.ids.tolist(), pl.like_cnt.tolist()
    dates = format_updt_dates(pl.updt_date)
    sp, tp = pl.song_indptr.tolist(), pl.tag_indptr.tolist()
    for i in range(len(pl)):                     # one example per playlist: tfds serializes each
      yield i, {
          "index": i,
          "id": ids[i],
          "title": pl.titles[i],
          "tags": pl.tags[tp[i]:tp[i + 1]].tolist(),
          "songs": pl.songs[sp[i]:sp[i + 1]],
          "like_cnt": likes[i],
          "updt_date": dates[i],
      }
