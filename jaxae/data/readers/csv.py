"""Reader of generic delimited rating files: user, item[, rating][, timestamp] columns picked by
header name or by position, into :class:`~jaxae.data.matrix.Interactions`."""

from __future__ import annotations

import os

import numpy as np

from jaxae.data.readers.common import DelimitedText, RatingRecords, finish, open_bytes
from jaxae.errors import DataError, where


def _first_line(data: bytes, delimiter: str | None, encoding: str) -> list[str]:
  for line in data[:1 << 20].split(b"\n"):
    if line.strip():
      text = line.decode(encoding, errors="replace").rstrip("\r").lstrip("\ufeff")
      return [f.strip() for f in (text.split() if delimiter is None else text.split(delimiter))]
  return []


def _is_number(text: str, integer: bool) -> bool:
  try:
    (int if integer else float)(text)
    return True
  except ValueError:
    return False


def _detect_header(fields: list[str], cols: dict[str, int | str | None], ids: str) -> bool:
  """A header is assumed when a field of the first line that should be numeric is not a number."""
  for role, col in cols.items():
    if col is None or not isinstance(col, int) or col >= len(fields):
      continue
    if role in ("user", "item") and ids != "int":
      continue
    if role == "timestamp":
      if not _is_number(fields[col], True):
        try:
          np.datetime64(fields[col], "s")
        except ValueError:
          return True
      continue
    if not _is_number(fields[col], role in ("user", "item")):
      return True
  return False


def read_csv(path: str | os.PathLike, user_col: int | str = 0, item_col: int | str = 1,
             rating_col: int | str | None = None, timestamp_col: int | str | None = None,
             delimiter: str | None = ",", header: bool | str = "auto", ids: str = "int",
             rating_range: tuple[float, float] | None = None, encoding: str = "utf-8",
             duplicates: str = "last", return_report: bool = False):
  """Reads a delimited file of user, item[, rating][, timestamp] records (other columns ignored).

  Every line must have the same number of fields; there is no quoting (a field may not contain
  the delimiter); blanks around fields are ignored. A repeated (user, item) pair is merged as
  ``duplicates`` says and counted in the report.

  Args:
    path: the file (gzip by magic bytes).
    user_col, item_col, rating_col, timestamp_col: a 0-based position or a header name (exact,
      else case-insensitive). ``rating_col=None`` gives implicit feedback (all values 1);
      ``timestamp_col=None`` gives no timestamps. Timestamps are integers (Unix seconds) or ISO
      dates / date-times (taken as UTC).
    delimiter: the field separator (``"\\t"``, ``","``, ``"::"``...); ``None``: runs of blanks.
    header: ``True`` / ``False``, or ``"auto"``: a header is read when a column is named, or when
      a field of the first line that must be numeric (ids with ``ids="int"``, rating, timestamp)
      is not a number.
    ids: ``"int"`` (ids must be integers) or ``"str"`` (ids kept as strings).
    rating_range: inclusive (lo, hi) bounds of valid ratings; ``None`` checks finiteness only.
    encoding: text encoding of the file.
    duplicates: "last" (the last record of a repeated pair kept) or "sum" (their values added:
      event counts without a rating column, play counts split over lines; the latest timestamp).
    return_report: also return the :class:`~jaxae.data.readers.common.ReadReport`.

  Returns:
    ``Interactions`` (users x items), or ``(Interactions, ReadReport)``.
  """
  if ids not in ("int", "str"):
    raise DataError(f"{path}: ids must be 'int' or 'str', got {ids!r}")
  if duplicates not in ("last", "sum"):
    raise DataError(f"{path}: duplicates must be 'last' or 'sum', got {duplicates!r}")
  cols = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": timestamp_col}
  data = open_bytes(path)
  if header == "auto":
    named = any(isinstance(c, str) for c in cols.values())
    header = named or _detect_header(_first_line(data, delimiter, encoding), cols, ids)
  table = DelimitedText(path, delimiter, ncols=None, header=bool(header), encoding=encoding,
                        data=data)
  idx = {role: table.column_index(c) for role, c in cols.items() if c is not None}
  seen: dict[int, str] = {}
  for role, j in idx.items():
    if j in seen:
      raise DataError(f"{path}: the {seen[j]} and {role} columns are the same column ({j})")
    seen[j] = role

  values = None
  if ids == "int":
    try:  # fast path when every field of the file is numeric
      values = table.numbers()
    except DataError:
      values = None
  col = lambda role: None if values is None else values[:, idx[role]]  # noqa: E731

  def id_column(role: str) -> np.ndarray:
    what = f"{role} id"
    if ids == "str":
      out = table.fields(idx[role]).astype(str)
      empty = out == ""
      if empty.any():
        raise DataError(f"{table.where(int(np.argmax(empty)))}: empty {what}")
      return out
    try:
      return table.int_column(idx[role], what, col(role))
    except DataError:
      if values is None:
        raise
      return table.int_column(idx[role], what)  # exact message (or huge ids) from the text

  users, items = id_column("user"), id_column("item")
  ratings = None
  if "rating" in idx:
    ratings = table.float_column(idx["rating"], "rating", col("rating"),
                                 rating_range).astype(np.float32)
  times = None
  if "timestamp" in idx:
    times = table.time_column(idx["timestamp"], col("timestamp"))
  records = RatingRecords(users, items, ratings, times, table.line_numbers, table.report)
  if not len(records):
    raise DataError(f"{where(path)}: empty file (no records)")
  inter, report = records.to_interactions(duplicates=duplicates)
  return finish(inter, report, return_report)
