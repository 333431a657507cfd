"""Tests of the TFDS array_record builders and the reader (need the optional tfds extra)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow_datasets")

# pylint: disable=g-import-not-at-top,wrong-import-position
from jaxae.data import tfds_builders, tfds_reader
from jaxae.data.readers.melon import read_playlists
from jaxae.data.readers.movielens import read_movielens
from jaxae.errors import DataError, JaxaeError
from jaxae.data.tfds_builders import __main__ as cli

pytestmark = pytest.mark.tfds

# (user, movie, rating, timestamp); user 7 rates movie 3 twice (the reader keeps the last).
_RATINGS = [(7, 3, 4.0, 881250949), (1, 10, 2.5, 891717742), (7, 5, 1.0, 878887116),
            (2, 3, 5.0, 880606923), (7, 3, 3.0, 886397596), (1, 3, 4.5, 884182806)]

_PLAYLISTS = [
    {"tags": ["락", "여름"], "id": 61281, "plylst_title": "여름 밤 드라이브", "songs": [525514, 129701],
     "like_cnt": 71, "updt_date": "2013-12-19 18:36:19.000"},
    {"tags": [], "id": 10532, "plylst_title": "", "songs": [432406, 525514, 7],
     "like_cnt": 1, "updt_date": "2014-12-02 16:19:42.000"},
    {"tags": ["잔잔한"], "id": 76951, "plylst_title": "no songs", "songs": [],
     "like_cnt": 0, "updt_date": "2017-08-28 07:09:34.000"},
    {"tags": ["a", "b", "c"], "id": 5, "plylst_title": "t", "songs": [1],
     "like_cnt": 36075, "updt_date": "2020-04-23 23:45:14.000"},
]


def _write_ratings(path, fmt: str):
  lines = []
  if fmt == "csv":
    lines.append("userId,movieId,rating,timestamp")
  sep = {"tab": "\t", "dat": "::", "csv": ","}[fmt]
  for u, m, r, t in _RATINGS:
    rating = r if fmt == "csv" else int(r) if r == int(r) else r
    lines.append(sep.join(str(x) for x in (u, m, rating, t)))
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(lines) + "\n")
  return path


def _assert_inter_equal(a, b):
  assert a.shape == b.shape
  np.testing.assert_array_equal(a.row_ids, b.row_ids)
  np.testing.assert_array_equal(a.col_ids, b.col_ids)
  np.testing.assert_array_equal(a.matrix.toarray(), b.matrix.toarray())
  if b.timestamps is not None:
    np.testing.assert_array_equal(a.timestamps.toarray(), b.timestamps.toarray())


@pytest.mark.parametrize("config,rel,fmt", [("100k", "u.data", "tab"),
                                            ("1m", "ml-1m/ratings.dat", "dat"),
                                            ("20m", "ratings.csv", "csv")])
def test_movielens_ratings_round_trip(tmp_path, config, rel, fmt):
  src = _write_ratings(tmp_path / "manual" / rel, fmt)
  out = tfds_builders.build("movielens_ratings", config=config, manual_dir=tmp_path / "manual",
                            data_dir=tmp_path / "tfds")
  assert out == os.fspath(tmp_path / "tfds" / "movielens_ratings" / config / "1.0.0")
  got = tfds_reader.read_split("movielens_ratings", "train", tmp_path / "tfds", config=config)
  want = read_movielens(src)
  _assert_inter_equal(got, want)
  # By hand: 5 distinct pairs; user 7 / movie 3 keeps the later rating 3.0 (time 886397596).
  assert got.nnz == 5 and got.shape == (3, 3)
  r, c = list(got.row_ids).index(7), list(got.col_ids).index(3)
  assert got.matrix[r, c] == 3.0 and got.timestamps[r, c] == 886397596
  cols = tfds_reader.read_columns("movielens_ratings", "train", tmp_path / "tfds", config=config)
  assert cols["rating"].dtype == np.float32 and cols["user_id"].dtype == np.int64
  assert sorted(cols["rating"].tolist()) == [1.0, 2.5, 3.0, 4.5, 5.0]


def test_melon_playlists_round_trip(tmp_path):
  manual = tmp_path / "manual"
  manual.mkdir()
  (manual / "train.json").write_text(json.dumps(_PLAYLISTS[:3], ensure_ascii=False),
                                     encoding="utf-8")
  (manual / "test.json").write_text(json.dumps(_PLAYLISTS[3:], ensure_ascii=False),
                                    encoding="utf-8")
  cli_rc = cli.main(["melon_playlists", "--manual_dir", str(manual), "--data_dir",
                     str(tmp_path / "tfds")])
  assert cli_rc == 0
  for split, recs in (("train", _PLAYLISTS[:3]), ("test", _PLAYLISTS[3:])):
    got = tfds_reader.read_playlists(tmp_path / "tfds", split)
    assert got.to_json_records() == recs                       # file order and every field
    want = read_playlists(manual / f"{split}.json")
    _assert_inter_equal(tfds_reader.read_split("melon_playlists", split, tmp_path / "tfds"),
                        want.song_matrix())
    _assert_inter_equal(tfds_reader.read_split("melon_playlists", split, tmp_path / "tfds",
                                               field="tags"), want.tag_matrix())
  songs = tfds_reader.read_split("melon_playlists", "train", tmp_path / "tfds")
  # By hand: rows 61281, 10532, 76951; songs {7, 129701, 432406, 525514}; 5 entries.
  np.testing.assert_array_equal(songs.row_ids, [61281, 10532, 76951])
  np.testing.assert_array_equal(songs.col_ids, [7, 129701, 432406, 525514])
  np.testing.assert_array_equal(songs.row_lengths(), [2, 3, 0])
  with pytest.raises(DataError, match="split 'val'"):
    tfds_reader.read_playlists(tmp_path / "tfds", "val")


def test_no_tensorflow_needed(tmp_path):
  if importlib.util.find_spec("tensorflow") is not None:
    pytest.skip("TensorFlow is installed here; nothing to check")
  _write_ratings(tmp_path / "m" / "u.data", "tab")
  tfds_builders.build("movielens_ratings", config="100k", manual_dir=tmp_path / "m",
                      data_dir=tmp_path / "d")
  tfds_reader.read_split("movielens_ratings", "train", tmp_path / "d", config="100k")
  assert "tensorflow" not in sys.modules


def test_rebuild_only_with_overwrite(tmp_path):
  src = _write_ratings(tmp_path / "m" / "u.data", "tab")
  kw = dict(config="100k", manual_dir=tmp_path / "m", data_dir=tmp_path / "d")
  tfds_builders.build("movielens_ratings", **kw)
  src.write_text("1\t2\t5\t100\n")
  tfds_builders.build("movielens_ratings", **kw)           # already built: kept as it was
  assert tfds_reader.read_split("movielens_ratings", "train", tmp_path / "d",
                                config="100k").nnz == 5
  tfds_builders.build("movielens_ratings", overwrite=True, **kw)
  again = tfds_reader.read_split("movielens_ratings", "train", tmp_path / "d", config="100k")
  assert again.nnz == 1 and again.matrix[0, 0] == 5.0


def test_stage_copies_a_remote_style_dataset_and_reuses_it(tmp_path):
  _write_ratings(tmp_path / "m" / "u.data", "tab")
  src = tfds_builders.build("movielens_ratings", config="100k", manual_dir=tmp_path / "m",
                            data_dir=tmp_path / "d")
  local = os.fspath(tmp_path / "cache" / "x")
  assert tfds_reader.stage(src, local) == local
  assert sorted(os.listdir(local)) == sorted(os.listdir(src))
  marker = os.path.join(local, "marker")
  open(marker, "w").close()
  tfds_reader.stage(src, local)                 # same dataset_info.json: the copy is reused
  assert os.path.exists(marker)
  with open(os.path.join(src, "dataset_info.json"), "a", encoding="utf-8") as f:
    f.write(" ")
  tfds_reader.stage(src, local)                 # changed: copied again
  assert not os.path.exists(marker)
  assert not [p for p in os.listdir(tmp_path / "cache") if "incomplete" in p]


def test_errors(tmp_path, monkeypatch):
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no u.data"):
    tfds_builders.build("movielens_ratings", config="100k", manual_dir=tmp_path / "empty",
                        data_dir=tmp_path / "d")
  with pytest.raises(DataError, match="no train.json"):
    tfds_builders.build("melon_playlists", manual_dir=tmp_path / "empty", data_dir=tmp_path / "d")
  with pytest.raises(DataError, match="does not exist"):
    tfds_builders.build("melon_playlists", manual_dir=tmp_path / "nope", data_dir=tmp_path / "d")
  with pytest.raises(JaxaeError, match="unknown config '10m'.*100k, 1m, 20m"):
    tfds_builders.build("movielens_ratings", config="10m", manual_dir=tmp_path / "empty",
                        data_dir=tmp_path / "d")
  with pytest.raises(JaxaeError, match="unknown TFDS builder"):
    tfds_builders.builder_class("netflix")
  with pytest.raises(DataError, match="no built dataset"):
    tfds_reader.read_split("movielens_ratings", "train", tmp_path / "d", config="1m")
  assert cli.main(["melon_playlists", "--manual_dir", str(tmp_path / "empty"), "--data_dir",
                   str(tmp_path / "d")]) == 2
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)   # as if the extra were missing
  with pytest.raises(JaxaeError, match=r"pip install 'jaxae\[tfds\]'"):
    tfds_builders.require_tfds()
