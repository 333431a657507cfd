"""Seed A (hybrid): densified queries ranked by a CF model, co-occurrence tags, cold starts."""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.sparse as sp

from jaxae.data import pipelines
from jaxae.data.sparse import densify
from jaxae.errors import ConfigError, DataError
from jaxae.evaluation import build_evaluators
from jaxae.evaluation.context import EvalContext
from jaxae.evaluation.melon import score_results
from jaxae.recommend import RECOMMENDERS, get_recommender, most_popular
from jaxae.recommend.hybrid import ContentEmbeddings, hybrid, model_top_k

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pl(pid, songs=(), tags=(), title=""):
  return {"id": pid, "songs": list(songs), "tags": list(tags), "plylst_title": title}


def _check_valid(results, questions, n_songs=100, n_tags=10):
  assert [r["id"] for r in results] == [q["id"] for q in questions]
  for r, q in zip(results, questions):
    assert len(r["songs"]) == n_songs and len(set(r["songs"])) == n_songs
    assert len(r["tags"]) == n_tags and len(set(r["tags"])) == n_tags
    assert not set(r["songs"]) & set(q["songs"])
    assert not set(r["tags"]) & set(q["tags"])


def _linear_scorer(w: np.ndarray, batch_size=4, num_shards=2, group=0):
  """model_top_k of a linear 'CF model': scores = densify(query) @ w."""
  n = w.shape[0]
  wj = jnp.asarray(w, jnp.float32)

  @jax.jit
  def score_fn(batch):
    return densify(batch, n) @ wj

  return model_top_k(score_fn, batch_size=batch_size, num_shards=num_shards, group=group)


class _FixedRanking:
  """A fake CF model: every query ranks the columns by ``order``; it records the queries."""

  def __init__(self, order):
    self.order = np.asarray(order)
    self.calls = []

  def __call__(self, query, exclude, k):
    self.calls.append((query.copy(), exclude.copy(), k))
    ex = exclude.toarray() > 0
    idx = np.tile(self.order, (query.shape[0], 1))
    valid = ~np.take_along_axis(ex, idx, axis=1)
    out = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(idx, out, 1), np.take_along_axis(valid, out, 1)


# ------------------------------------------------------------------------------ model_top_k
@pytest.mark.parametrize("group", [0, 2])   # 2: config.eval.topk_group's group maxima (12 = 6 x 2)
def test_model_top_k_matches_numpy_and_excludes(group):
  rng = np.random.default_rng(0)
  n_cols = 12
  w = rng.normal(size=(n_cols, n_cols))
  query = sp.random(7, n_cols, density=0.3, random_state=1, format="csr")
  query.data[:] = 1.0
  exclude = sp.csr_matrix(query.toarray() * (rng.random(query.shape) < 0.5))
  idx, valid = _linear_scorer(w, group=group)(query, exclude, 5)
  scores = query.toarray() @ w
  scores[exclude.toarray() > 0] = -np.inf
  want = np.argsort(-scores, axis=1, kind="stable")[:, :5]
  np.testing.assert_array_equal(idx, want)
  assert valid.all()
  # Excluding all but 2 columns of a row: only 2 valid picks.
  ex = sp.csr_matrix(np.r_[[np.r_[np.ones(n_cols - 2), 0, 0]], np.zeros((6, n_cols))])
  idx, valid = _linear_scorer(w, group=group)(query, ex, 5)
  assert valid[0].sum() == 2 and set(idx[0][valid[0]]) == {n_cols - 2, n_cols - 1}


# ------------------------------------------------------------------------------ hand cases
def test_tag_cold_start_hand_case():
  # Song-tag co-occurrence: a: 1x1, 2x2, 3x1;  b: 2x1, 3x1, 4x1. Popularity: 2 (2), then 1, 3, 4.
  train = [_pl(1, [1, 2], ["a"]), _pl(2, [2, 3], ["a", "b"]), _pl(3, [4], ["b"])]
  questions = [_pl(10, [], ["a"])]
  ranker = _FixedRanking([0])
  report = {}
  (r,) = hybrid(train, questions, score_top_k=ranker, score_song_ids=[99], n_songs=4, n_tags=1,
                report=report)
  # tags {a}: song 2 (2), then songs 1 and 3 tie at 1 -> the more popular (met first) song 1;
  # song 4 never co-occurs with a: the popularity fill-up adds it.
  assert r["songs"] == [2, 1, 3, 4]
  # Tags of those songs minus the question's own tag a: b (3 co-occurrences).
  assert r["tags"] == ["b"]
  assert report["questions_tag_cooccurrence"] == 1 and report["questions_cf"] == 0
  assert report["songs_filled"] == 1 and ranker.calls == []   # the CF model is not asked


def test_cf_route_and_co_occurrence_tags_hand_case():
  train = [_pl(1, [1, 2], ["a"]), _pl(2, [2, 3], ["a", "b"]), _pl(3, [3, 4], ["c"]),
           _pl(4, [4, 5], ["c", "d"])]
  cf_ids = np.array([5, 4, 3, 2, 1])               # CF columns (any order)
  ranker = _FixedRanking([4, 3, 2, 1, 0])          # ranks songs 1, 2, 3, 4, 5
  questions = [_pl(10, [2], ["a"])]
  report = {}
  (r,) = hybrid(train, questions, score_top_k=ranker, score_song_ids=cf_ids, n_songs=2,
                n_tags=2, report=report)
  assert r["songs"] == [1, 3]                      # song 2 is the question's: excluded
  # Tags of songs 1 and 3: a (1 + 1), b (1), c (1); a is the question's -> b, c tie at 1: the
  # more popular first (b: 1 playlist, c: 2 playlists) -> c, b.
  assert r["tags"] == ["c", "b"]
  query, exclude, k = ranker.calls[0]
  assert k == 2 and query.toarray().tolist() == [[0, 0, 0, 1, 0]]
  assert exclude.toarray().tolist() == [[0, 0, 0, 1, 0]]
  assert report["questions_cf"] == 1 and report["content_model"] == 0
  assert report["questions_densified"] == 0


def test_densification_hand_case():
  train = [_pl(i, [i, i + 1], ["t"]) for i in range(1, 9)]
  cf_ids = np.arange(1, 9)                          # songs 1..8 are CF columns (9 is not)
  # Content codes: 1 ~ 2 ~ 3 (and 9, which is no CF column), 5 ~ 6, 7 ~ 8; song 4 has none.
  emb = {1: [1, 0.1, 0], 2: [1, 0.2, 0], 3: [1, 0.35, 0], 9: [1, 0.15, 0], 5: [0, 1, 0],
         6: [0, 1, 0.05], 7: [0, 0, 1], 8: [0, 0.1, 1]}
  content = ContentEmbeddings(np.array(list(emb.values()), np.float32), np.array(list(emb)))
  questions = [_pl(100, [1]), _pl(101, [5, 7]), _pl(102, [2, 3, 4, 5])]
  ranker = _FixedRanking(np.arange(8))
  report = {}
  hybrid(train, questions, score_top_k=ranker, score_song_ids=cf_ids, content=content,
         dense_query_songs=4, min_content_neighbours=1, max_content_neighbours=2, n_songs=3,
         n_tags=1, chunk_size=2, report=report)
  query, exclude, _ = ranker.calls[0]
  got = [sorted(cf_ids[query[i].indices].tolist()) for i in range(3)]
  # 100: 1 song, needs 3 more -> k = min(3, max 2) = 2 nearest CF songs of 1: 2 and 3 (not 9).
  # 101: 2 songs, need 2 more -> k = ceil(2 / 2) = 1 each: 5 -> 6, 7 -> 8.
  # 102: already 4 songs -> not densified.
  assert got[0] == [1, 2, 3]
  assert got[1] == [5, 6, 7, 8]
  assert got[2] == [2, 3, 4, 5]
  assert [sorted(cf_ids[exclude[i].indices].tolist()) for i in range(3)] == [[1], [5, 7],
                                                                              [2, 3, 4, 5]]
  assert report["questions_densified"] == 2 and report["densify_songs_added"] == 4
  assert report["question_songs_without_content"] == 1      # song 4 has no content code
  assert report["content_songs_not_in_cf"] == 1             # song 9
  assert report["dense_query_songs_mean"] == pytest.approx((3 + 4 + 4) / 3)


def test_tag_vote_settings_hand_case():
  # Co-occurrence C: song 1: a 1, x 1, y 1;  song 2: b 2, x 2.  Tags held: a 1, b 2, x 3, y 1.
  train = [_pl(1, [1], ["a", "x", "y"]), _pl(2, [2], ["b", "x"]), _pl(3, [2], ["b", "x"])]
  ranker = _FixedRanking([0, 1])                   # CF columns [1, 2]: song 1 ranks first
  question = [_pl(10, [9, 1], ["a"])]              # song 9 is no CF column; song 1 is excluded

  def tags(**kw):
    (r,) = hybrid(train, question, score_top_k=ranker, score_song_ids=[1, 2], n_songs=1,
                  n_tags=2, **kw)
    assert r["songs"] == [2]
    return r["tags"]

  # The answer song is 2. Published: plain counts b 2, x 2 (tie -> the more popular x).
  assert tags() == ["x", "b"]
  # own_tag_weight: P(t | a) = x 1, y 1 (a's one playlist); song votes scaled to sum 1 (b 0.5,
  # x 0.5), own-tag votes too (x 0.5, y 0.5), times 2: x 1.5, y 1.0, b 0.5.
  assert tags(own_tag_weight=2.0) == ["x", "y"]
  assert tags(own_tag_weight=0.5) == ["x", "b"]   # x 0.75, b 0.5, y 0.25


def test_tag_rank_discount_and_song_norm_hand_case():
  # Song 1 sits in 4 tagged playlists (tag a in all), song 2 in 1 (tag b): plain counts a 4, b 1.
  train = ([_pl(i, [1], ["a"]) for i in range(4)] + [_pl(9, [2], ["b"])])
  question = [_pl(10, [3], [])]                    # a CF column no training playlist holds
  cf_ids = [3, 2, 1]

  def tags(order, **kw):
    (r,) = hybrid(train, question, score_top_k=_FixedRanking(order), score_song_ids=cf_ids,
                  n_songs=2, n_tags=1, **kw)
    return r["songs"], r["tags"]

  assert tags([1, 2]) == ([2, 1], ["a"])           # a 4 > b 1
  # Song norm 1: each song's tag distribution: a 4 / 4 = 1, b 1 / 1 = 1 -> the tie to the more
  # popular a; with song 2 first and the rank discount, b (1) beats a (1 / log2 3).
  assert tags([1, 2], tag_song_norm=1.0) == ([2, 1], ["a"])
  assert tags([1, 2], tag_song_norm=1.0, tag_rank_discount=True) == ([2, 1], ["b"])
  # Norm 0.5: a 4 / 2 = 2 against b 1: a, even when discounted behind b (2 / log2 3 = 1.26 > 1).
  assert tags([1, 2], tag_song_norm=0.5, tag_rank_discount=True) == ([2, 1], ["a"])


def test_title_route_hand_case():
  train = [_pl(1, [1], ["spring"], "봄바람 드라이브"), _pl(2, [2], ["night"], "잔잔한 밤"),
           _pl(3, [], ["drive"], "드라이브 가요"), _pl(4, [3], [], "Rock")]
  questions = [_pl(10, [], [], "봄 드라이브"), _pl(11, [], [], "zz"), _pl(12),
               _pl(13, [], ["unknown-tag"], "잔잔한")]
  ranker = _FixedRanking([0])
  rep = {}
  r = hybrid(train, questions, score_top_k=ranker, score_song_ids=[99], n_songs=2, n_tags=1,
             titles=True, title_neighbours=1, report=rep)
  # 10 shares 드라 / 라이 / 이브 with playlists 1 and 3 (cosine 3 / sqrt(3 * 5) and
  # 3 / sqrt(3 * 4)): songs from the nearest holding songs (1), tags from the nearest holding
  # tags (3).
  assert r[0]["songs"][0] == 1 and r[0]["tags"] == ["drive"]
  assert r[3]["songs"][0] == 2 and r[3]["tags"] == ["night"]     # unknown tag: the title route
  mp = most_popular(train, questions, n_songs=2, n_tags=1)
  assert r[1] == mp[1] and r[2] == mp[2]                            # no known token / no title
  assert (rep["questions_title_overlap"], rep["questions_popular"]) == (2, 2)
  assert ranker.calls == []
  rep = {}
  r = hybrid(train, questions, score_top_k=ranker, score_song_ids=[99], n_songs=2, n_tags=1,
             report=rep)
  assert r == mp and rep["questions_title_overlap"] == 0           # titles off: popularity


def _reference_tags(train, questions, results, n_tags, rank_discount, song_norm, own_weight):
  """Per question, the step-3 tag scores computed plainly (dicts), for the CF / tag routes."""
  cooc, tagged, holding, pair = {}, {}, {}, {}
  for p in train:
    for s in set(p["songs"]):
      tagged[s] = tagged.get(s, 0) + bool(p["tags"])
      for t in set(p["tags"]):
        cooc[s, t] = cooc.get((s, t), 0) + 1
    for t in set(p["tags"]):
      holding[t] = holding.get(t, 0) + 1
      for u in set(p["tags"]) - {t}:
        pair[t, u] = pair.get((t, u), 0) + 1
  all_tags = sorted(holding)
  out = []
  for q, r in zip(questions, results):
    votes = {t: 0.0 for t in all_tags}
    for rank, s in enumerate(r["songs"]):
      w = 1.0 / np.log2(rank + 2) if rank_discount else 1.0
      for t in all_tags:
        if (s, t) in cooc:
          votes[t] += w * cooc[s, t] / tagged[s] ** song_norm
    if own_weight:
      own = {t: sum(pair.get((u, t), 0) / holding[u] for u in q["tags"] if u in holding)
             for t in all_tags}
      tv, to = sum(votes.values()), sum(own.values())
      votes = {t: (votes[t] / tv if tv else 0.0) + own_weight * (own[t] / to if to else 0.0)
               for t in all_tags}
    out.append({t: v for t, v in votes.items() if t not in q["tags"]})
  return out


@pytest.mark.parametrize("rank_discount,song_norm,own_weight",
                         [(False, 0.0, 0.0), (True, 0.5, 0.5), (False, 1.0, 2.0)])
def test_tag_votes_equal_plain_reference(rank_discount, song_norm, own_weight):
  train, questions = _world(4)
  rng = np.random.default_rng(5)
  w = rng.normal(size=(300, 300))
  report = {}
  results = hybrid(train, questions, score_top_k=_linear_scorer(w), score_song_ids=np.arange(300),
                   n_tags=4, chunk_size=7, tag_rank_discount=rank_discount,
                   tag_song_norm=song_norm, own_tag_weight=own_weight, report=report)
  _check_valid(results, questions, n_tags=4)
  answered = report["questions_cf"] + report["questions_tag_cooccurrence"]
  ref = _reference_tags(train, questions, results, 4, rank_discount, song_norm, own_weight)
  checked = 0
  for q, r, scores in zip(questions, results, ref):
    if not any(s in range(300) for s in q["songs"]) and not any(
        t in {u for p in train for u in p["tags"]} for t in q["tags"]):
      continue                                        # the popular route: not voted
    checked += 1
    got = [scores.get(t, 0.0) for t in r["tags"]]
    voted = [x for x in got if x > 0]
    assert voted == sorted(voted, reverse=True) and len(voted) == min(4, sum(
        v > 0 for v in scores.values()))               # the best-voted tags, best first ...
    others = [v for t, v in scores.items() if t not in r["tags"]]
    assert not others or min(voted, default=np.inf) >= max(others) - 1e-12   # ... none better
  assert checked == answered > 10

# ------------------------------------------------------------------------------ random world
def _world(seed=0, n_train=150, n_songs=300, n_tags=25):
  rng = np.random.default_rng(seed)

  def rand_pl(pid, lo, hi, tlo, thi):
    songs = rng.choice(n_songs, int(rng.integers(lo, hi)), replace=False).tolist()
    tags = [f"t{x}" for x in rng.choice(n_tags, int(rng.integers(tlo, thi)), replace=False)]
    return _pl(pid, songs, tags)

  train = [rand_pl(i, 3, 30, 1, 5) for i in range(n_train)]
  questions = ([rand_pl(1000 + i, 1, 20, 0, 3) for i in range(12)]           # songs (+ tags)
               + [_pl(2000 + i, [], [f"t{i}", f"t{i + 1}"]) for i in range(5)]  # tags only
               + [_pl(3000 + i, [10_000 + i], [f"t{i}"]) for i in range(3)]   # unknown song + tag
               + [_pl(4000 + i) for i in range(4)]                           # nothing
               + [_pl(5000, [], ["never-seen-tag"])])                          # unknown tag only
  return train, questions


def test_random_world_valid_answers_and_route_counts():
  train, questions = _world()
  cf_ids = np.arange(300)[::-1].copy()
  rng = np.random.default_rng(1)
  w = rng.normal(size=(300, 300))
  content = ContentEmbeddings(rng.normal(size=(280, 8)).astype(np.float32), np.arange(280))
  report = {}
  results = hybrid(train, questions, score_top_k=_linear_scorer(w, batch_size=8),
                   score_song_ids=cf_ids, content=content, chunk_size=16, report=report)
  _check_valid(results, questions)
  # Content neighbours through group maxima (topk_group 3: 280 content rows > 3 x 3): the same.
  assert hybrid(train, questions, score_top_k=_linear_scorer(w, batch_size=8),
                score_song_ids=cf_ids, content=content, chunk_size=16, topk_group=3) == results
  assert report["questions"] == 25
  assert report["questions_cf"] == 12
  assert report["questions_tag_cooccurrence"] == 5 + 3       # unknown songs fall back to tags
  assert report["questions_popular"] == 4 + 1
  assert report["question_songs_not_in_cf"] == 3
  assert report["questions_densified"] == 12 and report["content_model"] == 1
  # "Nothing" questions get exactly most_popular's answer.
  mp = {r["id"]: r for r in most_popular(train, questions)}
  for r in results:
    if r["id"] >= 4000:
      assert r == mp[r["id"]]


def test_cf_songs_are_the_models_top_100_without_densification():
  train, questions = _world(2)
  questions = questions[:12]
  rng = np.random.default_rng(3)
  w = rng.normal(size=(300, 300))
  cf_ids = np.arange(300) + 7
  results = hybrid(train, questions, score_top_k=_linear_scorer(w), score_song_ids=cf_ids)
  for r, q in zip(results, questions):
    x = np.zeros(300)
    cols = np.asarray([s - 7 for s in q["songs"] if 0 <= s - 7 < 300], np.int64)
    x[cols] = 1.0
    s = x @ w
    s[cols] = -np.inf
    assert r["songs"] == (np.argsort(-s, kind="stable")[:100] + 7).tolist()


def test_argument_and_data_errors():
  train, questions = _world()
  ranker = _FixedRanking(np.arange(300))
  with pytest.raises(DataError, match="columns are song ids"):
    hybrid(train, questions, score_top_k=ranker, score_song_ids=np.array(["pl:1", "pl:2"]))
  with pytest.raises(DataError, match="not unique"):
    hybrid(train, questions, score_top_k=ranker, score_song_ids=[1, 1])
  with pytest.raises(ConfigError, match="recommender_args: hybrid's min_content_neighbours "
                     r"\(4\) exceeds max_content_neighbours \(3\)"):
    hybrid(train, questions, score_top_k=ranker, score_song_ids=[1], min_content_neighbours=4)
  with pytest.raises(ConfigError, match=r"^config.eval.recommender_args.dense_query_songs: "
                     "expected an integer >= 1, got 0$"):
    hybrid(train, questions, score_top_k=ranker, score_song_ids=[1], dense_query_songs=0)
  for key, value, want in (("tag_song_norm", -1.0, "a finite number >= 0"),
                           ("own_tag_weight", float("nan"), "a finite number >= 0"),
                           ("title_vote_power", "2", "a finite number >= 0"),
                           ("title_neighbours", 0, "an integer >= 1"),
                           ("titles", "yes", "true or false"),
                           ("tag_rank_discount", 1, "true or false")):
    with pytest.raises(ConfigError, match=rf"^config.eval.recommender_args.{key}: expected "
                       rf"{want}, got {value!r}$".replace("(", r"\(")):
      hybrid(train, questions, score_top_k=ranker, score_song_ids=[1], **{key: value})
  bad = ContentEmbeddings(np.zeros((3, 2), np.float32), np.arange(4))
  with pytest.raises(DataError, match="do not match 4 song ids"):
    hybrid(train, questions, score_top_k=ranker, score_song_ids=np.arange(300), content=bad)


def test_registry_entry():
  rec = get_recommender("hybrid")
  assert RECOMMENDERS["hybrid"] is rec and rec.needs_scores and rec.depends_on_model
  names = rec.arg_names()
  assert {"content_workdir", "content_step", "max_content_neighbours"} <= set(names)
  assert not {"content", "score_top_k", "score_song_ids"} & set(names)


# ------------------------------------------------------------------------------ end to end
def _cf_dataset(seed=0):
  cfg = ml_collections.ConfigDict(dict(name="melon_cf", path=None, synthetic_size="tiny",
                                       split_seed=0, min_song_count=2))
  return pipelines.load_dataset(cfg, seed)


def _content_config(seed: int):
  sys.path.insert(0, REPO)
  try:
    from configs import melon_content_ae  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(REPO)
  c = melon_content_ae.get_config()
  c.seed = seed
  c.data.synthetic_size = "tiny"
  c.model.layers = (16,)
  c.train.epochs = 1
  c.train.batch_size = 128
  c.eval.batch_size = 128
  return c


@pytest.fixture(scope="module")
def content_workdir(tmp_path_factory):
  from jaxae.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  wd = str(tmp_path_factory.mktemp("content"))
  train_and_evaluate(_content_config(0), wd)
  return wd


def _evaluator_config(**args):
  return {"evaluators": ["melon"], "recommender": "hybrid", "recommender_args": args,
          "empty_answers": "skip", "baselines": ["most_popular"]}


def test_evaluator_loads_the_content_ae_and_scores_with_the_model(content_workdir):
  ds = _cf_dataset()
  n = ds.n_cols
  w = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)

  @jax.jit
  def score_fn(batch):
    return densify(batch, n) @ w

  (ev,) = build_evaluators(_evaluator_config(content_workdir=content_workdir), ds, "val")
  assert ev.args["content"] is not None and ev.args["content"].embeddings.shape[1] == 16
  m = ev.run(EvalContext(score_fn=score_fn, dataset=ds, split="val", batch_size=32,
                         num_shards=2))
  q = ds.extras["val_questions"]
  assert m["rec/content_model"] == 1 and m["rec/questions_densified"] > 0
  assert (m["rec/questions_cf"] + m["rec/questions_tag_cooccurrence"] + m["rec/questions_popular"]
          == len(q))
  _check_valid(ev.last_results, q.to_json_records())
  want = score_results(ds.extras["val_answers"], ev.last_results,
                       dict(zip(q.ids.tolist(), ds.extras["val_question_types"].tolist())),
                       empty_answers="skip")
  assert m["melon_score"] == pytest.approx(want["score"])
  mp = score_results(ds.extras["val_answers"], most_popular(ds.extras["train_playlists"], q),
                     dict(zip(q.ids.tolist(), ds.extras["val_question_types"].tolist())),
                     empty_answers="skip")
  assert m["baseline/most_popular/melon_score"] == pytest.approx(mp["score"])
  # Without a content AE: no densification, counted.
  (ev0,) = build_evaluators(_evaluator_config(), ds, "val")
  m0 = ev0.run(EvalContext(score_fn=score_fn, dataset=ds, split="val", batch_size=32))
  assert m0["rec/content_model"] == 0 and m0["rec/questions_densified"] == 0


def test_content_ae_from_another_world_is_refused(content_workdir, tmp_path):
  ds = _cf_dataset(seed=1)                # the synthetic world drawn with another seed
  with pytest.raises(ConfigError, match="trained on another Melon world"):
    build_evaluators(_evaluator_config(content_workdir=content_workdir), ds, "val")
  from jaxae.errors import CheckpointError  # pylint: disable=import-outside-toplevel
  with pytest.raises(CheckpointError, match="no such workdir"):
    build_evaluators(_evaluator_config(content_workdir=str(tmp_path / "nope")), ds, "val")
  with pytest.raises(ConfigError, match=r"unknown argument\(s\) \['k'\] for 'hybrid'"):
    build_evaluators(_evaluator_config(k=1), ds, "val")
