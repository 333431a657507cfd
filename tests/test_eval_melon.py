"""The Kakao Arena Melon metric, its validation, and the Melon evaluator end to end."""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import inspect
import json
import math

import jax
import numpy as np
import pytest

from jaxae.data.dataset import Dataset
from jaxae.data.kakao_split import kakao_split
from jaxae.data.matrix import Interactions
from jaxae.data.readers.melon import read_playlists
from jaxae.data.sparse import densify
from jaxae.errors import ConfigError, DataError
from jaxae.evaluation import EVALUATORS, build_evaluators
from jaxae.evaluation.context import EvalContext
from jaxae.evaluation.melon import (MelonEvaluator, idcg_table, official_question_types,
                                    read_results, score_results, validate_results)
from jaxae.recommend import most_popular, song_as_user
from jaxae.training.logging import final_summary
from tests.conftest import shared_file

# The module (the package's name ``song_as_user`` is the function).
song_as_user_module = importlib.import_module("jaxae.recommend.song_as_user")


def _result(pid, songs_first=(), tags_first=(), song_base=1000, tag_base="r"):
  """A valid result: the given items first, then distinct filler items."""
  songs = list(songs_first) + [song_base + i for i in range(100 - len(songs_first))]
  tags = list(tags_first) + [f"{tag_base}{i}" for i in range(10 - len(tags_first))]
  return {"id": pid, "songs": songs, "tags": tags}


def _official_ndcg(gt, rec):
  """The official ArenaEvaluator._ndcg, retyped (a loop per song: the reference definition)."""
  idcgs = [sum(1.0 / np.log(i + 2) for i in range(n)) for n in range(101)]
  dcg = 0.0
  for i, r in enumerate(rec):
    if r in gt:
      dcg += 1.0 / np.log(i + 2)
  return dcg / idcgs[len(gt)]


# ------------------------------------------------------------------------------ hand-computed
def test_idcg_table_by_hand():
  t = idcg_table()
  assert t[0] == 0.0
  assert t[1] == pytest.approx(1 / math.log(2))
  assert t[3] == pytest.approx(1 / math.log(2) + 1 / math.log(3) + 1 / math.log(4))
  assert len(t) == 101


def test_score_hand_computed_with_idcg_quirk():
  answer_tags = [f"a{i}" for i in range(12)]          # 12 answer tags, only 10 can be recommended
  answers = [{"id": 1, "songs": [10, 20, 30], "tags": answer_tags},
             {"id": 2, "songs": [5], "tags": ["x"]}]
  results = [
      # songs: hits at ranks 1 and 3 (10, then 30); 20 never recommended.
      _result(1, songs_first=[10, 500, 30], tags_first=answer_tags[:10]),
      # songs: the only answer song at rank 2; tags: no hit.
      _result(2, songs_first=[501, 5]),
  ]
  s = score_results(answers, results)
  # Playlist 1 music: DCG = 1/ln2 + 1/ln4 = 1.442695 + 0.721348 = 2.164043; IDCG over len(answer)=3
  # ideal hits = 1/ln2 + 1/ln3 + 1/ln4 = 1.442695 + 0.910239 + 0.721348 = 3.074282 -> 0.703918.
  m1 = 0.703918
  # Playlist 1 tags: all 10 hit, but IDCG counts 12 ideal hits (the quirk):
  # sum_{i<10} 1/ln(i+2) = 6.554971, sum_{i<12} = 7.347271 -> 0.892164 (not 1.0).
  t1 = 0.892164
  # Playlist 2 music: (1/ln3) / (1/ln2) = 0.910239 / 1.442695 = 0.630930; tags 0.
  m2, t2 = 0.630930, 0.0
  assert s["music_ndcg"] == pytest.approx((m1 + m2) / 2, abs=1e-6)
  assert s["tag_ndcg"] == pytest.approx((t1 + t2) / 2, abs=1e-6)
  assert s["score"] == pytest.approx(0.85 * (m1 + m2) / 2 + 0.15 * (t1 + t2) / 2, abs=1e-6)
  assert s["count"] == 2 and "per_type" not in s


def test_matches_official_loop_on_random_data():
  rng = np.random.default_rng(0)
  answers, results = [], []
  for pid in range(60):
    n_s, n_t = int(rng.integers(1, 101)), int(rng.integers(1, 16))
    answers.append({"id": pid, "songs": rng.choice(300, n_s, replace=False).tolist(),
                    "tags": [f"t{x}" for x in rng.choice(40, n_t, replace=False)]})
    results.append({"id": pid, "songs": rng.choice(300, 100, replace=False).tolist(),
                    "tags": [f"t{x}" for x in rng.choice(40, 10, replace=False)]})
  results = results[::-1]                                  # order must not matter
  music = np.mean([_official_ndcg(a["songs"], r["songs"])
                   for a, r in zip(answers, results[::-1])])
  tag = np.mean([_official_ndcg(a["tags"], r["tags"]) for a, r in zip(answers, results[::-1])])
  s = score_results(answers, results)
  assert s["music_ndcg"] == pytest.approx(music, rel=1e-12)
  assert s["tag_ndcg"] == pytest.approx(tag, rel=1e-12)
  assert s["score"] == pytest.approx(0.85 * music + 0.15 * tag, rel=1e-12)


def test_per_type_breakdown_and_string_keys():
  answers = [{"id": 1, "songs": [1], "tags": ["a"]}, {"id": 2, "songs": [2], "tags": ["b"]},
             {"id": 3, "songs": [3], "tags": ["c"]}]
  results = [_result(1, [1], ["a"]), _result(2, [], []), _result(3, [3], [])]
  s = score_results(answers, results, {"1": "song_only", "2": "song_only", "3": "tags_only"})
  assert s["per_type"]["song_only"]["count"] == 2
  assert s["per_type"]["song_only"]["music_ndcg"] == pytest.approx(0.5)   # 1 and 0
  assert s["per_type"]["song_only"]["tag_ndcg"] == pytest.approx(0.5)
  assert s["per_type"]["tags_only"]["music_ndcg"] == pytest.approx(1.0)
  assert s["per_type"]["tags_only"]["tag_ndcg"] == pytest.approx(0.0)
  with pytest.raises(DataError, match="playlist 3 has no question type"):
    score_results(answers, results, {1: "a", 2: "b"})


def test_official_question_types():
  qs = [{"id": 1, "songs": [1], "tags": ["a"], "plylst_title": "x"},
        {"id": 2, "songs": [1], "tags": [], "plylst_title": ""},
        {"id": 3, "songs": [], "tags": ["a"], "plylst_title": "x"},
        {"id": 4, "songs": [], "tags": [], "plylst_title": ""}]
  assert official_question_types(qs) == {1: "all", 2: "song_only", 3: "tag_title", 4: "nothing"}


# ------------------------------------------------------------------------------ empty answers
def test_empty_answer_is_an_error_like_the_official_code():
  answers = [{"id": 7, "songs": [1], "tags": []}]
  with pytest.raises(DataError, match="playlist 7 has no tags.*division by zero"):
    score_results(answers, [_result(7, [1])])
  answers = [{"id": 8, "songs": [], "tags": ["a"]}]
  with pytest.raises(DataError, match="playlist 8 has no songs"):
    score_results(answers, [_result(8)])


def test_empty_answer_skip_mode():
  answers = [{"id": 1, "songs": [1], "tags": []}, {"id": 2, "songs": [9], "tags": ["a"]}]
  results = [_result(1, [1]), _result(2, [], ["a"])]
  s = score_results(answers, results, empty_answers="skip")
  assert s["music_ndcg"] == pytest.approx(0.5)        # playlist 1: 1, playlist 2: 0
  assert s["tag_ndcg"] == pytest.approx(1.0)          # only playlist 2 counts
  assert (s["music_count"], s["tag_count"], s["count"]) == (2, 1, 2)
  assert s["score"] == pytest.approx(0.85 * 0.5 + 0.15 * 1.0)
  with pytest.raises(ConfigError, match="empty_answers"):
    score_results(answers, results, empty_answers="zero")


def test_answer_longer_than_100_is_an_error():
  answers = [{"id": 1, "songs": list(range(101)), "tags": ["a"]}]
  with pytest.raises(DataError, match="playlist 1 has 101 songs"):
    score_results(answers, [_result(1)])


# ------------------------------------------------------------------------------ validation
ANSWERS = [{"id": 1, "songs": [1], "tags": ["a"]}, {"id": 2, "songs": [2], "tags": ["b"]}]


@pytest.mark.parametrize("results, message", [
    ([_result(1), _result(2), _result(1)], "playlist 1 is answered more than once"),
    ([_result(1), _result(2), _result(3)], "playlist 3 is not a question"),
    ([_result(1)], r"1 question\(s\) have no answer: playlist 2"),
    ([_result(1), {**_result(2), "songs": list(range(99))}],
     "playlist 2 has 99 songs, expected exactly 100"),
    ([_result(1), {**_result(2), "songs": list(range(101))}],
     "playlist 2 has 101 songs, expected exactly 100"),
    ([_result(1), {**_result(2), "songs": [5] + list(range(99))}],
     "playlist 2 recommends song 5 more than once"),
    ([{**_result(1), "tags": ["a"] * 9}, _result(2)], "playlist 1 has 9 tags, expected exactly 10"),
    ([_result(1), {**_result(2), "tags": ["x", "x"] + [f"y{i}" for i in range(8)]}],
     "playlist 2 recommends tag 'x' more than once"),
    ([_result(1), {**_result(2), "songs": ["s"] * 100}], r"record 1 \(playlist id 2\): songs must"),
    ([_result(1), {**_result(2), "tags": list(range(10))}],
     r"record 1 \(playlist id 2\): tags must"),
    ([_result(1), {"id": 2, "songs": list(range(100))}], r"playlist id 2\): missing key 'tags'"),
    ([_result(1), {**_result(2), "id": "2"}], "playlist id must be an integer"),
    ([_result(1), [1, 2]], "record 1: expected a JSON object"),
    ({"id": 1}, "expected Playlists or a list"),
])
def test_validation_errors(results, message):
  with pytest.raises(DataError, match=message):
    score_results(ANSWERS, results)


def test_validate_results_returns_arrays():
  r = validate_results([_result(2), _result(1)], [1, 2])
  assert r.ids.tolist() == [2, 1]
  assert len(r.songs) == 200 and len(r.tags) == 20


def test_duplicate_answer_id():
  with pytest.raises(DataError, match="answers: playlist 1 appears more than once"):
    score_results(ANSWERS + [ANSWERS[0]], [_result(1), _result(2)])


# ------------------------------------------------------------------------------ read_results
def test_read_results(tmp_path):
  recs = [_result(1), _result(2)]
  p = tmp_path / "results.json"
  p.write_text(json.dumps(recs), encoding="utf-8")
  assert read_results(p) == recs
  gz = tmp_path / "results.json.gz"
  gz.write_bytes(gzip.compress(json.dumps(recs).encode()))
  assert read_results(gz) == recs
  bad = tmp_path / "bad.json"
  bad.write_text('[{"id": 1,', encoding="utf-8")
  with pytest.raises(DataError, match="bad.json: not valid JSON at line 1"):
    read_results(bad)
  bad.write_text('{"id": 1}', encoding="utf-8")
  with pytest.raises(DataError, match="expected a JSON array"):
    read_results(bad)
  bad.write_text('[{"id": 1, "songs": []}]', encoding="utf-8")
  with pytest.raises(DataError, match=r"result 0 \(playlist id 1\) has no 'tags'"):
    read_results(bad)


# ------------------------------------------------------------------------------ evaluator
def _melon_dataset(rng, n_train=120, n_q=30, n_songs=150, n_tags=20):
  def playlists(n, start):
    return [{"id": start + i, "plylst_title": "",
             "songs": rng.choice(n_songs, int(rng.integers(3, 15)), replace=False).tolist(),
             "tags": [f"t{x}" for x in rng.choice(n_tags, int(rng.integers(1, 4)), replace=False)]}
            for i in range(n)]
  train = playlists(n_train, 0)
  full = playlists(n_q, 10_000)
  questions = [{**p, "songs": p["songs"][: len(p["songs"]) // 2], "tags": p["tags"][:1]}
               for p in full]
  answers = [{**p, "songs": p["songs"][len(p["songs"]) // 2:], "tags": p["tags"][1:] or ["none"]}
             for p in full]
  # Song-as-user matrix: rows = songs, columns = training playlists.
  rows = np.concatenate([p["songs"] for p in train])
  cols = np.concatenate([[p["id"]] * len(p["songs"]) for p in train])
  song_matrix = Interactions.from_coo(rows, cols)
  extras = {"train_playlists": train, "val_questions": questions, "val_answers": answers}
  return Dataset(train=song_matrix, extras=extras), train, questions, answers


def _eval_config(**kw):
  cfg = {"evaluators": ["melon"], "recommender": "most_popular", "recommender_args": {},
         "empty_answers": "error"}
  cfg.update(kw)
  return cfg


def test_evaluator_most_popular_matches_direct_scoring():
  ds, train, questions, answers = _melon_dataset(np.random.default_rng(1))
  assert EVALUATORS["melon"] is MelonEvaluator
  (ev,) = build_evaluators(_eval_config(), ds, "val")
  ctx = EvalContext(score_fn=None, dataset=ds, split="val", batch_size=8)
  m = ev.run(ctx)
  want = score_results(answers, most_popular(train, questions),
                       official_question_types(questions))
  assert m["music_ndcg"] == pytest.approx(want["music_ndcg"])
  assert m["tag_ndcg"] == pytest.approx(want["tag_ndcg"])
  assert m["melon_score"] == pytest.approx(want["score"])
  assert m["questions"] == 30 and m["rec/questions"] == 30
  for t, v in want["per_type"].items():
    assert m[f"music_ndcg/{t}"] == pytest.approx(v["music_ndcg"])


@pytest.mark.parametrize("topk_group", [0, 2])
def test_evaluator_song_as_user_uses_the_code_layer(topk_group, monkeypatch):
  ds, train, questions, answers = _melon_dataset(np.random.default_rng(2))
  groups = []        # config.eval.topk_group reaches the neighbour search
  real = song_as_user_module.neighbours_by_embedding
  sig = inspect.signature(real)                      # the group however it is passed
  monkeypatch.setattr(song_as_user_module, "neighbours_by_embedding",
                      lambda *a, **kw: groups.append(sig.bind(*a, **kw).arguments.get("group", 0))
                      or real(*a, **kw))
  n_cols = ds.n_cols
  w = jax.random.normal(jax.random.PRNGKey(0), (n_cols, 6))

  @jax.jit
  def embed_fn(batch):
    return densify(batch, n_cols) @ w

  types = np.array(["a", "b"] * 15)                  # an array aligned with the questions
  ds.extras["val_question_types"] = types
  cfg = _eval_config(recommender="song_as_user",
                     recommender_args={"song_neighbours": 3, "tag_neighbours": 5},
                     topk_group=topk_group)
  (ev,) = build_evaluators(cfg, ds, "val")
  ctx = EvalContext(score_fn=None, embed_fn=embed_fn, dataset=ds, split="val", batch_size=16,
                    num_shards=2)
  m = ev.run(ctx)
  assert groups == [topk_group]
  emb = np.asarray(ds.train.matrix.toarray() @ np.asarray(w))
  direct = song_as_user(train, questions, song_embeddings=emb, song_ids=ds.train.row_ids,
                        song_neighbours=3, tag_neighbours=5)
  want = score_results(answers, direct)
  assert m["music_ndcg"] == pytest.approx(want["music_ndcg"], abs=1e-9)
  assert m["tag_ndcg"] == pytest.approx(want["tag_ndcg"], abs=1e-9)
  assert m["questions/a"] == 15 and "music_ndcg/b" in m
  assert m["rec/questions_embedding"] + m["rec/questions_tag_overlap"] + m[
      "rec/questions_popular"] == 30


def test_evaluator_config_errors():
  ds, *_ = _melon_dataset(np.random.default_rng(3), n_train=20, n_q=4)
  with pytest.raises(ConfigError, match="unknown recommender 'nope'; known"):
    MelonEvaluator(_eval_config(recommender="nope"), ds, "val")
  with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['k'\] for 'most_popular'"):
    MelonEvaluator(_eval_config(recommender_args={"k": 3}), ds, "val")
  cfg = _eval_config()
  del cfg["recommender_args"]
  with pytest.raises(ConfigError, match="config.eval.recommender_args is missing"):
    MelonEvaluator(cfg, ds, "val")
  with pytest.raises(ConfigError, match="empty_answers must be one of"):
    MelonEvaluator(_eval_config(empty_answers="zero"), ds, "val")
  with pytest.raises(ConfigError, match=r"dataset.extras\['test_questions'\]"):
    MelonEvaluator(_eval_config(), ds, "test")
  ev = MelonEvaluator(_eval_config(recommender_args={"song_pool": 0}), ds, "val")
  with pytest.raises(ConfigError, match=r"^config.eval.recommender_args.song_pool: expected an "
                     "integer >= 1, got 0$"):
    ev.run(EvalContext(score_fn=None, dataset=ds, split="val", batch_size=8))
  ev = MelonEvaluator(_eval_config(recommender="song_as_user"), ds, "val")
  with pytest.raises(ConfigError, match="embed_fn is None"):
    ev.run(EvalContext(score_fn=None, dataset=ds, split="val", batch_size=8))


# ------------------------------------------------------------------------------ baselines
def test_baselines_are_scored_beside_the_model_once(monkeypatch):
  from jaxae import recommend  # pylint: disable=import-outside-toplevel
  ds, train, questions, answers = _melon_dataset(np.random.default_rng(4))
  calls = []
  original = recommend.RECOMMENDERS["most_popular"]

  def counting(train_, questions_, **kw):
    calls.append(1)
    return most_popular(train_, questions_, **kw)

  monkeypatch.setitem(recommend.RECOMMENDERS, "most_popular",
                      dataclasses.replace(original, fn=counting))
  cfg = _eval_config(recommender="song_as_user", baselines=("most_popular",),
                     recommender_args={"song_neighbours": 3, "tag_neighbours": 5})
  (ev,) = build_evaluators(cfg, ds, "val")
  w = jax.random.normal(jax.random.PRNGKey(1), (ds.n_cols, 4))
  ctx = EvalContext(score_fn=None, embed_fn=jax.jit(lambda b: densify(b, ds.n_cols) @ w),
                    dataset=ds, split="val", batch_size=16)
  first, second = ev.run(ctx), ev.run(ctx)
  assert len(calls) == 1                                   # cached: computed for the first run only
  types = official_question_types(questions)
  want = score_results(answers, most_popular(train, questions), types)
  for m in (first, second):
    assert m["baseline/most_popular/music_ndcg"] == pytest.approx(want["music_ndcg"])
    assert m["baseline/most_popular/tag_ndcg"] == pytest.approx(want["tag_ndcg"])
    assert m["baseline/most_popular/melon_score"] == pytest.approx(want["score"])
    for t, v in want["per_type"].items():
      assert m[f"baseline/most_popular/melon_score/{t}"] == pytest.approx(v["score"])
  # The model's own numbers are not the baseline's (song_as_user ran on the same questions).
  assert "melon_score" in first and "rec/questions_embedding" in first
  # A most_popular model with most_popular as its baseline: the same numbers.
  (ev2,) = build_evaluators(_eval_config(baselines=["most_popular"]), ds, "val")
  m = ev2.run(EvalContext(score_fn=None, dataset=ds, split="val", batch_size=8))
  for k in ("music_ndcg", "tag_ndcg", "melon_score"):
    assert m[f"baseline/most_popular/{k}"] == pytest.approx(m[k])


def test_baseline_config_errors():
  ds, *_ = _melon_dataset(np.random.default_rng(5), n_train=20, n_q=4)
  with pytest.raises(ConfigError, match="baselines: 'song_as_user' depends on the model"):
    MelonEvaluator(_eval_config(baselines=("song_as_user",)), ds, "val")
  with pytest.raises(ConfigError, match="unknown recommender 'popular'"):
    MelonEvaluator(_eval_config(baselines=("popular",)), ds, "val")
  with pytest.raises(ConfigError, match="must be a list of recommender names"):
    MelonEvaluator(_eval_config(baselines="most_popular"), ds, "val")
  with pytest.raises(ConfigError, match="names a recommender twice"):
    MelonEvaluator(_eval_config(baselines=("most_popular", "most_popular")), ds, "val")
  assert MelonEvaluator(_eval_config(), ds, "val").baselines == ()   # the key is optional
  assert "baselines" in MelonEvaluator.config_keys


def test_final_summary_puts_the_model_beside_its_baselines():
  final = {"step": 80, "epoch": 50.0, "loss": 1.5, "music_ndcg": 0.25, "tag_ndcg": 0.5,
           "melon_score": 0.2875, "questions": 30.0, "music_ndcg/all": 0.1,
           "rec/questions": 30.0, "baseline/most_popular/music_ndcg": 0.05,
           "baseline/most_popular/tag_ndcg": 0.1, "baseline/most_popular/melon_score": 0.0575,
           "baseline/most_popular/melon_score/all": 0.01}
  text = final_summary(final, "wd/metrics.jsonl")
  lines = text.splitlines()
  assert lines[0] == "final validation metrics (step 80, epoch 50, loss 1.5):"
  assert lines[1].split() == ["recommender", "music_ndcg", "tag_ndcg", "melon_score"]
  assert lines[2].split() == ["model", "0.25", "0.5", "0.2875"]
  assert lines[3].split() == ["most_popular", "0.05", "0.1", "0.0575"]
  assert lines[4].split() == ["questions=30"]
  assert "3 more metrics" in lines[5] and "wd/metrics.jsonl" in lines[5]
  # Without baselines: one line per headline metric.
  plain = final_summary({"step": 6, "epoch": 2.0, "loss": 0.5, "rmse": 0.9, "mae": 0.7})
  assert plain.splitlines()[1].split() == ["rmse", "0.9"]
  assert len(plain.splitlines()) == 3


# ------------------------------------------------------------------------------ real data
@pytest.mark.data
def test_real_melon_sample_split_most_popular(shared_data):
  split = kakao_split(read_playlists(shared_file(shared_data, "melon/test.json")))
  results = most_popular(split.train, split.questions)
  types = dict(zip(split.questions.ids.tolist(), split.question_types.tolist()))
  # test.json is itself a question file: some playlists lack songs or tags, so some answers are
  # empty and the official rule refuses to score them.
  with pytest.raises(DataError, match="has no songs"):
    score_results(split.answers, results, types)
  s = score_results(split.answers, results, types, empty_answers="skip")
  answers = split.answers.to_json_records()
  by_id = {r["id"]: r for r in results}
  music = [_official_ndcg(set(a["songs"]), by_id[a["id"]]["songs"]) for a in answers if a["songs"]]
  tag = [_official_ndcg(set(a["tags"]), by_id[a["id"]]["tags"]) for a in answers if a["tags"]]
  assert s["music_ndcg"] == pytest.approx(np.mean(music), rel=1e-12)
  assert s["tag_ndcg"] == pytest.approx(np.mean(tag), rel=1e-12)
  assert (s["music_count"], s["tag_count"], s["count"]) == (len(music), len(tag), len(answers))
  assert set(s["per_type"]) == {"song_only", "song_tags", "tags_only", "title_only"}
