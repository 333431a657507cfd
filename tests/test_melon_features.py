"""Tests of the Melon feature matrices on a hand-checked 3-playlist fixture."""

from __future__ import annotations

import numpy as np
import pytest

from jaxae.data import melon_features as mf
from jaxae.data.readers import melon
from jaxae.errors import DataError


@pytest.fixture
def playlists() -> melon.Playlists:
  # id 10: songs 1 2 3, tags a b;  id 20: songs 2 3, tag b;  id 30: songs 3 4, tags a c.
  return melon.playlists_from_records([
      {"tags": ["a", "b"], "id": 10, "plylst_title": "x", "songs": [1, 2, 3], "like_cnt": 0,
       "updt_date": "2020-01-01 00:00:00.000"},
      {"tags": ["b"], "id": 20, "plylst_title": "y", "songs": [2, 3], "like_cnt": 0,
       "updt_date": "2020-01-01 00:00:00.000"},
      {"tags": ["a", "c"], "id": 30, "plylst_title": "z", "songs": [3, 4], "like_cnt": 0,
       "updt_date": "2020-01-01 00:00:00.000"},
  ])


@pytest.fixture
def meta() -> melon.SongMeta:
  # Song 4 has no meta; song 2 has month 00; song 3 has an unknown date.
  return melon.song_meta_from_records([
      {"id": 1, "song_gn_gnr_basket": ["GN0100"], "song_gn_dtl_gnr_basket": ["GN0101"],
       "issue_date": "20140512", "album_id": 1, "artist_id_basket": [1]},
      {"id": 2, "song_gn_gnr_basket": ["GN0100", "GN0200"], "song_gn_dtl_gnr_basket": [],
       "issue_date": "20150000", "album_id": 2, "artist_id_basket": [2]},
      {"id": 3, "song_gn_gnr_basket": ["GN0200"], "song_gn_dtl_gnr_basket": ["GN0201"],
       "issue_date": "00000000", "album_id": 3, "artist_id_basket": [3]},
  ])


def test_counts(playlists):
  ids, counts = mf.song_counts(playlists)
  np.testing.assert_array_equal(ids, [1, 2, 3, 4])
  np.testing.assert_array_equal(counts, [1, 2, 3, 1])
  tags, tcounts = mf.tag_counts(playlists)
  assert tags.tolist() == ["a", "b", "c"]
  np.testing.assert_array_equal(tcounts, [2, 2, 1])
  np.testing.assert_array_equal(mf.frequent_songs(playlists, 2), [2, 3])
  assert mf.frequent_tags(playlists, 2).tolist() == ["a", "b"]
  assert mf.frequent_tags(playlists, 1, max_tags=1).tolist() == ["a"]  # Tie a/b: by string.


def test_song_as_user_matrix_with_meta(playlists, meta):
  m, blocks = mf.song_as_user_matrix(playlists, meta, min_song_count=2, min_tag_count=2)
  np.testing.assert_array_equal(m.row_ids, [2, 3])
  assert m.col_ids.tolist() == ["pl:10", "pl:20", "pl:30", "gn:GN0100", "gn:GN0200",
                                "year:2015", "tag:a", "tag:b"]
  assert blocks == {"pl": (0, 3), "gn": (3, 5), "year": (5, 6), "tag": (6, 8)}
  np.testing.assert_array_equal(m.matrix.toarray(), [
      # pl:10 pl:20 pl:30 GN0100 GN0200 2015 a  b
      [1, 1, 0, 1, 1, 1, 1, 1],  # song 2: in 10 (a, b) and 20 (b)
      [1, 1, 1, 0, 1, 0, 1, 1],  # song 3: in all three; unknown date
  ])
  assert m.matrix.dtype == np.float32
  # Tags shared in >= 2 playlists only: song 2 shares "a" once, "b" twice.
  m2, _ = mf.song_as_user_matrix(playlists, meta, min_song_count=2, min_tag_count=2,
                                 min_song_tag_count=2)
  np.testing.assert_array_equal(m2.matrix.toarray()[:, 6:], [[0, 1], [1, 1]])


def test_song_as_user_matrix_months_and_details(playlists, meta):
  m, blocks = mf.song_as_user_matrix(playlists, meta, min_song_count=1, min_tag_count=3,
                                     detail_genres=True)
  np.testing.assert_array_equal(m.row_ids, [1, 2, 3, 4])
  assert list(blocks) == ["pl", "gn", "dtl", "year", "month"]  # No tag is in 3 playlists.
  cols = m.col_ids.tolist()
  assert cols[3:] == ["gn:GN0100", "gn:GN0200", "dtl:GN0101", "dtl:GN0201", "year:2014",
                      "year:2015", "month:05"]
  dense = m.matrix.toarray()
  np.testing.assert_array_equal(dense[:, cols.index("month:05")], [1, 0, 0, 0])
  np.testing.assert_array_equal(dense[3, 3:], np.zeros(7))  # Song 4 has no meta.


def test_song_as_user_without_meta_and_top_tags(playlists):
  m, blocks = mf.song_as_user_matrix(playlists, None, min_song_count=1, min_tag_count=1,
                                     max_tags_per_song=1)
  # Per song the most shared tag (ties -> first tag): 1 -> a, 2 -> b (2x), 3 -> a (a, b tie 2x),
  # 4 -> a. Tag "c" is nobody's pick, so it gets no column.
  assert blocks == {"pl": (0, 3), "tag": (3, 5)}
  assert m.col_ids.tolist()[3:] == ["tag:a", "tag:b"]
  np.testing.assert_array_equal(m.matrix.toarray()[:, 3:], [[1, 0], [0, 1], [1, 0], [1, 0]])


def test_song_meta_onehot(playlists, meta):
  x = mf.song_meta_onehot(meta, playlists, song_ids=[4, 2], min_tag_count=2)
  np.testing.assert_array_equal(x.row_ids, [4, 2])
  assert x.col_ids.tolist() == ["gn:GN0100", "gn:GN0200", "year:2015", "tag:a", "tag:b"]
  np.testing.assert_array_equal(x.matrix.toarray(), [[0, 0, 0, 1, 0], [1, 1, 1, 1, 1]])
  no_meta = mf.song_meta_onehot(None, playlists, min_song_count=3)
  assert no_meta.col_ids.tolist() == ["tag:a", "tag:b", "tag:c"]
  np.testing.assert_array_equal(no_meta.matrix.toarray(), [[1, 1, 1]])
  assert mf.feature_blocks(x.col_ids) == {"gn": (0, 2), "year": (2, 3), "tag": (3, 5)}


def test_playlist_song_matrix(playlists):
  m = mf.playlist_song_matrix(playlists, min_song_count=2)
  np.testing.assert_array_equal(m.row_ids, [10, 20, 30])
  np.testing.assert_array_equal(m.col_ids, [2, 3])
  np.testing.assert_array_equal(m.matrix.toarray(), [[1, 1], [1, 1], [0, 1]])
  m = mf.playlist_song_matrix(playlists, song_vocab=[4, 1, 99])
  np.testing.assert_array_equal(m.col_ids, [4, 1, 99])
  np.testing.assert_array_equal(m.matrix.toarray(), [[0, 1, 0], [0, 0, 0], [1, 0, 0]])
  m = mf.playlist_song_matrix(playlists, song_vocab=[4, 1], drop_empty_rows=True)
  np.testing.assert_array_equal(m.row_ids, [10, 30])
  with pytest.raises(DataError, match="duplicate"):
    mf.playlist_song_matrix(playlists, song_vocab=[4, 4])


def test_cooccurrence_by_hand(playlists):
  c = mf.song_tag_cooccurrence(playlists)
  np.testing.assert_array_equal(c.row_ids, [1, 2, 3, 4])
  assert c.col_ids.tolist() == ["a", "b", "c"]
  np.testing.assert_array_equal(c.matrix.toarray(), [[1, 1, 0], [1, 2, 0], [2, 2, 1], [1, 0, 1]])
  c = mf.song_tag_cooccurrence(playlists, min_song_count=2, min_tag_count=2)
  np.testing.assert_array_equal(c.matrix.toarray(), [[1, 2], [2, 2]])


def test_cooccurrence_equals_brute_force():
  rng = np.random.default_rng(0)
  records = []
  for i in range(40):
    songs = rng.choice(30, rng.integers(0, 8), replace=False).tolist()
    tags = [f"t{k}" for k in rng.choice(6, rng.integers(0, 4), replace=False)]
    records.append({"tags": tags, "id": i, "plylst_title": "", "songs": songs, "like_cnt": 0,
                    "updt_date": "2020-01-01 00:00:00.000"})
  pl = melon.playlists_from_records(records)
  c = mf.song_tag_cooccurrence(pl, min_song_count=2, min_tag_count=3)
  song_n = {s: sum(s in r["songs"] for r in records) for s in range(30)}
  tag_n = {t: sum(t in r["tags"] for r in records) for t in {t for r in records for t in r["tags"]}}
  songs = sorted(s for s, n in song_n.items() if n >= 2)
  tags = sorted(t for t, n in tag_n.items() if n >= 3)
  brute = np.array([[sum(s in r["songs"] and t in r["tags"] for r in records) for t in tags]
                    for s in songs])
  np.testing.assert_array_equal(c.row_ids, songs)
  assert c.col_ids.tolist() == tags
  np.testing.assert_array_equal(c.matrix.toarray(), brute)


def test_feature_blocks_must_be_contiguous():
  with pytest.raises(DataError, match="not contiguous"):
    mf.feature_blocks(np.array(["pl:1", "tag:a", "pl:2"]))
  assert mf.feature_blocks(np.array([], dtype=str)) == {}
