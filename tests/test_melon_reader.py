"""Tests of the Melon readers: round trips, every validation error, real-file statistics."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from jaxae.data.readers import melon
from jaxae.errors import DataError

RECORDS = [
    {"tags": ["발라드", "감성"], "id": 7, "plylst_title": "비 오는 날", "songs": [5, 3, 9],
     "like_cnt": 4, "updt_date": "2015-01-02 03:04:05.000"},
    {"tags": [], "id": 2, "plylst_title": "", "songs": [], "like_cnt": 0,
     "updt_date": "2020-04-23 23:45:14.000"},
    {"tags": ["감성"], "id": 11, "plylst_title": "drive", "songs": [9, 1], "like_cnt": 36075,
     "updt_date": "2005-03-22 03:24:55.000"},
]

META = [
    {"song_gn_dtl_gnr_basket": ["GN0105", "GN0101"], "issue_date": "20140512",
     "album_name": "A", "album_id": 100, "artist_id_basket": [7, 8], "song_name": "s1",
     "song_gn_gnr_basket": ["GN0100"], "artist_name_basket": ["x", "y"], "id": 1},
    {"song_gn_dtl_gnr_basket": [], "issue_date": "20150000", "album_name": "B",
     "album_id": 101, "artist_id_basket": [9], "song_name": "s3", "song_gn_gnr_basket": [],
     "artist_name_basket": ["z"], "id": 3},
    {"song_gn_dtl_gnr_basket": ["GN0201"], "issue_date": "00000000", "album_name": "C",
     "album_id": 102, "artist_id_basket": [], "song_name": "s9",
     "song_gn_gnr_basket": ["GN0200", "GN0100"], "artist_name_basket": [], "id": 9},
]


def _write(tmp_path, obj, name="pl.json", raw: str | None = None):
  p = tmp_path / name
  p.write_text(raw if raw is not None else json.dumps(obj, ensure_ascii=False), encoding="utf-8")
  return p


def test_read_arrays_and_accessors(tmp_path):
  pl = melon.read_playlists(_write(tmp_path, RECORDS))
  assert len(pl) == 3
  np.testing.assert_array_equal(pl.ids, [7, 2, 11])
  assert pl.titles == ["비 오는 날", "", "drive"]
  np.testing.assert_array_equal(pl.like_cnt, [4, 0, 36075])
  np.testing.assert_array_equal(pl.song_indptr, [0, 3, 3, 5])
  np.testing.assert_array_equal(pl.songs, [5, 3, 9, 9, 1])
  np.testing.assert_array_equal(pl.tag_indptr, [0, 2, 2, 3])
  assert pl.tags.tolist() == ["발라드", "감성", "감성"]
  assert pl.updt_date[0] == np.datetime64("2015-01-02T03:04:05")
  np.testing.assert_array_equal(pl.songs_of(2), [9, 1])
  assert pl.tags_of(1).tolist() == []
  np.testing.assert_array_equal(pl.index_of([11, 5, 7]), [2, -1, 0])
  sub = pl.select([2, 0])
  np.testing.assert_array_equal(sub.ids, [11, 7])
  np.testing.assert_array_equal(sub.songs, [9, 1, 5, 3, 9])
  assert sub.tags.tolist() == ["감성", "발라드", "감성"]
  assert sub.titles == ["drive", "비 오는 날"]
  assert pl.select(np.array([False, True, False])).to_json_records() == [RECORDS[1]]
  both = melon.Playlists.concat([pl.select([1]), pl.select([2])])
  assert both.to_json_records() == [RECORDS[1], RECORDS[2]]
  assert pl.skipped == {}


def test_round_trip_json_and_gzip(tmp_path):
  pl = melon.read_playlists(_write(tmp_path, RECORDS))
  assert pl.to_json_records() == RECORDS
  for name in ("out.json", "out.json.gz"):
    melon.write_playlists(pl, tmp_path / name)
    back = melon.read_playlists(tmp_path / name)
    for field in ("ids", "like_cnt", "updt_date", "song_indptr", "songs", "tag_indptr", "tags"):
      np.testing.assert_array_equal(getattr(back, field), getattr(pl, field))
    assert back.titles == pl.titles
  assert (tmp_path / "out.json.gz").read_bytes()[:2] == b"\x1f\x8b"
  # Records can be written directly too, and gzip is detected by magic, not by name.
  melon.write_playlists(RECORDS, tmp_path / "rec.json")
  assert json.loads((tmp_path / "rec.json").read_text(encoding="utf-8")) == RECORDS
  (tmp_path / "hidden.json").write_bytes(gzip.compress(json.dumps(RECORDS).encode()))
  assert melon.read_playlists(tmp_path / "hidden.json").to_json_records() == RECORDS


def test_song_and_tag_matrix(tmp_path):
  pl = melon.read_playlists(_write(tmp_path, RECORDS))
  m = pl.song_matrix()
  np.testing.assert_array_equal(m.row_ids, [7, 2, 11])
  np.testing.assert_array_equal(m.col_ids, [1, 3, 5, 9])
  np.testing.assert_array_equal(m.matrix.toarray(), [[0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 1]])
  # Vocab {9, 5, 4}: songs 3 (playlist 7) and 1 (playlist 11) dropped; nobody emptied.
  m, report = pl.song_matrix(song_vocab=[9, 5, 4], return_report=True)
  np.testing.assert_array_equal(m.col_ids, [9, 5, 4])
  np.testing.assert_array_equal(m.matrix.toarray(), [[1, 1, 0], [0, 0, 0], [1, 0, 0]])
  assert report == {"songs_not_in_vocab": 2, "playlists_emptied": 0}
  _, report = pl.song_matrix(song_vocab=[3], return_report=True)
  assert report == {"songs_not_in_vocab": 4, "playlists_emptied": 1}
  t = pl.tag_matrix()
  assert t.col_ids.tolist() == sorted(["발라드", "감성"])
  np.testing.assert_array_equal(t.matrix.toarray(), [[1, 1], [0, 0], [1, 0]])


def test_duplicate_song_kept_once_and_counted(tmp_path, caplog):
  recs = json.loads(json.dumps(RECORDS))
  recs[0]["songs"] = [5, 3, 5, 9, 3]
  recs[2]["tags"] = ["감성", "감성"]
  with caplog.at_level("WARNING"):
    pl = melon.read_playlists(_write(tmp_path, recs))
  np.testing.assert_array_equal(pl.songs_of(0), [5, 3, 9])
  assert pl.tags_of(2).tolist() == ["감성"]
  assert pl.skipped == {"duplicate_songs": 2, "duplicate_tags": 1}
  assert "duplicate songs" in caplog.text


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r[1].pop("songs"), ["record 1", "playlist id 2", "'songs'"]),
    (lambda r: r[2].pop("updt_date"), ["record 2", "playlist id 11", "'updt_date'"]),
    (lambda r: r[0]["songs"].__setitem__(1, "3"), ["record 0", "playlist id 7", "songs[1]"]),
    (lambda r: r[2]["songs"].append(True), ["record 2", "playlist id 11", "songs[2]"]),
    (lambda r: r[2]["songs"].append(1.5), ["record 2", "songs[2]", "float"]),
    (lambda r: r[0]["tags"].append(3), ["record 0", "playlist id 7", "tags[2]"]),
    (lambda r: r[1].__setitem__("songs", "1,2"), ["record 1", "playlist id 2", "'songs'"]),
    (lambda r: r[1].__setitem__("id", "2"), ["record 1", "'id'"]),
    (lambda r: r[2].__setitem__("like_cnt", None), ["record 2", "'like_cnt'"]),
    (lambda r: r[0].__setitem__("plylst_title", 5), ["record 0", "'plylst_title'"]),
    (lambda r: r[2].__setitem__("id", 7), ["duplicate playlist id 7", "records 0 and 2"]),
    (lambda r: r[1].__setitem__("updt_date", "2020-13-01 00:00:00.000"),
     ["record 1", "updt_date"]),
    (lambda r: r.__setitem__(1, [1, 2]), ["record 1", "list"]),
])
def test_validation_errors_name_file_record_and_key(tmp_path, mutate, expected):
  recs = json.loads(json.dumps(RECORDS))
  mutate(recs)
  path = _write(tmp_path, recs, name="bad_playlists.json")
  with pytest.raises(DataError) as e:
    melon.read_playlists(path)
  msg = str(e.value)
  assert "bad_playlists.json" in msg
  for part in expected:
    assert part in msg, (part, msg)
  assert "\n" not in msg


def test_file_level_errors(tmp_path):
  with pytest.raises(DataError, match=r"bad\.json: bad JSON at line 1 column 11 \(char 10\)"):
    melon.read_playlists(_write(tmp_path, None, "bad.json", raw='[{"id": 1,}]'))
  with pytest.raises(DataError, match=r"obj\.json: the top level must be a JSON array"):
    melon.read_playlists(_write(tmp_path, {"id": 1}, "obj.json"))
  with pytest.raises(DataError, match=r"empty\.json: the file is empty"):
    melon.read_playlists(_write(tmp_path, None, "empty.json", raw=""))
  with pytest.raises(DataError, match=r"blank\.json: the file is empty"):
    melon.read_playlists(_write(tmp_path, None, "blank.json", raw="  \n"))
  with pytest.raises(DataError, match=r"nope\.json"):
    melon.read_playlists(tmp_path / "nope.json")
  assert len(melon.read_playlists(_write(tmp_path, [], "none.json"))) == 0


def test_song_meta_read_and_round_trip(tmp_path):
  path = _write(tmp_path, META, "song_meta.json")
  meta = melon.read_song_meta(path)
  np.testing.assert_array_equal(meta.ids, [1, 3, 9])
  np.testing.assert_array_equal(meta.genre_indptr, [0, 1, 1, 3])
  assert meta.genres.tolist() == ["GN0100", "GN0200", "GN0100"]
  assert meta.dtl_genres.tolist() == ["GN0105", "GN0101", "GN0201"]
  np.testing.assert_array_equal(meta.issue_date, [20140512, 20150000, 0])
  np.testing.assert_array_equal(meta.issue_year(), [2014, 2015, 0])
  np.testing.assert_array_equal(meta.issue_month(), [5, 0, 0])
  np.testing.assert_array_equal(meta.album_id, [100, 101, 102])
  np.testing.assert_array_equal(meta.artist_indptr, [0, 2, 3, 3])
  np.testing.assert_array_equal(meta.artists, [7, 8, 9])
  np.testing.assert_array_equal(meta.index_of([9, 4, 1]), [2, -1, 0])
  assert meta.select([2]).genres.tolist() == ["GN0200", "GN0100"]
  key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
  assert sorted(map(key, meta.to_json_records())) == sorted(map(key, META))
  melon.write_song_meta(meta, tmp_path / "again.json")
  assert melon.read_song_meta(tmp_path / "again.json").to_json_records() == meta.to_json_records()


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r[1].pop("issue_date"), ["record 1", "song id 3", "'issue_date'"]),
    (lambda r: r[0].__setitem__("issue_date", "2014-05"), ["record 0", "song id 1", "issue_date"]),
    (lambda r: r[2]["artist_id_basket"].append("x"), ["record 2", "artist_id_basket[0]"]),
    (lambda r: r[0]["song_gn_gnr_basket"].append(1), ["record 0", "song_gn_gnr_basket[1]"]),
    (lambda r: r[2].__setitem__("id", 1), ["duplicate song id 1", "records 0 and 2"]),
])
def test_song_meta_errors(tmp_path, mutate, expected):
  recs = json.loads(json.dumps(META))
  mutate(recs)
  with pytest.raises(DataError) as e:
    melon.read_song_meta(_write(tmp_path, recs, "meta_bad.json"))
  assert "meta_bad.json" in str(e.value)
  for part in expected:
    assert part in str(e.value), (part, str(e.value))


def test_null_album_id_counted(tmp_path):
  recs = json.loads(json.dumps(META))
  recs[1]["album_id"] = None
  meta = melon.read_song_meta(_write(tmp_path, recs, "m.json"))
  np.testing.assert_array_equal(meta.album_id, [100, -1, 102])
  assert meta.skipped == {"null_album_id": 1}


def test_genres(tmp_path):
  g = {"GN0100": "발라드", "GN0101": "세부장르전체"}
  assert melon.read_genres(_write(tmp_path, g, "g.json")) == g
  melon.write_genres(g, tmp_path / "g2.json")
  assert melon.read_genres(tmp_path / "g2.json") == g
  with pytest.raises(DataError, match=r"arr\.json: the top level must be a JSON object"):
    melon.read_genres(_write(tmp_path, ["GN0100"], "arr.json"))
  with pytest.raises(DataError, match=r"num\.json: genre 'GN0100'"):
    melon.read_genres(_write(tmp_path, {"GN0100": 1}, "num.json"))


def test_csr_helpers():
  ptr, vals, dup = melon.dedupe_segments(np.array([0, 3, 3, 6]), np.array([4, 4, 2, 2, 4, 2]))
  np.testing.assert_array_equal(ptr, [0, 2, 2, 4])
  np.testing.assert_array_equal(vals, [4, 2, 2, 4])
  np.testing.assert_array_equal(dup, [False, True, False, False, False, True])
  ptr, vals = melon.csr_take(np.array([0, 2, 2, 5]), np.arange(5), np.array([2, 2, 0]))
  np.testing.assert_array_equal(ptr, [0, 3, 6, 8])
  np.testing.assert_array_equal(vals, [2, 3, 4, 2, 3, 4, 0, 1])


# ------------------------------------------------------------------------------ real data
@pytest.mark.data
def test_real_melon_test_json_stats(shared_data):
  from tests.conftest import shared_file
  pl = melon.read_playlists(shared_file(shared_data, "melon/test.json"))
  assert len(pl) == 10_740
  assert len(pl.songs) == 197_648
  assert len(np.unique(pl.songs)) == 91_351
  assert len(pl.tags) == 12_737
  assert len(np.unique(pl.tags)) == 2_824
  assert int((pl.song_lengths() == 0).sum()) == 2_043
  assert int((pl.tag_lengths() == 0).sum()) == 5_318
  assert sum(t == "" for t in pl.titles) == 8_699
  assert (pl.ids.min(), pl.ids.max()) == (11, 153_406)
  assert (pl.like_cnt.min(), pl.like_cnt.max()) == (0, 36_075)
  assert pl.updt_date.min() == np.datetime64("2005-03-22T03:24:55")
  assert pl.updt_date.max() == np.datetime64("2020-04-23T23:45:14")
  assert pl.skipped == {}
  # The records written back are exactly the file's records.
  with open(shared_file(shared_data, "melon/test.json"), encoding="utf-8") as f:
    assert pl.to_json_records() == json.load(f)


@pytest.mark.data
def test_real_genre_table(shared_data):
  from tests.conftest import shared_file
  g = melon.read_genres(shared_file(shared_data, "melon/genre_gn_all.json"))
  assert len(g) == 254
  assert sum(code.endswith("00") for code in g) == 30
