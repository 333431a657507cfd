"""Reader of the Netflix / NVIDIA DeepRecommender rating format: ``user \\t item \\t rating`` lines
(optional 4th column: Unix time or ISO date), one file or a directory of files."""

from __future__ import annotations

import os

import numpy as np

from jaxae.data.readers.common import DelimitedText, RatingRecords, finish, open_bytes
from jaxae.errors import DataError

_NAMES = ["user id", "item id", "rating", "timestamp"]


def tsv_files(path: str | os.PathLike, extension: str | None = ".txt") -> list[str]:
  """The files a directory contributes, sorted by name (hidden files never).

  With ``extension`` only names ending in it (or in it plus ``.gz``) count, as DeepRecommender's
  data layer reads only ``*.txt``; ``None`` takes every regular file. A file path is returned as is.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    if not os.path.exists(path):
      raise DataError(f"{path}: no such file or directory")
    return [path]
  names = sorted(n for n in os.listdir(path)
                 if not n.startswith(".") and os.path.isfile(os.path.join(path, n)))
  if extension:
    names = [n for n in names if n.endswith(extension) or n.endswith(extension + ".gz")]
  if not names:
    want = f"*{extension} " if extension else ""
    raise DataError(f"{path}: directory has no {want}files to read")
  return [os.path.join(path, n) for n in names]


def read_tsv_records(path: str | os.PathLike,
                     rating_range: tuple[float, float] | None = None) -> RatingRecords:
  """The records of one tab-separated file, in file order (see :func:`read_tsv_dir`)."""
  data = open_bytes(path)
  table = DelimitedText(path, "\t", ncols=(3, 4), data=data)
  numeric_time = table.ncols == 3 or table.raw_field(0, 3).lstrip("+-").isdigit()
  if numeric_time:
    v = table.numbers(_NAMES[:table.ncols])
    cols = [v[:, j] for j in range(table.ncols)]
  else:  # 4th column is a date: read the fields as text.
    cols = [None] * 4
  users = table.int_column(0, "user id", cols[0])
  items = table.int_column(1, "item id", cols[1])
  ratings = table.float_column(2, "rating", cols[2], rating_range).astype(np.float32)
  times = table.time_column(3, cols[3]) if table.ncols == 4 else None
  return RatingRecords(users, items, ratings, times, table.line_numbers, table.report)


def read_tsv_dir(path: str | os.PathLike, rating_range: tuple[float, float] | None = None,
                 extension: str | None = ".txt", return_report: bool = False):
  """Reads a DeepRecommender-style directory (or one file) of ``user\\titem\\trating[\\ttime]``.

  All files of the directory (see :func:`tsv_files`) are concatenated in name order; a repeated
  (user, item) pair keeps the last rating (later file / later line wins) and is counted. Ids must
  be integers. The optional 4th column (Unix seconds or an ISO ``YYYY-MM-DD[ hh:mm:ss]`` date,
  taken as UTC) becomes ``timestamps``; either every file has it or none does.

  Args:
    path: a directory or a single file (gzip by magic bytes).
    rating_range: inclusive (lo, hi) bounds of valid ratings; ``None`` checks finiteness only.
    extension: file-name filter inside a directory (``None``: every non-hidden file).
    return_report: also return the combined :class:`~jaxae.data.readers.common.ReadReport`.

  Returns:
    ``Interactions`` (users x items), or ``(Interactions, ReadReport)``.
  """
  files = tsv_files(path, extension)
  parts = [read_tsv_records(f, rating_range) for f in files]
  has_time = [p.timestamps is not None for p in parts]
  if any(has_time) and not all(has_time):
    odd = files[has_time.index(not has_time[0])]
    raise DataError(f"{odd}: has {'a' if not has_time[0] else 'no'} timestamp column, unlike "
                    f"{files[0]}")
  records = parts[0] if len(parts) == 1 else RatingRecords.concat(parts, os.fspath(path))
  inter, report = records.to_interactions()
  return finish(inter, report, return_report)
