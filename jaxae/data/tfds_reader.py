"""Reads a split built by ``jaxae.data.tfds_builders`` back into arrays / `Interactions`.

No TensorFlow: ``tfds.builder_from_directory`` gives the split's array_record shards and record
ranges (its file instructions, so slices like ``"train[:10%]"`` work), the records are read by
range with array_record's random-access reader in large chunks, each record is parsed with the
protobuf ``Example`` message that tfds ships, and every feature becomes one numpy column (scalars)
or a CSR-like ``(indptr, values)`` pair (sequences) for the whole split at once. (tfds's own
``as_data_source`` decoding is ~6x slower per record and its no-decode mode needs TensorFlow.)

A remote ``data_dir`` (``gs://bucket/tfds``) is first copied to a local cache folder (array_record
reads local files only); the copy is reused while the remote ``dataset_info.json`` is unchanged.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import numpy as np

from jaxae.data import tfds_builders
from jaxae.data.matrix import Interactions
from jaxae.errors import DataError

_CHUNK = 65536


def default_cache_dir() -> str:
  """Where remote datasets are copied: ``$JAXAE_TFDS_CACHE`` or ``~/.cache/jaxae/tfds``."""
  return os.environ.get("JAXAE_TFDS_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "jaxae", "tfds")


def dataset_dir(name: str, data_dir: str | os.PathLike, *, config: str | None = None,
                cache_dir: str | os.PathLike | None = None) -> str:
  """The local folder of the built ``name[/config]`` (copied from a remote ``data_dir`` first)."""
  rel = tfds_builders.relative_dir(name, config)
  src = f"{os.fspath(data_dir).rstrip('/')}/{rel}"
  if not tfds_builders.is_remote(data_dir):
    if not os.path.isfile(os.path.join(src, "dataset_info.json")):
      raise DataError(f"{src}: no built dataset here (dataset_info.json missing); build it with "
                      f"python -m jaxae.data.tfds_builders {name} --manual_dir DIR --data_dir "
                      f"{os.fspath(data_dir)}" + (f" --config {config}" if config else ""))
    return src
  return stage(src, os.path.join(os.fspath(cache_dir or default_cache_dir()), rel))


def stage(src: str, local: str) -> str:
  """Copies the dataset folder ``src`` to ``local`` unless an identical copy is already there."""
  from etils import epath  # pylint: disable=g-import-not-at-top

  info = epath.Path(src) / "dataset_info.json"
  if not info.exists():
    raise DataError(f"{src}: no built dataset here (dataset_info.json missing)")
  local_info = os.path.join(local, "dataset_info.json")
  if os.path.isfile(local_info):
    with open(local_info, encoding="utf-8") as f:
      if f.read() == info.read_text():
        return local
  tfds_builders.copy_tree(src, local)
  return local


def read_columns(name: str, split: str, data_dir: str | os.PathLike, *, config: str | None = None,
                 cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
  """Every feature of a built split as numpy columns, in the split's stored order.

  Args:
    name, config: the builder (``melon_playlists``, ``movielens_ratings`` + config).
    split: a split name, or any tfds split slice such as ``"train[:10%]"``.
    data_dir, cache_dir: where it was built; see :func:`dataset_dir`.

  Returns:
    feature name -> int64 / float32 / str array for scalar features, or ``(indptr int64 [E + 1],
    values)`` for sequence features (``E`` examples).
  """
  tfds = tfds_builders.require_tfds()
  # pylint: disable=g-import-not-at-top
  from array_record.python import array_record_module
  from tensorflow_datasets.proto import tf_example_pb2
  # pylint: enable=g-import-not-at-top

  path = dataset_dir(name, data_dir, config=config, cache_dir=cache_dir)
  info = tfds.builder_from_directory(path).info
  try:
    instructions = info.splits[split].file_instructions
  except (KeyError, ValueError) as e:
    raise DataError(f"{path}: cannot read split {split!r} ({e}); built splits: "
                    f"{', '.join(sorted(info.splits))}") from None
  specs = _feature_specs(info.features, path)
  parsed: list[Any] = []
  for fi in instructions:                        # a loop over shard files and record chunks
    reader = array_record_module.ArrayRecordReader(os.fspath(fi.filename))
    try:
      end = fi.examples_in_shard if fi.take < 0 else fi.skip + fi.take
      for lo in range(fi.skip, end, _CHUNK):
        raw = reader.read(lo, min(end, lo + _CHUNK))
        parsed.extend(tf_example_pb2.Example.FromString(r).features.feature for r in raw)
    finally:
      reader.close()
  return {key: _column(parsed, key, kind, seq) for key, (kind, seq) in specs.items()}


def _feature_specs(features, path: str) -> dict[str, tuple[str, bool]]:
  """feature name -> (protobuf list kind, is a sequence) for a flat FeaturesDict."""
  specs = {}
  for key, info in features.get_tensor_info().items():
    dtype = np.dtype(info.np_dtype) if info.np_dtype is not object else np.dtype(object)
    if dtype.kind in "iub":
      kind = "int64_list"
    elif dtype.kind == "f":
      kind = "float_list"
    elif dtype.kind in "OSU":
      kind = "bytes_list"
    else:
      raise DataError(f"{path}: feature {key!r} has an unsupported dtype {dtype}")
    if len(info.shape) > 1 or (len(info.shape) == 1 and info.shape[0] is not None):
      raise DataError(f"{path}: feature {key!r} has an unsupported shape {info.shape}")
    specs[key] = (kind, len(info.shape) == 1)
  return specs


def _column(parsed: list[Any], key: str, kind: str, seq: bool):
  lists = [getattr(f[key], kind).value for f in parsed]   # one protobuf field per example
  if not seq:
    if kind == "bytes_list":
      return np.array([v[0].decode("utf-8") for v in lists], dtype=str) if lists else (
          np.zeros(0, "<U1"))
    dtype = np.int64 if kind == "int64_list" else np.float32
    return np.fromiter((v[0] for v in lists), dtype, len(lists))
  lengths = np.fromiter(map(len, lists), np.int64, len(lists))
  indptr = np.zeros(len(lists) + 1, np.int64)
  np.cumsum(lengths, out=indptr[1:])
  flat = itertools.chain.from_iterable(lists)
  if kind == "bytes_list":
    values = np.array([b.decode("utf-8") for b in flat], dtype=str)
    if not len(values):
      values = np.zeros(0, "<U1")
  else:
    values = np.fromiter(flat, np.int64 if kind == "int64_list" else np.float32, int(indptr[-1]))
  return indptr, values


# ------------------------------------------------------------------------------------ datasets
def read_ratings(data_dir: str | os.PathLike, *, config: str = "100k", split: str = "train",
                 cache_dir: str | os.PathLike | None = None) -> Interactions:
  """A ``movielens_ratings`` split as users x movies ratings (with timestamps).

  Rows / columns are the sorted distinct raw user / movie ids, like ``read_movielens``.
  """
  c = read_columns("movielens_ratings", split, data_dir, config=config, cache_dir=cache_dir)
  return Interactions.from_coo(c["user_id"], c["movie_id"], c["rating"], c["timestamp"],
                               duplicates="error", source=f"movielens_ratings/{config}:{split}")


def read_playlists(data_dir: str | os.PathLike, split: str, *,
                   cache_dir: str | os.PathLike | None = None):
  """A ``melon_playlists`` split as :class:`jaxae.data.readers.melon.Playlists`, in file order."""
  from jaxae.data.readers import melon  # pylint: disable=g-import-not-at-top

  c = read_columns("melon_playlists", split, data_dir, cache_dir=cache_dir)
  order = np.argsort(c["index"], kind="stable")
  song_ptr, songs = melon.csr_take(*c["songs"], order)
  tag_ptr, tags = melon.csr_take(*c["tags"], order)
  source = f"melon_playlists:{split}"
  return melon.Playlists(
      ids=c["id"][order], titles=c["title"][order].tolist(), like_cnt=c["like_cnt"][order],
      updt_date=melon.parse_updt_dates(c["updt_date"][order], source), song_indptr=song_ptr,
      songs=songs, tag_indptr=tag_ptr, tags=tags, source=source)


def read_split(name: str, split: str, data_dir: str | os.PathLike, *, config: str | None = None,
               field: str = "songs", cache_dir: str | os.PathLike | None = None) -> Interactions:
  """A built split as :class:`Interactions`.

  ``movielens_ratings``: users x movies ratings. ``melon_playlists``: playlists x songs (``field
  = "songs"``) or playlists x tags (``field = "tags"``), binary, rows in file order.
  """
  if name == "movielens_ratings":
    return read_ratings(data_dir, config=tfds_builders.check_config(name, config), split=split,
                        cache_dir=cache_dir)
  if name == "melon_playlists":
    tfds_builders.check_config(name, config)
    playlists = read_playlists(data_dir, split, cache_dir=cache_dir)
    if field == "songs":
      return playlists.song_matrix()
    if field == "tags":
      return playlists.tag_matrix()
    raise DataError(f"melon_playlists: field must be 'songs' or 'tags', got {field!r}")
  tfds_builders.builder_class(name)            # raises for an unknown name
  raise DataError(f"no Interactions reader for the TFDS dataset {name!r}")
