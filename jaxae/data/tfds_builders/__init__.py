"""TFDS builders (array_record format, no TensorFlow) for the datasets jaxae trains on.

The ``tensorflow-datasets`` package is an optional extra (``pip install jaxae[tfds]``). Nothing here
imports it until a builder is asked for; without it, :func:`require_tfds` raises a one-line
:class:`~jaxae.errors.JaxaeError` saying how to install it.

Builders (``name -> class``, each reads files the user already has from ``manual_dir``):

  melon_playlists     Kakao Arena Melon ``train.json`` / ``val.json`` / ``test.json``: one example
                      per playlist (index, id, title, tags, songs, like_cnt, updt_date).
  movielens_ratings   configs ``100k`` / ``1m`` / ``20m``: one example per rating
                      (user_id, movie_id, rating, timestamp).

``python -m jaxae.data.tfds_builders NAME --manual_dir DIR --data_dir DIR`` builds one (see
``docs/tfds.md``). ``jaxae.data.tfds_reader`` reads a built split back into ``Interactions``.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
from typing import Any

from jaxae.errors import DataError, JaxaeError

# name -> (module, class)
BUILDERS = {
    "melon_playlists": ("jaxae.data.tfds_builders.melon_playlists", "MelonPlaylists"),
    "movielens_ratings": ("jaxae.data.tfds_builders.movielens_ratings", "MovielensRatings"),
}
FILE_FORMAT = "array_record"


def require_tfds() -> Any:
  """Imports and returns ``tensorflow_datasets``; a clear JaxaeError when the extra is missing."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    from array_record.python import array_record_module  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise JaxaeError(f"the TFDS support needs the optional extra: pip install 'jaxae[tfds]' "
                     f"(tensorflow-datasets>=4.9.7 and array_record; TensorFlow is not needed) "
                     f"[{e}]") from None
  return tfds


def builder_class(name: str) -> type:
  """The builder class registered under ``name`` (imports tfds and the builder module)."""
  if name not in BUILDERS:
    raise JaxaeError(f"unknown TFDS builder {name!r}; known: {', '.join(sorted(BUILDERS))}")
  require_tfds()
  module, cls = BUILDERS[name]
  return getattr(importlib.import_module(module), cls)


def config_names(name: str) -> list[str]:
  """The builder configs of ``name`` (empty for a builder without configs)."""
  return [c.name for c in (builder_class(name).BUILDER_CONFIGS or [])]


def check_config(name: str, config: str | None) -> str | None:
  """Validates ``config`` for builder ``name``; ``None`` picks the first config (if any)."""
  names = config_names(name)
  if not names:
    if config is not None:
      raise JaxaeError(f"the TFDS builder {name} has no configs, got config {config!r}")
    return None
  if config is None:
    return names[0]
  if config not in names:
    raise JaxaeError(f"unknown config {config!r} of the TFDS builder {name}; known: "
                     f"{', '.join(names)}")
  return config


def relative_dir(name: str, config: str | None = None) -> str:
  """``name[/config]/version``: where a built dataset lives below its ``data_dir``."""
  config = check_config(name, config)
  version = str(builder_class(name).VERSION)
  return "/".join(p for p in (name, config, version) if p)


def is_remote(path: str | os.PathLike) -> bool:
  """True for ``gs://...``-style paths (anything with a URL scheme)."""
  return "://" in os.fspath(path)


def copy_tree(src: str | os.PathLike, dst: str | os.PathLike) -> None:
  """Copies the files of a (flat) dataset directory; either side may be remote (``gs://``).

  Remote paths go through ``etils.epath`` (which needs ``gcsfs`` or TensorFlow for ``gs://``).
  The copy is written to ``dst`` + a temporary suffix and renamed, so a reader never sees half a
  dataset.
  """
  from etils import epath  # pylint: disable=g-import-not-at-top

  src_p, dst_p = epath.Path(src), epath.Path(dst)
  tmp = epath.Path(f"{os.fspath(dst).rstrip('/')}.incomplete-{os.getpid()}")
  if tmp.exists():
    tmp.rmtree()
  tmp.mkdir(parents=True)
  for f in src_p.iterdir():
    if f.is_dir():
      raise DataError(f"{f}: unexpected folder inside a dataset directory")
    f.copy(tmp / f.name)
  if dst_p.exists():
    dst_p.rmtree()
  tmp.rename(dst_p)


def build(name: str, *, manual_dir: str | os.PathLike, data_dir: str | os.PathLike,
          config: str | None = None, overwrite: bool = False) -> str:
  """Builds ``name[/config]`` from the files in ``manual_dir`` into ``data_dir``; returns its dir.

  A remote ``data_dir`` (``gs://bucket/tfds``) is built on local disk first and then copied up
  (array_record cannot write to GCS directly).
  """
  tfds = require_tfds()
  config = check_config(name, config)
  cls = builder_class(name)
  manual_dir = os.fspath(manual_dir)
  if not os.path.isdir(manual_dir):
    raise DataError(f"{manual_dir}: the manual_dir does not exist. {cls.MANUAL_DOWNLOAD_INSTRUCTIONS}")
  cls.check_manual_dir(manual_dir, config)
  rel = relative_dir(name, config)
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  download_config = tfds.download.DownloadConfig(manual_dir=manual_dir, download_mode=mode)
  if not is_remote(data_dir):
    builder = cls(config=config, data_dir=os.fspath(data_dir), file_format=FILE_FORMAT)
    builder.download_and_prepare(download_config=download_config)
    return os.fspath(builder.data_dir)
  target = f"{os.fspath(data_dir).rstrip('/')}/{rel}"
  from etils import epath  # pylint: disable=g-import-not-at-top
  if not overwrite and (epath.Path(target) / "dataset_info.json").exists():
    return target
  staging = tempfile.mkdtemp(prefix="jaxae-tfds-")
  try:
    builder = cls(config=config, data_dir=staging, file_format=FILE_FORMAT)
    builder.download_and_prepare(download_config=download_config)
    copy_tree(builder.data_dir, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return target
