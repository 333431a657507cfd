"""jaxae.predict: the top K of every user (or listed users, or new users folded in) equals a numpy
ranking of the model's own scores with the seen items excluded; item-row models rank down the
columns; the output files agree with each other; every refusal is one readable error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs.base import get_base
from jaxae import evaluate as eval_lib
from jaxae import predict
from jaxae.data.batching import full_batches
from jaxae.data.dataset import Dataset, EvalSplit
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError, DataError
from jaxae.models import build_model, has_row_params
from jaxae.training.loop import train_and_evaluate

from tests.conftest import run_on_eight_devices
from tests.test_eval_cli import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_USERS, N_ITEMS, K = 37, 29, 5
FULL = 3                       # this user has seen all but 2 items: fewer than K to recommend


def user_dataset() -> Dataset:
  """Users (string ids) x items (integer ids), implicit; a val split whose inputs add items."""
  rng = np.random.default_rng(1)
  seen = rng.random((N_USERS, N_ITEMS)) < 0.25
  seen[np.arange(N_USERS), rng.integers(0, N_ITEMS, N_USERS)] = True
  seen[FULL] = True
  seen[FULL, [4, 11]] = False
  users = np.array([f"u{i:02d}" for i in range(N_USERS)])
  items = np.arange(500, 500 + N_ITEMS)
  r, c = np.nonzero(seen)
  train = Interactions.from_coo(users[r], items[c], row_ids=users, col_ids=items)
  more = seen | (rng.random(seen.shape) < 0.1)                  # val inputs: train + some more
  r, c = np.nonzero(more)
  val_in = Interactions.from_coo(users[r], items[c], row_ids=users, col_ids=items)
  held = rng.random(seen.shape) < 0.05
  held[0, 0] = True
  r, c = np.nonzero(held)
  val_t = Interactions.from_coo(users[r], items[c], row_ids=users, col_ids=items)
  return Dataset(train, val=EvalSplit(val_in, val_t),
                 info={"name": "tiny_users", "orientation": "user", "implicit": True})


def item_dataset() -> Dataset:
  """Items x users ratings 1..5 (orientation "item", as I-AutoRec's)."""
  rng = np.random.default_rng(2)
  seen = rng.random((N_ITEMS, N_USERS)) < 0.3
  seen[np.arange(N_ITEMS), rng.integers(0, N_USERS, N_ITEMS)] = True
  vals = rng.integers(1, 6, seen.shape).astype(np.float32)
  items = np.array([f"i{i:02d}" for i in range(N_ITEMS)])
  users = np.arange(100, 100 + N_USERS)
  r, c = np.nonzero(seen)
  train = Interactions.from_coo(items[r], users[c], vals[r, c], row_ids=items, col_ids=users)
  return Dataset(train, info={"name": "tiny_items", "orientation": "item",
                              "rating_range": (1.0, 5.0)})


def config(model: str = "deep_ae"):
  c = get_base()
  c.data.name = "tiny"              # the dataset is passed in; nothing rebuilds it from config
  c.data.path = None
  c.model.name = model
  if model == "cdae":
    c.model.hidden = 6
    c.model.corruption = 0.2
    c.model.output = "sigmoid"
    c.loss.bce = 1.0
  else:
    c.model.layers = [6]
    c.model.activation = "selu"
    c.model.tied = False
    c.model.code_dropout = 0.0
    c.model.last_activation = False
    c.model.sparse_input = True
    c.model.dtype = "float32"
    c.loss.masked_mse = 1.0
    c.loss.mse = 0.5
  c.train.batch_size = 8
  c.train.epochs = 3
  c.train.log_every_steps = 4
  c.eval.batch_size = 8            # several chunks; the last one padded
  c.eval.topk_group = 2
  c.eval.evaluators = ("topn",)
  c.eval.ks = (K,)
  c.eval.metric = f"recall@{K}"
  return c


def _train(tmp_path_factory, name, cfg, ds):
  workdir = str(tmp_path_factory.mktemp(name))
  train_and_evaluate(cfg, workdir, dataset=ds)
  return workdir


@pytest.fixture(scope="module")
def users_run(tmp_path_factory):
  ds = user_dataset()
  return _train(tmp_path_factory, "users", config(), ds), ds


@pytest.fixture(scope="module")
def items_run(tmp_path_factory):
  ds = item_dataset()
  return _train(tmp_path_factory, "items", config(), ds), ds


def model_scores(workdir, ds, query: Interactions) -> np.ndarray:
  """[rows, cols] scores of every row of ``query`` from the run's own forward, in one batch."""
  run = eval_lib.load_checkpoint(workdir)
  ctx = eval_lib.make_context(run, Dataset(query, info=ds.info), "val")
  (batch,) = list(full_batches(query, query.shape[0], num_shards=ctx.num_shards))
  return np.asarray(ctx.score_fn(ctx.put_fn(batch)), np.float64)[:query.shape[0]]


def reference(scores: np.ndarray, seen: np.ndarray | None, k: int):
  """Top k of each row by numpy: ties to the lower index; seen entries excluded (-1 / -inf when
  fewer than k are left)."""
  s = scores.copy()
  if seen is not None:
    s[seen] = -np.inf
  idx = np.argsort(-s, axis=1, kind="stable")[:, :k]
  top = np.take_along_axis(s, idx, axis=1)
  return np.where(np.isfinite(top), idx, -1), top


def read_out(out):
  idx = np.load(os.path.join(out, predict.IDX_FILE))
  score = np.load(os.path.join(out, predict.SCORE_FILE))
  with open(os.path.join(out, predict.METADATA_FILE), encoding="utf-8") as f:
    meta = json.load(f)
  lines = {}
  for name in (predict.USERS_FILE, predict.ITEMS_FILE):
    with open(os.path.join(out, name), encoding="utf-8") as f:
      lines[name] = f.read().splitlines()
  return idx, score, meta, lines[predict.USERS_FILE], lines[predict.ITEMS_FILE]


def test_every_user_gets_the_top_k_of_the_model_s_scores_without_seen_items(users_run, tmp_path):
  workdir, ds = users_run
  out = str(tmp_path / "out")
  meta = predict.recommend(workdir, out, top_k=K, dataset=ds, tsv=True)
  idx, score, saved, users, items = read_out(out)
  assert saved == meta and meta["n_users"] == N_USERS and meta["exclude_seen"]
  scores = model_scores(workdir, ds, ds.train)
  want_idx, want_score = reference(scores, ds.train.matrix.toarray() > 0, K)
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(score, want_score, rtol=1e-5)
  assert users == list(ds.train.row_ids) and items == [str(i) for i in ds.train.col_ids]
  # The user who has seen all but two items gets those two, then -1 / -inf.
  assert sorted(idx[FULL, :2]) == [4, 11] and (idx[FULL, 2:] == -1).all()
  assert np.isneginf(score[FULL, 2:]).all()
  assert meta["counts"] == {"users_cold": 0, "users_short": 1}
  # recommendations.tsv: the same, as raw ids, ranks from 1, without the -1 slots.
  with open(os.path.join(out, predict.TSV_FILE), encoding="utf-8") as f:
    rows = [line.split("\t") for line in f.read().splitlines()]
  assert len(rows) == N_USERS * K - (K - 2)
  want = [(users[u], items[i], str(r + 1)) for u in range(N_USERS) for r, i in enumerate(idx[u])
          if i >= 0]
  assert [tuple(x[:3]) for x in rows] == want
  np.testing.assert_allclose([float(x[3]) for x in rows], score[idx >= 0], rtol=1e-6)


def test_listed_users_in_their_order_and_include_seen(users_run, tmp_path):
  workdir, ds = users_run
  listed = tmp_path / "users.txt"
  pick = [30, 2, 17, 0]
  listed.write_text("\n".join(ds.train.row_ids[pick]) + "\n\n")
  out = str(tmp_path / "out")
  meta = predict.recommend(workdir, out, top_k=K, users=str(listed), include_seen=True,
                           dataset=ds)
  idx, score, _, users, _ = read_out(out)
  assert users == list(ds.train.row_ids[pick]) and meta["users"] == "list"
  want_idx, want_score = reference(model_scores(workdir, ds, ds.train)[pick], None, K)
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(score, want_score, rtol=1e-5)
  # an unknown id, and a repeated one, name their line
  listed.write_text("u02\nnobody\n")
  with pytest.raises(DataError, match=r"users.txt:2: unknown user id 'nobody' \(1 of 2"):
    predict.recommend(workdir, out, users=str(listed), dataset=ds)
  listed.write_text("u02\n\nu05\nu02\n")
  with pytest.raises(DataError, match=r"users.txt:4: user id 'u02' listed twice"):
    predict.recommend(workdir, out, users=str(listed), dataset=ds)


def test_query_of_the_val_split_reads_and_excludes_its_inputs(users_run, tmp_path):
  workdir, ds = users_run
  out = str(tmp_path / "out")
  meta = predict.recommend(workdir, out, top_k=K, query="val", dataset=ds)
  idx, _, _, _, _ = read_out(out)
  val_in = ds.val.inputs
  want_idx, _ = reference(model_scores(workdir, ds, val_in), val_in.matrix.toarray() > 0, K)
  np.testing.assert_array_equal(idx, want_idx)
  assert meta["query"] == "val"
  assert not np.array_equal(idx, predict_train_idx(workdir, ds, tmp_path))


def test_recall_of_the_written_recommendations_is_the_evaluator_s(users_run, tmp_path):
  """Recall@K counted from the files of --query=val equals the top-N evaluator's on val."""
  workdir, ds = users_run
  out = str(tmp_path / "out")
  predict.recommend(workdir, out, top_k=K, query="val", dataset=ds)
  idx = read_out(out)[0]
  t = ds.val.targets.matrix
  rows = np.flatnonzero(np.diff(t.indptr))
  recall = np.mean([np.isin(idx[r], t.indices[t.indptr[r]:t.indptr[r + 1]]).sum()
                    / (t.indptr[r + 1] - t.indptr[r]) for r in rows])
  record = eval_lib.evaluate_workdir(workdir, split="val", dataset=ds, write=False)
  assert record["metrics"][f"recall@{K}"] > 0
  assert recall == pytest.approx(record["metrics"][f"recall@{K}"], abs=1e-6)


def predict_train_idx(workdir, ds, tmp_path):
  out = str(tmp_path / "train_out")
  predict.recommend(workdir, out, top_k=K, dataset=ds)
  return read_out(out)[0]


def test_new_users_are_folded_in_by_their_known_items(users_run, tmp_path):
  """A new user with a training user's items gets that user's recommendations; unknown items are
  dropped and counted; a user left with none is scored from an empty query (cold)."""
  workdir, ds = users_run
  row = ds.train.matrix[6].indices
  items = ds.train.col_ids
  lines = ["user\titem"] + [f"alice\t{items[i]}" for i in row] + ["alice\t99999", "bob\t77777",
                                                                  f"carol\t{items[0]}"]
  path = tmp_path / "new.tsv"
  path.write_text("\n".join(lines) + "\n")
  out = str(tmp_path / "out")
  meta = predict.recommend(workdir, out, top_k=K, input_path=str(path), tsv=True, dataset=ds)
  idx, score, _, users, _ = read_out(out)
  assert users == ["alice", "bob", "carol"] and meta["users"] == "input"
  assert meta["counts"]["input_entries_unknown_items"] == 2
  assert meta["counts"]["input_header"] == 1           # "user item": not a catalog item
  assert meta["counts"]["users_cold"] == 1
  trained = predict_train_idx(workdir, ds, tmp_path)
  np.testing.assert_array_equal(idx[0], trained[6])
  q = np.zeros((3, N_ITEMS))
  q[0, row] = 1
  q[2, 0] = 1
  query = Interactions.from_coo(*np.nonzero(q), row_ids=np.arange(3), col_ids=np.arange(N_ITEMS))
  want_idx, want_score = reference(model_scores(workdir, ds, query), q > 0, K)
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(score, want_score, rtol=1e-5)


def test_excluded_items_are_dropped_for_every_user(users_run, items_run, tmp_path):
  """--exclude_items: the ranking with those items' columns off, user-row and item-row runs;
  ids the catalog lacks counted."""
  listed = tmp_path / "gone.txt"
  for (workdir, ds), banned, item_rows in ((users_run, [511, 500, 503], False),
                                          (items_run, ["i04", "i11"], True)):
    listed.write_text("\n".join(map(str, banned)) + "\nnot-an-item\n\n")
    out = str(tmp_path / "out")
    meta = predict.recommend(workdir, out, top_k=K, exclude_items=str(listed), dataset=ds)
    idx, score, _, _, items = read_out(out)
    scores = model_scores(workdir, ds, ds.train)
    seen = ds.train.matrix.toarray() > 0
    if item_rows:
      scores, seen = scores.T, seen.T
    off = seen.copy()
    off[:, [items.index(str(b)) for b in banned]] = True
    want_idx, want_score = reference(scores, off, K)
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(score, want_score, rtol=1e-5)
    assert meta["counts"]["excluded_items"] == len(banned)
    assert meta["counts"]["exclude_unknown"] == 1 and meta["exclude_items"] == str(listed)


def test_item_row_models_rank_down_the_columns(items_run, tmp_path):
  """Orientation "item": each user's top K items from the columns of the items x users scores,
  merged over chunks of 8 item rows, the user's rated items excluded."""
  workdir, ds = items_run
  out = str(tmp_path / "out")
  meta = predict.recommend(workdir, out, top_k=K, dataset=ds)
  idx, score, _, users, items = read_out(out)
  assert meta["orientation"] == "item" and idx.shape == (N_USERS, K)
  assert users == [str(u) for u in ds.train.col_ids] and items == list(ds.train.row_ids)
  scores = model_scores(workdir, ds, ds.train).T                # [users, items]
  want_idx, want_score = reference(scores, ds.train.matrix.toarray().T > 0, K)
  np.testing.assert_array_equal(idx, want_idx)
  np.testing.assert_allclose(score, want_score, rtol=1e-5)
  listed = tmp_path / "u.txt"
  listed.write_text("120\n101\n")
  predict.recommend(workdir, out, top_k=K, users=str(listed), include_seen=True, dataset=ds)
  idx, _, _, users, _ = read_out(out)
  assert users == ["120", "101"]
  np.testing.assert_array_equal(idx, reference(scores[[20, 1]], None, K)[0])
  with pytest.raises(ConfigError, match="new users cannot be folded in"):
    predict.recommend(workdir, out, input_path=str(listed), dataset=ds)
  with pytest.raises(ConfigError, match="--score_dtype scores a user-row model"):
    predict.recommend(workdir, out, score_dtype="bfloat16", dataset=ds)


def test_explicit_ratings_are_read_and_checked_for_new_users(tmp_path):
  """With the run's rating range the third column is read and checked (a bad rating names the
  file); ids are matched as text; no header line here (the first item is a catalog item)."""
  path = tmp_path / "bad.tsv"
  path.write_text("7\t500\t9\n")
  info = {"rating_range": (1.0, 5.0)}
  with pytest.raises(DataError, match="bad.tsv"):
    predict.read_new_users(str(path), np.arange(500, 510), info, "\t")
  path.write_text("7\t500\t4\n7\t501\t2\n7\t999\t5\n")
  q, counts = predict.read_new_users(str(path), np.arange(500, 510), info, "\t")
  np.testing.assert_array_equal(q.matrix.toarray()[0, :2], [4, 2])
  assert counts["input_entries_unknown_items"] == 1 and q.shape == (1, 10)
  assert counts["input_header"] == 0 and counts["input_entries"] == 3


def test_refusals(users_run, tmp_path, tmp_path_factory):
  workdir, ds = users_run
  out = str(tmp_path / "out")
  with pytest.raises(ConfigError, match=r"--top_k \(30\) exceeds the 29 items"):
    predict.recommend(workdir, out, top_k=30, dataset=ds)
  with pytest.raises(ConfigError, match="--top_k must be an integer >= 1"):
    predict.recommend(workdir, out, top_k=0, dataset=ds)
  with pytest.raises(ConfigError, match="give one or the other"):
    predict.recommend(workdir, out, users="x", input_path="y", dataset=ds)
  with pytest.raises(DataError, match="no such input file"):
    predict.recommend(workdir, out, input_path=str(tmp_path / "none.tsv"), dataset=ds)
  path = tmp_path / "tab.csv"
  path.write_text("x\ty,500\n")
  with pytest.raises(DataError, match=r"user id 'x\\ty' contains a tab or line break: it cannot "
                                      r"be written to users.tsv"):
    predict.recommend(workdir, out, input_path=str(path), delimiter=",", dataset=ds)
  with pytest.raises(ConfigError, match="no 'test' split"):
    predict.recommend(workdir, out, query="test", dataset=ds)
  # Models with parameters of each training row cannot score new users.
  cfg = config("cdae")
  assert has_row_params(build_model(cfg.model, N_ITEMS, N_USERS))
  assert not has_row_params(build_model(config().model, N_ITEMS, N_USERS))
  cdae = _train(tmp_path_factory, "cdae", cfg, ds)
  path = tmp_path / "new.tsv"
  path.write_text("zed\t500\n")
  with pytest.raises(ConfigError, match="cdae holds parameters of each training user"):
    predict.recommend(cdae, out, input_path=str(path), dataset=ds)
  # Rows that are neither users nor items (Melon's playlists / songs): pointed to eval.py.
  melon = user_dataset()
  melon.info["orientation"] = "playlist"
  other = _train(tmp_path_factory, "playlists", config(), melon)
  with pytest.raises(ConfigError, match="rows of this run are 'playlist's.*eval.py"):
    predict.recommend(other, out, dataset=melon)


@pytest.fixture(scope="module")
def ml_runs(tmp_path_factory):
  """Deep AEs on the pipeline's synthetic MovieLens ratings (rebuildable from their configs), with
  users as rows and with items as rows."""
  runs = {}
  for orientation in ("user", "item"):
    cfg = tiny_config()
    cfg.data.orientation = orientation
    workdir = str(tmp_path_factory.mktemp(orientation))
    train_and_evaluate(cfg, workdir)
    runs[orientation] = workdir
  return runs


def test_command_line(ml_runs, tmp_path):
  """The command writes what the library writes and prints one summary line; new users' ratings
  come from the third column; a mistake is one error line."""
  cmd = [sys.executable, "-m", "jaxae.predict", "--nohugepages", "--top_k=10"]
  env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu")

  def run(*args):
    return subprocess.run(cmd + list(args), env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=300, check=False)

  proc = run(f"--workdir={ml_runs['user']}", "--out=cli", "--tsv")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith("wrote the top 10 of ") and "cold users" in proc.stdout
  idx, _, meta, users, _ = read_out(tmp_path / "cli")
  lib = predict.recommend(ml_runs["user"], str(tmp_path / "lib"), top_k=10)
  np.testing.assert_array_equal(idx, read_out(tmp_path / "lib")[0])
  assert meta["n_users"] == lib["n_users"] == len(users) and idx.shape == (len(users), 10)
  # New users with ratings (the run's data has a rating range): the third column is read.
  items = read_out(tmp_path / "lib")[4]
  # --exclude_items: the most recommended item never comes out.
  top = int(np.bincount(idx[idx >= 0]).argmax())
  (tmp_path / "gone.txt").write_text(f"{items[top]}\n")
  proc = run(f"--workdir={ml_runs['user']}", "--out=gone", "--exclude_items=gone.txt")
  assert proc.returncode == 0, proc.stderr[-3000:]
  gone = read_out(tmp_path / "gone")[0]
  assert not (gone == top).any() and (idx == top).any()
  (tmp_path / "new.tsv").write_text(f"ann\t{items[0]}\t5\nann\t{items[3]}\t1\nann\tzzz\t3\n")
  proc = run(f"--workdir={ml_runs['user']}", "--out=new", "--input=new.tsv")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "1 input entries with unknown items dropped" in proc.stdout
  (tmp_path / "new.tsv").write_text(f"ann\t{items[0]}\n")
  proc = run(f"--workdir={ml_runs['user']}", "--out=new", "--input=new.tsv")
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
  assert proc.stderr.startswith("error: ") and "new.tsv" in proc.stderr
  (tmp_path / "users.txt").write_text("no-such-user\n")
  proc = run(f"--workdir={ml_runs['user']}", "--out=o", "--users=users.txt")
  assert proc.returncode == 2 and proc.stderr.count("\n") == 1
  assert "users.txt:1: unknown user id 'no-such-user'" in proc.stderr
  proc = run(f"--workdir={ml_runs['user']}", "--out=o", "--best", "--step=1")
  assert proc.returncode == 1 and "--best and --step" in proc.stderr


_EIGHT = """
import json, sys
import jax, numpy as np
from jaxae import predict
assert jax.device_count() == 8
out = {}
for name, workdir in json.loads(sys.argv[1]).items():
  predict.recommend(workdir, sys.argv[2] + name, top_k=10)
  out[name] = np.load(sys.argv[2] + name + "/" + predict.IDX_FILE).tolist()
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_eight_devices_give_the_one_device_recommendations(ml_runs, tmp_path):
  """Chunks sharded over 8 simulated devices (user rows ranked per shard; item rows merged from
  sharded chunks) give what one device gives."""
  got = run_on_eight_devices(_EIGHT, json.dumps(ml_runs), str(tmp_path / "eight_"))
  for name, workdir in ml_runs.items():
    predict.recommend(workdir, str(tmp_path / name), top_k=10)
    np.testing.assert_array_equal(np.asarray(got[name]), read_out(tmp_path / name)[0],
                                  err_msg=name)
