"""Melon recommenders: Kakao's popularity baselines and seed B (song-embedding neighbours)."""

from __future__ import annotations

import importlib
import itertools
import re
import types
from collections import Counter

import numpy as np
import pytest

from jaxae.data.readers.melon import Playlists
from jaxae.errors import ConfigError, DataError, JaxaeError
from jaxae.recommend import RECOMMENDERS, get_recommender, genre_most_popular, most_popular
from jaxae.recommend import song_as_user

song_as_user_module = importlib.import_module("jaxae.recommend.song_as_user")


def _pl(pid, songs=(), tags=(), title=""):
  return {"id": pid, "songs": list(songs), "tags": list(tags), "plylst_title": title}


def _random_playlists(rng, n, start, n_songs=400, n_tags=40, max_songs=30, max_tags=5):
  out = []
  for i in range(n):
    ns = int(rng.integers(0, max_songs))
    nt = int(rng.integers(0, max_tags))
    # Zipf-like popularity: low ids are popular.
    songs = np.unique(np.minimum(rng.zipf(1.3, ns) - 1, n_songs - 1))
    songs = rng.permutation(songs).tolist()
    tags = [f"t{x}" for x in rng.permutation(np.unique(np.minimum(rng.zipf(1.4, nt) - 1,
                                                                  n_tags - 1)))]
    out.append(_pl(start + i, songs, tags))
  return out


def _check_valid(results, questions, n_songs=100, n_tags=10):
  assert [r["id"] for r in results] == [q["id"] for q in questions]
  for r, q in zip(results, questions):
    assert len(r["songs"]) == n_songs and len(set(r["songs"])) == n_songs
    assert len(r["tags"]) == n_tags and len(set(r["tags"])) == n_tags
    assert not set(r["songs"]) & set(q["songs"])
    assert not set(r["tags"]) & set(q["tags"])
    assert all(isinstance(s, int) for s in r["songs"])
    assert all(isinstance(t, str) for t in r["tags"])


# ------------------------------------------------------------------------ reference (official)
def _official_most_popular(train, questions):
  """Kakao's most_popular.py, retyped: Counter.most_common + remove_seen."""
  def mp(col, k):
    c = Counter()
    for doc in train:
      c.update(doc[col])
    return c, [x for x, _ in c.most_common(k)]

  def remove_seen(seen, lst):
    seen = set(seen)
    return [x for x in lst if x not in seen]

  _, song_mp = mp("songs", 200)
  _, tag_mp = mp("tags", 100)
  return [{"id": q["id"], "songs": remove_seen(q["songs"], song_mp)[:100],
           "tags": remove_seen(q["tags"], tag_mp)[:10]} for q in questions]


def _official_genre_most_popular(meta_records, train, questions):
  """Kakao's genre_most_popular.py, retyped."""
  c = Counter()
  for doc in train:
    c.update(doc["songs"])
  song_mp = [x for x, _ in c.most_common(200)]
  tc = Counter()
  for doc in train:
    tc.update(doc["tags"])
  tag_mp = [x for x, _ in tc.most_common(100)]
  song_meta = {m["id"]: m for m in meta_records}
  per_genre = {}
  for sid, song in song_meta.items():
    for g in song["song_gn_gnr_basket"]:
      per_genre.setdefault(g, []).append(sid)
  for g, sids in per_genre.items():
    per_genre[g] = [k for k, _ in Counter({k: c.get(k, 0) for k in sids}).most_common(200)]
  out = []
  for q in questions:
    gc = Counter()
    for sid in q["songs"]:
      for g in song_meta[sid]["song_gn_gnr_basket"]:
        gc.update({g: 1})
    top = gc.most_common(1)
    cur = per_genre[top[0][0]] if top else song_mp
    out.append({"id": q["id"], "songs": [s for s in cur if s not in set(q["songs"])][:100],
                "tags": [t for t in tag_mp if t not in set(q["tags"])][:10]})
  return out


# ------------------------------------------------------------------------ most_popular
def test_most_popular_hand_case_counter_order_and_exclusion():
  # Song counts: 1 -> 3, 2 -> 2, 3 -> 2 (2 met first), 4 -> 1 ...; tags: b -> 2, a -> 1, c -> 1.
  train = [_pl(1, [3, 1, 2], ["a", "b"]), _pl(2, [2, 1, 4], ["b"]), _pl(3, [1, 3], ["c"])]
  train += [_pl(10 + i, [100 + i], [f"x{i}"]) for i in range(120)]
  questions = [_pl(50, [1], ["b"]), _pl(51)]
  r = most_popular(train, questions, n_songs=4, n_tags=3)
  # Counter.most_common: count desc, ties in first-met order (3 is met before 2 in playlist 1).
  assert r[0]["songs"] == [3, 2, 4, 100]
  assert r[1]["songs"] == [1, 3, 2, 4]
  assert r[0]["tags"] == ["a", "c", "x0"]
  assert r[1]["tags"] == ["b", "a", "c"]


def test_most_popular_equals_official_and_is_valid():
  rng = np.random.default_rng(0)
  train = _random_playlists(rng, 300, 0)
  questions = _random_playlists(rng, 80, 1000)
  rep = {}
  got = most_popular(train, questions, report=rep)
  assert got == _official_most_popular(train, questions)
  _check_valid(got, questions)
  assert rep == {"questions": 80, "song_pool_extended": 0, "tag_pool_extended": 0}


def test_most_popular_extends_pool_when_question_holds_popular_songs():
  train = [_pl(i, range(i, i + 50), [f"t{j}" for j in range(i % 20, i % 20 + 12)])
           for i in range(300)]
  top = [s for s, _ in Counter(s for p in train for s in p["songs"]).most_common(150)]
  questions = [_pl(999, top, [])]                      # holds 150 of the 200-song pool
  rep = {}
  (r,) = most_popular(train, questions, report=rep)
  _check_valid([r], questions)
  assert rep["song_pool_extended"] == 1
  # The first 50 are exactly what the official code would give (its pool minus the question).
  assert r["songs"][:50] == _official_most_popular(train, questions)[0]["songs"]


def test_most_popular_too_small_catalog_is_a_clear_error():
  train = [_pl(1, range(50), [f"t{i}" for i in range(20)])]
  with pytest.raises(JaxaeError, match="cannot recommend 100 more songs.*only 50 distinct songs"):
    most_popular(train, [_pl(2)])


def test_most_popular_accepts_playlists_objects():
  rng = np.random.default_rng(1)
  train = _random_playlists(rng, 200, 0)
  questions = _random_playlists(rng, 20, 1000)

  def to_playlists(recs):
    songs = [r["songs"] for r in recs]
    tags = [r["tags"] for r in recs]
    return Playlists(
        ids=[r["id"] for r in recs], titles=[""] * len(recs), like_cnt=np.zeros(len(recs)),
        updt_date=np.zeros(len(recs), "datetime64[s]"),
        song_indptr=np.concatenate([[0], np.cumsum([len(s) for s in songs])]),
        songs=np.array([x for s in songs for x in s], np.int64),
        tag_indptr=np.concatenate([[0], np.cumsum([len(t) for t in tags])]),
        tags=np.array([x for t in tags for x in t]))

  assert most_popular(to_playlists(train), to_playlists(questions)) == most_popular(train,
                                                                                    questions)


def test_bad_records_raise_data_errors():
  with pytest.raises(DataError, match=r"questions record 0 \(playlist id 5\): missing key 'tags'"):
    most_popular([_pl(1, [1], ["a"])], [{"id": 5, "songs": []}])
  with pytest.raises(DataError, match="train playlists: no playlists"):
    most_popular([], [_pl(1)])


# ------------------------------------------------------------------------ genre_most_popular
def _meta(records):
  genres = [m["song_gn_gnr_basket"] for m in records]
  return types.SimpleNamespace(
      ids=np.array([m["id"] for m in records], np.int64),
      genre_indptr=np.concatenate([[0], np.cumsum([len(g) for g in genres])]).astype(np.int64),
      genres=np.array([g for gs in genres for g in gs] or [""])[:sum(map(len, genres))])


def test_genre_most_popular_equals_official():
  rng = np.random.default_rng(2)
  n_songs = 700
  # Genre lists longer than 100 + the question's songs, so the official answer is complete.
  meta = [{"id": s, "song_gn_gnr_basket": [f"GN{(s % 3 + 1):02d}00"] + (
      ["GN0900"] if s % 2 == 0 else [])} for s in rng.permutation(n_songs).tolist()]
  train = _random_playlists(rng, 400, 0, n_songs=n_songs)
  questions = _random_playlists(rng, 60, 5000, n_songs=n_songs, max_songs=12)
  rep = {}
  got = genre_most_popular(train, questions, song_meta=_meta(meta), report=rep)
  assert got == _official_genre_most_popular(meta, train, questions)
  _check_valid(got, questions)
  assert rep["genre_questions"] == sum(1 for q in questions if q["songs"])
  assert rep["genre_short_filled"] == 0


def test_genre_most_popular_hand_case_ties_and_fill():
  # Song 1, 2: genre A; song 3: genres A and B; 4, 5: B. Counts: 5 -> 3, 4 -> 2, 1 -> 1, 3 -> 1.
  meta = [{"id": 1, "song_gn_gnr_basket": ["A"]}, {"id": 2, "song_gn_gnr_basket": ["A"]},
          {"id": 3, "song_gn_gnr_basket": ["A", "B"]}, {"id": 4, "song_gn_gnr_basket": ["B"]},
          {"id": 5, "song_gn_gnr_basket": ["B"]}]
  train = [_pl(1, [5, 4, 1], ["a"]), _pl(2, [5, 4, 3], ["b"]), _pl(3, [5], ["c"])]
  train += [_pl(10 + i, [100 + i], []) for i in range(10)]
  # Question 50: genres B (from 4) and A, B (from 3): B wins 2-1 -> B's songs by count: 5, 4, 3.
  # Question 51: song 1 -> A, song 4 -> B: a 1-1 tie, A was met first -> A: 1, 3, 2 (2 is never
  # played: count 0, still in the genre list).
  questions = [_pl(50, [4, 3]), _pl(51, [1, 4]), _pl(52, [999])]
  rep = {}
  r = genre_most_popular(train, questions, song_meta=_meta(meta), n_songs=6, n_tags=2,
                         report=rep)
  assert r[0]["songs"][:1] == [5]                      # B's list minus {4, 3}
  assert r[0]["songs"][1:] == [1, 100, 101, 102, 103]  # filled by popularity, no repeats
  assert r[1]["songs"][:2] == [3, 2]                   # A's list minus {1}: 3 (count 1), 2 (0)
  assert r[1]["songs"][2:] == [5, 100, 101, 102]
  assert r[2]["songs"] == [5, 4, 1, 3, 100, 101]       # unknown song: no genre -> most popular
  assert rep["genre_short_filled"] == 2 and rep["question_songs_without_meta"] == 1


def test_genre_most_popular_without_meta_falls_back():
  rng = np.random.default_rng(3)
  train = _random_playlists(rng, 200, 0)
  questions = _random_playlists(rng, 20, 1000)
  rep = {}
  assert genre_most_popular(train, questions, report=rep) == most_popular(train, questions)
  assert rep["genre_fallback_no_meta"] == 20


@pytest.mark.parametrize("arg", ["n_songs", "n_tags", "song_pool", "tag_pool", "genre_pool"])
def test_baseline_argument_errors_name_their_key(arg):
  train, questions = [_pl(1, [1], ["a"])], [_pl(2, [1])]
  fns = [genre_most_popular] + ([most_popular] if arg != "genre_pool" else [])
  for fn in fns:
    for bad in (0, True, 1.5):
      with pytest.raises(ConfigError, match=rf"^config.eval.recommender_args.{arg}: expected an "
                         rf"integer >= 1, got {bad!r}$"):
        fn(train, questions, **{arg: bad})


@pytest.mark.parametrize("kind", ["counts", "real", "negative"])
def test_top_per_row_orders_by_score_then_popularity(kind):
  """The one-key sort gives score descending, ties to the smaller tie rank, for counts, real
  scores (weighted votes, many ties) and negative ones; k = 2 (18 entries per row on average)
  sorts only the entries at least their row's 2nd score, rows with fewer entries included."""
  import scipy.sparse as sp  # pylint: disable=import-outside-toplevel
  from jaxae.recommend.popular import top_per_row  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(8)
  n_q, n_v = 37, 60
  dense = np.where(rng.random((n_q, n_v)) < 0.3, rng.integers(1, 5, (n_q, n_v)), 0).astype(float)
  if kind == "real":
    dense = np.where(dense > 0, np.sqrt(dense) * 0.37, 0.0)      # ties where the counts tie
  elif kind == "negative":
    dense = np.where(dense > 0, dense - 3.0, 0.0)                  # -2, -1, 1: integers
  dense[0, 1:] = 0.0                                               # one entry
  dense[1] = 0.0                                                   # none
  # A permutation (every caller's; the keys are distinct: any sort), and ranks with repeats (ties
  # beyond the rank go to the stored order: the stable sort).
  for k, tie_rank in itertools.product((7, 2), (rng.permutation(n_v),
                                                rng.integers(0, n_v // 4, n_v))):
    codes, n = top_per_row(sp.csr_matrix(dense), k, tie_rank)
    same, same_n, scores = top_per_row(sp.csr_matrix(dense), k, tie_rank, return_scores=True)
    np.testing.assert_array_equal(same, codes)
    np.testing.assert_array_equal(same_n, n)
    for i in range(n_q):
      stored = np.flatnonzero(dense[i])
      want = sorted(stored, key=lambda c: (-dense[i, c], tie_rank[c], c))[:k]
      assert n[i] == len(want) and codes[i, :n[i]].tolist() == want, (i, k)
      assert (codes[i, n[i]:] == -1).all()
      assert scores[i, :n[i]].tolist() == dense[i, want].tolist()
      assert np.isneginf(scores[i, n[i]:]).all()


def test_top_unseen_per_row_equals_ranking_without_the_seen():
  import scipy.sparse as sp  # pylint: disable=import-outside-toplevel
  from jaxae.recommend.popular import (top_per_row,  # pylint: disable=import-outside-toplevel
                                       top_unseen_per_row)
  rng = np.random.default_rng(9)
  n_q, n_v = 30, 50
  scores = np.where(rng.random((n_q, n_v)) < 0.4, rng.integers(1, 6, (n_q, n_v)), 0).astype(float)
  seen = (rng.random((n_q, n_v)) < 0.15).astype(np.float32)   # some scored, some not
  seen[0] = 1.0                                                 # every code seen
  seen[1] = 0.0                                                 # none
  seen[2, np.argsort(-scores[2])[:10]] = 1.0                    # the best ten (more than k)
  tie_rank = rng.permutation(n_v)
  for k in (3, 8, 60):
    got = top_unseen_per_row(sp.csr_matrix(scores), sp.csr_matrix(seen), k, tie_rank)
    want = top_per_row(sp.csr_matrix(np.where(seen > 0, 0.0, scores)), k, tie_rank)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
  assert (got[1][0] == 0).all() and (got[0][0] == -1).all()


# ------------------------------------------------------------------------ seed B
def _bigrams(title):
  words = "".join(c if c.isalnum() or c == "_" else " " for c in title.lower()).split()
  return {w[i:i + 2] for w in words for i in range(max(len(w) - 1, 1))}


def _reference_seed_b(train, questions, emb, song_ids, n_song_nb, n_tag_nb, n_songs=100,
                      n_tags=10, song_power=0.0, tag_power=0.0, titles=False, own_weight=0.0,
                      cooc_songs=False):
  """Seed B written plainly, one question at a time (numpy float64)."""
  row = {int(s): i for i, s in enumerate(song_ids)}
  def embed(songs):
    return sum((emb[row[s]] for s in songs if s in row), np.zeros(emb.shape[1]))
  t_emb = np.stack([embed(p["songs"]) for p in train])
  t_norm = np.linalg.norm(t_emb, axis=1)
  song_pop = [s for s, _ in Counter(s for p in train for s in p["songs"]).most_common()]
  tag_pop = [t for t, _ in Counter(t for p in train for t in p["tags"]).most_common()]
  train_tags = set(tag_pop)
  train_words = set().union(*(_bigrams(p["plylst_title"]) for p in train))
  holding, pair = Counter(), Counter()               # playlists holding a tag / a pair of tags
  for p in train:
    holding.update(set(p["tags"]))
    pair.update((t, u) for t in set(p["tags"]) for u in set(p["tags"]) - {t})
  out = []
  for q in questions:
    e = embed(q["songs"])
    qtags = set(q["tags"]) & train_tags
    qwords = _bigrams(q["plylst_title"]) & train_words if titles else set()
    if np.linalg.norm(e) > 0:
      sims = np.where(t_norm > 0, t_emb @ e / np.maximum(t_norm, 1e-30) / np.linalg.norm(e),
                      -np.inf)
    elif qtags:
      sims = np.array([len(qtags & set(p["tags"])) / np.sqrt(len(qtags) * max(len(p["tags"]), 1))
                       for p in train])
      sims[sims <= 0] = -np.inf
    elif qwords:
      sims = np.array([len(qwords & _bigrams(p["plylst_title"]))
                       / np.sqrt(len(qwords) * max(len(_bigrams(p["plylst_title"])), 1))
                       for p in train])
      sims[sims <= 0] = -np.inf
    else:
      sims = np.full(len(train), -np.inf)
    sims[[i for i, p in enumerate(train) if p["id"] == q["id"]]] = -np.inf
    order = [i for i in np.argsort(-sims, kind="stable") if np.isfinite(sims[i])]

    def vote(col, n_nb, power, pop, k, own=0.0):
      nb = [i for i in order if train[i][col]][:n_nb]      # only playlists holding some
      c = Counter()
      for i in nb:
        w = 1.0 if power == 0 else (sims[i] ** power if sims[i] > 0 else 0.0)
        for x in set(train[i][col]):
          c[x] += w
      if col == "songs" and cooc_songs and np.linalg.norm(e) == 0 and qtags:
        c = Counter()                                      # songs co-occurring with the tags
        for p in train:
          for x in set(p["songs"]):
            c[x] += len(qtags & set(p["tags"]))
      if own:                   # both votes scaled to sum 1, before the own tags are left out
        given = Counter({t: sum(pair[u, t] / holding[u] for u in qtags) for t in holding})
        total, given_total = sum(c.values()), sum(given.values())
        c = Counter({t: (c[t] / total if total else 0.0)
                     + own * (given[t] / given_total if given_total else 0.0) for t in holding})
      c = Counter({x: v for x, v in c.items() if x not in set(q[col])})
      ranked = sorted((x for x in c if c[x] > 0), key=lambda x: (-c[x], pop.index(x)))[:k]
      rest = [x for x in pop if x not in set(ranked) and x not in set(q[col])]
      return ranked + rest[:k - len(ranked)]

    out.append({"id": q["id"], "songs": vote("songs", n_song_nb, song_power, song_pop, n_songs),
                "tags": vote("tags", n_tag_nb, tag_power, tag_pop, n_tags, own_weight)})
  return out


def test_seed_b_obvious_nearest_neighbour():
  # Three taste groups of songs with orthogonal embeddings; playlist 7 is the only group-2 playlist.
  rng = np.random.default_rng(4)
  groups = {0: range(0, 100), 1: range(100, 200), 2: range(200, 240)}
  emb = np.zeros((240, 3), np.float32)
  for g, songs in groups.items():
    emb[list(songs), g] = 1.0 + 0.01 * rng.random(len(songs))
  train = [_pl(i, rng.choice(100, 30, replace=False).tolist(), ["pop", f"p{i}"]) for i in range(7)]
  train.append(_pl(7, list(range(200, 240)), ["indie", "lofi"]))
  train += [_pl(8 + i, rng.choice(np.arange(100, 200), 30, replace=False).tolist(),
                ["rock", f"r{i}"]) for i in range(5)]
  question = _pl(100, [200, 201, 202])                 # a few group-2 songs
  rep = {}
  (r,) = song_as_user(train, [question], song_embeddings=emb, song_ids=np.arange(240),
                      song_neighbours=1, tag_neighbours=1, report=rep)
  # Its songs come from playlist 7 (minus the three it has), then popularity fills up.
  assert set(r["songs"][:37]) == set(range(203, 240))
  assert r["tags"][:2] == ["indie", "lofi"]
  _check_valid([r], [question])
  assert rep["questions_embedding"] == 1 and rep["songs_filled"] == 63


@pytest.mark.parametrize("song_power,tag_power,titles,own_weight,cooc_songs",
                         [(0.0, 0.0, False, 0.0, False), (1.0, 2.0, True, 0.5, True),
                          (2.5, 0.5, True, 2.0, False), (0.0, 1.0, False, 0.25, True)])
def test_seed_b_equals_plain_reference_and_chunking(song_power, tag_power, titles, own_weight,
                                                    cooc_songs, monkeypatch):
  # Random playlists include some without songs and some without tags: they never vote.
  rng = np.random.default_rng(5)
  train = _random_playlists(rng, 150, 0, n_songs=300, n_tags=25)
  questions = _random_playlists(rng, 40, 900, n_songs=300, n_tags=25)
  questions.append(_pl(3, train[3]["songs"][:2], []))   # same id as a training playlist
  questions += [_pl(950 + i, [], p["tags"][:2]) for i, p in enumerate(train[:12]) if p["tags"]]
  words = ["봄바람", "노래", "Rock", "잔잔한", "피아노", "드라이브", "x", "밤"]
  for p in train + questions:                           # titles; the title-only questions below
    p["plylst_title"] = " ".join(rng.choice(words, int(rng.integers(0, 3))))
  questions += [_pl(980 + i, [], [], t) for i, t in enumerate(["봄바람 노래!", "ROCK", "x", "zz",
                                                               "잔잔한피아노"])]
  song_ids = np.arange(0, 300, 1)[rng.random(300) < 0.8]  # ~20% of songs have no embedding
  emb = rng.normal(size=(len(song_ids), 8)).astype(np.float32)
  assert any(not p["tags"] for p in train) and any(not p["songs"] for p in train)
  settings = {"song_power": song_power, "tag_power": tag_power, "titles": titles,
              "own_weight": own_weight, "cooc_songs": cooc_songs}
  args = {"song_vote_power": song_power, "tag_vote_power": tag_power, "titles": titles,
          "own_tag_weight": own_weight, "cooccurrence_songs": cooc_songs}
  want = _reference_seed_b(train, questions, emb.astype(np.float64), song_ids, 4, 7, **settings)
  # topk_group 4 and 16: neighbours through group maxima (150 playlists > 7 x 4 and 7 x 16); 64 is
  # wider than 150 / 7 and falls back to jax.lax.top_k.
  for chunk, group, vote_rows in ((1, 0, 1024), (7, 0, 5), (256, 0, 1024), (7, 4, 1024),
                                  (256, 16, 16), (7, 64, 1024)):
    monkeypatch.setattr(song_as_user_module, "_VOTE_ROWS", vote_rows)   # the vote product's blocks
    rep = {}
    got = song_as_user(train, questions, song_embeddings=emb, song_ids=song_ids,
                       song_neighbours=4, tag_neighbours=7, chunk_size=chunk, topk_group=group,
                       report=rep, **args)
    assert got == want, (chunk, group)
  assert rep["questions_tag_overlap"] > 0 and rep["questions_embedding"] > 0   # both routes
  assert (rep["questions_title_overlap"] > 0) == titles
  assert rep["questions_tag_cooccurrence_songs"] == (rep["questions_tag_overlap"] if cooc_songs
                                                     else 0)
  _check_valid(got, questions)
  # Every training playlist holding songs and tags: one neighbour search serves both votes.
  full = [p for p in train if p["songs"] and p["tags"]]
  want = _reference_seed_b(full, questions, emb.astype(np.float64), song_ids, 4, 7, **settings)
  for group in (0, 4):
    got = song_as_user(full, questions, song_embeddings=emb, song_ids=song_ids,
                       song_neighbours=4, tag_neighbours=7, topk_group=group, **args)
    assert got == want, group


def test_seed_b_fallbacks_and_counts():
  emb = np.eye(4, dtype=np.float32)
  song_ids = np.array([1, 2, 3, 4])
  train = [_pl(1, [1, 2, 50], ["a", "b"]), _pl(2, [3, 60], ["c"]), _pl(3, [4, 70, 71], ["d"])]
  train += [_pl(10 + i, [200 + i], [f"z{i}"]) for i in range(100)]
  questions = [
      _pl(20, [], ["c", "unknown"]),   # tags only -> tag overlap -> playlist 2
      _pl(21, [999], []),              # a song without embedding and no tags -> most popular
      _pl(22),                         # nothing -> most popular
  ]
  rep = {}
  r = song_as_user(train, questions, song_embeddings=emb, song_ids=song_ids, song_neighbours=1,
                   tag_neighbours=1, report=rep)
  assert r[0]["songs"][:2] == [3, 60]
  mp = most_popular(train, questions)
  assert r[1] == mp[1] and r[2] == mp[2]
  _check_valid(r, questions)
  assert (rep["questions_embedding"], rep["questions_tag_overlap"], rep["questions_popular"]) == (
      0, 1, 2)
  assert rep["question_songs_without_embedding"] == 1
  assert rep["train_songs_without_embedding"] == 4 + 100   # 50, 60, 70, 71 and the fillers
  assert rep["train_playlists_without_embedding"] == 100


def test_seed_b_voters_hold_what_they_vote_for_and_weights_follow_the_cosine():
  # Song embeddings on two axes; the question [1, 2] points along (1, 0).
  emb = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [1, 0.2], [1, 0.2], [1, 1], [1, 1]],
                 np.float32)
  song_ids = np.arange(1, 9)
  train = [_pl(10, [1, 3], []),            # cosine 1, no tags: never a tag voter
           _pl(11, [2, 4], ["near"]),      # cosine 1
           _pl(12, [5, 6, 30], ["mid"]),   # cosine 0.98 (song 30 has no embedding)
           _pl(13, [7, 31], ["far"]),      # cosine 0.71
           _pl(14, [8, 31], ["far"]),      # cosine 0.71
           _pl(15, [], ["tagsonly"])]      # no songs: never a neighbour by embedding
  question = _pl(20, [1, 2])
  def run(**kw):
    (r,) = song_as_user(train, [question], song_embeddings=emb, song_ids=song_ids, n_songs=5,
                        n_tags=2, **kw)
    return r
  # tag_neighbours=1: the nearest playlist holding tags (11), not the nearest one (10).
  assert run(song_neighbours=5, tag_neighbours=1)["tags"][0] == "near"
  # Song 31 is in the two far playlists: two plain votes beat any single one, ...
  assert run(song_neighbours=5, tag_neighbours=5)["songs"][0] == 31
  # ... while cosine ** 4 (0.25 + 0.25 < 0.92) puts the songs of the near playlists first, the
  # cosine-1 ones (3, 4) before the 0.98 ones, and song 31 after those.
  r = run(song_neighbours=5, tag_neighbours=5, song_vote_power=4.0, tag_vote_power=4.0)
  assert r["songs"][:2] in ([3, 4], [4, 3]) and set(r["songs"][2:4]) == {5, 6}
  assert r["songs"][4] == 30 and r["tags"] == ["near", "mid"]
  # Above power 0 a neighbour at cosine <= 0 votes nothing: its songs come from the fill-up only.
  emb_neg = emb.copy()
  emb_neg[6:] = [[-1, 0], [-1, 0]]
  rep = {}
  song_as_user(train[3:5], [question], song_embeddings=emb_neg, song_ids=song_ids,
               song_neighbours=2, tag_neighbours=2, n_songs=3, n_tags=1, song_vote_power=1.0,
               report=rep)
  assert rep["songs_filled"] == 3
  rep = {}                                        # power 0: they vote (a plain count)
  song_as_user(train[3:5], [question], song_embeddings=emb_neg, song_ids=song_ids,
               song_neighbours=2, tag_neighbours=2, n_songs=3, n_tags=1, report=rep)
  assert rep["songs_filled"] == 0


def test_seed_b_own_tags_and_cooccurrence_songs_hand_case():
  emb = np.eye(6, dtype=np.float32)
  train = [_pl(1, [1], ["a", "x"]), _pl(2, [2, 5], ["b"]), _pl(3, [3], ["a", "x"]),
           _pl(4, [4], ["a", "y"]), _pl(5, [3], ["a", "z"])]
  questions = [_pl(10, [2], ["a"]), _pl(11, [], ["a"])]

  def run(**kw):
    rep = {}
    r = song_as_user(train, questions, song_embeddings=emb, song_ids=np.arange(6),
                     song_neighbours=1, tag_neighbours=1, n_songs=2, n_tags=3, report=rep, **kw)
    return r, rep

  # 10's nearest playlist by embedding is 2: its one tag b (share 1). P(t | a) over a's 4
  # playlists: x 2/4, y 1/4, z 1/4 (shares as they are).
  r, _ = run()
  assert r[0]["tags"][0] == "b"
  r, _ = run(own_tag_weight=0.5)                  # b 1, x 0.25, y / z 0.125
  assert r[0]["tags"][:2] == ["b", "x"]
  r, _ = run(own_tag_weight=3.0)                  # x 1.5, b 1, y / z 0.75
  assert r[0]["tags"][:2] == ["x", "b"]
  # 11 (tags only): its tag-overlap neighbour is playlist 1 (all tie at 1 / sqrt 2: the lower
  # index), which votes song 1; the songs co-occurring with a: 3 (two playlists), then 1 / 4.
  r, rep = run()
  assert r[1]["songs"][0] == 1 and rep["questions_tag_cooccurrence_songs"] == 0
  r, rep = run(cooccurrence_songs=True)
  assert r[1]["songs"][0] == 3 and rep["questions_tag_cooccurrence_songs"] == 1
  assert r[0]["songs"] == run()[0][0]["songs"]    # the embedding route is unchanged


def test_title_tokens_are_word_bigrams():
  from jaxae.recommend.song_as_user import title_tokens  # pylint: disable=import-outside-toplevel
  assert title_tokens("마음뭉클해지는노래모음") == sorted(
      ["마음", "음뭉", "뭉클", "클해", "해지", "지는", "는노", "노래", "래모", "모음"])
  assert title_tokens("뭉클한 노래!!") == ["노래", "뭉클", "클한"]
  assert title_tokens("Rock & K-Pop 2") == ["2", "ck", "k", "oc", "op", "po", "ro"]
  assert title_tokens("") == [] and title_tokens("  !! ") == []


def test_seed_b_title_only_questions_use_title_neighbours():
  emb = np.eye(3, dtype=np.float32)
  train = [_pl(1, [1], ["spring"], "봄바람 드라이브"), _pl(2, [2], ["night"], "잔잔한 밤"),
           _pl(3, [3], ["rock"], "Rock")]
  questions = [_pl(10, [], [], "봄 드라이브"), _pl(11, [], [], "zz"), _pl(12)]
  rep = {}
  r = song_as_user(train, questions, song_embeddings=emb, song_ids=[1, 2, 3], song_neighbours=1,
                   tag_neighbours=1, n_songs=2, n_tags=1, titles=True, report=rep)
  assert r[0]["songs"][0] == 1 and r[0]["tags"] == ["spring"]     # shares 드라 / 라이 / 이브
  mp = most_popular(train, questions, n_songs=2, n_tags=1)
  assert r[1] == mp[1] and r[2] == mp[2]                            # no known token / no title
  assert (rep["questions_title_overlap"], rep["questions_popular"]) == (1, 2)
  rep = {}
  r = song_as_user(train, questions, song_embeddings=emb, song_ids=[1, 2, 3], song_neighbours=1,
                   tag_neighbours=1, n_songs=2, n_tags=1, report=rep)
  assert r == mp and rep["questions_title_overlap"] == 0           # titles off: popularity


def test_seed_b_fill_never_duplicates_under_heavy_fill():
  # Short playlists: the neighbours hold far fewer than 100 songs / 10 tags, most slots are filled.
  rng = np.random.default_rng(6)
  train = [_pl(i, rng.choice(130, int(rng.integers(1, 8)), replace=False).tolist(),
               [f"t{x}" for x in rng.choice(15, int(rng.integers(1, 4)), replace=False)])
           for i in range(60)]
  questions = [_pl(500 + i, rng.choice(130, int(rng.integers(0, 8)), replace=False).tolist(),
                   [f"t{x}" for x in rng.choice(15, int(rng.integers(0, 3)), replace=False)])
               for i in range(30)]
  ids = np.unique([s for p in train for s in p["songs"]])
  emb = rng.normal(size=(len(ids), 4)).astype(np.float32)
  rep = {}
  got = song_as_user(train, questions, song_embeddings=emb, song_ids=ids, report=rep)
  _check_valid(got, questions)
  assert rep["songs_filled"] > 30 * 50


def test_seed_b_argument_errors():
  train = [_pl(1, [1], ["a"])]
  with pytest.raises(DataError, match="do not match"):
    song_as_user(train, [], song_embeddings=np.zeros((3, 2)), song_ids=np.arange(2))
  with pytest.raises(DataError, match="song id 5 has more than one embedding row"):
    song_as_user(train, [], song_embeddings=np.zeros((2, 2)), song_ids=np.array([5, 5]))
  with pytest.raises(ConfigError, match=r"^config.eval.recommender_args.song_neighbours: "
                     "expected an integer >= 1, got 0$"):
    song_as_user(train, [], song_embeddings=np.zeros((1, 2)), song_ids=[1], song_neighbours=0)
  with pytest.raises(ConfigError, match=r"^config.eval.recommender_args.chunk_size: expected an "
                     "integer >= 1, got 2.0$"):
    song_as_user(train, [], song_embeddings=np.zeros((1, 2)), song_ids=[1], chunk_size=2.0)
  with pytest.raises(ConfigError, match=r"^config.eval.topk_group: expected an integer >= 0, "
                     "got -1$"):
    song_as_user(train, [], song_embeddings=np.zeros((1, 2)), song_ids=[1], topk_group=-1)
  with pytest.raises(ConfigError, match=r"^config.eval.recommender_args.titles: expected true or "
                     r"false, got 'yes'$"):
    song_as_user(train, [], song_embeddings=np.zeros((1, 2)), song_ids=[1], titles="yes")
  with pytest.raises(ConfigError, match=r"^config.eval.recommender_args.cooccurrence_songs: "
                     r"expected true or false, got 1$"):
    song_as_user(train, [], song_embeddings=np.zeros((1, 2)), song_ids=[1], cooccurrence_songs=1)
  for arg, bad in (("song_vote_power", -1.0), ("tag_vote_power", float("nan")),
                   ("song_vote_power", "2"), ("own_tag_weight", -0.5)):
    with pytest.raises(ConfigError, match=rf"^config.eval.recommender_args.{arg}: expected a "
                       rf"finite number >= 0, got {re.escape(repr(bad))}$"):
      song_as_user(train, [], song_embeddings=np.zeros((1, 2)), song_ids=[1], **{arg: bad})


def test_registry():
  assert set(RECOMMENDERS) == {"most_popular", "genre_most_popular", "song_as_user", "hybrid"}
  assert get_recommender("song_as_user").needs_embeddings
  assert get_recommender("genre_most_popular").uses_song_meta
  assert "song_neighbours" in get_recommender("song_as_user").arg_names()
  assert "song_embeddings" not in get_recommender("song_as_user").arg_names()
  # topk_group comes from config.eval.topk_group (passed by the evaluator), never recommender_args.
  assert get_recommender("song_as_user").takes_topk_group
  assert get_recommender("hybrid").takes_topk_group
  assert not get_recommender("most_popular").takes_topk_group
  assert "topk_group" not in get_recommender("song_as_user").arg_names()
  with pytest.raises(ConfigError, match="unknown recommender 'x'; known"):
    get_recommender("x")


def test_tag_neighbours_from_the_sparse_product_match_a_dense_ranking():
  """``neighbours_by_tags`` ranks the nonzeros of the sparse product alone: the same neighbours as
  ranking every playlist's cosine (overlap > 0, not the question itself; ties to the lower index,
  frequent with binary tags), at any chunk size, with the cosine -inf past the sharing ones; with
  ``candidates``, the same ranking over the candidate playlists only; several searches at once
  give what each gives alone."""
  import scipy.sparse as sp  # pylint: disable=import-outside-toplevel
  from jaxae.recommend.song_as_user import neighbours_by_tags  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  train = sp.csr_matrix((rng.random((300, 12)) < 0.15).astype(np.float32))
  q = sp.csr_matrix((rng.random((41, 12)) < 0.2).astype(np.float32))
  self_idx = np.where(rng.random(41) < 0.5, rng.integers(0, 300, 41), -1)
  k = 7
  tn = np.sqrt(np.asarray(train.sum(1)).ravel())
  qn = np.sqrt(np.asarray(q.sum(1)).ravel())
  sims = (q.toarray() @ train.toarray().T) / np.maximum(np.outer(qn, tn), 1e-30)
  sims = sims.astype(np.float32)
  sims[np.arange(41)[self_idx >= 0], self_idx[self_idx >= 0]] = 0
  cand = rng.random(300) < 0.6
  # Several searches share one product: each gives what it gives alone.
  both = neighbours_by_tags(q, train, self_idx, [k, 3], 7, [cand, None])
  for (idx, sim), kk, cc in zip(both, [k, 3], [cand, None]):
    (idx1, sim1), = neighbours_by_tags(q, train, self_idx, [kk], 7, [cc])
    np.testing.assert_array_equal(idx, idx1)
    np.testing.assert_array_equal(sim, sim1)
  for chunk, candidates in ((5, None), (16, None), (64, None), (7, cand)):
    (idx, sim), = neighbours_by_tags(q, train, self_idx, [k], chunk, [candidates])
    ok = np.isfinite(sim)
    assert idx.shape == sim.shape == (41, k)
    for i in range(41):
      order = np.argsort(-sims[i], kind="stable")             # ties: lower index first
      order = order[cand[order]] if candidates is not None else order
      want = order[sims[i][order] > 0][:k]
      assert ok[i].sum() == len(want), (chunk, i)
      np.testing.assert_array_equal(idx[i][ok[i]], want, err_msg=f"chunk {chunk}, row {i}")
      np.testing.assert_allclose(sim[i][ok[i]], sims[i][want], rtol=1e-6)
    assert (~ok).any() and ok.any()                          # short rows and full ones
  assert any(len(np.unique(r[r > 0])) < (r > 0).sum() for r in sims)   # ties to break
