"""The ``csv`` pipeline (``jaxae.data.pipelines.csv``): a user's own interaction file, read by
column name or position; implicit (threshold, summed duplicates) or rated; the k-core filter and
every split counted against numpy on the written records; each bad setting one ConfigError line;
a run trains, evaluates and ranks from it end to end."""

from __future__ import annotations

import gzip

import ml_collections
import numpy as np
import pytest

from jaxae import evaluate as eval_lib
from jaxae.data import pipelines
from jaxae.errors import ConfigError, DataError
from jaxae.recommender import Recommender
from jaxae.training.loop import train_and_evaluate

from tests.conftest import shared_file
from tests.test_pipelines import BASE, assert_aligned, entries


def settings(path=None, **overrides) -> ml_collections.ConfigDict:
  values = dict(name="csv", path=None if path is None else str(path), **BASE["csv"])
  values.update(overrides)
  return ml_collections.ConfigDict(values)


def load(path=None, seed=0, **overrides):
  return pipelines.load_dataset(settings(path, **overrides), seed)


def log_records(seed=0, users=60, items=40, per_user=12):
  """(user name, item id, plays, unix time) lines: string users, repeats of some pairs."""
  rng = np.random.default_rng(seed)
  rows = []
  for u in range(users):
    for i in rng.choice(items, per_user, replace=False):
      rows.append((f"u{u:03d}", int(i) + 100, int(rng.integers(1, 9)),
                   int(1_600_000_000 + rng.integers(0, 10_000_000))))
  extra = [rows[j] for j in rng.choice(len(rows), 30, replace=False)]
  return rows + [(u, i, p + 1, t + 5) for u, i, p, t in extra]   # 30 repeated pairs, later


def write(path, rows, header="who;what;plays;when", delimiter=";"):
  lines = ([header] if header else []) + [delimiter.join(map(str, r)) for r in rows]
  data = ("\n".join(lines) + "\n").encode()
  if str(path).endswith(".gz"):
    data = gzip.compress(data)
  path.write_bytes(data)
  return path


NAMED = dict(delimiter=";", user_col="who", item_col="what", value_col="plays",
             timestamp_col="when", ids="str")


def merged(rows, how):
  """{(user, item): (value, time)} with repeats merged as the pipeline says."""
  out = {}
  for u, i, p, t in rows:
    key = (u, str(i))
    if how == "sum" and key in out:
      out[key] = (out[key][0] + p, max(out[key][1], t))
    else:
      out[key] = (p, t)
  return out


def k_core(pairs: set, min_user: int, min_item: int) -> set:
  while True:
    users = {}
    items = {}
    for u, i in pairs:
      users[u] = users.get(u, 0) + 1
      items[i] = items.get(i, 0) + 1
    keep = {(u, i) for u, i in pairs if users[u] >= min_user and items[i] >= min_item}
    if keep == pairs:
      return pairs
    pairs = keep


def all_entries(ds):
  parts = [entries(ds.train)] + [entries(es.targets) for es in (ds.val, ds.test) if es]
  keys = [set(p) for p in parts]
  for a in range(len(keys)):
    for b in range(a + 1, len(keys)):
      assert not keys[a] & keys[b]                  # train / val / test disjoint
  return {k: v for p in parts for k, v in p.items()}


@pytest.mark.parametrize("how", ["last", "sum"])
def test_implicit_threshold_and_k_core_against_the_records(tmp_path, how):
  rows = log_records()
  path = write(tmp_path / "log.csv.gz", rows)
  ds = load(path, **NAMED, duplicates=how, binarize_threshold=4.0, min_user_entries=4,
            min_item_entries=6)
  want = merged(rows, how)
  above = {k for k, (v, _) in want.items() if v > 4.0}
  kept = k_core(above, 4, 6)
  got = all_entries(ds)
  assert set(got) == kept and set(got.values()) == {1.0}
  assert_aligned(ds)
  assert ds.info["implicit"] and ds.info["entries_below_threshold"] == len(want) - len(above)
  f = ds.info["filtered"]
  assert f["entries_dropped"] == len(above) - len(kept)
  assert f["users_dropped"] == len({u for u, _, _, _ in rows}) - len({u for u, _ in kept})
  assert f["items_dropped"] == len({str(i) for _, i, _, _ in rows}) - len({i for _, i in kept})
  assert f"{len(rows) + 1} lines, {len(want)} interactions, 30 duplicates merged" in ds.info["read"]
  assert ("values summed" if how == "sum" else "last kept") in ds.info["read"]


def test_per_user_split_holds_out_each_user_s_share(tmp_path):
  path = write(tmp_path / "log.csv", log_records(1))
  ds = load(path, **NAMED, val_fraction=0.0, test_fraction=0.25)
  assert ds.val is None
  train, test = ds.train.row_lengths(), ds.test.targets.row_lengths()
  np.testing.assert_array_equal(test, np.floor((train + test) * 0.25 + 1e-9).clip(min=1))
  assert (ds.test.inputs.matrix != ds.train.matrix).nnz == 0


def test_per_user_time_split_holds_out_each_user_s_latest(tmp_path):
  rows = log_records(2)
  path = write(tmp_path / "log.csv", rows)
  ds = load(path, **NAMED, split="per_user_time", test_fraction=0.2, val_fraction=0.2)
  times = {k: t for k, (_, t) in merged(rows, "last").items()}
  parts = {name: entries(m) for name, m in (("train", ds.train), ("val", ds.val.targets),
                                            ("test", ds.test.targets))}
  for u in ds.train.row_ids:
    when = {name: [times[k] for k in p if k[0] == u] for name, p in parts.items()}
    assert when["test"] and when["val"]
    assert max(when["train"]) <= min(when["val"]) and max(when["val"]) <= min(when["test"])
  assert ds.info["split"] == "per_user_time"
  assert ds.val.info["protocol"] == "per-user latest by time 0.2 of train"


def test_entries_split_positions_and_ratings(tmp_path):
  """No header, columns by position, tab typed as on a command line, ratings checked."""
  rng = np.random.default_rng(3)
  rows = [(u, i, float(rng.integers(1, 6)), 0) for u in range(30) for i in
          rng.choice(50, 10, replace=False)]
  path = write(tmp_path / "r.tsv", rows, header=None, delimiter="\t")
  ds = load(path, delimiter="\\t", value_col=2, feedback="rating", rating_range=(1, 5),
            split="entries", test_fraction=0.1, val_fraction=0.1)
  assert ds.info["rating_range"] == (1.0, 5.0) and "implicit" not in ds.info
  want = {(u, i): v for u, i, v, _ in rows}
  assert all_entries(ds) == want
  assert abs(ds.test.targets.nnz - 30) <= 1
  again = load(path, delimiter="tab", value_col=2, feedback="rating", rating_range=(1, 5),
               split="entries", test_fraction=0.1, val_fraction=0.1)
  assert entries(again.train) == entries(ds.train)
  bad = write(tmp_path / "bad.tsv", rows[:5] + [(3, 7, 9.0, 0)], header=None, delimiter="\t")
  with pytest.raises(DataError, match=r"bad.tsv:6.*rating"):
    load(bad, delimiter="\t", value_col=2, feedback="rating", rating_range=(1, 5))


def test_header_as_a_command_line_gives_it(tmp_path):
  rows = log_records(8)
  path = write(tmp_path / "log.csv", rows, header=None)
  plain = load(path, delimiter=";", ids="str", header=False, test_fraction=0.0)
  for text in ("false", "False"):
    assert entries(load(path, delimiter=";", ids="str", header=text,
                        test_fraction=0.0).train) == entries(plain.train)
  with_header = write(tmp_path / "h.csv", rows)
  assert load(with_header, delimiter=";", ids="str", header="True",
              test_fraction=0.0).train.nnz == plain.train.nnz


def test_no_test_and_no_validation_fits_everything(tmp_path):
  path = write(tmp_path / "log.csv", log_records(4))
  ds = load(path, **NAMED, test_fraction=0.0, val_fraction=0.0)
  assert ds.val is None and ds.test is None
  assert ds.train.nnz == len(merged(log_records(4), "last"))


@pytest.mark.parametrize("overrides, pattern", [
    (dict(split="random"), r"config.data.split='random'; known: entries, per_user, per_user_time"),
    (dict(feedback="ratings"), r"config.data.feedback='ratings'; known: implicit, rating"),
    (dict(duplicates="first"), r"config.data.duplicates='first'; known: last, sum"),
    (dict(ids="uuid"), r"config.data.ids='uuid'; known: int, str"),
    (dict(header="yes"), r"config.data.header='yes'; known: True, False, 'auto'"),
    (dict(header=1), r"config.data.header=1"),
    (dict(delimiter=""), r"config.data.delimiter must be a field separator"),
    (dict(user_col=-1), r"config.data.user_col must be a column name or a 0-based position, got -1"),
    (dict(value_col=True), r"config.data.value_col must be .* or None, got True"),
    (dict(encoding=""), r"config.data.encoding must be a text encoding name"),
    (dict(test_fraction=0.6, val_fraction=0.4), r"test_fraction \+ val_fraction must be < 1"),
    (dict(min_item_entries=-2), r"config.data.min_item_entries: expected an integer >= 0"),
    (dict(feedback="rating", rating_range=(1, 5)), r"value_col is None, but feedback='rating'"),
    (dict(feedback="rating", value_col=2, rating_range=(1, 5), binarize_threshold=3.5),
     r"binarize_threshold is for feedback='implicit'"),
    (dict(feedback="rating", value_col=2, rating_range=(1, 5), duplicates="sum"),
     r"duplicates='sum' adds the values"),
    (dict(feedback="rating", value_col=2), r"config.data.rating_range must be \(lo, hi\)"),
    (dict(rating_range=(1, 5)), r"rating_range is for feedback='rating'"),
    (dict(binarize_threshold=1.0), r"binarize_threshold needs values"),
    (dict(split="per_user_time"), r"split='per_user_time' needs timestamps"),
])
def test_bad_settings_name_the_key(tmp_path, overrides, pattern):
  path = write(tmp_path / "log.csv", log_records(5), header=None, delimiter=",")
  with pytest.raises(ConfigError, match=pattern):
    load(path, **overrides)


def test_file_problems_are_data_errors(tmp_path):
  with pytest.raises(DataError, match="reads one file of interactions, not a folder"):
    load(tmp_path)
  path = write(tmp_path / "log.csv", log_records(6))
  with pytest.raises(DataError, match=r"log.csv:1: no column 'user' in the header"):
    load(path, **{**NAMED, "user_col": "user"})
  with pytest.raises(DataError, match=r"no column 'who' in the header \['who;what;plays;when'\] "
                                      r"\(split at ','\)"):       # the delimiter misread
    load(path, **{**NAMED, "delimiter": ","})
  with pytest.raises(DataError, match="no interaction left"):
    load(path, **NAMED, binarize_threshold=1e9)


def test_synthetic_without_a_path_takes_the_same_settings():
  ds = load(split="per_user_time", feedback="rating", value_col=2, rating_range=(1, 5))
  assert ds.info["source"] == "synthetic" and ds.test.targets.nnz and ds.val.targets.nnz
  implicit = load(binarize_threshold=3.5, min_user_entries=3)
  assert set(np.unique(implicit.train.matrix.data)) == {1.0}
  assert implicit.info["entries_below_threshold"] > 0


def test_a_run_trains_evaluates_and_ranks_from_the_file(tmp_path):
  from configs import base   # pylint: disable=import-outside-toplevel
  path = write(tmp_path / "log.csv", log_records(7))
  c = base.get_base()
  c.data = base.csv_data(path=str(path), **NAMED)
  c.model.name = "most_popular"
  c.eval = base.topn_eval(5)
  workdir = str(tmp_path / "wd")
  train_and_evaluate(c, workdir)
  record = eval_lib.evaluate_workdir(workdir, split="test", write=False)
  assert 0 < record["metrics"]["recall@5"] <= 1
  rec = Recommender.load(workdir)
  out = rec.recommend([["100", "101", "nope"]], k=5)
  assert out.counts["unknown_items"] == 1 and len(out.items()[0]) == 5
  assert not {"100", "101"} & set(out.items()[0])


@pytest.mark.data
def test_lastfm_play_counts(shared_data):
  """HetRec Last.fm 2K user_artists.dat: the header's names, tab, play counts as implicit."""
  path = shared_file(shared_data, "lastfm-2k/user_artists.dat")
  ds = load(path, delimiter="\t", user_col="userID", item_col="artistID", value_col="weight",
            test_fraction=0.2, val_fraction=0.1)
  assert ds.train.shape == (1_892, 17_632)
  assert ds.train.nnz + ds.val.targets.nnz + ds.test.targets.nnz == 92_834
  core = load(path, delimiter="\t", user_col="userID", item_col="artistID", value_col="weight",
              min_user_entries=5, min_item_entries=5)
  assert (core.train.row_lengths() + core.val.targets.row_lengths()
          + core.test.targets.row_lengths()).min() >= 5
