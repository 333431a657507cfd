"""Splits: hand-computed small cases, determinism (same seed same result, other seed different),
sizes, disjointness and coverage (train + test = all entries, no overlap)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxae.data import splits
from jaxae.data.matrix import Interactions
from jaxae.data.readers.movielens import read_movielens_records
from jaxae.errors import ConfigError, DataError


def entries(inter: Interactions) -> set:
  """(row id, col id, value, time) of every stored entry."""
  coo = inter.matrix.tocoo()
  times = (np.zeros(inter.nnz, np.int64) if inter.timestamps is None
           else inter.timestamps.tocoo().data)
  return set(zip(inter.row_ids[coo.row].tolist(), inter.col_ids[coo.col].tolist(),
                 coo.data.tolist(), times.tolist()))


def same(a: Interactions, b: Interactions) -> bool:
  return (entries(a) == entries(b) and np.array_equal(a.row_ids, b.row_ids)
          and np.array_equal(a.col_ids, b.col_ids))


@pytest.fixture(scope="module")
def inter() -> Interactions:
  """60 users x 40 items, ~700 random ratings with distinct timestamps."""
  rng = np.random.default_rng(123)
  n = 900
  users = rng.integers(0, 60, n) * 10 + 5  # raw ids 5, 15, ...
  items = rng.integers(0, 40, n) + 1000
  ratings = rng.integers(1, 6, n).astype(np.float32)
  times = rng.permutation(n).astype(np.int64) * 1000 + 1_000_000
  return Interactions.from_coo(users, items, ratings, times)


def assert_partition(full: Interactions, *parts: Interactions):
  for p in parts:
    assert np.array_equal(p.row_ids, full.row_ids) and np.array_equal(p.col_ids, full.col_ids)
  sets = [entries(p) for p in parts]
  assert sum(len(s) for s in sets) == len(set().union(*sets))  # disjoint
  assert set().union(*sets) == entries(full)  # covers everything


# ---------------------------------------------------------------------------- holdout
def test_holdout_sizes_partition_and_determinism(inter):
  s = splits.holdout(inter, 0.1, seed=0)
  assert s.test.nnz == round(0.1 * inter.nnz) and s.train.nnz == inter.nnz - s.test.nnz
  assert_partition(inter, s.train, s.test)
  assert s.info["n_test"] == s.test.nnz
  again = splits.holdout(inter, 0.1, seed=0)
  assert same(again.train, s.train) and same(again.test, s.test)
  other = splits.holdout(inter, 0.1, seed=1)
  assert not same(other.test, s.test)
  train, test = s  # iterates as (train, test)
  assert train is s.train and test is s.test


def test_holdout_counts_cold_test_entries():
  # One entry per item: any test entry's item has no training entry.
  inter = Interactions.from_coo([1, 1, 2, 2], [10, 11, 12, 13], [1, 2, 3, 4])
  s = splits.holdout(inter, 0.5, seed=3)
  assert s.info["test_entries_col_unseen_in_train"] == 2
  rows_cold = sum(1 for r, *_ in entries(s.test) if r not in {x[0] for x in entries(s.train)})
  assert s.info["test_entries_row_unseen_in_train"] == rows_cold


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_holdout_rejects_bad_fraction(inter, fraction):
  with pytest.raises(ConfigError, match="test_fraction"):
    splits.holdout(inter, fraction)


# ---------------------------------------------------------------------------- per-user holdout
def test_per_user_holdout_takes_the_fraction_of_every_row(inter):
  s = splits.per_user_holdout(inter, 0.25, seed=0)
  assert_partition(inter, s.train, s.test)
  m = inter.row_lengths()
  want = np.where(m >= 2, np.clip(np.floor(0.25 * m + 0.5), 1, np.maximum(m - 1, 1)), 0)
  np.testing.assert_array_equal(s.test.row_lengths(), want)  # round(f * m), >= 1, <= m - 1
  assert s.info["n_test"] == s.test.nnz == int(want.sum())
  assert s.info["rows_with_test"] == int((m >= 2).sum())
  again = splits.per_user_holdout(inter, 0.25, seed=0)
  assert same(again.train, s.train) and same(again.test, s.test)
  assert not same(splits.per_user_holdout(inter, 0.25, seed=1).test, s.test)


def test_per_user_holdout_small_rows_by_hand():
  # Row 1: one entry (stays in train, counted); row 2: two entries (one each way, even at 0.1);
  # row 3: ten entries, 0.1 -> one; row 4: five entries at 0.1 -> round(0.5) = 1 (at least one).
  rows = [1] + [2] * 2 + [3] * 10 + [4] * 5
  cols = [0] + [0, 1] + list(range(10)) + list(range(5))
  inter = Interactions.from_coo(rows, cols, np.ones(len(rows)))
  s = splits.per_user_holdout(inter, 0.1, seed=4)
  assert s.test.row_lengths().tolist() == [0, 1, 1, 1]
  assert s.train.row_lengths().tolist() == [1, 1, 9, 4]
  assert s.info["rows_too_short"] == 1 and s.info["entries_of_short_rows"] == 1
  assert s.info["rows_with_test"] == 3
  # Which entries go is random within the row: over seeds, every entry of row 3 is drawn.
  drawn = {c for seed in range(60) for (r, c, *_) in entries(
      splits.per_user_holdout(inter, 0.1, seed=seed).test) if r == 3}
  assert drawn == set(range(10))


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_per_user_holdout_rejects_bad_fraction(inter, fraction):
  with pytest.raises(ConfigError, match="test_fraction"):
    splits.per_user_holdout(inter, fraction)


# ---------------------------------------------------------------------------- ml-100k folds
def test_ml100k_fold_uses_file_order(tmp_path):
  # 10 ratings, fold_size 2: fold 2 test = lines 3..4, base = lines 1-2 and 5-10.
  lines = [(1, 1, 5), (2, 1, 4), (3, 2, 3), (1, 3, 2), (2, 2, 1), (3, 3, 5), (1, 2, 4),
           (2, 3, 3), (3, 1, 2), (4, 4, 1)]
  p = tmp_path / "u.data"
  p.write_text("".join(f"{u}\t{i}\t{r}\t{100 + k}\n" for k, (u, i, r) in enumerate(lines)))
  s = splits.ml100k_fold(p, 2, fold_size=2)
  assert entries(s.test) == {(3, 2, 3.0, 102), (1, 3, 2.0, 103)}
  assert len(entries(s.train)) == 8 and (4, 4, 1.0, 109) in entries(s.train)
  np.testing.assert_array_equal(s.train.row_ids, [1, 2, 3, 4])
  np.testing.assert_array_equal(s.test.col_ids, [1, 2, 3, 4])
  full = Interactions.from_coo(*zip(*[(u, i, r) for u, i, r in lines]),
                               timestamps=np.arange(10) + 100)
  tests = [splits.ml100k_fold(p, f, fold_size=2).test for f in range(1, 6)]
  assert_partition(full, *tests)
  # The records work as well as the path.
  rec = read_movielens_records(p)
  assert same(splits.ml100k_fold(rec, 2, fold_size=2).test, s.test)


def test_ml100k_fold_errors(tmp_path):
  p = tmp_path / "u.data"
  p.write_text("1\t1\t5\t1\n" * 3)
  with pytest.raises(DataError, match="has 3 ratings; the u1..u5 folds need exactly 5 x 2"):
    splits.ml100k_fold(p, 1, fold_size=2)
  with pytest.raises(ConfigError, match="fold must be 1..5"):
    splits.ml100k_fold(p, 6)
  with pytest.raises(DataError, match="line order"):
    splits.ml100k_fold(Interactions.from_coo([1], [1]), 1)


# ---------------------------------------------------------------------------- time splits
def test_time_split_hand_computed():
  day = 86400
  # (user, item, time in days since epoch)
  data = [(1, 10, 1), (1, 11, 2), (2, 10, 3), (2, 16, 4),   # train range days 0..4
          (1, 12, 5), (1, 16, 6), (2, 11, 6),               # test range days 5..9
          (3, 10, 7),                           # user 3 has no training entry
          (2, 13, 8),                           # item 13 has no training entry
          (1, 14, 20)]                          # outside both ranges
  u, i, t = zip(*data)
  inter = Interactions.from_coo(u, i, np.arange(1, 11), np.asarray(t) * day)
  s = splits.time_split(inter, "1970-01-01", "1970-01-05", "1970-01-06", "1970-01-10")
  assert {(r, c) for r, c, *_ in entries(s.train)} == {(1, 10), (1, 11), (2, 10), (2, 16)}
  # item 12 is only in the test range: dropped as an item unseen in train.
  assert {(r, c) for r, c, *_ in entries(s.test)} == {(1, 16), (2, 11)}
  assert s.info == {"n_train": 4, "n_test": 2, "outside_ranges": 1,
                    "test_dropped_user_not_in_train": 1, "test_dropped_item_not_in_train": 2}
  assert s.val is None
  assert np.array_equal(s.test.row_ids, inter.row_ids)
  # Unix seconds give the same split; an end date covers its whole day.
  s2 = splits.time_split(inter, 0, 5 * day - 1, 5 * day, 10 * day - 1)
  assert same(s2.train, s.train) and same(s2.test, s.test)


def test_time_split_validation_part(inter):
  t = np.sort(inter.timestamps.data)
  mid = int(t[len(t) * 3 // 4])
  s = splits.time_split(inter, 0, mid, mid + 1, int(t[-1]), val_fraction=0.5, seed=4)
  assert s.val is not None and s.val.nnz > 0 and s.test.nnz > 0
  assert not entries(s.val) & entries(s.test)
  dropped = s.info["test_dropped_user_not_in_train"] + s.info["test_dropped_item_not_in_train"]
  assert s.train.nnz + s.val.nnz + s.test.nnz + dropped == inter.nnz
  again = splits.time_split(inter, 0, mid, mid + 1, int(t[-1]), val_fraction=0.5, seed=4)
  assert same(again.val, s.val)
  other = splits.time_split(inter, 0, mid, mid + 1, int(t[-1]), val_fraction=0.5, seed=5)
  assert not same(other.val, s.val)


def test_time_split_errors(inter):
  with pytest.raises(ConfigError, match="overlaps"):
    splits.time_split(inter, "2000-01-01", "2000-02-01", "2000-02-01", "2000-03-01")
  with pytest.raises(ConfigError, match="not Unix seconds or an ISO date"):
    splits.time_split(inter, "yesterday", 1, 2, 3)
  with pytest.raises(DataError, match="needs timestamps"):
    splits.time_split(Interactions.from_coo([1], [1]), 0, 1, 2, 3)


def test_per_user_time_split_hand_computed():
  # user 1: 5 entries -> floor(5 * 0.4) = 2 latest (times 50, 40) in test;
  # user 2: 2 entries, times tie -> floor(0.8) = 0 in test; user 3: 3 entries -> 1 (item 7).
  data = [(1, 1, 10), (1, 2, 50), (1, 3, 20), (1, 4, 40), (1, 5, 30),
          (2, 1, 5), (2, 2, 5), (3, 5, 1), (3, 6, 2), (3, 7, 3)]
  u, i, t = zip(*data)
  inter = Interactions.from_coo(u, i, np.ones(len(u)), t)
  s = splits.per_user_time_split(inter, 0.4)
  assert {(r, c) for r, c, *_ in entries(s.test)} == {(1, 2), (1, 4), (3, 7)}
  assert s.info == {"n_train": 7, "n_test": 3, "rows_without_test": 1}
  assert_partition(inter, s.train, s.test)


def test_per_user_time_split_is_last_by_time(inter):
  s = splits.per_user_time_split(inter, 0.25)
  assert_partition(inter, s.train, s.test)
  lengths = inter.row_lengths()
  np.testing.assert_array_equal(s.test.row_lengths(), np.floor(lengths * 0.25 + 1e-9))
  for r in range(inter.shape[0]):
    tr = s.train.timestamps[r].data
    te = s.test.timestamps[r].data
    if len(tr) and len(te):
      assert tr.max() < te.min()


# ---------------------------------------------------------------------------- strong generalization
def test_strong_generalization_structure(inter):
  sg = splits.strong_generalization(inter, 10, 10, seed=0)
  groups = [sg.train_rows, sg.val_rows, sg.test_rows]
  assert [len(g) for g in groups] == [inter.shape[0] - 20, 10, 10]
  assert len(np.unique(np.concatenate(groups))) == inter.shape[0]
  mats = [sg.train, sg.val_fold_in, sg.val_target, sg.test_fold_in, sg.test_target]
  for m in mats:
    assert np.array_equal(m.row_ids, inter.row_ids)
    assert np.array_equal(m.col_ids, sg.train.col_ids)
  # Only items seen among train users remain, and each of them has a train entry.
  assert (sg.train.col_counts() > 0).all()
  assert sg.info["columns_dropped"] == inter.shape[1] - sg.train.shape[1]
  # Rows belong to their group only.
  assert set(np.flatnonzero(sg.train.row_lengths())) <= set(sg.train_rows)
  for fold_in, target, rows in ((sg.val_fold_in, sg.val_target, sg.val_rows),
                                (sg.test_fold_in, sg.test_target, sg.test_rows)):
    assert set(np.flatnonzero(fold_in.row_lengths() + target.row_lengths())) <= set(rows)
    n = fold_in.row_lengths() + target.row_lengths()
    want = np.where(n >= 5, np.floor(n * 0.2 + 1e-9), 0)
    np.testing.assert_array_equal(target.row_lengths(), want)
    assert not entries(fold_in) & entries(target)
  # Everything of held-out users is either kept (fold-in / target) or counted as dropped.
  held = np.concatenate([sg.val_rows, sg.test_rows])
  held_nnz = int(inter.row_lengths()[held].sum())
  kept = sum(m.nnz for m in mats[1:])
  assert kept + sg.info["val_dropped_unseen_items"] + sg.info["test_dropped_unseen_items"] == (
      held_nnz)
  assert sg.train.nnz == int(inter.row_lengths()[sg.train_rows].sum())


def test_strong_generalization_determinism_and_full_columns(inter):
  a = splits.strong_generalization(inter, 8, 8, seed=3)
  b = splits.strong_generalization(inter, 8, 8, seed=3)
  c = splits.strong_generalization(inter, 8, 8, seed=4)
  assert np.array_equal(a.test_rows, b.test_rows) and same(a.val_target, b.val_target)
  assert not np.array_equal(a.test_rows, c.test_rows)
  full = splits.strong_generalization(inter, 8, 8, seed=3, drop_unseen_columns=False)
  assert np.array_equal(full.train.col_ids, inter.col_ids)
  assert entries(full.test_target) == entries(a.test_target)


def test_strong_generalization_drops_unseen_items():
  # 5 users; with 1 held-out user per group, 3 are train users. Item 99 is held by one user only.
  users = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 5]
  items = [10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 99]
  inter = Interactions.from_coo(users, items)
  for seed in range(6):
    sg = splits.strong_generalization(inter, 1, 1, seed=seed)
    user5_row = 4
    if user5_row in sg.train_rows:
      assert 99 in sg.train.col_ids and sg.info["columns_dropped"] == 0
    else:
      assert 99 not in sg.train.col_ids and sg.info["columns_dropped"] == 1
      dropped = sg.info["val_dropped_unseen_items"] + sg.info["test_dropped_unseen_items"]
      assert dropped == 1


def test_strong_generalization_test_users_do_not_depend_on_validation_users(inter):
  # The refit (no validation users) tests the very users, split the same way, as the validation run,
  # as long as the validation users add no column (kept columns as a superset, drop_unseen False).
  a = splits.strong_generalization(inter, 6, 9, seed=5, drop_unseen_columns=False)
  b = splits.strong_generalization(inter, 6, 0, seed=5, drop_unseen_columns=False)
  assert np.array_equal(a.test_rows, b.test_rows) and len(b.val_rows) == 0
  assert set(b.train_rows) == set(a.train_rows) | set(a.val_rows)
  assert b.val_fold_in.nnz == b.val_target.nnz == 0
  # Every item has a train user in both (this data is dense), so the same entries are kept ...
  assert (a.train.col_counts() > 0).all() and (b.train.col_counts() > 0).all()
  # ... and the test users' fold-in / target draws are the same.
  assert entries(a.test_target) == entries(b.test_target)
  assert entries(a.test_fold_in) == entries(b.test_fold_in)
  assert a.info["n_val_users"] == 9 and b.info["n_val_users"] == 0 and b.info["n_test_users"] == 6


def test_strong_generalization_errors(inter):
  with pytest.raises(ConfigError, match="must leave train users"):
    splits.strong_generalization(inter, 30, 30)
  with pytest.raises(ConfigError, match="one at least"):
    splits.strong_generalization(inter, 0, 0)
  with pytest.raises(ConfigError, match="test and validation users"):
    splits.strong_generalization(inter, -1, 3)
  with pytest.raises(ConfigError, match="fold_in_fraction"):
    splits.strong_generalization(inter, 5, 5, fold_in_fraction=1.0)
