"""Strong generalization through the ``csv`` pipeline (``split="users"``) and the engine: whole
users held out, never trained on (``Dataset.train_rows``), scored from their fold-in entries.
The split itself (``splits.strong_generalization``) is tested in test_splits.py."""

from __future__ import annotations

import gzip

import jax
import numpy as np
import pytest

from configs import base
from configs import cdae_gowalla
from configs import mult_dae_gowalla
from configs import mult_vae_ml1m
from jaxae import evaluate as eval_lib
from jaxae import predict
from jaxae.data import pipelines
from jaxae.data.dataset import Dataset
from jaxae.errors import ConfigError
from jaxae.training.loop import train_and_evaluate

from tests.conftest import shared_file
from tests.test_csv_pipeline import NAMED, load, log_records, write

USERS = dict(split="users", fold_in_fraction=0.8, min_entries_to_split=5)


def test_users_are_held_out_whole(tmp_path):
  path = write(tmp_path / "log.csv", log_records(1, users=80))
  ds = load(path, **NAMED, **USERS, test_fraction=0.1, val_fraction=0.25)
  n = ds.n_rows
  assert (len(ds.test.rows), len(ds.val.rows)) == (8, 18)      # 0.1 of 80; 0.25 of the other 72
  groups = [set(ds.train_rows), set(ds.val.rows), set(ds.test.rows)]
  assert sum(map(len, groups)) == n and len(set.union(*groups)) == n
  assert set(np.flatnonzero(ds.train.row_lengths())) == groups[0]     # held-out rows are empty
  for es, rows in ((ds.val, groups[1]), (ds.test, groups[2])):
    assert set(np.flatnonzero(es.inputs.row_lengths())) == rows       # fold-in: theirs only
    assert set(np.flatnonzero(es.targets.row_lengths())) <= rows
    given = es.inputs.row_lengths()[sorted(rows)]
    held = es.targets.row_lengths()[sorted(rows)]
    np.testing.assert_array_equal(held, np.floor((given + held) * 0.2 + 1e-9))
  info = ds.info["heldout_users"]
  assert (info["n_test_users"], info["n_val_users"]) == (8, 18)
  assert info["n_train_users"] == len(ds.train_rows) == n - 26
  # The refit (no validation users) tests the same users on the same entries.
  refit = load(path, **NAMED, **USERS, test_fraction=0.1, val_fraction=0)
  assert refit.val is None and len(refit.train_rows) == n - 8
  np.testing.assert_array_equal(refit.test.rows, ds.test.rows)
  assert refit.test.targets.nnz == ds.test.targets.nnz


@pytest.mark.parametrize("overrides, pattern", [
    (dict(split="per_user", fold_in_fraction=0.8), r"fold_in_fraction=0.8 is for split='users'"),
    (dict(split="entries", min_entries_to_split=5), r"min_entries_to_split=5 is for split='users'"),
    (dict(split="users", fold_in_fraction=0.8), r"needs fold_in_fraction .* and "
                                                r"min_entries_to_split"),
    (dict(USERS, fold_in_fraction=1.0), r"config.data.fold_in_fraction"),
    (dict(USERS, min_entries_to_split=0), r"config.data.min_entries_to_split"),
    (dict(USERS, orientation="item"), r"orientation='item' makes rows items"),
    (dict(USERS, test_fraction=0.0005), r"test_fraction=0.0005 of 600 users holds no user"),
    (dict(USERS, test_fraction=0, val_fraction=0), r"holds out no user"),
])
def test_bad_user_split_settings_name_the_key(overrides, pattern):
  with pytest.raises(ConfigError, match=pattern):
    load(**overrides)                          # the synthetic data: 600 users


def _data(path, **data):
  return base.csv_data(path=str(path), **NAMED, **USERS, **data)


def _config(path, model: str, **data):
  c = base.get_base()
  c.data = _data(path, **data)
  c.model.name = model
  c.eval = base.topn_eval(5)
  return c


def test_per_user_parameters_are_refused(tmp_path):
  path = write(tmp_path / "log.csv", log_records(2))
  c = cdae_gowalla.get_config()
  c.data = _data(path)
  with pytest.raises(ConfigError, match="'cdae' holds parameters of each training user"):
    train_and_evaluate(c, str(tmp_path / "wd"))


def test_training_sees_the_train_users_only(tmp_path):
  """A Mult-DAE trained on the split (every user's row, held-out rows empty) ends with the params
  of one trained on a matrix of the train users' rows alone: the same batches, no empty row."""
  path = write(tmp_path / "log.csv", log_records(3, users=70))
  c = mult_dae_gowalla.get_config()
  c.data = _data(path, val_fraction=0)
  c.model.layers = (16,)
  c.train.batch_size = 16
  c.train.epochs = 2
  c.eval.evaluators = ()
  ds = load(path, **NAMED, **USERS, val_fraction=0)
  assert len(ds.train_rows) < ds.n_rows
  train_and_evaluate(c, str(tmp_path / "split"), dataset=ds)
  compact = Dataset(ds.train.select_rows(ds.train_rows), info=dict(ds.info))
  train_and_evaluate(c, str(tmp_path / "compact"), dataset=compact)
  a, b = (eval_lib.load_checkpoint(str(tmp_path / w)).params for w in ("split", "compact"))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), a, b)


def test_test_users_are_scored_from_their_fold_in(tmp_path):
  """Most popular on the split: Recall@5 of eval.py --split=test equals numpy's ranking of the
  train users' item counts, each test user's fold-in items excluded, against their targets."""
  path = write(tmp_path / "log.csv", log_records(4, users=90, per_user=15))
  c = _config(path, "most_popular", test_fraction=0.2, val_fraction=0.1)
  workdir = str(tmp_path / "wd")
  train_and_evaluate(c, workdir)
  got = eval_lib.evaluate_workdir(workdir, split="test", write=False)["metrics"]
  ds = load(path, **NAMED, **USERS, test_fraction=0.2, val_fraction=0.1)
  counts = (ds.train.matrix > 0).sum(0).A1.astype(np.float64)
  recalls = []
  for u in ds.test.rows:
    target = set(ds.test.targets.matrix[u].indices)
    if not target:
      continue
    score = counts.copy()
    score[ds.test.inputs.matrix[u].indices] = -np.inf
    top = np.lexsort((np.arange(len(score)), -score))[:5]   # ties to the lower column
    recalls.append(len(target & set(top)) / len(target))
  assert got["rows_evaluated"] == len(recalls) == len(ds.test.rows)
  np.testing.assert_allclose(got["recall@5"], np.mean(recalls), rtol=1e-6)


def test_predict_writes_the_query_s_own_users(tmp_path):
  """predict --query=test ranks for the test users from their fold-in (the evaluator's rows and
  inputs), --query=train for the train users; neither writes the others' empty rows."""
  path = write(tmp_path / "log.csv", log_records(5, users=50))
  workdir = str(tmp_path / "wd")
  train_and_evaluate(_config(path, "most_popular", test_fraction=0.2, val_fraction=0.1), workdir)
  ds = load(path, **NAMED, **USERS, test_fraction=0.2, val_fraction=0.1)
  for query, rows, inputs in (("test", ds.test.rows, ds.test.inputs),
                              ("train", ds.train_rows, ds.train)):
    out = tmp_path / query
    meta = predict.recommend(workdir, out, top_k=3, query=query)
    assert meta["users"] == f"{query} users" and meta["counts"]["users_cold"] == 0
    users = (out / predict.USERS_FILE).read_text().split()
    assert users == [str(u) for u in ds.train.row_ids[rows]]
    idx = np.load(out / predict.IDX_FILE)
    for r, top in zip(rows, idx):
      assert not set(top) & set(inputs.matrix[r].indices)     # the user's own items excluded


@pytest.mark.data
def test_movielens_1m_users_against_the_file(shared_data):
  """configs/mult_vae_ml1m.py's data section on the real ratings: the users and positives kept
  equal a plain reading of the file, and every positive is a train, fold-in or target entry or
  counted as dropped."""
  path = shared_file(shared_data, "ml-1m/partial-users-1-2999/ratings.dat.gz")
  positives = {}
  with gzip.open(path, "rt") as f:
    for line in f:
      u, i, r, _ = line.split("::")
      if float(r) > 3.5:
        positives.setdefault(int(u), set()).add(int(i))
  users = sorted(u for u, items in positives.items() if len(items) >= 5)
  total = sum(len(positives[u]) for u in users)
  c = mult_vae_ml1m.ml1m_heldout_users()
  c.path = str(path)
  ds = pipelines.load_dataset(c, 0)
  np.testing.assert_array_equal(ds.train.row_ids, users)
  info = ds.info["heldout_users"]
  parts = (ds.train.nnz + ds.val.inputs.nnz + ds.val.targets.nnz + ds.test.inputs.nnz
           + ds.test.targets.nnz)
  assert parts + info["val_dropped_unseen_items"] + info["test_dropped_unseen_items"] == total
  assert len(ds.test.rows) == round(0.1 * len(users))
  assert len(ds.val.rows) == round(0.1 * (len(users) - len(ds.test.rows)))
  for u in ds.train.row_ids[ds.train_rows[:50]]:       # a train user keeps every positive
    row = int(np.searchsorted(ds.train.row_ids, u))
    assert set(ds.train.col_ids[ds.train.matrix[row].indices]) == positives[u]
