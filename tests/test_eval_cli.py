"""eval.py and jaxae.evaluate: a tiny trained run evaluated from its workdir in a fresh process, the
data-changed check, and the `eval.py melon` subcommand on hand-made answers / results files."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs.base import get_base
from jaxae import evaluate
from jaxae.errors import CheckpointError, ConfigError, DataError
from jaxae.training.loop import train_and_evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_PY = os.path.join(REPO, "eval.py")


def tiny_config():
  """Deep AE on the pipeline's synthetic MovieLens ratings (path=None): rebuildable from config."""
  c = get_base()
  c.data.name = "movielens"
  c.data.path = None
  c.data.split = "holdout"
  c.data.test_fraction = 0.2
  c.data.val_fraction = 0.1
  c.data.orientation = "user"
  c.data.rating_range = (1.0, 5.0)
  c.model.name = "deep_ae"
  c.model.layers = [8]
  c.model.activation = "selu"
  c.model.tied = False
  c.model.code_dropout = 0.0
  c.model.last_activation = False
  c.model.sparse_input = False
  c.model.dtype = "float32"
  c.loss.masked_mse = 1.0
  c.optim.lr = 1e-2
  c.train.batch_size = 128
  c.train.epochs = 2
  c.train.log_every_steps = 5
  c.train.keep_checkpoints = 2
  c.eval.evaluators = ["rating"]
  c.eval.metric = "rmse"
  c.eval.batch_size = 256
  return c


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("run"))
  final = train_and_evaluate(tiny_config(), workdir)
  return workdir, final


def run_cli(*args, cwd=None):
  return subprocess.run([sys.executable, EVAL_PY, *args], capture_output=True, text=True,
                        cwd=cwd or REPO, timeout=120)


def saved_steps(workdir):
  from jaxae.training.checkpoint import Checkpointer  # pylint: disable=import-outside-toplevel
  ckpt = Checkpointer(workdir, read_only=True)
  try:
    return sorted(ckpt.all_steps())
  finally:
    ckpt.close()


def read_json(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


# ------------------------------------------------------------------------------- evaluation
def test_eval_subprocess_matches_in_process_and_training(trained, tmp_path):
  workdir, final = trained
  proc = run_cli(f"--workdir={workdir}", "--split=val", cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr
  step = int(final["step"])
  latest = read_json(os.path.join(workdir, "metrics.json"))
  assert latest == read_json(os.path.join(workdir, f"metrics_val_step{step}.json"))
  assert latest["split"] == "val" and latest["step"] == step and latest["model"] == "deep_ae"

  in_process = evaluate.evaluate_workdir(workdir, None, "val", write=False)
  assert latest["metrics"].keys() == in_process["metrics"].keys()
  for k, v in in_process["metrics"].items():
    assert latest["metrics"][k] == pytest.approx(v, rel=1e-6), k
  # The training loop's final validation ran the same evaluator on the same params.
  for k in ("rmse", "mae", "targets", "rows_evaluated"):
    assert latest["metrics"][k] == pytest.approx(final[k], rel=1e-5), k
  # The table names every metric with its value.
  for k in ("rmse", "mae"):
    line = next(l for l in proc.stdout.splitlines() if l.split()[:1] == [k])
    assert float(line.split()[1]) == pytest.approx(latest["metrics"][k], rel=1e-5)


def test_eval_test_split_at_an_earlier_step(trained):
  workdir, final = trained
  steps = saved_steps(workdir)
  assert len(steps) == 2 and steps[-1] == final["step"]
  rec = evaluate.evaluate_workdir(workdir, steps[0], "test")
  assert rec["step"] == steps[0] and rec["split"] == "test"
  assert read_json(os.path.join(workdir, f"metrics_test_step{steps[0]}.json")) == rec
  assert read_json(os.path.join(workdir, "metrics.json")) == rec
  # The test split has its own targets (the 20% hold-out), more than val's 10% of the rest.
  val = evaluate.evaluate_workdir(workdir, steps[0], "val", write=False)
  assert rec["metrics"]["targets"] > val["metrics"]["targets"]
  assert rec["metrics"]["rmse"] != val["metrics"]["rmse"]


def test_best_picks_the_best_validation_checkpoint(trained, tmp_path):
  workdir, _ = trained
  steps = saved_steps(workdir)
  rmse = {s: evaluate.evaluate_workdir(workdir, s, "val", write=False)["metrics"]["rmse"]
          for s in steps}
  assert evaluate.best_step(workdir) == min(steps, key=rmse.get)
  proc = run_cli(f"--workdir={workdir}", "--best", "--split=test", cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr
  assert read_json(os.path.join(workdir, "metrics.json"))["step"] == min(steps, key=rmse.get)
  proc = run_cli(f"--workdir={workdir}", "--best", f"--step={steps[0]}", cwd=str(tmp_path))
  assert proc.returncode != 0 and "--best and --step" in proc.stderr
  # A run trained without validation (val_fraction=0) has no best: one clear error.
  c = tiny_config()
  c.data.val_fraction = 0.0
  no_val = str(tmp_path / "no_val")
  train_and_evaluate(c, no_val)
  with pytest.raises(CheckpointError, match="no kept checkpoint has a validation 'rmse'"):
    evaluate.best_step(no_val)
  assert evaluate.evaluate_workdir(no_val, None, "test", write=False)["metrics"]["rmse"] > 0


def test_missing_step_and_bad_split(trained):
  workdir, _ = trained
  with pytest.raises(CheckpointError, match="no checkpoint at step 3"):
    evaluate.evaluate_workdir(workdir, 3, "val", write=False)
  with pytest.raises(ConfigError, match="--split"):
    evaluate.evaluate_workdir(workdir, None, "train", write=False)


def test_data_changed_since_training(trained, tmp_path):
  workdir, _ = trained
  copy = str(tmp_path / "run")
  shutil.copytree(workdir, copy)
  id_maps = os.path.join(copy, "id_maps.npz")
  with np.load(id_maps) as z:
    rows, cols = z["row_ids"].copy(), z["col_ids"].copy()
  rows[5] = 10_000
  np.savez(id_maps, row_ids=rows, col_ids=cols)
  with pytest.raises(CheckpointError,
                     match=r"data changed since training: first differing row id at index 5: "
                           r"10000 at training, 6 now"):
    evaluate.evaluate_workdir(copy, None, "val", write=False)
  rows[5] = 6
  np.savez(id_maps, row_ids=rows, col_ids=cols[:-1])
  with pytest.raises(CheckpointError, match=r"training had 999 columns, the rebuilt data has 1000; "
                                            r"first differing column id at index 999"):
    evaluate.evaluate_workdir(copy, None, "val", write=False)
  os.remove(id_maps)
  with pytest.raises(CheckpointError, match="id_maps.npz: missing"):
    evaluate.evaluate_workdir(copy, None, "val", write=False)


def test_cli_errors_are_one_line(trained, tmp_path):
  workdir, _ = trained
  proc = run_cli(f"--workdir={workdir}", "--step=3")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f"error: {os.path.join(workdir, 'checkpoints')}: no checkpoint at step 3; saved steps: "
      f"{saved_steps(workdir)}"]
  with pytest.raises(CheckpointError, match=f"^{tmp_path / 'nothing'}: no such workdir$"):
    evaluate.evaluate_workdir(str(tmp_path / "nothing"))


# -------------------------------------------------------------------------------- melon files
def _disc(rank: int) -> float:
  return 1.0 / math.log(rank + 2)


def _idcg(n: int) -> float:
  return sum(_disc(i) for i in range(n))


def melon_files(tmp_path, *, short: bool = False):
  """Two answered playlists; their hits are placed at known ranks (see the expected values)."""
  answers = [{"id": 11, "songs": [1, 2], "tags": ["a"], "plylst_title": "", "like_cnt": 0,
              "updt_date": "2020-01-01 00:00:00.000"},
             {"id": 22, "songs": [3], "tags": ["b", "c"], "plylst_title": "", "like_cnt": 0,
              "updt_date": "2020-01-01 00:00:00.000"}]
  songs_11 = [1, 1000, 2] + list(range(2000, 2097))     # hits at ranks 0 and 2
  songs_22 = [5000, 3] + list(range(6000, 6098))        # hit at rank 1
  tags_11 = ["a"] + [f"t{i}" for i in range(9)]         # hit at rank 0
  tags_22 = ["x", "c"] + [f"t{i}" for i in range(8)]    # hit at rank 1
  if short:
    songs_22 = songs_22[:99]
  results = [{"id": 11, "songs": songs_11, "tags": tags_11},
             {"id": 22, "songs": songs_22, "tags": tags_22}]
  types = {"11": "song_only", "22": "tag_only"}
  paths = {}
  for name, obj in (("answers", answers), ("results", results), ("types", types)):
    paths[name] = str(tmp_path / f"{name}.json")
    with open(paths[name], "w", encoding="utf-8") as f:
      json.dump(obj, f)
  return paths


def expected_melon():
  music = [(_disc(0) + _disc(2)) / _idcg(2), _disc(1) / _idcg(1)]
  tag = [_disc(0) / _idcg(1), _disc(1) / _idcg(2)]
  return music, tag


def test_melon_subcommand_scores_hand_made_files(tmp_path):
  paths = melon_files(tmp_path)
  music, tag = expected_melon()
  m, t = sum(music) / 2, sum(tag) / 2
  proc = run_cli("melon", f"--answers={paths['answers']}", f"--results={paths['results']}",
                 f"--question_types={paths['types']}")
  assert proc.returncode == 0, proc.stderr
  table = {l.split()[0]: float(l.split()[1]) for l in proc.stdout.splitlines()[1:]}
  assert table["music_ndcg"] == pytest.approx(m, rel=1e-5)
  assert table["tag_ndcg"] == pytest.approx(t, rel=1e-5)
  assert table["score"] == pytest.approx(0.85 * m + 0.15 * t, rel=1e-5)
  assert table["count"] == 2
  assert table["music_ndcg/song_only"] == pytest.approx(music[0], rel=1e-5)
  assert table["tag_ndcg/tag_only"] == pytest.approx(tag[1], rel=1e-5)

  scores = evaluate.score_melon_files(paths["answers"], paths["results"])
  assert scores["music_ndcg"] == pytest.approx(m, rel=1e-12)
  assert scores["tag_ndcg"] == pytest.approx(t, rel=1e-12)
  assert "per_type" not in scores


def test_melon_subcommand_malformed_results(tmp_path):
  paths = melon_files(tmp_path, short=True)
  proc = run_cli("melon", f"--answers={paths['answers']}", f"--results={paths['results']}")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines() == [
      f"error: {paths['results']}: playlist 22 has 99 songs, expected exactly 100"]

  with open(paths["results"], "w", encoding="utf-8") as f:
    f.write('[{"id": 11, "songs": [1, 2],\n "tags": ]')
  with pytest.raises(DataError, match=f"^{paths['results']}: not valid JSON at line 2 column 10"):
    evaluate.score_melon_files(paths["answers"], paths["results"])


def test_melon_scoring_errors_name_the_file(tmp_path):
  paths = melon_files(tmp_path)
  with open(paths["results"], encoding="utf-8") as f:
    results = json.load(f)
  results[1]["id"] = 33
  with open(paths["results"], "w", encoding="utf-8") as f:
    json.dump(results, f)
  with pytest.raises(DataError, match=rf"^{paths['results']}: playlist 33 is not a question"):
    evaluate.score_melon_files(paths["answers"], paths["results"])
  with pytest.raises(DataError, match="no such question types file"):
    evaluate.score_melon_files(paths["answers"], paths["results"], str(tmp_path / "none.json"))


def tiny_melon_config():
  """configs/song_as_user.py on the tiny synthetic Melon world, one epoch of a small model."""
  from configs import song_as_user  # pylint: disable=import-outside-toplevel
  c = song_as_user.get_config()
  c.data.synthetic_size = "tiny"
  c.model.layers = [16, 8]
  c.model.sparse_input = False
  c.train.batch_size = 512
  c.train.epochs = 1
  c.eval.batch_size = 512
  return c


@pytest.mark.slow
def test_melon_run_writes_submission_that_scores_the_same(tmp_path):
  """A tiny song-as-user run on the synthetic Melon world: eval writes results.json, and scoring
  that file against the split's answers gives the metrics eval reported."""
  from jaxae.data import pipelines  # pylint: disable=import-outside-toplevel
  from jaxae.data.readers import melon as melon_reader  # pylint: disable=import-outside-toplevel
  c = tiny_melon_config()
  c.eval.empty_answers = "error"
  workdir = str(tmp_path / "melon")
  train_and_evaluate(c, workdir)
  rec = evaluate.evaluate_workdir(workdir, None, "test")
  assert rec["metrics"]["questions"] > 0
  answers = str(tmp_path / "test_answers.json")
  melon_reader.write_playlists(pipelines.load_dataset(c.data, c.seed).extras["test_answers"],
                               answers)
  scores = evaluate.score_melon_files(answers, os.path.join(workdir, "results.json"))
  assert scores["count"] == rec["metrics"]["questions"]
  assert scores["music_ndcg"] == pytest.approx(rec["metrics"]["music_ndcg"], rel=1e-12)
  assert scores["tag_ndcg"] == pytest.approx(rec["metrics"]["tag_ndcg"], rel=1e-12)
  assert scores["score"] == pytest.approx(rec["metrics"]["melon_score"], rel=1e-12)


def test_melon_overrides_change_the_recommender_for_one_evaluation(tmp_path):
  """``--override`` re-scores a trained seed B run with other recommender settings: arguments its
  saved config never held (a run saved before ``song_vote_power`` existed) included."""
  c = tiny_melon_config()
  c.eval.recommender_args = dict(song_neighbours=10, tag_neighbours=50)   # the published votes
  workdir = str(tmp_path / "melon")
  train_and_evaluate(c, workdir)
  plain = evaluate.evaluate_workdir(workdir, None, "val", write=False)
  assert "overrides" not in plain
  same = evaluate.evaluate_workdir(workdir, None, "val", write=False, overrides={
      "eval.recommender_args.song_vote_power": 0.0, "eval.recommender_args.tag_vote_power": 0})
  assert same["overrides"] == {"eval.recommender_args.song_vote_power": 0.0,
                               "eval.recommender_args.tag_vote_power": 0}
  assert same["metrics"] == plain["metrics"]                # power 0: the published votes
  weighted = evaluate.evaluate_workdir(workdir, None, "val", write=False, overrides={
      "eval.recommender_args.song_neighbours": 40, "eval.recommender_args.song_vote_power": 2.0})
  assert weighted["metrics"]["music_ndcg"] != plain["metrics"]["music_ndcg"]
  assert weighted["metrics"]["tag_ndcg"] == plain["metrics"]["tag_ndcg"]   # tags untouched
  popular = evaluate.evaluate_workdir(workdir, None, "val", write=False, overrides={
      "eval.recommender": "most_popular", "eval.recommender_args": {}})
  for k in ("music_ndcg", "tag_ndcg", "melon_score"):
    assert popular["metrics"][k] == plain["metrics"][f"baseline/most_popular/{k}"], k
  # The saved config is untouched: the next evaluation is the run's own again.
  assert evaluate.evaluate_workdir(workdir, None, "val", write=False)["metrics"] == plain["metrics"]


def test_override_errors(trained, tmp_path):
  workdir, _ = trained
  for overrides, message in (
      ({"model.layers": (3,)}, r"^--override model.layers: only config.eval.\* settings can "
                               r"change at evaluation \(the model and the data are the "
                               r"checkpoint's\)$"),
      ({"eval.batchsize": 3}, r"^--override eval.batchsize: the config has no key "
                              r"eval.batchsize$"),
      ({"eval.nosuch.x": 3}, r"^--override eval.nosuch.x: the config has no section "
                             r"eval.nosuch$"),
      ({"eval.batch_size": "many"}, r"^--override eval.batch_size='many': ")):
    with pytest.raises(ConfigError, match=message):
      evaluate.evaluate_workdir(workdir, None, "val", write=False, overrides=overrides)
  proc = run_cli(f"--workdir={workdir}", "--override=eval.batch_size=many", cwd=str(tmp_path))
  assert proc.returncode != 0
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --override 'eval.batch_size=many': not a Python literal; strings need quotes, e.g. "
      "eval.recommender='most_popular'")
  proc = run_cli(f"--workdir={workdir}", "--override=eval.batch_size=64", "--split=val",
                 cwd=str(tmp_path))
  assert proc.returncode == 0, proc.stderr
  rec = read_json(os.path.join(workdir, "metrics.json"))
  assert rec["overrides"] == {"eval.batch_size": 64}
  assert rec["metrics"]["rmse"] == pytest.approx(
      evaluate.evaluate_workdir(workdir, None, "val", write=False)["metrics"]["rmse"], rel=1e-6)


def test_write_results_submission_format(tmp_path):
  path = str(tmp_path / "results.json")
  records = [{"id": np.int64(7), "songs": np.arange(3), "tags": np.array(["발라드"])}]
  evaluate.write_results(records, path)
  with open(path, encoding="utf-8") as f:
    text = f.read()
  assert json.loads(text) == [{"id": 7, "songs": [0, 1, 2], "tags": ["발라드"]}]
  assert "발라드" in text                      # UTF-8, not \\u escapes, as the Kakao files
