"""Reader of the MovieLens rating files (ml-100k ``u.data``, ml-1m/10m ``ratings.dat``,
ml-20m/latest ``ratings.csv``) into :class:`~jaxae.data.matrix.Interactions` (users x movies)."""

from __future__ import annotations

import os

import numpy as np

from jaxae.data.readers.common import DelimitedText, RatingRecords, finish, open_bytes
from jaxae.errors import DataError, where

# format name -> (delimiter, has a header line)
_FORMATS = {"tab": ("\t", False), "dat": ("::", False), "csv": (",", True)}
CSV_HEADER = ("userId", "movieId", "rating", "timestamp")
_NAMES = ["user id", "movie id", "rating", "timestamp"]


def movielens_format(path: str | os.PathLike, data: bytes) -> str:
  """``"tab"`` (ml-100k u.data, u1.base ...), ``"dat"`` (``::``) or ``"csv"``.

  Decided by the file name (``.gz`` ignored) and, for other names, by the first non-blank line.
  """
  name = os.path.basename(os.fspath(path)).lower()
  if name.endswith(".gz"):
    name = name[:-3]
  if name == "u.data" or name.endswith((".data", ".base", ".test")):
    return "tab"
  if name.endswith(".dat"):
    return "dat"
  if name.endswith(".csv"):
    return "csv"
  first = next((ln for ln in data[:65536].split(b"\n") if ln.strip()), b"")
  if b"::" in first:
    return "dat"
  if b"," in first:
    return "csv"
  if b"\t" in first:
    return "tab"
  raise DataError(f"{where(path, 1)}: not a MovieLens rating file (expected user, movie, rating, "
                  f"timestamp separated by a tab, '::' or ',')")


def read_movielens_records(path: str | os.PathLike,
                           rating_range: tuple[float, float] | None = None) -> RatingRecords:
  """The (user, movie, rating, timestamp) records of a MovieLens rating file, in file order.

  Args:
    path: ``u.data`` / ``ratings.dat`` / ``ratings.csv`` (optionally gzip-compressed).
    rating_range: inclusive (lo, hi); ratings outside raise. ``None`` checks only that ratings
      are finite numbers.

  Raises:
    DataError: naming file and line for a wrong column count, a non-integer id or timestamp, a
      NaN / inf / non-numeric / out-of-range rating, an unexpected CSV header or an empty file.
  """
  data = open_bytes(path)
  if not data.strip():
    raise DataError(f"{path}: empty file (no records)")
  fmt = movielens_format(path, data)
  delimiter, header = _FORMATS[fmt]
  if fmt == "csv":
    first = next((ln for ln in data[:65536].split(b"\n") if ln.strip()), b"")
    header = not first.split(b",")[0].strip().lstrip(b"\xef\xbb\xbf").isdigit()
  table = DelimitedText(path, delimiter, ncols=4, header=header, data=data)
  if table.header is not None and [h.lower() for h in table.header] != [
      h.lower() for h in CSV_HEADER]:
    raise DataError(f"{where(path, table.line_numbers[0] - 1)}: expected the header "
                    f"{','.join(CSV_HEADER)}, found {','.join(table.header)}")
  v = table.numbers(_NAMES)
  users = table.int_column(0, "user id", v[:, 0])
  items = table.int_column(1, "movie id", v[:, 1])
  ratings = table.float_column(2, "rating", v[:, 2], rating_range).astype(np.float32)
  times = table.time_column(3, v[:, 3])
  return RatingRecords(users, items, ratings, times, table.line_numbers, table.report)


def read_movielens(path: str | os.PathLike, rating_range: tuple[float, float] | None = None,
                   return_report: bool = False):
  """Reads a MovieLens rating file into users x movies :class:`Interactions` with timestamps.

  Rows are the raw user ids (sorted), columns the raw movie ids (sorted); values are the float
  ratings (half stars kept), ``timestamps`` the Unix times. A repeated (user, movie) pair keeps the
  last rating in file order and is counted in the report.

  Args:
    path: see :func:`read_movielens_records`.
    rating_range: see :func:`read_movielens_records`.
    return_report: also return the :class:`~jaxae.data.readers.common.ReadReport`.

  Returns:
    ``Interactions``, or ``(Interactions, ReadReport)`` with ``return_report``.
  """
  inter, report = read_movielens_records(path, rating_range).to_interactions()
  return finish(inter, report, return_report)
