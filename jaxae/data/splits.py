"""Train/test splits of :class:`~jaxae.data.matrix.Interactions`, seeded and deterministic.

Every split returns matrices that share one row and one column vocabulary (so an index means the
same user / item in all of them) and an ``info`` dict counting what went where and what was
dropped; the same dict is logged with ``absl.logging``. Nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any

import numpy as np
import scipy.sparse as sp
from absl import logging

from jaxae.data.matrix import Interactions
from jaxae.data.readers.common import RatingRecords
from jaxae.data.readers.movielens import read_movielens_records
from jaxae.errors import ConfigError, DataError

_EPS = 1e-9  # guards floor(n * fraction) against 0.2 * 5 = 0.9999999999999998


@dataclasses.dataclass(frozen=True)
class Split:
  """A train / test pair (plus an optional validation part) over the same vocabularies.

  Iterating yields ``(train, test)``, so ``train, test = holdout(inter)`` works.
  """

  train: Interactions
  test: Interactions
  info: dict[str, Any]
  val: Interactions | None = None

  def __iter__(self):
    return iter((self.train, self.test))


@dataclasses.dataclass(frozen=True)
class StrongGeneralizationSplit:
  """Liang et al. (2018) user split: train users, and held-out users with fold-in / target parts.

  All five matrices have every user row (rows outside a part are empty) and the same columns.
  ``train_rows`` / ``val_rows`` / ``test_rows`` are the sorted row indices of each user group.
  """

  train: Interactions
  val_fold_in: Interactions
  val_target: Interactions
  test_fold_in: Interactions
  test_target: Interactions
  train_rows: np.ndarray
  val_rows: np.ndarray
  test_rows: np.ndarray
  info: dict[str, Any]


# ---------------------------------------------------------------------------- helpers
def _entry_rows(inter: Interactions) -> np.ndarray:
  """Row index of every stored entry, in CSR order."""
  return np.repeat(np.arange(inter.shape[0], dtype=np.int64), inter.row_lengths())


def _subset(inter: Interactions, keep: np.ndarray) -> Interactions:
  """The entries where ``keep`` (a mask over CSR entries) is true; same shape and vocabularies."""
  m = inter.matrix
  counts = np.bincount(_entry_rows(inter)[keep], minlength=inter.shape[0])
  indptr = np.zeros(inter.shape[0] + 1, dtype=m.indptr.dtype)
  np.cumsum(counts, out=indptr[1:])
  indices = m.indices[keep]
  out = sp.csr_matrix((m.data[keep], indices, indptr), shape=m.shape)
  t = None
  if inter.timestamps is not None:
    t = sp.csr_matrix((inter.timestamps.data[keep], indices, indptr), shape=m.shape)
  return Interactions(out, inter.row_ids, inter.col_ids, t)


def _check_fraction(name: str, value: float, allow_zero: bool = False) -> float:
  value = float(value)
  lo_ok = value >= 0.0 if allow_zero else value > 0.0
  if not (lo_ok and value < 1.0):
    interval = "[0, 1)" if allow_zero else "(0, 1)"
    raise ConfigError(f"{name} must be in {interval}, got {value}")
  return value


def _sorted_canonical(inter: Interactions) -> Interactions:
  if not inter.matrix.has_sorted_indices:
    m = inter.matrix.copy()
    t = None if inter.timestamps is None else inter.timestamps.copy()
    if t is not None:  # sort both with one permutation so they stay aligned
      order = np.lexsort((m.indices, _entry_rows(inter)))
      m = sp.csr_matrix((m.data[order], m.indices[order], m.indptr), shape=m.shape)
      t = sp.csr_matrix((t.data[order], m.indices, m.indptr), shape=m.shape)
    else:
      m.sort_indices()
    return Interactions(m, inter.row_ids, inter.col_ids, t)
  return inter


def _cold_counts(train: Interactions, test: Interactions) -> dict[str, int]:
  """Test entries whose row / column has no training entry (kept, but counted)."""
  rows_in_train = train.row_lengths() > 0
  cols_in_train = train.col_counts() > 0
  test_rows = _entry_rows(test)
  return {
      "test_entries_row_unseen_in_train": int((~rows_in_train[test_rows]).sum()),
      "test_entries_col_unseen_in_train": int((~cols_in_train[test.matrix.indices]).sum()),
  }


def _log(name: str, info: dict[str, Any]) -> dict[str, Any]:
  logging.info("split %s: %s", name, ", ".join(f"{k}={v}" for k, v in info.items()))
  return info


def _require_timestamps(inter: Interactions, split: str) -> None:
  if inter.timestamps is None:
    raise DataError(f"{split} needs timestamps, but these interactions have none")


# ---------------------------------------------------------------------------- random hold-out
def holdout(inter: Interactions, test_fraction: float = 0.1, seed: int = 0) -> Split:
  """Random per-rating hold-out (AutoRec's 90/10).

  Exactly ``round(test_fraction * nnz)`` stored entries, drawn uniformly without replacement with
  ``numpy.random.default_rng(seed)``, form ``test``; all others form ``train``. Both keep the full
  row and column vocabularies. Test entries whose user or item has no training entry are kept and
  counted (``info["test_entries_row_unseen_in_train"]`` / ``..._col_...``).
  """
  test_fraction = _check_fraction("test_fraction", test_fraction)
  inter = _sorted_canonical(inter)
  n = inter.nnz
  n_test = int(round(test_fraction * n))
  rng = np.random.default_rng(seed)
  is_test = np.zeros(n, bool)
  is_test[rng.choice(n, size=n_test, replace=False)] = True
  train, test = _subset(inter, ~is_test), _subset(inter, is_test)
  info = {"n_train": train.nnz, "n_test": test.nnz, **_cold_counts(train, test)}
  return Split(train, test, _log("holdout", info))


def per_user_holdout(inter: Interactions, test_fraction: float = 0.1, seed: int = 0) -> Split:
  """Random per-row hold-out: ``test_fraction`` of each row's entries (LightGCN's test layout).

  A row with ``m >= 2`` entries gives ``clip(round(test_fraction * m), 1, m - 1)`` of them, drawn
  uniformly without replacement with ``numpy.random.default_rng(seed)``, to ``test``: every such row
  has at least one test entry and keeps at least one training entry. Rows with fewer than two
  entries stay in ``train`` whole, counted in ``info["rows_too_short"]`` (and their entries in
  ``info["entries_of_short_rows"]``). Both parts keep the full row and column vocabularies.
  """
  test_fraction = _check_fraction("test_fraction", test_fraction)
  inter = _sorted_canonical(inter)
  lengths = inter.row_lengths().astype(np.int64)
  rows = _entry_rows(inter)
  k = np.clip(np.floor(test_fraction * lengths + 0.5 + _EPS).astype(np.int64), 1, None)
  k = np.where(lengths >= 2, np.minimum(k, lengths - 1), 0)
  # Entries in (row, random key) order; an entry is held out when its rank within its row < k.
  order = np.lexsort((np.random.default_rng(seed).random(inter.nnz), rows))
  starts = np.repeat(inter.matrix.indptr[:-1].astype(np.int64), lengths)
  is_test = np.zeros(inter.nnz, bool)
  is_test[order] = (np.arange(inter.nnz) - starts) < k[rows]
  train, test = _subset(inter, ~is_test), _subset(inter, is_test)
  short = (lengths > 0) & (lengths < 2)
  info = {"n_train": train.nnz, "n_test": test.nnz,
          "rows_with_test": int((k > 0).sum()), "rows_too_short": int(short.sum()),
          "entries_of_short_rows": int(lengths[short].sum()), **_cold_counts(train, test)}
  return Split(train, test, _log("per_user_holdout", info))


# ---------------------------------------------------------------------------- ml-100k u1..u5
def ml100k_fold(u_data: str | os.PathLike | RatingRecords, fold: int,
                fold_size: int = 20000) -> Split:
  """The canonical MovieLens-100K fold ``u{fold}.base`` / ``u{fold}.test`` (GroupLens ``mku.sh``).

  ``u{i}.test`` is lines ``fold_size*(i-1)+1 .. fold_size*i`` of ``u.data`` in file order and
  ``u{i}.base`` is every other line, exactly as ``mku.sh`` builds them with ``head``/``tail``
  (its final ``sort`` only reorders lines). The split is defined on file order, so it needs the
  file (or the records of :func:`~jaxae.data.readers.movielens.read_movielens_records`), not a
  matrix. Both matrices use the vocabularies of the whole file (943 users x 1,682 items for
  ml-100k).

  Args:
    u_data: path of ``u.data`` or its ``RatingRecords``.
    fold: 1..5.
    fold_size: records per fold; the file must hold exactly ``5 * fold_size`` records.
  """
  if isinstance(u_data, Interactions):
    raise DataError("ml100k_fold needs u.data (or its RatingRecords): the canonical folds are "
                    "defined by line order, which an Interactions matrix does not keep")
  if isinstance(fold, bool) or int(fold) != fold or not 1 <= int(fold) <= 5:
    raise ConfigError(f"ml100k fold must be 1..5, got {fold!r}")
  fold = int(fold)
  records = (u_data if isinstance(u_data, RatingRecords)
             else read_movielens_records(u_data))
  n = len(records)
  if n != 5 * fold_size:
    raise DataError(f"{records.report.path}: has {n} ratings; the u1..u5 folds need exactly "
                    f"5 x {fold_size}")
  is_test = np.zeros(n, bool)
  is_test[(fold - 1) * fold_size:fold * fold_size] = True
  row_ids, col_ids = np.unique(records.users), np.unique(records.items)
  train, r_train = records.take(np.flatnonzero(~is_test)).to_interactions(row_ids, col_ids, False)
  test, r_test = records.take(np.flatnonzero(is_test)).to_interactions(row_ids, col_ids, False)
  info = {"fold": fold, "n_train": train.nnz, "n_test": test.nnz,
          "duplicates_merged": r_train.duplicates_merged + r_test.duplicates_merged,
          **_cold_counts(train, test)}
  return Split(train, test, _log(f"ml100k u{fold}", info))


# ---------------------------------------------------------------------------- time splits
def _to_seconds(value, end: bool) -> int:
  """Unix seconds (UTC) of a bound: int seconds, ISO string, date, datetime or datetime64.

  A date without a time of day means the whole day: its start for a lower bound, its last
  second for an upper bound.
  """
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    return int(value)
  try:
    if isinstance(value, datetime.datetime):
      if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
      d = np.datetime64(value)
    elif isinstance(value, (datetime.date, str, np.datetime64)):
      d = np.datetime64(value)
    else:
      raise ValueError
  except ValueError:
    raise ConfigError(f"time split bound {value!r} is not Unix seconds or an ISO date") from None
  unit = np.datetime_data(d.dtype)[0]
  if unit in ("Y", "M", "W", "D"):  # a whole period: its first second, or its last one
    edge = d + np.timedelta64(1, unit) if end else d
    sec = int(edge.astype("datetime64[s]").astype(np.int64))
    return sec - 1 if end else sec
  return int(d.astype("datetime64[s]").astype(np.int64))


def time_split(inter: Interactions, train_start, train_end, test_start, test_end,
               val_fraction: float = 0.0, seed: int = 0) -> Split:
  """Global date-range split of NVIDIA DeepRecommender's Netflix data (Kuchaiev & Ginsburg 2017).

  ``train`` = entries with ``train_start <= t <= train_end``; the test candidates are entries with
  ``test_start <= t <= test_end``. As in DeepRecommender's ``netflix_data_convert.py``, a test
  candidate is dropped when its user has no training entry (counted in
  ``info["test_dropped_user_not_in_train"]``) or, next, when its item has none
  (``info["test_dropped_item_not_in_train"]``); entries in neither range are counted in
  ``info["outside_ranges"]``. With ``val_fraction > 0`` each kept test-range entry goes to ``val``
  with that probability (DeepRecommender uses 0.5), drawn with ``default_rng(seed)``; otherwise
  ``val`` is ``None``. The row and column vocabularies stay those of ``inter``.

  Bounds are inclusive: Unix seconds, or ISO dates / date-times (strings, ``datetime.date``,
  ``datetime.datetime``, ``numpy.datetime64``) taken as UTC; a bare date as an end bound covers
  that whole day. The two ranges may not overlap.
  """
  _require_timestamps(inter, "time_split")
  a, b = _to_seconds(train_start, False), _to_seconds(train_end, True)
  c, d = _to_seconds(test_start, False), _to_seconds(test_end, True)
  if a > b or c > d:
    raise ConfigError(f"time split: empty range (train {train_start}..{train_end}, test "
                      f"{test_start}..{test_end})")
  if c <= b and a <= d:
    raise ConfigError(f"time split: the train range {train_start}..{train_end} overlaps the test "
                      f"range {test_start}..{test_end}")
  val_fraction = _check_fraction("val_fraction", val_fraction, allow_zero=True)
  inter = _sorted_canonical(inter)
  t = inter.timestamps.data
  in_train = (t >= a) & (t <= b)
  in_test = (t >= c) & (t <= d)
  train = _subset(inter, in_train)
  rows = _entry_rows(inter)
  cold_user = ~(train.row_lengths() > 0)[rows]
  cold_item = ~(train.col_counts() > 0)[inter.matrix.indices]
  keep_test = in_test & ~cold_user & ~cold_item
  is_val = np.zeros(inter.nnz, bool)
  if val_fraction > 0:
    is_val = keep_test & (np.random.default_rng(seed).random(inter.nnz) < val_fraction)
  test = _subset(inter, keep_test & ~is_val)
  val = _subset(inter, is_val) if val_fraction > 0 else None
  info = {"n_train": train.nnz, "n_test": test.nnz,
          "outside_ranges": int((~in_train & ~in_test).sum()),
          "test_dropped_user_not_in_train": int((in_test & cold_user).sum()),
          "test_dropped_item_not_in_train": int((in_test & ~cold_user & cold_item).sum())}
  if val is not None:
    info["n_val"] = val.nnz
  return Split(train, test, _log("time_split", info), val)


def per_user_time_split(inter: Interactions, test_fraction: float = 0.2) -> Split:
  """The last ``test_fraction`` of each user's (row's) entries by time go to ``test``.

  A row with ``n`` entries puts its ``floor(n * test_fraction)`` latest entries (ties broken by
  column index, so the result is deterministic) into ``test`` and the rest into ``train``; rows
  with too few entries for one test entry stay whole in ``train`` (counted in
  ``info["rows_without_test"]``). Vocabularies are those of ``inter``.
  """
  _require_timestamps(inter, "per_user_time_split")
  test_fraction = _check_fraction("test_fraction", test_fraction)
  inter = _sorted_canonical(inter)
  rows = _entry_rows(inter)
  lengths = inter.row_lengths()
  order = np.lexsort((inter.matrix.indices, inter.timestamps.data, rows))
  rank = np.empty(inter.nnz, np.int64)
  rank[order] = np.arange(inter.nnz) - inter.matrix.indptr[rows[order]]
  n_test = np.floor(lengths * test_fraction + _EPS).astype(np.int64)
  is_test = rank >= (lengths - n_test)[rows]
  train, test = _subset(inter, ~is_test), _subset(inter, is_test)
  info = {"n_train": train.nnz, "n_test": test.nnz,
          "rows_without_test": int(((lengths > 0) & (n_test == 0)).sum())}
  return Split(train, test, _log("per_user_time_split", info))


# ---------------------------------------------------------------------------- strong generalization
def strong_generalization(inter: Interactions, n_test_users: int, n_val_users: int,
                          seed: int = 0, fold_in_fraction: float = 0.8, min_items_to_split: int = 5,
                          drop_unseen_columns: bool = True) -> StrongGeneralizationSplit:
  """Strong generalization (Liang et al. 2018, Mult-VAE): disjoint train / validation / test users.

  Rows (users) are shuffled with ``default_rng(seed)``; the last ``n_test_users`` become test
  users, the ``n_val_users`` before them validation users (either may be 0: that part is empty),
  the rest train users. The test users and their draws do not depend on ``n_val_users``, so a run
  without validation users (the refit on train + validation users) tests the same users. As in the
  paper's code, held-out entries on items (columns) that no train user has are dropped (counted in
  ``info["val_dropped_unseen_items"]`` / ``info["test_dropped_unseen_items"]``). Then each held-out
  user with at least ``min_items_to_split`` remaining items has ``floor((1 - fold_in_fraction) *
  n)`` of them, drawn at random, put in the target part and the rest in the fold-in part; users
  with fewer keep all of them as fold-in (``info["heldout_users_not_split"]``).

  With ``drop_unseen_columns`` (the paper's setup) every returned matrix keeps only the columns
  seen among train users (``info["columns_dropped"]``); otherwise the full column vocabulary is
  kept and those columns are simply empty. Rows are always the full user vocabulary.
  """
  n_rows = inter.shape[0]
  n_test, n_val = int(n_test_users), int(n_val_users)
  if n_test < 0 or n_val < 0 or n_test + n_val < 1 or n_test + n_val >= n_rows:
    raise ConfigError(f"strong generalization holds out test and validation users (>= 0 each, one "
                      f"at least) and must leave train users: got {n_test_users} test and "
                      f"{n_val_users} validation users of {n_rows}")
  fold_in_fraction = _check_fraction("fold_in_fraction", fold_in_fraction)
  inter = _sorted_canonical(inter)
  rng = np.random.default_rng(seed)
  perm = rng.permutation(n_rows)
  group = np.zeros(n_rows, np.int8)  # 0 train, 1 validation, 2 test
  group[perm[n_rows - n_test - n_val:n_rows - n_test]] = 1
  group[perm[n_rows - n_test:]] = 2
  rows = _entry_rows(inter)
  cols = inter.matrix.indices
  entry_group = group[rows]
  is_train = entry_group == 0
  seen_cols = np.bincount(cols[is_train], minlength=inter.shape[1]) > 0
  kept = (entry_group > 0) & seen_cols[cols]
  n_kept = np.bincount(rows[kept], minlength=n_rows)
  n_target = np.where(n_kept >= min_items_to_split,
                      np.floor(n_kept * (1.0 - fold_in_fraction) + _EPS), 0).astype(np.int64)
  key = rng.random(inter.nnz)
  pos = np.flatnonzero(kept)
  order = pos[np.lexsort((key[pos], rows[pos]))]
  starts = np.concatenate([[0], np.cumsum(n_kept)[:-1]])
  rank = np.arange(len(order)) - starts[rows[order]]
  is_target = np.zeros(inter.nnz, bool)
  is_target[order] = rank < n_target[rows[order]]

  parts = [_subset(inter, m) for m in (
      is_train, kept & (entry_group == 1) & ~is_target, kept & (entry_group == 1) & is_target,
      kept & (entry_group == 2) & ~is_target, kept & (entry_group == 2) & is_target)]
  if drop_unseen_columns and not seen_cols.all():
    parts = [p.select_cols(seen_cols) for p in parts]
  heldout_users = group > 0
  info = {
      "n_train_users": int((group == 0).sum()), "n_val_users": n_val, "n_test_users": n_test,
      "n_train": parts[0].nnz, "n_val_fold_in": parts[1].nnz, "n_val_target": parts[2].nnz,
      "n_test_fold_in": parts[3].nnz, "n_test_target": parts[4].nnz,
      "val_dropped_unseen_items": int(((entry_group == 1) & ~kept).sum()),
      "test_dropped_unseen_items": int(((entry_group == 2) & ~kept).sum()),
      "heldout_users_not_split": int((heldout_users & (n_kept > 0) & (n_target == 0)).sum()),
      "columns_dropped": int((~seen_cols).sum()) if drop_unseen_columns else 0,
  }
  return StrongGeneralizationSplit(
      *parts, train_rows=np.flatnonzero(group == 0), val_rows=np.flatnonzero(group == 1),
      test_rows=np.flatnonzero(group == 2), info=_log("strong_generalization", info))
