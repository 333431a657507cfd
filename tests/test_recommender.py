"""jaxae.recommender.Recommender: a run loaded from its workdir alone ranks items for new users'
histories exactly as ``jaxae.predict --input`` and a numpy ranking of the model's own scores do;
histories as lists, rating mappings or a sparse matrix give the same; unknown / repeated items are
counted; a call's shapes are bucketed (a second call of the same bucket compiles nothing); every
refusal is one readable error."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import shutil

import jax
import ml_collections
import numpy as np
import pytest
import scipy.sparse as sp

from jaxae import evaluate as eval_lib
from jaxae import export
from jaxae import predict
from jaxae.data.matrix import Interactions
from jaxae.errors import CheckpointError, ConfigError, DataError
from jaxae.recommender import IdLookup, Recommender, catalog
from jaxae.training.loop import train_and_evaluate

from tests.conftest import run_on_eight_devices
from tests.test_eval_cli import tiny_config
from tests.test_predict import (K, N_ITEMS, N_USERS, _train, config, item_dataset, model_scores,
                                read_out, reference, user_dataset)


@pytest.fixture(scope="module")
def users_run(tmp_path_factory):
  """A deep AE on implicit data passed in directly: its config cannot rebuild the data, so what
  works here needs the workdir alone."""
  ds = user_dataset()
  return _train(tmp_path_factory, "users", config(), ds), ds


@pytest.fixture(scope="module")
def rated_run(tmp_path_factory):
  """A deep AE on the pipeline's synthetic MovieLens ratings (rating range 1..5)."""
  workdir = str(tmp_path_factory.mktemp("rated"))
  train_and_evaluate(tiny_config(), workdir)
  return workdir


def histories(ds, rows):
  """The raw item ids of training rows ``rows`` of ``ds``, one list a row."""
  m = ds.train.matrix
  return [list(ds.train.col_ids[m.indices[m.indptr[r]:m.indptr[r + 1]]]) for r in rows]


def test_every_training_user_s_history_gives_the_model_s_ranking(users_run):
  """All 37 training users (5 chunks of the run's eval batch of 8): the top K of the model's own
  scores with the history excluded; as lists or as the sparse matrix; include_seen too."""
  workdir, ds = users_run
  rec = Recommender.load(workdir)
  assert rec.n_items == N_ITEMS and rec.rating_range is None
  assert repr(rec).startswith("Recommender(deep_ae step ") and "29 items, implicit)" in repr(rec)
  np.testing.assert_array_equal(rec.item_ids, ds.train.col_ids)
  out = rec.recommend(histories(ds, range(N_USERS)), k=K)
  scores = model_scores(workdir, ds, ds.train)
  seen = ds.train.matrix.toarray() > 0
  want_idx, want_score = reference(scores, seen, K)
  np.testing.assert_array_equal(out.index, want_idx)
  np.testing.assert_allclose(out.scores, want_score, rtol=1e-5)
  assert out.counts == {"users": N_USERS, "users_cold": 0, "users_short": 1, "unknown_items": 0,
                        "duplicates_merged": 0}
  assert out.items()[3] == list(ds.train.col_ids[want_idx[3][want_idx[3] >= 0]])
  assert len(out.items()[3]) == 2                      # FULL: two items left, the -1s left out
  same = rec.recommend(ds.train.matrix, k=K)
  np.testing.assert_array_equal(same.index, out.index)
  np.testing.assert_array_equal(same.scores, out.scores)
  seen_too = rec.recommend(sp.coo_matrix(ds.train.matrix), k=K, exclude_seen=False)
  np.testing.assert_array_equal(seen_too.index, reference(scores, None, K)[0])
  # The output layer scored apart (config.eval.score_dtype), float32 operands: the same ranking.
  head = Recommender.load(workdir, score_dtype="float32")
  assert head.ranker.head is not None and not head.ranker.fallback
  np.testing.assert_array_equal(head.recommend(ds.train.matrix, k=K).index, want_idx)


def _other(name: str):
  """The tiny test config with another model: EASE (closed form) or Mult-VAE."""
  c = config()
  c.model = ml_collections.ConfigDict(
      {"ease": dict(name="ease", l2=5.0, sparse_input=True),
       "mult_vae": dict(name="mult_vae", layers=[8, 4], input_dropout=0.0, activation="tanh",
                        sparse_input=True, dtype="float32")}[name])
  if name == "mult_vae":
    c.loss = ml_collections.ConfigDict(dict(multinomial=1.0, kl=1.0))
  return c


@pytest.mark.parametrize("name", ["ease", "mult_vae"])
def test_other_user_row_models_fold_in_alike(name, tmp_path_factory):
  """EASE (scores from the rows of B at the history's items) and Mult-VAE (the mean code at
  evaluation): the model's own scores, ranked, for every training user's history."""
  ds = user_dataset()
  workdir = _train(tmp_path_factory, name, _other(name), ds)
  out = Recommender.load(workdir).recommend(histories(ds, range(N_USERS)), k=K)
  want, _ = reference(model_scores(workdir, ds, ds.train), ds.train.matrix.toarray() > 0, K)
  np.testing.assert_array_equal(out.index, want)
  if name == "ease":           # no output layer vector per item: refused with the reason
    with pytest.raises(ConfigError, match="ease has no output-layer vector per item"):
      Recommender.load(workdir).similar_items([500])


def test_excluded_items_are_never_recommended(users_run):
  """exclude_items: the model's ranking with those columns (and the history) left out, for
  every training user; ids the catalog lacks counted; FULL is left with one item."""
  workdir, ds = users_run
  rec = Recommender.load(workdir)
  run = eval_lib.load_checkpoint(workdir)          # the output layer scored apart, in tiles of 8
  run.config.eval.score_dtype = "float32"
  run.config.eval.score_tile = 8
  tiled = Recommender(run, catalog(run))
  assert tiled.ranker.tile == 8 and tiled.ranker.head is not None
  scores = model_scores(workdir, ds, ds.train)
  seen = ds.train.matrix.toarray() > 0
  for banned in ([511], [504, 500, 527, 503, 508]):
    off = seen.copy()
    off[:, np.asarray(banned) - 500] = True
    want_idx, want_score = reference(scores, off, K)
    for r in (rec, Recommender.load(workdir, score_dtype="float32"), tiled):
      out = r.recommend(histories(ds, range(N_USERS)), k=K, exclude_items=banned + [77777])
      np.testing.assert_array_equal(out.index, want_idx)
      np.testing.assert_allclose(out.scores, want_score, rtol=1e-5)
      assert out.counts["excluded_items"] == len(banned) and out.counts["exclude_unknown"] == 1
  # FULL had items 504 and 511 left (indices 4, 11): 504 is banned in the second list.
  assert list(out.index[3]) == [11] + [-1] * (K - 1) and out.counts["users_short"] >= 1
  with pytest.raises(DataError, match="exclude_items: expected a list of item ids, got int"):
    rec.recommend([[500]], k=K, exclude_items=500)


def test_the_same_as_predict_input_from_the_workdir_alone(users_run, tmp_path):
  """predict --input (no dataset given: none can be rebuilt from this run's config) writes what
  the Recommender returns; unknown items dropped and counted, a user with none left is cold."""
  workdir, ds = users_run
  hist = histories(ds, [6, 0, 11])
  hist[1] = hist[1] + [99999]
  hist.append([77777])
  lines = [f"n{u}\t{item}" for u, h in enumerate(hist) for item in h]
  path = tmp_path / "new.tsv"
  path.write_text("\n".join(lines) + "\n")
  meta = predict.recommend(workdir, str(tmp_path / "out"), top_k=K, input_path=str(path))
  idx, score, _, users, _ = read_out(tmp_path / "out")
  assert users == ["n0", "n1", "n2", "n3"]
  out = Recommender.load(workdir).recommend(hist, k=K)
  np.testing.assert_array_equal(out.index, idx)
  np.testing.assert_allclose(out.scores, score, rtol=1e-6)
  np.testing.assert_array_equal(out.unknown, [0, 1, 0, 1])
  assert out.counts["unknown_items"] == meta["counts"]["input_entries_unknown_items"] == 2
  assert out.counts["users_cold"] == meta["counts"]["users_cold"] == 1
  with pytest.raises(ConfigError, match="'tiny' is not a known pipeline"):   # the run's users
    # (the rest of predict) need the data rebuilt
    predict.recommend(workdir, str(tmp_path / "o2"), top_k=K)


def test_ids_as_text_duplicates_and_empty_calls(users_run):
  workdir, ds = users_run
  rec = Recommender.load(workdir)
  a = rec.recommend([[500, 503, 510]], k=K)
  b = rec.recommend([["500", "503", "510", "503", 500]], k=K)     # digits match integer ids
  np.testing.assert_array_equal(a.index, b.index)
  assert b.counts["duplicates_merged"] == 2 and a.counts["duplicates_merged"] == 0
  np.testing.assert_array_equal(rec.item_index([503, "x", "528", 529]), [3, -1, 28, -1])
  np.testing.assert_array_equal(rec.item_index(np.array([528, 499, 500])), [28, -1, 0])  # by value
  np.testing.assert_array_equal(rec.item_index(np.array([-1, 10**12, 529], np.int64)), [-1] * 3)
  # Histories as arrays (of ints, of digit strings, mixed) rank as the lists do.
  arrays = rec.recommend([np.array([500, 503, 510]), np.array(["503", "528"])], k=K)
  lists = rec.recommend([[500, 503, 510], [503, 528]], k=K)
  np.testing.assert_array_equal(arrays.index, lists.index)
  with pytest.raises(DataError, match="history of user 0: expected a list of item ids, got a 2-d"):
    rec.recommend([np.array([[500, 503]])], k=K)
  none = rec.recommend([], k=K)
  assert none.index.shape == (0, K) and none.counts["users"] == 0
  cold = rec.recommend([[]], k=K)
  assert cold.counts["users_cold"] == 1 and (cold.index >= 0).all()


def test_similar_items_are_the_export_s_neighbours(users_run):
  """similar_items of some items = the rows of export's cosine neighbours of the decoder vectors
  (one query alone, several, an unknown id counted)."""
  workdir, ds = users_run
  rec = Recommender.load(workdir)
  run = rec.run
  vectors = export.decoder_vectors(run.config.model, run.params, N_ITEMS)
  idx, score = (np.asarray(a) for a in export.cosine_neighbors(vectors, 4))
  one = rec.similar_items([510], k=4)
  np.testing.assert_array_equal(one.index, idx[[10]])
  np.testing.assert_allclose(one.scores, score[[10]], rtol=1e-5, atol=1e-6)
  many = rec.similar_items(["503", 999, 528, 500], k=4)
  np.testing.assert_array_equal(many.index[[0, 2, 3]], idx[[3, 28, 0]])
  assert (many.index[1] == -1).all() and np.isneginf(many.scores[1]).all()
  np.testing.assert_array_equal(many.unknown, [0, 1, 0, 0])
  assert many.counts == {"items": 4, "unknown_items": 1}
  assert many.items()[1] == [] and many.items()[0] == list(ds.train.col_ids[idx[3]])
  with pytest.raises(ConfigError, match=r"k must be between 1 and 28"):
    rec.similar_items([500], k=29)
  with pytest.raises(DataError, match="items: expected a list of item ids, got str"):
    rec.similar_items("500")


def test_calls_from_several_threads_give_the_sequential_results(users_run):
  """A server's worker threads share one Recommender: calls of several sizes at once (new
  buckets compiling meanwhile) return what the calls return one after another."""
  workdir, ds = users_run
  rec = Recommender.load(workdir)
  asks = [histories(ds, range(i, i + n)) for i, n in ((0, 1), (3, 6), (10, 3), (5, 20))] * 3
  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    together = list(pool.map(lambda h: rec.recommend(h, k=K).index, asks))
  for h, got in zip(asks, together):
    np.testing.assert_array_equal(got, rec.recommend(h, k=K).index)


def test_loading_logs_no_warning(users_run, caplog):
  """Restoring read-only is what loading asks: orbax's notice of it is not passed on."""
  with caplog.at_level(logging.WARNING):
    Recommender.load(users_run[0])
  assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize("vocab", [np.array([7, -3, 10**12, 0]), np.array([40, 3, 17, 0]),
                                   np.array(["b", "a", "7", "c"])])
def test_id_lookup_by_table_or_by_search(vocab):
  """Small non-negative integer ids by a direct table, others by binary search: the same
  positions, -1 for what the vocabulary lacks."""
  look = IdLookup(vocab)
  assert (look.table is not None) == (vocab.dtype.kind == "i" and vocab.min() >= 0)
  probe = np.concatenate([vocab[::-1], vocab[:1]])
  np.testing.assert_array_equal(look.find(probe), [3, 2, 1, 0, 0])
  missing = np.array([5, -9, 10**13]) if vocab.dtype.kind == "i" else np.array(["z", "", "70"])
  np.testing.assert_array_equal(look.find(missing), [-1, -1, -1])


def _count_compiles():
  """A list that grows by one entry for every backend compile from now on."""
  seen = []

  def listener(event, duration, **kwargs):
    del duration, kwargs
    if event == "/jax/core/compile/backend_compile_duration":
      seen.append(event)

  jax.monitoring.register_event_duration_secs_listener(listener)
  return seen, listener


def test_calls_of_one_bucket_compile_once(users_run):
  """3 users with 21 entries and 4 users with 20 share the (4 users, 32 entries) bucket: the
  second call compiles nothing; a call of 5 users (an 8-row bucket) compiles."""
  workdir, ds = users_run
  rec = Recommender.load(workdir)
  rec.recommend(histories(ds, [1, 2, 5]), k=K)
  seen, listener = _count_compiles()
  try:
    rec.recommend(histories(ds, [0, 4, 5, 13]), k=K)
    assert seen == []
    rec.recommend(histories(ds, [0, 4, 5, 13, 6]), k=K)
    assert seen
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def test_rated_runs_take_rating_mappings(rated_run):
  """On rated data: a history is a mapping item -> rating, checked against the run's range; the
  ranking equals the model's scores of that rating row."""
  rec = Recommender.load(rated_run)
  assert rec.rating_range == (1.0, 5.0)
  ids = rec.item_ids
  out = rec.recommend([{ids[0]: 5, ids[4]: 1.5}, {str(ids[2]): 3, "zzz": 4}], k=4)
  np.testing.assert_array_equal(out.unknown, [0, 1])
  q = np.zeros((2, rec.n_items))
  q[0, [0, 4]] = [5, 1.5]
  q[1, 2] = 3
  query = Interactions.from_coo(*np.nonzero(q), q[np.nonzero(q)], row_ids=np.arange(2),
                                col_ids=np.arange(rec.n_items))
  run = eval_lib.load_checkpoint(rated_run)
  ds = eval_lib.rebuild_dataset(run)
  want, _ = reference(model_scores(rated_run, ds, query), q > 0, 4)
  np.testing.assert_array_equal(out.index, want)
  with pytest.raises(DataError, match=r"a rating of user 1: expected a rating in \[1, 5\].*9"):
    rec.recommend([{ids[0]: 5}, {ids[1]: 9}], k=4)
  with pytest.raises(DataError, match="history of user 0: a list of items, but the run's data "
                                      "has ratings"):
    rec.recommend([[ids[0]]], k=4)
  with pytest.raises(DataError, match="a rating of user 1: not a number: 'good'"):
    rec.recommend([{ids[0]: 4}, {ids[1]: 2, ids[0]: "good"}], k=4)
  with pytest.raises(DataError, match=r"user 0: expected a rating .* got nan"):
    rec.recommend(sp.csr_matrix(np.full((1, rec.n_items), np.nan)), k=4)


def test_refusals(users_run, tmp_path_factory):
  workdir, ds = users_run
  rec = Recommender.load(workdir)
  with pytest.raises(ConfigError, match=r"k \(30\) exceeds the 29 items"):
    rec.recommend([[500]], k=30)
  with pytest.raises(ConfigError, match="k must be an integer >= 1"):
    rec.recommend([[500]], k=0)
  with pytest.raises(DataError, match="history of user 1: expected a list of item ids, got str"):
    rec.recommend([[500], "501"], k=K)
  with pytest.raises(DataError, match="expected one history per user"):
    rec.recommend({"u": [500]}, k=K)
  with pytest.raises(DataError, match="history of user 0: a mapping of ratings, but the run's "
                                      "data is implicit"):
    rec.recommend([{500: 1}], k=K)
  with pytest.raises(DataError, match=r"an entry of user 0: expected 1 \(the run's data is "
                                      r"implicit"):
    rec.recommend(sp.csr_matrix(np.full((1, N_ITEMS), 2.0)), k=K)
  with pytest.raises(DataError, match=r"shape \[n_users, 29\].*\(2, 5\)"):
    rec.recommend(sp.csr_matrix((2, 5)), k=K)
  with pytest.raises(ConfigError, match="best=True and step"):
    Recommender.load(workdir, best=True, step=1)
  copy = tmp_path_factory.mktemp("copy") / "run"
  shutil.copytree(workdir, copy)
  maps = copy / "id_maps.npz"
  np.savez(maps, row_ids=ds.train.row_ids, col_ids=ds.train.col_ids[:-1])
  with pytest.raises(CheckpointError, match="id_maps.npz holds 28 item ids, the checkpoint's model "
                                            "has 29 items"):
    Recommender.load(copy)
  maps.unlink()
  with pytest.raises(CheckpointError, match="id_maps.npz: missing"):
    Recommender.load(copy)
  items = _train(tmp_path_factory, "items", config(), item_dataset())
  with pytest.raises(ConfigError, match="item-row model .* new users cannot be folded in"):
    Recommender.load(items)
  cdae = _train(tmp_path_factory, "cdae", config("cdae"), ds)
  with pytest.raises(ConfigError, match="cdae holds parameters of each training user"):
    Recommender.load(cdae)
  melon = user_dataset()
  melon.info["orientation"] = "playlist"
  other = _train(tmp_path_factory, "playlists", config(), melon)
  with pytest.raises(ConfigError, match="rows of this run are 'playlist's.*eval.py"):
    Recommender.load(other)


_EIGHT = """
import json, sys
import jax
from jaxae.recommender import Recommender
assert jax.device_count() == 8
rec = Recommender.load(sys.argv[1])
hist = json.loads(sys.argv[2])
out = [rec.recommend(hist[:n], k=5).index.tolist() for n in (1, 3, len(hist))]
out.append(rec.recommend(hist, k=5, exclude_items=[503, 511]).index.tolist())
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_eight_devices_rank_as_one(users_run):
  """Calls padded to a multiple of 8 data shards (1, 3 and 37 users; excluded items) rank as on
  one device."""
  workdir, ds = users_run
  hist = [[int(x) for x in h] for h in histories(ds, range(N_USERS))]
  got = run_on_eight_devices(_EIGHT, workdir, json.dumps(hist))
  rec = Recommender.load(workdir)
  for n, idx in zip((1, 3, N_USERS), got):
    np.testing.assert_array_equal(np.asarray(idx), rec.recommend(hist[:n], k=5).index)
  np.testing.assert_array_equal(np.asarray(got[3]),
                                rec.recommend(hist, k=5, exclude_items=[503, 511]).index)
