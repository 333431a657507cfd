"""`Interactions`: a sparse rows x columns matrix with the raw ids of both axes.

The one in-memory form every reader produces and every later stage consumes. Values live in a
scipy CSR matrix (float32 values, int32/int64 indices); ``row_ids`` / ``col_ids`` hold the raw id
of each index (numpy arrays of int64 or str). Row-major means "one row per user" for user-based
models; :meth:`Interactions.T` gives the item-major view (I-AutoRec, song-as-user).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

from jaxae.errors import DataError

_FORMAT_VERSION = 1


def _as_id_array(ids) -> np.ndarray:
  arr = np.asarray(ids)
  if arr.dtype.kind in "iu":
    return arr.astype(np.int64, copy=False)
  if arr.dtype.kind in "US":
    return arr.astype(str)
  if arr.dtype.kind == "O":
    return np.asarray([str(x) for x in arr.tolist()])
  raise DataError(f"ids must be integers or strings, got dtype {arr.dtype}")


@dataclasses.dataclass(frozen=True)
class Interactions:
  """A CSR interaction matrix plus the raw-id <-> index maps of both axes.

  Attributes:
    matrix: ``scipy.sparse.csr_matrix`` of shape (n_rows, n_cols), float32 values, sorted indices,
      no duplicates, no explicit zeros unless they were real ratings (binarize drops them).
    row_ids: raw id of each row index (int64 or str array, length n_rows).
    col_ids: raw id of each column index (int64 or str array, length n_cols).
    timestamps: optional CSR aligned with ``matrix`` (same indptr/indices) holding int64 times.
  """

  matrix: sp.csr_matrix
  row_ids: np.ndarray
  col_ids: np.ndarray
  timestamps: sp.csr_matrix | None = None

  def __post_init__(self):
    m = self.matrix
    if not sp.issparse(m) or m.format != "csr":
      object.__setattr__(self, "matrix", sp.csr_matrix(m))
    object.__setattr__(self, "row_ids", _as_id_array(self.row_ids))
    object.__setattr__(self, "col_ids", _as_id_array(self.col_ids))
    if self.matrix.shape != (len(self.row_ids), len(self.col_ids)):
      raise DataError(
          f"matrix shape {self.matrix.shape} does not match {len(self.row_ids)} row ids x "
          f"{len(self.col_ids)} column ids")

  # ---------------------------------------------------------------- construction
  @classmethod
  def from_coo(cls, rows, cols, values=None, timestamps=None, *, row_ids=None, col_ids=None,
               duplicates: str = "last", source: str = "<arrays>") -> "Interactions":
    """Builds from raw-id triples, vectorized.

    Args:
      rows, cols: raw ids (any int or str arrays) of each interaction.
      values: ratings; ``None`` means implicit (all ones).
      timestamps: optional per-interaction int64 times.
      row_ids, col_ids: optional fixed id vocabularies (order = index). Raw ids not in them raise.
        When omitted the vocabulary is the sorted unique ids seen.
      duplicates: what to do with a repeated (row, col) pair: "last" keeps the last occurrence
        (file order), "sum" adds the values, "error" raises.
      source: file name used in error messages.
    """
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    n = len(rows)
    if len(cols) != n:
      raise DataError(f"{source}: {n} row ids but {len(cols)} column ids")
    vals = (np.ones(n, np.float32) if values is None
            else np.asarray(values, dtype=np.float32))
    if len(vals) != n:
      raise DataError(f"{source}: {n} interactions but {len(vals)} values")
    r_vocab, r_idx = _index(rows, row_ids, "row", source)
    c_vocab, c_idx = _index(cols, col_ids, "column", source)
    ts = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
    shape = (len(r_vocab), len(c_vocab))

    # Order by (row, col, file position) so "last" can keep the final occurrence.
    order = np.lexsort((np.arange(n), c_idx, r_idx))
    r_s, c_s, v_s = r_idx[order], c_idx[order], vals[order]
    t_s = None if ts is None else ts[order]
    if n:
      new = np.ones(n, bool)
      new[1:] = (r_s[1:] != r_s[:-1]) | (c_s[1:] != c_s[:-1])
      if not new.all():
        if duplicates == "error":
          k = int(np.argmin(new))
          raise DataError(f"{source}: duplicate interaction (row {r_vocab[r_s[k]]}, column "
                          f"{c_vocab[c_s[k]]})")
        if duplicates == "sum":
          starts = np.flatnonzero(new)
          v_s = np.add.reduceat(v_s, starts).astype(np.float32)
          keep = starts
          r_s, c_s = r_s[keep], c_s[keep]
          if t_s is not None:
            t_s = np.maximum.reduceat(t_s, starts)
        elif duplicates == "last":
          last = np.ones(n, bool)
          last[:-1] = new[1:]
          r_s, c_s, v_s = r_s[last], c_s[last], v_s[last]
          if t_s is not None:
            t_s = t_s[last]
        else:
          raise ValueError(f"duplicates must be last|sum|error, got {duplicates!r}")
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(np.bincount(r_s, minlength=shape[0]), out=indptr[1:])
    idx_dtype = np.int32 if max(shape[1], len(c_s)) < 2**31 - 1 else np.int64
    m = sp.csr_matrix((v_s.astype(np.float32), c_s.astype(idx_dtype), indptr.astype(idx_dtype)),
                      shape=shape)
    t = None
    if t_s is not None:
      t = sp.csr_matrix((t_s, m.indices, m.indptr), shape=shape)
    return cls(m, r_vocab, c_vocab, t)

  # ---------------------------------------------------------------- properties
  @property
  def shape(self) -> tuple[int, int]:
    return self.matrix.shape

  @property
  def nnz(self) -> int:
    return int(self.matrix.nnz)

  def row_lengths(self) -> np.ndarray:
    return np.diff(self.matrix.indptr)

  def col_counts(self) -> np.ndarray:
    return np.bincount(self.matrix.indices, minlength=self.shape[1])

  def __repr__(self) -> str:
    return (f"Interactions({self.shape[0]} rows x {self.shape[1]} cols, nnz={self.nnz}, "
            f"timestamps={'yes' if self.timestamps is not None else 'no'})")

  # ---------------------------------------------------------------- transforms
  @property
  def T(self) -> "Interactions":  # noqa: N802
    """Transposed view: rows <-> columns (user-major <-> item-major)."""
    t = None
    m = self.matrix.T.tocsr()
    m.sort_indices()
    if self.timestamps is not None:
      t = self.timestamps.T.tocsr()
      t.sort_indices()
    return Interactions(m, self.col_ids, self.row_ids, t)

  def select_rows(self, index) -> "Interactions":
    """Rows at the given indices (or boolean mask), keeping the column space."""
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    t = None if self.timestamps is None else self.timestamps[index]
    return Interactions(self.matrix[index], self.row_ids[index], self.col_ids, t)

  def select_cols(self, index) -> "Interactions":
    """Columns at the given indices (or boolean mask), keeping the row space."""
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    m = self.matrix[:, index].tocsr()
    m.sort_indices()
    t = None
    if self.timestamps is not None:
      t = self.timestamps[:, index].tocsr()
      t.sort_indices()
    return Interactions(m, self.row_ids, self.col_ids[index], t)

  def filter_min_count(self, min_row: int = 1, min_col: int = 1,
                       iterate: bool = True) -> "Interactions":
    """Drops rows with < ``min_row`` entries and columns with < ``min_col`` entries.

    With ``iterate`` the two filters are repeated until both hold (a k-core), as most papers do.
    """
    cur = self
    while True:
      keep_c = cur.col_counts() >= min_col
      if not keep_c.all():
        cur = cur.select_cols(keep_c)
      keep_r = cur.row_lengths() >= min_row
      if not keep_r.all():
        cur = cur.select_rows(keep_r)
      done = keep_r.all() and (cur.col_counts() >= min_col).all()
      if done or not iterate:
        return cur

  def binarize(self, threshold: float = 0.0) -> "Interactions":
    """Keeps entries with value > ``threshold`` (ratings >= 4 -> ``threshold=3.5``), set to 1."""
    m = self.matrix.copy()
    keep = m.data > threshold
    m.data = np.where(keep, 1.0, 0.0).astype(np.float32)
    m.eliminate_zeros()
    t = None
    if self.timestamps is not None:
      t = self.timestamps.copy()
      t.data = np.where(keep, t.data, 0)
      t = sp.csr_matrix((t.data[keep], m.indices, m.indptr), shape=m.shape)
    return Interactions(m, self.row_ids, self.col_ids, t)

  def reindex(self, row_ids, col_ids) -> tuple["Interactions", dict[str, int]]:
    """Moves the entries into another id space (e.g. a test file into the training vocabularies).

    Entries whose row or column raw id is not in the new vocabularies are dropped and counted:
    returns ``(interactions, {"unknown_rows": entries, "unknown_cols": entries})``.
    """
    r, c, v = self.to_coo_ids()
    new_r = _as_id_array(row_ids)
    new_c = _as_id_array(col_ids)
    ok_r = np.isin(r, new_r)
    ok_c = np.isin(c, new_c)
    keep = ok_r & ok_c
    ts = None
    if self.timestamps is not None:
      ts = self.timestamps.tocoo().data[keep]
    out = Interactions.from_coo(r[keep], c[keep], v[keep], ts, row_ids=new_r, col_ids=new_c,
                                duplicates="error", source="reindex")
    return out, {"unknown_rows": int((~ok_r).sum()), "unknown_cols": int((ok_r & ~ok_c).sum())}

  def to_coo_ids(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw row ids, raw col ids, values) of every stored entry, row-major."""
    coo = self.matrix.tocoo()
    return self.row_ids[coo.row], self.col_ids[coo.col], coo.data

  # ---------------------------------------------------------------- save / load
  def save(self, path: str | os.PathLike) -> None:
    """Writes one compressed ``.npz`` holding the CSR arrays and both id maps."""
    arrays: dict[str, Any] = dict(
        version=np.int64(_FORMAT_VERSION), shape=np.asarray(self.shape, np.int64),
        indptr=self.matrix.indptr, indices=self.matrix.indices, data=self.matrix.data,
        row_ids=self.row_ids, col_ids=self.col_ids)
    if self.timestamps is not None:
      arrays["timestamps"] = self.timestamps.data
    with open(path, "wb") as f:
      np.savez_compressed(f, **arrays)

  @classmethod
  def load(cls, path: str | os.PathLike) -> "Interactions":
    try:
      with np.load(path, allow_pickle=False) as z:
        if int(z["version"]) != _FORMAT_VERSION:
          raise DataError(f"{path}: unsupported Interactions format version {int(z['version'])}")
        shape = tuple(int(x) for x in z["shape"])
        m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
        t = None
        if "timestamps" in z.files:
          t = sp.csr_matrix((z["timestamps"], z["indices"], z["indptr"]), shape=shape)
        return cls(m, z["row_ids"], z["col_ids"], t)
    except DataError:
      raise
    except FileNotFoundError:
      raise DataError(f"{path}: no such file") from None
    except (OSError, KeyError, ValueError) as e:
      raise DataError(f"{path}: not a saved Interactions file ({e})") from None

  def id_maps_json(self) -> str:
    """The id maps as JSON (for checkpoints: what eval needs to map indices back to raw ids)."""
    return json.dumps({"row_ids": self.row_ids.tolist(), "col_ids": self.col_ids.tolist()})


def _index(raw: np.ndarray, vocab, axis: str, source: str) -> tuple[np.ndarray, np.ndarray]:
  """Maps raw ids to indices; with ``vocab`` given, unknown ids raise naming the first one."""
  if vocab is None:
    uniq, inv = np.unique(raw, return_inverse=True)
    return _as_id_array(uniq), inv.astype(np.int64).reshape(-1)
  vocab = _as_id_array(vocab)
  order = np.argsort(vocab, kind="stable")
  sorted_vocab = vocab[order]
  if len(sorted_vocab) and np.any(sorted_vocab[1:] == sorted_vocab[:-1]):
    raise DataError(f"{source}: the {axis} id vocabulary has duplicates")
  raw = _as_id_array(raw) if len(raw) else raw.astype(vocab.dtype)
  pos = np.searchsorted(sorted_vocab, raw)
  pos_c = np.minimum(pos, max(len(sorted_vocab) - 1, 0))
  ok = (pos < len(sorted_vocab)) & (sorted_vocab[pos_c] == raw) if len(sorted_vocab) else (
      np.zeros(len(raw), bool))
  if not ok.all():
    bad = raw[np.argmin(ok)]
    raise DataError(f"{source}: unknown {axis} id {bad!r} ({int((~ok).sum())} entries with ids "
                    f"not in the vocabulary)")
  return vocab, order[pos_c].astype(np.int64)
