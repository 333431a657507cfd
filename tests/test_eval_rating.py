"""Tests of the RMSE/MAE evaluator, the evaluator registry and the EvalContext helpers."""

from __future__ import annotations

import math

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.sparse as sp

from jaxae.data.dataset import Dataset, EvalSplit
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError, DataError
from jaxae.evaluation import EVALUATORS, EvalContext, build_evaluators
from jaxae.evaluation.rating import (RatingEvaluator, mae_from_predictions,
                                     rmse_from_predictions)


def _inter(dense) -> Interactions:
  dense = np.asarray(dense, np.float32)
  return Interactions(sp.csr_matrix(dense), np.arange(dense.shape[0]), np.arange(dense.shape[1]))


def _table_score_fn(table):
  """A stand-in model: the score of row r is a fixed row of ``table`` (ignores the input)."""
  table = jnp.asarray(table, jnp.float32)
  return lambda batch: table[batch.rows]


# 3 rows x 4 columns, ratings 1..5.
#   row 0 trains on col 0 (4) and col 1 (3); row 1 on col 1 (5) and col 2 (3); row 2 has no
#   training data (cold row); col 3 has no training data (cold column).
TRAIN = [[4, 3, 0, 0],
         [0, 5, 3, 0],
         [0, 0, 0, 0]]
# Held-out: (0, 2) = 4, (1, 0) = 2, (1, 3) = 2, (2, 1) = 4.
HELD = [[0, 0, 4, 0],
        [2, 0, 0, 2],
        [0, 4, 0, 0]]
# Model scores at the held-out entries: 7 at (0, 2), 2.5 at (1, 0), 0 at (1, 3), 3 at (2, 1).
SCORES = [[9, 9, 7, 9],
          [2.5, 9, 9, 0],
          [9, 3, 9, 9]]


def _dataset(rating_range=(1, 5), rows=None) -> Dataset:
  info = {"name": "tiny"}
  if rating_range is not None:
    info["rating_range"] = rating_range
  train = _inter(TRAIN)
  return Dataset(train=train, val=EvalSplit(train, _inter(HELD), rows=rows), info=info)


def _ctx(ds, batch_size=4, num_shards=1) -> EvalContext:
  return EvalContext(score_fn=_table_score_fn(SCORES), dataset=ds, split="val",
                     batch_size=batch_size, num_shards=num_shards)


def _eval_config(**kw):
  return ml_collections.ConfigDict(dict(evaluators=["rating"], metric="rmse", metric_mode="min",
                                        batch_size=4, **kw))


def test_rmse_mae_from_predictions_by_hand():
  # errors -1, 0, -2: squared 1, 0, 4 -> mean 5/3; absolute mean 3/3 = 1.
  assert rmse_from_predictions([1, 2, 3], [2, 2, 5]) == pytest.approx(math.sqrt(5 / 3))
  assert mae_from_predictions([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
  assert math.isnan(rmse_from_predictions([], []))
  with pytest.raises(ValueError):
    rmse_from_predictions([1, 2], [1])


@pytest.mark.parametrize("batch_size,num_shards", [(1, 1), (2, 2), (4, 2), (8, 4)])
def test_rating_evaluator_clipped_by_hand(batch_size, num_shards):
  # Clipped to [1, 5]: 7 -> 5 (target 4, error 1), 2.5 (target 2, error 0.5),
  # 0 -> 1 (target 2, error -1), 3 (target 4, error -1).
  # SSE = 1 + 0.25 + 1 + 1 = 3.25 -> RMSE = sqrt(3.25 / 4); MAE = 3.5 / 4.
  ds = _dataset()
  m = RatingEvaluator(_eval_config(), ds, "val").run(_ctx(ds, batch_size, num_shards))
  assert m["rmse"] == pytest.approx(math.sqrt(3.25 / 4), rel=1e-6)
  assert m["mae"] == pytest.approx(3.5 / 4, rel=1e-6)
  assert m["targets"] == 4
  # Row 2 has no training input -> its 1 target is cold; column 3 never trained -> 1 target.
  assert m["targets_cold_rows"] == 1
  assert m["targets_cold_cols"] == 1
  assert m["rows_evaluated"] == 3
  assert m["rows_skipped_no_targets"] == 0


def test_rating_evaluator_unclipped_without_range():
  # No rating_range: errors 3, 0.5, -2, -1 -> SSE 9 + 0.25 + 4 + 1 = 14.25; |e| sum 6.5.
  ds = _dataset(rating_range=None)
  m = RatingEvaluator(_eval_config(), ds, "val").run(_ctx(ds, batch_size=2))
  assert m["rmse"] == pytest.approx(math.sqrt(14.25 / 4), rel=1e-6)
  assert m["mae"] == pytest.approx(6.5 / 4, rel=1e-6)


def test_rating_evaluator_row_subset_and_skips():
  # rows [1] only -> errors 0.5 and -1 (clipped): SSE 1.25 over 2 targets.
  ds = _dataset(rows=np.array([1]))
  m = RatingEvaluator(_eval_config(), ds, "val").run(_ctx(ds, batch_size=2))
  assert m["rmse"] == pytest.approx(math.sqrt(1.25 / 2), rel=1e-6)
  assert m["targets"] == 2 and m["targets_cold_rows"] == 0 and m["targets_cold_cols"] == 1
  # A row without held-out ratings among the requested rows is skipped and counted.
  train = _inter(TRAIN + [[1, 0, 0, 0]])
  held = _inter(HELD + [[0, 0, 0, 0]])
  ds2 = Dataset(train=train, val=EvalSplit(train, held, rows=np.array([3, 0])),
                info={"rating_range": (1, 5)})
  scores = SCORES + [[0, 0, 0, 0]]
  ctx = EvalContext(score_fn=_table_score_fn(scores), dataset=ds2, split="val", batch_size=2)
  m2 = RatingEvaluator(_eval_config(), ds2, "val").run(ctx)
  assert m2["rows_evaluated"] == 1 and m2["rows_skipped_no_targets"] == 1
  assert m2["rmse"] == pytest.approx(1.0)          # row 0 only: 7 -> 5 vs 4


def test_rating_matches_numpy_reference_on_random_data():
  rng = np.random.default_rng(0)
  n_rows, n_cols = 23, 11
  train = np.where(rng.random((n_rows, n_cols)) < 0.3, rng.integers(1, 6, (n_rows, n_cols)), 0)
  held = np.where((rng.random((n_rows, n_cols)) < 0.2) & (train == 0),
                  rng.integers(1, 6, (n_rows, n_cols)), 0)
  scores = rng.normal(3.0, 2.0, (n_rows, n_cols)).astype(np.float32)
  ds = Dataset(train=_inter(train), val=EvalSplit(_inter(train), _inter(held)),
               info={"rating_range": (1, 5)})
  ctx = EvalContext(score_fn=_table_score_fn(scores), dataset=ds, split="val", batch_size=6,
                    num_shards=2)
  m = RatingEvaluator(_eval_config(), ds, "val").run(ctx)
  r, c = np.nonzero(held)
  pred = np.clip(scores[r, c], 1, 5)
  assert m["rmse"] == pytest.approx(rmse_from_predictions(pred, held[r, c]), rel=1e-5)
  assert m["mae"] == pytest.approx(mae_from_predictions(pred, held[r, c]), rel=1e-5)
  assert m["targets_cold_rows"] == int((train.sum(axis=1) == 0)[r].sum())
  assert m["targets_cold_cols"] == int((train.sum(axis=0) == 0)[c].sum())


def test_rating_errors_are_readable():
  ds = _dataset()
  empty = Dataset(train=ds.train, val=EvalSplit(ds.train, _inter(np.zeros((3, 4)))), info={})
  with pytest.raises(DataError, match="no held-out ratings"):
    RatingEvaluator(_eval_config(), empty, "val").run(_ctx(empty))
  with pytest.raises(ConfigError, match="no 'test' split"):
    RatingEvaluator(_eval_config(), ds, "test")
  bad = Dataset(train=ds.train, val=ds.val, info={"rating_range": (5, 1)})
  with pytest.raises(DataError, match="rating_range"):
    RatingEvaluator(_eval_config(), bad, "val")
  with pytest.raises(ConfigError, match="multiple"):
    RatingEvaluator(_eval_config(), ds, "val").run(_ctx(ds, batch_size=3, num_shards=2))


def test_build_evaluators_registry():
  ds = _dataset()
  evs = build_evaluators(_eval_config(), ds, "val")
  assert [e.name for e in evs] == ["rating"] and isinstance(evs[0], RatingEvaluator)
  assert EVALUATORS["rating"] is RatingEvaluator
  with pytest.raises(ConfigError, match="unknown evaluator 'nope'.*rating"):
    build_evaluators(ml_collections.ConfigDict({"evaluators": ["nope"]}), ds, "val")
  with pytest.raises(ConfigError, match="config.eval.evaluators is missing"):
    build_evaluators(ml_collections.ConfigDict({"metric": "rmse"}), ds, "val")
  with pytest.raises(ConfigError, match="list of names"):
    build_evaluators(ml_collections.ConfigDict({"evaluators": "rating"}), ds, "val")
  with pytest.raises(ConfigError, match="split must be one of"):
    build_evaluators(_eval_config(), ds, "train")
  assert build_evaluators(ml_collections.ConfigDict({"evaluators": []}), ds, "val") == []
