"""Data pipelines (``jaxae.data.pipelines``) and the synthetic rating / implicit generators.

Synthetic data (``path=None``) for every pipeline: shapes, row / column alignment of every split
with train, key validation, orientation, the validation carve-out, determinism; the Melon pipelines
also on files written to a temporary folder; the real datasets (``-m data``) with the README's
counts.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np
import pytest
import scipy.sparse as sp

from jaxae.data import pipelines
from jaxae.data import synthetic
from jaxae.data import synthetic_interactions as si
from jaxae.data.dataset import Dataset
from jaxae.data.matrix import Interactions
from jaxae.data.readers import melon as melon_reader
from jaxae.errors import ConfigError, DataError
from tests.conftest import shared_file

_META = dict(min_tag_count=1, max_tags=None, min_song_tag_count=1, max_tags_per_song=None,
             genres=True, detail_genres=False, years=True, months=True, tags=True)
_MELON = dict(synthetic_size="tiny", split_seed=0, min_song_count=1)
BASE = {
    "movielens": dict(split="u1", test_fraction=0.1, val_fraction=0.1, orientation="user",
                      rating_range=(1, 5)),
    "netflix": dict(train_dir="train", val_dir="valid", test_dir="test", orientation="user",
                    rating_range=(1, 5)),
    "lightgcn": dict(val_fraction=0.1, val_split="entries", binarize_threshold=None),
    "csv": dict(delimiter=",", header="auto", encoding="utf-8", user_col=0, item_col=1,
                value_col=None, timestamp_col=None, ids="int", duplicates="last",
                feedback="implicit", rating_range=None, binarize_threshold=None,
                min_user_entries=0, min_item_entries=0, split="per_user", test_fraction=0.2,
                val_fraction=0.1, fold_in_fraction=None, min_entries_to_split=None,
                orientation="user"),
    "melon_song_as_user": {**_MELON, **_META},
    "melon_cf": dict(_MELON),
    "melon_content": {**_MELON, **_META},
}


def config(name: str, path=None, **overrides) -> ml_collections.ConfigDict:
  values = dict(name=name, path=None if path is None else os.fspath(path), **BASE[name])
  values.update(overrides)
  return ml_collections.ConfigDict(values)


def load(name: str, path=None, seed: int = 0, **overrides) -> Dataset:
  return pipelines.load_dataset(config(name, path, **overrides), seed)


def entries(inter: Interactions) -> dict:
  """{(row id, col id): value} of every stored entry."""
  r, c, v = inter.to_coo_ids()
  return dict(zip(zip(r.tolist(), c.tolist()), v.tolist()))


def same(a: Interactions, b: Interactions) -> bool:
  return (np.array_equal(a.row_ids, b.row_ids) and np.array_equal(a.col_ids, b.col_ids)
          and a.shape == b.shape and (a.matrix != b.matrix).nnz == 0)


def assert_aligned(ds: Dataset):
  """Every split's inputs and targets have train's row ids and column ids, in train's order."""
  for es in (ds.val, ds.test):
    if es is None:
      continue
    for m in (es.inputs, es.targets):
      assert m.shape == ds.train.shape
      np.testing.assert_array_equal(m.row_ids, ds.train.row_ids)
      np.testing.assert_array_equal(m.col_ids, ds.train.col_ids)
    if es.rows is not None:
      rows = np.asarray(es.rows)
      assert rows.min() >= 0 and rows.max() < ds.train.shape[0]


@pytest.fixture(scope="module")
def synthetic_sets() -> dict[str, Dataset]:
  return {name: load(name) for name in BASE}


# ------------------------------------------------------------------------------- registry / keys
def test_registry_lists_exactly_the_keys_each_pipeline_reads():
  assert set(pipelines.PIPELINES) == set(BASE)
  for name, (_, keys) in pipelines.PIPELINES.items():
    assert set(config(name).keys()) == keys, name


@pytest.mark.parametrize("name", sorted(BASE))
def test_synthetic_builds_and_splits_share_train_ids(name, synthetic_sets):
  ds = synthetic_sets[name]
  assert ds.train.nnz > 0 and ds.info["name"] == name and ds.info["source"] == "synthetic"
  assert_aligned(ds)
  for es in (ds.val, ds.test):
    if es is not None:
      assert es.targets.nnz > 0


def test_synthetic_shapes(synthetic_sets):
  ml = synthetic_sets["movielens"]
  assert ml.train.shape == (600, 1000) and ml.info["orientation"] == "user"
  assert set(np.unique(ml.train.matrix.data).tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
  assert synthetic_sets["lightgcn"].train.shape == (2000, 3000)
  cf = synthetic_sets["melon_cf"]
  spec = synthetic.SIZES["tiny"]
  assert cf.train.shape[0] == spec.n_playlists  # train playlists + val and test questions
  songs = synthetic_sets["melon_song_as_user"]
  np.testing.assert_array_equal(songs.train.row_ids, np.sort(cf.train.col_ids))
  blocks = songs.info["feature_blocks"]
  assert list(blocks)[0] == "pl" and blocks["pl"][0] == 0
  assert set(blocks) >= {"pl", "gn", "year", "tag"}
  content = synthetic_sets["melon_content"]
  np.testing.assert_array_equal(content.train.row_ids, songs.train.row_ids)
  # The content matrix is the meta part of the song_as_user matrix.
  start = blocks["pl"][1]
  np.testing.assert_array_equal(content.train.col_ids, songs.train.col_ids[start:])
  assert (content.train.matrix != songs.train.matrix[:, start:]).nnz == 0


# --------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", sorted(BASE))
def test_unknown_and_missing_keys_name_the_key(name):
  cfg = config(name)
  cfg.orientaton = "item"
  with pytest.raises(ConfigError, match=r"unknown key\(s\) \['orientaton'\]"):
    pipelines.load_dataset(cfg, 0)
  key = sorted(set(BASE[name]))[0]
  values = config(name).to_dict()
  del values[key]
  with pytest.raises(ConfigError, match=rf"missing key\(s\) \['{key}'\]"):
    pipelines.load_dataset(ml_collections.ConfigDict(values), 0)


def test_pipeline_name_errors():
  with pytest.raises(ConfigError, match=r"'movielenz' is not a known pipeline.*'movielens'"):
    pipelines.load_dataset(ml_collections.ConfigDict(dict(name="movielenz", path=None)), 0)
  with pytest.raises(ConfigError, match="config.data.name is missing"):
    pipelines.load_dataset(ml_collections.ConfigDict(dict(path=None)), 0)


def test_nonexistent_path_is_a_data_error(tmp_path):
  missing = tmp_path / "nope" / "u.data"
  for name in BASE:
    with pytest.raises(DataError, match=r"config.data.path=.*nope.*no such file or directory"):
      load(name, missing)


@pytest.mark.parametrize("name, key, value, pattern", [
    ("movielens", "split", "u9", r"config.data.split='u9'; known: u1, u2"),
    ("movielens", "orientation", "items", r"config.data.orientation='items'"),
    ("movielens", "val_fraction", 1.5, r"config.data.val_fraction: expected a finite number >= 0 and < 1, got 1.5"),
    ("movielens", "rating_range", 5, r"config.data.rating_range must be \(lo, hi\)"),
    ("netflix", "orientation", "song", r"config.data.orientation='song'"),
    ("lightgcn", "val_fraction", -0.1, r"config.data.val_fraction"),
    ("lightgcn", "binarize_threshold", "4", r"config.data.binarize_threshold"),
    ("lightgcn", "val_split", "users", r"config.data.val_split='users'; known: entries, per_user"),
    ("melon_cf", "synthetic_size", "huge", r"config.data.synthetic_size='huge'"),
    ("melon_cf", "split_seed", -1, r"config.data.split_seed: expected an integer >= 0, got -1"),
    ("melon_cf", "min_song_count", 0, r"config.data.min_song_count: expected an integer >= 1, got 0"),
])
def test_bad_values_name_the_key(name, key, value, pattern):
  with pytest.raises(ConfigError, match=pattern):
    load(name, **{key: value})


def test_holdout_checks_test_fraction_only_for_holdout():
  with pytest.raises(ConfigError, match="config.data.test_fraction"):
    load("movielens", split="holdout", test_fraction=0.0)
  load("movielens", split="u2", test_fraction=0.0)  # unused by the u folds


# ---------------------------------------------------------------------------------- orientation
@pytest.mark.parametrize("name", ["movielens", "netflix"])
def test_item_orientation_transposes_train_val_and_test(name, synthetic_sets):
  user = synthetic_sets[name]
  item = load(name, orientation="item")
  assert item.info["orientation"] == "item"
  assert same(item.train, user.train.T)
  for a, b in ((item.val, user.val), (item.test, user.test)):
    assert same(a.inputs, b.inputs.T) and same(a.targets, b.targets.T)
  assert_aligned(item)
  np.testing.assert_array_equal(item.train.row_ids, user.train.col_ids)


# ----------------------------------------------------------------------------------- val carving
@pytest.mark.parametrize("name", ["movielens", "lightgcn"])
def test_val_is_carved_from_train_and_test_is_untouched(name, synthetic_sets):
  ds = synthetic_sets[name]
  no_val = load(name, val_fraction=0.0)
  assert no_val.val is None
  train, val = entries(ds.train), entries(ds.val.targets)
  assert val and not set(train) & set(val)                           # disjoint
  assert {**train, **val} == entries(no_val.train)                     # together: the full train
  assert abs(len(val) - 0.1 * (len(train) + len(val))) <= 1
  assert same(ds.val.inputs, ds.train)                                  # val scored from train
  assert same(ds.test.inputs, no_val.train)                             # test from the full train
  assert same(ds.test.targets, no_val.test.targets)                     # test never changes
  assert not set(entries(ds.test.targets)) & (set(train) | set(val))


def test_lightgcn_per_user_val_carve(synthetic_sets):
  ds = load("lightgcn", val_split="per_user")
  no_val = load("lightgcn", val_fraction=0.0)
  train, val = entries(ds.train), entries(ds.val.targets)
  assert not set(train) & set(val) and {**train, **val} == entries(no_val.train)
  full_rows = no_val.train.row_lengths()
  got = ds.val.targets.row_lengths()
  np.testing.assert_array_equal(got > 0, full_rows >= 2)   # every user with 2+ items validates
  assert np.all(ds.train.row_lengths()[full_rows > 0] >= 1)  # and keeps a training item
  assert ds.val.info["protocol"] == "per-user holdout 0.1 of train"
  assert same(ds.test.targets, no_val.test.targets) and same(ds.test.inputs, no_val.train)
  # The entry-level carve leaves some users without validation items on the same data.
  assert np.any((synthetic_sets["lightgcn"].val.targets.row_lengths() == 0) & (full_rows >= 2))


def test_lightgcn_config_saved_before_val_split_reads_as_entries(synthetic_sets):
  old = config("lightgcn")
  del old["val_split"]
  ds = pipelines.load_dataset(pipelines.upgrade_saved(old), 0)
  assert same(ds.val.targets, synthetic_sets["lightgcn"].val.targets)
  with pytest.raises(ConfigError, match=r"missing key\(s\) \['val_split'\]"):
    pipelines.load_dataset(old, 0)             # a config given now must name it


def test_synthetic_movielens_folds_partition_the_ratings():
  tests = [load("movielens", split=f"u{k}", val_fraction=0.0) for k in range(1, 6)]
  full = entries(tests[0].train) | entries(tests[0].test.targets)
  seen: dict = {}
  for ds in tests:
    t = entries(ds.test.targets)
    assert abs(len(t) - len(full) / 5) <= 1
    assert not set(t) & set(seen) and not set(t) & set(entries(ds.train))
    seen.update(t)
    assert entries(ds.train) | t == full
  assert seen == full


def test_synthetic_netflix_is_80_10_10(synthetic_sets):
  ds = synthetic_sets["netflix"]
  n = [ds.train.nnz, ds.val.targets.nnz, ds.test.targets.nnz]
  total = sum(n)
  assert abs(n[0] - 0.8 * total) <= 1 and abs(n[1] - n[2]) <= 1
  parts = [set(entries(m)) for m in (ds.train, ds.val.targets, ds.test.targets)]
  assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
  assert same(ds.val.inputs, ds.train) and same(ds.test.inputs, ds.train)


# ----------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("name", ["movielens", "netflix", "lightgcn", "melon_cf"])
def test_same_seed_same_data_other_seed_other_data(name, synthetic_sets):
  a, b, c = synthetic_sets[name], load(name, seed=0), load(name, seed=1)
  for x, y in ((a.train, b.train), (a.val.targets, b.val.targets),
               (a.test.targets, b.test.targets)):
    assert same(x, y)
  assert entries(a.train) != entries(c.train)


# ----------------------------------------------------------------------------------------- melon
def test_melon_cf_targets_are_the_answer_songs_on_the_question_rows(synthetic_sets):
  ds = synthetic_sets["melon_cf"]
  ex = ds.extras
  n_train = len(ex["train_playlists"])
  cols = set(ds.train.col_ids.tolist())
  for part, es in (("val", ds.val), ("test", ds.test)):
    q, a = ex[f"{part}_questions"], ex[f"{part}_answers"]
    np.testing.assert_array_equal(ds.train.row_ids[es.rows], q.ids)
    np.testing.assert_array_equal(q.ids, a.ids)
    want = {(int(pid), int(s)) for i, pid in enumerate(a.ids.tolist())
            for s in a.songs_of(i).tolist() if s in cols}
    assert set(entries(es.targets)) == want and want
    assert es.info["answer_songs_not_in_columns"] == len(a.songs) - len(want)
    # Inputs on the question rows are the visible songs (kept columns only), nothing else.
    visible = {(int(pid), int(s)) for i, pid in enumerate(q.ids.tolist())
               for s in q.songs_of(i).tolist() if s in cols}
    on_rows = {k for k in entries(es.inputs) if k[0] in set(q.ids.tolist())}
    assert on_rows == visible
  assert ds.val.rows[0] == n_train and ds.test.rows[0] == n_train + len(ex["val_questions"])


def test_melon_extras_hold_what_the_evaluator_reads(synthetic_sets):
  ex = synthetic_sets["melon_song_as_user"].extras
  for part in ("val", "test"):
    q, a, types = ex[f"{part}_questions"], ex[f"{part}_answers"], ex[f"{part}_question_types"]
    np.testing.assert_array_equal(q.ids, a.ids)
    assert len(types) == len(q) and set(types.tolist()) <= {"song_only", "song_tags", "tags_only",
                                                           "title_only"}
    assert not np.isin(q.ids, ex["train_playlists"].ids).any()
  assert isinstance(ex["song_meta"], melon_reader.SongMeta)


@pytest.fixture(scope="module")
def melon_dir(tmp_path_factory):
  out = tmp_path_factory.mktemp("melon")
  synthetic.generate_melon(out, "tiny", seed=0)
  return out


@pytest.mark.parametrize("name", ["melon_song_as_user", "melon_cf", "melon_content"])
def test_melon_folder_with_answers_equals_the_in_memory_world(name, melon_dir, synthetic_sets):
  a, b = synthetic_sets[name], load(name, melon_dir)
  assert same(a.train, b.train)
  if a.val is not None:
    assert same(a.val.targets, b.val.targets) and same(a.test.targets, b.test.targets)
    np.testing.assert_array_equal(a.val.rows, b.val.rows)
  np.testing.assert_array_equal(a.extras["test_question_types"], b.extras["test_question_types"])


def test_melon_playlists_file_is_kakao_split_with_meta_beside(melon_dir):
  ds = load("melon_song_as_user", melon_dir / "train.json", split_seed=3)
  ex = ds.extras
  n = len(melon_reader.read_playlists(melon_dir / "train.json"))
  sizes = [len(ex["train_playlists"]), len(ex["val_questions"]), len(ex["test_questions"])]
  assert sum(sizes) == n and sizes[2] == n - int(0.8 * n)
  ids = np.concatenate([ex["train_playlists"].ids, ex["val_questions"].ids,
                        ex["test_questions"].ids])
  assert len(np.unique(ids)) == n
  assert ds.info["song_meta"] and "gn" in ds.info["feature_blocks"]
  other = load("melon_song_as_user", melon_dir / "train.json", split_seed=4)
  assert not np.array_equal(other.extras["test_questions"].ids, ex["test_questions"].ids)


def test_melon_content_without_song_meta_is_a_data_error(melon_dir, tmp_path):
  (tmp_path / "train.json").write_bytes((melon_dir / "train.json").read_bytes())
  with pytest.raises(DataError, match=r"melon_content needs song meta.*no song_meta.json"):
    load("melon_content", tmp_path / "train.json")
  ds = load("melon_song_as_user", tmp_path)  # optional there: only playlist and tag columns
  assert set(ds.info["feature_blocks"]) == {"pl", "tag"} and not ds.info["song_meta"]


def test_melon_repeated_playlist_id_is_a_data_error(melon_dir, tmp_path):
  for f in os.listdir(melon_dir):
    (tmp_path / f).write_bytes((melon_dir / f).read_bytes())
  train = melon_reader.read_playlists(tmp_path / "train.json")
  for name in ("test.json", "test_answers.json"):
    pl = melon_reader.read_playlists(tmp_path / name)
    pl.ids[0] = train.ids[5]
    melon_reader.write_playlists(pl, tmp_path / name)
  (tmp_path / "test_question_types.json").unlink()
  with pytest.raises(DataError, match=rf"playlist id {train.ids[5]} occurs in train and in test "
                                      r"questions"):
    load("melon_cf", tmp_path)


# --------------------------------------------------------------------------------------- netflix
def test_netflix_folders_drop_and_count_unseen_ids(tmp_path):
  for sub, text in (("train", "1\t10\t5\n1\t11\t3\n2\t10\t4\n"),
                    ("valid", "1\t11\t2\n3\t10\t1\n"),
                    ("test", "2\t11\t4\n2\t12\t5\n")):
    (tmp_path / sub).mkdir()
    (tmp_path / sub / "part.txt").write_text(text)
  ds = load("netflix", tmp_path)
  assert_aligned(ds)
  assert entries(ds.train) == {(1, 10): 5.0, (1, 11): 3.0, (2, 10): 4.0}
  assert entries(ds.val.targets) == {(1, 11): 2.0}          # user 3 unseen in train: dropped
  assert entries(ds.test.targets) == {(2, 11): 4.0}         # item 12 unseen in train: dropped
  assert ds.info["dropped_unseen"] == {"val": {"unknown_rows": 1, "unknown_cols": 0},
                                       "test": {"unknown_rows": 0, "unknown_cols": 1}}
  item = load("netflix", tmp_path, orientation="item")
  assert entries(item.test.targets) == {(11, 2): 4.0}
  with pytest.raises(DataError, match=r"no such file or directory"):
    load("netflix", tmp_path, test_dir="missing")


# ------------------------------------------------------------------------- synthetic generators
def test_sampler_is_sampling_without_replacement():
  """Pair frequencies of 2 items drawn without replacement from p match the exact law."""
  rng = np.random.default_rng(0)
  p = np.array([0.4, 0.3, 0.2, 0.1])
  n = 40_000
  u, i = si._sample_pairs(rng, np.zeros(n, np.int64), np.full(n, 2), np.log(p)[None, :])
  assert len(u) == 2 * n and np.array_equal(np.bincount(u), np.full(n, 2))
  a, b = i[0::2], i[1::2]
  assert (a != b).all()
  freq = np.bincount(np.minimum(a, b) * 4 + np.maximum(a, b), minlength=16) / n
  for x in range(4):
    for y in range(x + 1, 4):
      exact = p[x] * p[y] / (1 - p[x]) + p[y] * p[x] / (1 - p[y])
      assert abs(freq[x * 4 + y] - exact) < 0.01, (x, y)


def test_sampler_gives_each_user_exactly_its_count_of_distinct_items():
  """Steep popularity and requests up to the whole catalogue exercise the fallback path."""
  rng = np.random.default_rng(1)
  logits = np.stack([np.log(np.arange(1, 51.0) ** -3.0), np.zeros(50)])
  per_user = np.array([1, 5, 49, 50, 50, 0, 25, 3])
  group = np.array([0, 0, 0, 0, 1, 1, 0, 1])
  u, i = si._sample_pairs(rng, group, per_user, logits)
  np.testing.assert_array_equal(np.bincount(u, minlength=len(per_user)), per_user)
  assert len(np.unique(u * 50 + i)) == len(u) and i.min() >= 0 and i.max() < 50


def test_ratings_generator():
  r = si.ratings(seed=3)
  assert r.shape == (600, 1000) and r.timestamps is not None
  np.testing.assert_array_equal(r.row_ids, np.arange(1, 601))
  assert set(np.unique(r.matrix.data).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
  assert r.row_lengths().min() >= 5
  assert same(r, si.ratings(seed=3)) and not same(r, si.ratings(seed=4))


def _recall_at(scores: np.ndarray, train: Interactions, test: Interactions, k: int = 20) -> float:
  scores = np.array(scores, dtype=np.float64)
  scores[train.matrix.nonzero()] = -np.inf
  top = np.argpartition(-scores, k, axis=1)[:, :k]
  truth = test.matrix.toarray() > 0
  hits = np.take_along_axis(truth, top, 1).sum(1)
  n = truth.sum(1)
  return float((hits[n > 0] / np.minimum(n[n > 0], k)).mean())


def _knn_over_popularity(train: Interactions, test: Interactions) -> float:
  x = train.matrix.astype(np.float64)
  pop = np.broadcast_to(np.asarray(x.sum(0)).ravel(), x.shape)
  norm = np.sqrt(np.asarray(x.sum(0)).ravel()) + 1e-9  # binary: ||column|| = sqrt(count)
  sim = (x.T @ x).toarray() / norm[:, None] / norm[None, :]
  np.fill_diagonal(sim, 0.0)
  knn = np.asarray(sp.csr_matrix(x) @ sim)
  return _recall_at(knn, train, test) / _recall_at(pop, train, test)


def test_implicit_generator_has_learnable_structure():
  """Item-kNN beats popularity by ~4x on the clustered data, and not at all without clusters."""
  train, test = si.implicit(seed=0)
  lengths = train.row_lengths() + test.row_lengths()
  assert lengths.min() >= 5 and test.row_lengths().min() >= 1
  assert not (train.matrix.multiply(test.matrix)).nnz
  assert _knn_over_popularity(train, test) > 3.0
  flat = si.implicit(n_users=1000, n_items=1500, cluster_strength=0.0, seed=0)
  assert _knn_over_popularity(*flat) < 1.3


# -------------------------------------------------------------------------------------- real data
@pytest.mark.data
def test_real_ml100k_u1(shared_data):
  path = shared_file(shared_data, "ml-100k/u.data")
  ds = load("movielens", path)
  assert ds.train.shape == (943, 1682) and ds.info["source"] == os.path.abspath(path)
  assert ds.train.nnz + ds.val.targets.nnz == 80_000 and ds.val.targets.nnz == 8_000
  assert ds.test.targets.nnz == 20_000 and ds.test.inputs.nnz == 80_000
  assert_aligned(ds)
  item = load("movielens", path, orientation="item")
  assert item.train.shape == (1682, 943) and same(item.test.targets, ds.test.targets.T)
  hold = load("movielens", path, split="holdout", test_fraction=0.2, val_fraction=0.0)
  assert (hold.train.nnz, hold.test.targets.nnz) == (80_000, 20_000)
  with pytest.raises(DataError, match=r"u.data:\d+: rating '\d' is outside the range \[1, 4\]"):
    load("movielens", path, rating_range=(1, 4))


@pytest.mark.data
def test_real_gowalla(shared_data):
  path = shared_file(shared_data, "gowalla")
  ds = load("lightgcn", path)
  assert ds.train.shape == (29_858, 40_981)
  assert ds.train.nnz + ds.val.targets.nnz == 810_128 and ds.test.targets.nnz == 217_242
  assert ds.test.inputs.nnz == 810_128
  assert_aligned(ds)


@pytest.mark.data
def test_real_melon_sample(shared_data):
  path = shared_file(shared_data, "melon/test.json")
  ds = load("melon_song_as_user", path)
  ex = ds.extras
  n = 10_740
  sizes = [len(ex["train_playlists"]), len(ex["val_questions"]), len(ex["test_questions"])]
  assert sum(sizes) == n and sizes[2] == n - int(0.8 * n)
  for part in ("val", "test"):
    np.testing.assert_array_equal(ex[f"{part}_questions"].ids, ex[f"{part}_answers"].ids)
    assert len(ex[f"{part}_answers"].songs) > 0
  assert ex["song_meta"] is None and set(ds.info["feature_blocks"]) == {"pl", "tag"}
  visible = np.unique(np.concatenate([ex["train_playlists"].songs, ex["val_questions"].songs,
                                      ex["test_questions"].songs]))
  np.testing.assert_array_equal(ds.train.row_ids, visible)  # min_song_count=1: every visible song
  assert len(visible) < 91_351  # the README's distinct songs of the file: answers hold the rest
  cf = load("melon_cf", path)
  assert cf.train.shape == (n, len(visible)) and cf.val.targets.nnz > 0
  assert_aligned(cf)
  with pytest.raises(DataError, match=r"test.json: melon_content needs song meta, but there is "
                                      r"no song_meta.json in .*melon"):
    load("melon_content", path)


def test_melon_extras_feed_the_melon_evaluator(synthetic_sets):
  from jaxae.evaluation.context import EvalContext  # pylint: disable=import-outside-toplevel
  from jaxae.evaluation.melon import MelonEvaluator  # pylint: disable=import-outside-toplevel
  ds = synthetic_sets["melon_song_as_user"]
  cfg = {"evaluators": ["melon"], "recommender": "most_popular", "recommender_args": {},
         "empty_answers": "skip"}
  for split in ("val", "test"):
    m = MelonEvaluator(cfg, ds, split).run(EvalContext(score_fn=None, dataset=ds, split=split,
                                                       batch_size=8))
    assert m["questions"] == len(ds.extras[f"{split}_questions"])
    assert 0.0 < m["melon_score"] < 1.0
