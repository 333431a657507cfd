"""Shared helpers of the file readers: opening (gzip by magic bytes), splitting, numeric parsing.

Every error raised here is a :class:`~jaxae.errors.DataError` whose message names the file and,
where there is one, the 1-based line number and the offending value.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import zlib

import numpy as np
from absl import logging

from jaxae.data.matrix import Interactions
from jaxae.errors import DataError, where

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(path: str | os.PathLike) -> bool:
  """True when the file starts with the gzip magic bytes (whatever its name)."""
  try:
    with open(path, "rb") as f:
      return f.read(2) == GZIP_MAGIC
  except OSError as e:
    raise DataError(f"{path}: cannot open ({e.strerror or e})") from None


def open_bytes(path: str | os.PathLike) -> bytes:
  """Reads a whole file, gunzipping it when it starts with the gzip magic bytes."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except FileNotFoundError:
    raise DataError(f"{path}: no such file") from None
  except IsADirectoryError:
    raise DataError(f"{path}: is a directory, expected a file") from None
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
  if data[:2] == GZIP_MAGIC:
    try:
      data = gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
      raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
  return data


def decode_text(data: bytes, path: str | os.PathLike, encoding: str = "utf-8") -> str:
  """Decodes bytes; a bad byte raises a DataError naming the line. A UTF-8 BOM is dropped."""
  if encoding.lower().replace("_", "-") in ("utf-8", "utf8") and data[:3] == b"\xef\xbb\xbf":
    data = data[3:]
  try:
    return data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data.count(b"\n", 0, e.start) + 1
    raise DataError(f"{where(path, line)}: not valid {encoding} text (byte "
                    f"{data[e.start:e.start + 1]!r} at offset {e.start})") from None
  except LookupError:
    raise DataError(f"{path}: unknown text encoding {encoding!r}") from None


def open_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
  """Reads a whole text file (gzip by magic bytes) and decodes it."""
  return decode_text(open_bytes(path), path, encoding)


@dataclasses.dataclass
class ReadReport:
  """What a reader read, merged and skipped; logged by every reader, returned on request.

  Attributes:
    path: the file (or directory) read.
    lines: lines in the file(s), header and blank lines included.
    interactions: stored entries of the result (after merging duplicates).
    duplicates_merged: repeated (row, column) pairs folded into one entry (how: ``merged_by``).
    skipped: count of dropped lines / entries by reason (e.g. ``{"blank_lines": 2}``).
  """

  path: str
  lines: int = 0
  interactions: int = 0
  duplicates_merged: int = 0
  skipped: dict[str, int] = dataclasses.field(default_factory=dict)
  merged_by: str = "last"    # "last": the last in file order kept; "sum": values added

  def skip(self, reason: str, count: int) -> None:
    """Adds ``count`` to ``skipped[reason]`` (zero counts are not recorded)."""
    if count:
      self.skipped[reason] = self.skipped.get(reason, 0) + int(count)

  def summary(self) -> str:
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items())) or "none"
    return (f"{self.path}: {self.lines} lines, {self.interactions} interactions, "
            f"{self.duplicates_merged} duplicates merged "
            f"({'last kept' if self.merged_by == 'last' else 'values summed'}), skipped: {skipped}")

  def log(self) -> "ReadReport":
    logging.info("read %s", self.summary())
    return self

  @classmethod
  def combine(cls, path: str, reports: list["ReadReport"]) -> "ReadReport":
    """Sums per-file reports into one for ``path`` (``interactions`` is set by the caller)."""
    out = cls(str(path))
    for r in reports:
      out.lines += r.lines
      out.duplicates_merged += r.duplicates_merged
      for k, v in r.skipped.items():
        out.skip(k, v)
    return out


# ---------------------------------------------------------------------------- delimited text
# Byte values treated as whitespace when splitting into tokens (ASCII whitespace).
_WS = np.zeros(256, bool)
_WS[[9, 10, 11, 12, 13, 32]] = True
_ASCII_WS = " \t\n\r\x0b\x0c"
# Placeholder byte for multi-character delimiters such as MovieLens "::".
_PLACEHOLDER = b"\x1f"
_CHUNK = 65536


def _describe_delimiter(delimiter: str | None) -> str:
  return "whitespace" if delimiter is None else repr(delimiter)


class DelimitedText:
  """A text file of records with a fixed number of delimited fields, checked and parsed vectorized.

  Construction reads the file (gzip by magic bytes), normalizes CRLF to LF, optionally takes the
  first non-blank line as the header, drops blank lines (counted in ``report.skipped``) and checks
  that every other line has the same number of fields (one of ``ncols``). Fields are then read as
  one numeric block (:meth:`numbers`, fastest, every field must be a number) or as strings
  (:meth:`fields`). Quoting is not supported: a field may not contain the delimiter.

  Attributes:
    path: the file, for messages.
    delimiter: the field separator as given (``None``: runs of spaces/tabs).
    ncols: number of fields of every record.
    header: the header fields (stripped) or ``None``.
    line_numbers: 1-based line number of each record, int64.
    report: a :class:`ReadReport` with ``lines`` and blank-line counts filled in.
  """

  def __init__(self, path: str | os.PathLike, delimiter: str | None, ncols=None,
               header: bool = False, encoding: str = "utf-8", data: bytes | None = None):
    self.path = str(path)
    self.delimiter = delimiter
    self.encoding = encoding
    data = open_bytes(path) if data is None else data
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8") and data[:3] == b"\xef\xbb\xbf":
      data = data[3:]
    if b"\r" in data:
      data = data.replace(b"\r\n", b"\n")
    if data and not data.endswith(b"\n"):
      data += b"\n"
    if delimiter is None:
      self._dbyte = None
    else:
      if not delimiter or "\n" in delimiter or "\r" in delimiter:
        raise DataError(f"{path}: invalid delimiter {delimiter!r}")
      d = delimiter.encode("ascii") if delimiter.isascii() else None
      if d is None:
        raise DataError(f"{path}: the delimiter must be ASCII, got {delimiter!r}")
      if len(d) > 1:
        data = data.replace(d, _PLACEHOLDER)
        d = _PLACEHOLDER
      self._dbyte = d
    self._data = data
    self.report = ReadReport(self.path, lines=data.count(b"\n"))
    if not data.strip():
      raise DataError(f"{self.path}: empty file (no records)")

    buf = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(buf == 10)
    starts = np.concatenate([[0], nl[:-1] + 1]).astype(np.int64)
    edges = np.concatenate([starts, [len(buf)]])
    ws = _WS[buf]
    if self._dbyte is not None:
      isdelim = buf == self._dbyte[0]
      ws_or_delim = ws | isdelim
      delims = np.diff(np.searchsorted(np.flatnonzero(isdelim), edges))
    else:
      ws_or_delim = ws
      delims = None
    tok_starts = np.flatnonzero(~ws_or_delim & np.concatenate([[True], ws_or_delim[:-1]]))
    tokens = np.diff(np.searchsorted(tok_starts, edges))
    blank = tokens == 0 if delims is None else (tokens == 0) & (delims == 0)
    if self._dbyte is None:
      fields = tokens
    else:
      fields = np.where(blank, 0, delims + 1)
    self._starts, self._ends = starts, nl.astype(np.int64)
    self._tokens_per_line = tokens
    self._delims_per_line = delims
    self.report.skip("blank_lines", int(blank.sum()))

    record = ~blank
    self.header = None
    self._first = 0  # index of the first record line
    if header:
      nz = np.flatnonzero(record)
      if len(nz):
        h = int(nz[0])
        self.header = [f.strip() for f in self._line_fields(h)]
        record[h] = False
        self._first = h + 1
    rec = np.flatnonzero(record)
    if len(rec) == 0:
      what = "only a header, no records" if self.header is not None else "no records"
      raise DataError(f"{self.path}: empty file ({what})")
    self._rec = rec
    self.line_numbers = rec + 1
    nf = fields[rec]
    allowed = (None if ncols is None else
               (int(ncols),) if np.ndim(ncols) == 0 else tuple(int(c) for c in ncols))
    first_n = int(nf[0])
    if allowed is not None and first_n not in allowed:
      self._column_error(0, first_n, allowed)
    bad = np.flatnonzero(nf != first_n)
    if len(bad):
      self._column_error(int(bad[0]), int(nf[bad[0]]), (first_n,))
    self.ncols = first_n
    self._nf_tokens = tokens[rec]
    self._fields_cache = None

  # ------------------------------------------------------------------ lines
  def __len__(self) -> int:
    return len(self._rec)

  def _line_bytes(self, line_index: int) -> bytes:
    return self._data[self._starts[line_index]:self._ends[line_index]]

  def _line_fields(self, line_index: int) -> list[str]:
    raw = self._line_bytes(line_index).decode(self.encoding, errors="replace")
    if self._dbyte is None:
      return raw.split()
    return raw.split(self._dbyte.decode("ascii"))

  def where(self, record: int) -> str:
    """``path:line`` of the ``record``-th record (0-based)."""
    return where(self.path, int(self.line_numbers[record]))

  def raw_field(self, record: int, col: int) -> str:
    """The text of field ``col`` of the ``record``-th record, for error messages."""
    f = self._line_fields(int(self._rec[record]))
    return f[col].strip() if col < len(f) else ""

  def _column_error(self, record: int, found: int, allowed: tuple[int, ...]):
    want = " or ".join(str(a) for a in allowed)
    raise DataError(f"{self.where(record)}: expected {want} columns separated by "
                    f"{_describe_delimiter(self.delimiter)}, found {found}")

  def column_index(self, col: int | str) -> int:
    """Position of a column given by position or (with a header) by name."""
    if isinstance(col, str):
      if self.header is None:
        raise DataError(f"{self.path}: column {col!r} named but the file has no header")
      lower = [h.lower() for h in self.header]
      if col in self.header or col.lower() in lower:
        j = self.header.index(col) if col in self.header else lower.index(col.lower())
        if j >= self.ncols:
          raise DataError(f"{self.where(0)}: column {col!r} is field {j + 1} of the header, but "
                          f"the records have {self.ncols} fields")
        return j
      raise DataError(f"{where(self.path, self._first)}: no column {col!r} in the header "
                      f"{self.header} (split at {_describe_delimiter(self.delimiter)})")
    col = int(col)
    if not 0 <= col < self.ncols:
      raise DataError(f"{self.path}: column {col} out of range, records have {self.ncols} "
                      f"columns")
    return col

  # ------------------------------------------------------------------ parsing
  def numbers(self, names: list[str] | None = None) -> np.ndarray:
    """All fields as one float64 ``[n_records, ncols]`` array (every field must be a number).

    ``names`` (one per column) only serve error messages.
    """
    bad = np.flatnonzero(self._nf_tokens != self.ncols)
    if len(bad):
      k = int(bad[0])
      raise DataError(f"{self.where(k)}: expected {self.ncols} numbers separated by "
                      f"{_describe_delimiter(self.delimiter)}, found {self._nf_tokens[k]} "
                      f"non-empty fields ({self._line_bytes(int(self._rec[k]))!r})")
    body = self._data[self._starts[self._first]:] if self._first < len(self._starts) else b""
    if self._dbyte is not None and not _WS[self._dbyte[0]]:
      body = body.replace(self._dbyte, b" ")
    n_tok = len(self) * self.ncols
    vals = None
    try:
      vals = np.fromstring(body, dtype=np.float64, sep=" ")  # noqa: NPY201 (text mode is fine)
    except ValueError:
      pass
    if vals is None or len(vals) != n_tok:
      tokens = np.array(body.split(), dtype=object)
      k = _first_unparsable(tokens, np.float64)
      if k is None:  # fromstring disagreed with the exact parser: trust the exact one.
        return tokens.astype(np.float64).reshape(len(self), self.ncols)
      r, c = divmod(k, self.ncols)
      what = f"{names[c]} " if names and c < len(names) else f"field {c + 1} "
      raise DataError(f"{self.where(r)}: {what}{tokens[k].decode(errors='replace')!r} is not a "
                      f"number")
    return vals.reshape(len(self), self.ncols)

  def fields(self, col: int) -> np.ndarray:
    """Field ``col`` of every record as an object array of ``str`` (surrounding blanks removed)."""
    if self._fields_cache is None:
      body = self._data[self._starts[self._first]:]
      text = decode_text(body, self.path, self.encoding)
      if self._dbyte is None:
        text = text.strip(_ASCII_WS)
        flat = np.array(re.split(f"[{re.escape(_ASCII_WS)}]+", text) if text else [],
                        dtype=object)
        per_line = self._tokens_per_line[self._first:]
      else:
        d = self._dbyte.decode("ascii")
        blanks = "".join(c for c in " \t" if c != d)
        if any(c in text for c in blanks):
          text = re.sub(f"[{blanks}]*([{re.escape(d)}\n])[{blanks}]*", r"\1", text)
          text = text.lstrip(blanks)
        flat = np.array(text.replace(d, "\n").split("\n")[:-1], dtype=object)
        per_line = self._delims_per_line[self._first:] + 1
      line_of_piece = np.repeat(np.arange(len(per_line)) + self._first, per_line)
      is_rec = np.zeros(len(self._starts), bool)
      is_rec[self._rec] = True
      self._fields_cache = flat[is_rec[line_of_piece]].reshape(len(self), self.ncols)
    return self._fields_cache[:, col]

  # ------------------------------------------------------------------ typed columns
  def int_column(self, col: int, what: str, values: np.ndarray | None = None) -> np.ndarray:
    """Column ``col`` as int64 ids; ``values`` is the column of :meth:`numbers` when used."""
    if values is not None:
      ok = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**53)
      if not ok.all():
        k = int(np.argmin(ok))
        if np.isfinite(values[k]) and values[k] == np.floor(values[k]):
          return self.int_column(col, what)   # beyond 2**53 a float is inexact: read the text
        raise DataError(f"{self.where(k)}: {what} {self.raw_field(k, col)!r} is not an integer")
      return values.astype(np.int64)
    tokens = self.fields(col)
    k = _first_unparsable(tokens, np.int64)
    if k is not None:
      raise DataError(f"{self.where(k)}: {what} {tokens[k]!r} is not an integer")
    return tokens.astype(np.int64)

  def float_column(self, col: int, what: str, values: np.ndarray | None = None,
                   value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Column ``col`` as finite float64 values, optionally checked against ``value_range``.

    NaN, inf, a non-number or a value outside ``value_range`` (inclusive) raises a DataError
    naming the file, the line and the value.
    """
    if values is None:
      tokens = self.fields(col)
      k = _first_unparsable(tokens, np.float64)
      if k is not None:
        raise DataError(f"{self.where(k)}: {what} {tokens[k]!r} is not a number")
      values = tokens.astype(np.float64)
    finite = np.isfinite(values)
    ok = finite
    if value_range is not None:
      lo, hi = value_range
      ok = finite & (values >= lo) & (values <= hi)
    if not ok.all():
      k = int(np.argmin(ok))
      raw = self.raw_field(k, col)
      if not finite[k]:
        raise DataError(f"{self.where(k)}: {what} {raw!r} is not a finite number")
      raise DataError(f"{self.where(k)}: {what} {raw!r} is outside the range "
                      f"[{value_range[0]:g}, {value_range[1]:g}]")
    return values

  def time_column(self, col: int, values: np.ndarray | None = None) -> np.ndarray:
    """Column ``col`` as int64 seconds: integers, or ISO dates / date-times (taken as UTC)."""
    if values is not None:
      return self.int_column(col, "timestamp", values)
    tokens = self.fields(col)
    if _first_unparsable(tokens[:1], np.int64) is None:
      return self.int_column(col, "timestamp")
    as_str = tokens.astype(str)
    k = _first_unparsable(as_str, "datetime64[s]")
    if k is None:
      # numpy reads a bare number as a year: insist on dates that look like dates.
      looks_like_date = np.char.find(as_str, "-") > 0
      k = None if looks_like_date.all() else int(np.argmin(looks_like_date))
    if k is not None:
      raise DataError(f"{self.where(k)}: timestamp {tokens[k]!r} is neither an integer nor an "
                      f"ISO date")
    return as_str.astype("datetime64[s]").astype(np.int64)


def _not_plain(tokens: np.ndarray) -> np.ndarray:
  """True for tokens with a non-ASCII character or an underscore (vectorized).

  Python's number parsers, which numpy uses for text, read ``"١"`` or ``"１"`` as 1 and ``"1_0"`` as
  10; no rating file writes numbers like that, so numeric fields must be plain ASCII.
  """
  arr = np.asarray(tokens)
  if arr.dtype == object:
    arr = arr.astype(bytes if len(arr) and isinstance(arr[0], bytes) else str)
  if len(arr) == 0 or arr.dtype.itemsize == 0:
    return np.zeros(len(arr), bool)
  codes = np.ascontiguousarray(arr).view(np.uint32 if arr.dtype.kind == "U" else np.uint8).reshape(len(arr), -1)
  return ((codes >= 128) | (codes == ord("_"))).any(axis=1)


def _first_unparsable(tokens: np.ndarray, dtype) -> int | None:
  """Index of the first token that does not convert to ``dtype`` (chunked, exact numpy rules;
  numbers must also be plain ASCII without underscores, see :func:`_not_plain`)."""
  numeric = np.dtype(dtype).kind in "iuf"
  for lo in range(0, len(tokens), _CHUNK):
    chunk = tokens[lo:lo + _CHUNK]
    odd = np.flatnonzero(_not_plain(chunk)) if numeric else np.zeros(0, np.int64)
    limit = int(odd[0]) if len(odd) else len(chunk)
    try:
      chunk[:limit].astype(dtype)
      if limit < len(chunk):
        return lo + limit
      continue
    except (ValueError, TypeError, OverflowError):
      pass
    for i in range(limit):
      try:
        chunk[i:i + 1].astype(dtype)
      except (ValueError, TypeError, OverflowError):
        return lo + i
    if limit < len(chunk):
      return lo + limit
  return None


# ---------------------------------------------------------------------------- records
@dataclasses.dataclass
class RatingRecords:
  """Parsed (user, item[, rating][, timestamp]) records in file order, before any merging.

  Splits that are defined on file order (the canonical ml-100k folds) work on these; everything
  else uses :meth:`to_interactions`.
  """

  users: np.ndarray
  items: np.ndarray
  ratings: np.ndarray | None
  timestamps: np.ndarray | None
  line_numbers: np.ndarray
  report: ReadReport

  def __len__(self) -> int:
    return len(self.users)

  def take(self, index) -> "RatingRecords":
    """The records at ``index`` (file order kept when ``index`` is sorted)."""
    pick = lambda a: None if a is None else a[index]  # noqa: E731
    return RatingRecords(self.users[index], self.items[index], pick(self.ratings),
                         pick(self.timestamps), self.line_numbers[index],
                         dataclasses.replace(self.report, skipped=dict(self.report.skipped)))

  @classmethod
  def concat(cls, parts: list["RatingRecords"], path: str) -> "RatingRecords":
    """Joins records of several files in order; ratings / timestamps kept only if all have them."""
    cat = lambda xs: np.concatenate(xs)  # noqa: E731
    ratings = (None if any(p.ratings is None for p in parts)
               else cat([p.ratings for p in parts]))
    times = (None if any(p.timestamps is None for p in parts)
             else cat([p.timestamps for p in parts]))
    return cls(cat([p.users for p in parts]), cat([p.items for p in parts]), ratings, times,
               cat([p.line_numbers for p in parts]),
               ReadReport.combine(path, [p.report for p in parts]))

  def to_interactions(self, row_ids=None, col_ids=None, log: bool = True,
                      duplicates: str = "last") -> tuple[Interactions, ReadReport]:
    """Builds the CSR; repeated (user, item) pairs are merged and counted: ``duplicates="last"``
    keeps the last in file order, ``"sum"`` adds their values (counts of events without a value
    column; the latest timestamp is kept).

    ``row_ids`` / ``col_ids`` fix the vocabularies (default: the sorted unique ids present).
    """
    if duplicates not in ("last", "sum"):
      raise DataError(f"{self.report.path}: duplicates must be 'last' or 'sum', got "
                      f"{duplicates!r}")
    inter = Interactions.from_coo(self.users, self.items, self.ratings, self.timestamps,
                                  row_ids=row_ids, col_ids=col_ids, duplicates=duplicates,
                                  source=self.report.path)
    report = dataclasses.replace(self.report, skipped=dict(self.report.skipped),
                                 interactions=inter.nnz, merged_by=duplicates,
                                 duplicates_merged=len(self) - inter.nnz)
    return inter, report.log() if log else report


def finish(inter, report: ReadReport, return_report: bool):
  """What every reader returns: the result, or ``(result, report)`` with ``return_report``."""
  return (inter, report) if return_report else inter
