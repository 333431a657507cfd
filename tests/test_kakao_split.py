"""Tests of the Kakao Arena split (questions / answers like the official split_data.py)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from jaxae.data import kakao_split as ks
from jaxae.data.readers import melon
from jaxae.errors import DataError


def _playlists(n: int, seed: int = 0, max_songs: int = 60, max_tags: int = 8) -> melon.Playlists:
  """Random full playlists (distinct songs / tags within each playlist)."""
  rng = np.random.default_rng(seed)
  s_len = rng.integers(0, max_songs + 1, n)
  t_len = rng.integers(0, max_tags + 1, n)
  songs = np.concatenate([rng.choice(5000, k, replace=False) for k in s_len])
  vocab = np.asarray([f"tag{i}" for i in range(50)])
  tags = np.concatenate([vocab[rng.choice(50, k, replace=False)] for k in t_len])
  return melon.Playlists(
      ids=rng.permutation(10 * n)[:n], titles=[f"title {i}" for i in range(n)],
      like_cnt=rng.integers(0, 100, n),
      updt_date=np.datetime64("2019-01-01T00:00:00") + rng.integers(0, 10**7, n).astype(
          "timedelta64[s]"),
      song_indptr=melon.csr_from_lengths(s_len), songs=songs,
      tag_indptr=melon.csr_from_lengths(t_len), tags=tags)


def _arrays(p: melon.Playlists):
  return (p.ids, p.song_indptr, p.songs, p.tag_indptr, p.tags, p.like_cnt, p.updt_date)


def test_partition_matches_official_shuffle():
  pl = _playlists(300)
  split = ks.kakao_split(pl)
  # ArenaSplitter.run: random.seed(777); random.shuffle(playlists); first 80% are train.
  records = pl.to_json_records()
  random.seed(777)
  random.shuffle(records)
  assert split.train.ids.tolist() == [r["id"] for r in records[:240]]
  assert sorted(split.questions.ids.tolist()) == sorted(r["id"] for r in records[240:])
  assert split.train.to_json_records() == records[:240]


def test_type_proportions_and_field_visibility():
  pl = _playlists(500, seed=1)
  split = ks.kakao_split(pl, seed=3)
  # 100 question playlists cut at int(0.3 T), int(0.8 T), int(0.95 T).
  assert split.type_counts() == {"song_only": 30, "song_tags": 50, "tags_only": 15,
                                 "title_only": 5}
  q, a, types = split.questions, split.answers, split.question_types
  np.testing.assert_array_equal(q.ids, a.ids)
  orig = pl.select(pl.index_of(q.ids))
  q_s, q_t, o_s, o_t = q.song_lengths(), q.tag_lengths(), orig.song_lengths(), orig.tag_lengths()
  songs_masked = np.isin(types, ["song_only", "song_tags"])
  tags_masked = np.isin(types, ["song_tags", "tags_only"])
  np.testing.assert_array_equal(q_s, np.where(songs_masked, o_s // 2, 0))
  np.testing.assert_array_equal(q_t, np.where(tags_masked, o_t // 2, 0))
  np.testing.assert_array_equal(a.song_lengths(), np.where(songs_masked, o_s - o_s // 2, o_s))
  np.testing.assert_array_equal(a.tag_lengths(), np.where(tags_masked, o_t - o_t // 2, o_t))
  assert q.titles == orig.titles and a.titles == orig.titles  # Official: titles stay visible.
  np.testing.assert_array_equal(q.like_cnt, orig.like_cnt)
  np.testing.assert_array_equal(a.updt_date, orig.updt_date)


def test_questions_and_answers_reconstitute_the_playlists():
  pl = _playlists(400, seed=2)
  split = ks.kakao_split(pl, seed=5)
  q, a = split.questions, split.answers
  orig = pl.select(pl.index_of(q.ids))
  for i in range(len(q)):
    qs, as_, os_ = q.songs_of(i), a.songs_of(i), orig.songs_of(i)
    assert sorted(np.concatenate([qs, as_]).tolist()) == sorted(os_.tolist())
    # Both halves keep the original order.
    pos = {s: k for k, s in enumerate(os_.tolist())}
    assert [pos[s] for s in qs.tolist()] == sorted(pos[s] for s in qs.tolist())
    assert [pos[s] for s in as_.tolist()] == sorted(pos[s] for s in as_.tolist())
    assert sorted(q.tags_of(i).tolist() + a.tags_of(i).tolist()) == sorted(orig.tags_of(i).tolist())
  # Train + questions hold every playlist exactly once.
  all_ids = np.concatenate([split.train.ids, q.ids])
  assert sorted(all_ids.tolist()) == sorted(pl.ids.tolist())


def test_answers_truncated_to_100_songs_10_tags():
  pl = _playlists(200, seed=4, max_songs=200, max_tags=30)
  split = ks.kakao_split(pl)
  a, types = split.answers, split.question_types
  assert a.song_lengths().max() <= 100 and a.tag_lengths().max() <= 10
  orig = pl.select(pl.index_of(a.ids))
  # Deleted fields: the answer is the first 100 songs / 10 tags of the playlist.
  for i in np.flatnonzero(np.isin(types, ["tags_only", "title_only"])):
    np.testing.assert_array_equal(a.songs_of(i), orig.songs_of(i)[:100])
  for i in np.flatnonzero(np.isin(types, ["song_only", "title_only"])):
    assert a.tags_of(i).tolist() == orig.tags_of(i)[:10].tolist()
  assert (orig.song_lengths() > 100).any() and (orig.tag_lengths() > 20).any()


def test_deterministic_per_seed():
  pl = _playlists(300, seed=6)
  one, two = ks.kakao_split(pl, seed=11), ks.kakao_split(pl, seed=11)
  for x, y in ((one.train, two.train), (one.questions, two.questions), (one.answers, two.answers)):
    for u, v in zip(_arrays(x), _arrays(y)):
      np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(one.question_types, two.question_types)
  other = ks.kakao_split(pl, seed=12)
  assert not np.array_equal(other.train.ids, one.train.ids)


def test_blank_titles_and_bad_options():
  pl = _playlists(200, seed=7)
  split = ks.kakao_split(pl, blank_titles=ks.RELEASED_BLANK_TITLES)
  q, a, types = split.questions, split.answers, split.question_types
  blank = np.isin(types, ["song_only", "song_tags"])
  assert all((t == "") == b for t, b in zip(q.titles, blank))
  assert all(t != "" for t in a.titles)
  with pytest.raises(DataError, match="unknown question types"):
    ks.kakao_split(pl, blank_titles=("songs",))
  with pytest.raises(DataError, match="train_fraction"):
    ks.kakao_split(pl, train_fraction=1.0)


def test_write_and_read_split(tmp_path):
  pl = _playlists(120, seed=8)
  split = ks.write_split(pl, tmp_path / "out", seed=1)
  names = sorted(p.name for p in (tmp_path / "out").iterdir())
  assert names == ["answers.json", "question_types.json", "questions.json", "train.json"]
  back = ks.read_split(tmp_path / "out")
  for x, y in ((split.train, back.train), (split.questions, back.questions),
               (split.answers, back.answers)):
    for u, v in zip(_arrays(x), _arrays(y)):
      np.testing.assert_array_equal(u, v)
  np.testing.assert_array_equal(back.question_types, split.question_types)
  types = json.loads((tmp_path / "out" / "question_types.json").read_text())
  assert types == {str(i): t for i, t in zip(split.questions.ids.tolist(),
                                              split.question_types.tolist())}
  # Broken outputs are reported.
  types[str(split.questions.ids[0])] = "lyrics_only"
  (tmp_path / "out" / "question_types.json").write_text(json.dumps(types))
  with pytest.raises(DataError, match="unknown question type 'lyrics_only'"):
    ks.read_split(tmp_path / "out")
  melon.write_playlists(split.answers.select(np.arange(1, len(split.answers))),
                        tmp_path / "out" / "answers.json")
  with pytest.raises(DataError, match="different playlist ids"):
    ks.read_split(tmp_path / "out")


@pytest.mark.data
def test_real_test_json_split(shared_data, tmp_path):
  from tests.conftest import shared_file
  pl = melon.read_playlists(shared_file(shared_data, "melon/test.json"))
  split = ks.write_split(pl, tmp_path)
  back = ks.read_split(tmp_path)
  assert len(back.train) == int(0.8 * len(pl))
  t = len(pl) - len(back.train)
  assert back.type_counts() == {"song_only": int(0.3 * t), "song_tags": int(0.8 * t) - int(0.3 * t),
                                "tags_only": int(0.95 * t) - int(0.8 * t),
                                "title_only": t - int(0.95 * t)}
  assert back.answers.song_lengths().max() <= 100 and back.answers.tag_lengths().max() <= 10
  orig = pl.select(pl.index_of(back.questions.ids))
  np.testing.assert_array_equal(back.questions.song_lengths() + back.answers.song_lengths(),
                                orig.song_lengths())
  np.testing.assert_array_equal(back.questions.tag_lengths() + back.answers.tag_lengths(),
                                orig.tag_lengths())
  np.testing.assert_array_equal(back.questions.songs, split.questions.songs)
