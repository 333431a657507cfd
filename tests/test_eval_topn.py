"""Tests of the Recall@K / NDCG@K evaluator against hand-computed values and a numpy reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.sparse as sp

from jaxae.data.dataset import Dataset, EvalSplit
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError, DataError
from jaxae.evaluation import EvalContext, build_evaluators
from jaxae.evaluation.topn import TopNEvaluator
from jaxae import topk
from jaxae.topk import top_k


def _inter(dense) -> Interactions:
  dense = np.asarray(dense, np.float32)
  return Interactions(sp.csr_matrix(dense), np.arange(dense.shape[0]), np.arange(dense.shape[1]))


def _onehot(n_rows, n_cols, items_per_row) -> np.ndarray:
  m = np.zeros((n_rows, n_cols), np.float32)
  for r, items in enumerate(items_per_row):
    m[r, list(items)] = 1
  return m


def _table_score_fn(table):
  """A stand-in model: the score of row r is a fixed row of ``table`` (ignores the input)."""
  table = jnp.asarray(table, jnp.float32)
  return lambda batch: table[batch.rows]


def _cfg(ks, topk_group=0):
  return ml_collections.ConfigDict(dict(evaluators=["topn"], ks=list(ks), metric="ndcg@2",
                                        metric_mode="max", batch_size=4, topk_group=topk_group))


def _run(train, test, scores, ks, batch_size=4, num_shards=1, rows=None, topk_group=0):
  ds = Dataset(train=_inter(train), val=EvalSplit(_inter(train), _inter(test), rows=rows))
  ctx = EvalContext(score_fn=_table_score_fn(scores), dataset=ds, split="val",
                    batch_size=batch_size, num_shards=num_shards)
  return TopNEvaluator(_cfg(ks, topk_group), ds, "val").run(ctx)


# The hand case: 3 users x 6 items, K in {2, 3}.
SCORES = [[0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
          [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
          [0.5, 0.1, 0.9, 0.3, 0.8, 0.2]]
TRAIN = _onehot(3, 6, [{0}, {4, 5}, set()])
TEST = _onehot(3, 6, [{1, 3, 5}, {2}, {0, 1, 2, 4}])
L2, L3, L4 = math.log2(2), math.log2(3), math.log2(4)    # discounts of ranks 0, 1, 2


def _hand_expected():
  # user 0: item 0 excluded -> ranking 1, 2, 3, 4, 5; test {1, 3, 5} (|test| = 3 > K = 2).
  #   K=2: top [1, 2] hits [1, 0]: recall 1/3, recall_liang 1/min(2,3) = 1/2,
  #        ndcg = (1/L2) / (1/L2 + 1/L3).
  #   K=3: top [1, 2, 3] hits [1, 0, 1]: recall 2/3, recall_liang 2/3,
  #        ndcg = (1/L2 + 1/L4) / (1/L2 + 1/L3 + 1/L4).
  # user 1: items 4, 5 (the two best scores) excluded -> ranking 3, 2, 1, 0; test {2}.
  #   K=2 and K=3: the hit is at rank 1: recall 1, recall_liang 1, ndcg = (1/L3) / (1/L2).
  # user 2: nothing excluded -> ranking 2, 4, 0, 3, 5, 1; test {0, 1, 2, 4} (|test| = 4).
  #   K=2: top [2, 4] hits [1, 1]: recall 2/4, recall_liang 2/2, ndcg 1.
  #   K=3: top [2, 4, 0] hits [1, 1, 1]: recall 3/4, recall_liang 3/3, ndcg 1.
  u0_ndcg2 = (1 / L2) / (1 / L2 + 1 / L3)
  u0_ndcg3 = (1 / L2 + 1 / L4) / (1 / L2 + 1 / L3 + 1 / L4)
  u1_ndcg = (1 / L3) / (1 / L2)
  return {
      "recall@2": (1 / 3 + 1 + 2 / 4) / 3,
      "recall@2_liang": (1 / 2 + 1 + 1) / 3,
      "ndcg@2": (u0_ndcg2 + u1_ndcg + 1) / 3,
      "recall@3": (2 / 3 + 1 + 3 / 4) / 3,
      "recall@3_liang": (2 / 3 + 1 + 1) / 3,
      "ndcg@3": (u0_ndcg3 + u1_ndcg + 1) / 3,
  }


def test_hand_computed_3_users_6_items():
  m = _run(TRAIN, TEST, SCORES, ks=[3, 2])
  expected = _hand_expected()
  for name, value in expected.items():
    assert m[name] == pytest.approx(value, rel=1e-6), name
  # The two definitions differ exactly where |test| > K.
  assert m["recall@2"] < m["recall@2_liang"]
  assert m["rows_evaluated"] == 3 and m["rows_skipped_no_targets"] == 0
  assert set(m) == set(expected) | {"rows_evaluated", "rows_skipped_no_targets",
                                    "targets_cold_rows", "targets_cold_cols"}


@pytest.mark.parametrize("batch_size,num_shards", [(1, 1), (2, 1), (2, 2), (3, 1), (8, 4)])
def test_chunking_invariance(batch_size, num_shards):
  full = _run(TRAIN, TEST, SCORES, ks=[2, 3], batch_size=3)
  chunked = _run(TRAIN, TEST, SCORES, ks=[2, 3], batch_size=batch_size, num_shards=num_shards)
  for name, value in full.items():
    assert chunked[name] == pytest.approx(value, rel=1e-6), name


def test_training_items_are_excluded():
  # One user whose two best-scored items are its training items; the target is third.
  # With exclusion the target ranks first: recall@1 = 1, ndcg@1 = 1 (without it, both 0).
  m = _run(_onehot(1, 4, [{0, 1}]), _onehot(1, 4, [{2}]), [[0.9, 0.8, 0.7, 0.1]], ks=[1])
  assert m["recall@1"] == 1.0 and m["ndcg@1"] == 1.0


def test_excluded_target_never_counts_as_hit():
  # 3 items, item 0 is both a training and a test item, K = 3 > the 2 items left to rank:
  # top_k returns the excluded item 0 last (score -inf); it must not count as a hit.
  # Test {0, 2}; ranking 2 (0.5), 1 (0.2), [0 excluded]: hits [1, 0, -] -> recall@3 = 1/2.
  m = _run(_onehot(1, 3, [{0}]), _onehot(1, 3, [{0, 2}]), [[0.9, 0.2, 0.5]], ks=[3])
  assert m["recall@3"] == pytest.approx(0.5)


def test_rows_without_targets_are_skipped_and_counted():
  train = np.vstack([TRAIN, _onehot(2, 6, [{1}, {2}])])
  test = np.vstack([TEST, np.zeros((2, 6), np.float32)])
  scores = SCORES + [[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]]
  m = _run(train, test, scores, ks=[2, 3], batch_size=2)
  assert m["rows_evaluated"] == 3 and m["rows_skipped_no_targets"] == 2
  for name, value in _hand_expected().items():
    assert m[name] == pytest.approx(value, rel=1e-6), name
  # An explicit row subset: user 1 only (recall 1, ndcg 1/L3), plus one skipped row.
  m1 = _run(train, test, scores, ks=[2], rows=np.array([4, 1]))
  assert m1["rows_evaluated"] == 1 and m1["rows_skipped_no_targets"] == 1
  assert m1["recall@2"] == 1.0 and m1["ndcg@2"] == pytest.approx(1 / L3, rel=1e-6)


def _numpy_reference(train, test, scores, ks):
  """Straightforward dense numpy Recall@K (both definitions) and NDCG@K over rows with targets."""
  s = np.where(train > 0, -np.inf, scores.astype(np.float64))
  order = np.argsort(-s, axis=1, kind="stable")
  rel = (test > 0)[np.arange(len(s))[:, None], order].astype(np.float64)
  n_t = (test > 0).sum(axis=1).astype(np.float64)
  keep = n_t > 0
  out = {}
  for k in ks:
    hits = rel[:, :k]
    disc = 1 / np.log2(np.arange(k) + 2)
    idcg = np.array([disc[:int(min(k, t))].sum() for t in n_t])
    out[f"recall@{k}"] = np.mean((hits.sum(1) / np.maximum(n_t, 1))[keep])
    out[f"recall@{k}_liang"] = np.mean((hits.sum(1) / np.maximum(np.minimum(k, n_t), 1))[keep])
    out[f"ndcg@{k}"] = np.mean(((hits * disc).sum(1) / np.where(idcg > 0, idcg, 1))[keep])
  return out, int(keep.sum())


def test_equals_numpy_reference_on_random_data():
  rng = np.random.default_rng(7)
  n_rows, n_cols, ks = 29, 40, [1, 5, 10]
  train = (rng.random((n_rows, n_cols)) < 0.15).astype(np.float32)
  test = ((rng.random((n_rows, n_cols)) < 0.15) & (train == 0)).astype(np.float32)
  test[3] = 0                                          # a row without targets
  scores = rng.normal(size=(n_rows, n_cols)).astype(np.float32)
  expected, n_eval = _numpy_reference(train, test, scores, ks)
  m = _run(train, test, scores, ks=ks, batch_size=8, num_shards=2)
  assert m["rows_evaluated"] == n_eval and m["rows_skipped_no_targets"] == n_rows - n_eval
  for name, value in expected.items():
    assert m[name] == pytest.approx(value, rel=1e-5, abs=1e-7), name


@pytest.mark.parametrize("n_cols,k,group", [(1000, 10, 8), (1000, 10, 3), (1000, 7, 100),
                                             (1000, 10, 1), (257, 50, 4), (257, 50, 6)])
def test_group_top_k_equals_lax_top_k(n_cols, k, group):
  # (1000, 7, 100) and (257, 50, 4) take the group path; (1000, 10, 1) and (257, 50, 6) fall back.
  """Same values and columns as jax.lax.top_k, ties and -inf included; groups too wide for the
  row fall back to jax.lax.top_k."""
  rng = np.random.default_rng(n_cols + k + group)
  scores = np.round(rng.normal(size=(33, n_cols)), 1).astype(np.float32)   # many ties
  scores[rng.random(scores.shape) < 0.05] = -np.inf
  scores[0, :] = 0.0                                                      # a row of ties only
  scores[1, : n_cols - 3] = -np.inf                                       # fewer than K finite
  scores[2, :] = -np.inf
  scores[2, [5, 900 % n_cols, n_cols - 1]] = 1.0                           # ties across groups
  ref_v, ref_i = jax.lax.top_k(jnp.asarray(scores), k)
  v, i = jax.jit(lambda s: top_k(s, k, group))(jnp.asarray(scores))
  np.testing.assert_array_equal(np.asarray(i), np.asarray(ref_i))
  np.testing.assert_array_equal(np.asarray(v), np.asarray(ref_v))


def _exclusion_case(n_cols, k, seed):
  """(scores [17, n_cols], seg, cols, real, top_k of the scores with the real entries at -inf):
  ties, -inf, duplicate and unsorted entries, a row with every column excluded (row 1), a row's
  best columns excluded (2), the last columns (3), padding entries at row 4's best columns (they
  exclude nothing)."""
  rng = np.random.default_rng(seed)
  b = 17
  scores = np.round(rng.normal(size=(b, n_cols)), 1).astype(np.float32)   # many ties
  scores[rng.random(scores.shape) < 0.05] = -np.inf
  scores[0, :] = 0.0                                                      # ties only
  seg, cols = [], []
  for r in range(b):
    m = int(rng.integers(0, n_cols // 4))
    c = rng.choice(n_cols, m)                                 # duplicates, any order
    if r == 1:
      c = np.arange(n_cols)                                   # everything excluded
    elif r == 2:
      c = np.argsort(-scores[2], kind="stable")[: 3 * k]       # the row's best columns
    elif r == 3:
      c = np.concatenate([np.arange(n_cols - 5, n_cols), c])  # the (short) last group
    seg += [r] * len(c)
    cols += list(c)
  n_real = len(seg)
  n_pad = 64
  seg += [4] * n_pad                                          # padding at row 4's best columns
  cols += list(np.argsort(-scores[4], kind="stable")[:n_pad])
  perm = rng.permutation(n_real)                              # entries in no particular order
  seg = np.asarray(seg, np.int32)
  cols = np.asarray(cols, np.int32)
  seg[:n_real], cols[:n_real] = seg[:n_real][perm], cols[:n_real][perm]
  real = np.arange(len(seg)) < n_real
  excluded = scores.copy()
  excluded[seg[real], cols[real]] = -np.inf
  return scores, seg, cols, real, jax.lax.top_k(jnp.asarray(excluded), k)


@pytest.mark.parametrize("n_cols,k,group", [(1000, 10, 8), (1000, 7, 100), (1001, 10, 3),
                                             (257, 50, 4), (257, 50, 6), (1000, 10, 0)])
def test_top_k_excluding_equals_top_k_of_the_excluded_scores(n_cols, k, group):
  """Through groups the score block is only read; the result is exactly top_k of the scores with
  -inf written at the excluded entries (:func:`_exclusion_case`), for groups that do and do not
  divide the row, and the fallbacks."""
  scores, seg, cols, real, (ref_v, ref_i) = _exclusion_case(n_cols, k, n_cols + k + group)
  v, i = jax.jit(lambda *a: topk.top_k_excluding(*a, k=k, group=group))(
      jnp.asarray(scores), jnp.asarray(seg), jnp.asarray(cols), jnp.asarray(real))
  np.testing.assert_array_equal(np.asarray(i), np.asarray(ref_i))
  np.testing.assert_array_equal(np.asarray(v), np.asarray(ref_v))
  assert np.isneginf(np.asarray(v)[1]).all()


@pytest.mark.parametrize("n_cols,k,group,tile", [
    (1000, 10, 8, 32),     # the first block (>= k groups) spans 3 tiles; a padded last tile
    (1000, 10, 8, 200),    # one tile holds the first k groups
    (1001, 10, 0, 100),    # group 0: runs of jax.lax.top_k over each tile, merged
    (1000, 7, 100, 300),   # groups of 100, the first block 3 tiles
    (257, 50, 6, 6),       # k groups would not fit in the row: groups of 1
    (257, 50, 4, 256),     # two tiles, the second one column and 255 of padding
    (257, 50, 4, 512),     # one tile longer than the row
])
def test_top_k_tiled_equals_top_k_of_the_excluded_scores(n_cols, k, group, tile):
  """Scores that come ``tile`` columns at a time, ranked as they come: exactly top_k of the whole
  block with -inf at the excluded entries (:func:`_exclusion_case`); columns past the row's end
  (the last tile's padding, here filled with +inf) are never chosen."""
  scores, seg, cols, real, (ref_v, ref_i) = _exclusion_case(n_cols, k, n_cols + k + group)
  n_pad = -(-n_cols // tile) * tile
  padded = jnp.asarray(np.pad(scores, ((0, 0), (0, n_pad - n_cols)), constant_values=np.inf))

  def run(padded, seg, cols, real):
    def block(start, width):
      return jax.lax.dynamic_slice_in_dim(padded, start, width, axis=1)
    return topk.top_k_tiled(block, n_cols, n_pad, seg, cols, real, k, group, tile)

  v, i = jax.jit(run)(padded, jnp.asarray(seg), jnp.asarray(cols), jnp.asarray(real))
  np.testing.assert_array_equal(np.asarray(i), np.asarray(ref_i))
  np.testing.assert_array_equal(np.asarray(v), np.asarray(ref_v))


def test_topk_group_gives_the_same_metrics():
  rng = np.random.default_rng(11)
  n_rows, n_cols, ks = 21, 300, [1, 20, 50]
  train = (rng.random((n_rows, n_cols)) < 0.1).astype(np.float32)
  test = ((rng.random((n_rows, n_cols)) < 0.1) & (train == 0)).astype(np.float32)
  scores = np.round(rng.normal(size=(n_rows, n_cols)), 1).astype(np.float32)
  plain = _run(train, test, scores, ks=ks, batch_size=8, num_shards=2)
  grouped = _run(train, test, scores, ks=ks, batch_size=8, num_shards=2, topk_group=4)
  assert grouped == plain


def test_config_errors():
  ds = Dataset(train=_inter(TRAIN), val=EvalSplit(_inter(TRAIN), _inter(TEST)))
  for bad in ([], [0], [2.5], "20", [True]):
    with pytest.raises(ConfigError, match="config.eval.ks"):
      TopNEvaluator(ml_collections.ConfigDict({"ks": bad}), ds, "val")
  with pytest.raises(ConfigError, match="exceeds the 6 columns"):
    TopNEvaluator(_cfg([7]), ds, "val")
  for bad in (-1, 2.5, True, "64"):
    with pytest.raises(ConfigError, match="config.eval.topk_group: expected an integer >= 0, got "):
      TopNEvaluator(_cfg([2], topk_group=bad), ds, "val")
  with pytest.raises(ConfigError, match="config.eval.ks is missing"):
    TopNEvaluator(ml_collections.ConfigDict({"evaluators": ["topn"]}), ds, "val")
  assert isinstance(build_evaluators(_cfg([2]), ds, "val")[0], TopNEvaluator)
  empty = Dataset(train=_inter(TRAIN), val=EvalSplit(_inter(TRAIN), _inter(np.zeros((3, 6)))))
  ctx = EvalContext(score_fn=_table_score_fn(SCORES), dataset=empty, split="val", batch_size=2)
  with pytest.raises(DataError, match="no rows with held-out targets"):
    TopNEvaluator(_cfg([2]), empty, "val").run(ctx)
