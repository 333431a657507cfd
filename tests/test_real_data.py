"""Readers and splits on the real datasets of ../shared/data (counts from its README.md).

Skipped when the data folder is absent. Melon files are tested in their own module.
"""

from __future__ import annotations

import numpy as np
import pytest

from configs import autorec_ml1m, kernel_ae_ml1m
from jaxae.data import pipelines, splits
from jaxae.data.readers.csv import read_csv
from jaxae.data.readers.lightgcn import read_lightgcn
from jaxae.data.readers.movielens import read_movielens, read_movielens_records
from tests.conftest import shared_file

pytestmark = pytest.mark.data


def histogram(inter) -> dict[float, int]:
  values, counts = np.unique(inter.matrix.data, return_counts=True)
  return dict(zip(values.tolist(), counts.tolist()))


def test_ml100k_u_data(shared_data):
  inter, report = read_movielens(shared_file(shared_data, "ml-100k/u.data"), rating_range=(1, 5),
                                 return_report=True)
  assert inter.nnz == 100_000 and inter.shape == (943, 1682)
  np.testing.assert_array_equal(inter.row_ids, np.arange(1, 944))
  np.testing.assert_array_equal(inter.col_ids, np.arange(1, 1683))
  assert histogram(inter) == {1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201}
  assert (inter.timestamps.data.min(), inter.timestamps.data.max()) == (874724710, 893286638)
  assert (report.lines, report.duplicates_merged, report.skipped) == (100_000, 0, {})


def test_ml100k_canonical_folds(shared_data):
  records = read_movielens_records(shared_file(shared_data, "ml-100k/u.data"))
  u1 = splits.ml100k_fold(records, 1)
  assert (u1.train.nnz, u1.test.nnz) == (80_000, 20_000)
  assert u1.train.shape == u1.test.shape == (943, 1682)
  # The five test folds are disjoint and together are the whole file.
  tests = [u1.test] + [splits.ml100k_fold(records, f).test for f in range(2, 6)]
  stacked = sum((t.matrix != 0).astype(np.int32) for t in tests)
  assert stacked.nnz == 100_000 and stacked.max() == 1
  # u1.test = the first 20,000 lines of u.data.
  first = records.take(np.arange(20_000))
  assert u1.test.matrix[np.searchsorted(u1.test.row_ids, first.users),
                        np.searchsorted(u1.test.col_ids, first.items)].A1.tolist() == (
                            first.ratings.tolist())


def test_ml1m_partial_ratings(shared_data):
  path = shared_file(shared_data, "ml-1m/partial-users-1-2999/ratings.dat.gz")
  inter = read_movielens(path, rating_range=(1, 5))
  assert inter.nnz == 487_650 and inter.shape == (2_999, 3_615)
  np.testing.assert_array_equal(inter.row_ids, np.arange(1, 3000))
  assert histogram(inter) == {1.0: 27472, 2.0: 53838, 3.0: 127216, 4.0: 170579, 5.0: 108545}
  assert (inter.timestamps.data.min(), inter.timestamps.data.max()) == (970620734, 1046388675)


def test_gowalla(shared_data):
  shared_file(shared_data, "gowalla/train.txt")
  (train, test), (r_train, r_test) = read_lightgcn(shared_data / "gowalla", return_report=True)
  assert train.shape == test.shape == (29_858, 40_981)
  assert train.nnz == 810_128 and test.nnz == 217_242
  assert (train.col_counts() > 0).sum() == 40_981 and (test.col_counts() > 0).sum() == 38_546
  assert (train.row_lengths() > 0).all() and (test.row_lengths() > 0).all()
  assert r_train.duplicates_merged == 0 and r_test.duplicates_merged == 0
  assert not (train.matrix.multiply(test.matrix)).nnz  # no pair in both files


def test_lastfm_user_artists(shared_data):
  path = shared_file(shared_data, "lastfm-2k/user_artists.dat")
  inter, report = read_csv(path, "userID", "artistID", "weight", delimiter="\t",
                           return_report=True)
  assert inter.nnz == 92_834 and inter.shape == (1_892, 17_632)
  assert (inter.matrix.data.min(), inter.matrix.data.max()) == (1, 352_698)
  assert report.lines == 92_835  # header + rows (CRLF line endings)
  # Positional columns with header="auto" give the same matrix.
  again = read_csv(path, 0, 1, 2, delimiter="\t")
  assert (again.matrix != inter.matrix).nnz == 0


def test_ml1m_partial_rating_holdout(shared_data):
  """configs/autorec_ml1m.py's 90/10 split of the real file: every rating lands in exactly one of
  train / validation / test with its value, the test split is 10% of the file, and the refit's
  training count is the one configs/kernel_ae_ml1m.py writes its per-rating regularization over."""
  path = shared_file(shared_data, "ml-1m/partial-users-1-2999/ratings.dat.gz")
  file = read_movielens(path, rating_range=(1, 5))
  data = autorec_ml1m.get_config().data
  data.path = str(path)
  ds = pipelines.load_dataset(data, 0)
  parts = [ds.train, ds.val.targets, ds.test.targets]
  assert [p.nnz for p in parts] == [394_997, 43_888, 48_765]
  assert sum(p.nnz for p in parts) == file.nnz
  # rows = movies, columns = users (item-based); back to the file's (user, movie) order
  whole = sum(p.matrix for p in parts).T.tocsr()
  assert sum((p.matrix != 0).astype(np.int32) for p in parts).max() == 1
  np.testing.assert_array_equal(ds.train.col_ids, file.row_ids)
  np.testing.assert_array_equal(ds.train.row_ids, file.col_ids)
  assert (whole != file.matrix).nnz == 0
  data.val_fraction = 0.0
  refit = pipelines.load_dataset(data, 0)
  assert refit.train.nnz == kernel_ae_ml1m.N_TRAIN_RATINGS
  assert (refit.test.targets.matrix != ds.test.targets.matrix).nnz == 0   # the same test split
