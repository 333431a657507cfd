"""Reader of the LightGCN / NGCF implicit-feedback files (``train.txt`` / ``test.txt``: one line per
user, ``user item item ...`` space separated) into :class:`~jaxae.data.matrix.Interactions`."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import scipy.sparse as sp

from jaxae.data.matrix import Interactions
from jaxae.data.readers.common import _WS, ReadReport, finish, open_bytes
from jaxae.errors import DataError, where

_MAX_ID = 2**31 - 1
# Largest id allowed regardless of the data, and how sparse (largest id / entries) ids may be.
_SPARSE_IDS_MIN = 1 << 20
_SPARSE_IDS_FACTOR = 100


@dataclasses.dataclass
class _Lines:
  """One parsed LightGCN file: the user of each non-blank line and its items."""

  users: np.ndarray         # [n_lines] int64
  items: np.ndarray         # [n_items_total] int64, file order
  counts: np.ndarray        # [n_lines] items on each line
  line_numbers: np.ndarray  # [n_lines] 1-based
  report: ReadReport


def _parse(path: str | os.PathLike) -> _Lines:
  """Tokenizes a whole file at once (numpy on bytes) and checks every id is a non-negative int."""
  data = open_bytes(path)
  if b"\r" in data:
    data = data.replace(b"\r\n", b"\n")
  if not data.endswith(b"\n"):
    data += b"\n"
  report = ReadReport(str(path), lines=data.count(b"\n"))
  if not data.strip():
    raise DataError(f"{path}: empty file (no records)")
  buf = np.frombuffer(data, np.uint8)
  nl = np.flatnonzero(buf == 10)
  edges = np.concatenate([[0], nl + 1])
  ws = _WS[buf]
  tok_starts = np.flatnonzero(~ws & np.concatenate([[True], ws[:-1]]))
  per_line = np.diff(np.searchsorted(tok_starts, edges))
  n_tok = len(tok_starts)
  vals = None
  try:
    vals = np.fromstring(data, dtype=np.int64, sep=" ")  # noqa: NPY201 (text mode)
  except ValueError:
    pass
  if vals is None or len(vals) != n_tok:
    tokens = data.split()
    vals = np.empty(n_tok, np.int64)
    for k, tok in enumerate(tokens):  # error path (or fromstring disagreement) only
      try:
        if not tok.lstrip(b"+-").isdigit():   # ASCII digits only: int() also takes "1_0", "١"
          raise ValueError(tok)
        vals[k] = int(tok)
      except (ValueError, OverflowError):
        line = int(np.searchsorted(np.cumsum(per_line), k, side="right")) + 1
        raise DataError(f"{where(path, line)}: id {tok.decode(errors='replace')!r} is not an "
                        f"integer") from None
  rec = np.flatnonzero(per_line > 0)
  report.skip("blank_lines", len(per_line) - len(rec))
  counts = per_line[rec]
  first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
  is_user = np.zeros(n_tok, bool)
  is_user[first] = True
  # Ids are dense 0-based indices: negative or absurdly large ones (an overflowing number reads
  # as the int64 maximum) cannot be.
  bad = (vals < 0) | (vals >= _MAX_ID)
  if bad.any():
    k = int(np.argmax(bad))
    line = int(rec[np.searchsorted(first, k, side="right") - 1]) + 1
    tok = data[tok_starts[k]:].split(None, 1)[0].decode(errors="replace")
    what = "negative" if vals[k] < 0 else f"too large (max {_MAX_ID - 1})"
    raise DataError(f"{where(path, line)}: id {tok} is {what}")
  return _Lines(vals[first], vals[~is_user], counts - 1, rec + 1, report)


def _to_interactions(lines: _Lines, n_users: int, n_items: int) -> tuple[Interactions,
                                                                          ReadReport]:
  rows = np.repeat(lines.users, lines.counts)
  m = sp.coo_matrix((np.ones(len(lines.items), np.float32), (rows, lines.items)),
                    shape=(n_users, n_items)).tocsr()
  m.sum_duplicates()  # repeated pairs add up here; the value is reset to 1 below (keep one).
  m.sort_indices()
  m.data[:] = 1.0
  report = dataclasses.replace(lines.report, interactions=int(m.nnz),
                               duplicates_merged=len(lines.items) - int(m.nnz))
  repeated_users = len(lines.users) - len(np.unique(lines.users))
  report.skip("repeated_user_lines_merged", repeated_users)
  inter = Interactions(m, np.arange(n_users, dtype=np.int64), np.arange(n_items, dtype=np.int64))
  return inter, report.log()


def _size(lines_list: list[_Lines]) -> tuple[int, int]:
  n_users = max(int(ln.users.max()) + 1 for ln in lines_list)
  n_items = max((int(ln.items.max()) + 1 if len(ln.items) else 0) for ln in lines_list)
  # Ids are dense indices: a few huge ids would make a huge, nearly empty vocabulary (8 bytes per
  # id up to the largest: gigabytes for one stray id), so refuse ids far beyond the data.
  for what, n, count in (("user", n_users, sum(len(ln.users) for ln in lines_list)),
                         ("item", n_items, sum(len(ln.items) for ln in lines_list))):
    if n > _SPARSE_IDS_MIN and n > _SPARSE_IDS_FACTOR * count:
      raise DataError(f"{lines_list[0].report.path}: {what} id {n - 1} is far beyond the {count} "
                      f"{what} entries read: LightGCN ids must be dense 0-based indices")
  return n_users, n_items


def _find(directory: str, stem: str) -> str:
  for name in (stem, stem + ".gz"):
    p = os.path.join(directory, name)
    if os.path.isfile(p):
      return p
  raise DataError(f"{directory}: no {stem} (LightGCN/NGCF directory needs train.txt and "
                  f"test.txt)")


def read_lightgcn(path: str | os.PathLike, return_report: bool = False):
  """Reads LightGCN/NGCF ``train.txt`` / ``test.txt`` (user id, then its item ids, one line/user).

  Ids are already 0-based integers, so rows are users ``0..max`` and columns items ``0..max``
  (ids that never occur get empty rows/columns); values are 1 (implicit feedback), no timestamps.
  Item order within a line does not matter; a line with only a user id is a user without items.
  A repeated item on a line, or a user with two lines, is merged (counted in the report).

  Args:
    path: a directory holding ``train.txt`` and ``test.txt`` (or their ``.gz``), or one file.
    return_report: also return the report(s).

  Returns:
    For a directory ``(train, test)`` sharing one row and one column vocabulary (the max ids over
    both files); for a file one ``Interactions``. With ``return_report``: ``((train, test),
    (train_report, test_report))`` or ``(interactions, report)``.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    parsed = [_parse(_find(path, "train.txt")), _parse(_find(path, "test.txt"))]
    n_users, n_items = _size(parsed)
    (train, r_train), (test, r_test) = (_to_interactions(p, n_users, n_items) for p in parsed)
    return finish((train, test), (r_train, r_test), return_report)
  parsed = _parse(path)
  inter, report = _to_interactions(parsed, *_size([parsed]))
  return finish(inter, report, return_report)
