"""The most-popular baseline: its counts are the training matrix's column counts (values ignored);
the evaluator's Recall@K, predict and the Recommender all rank by those counts with each row's own
items excluded (numpy reference, ties to the lower column); refusals are one readable line."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.sparse as sp

from jaxae import evaluate as eval_lib
from jaxae import export
from jaxae import predict
from jaxae.errors import ConfigError
from jaxae.models import CLOSED_FORM, build_model, is_trainable
from jaxae.models.most_popular import column_counts
from jaxae.recommender import Recommender
from jaxae.training.loop import check_config

from tests.test_predict import K, N_USERS, _train, config, read_out, reference, user_dataset
from tests.test_recommender import histories


def _config():
  c = config()
  c.model = type(c.model)(dict(name="most_popular"))
  del c.loss["masked_mse"], c.loss["mse"]
  return c


@pytest.fixture(scope="module")
def popular_run(tmp_path_factory):
  ds = user_dataset()
  return _train(tmp_path_factory, "popular", _config(), ds), ds


def test_counts_are_rows_per_column_whatever_the_values():
  x = sp.csr_matrix(np.array([[5, 0, 1], [3, 0, 0], [0, 0, 2], [4, 0, 0]], np.float32))
  np.testing.assert_array_equal(column_counts(x), [3, 0, 2])
  params = CLOSED_FORM["most_popular"](None, x)
  model = build_model(type(_config().model)(dict(name="most_popular")), 3, 4)
  assert not is_trainable(_config().model) and not model.trainable
  recon = model.apply({"params": params}, jax.numpy.ones((2, 3)))["recon"]
  np.testing.assert_array_equal(np.asarray(recon), [[3, 0, 2], [3, 0, 2]])


def test_every_path_ranks_by_popularity_without_the_user_s_items(popular_run, tmp_path):
  workdir, ds = popular_run
  counts = np.bincount(ds.train.matrix.indices, minlength=ds.n_cols).astype(np.float64)
  scores = np.broadcast_to(counts, (N_USERS, ds.n_cols))
  want_idx, want_score = reference(scores, ds.train.matrix.toarray() > 0, K)
  out = str(tmp_path / "out")
  predict.recommend(workdir, out, top_k=K, dataset=ds)
  idx, score = read_out(out)[:2]
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_array_equal(score, want_score.astype(np.float32))
  rec = Recommender.load(workdir).recommend(histories(ds, range(N_USERS)), k=K)
  np.testing.assert_array_equal(rec.index, want_idx)
  # The evaluator's Recall@K on val (inputs = train + some) from the same ranking by numpy.
  val_in, t = ds.val.inputs, ds.val.targets.matrix
  v_idx, _ = reference(np.broadcast_to(counts, val_in.shape), val_in.matrix.toarray() > 0, K)
  rows = np.flatnonzero(np.diff(t.indptr))
  recall = np.mean([np.isin(v_idx[r], t.indices[t.indptr[r]:t.indptr[r + 1]]).sum()
                    / (t.indptr[r + 1] - t.indptr[r]) for r in rows])
  record = eval_lib.evaluate_workdir(workdir, split="val", dataset=ds, write=False)
  assert recall > 0
  assert record["metrics"][f"recall@{K}"] == pytest.approx(recall, abs=1e-6)


def test_refusals(popular_run, tmp_path):
  c = _config()
  c.eval.evaluators = ("rating",)
  with pytest.raises(ConfigError, match="most_popular ranks items and predicts no ratings"):
    check_config(c)
  c = _config()
  c.model.l2 = 1.0
  with pytest.raises(ConfigError, match="unknown key.*l2.*most_popular"):
    build_model(c.model, 5, 5)
  workdir, _ = popular_run
  with pytest.raises(ConfigError, match="most_popular is not an embedding model"):
    export.export_embeddings(workdir, str(tmp_path / "emb"))
