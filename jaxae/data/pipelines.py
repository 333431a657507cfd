"""Data pipelines: ``config.data`` -> :class:`~jaxae.data.dataset.Dataset`, picked by ``data.name``.

Each pipeline reads the files named by ``data.path`` (or, when it is ``None``, generates the
embedded synthetic data), splits them by the protocol the config names, and orients the matrix the
way the model wants it (rows = what the autoencoder reconstructs). Every key a pipeline reads is
listed in its ``KEYS``; an unknown or missing key is a ConfigError, so a typo never falls back to a
default.

Every evaluation split shares the row and column ids of ``Dataset.train`` exactly (same ids, same
order), so a row / column index means the same user / item / playlist / song everywhere.

Pipelines:
  movielens           explicit ratings (u.data / ratings.dat / ratings.csv); split u1..u5 | holdout;
                      orientation item (I-AutoRec) | user (U-AutoRec, Deep AE)
  netflix             DeepRecommender TSV directories (train / valid / test), user-major
  lightgcn            LightGCN/NGCF train.txt / test.txt implicit feedback, user-major
  csv                 your own interaction log: one delimited file of user, item[, value][, time]
                      (columns by name or position), implicit or rated, filtered, split by entries /
                      per user / per user by time
  melon_song_as_user  Melon seed B: rows = songs, columns = playlists + one-hot meta
  melon_cf            Melon seed A's CF AE: rows = playlists, columns = songs
  melon_content       Melon seed A's content AE: rows = songs, columns = one-hot meta
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

import ml_collections
import numpy as np
from absl import logging

from jaxae import checks
from jaxae.data import melon_features
from jaxae.data import splits
from jaxae.data import synthetic
from jaxae.data import synthetic_interactions
from jaxae.data.dataset import Dataset
from jaxae.data.dataset import EvalSplit
from jaxae.data.kakao_split import QUESTION_TYPES
from jaxae.data.kakao_split import kakao_split
from jaxae.data.matrix import Interactions
from jaxae.data.readers import csv as csv_reader
from jaxae.data.readers import lightgcn as lightgcn_reader
from jaxae.data.readers import melon as melon_reader
from jaxae.data.readers import movielens as movielens_reader
from jaxae.data.readers import tsv as tsv_reader
from jaxae.data.readers.common import open_text
from jaxae.errors import ConfigError
from jaxae.errors import DataError

PIPELINES: dict[str, tuple[Callable[[Any, int], Dataset], frozenset[str]]] = {}

ML100K_FOLDS = ("u1", "u2", "u3", "u4", "u5")
ORIENTATIONS = ("user", "item")


def _register(name: str, keys: set[str]):
  def deco(fn):
    PIPELINES[name] = (fn, frozenset(keys | {"name", "path"}))
    fn.KEYS = PIPELINES[name][1]
    return fn
  return deco


# Keys a pipeline took on after runs had been saved, with the value that reproduces those runs
# (:func:`upgrade_saved`).
ADDED_KEYS = {"lightgcn": {"val_split": "entries"},
              "csv": {"fold_in_fraction": None, "min_entries_to_split": None}}


def upgrade_saved(data_config):
  """A run's saved ``config.data`` with the keys its pipeline took on after it was saved, set to
  the value that run used (:data:`ADDED_KEYS`); a section that lacks none is returned as is.
  Only for configs read back from a run: a config given now must name every key
  (:func:`load_dataset`)."""
  name = data_config.get("name")
  added = {k: v for k, v in ADDED_KEYS.get(name, {}).items() if k not in data_config}
  if not added:
    return data_config
  return ml_collections.ConfigDict({**data_config.to_dict(), **added})


def load_dataset(data_config, seed: int) -> Dataset:
  """Builds the Dataset that ``data_config`` describes (``data_config.name`` picks the pipeline)."""
  if "name" not in data_config:
    raise ConfigError(f"config.data.name is missing; known pipelines: {sorted(PIPELINES)}")
  name = data_config.name
  if not isinstance(name, str) or name not in PIPELINES:
    raise ConfigError(f"config.data.name={name!r} is not a known pipeline; known: "
                      f"{sorted(PIPELINES)}")
  fn, keys = PIPELINES[name]
  given = set(data_config.keys())
  unknown = sorted(given - keys)
  if unknown:
    raise ConfigError(f"config.data has unknown key(s) {unknown} for pipeline {name!r}; "
                      f"known: {sorted(keys)}")
  missing = sorted(keys - given)
  if missing:
    raise ConfigError(f"config.data is missing key(s) {missing} for pipeline {name!r}")
  path = data_config.path
  if path is not None:
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
      raise ConfigError(f"config.data.path must be a file or folder name or None, got {path!r}")
    if not os.path.exists(path):
      raise DataError(f"config.data.path={os.fspath(path)!r}: no such file or directory")
  ds = fn(data_config, int(seed))
  ds.info.setdefault("name", name)
  ds.info.setdefault("source", "synthetic" if path is None else os.path.abspath(path))
  logging.info("dataset %s: train %s; val %s; test %s", name, ds.train,
               None if ds.val is None else ds.val.targets,
               None if ds.test is None else ds.test.targets)
  return ds


# ---------------------------------------------------------------------------------- key checks
def _choice(cfg, key: str, options) -> Any:
  value = cfg[key]
  if value not in options:
    raise ConfigError(f"config.data.{key}={value!r}; known: {', '.join(map(str, options))}")
  return value


def _fraction(cfg, key: str, allow_zero: bool) -> float:
  return checks.number(cfg[key], f"data.{key}", minimum=0.0, strict=not allow_zero, below=1.0)


def _positive_int(cfg, key: str) -> int:
  return checks.number(cfg[key], f"data.{key}", minimum=1, integer=True)


def _rating_range(cfg) -> tuple[float, float]:
  r = cfg.rating_range
  try:
    lo, hi = (float(x) for x in r)
  except (TypeError, ValueError):
    raise ConfigError(f"config.data.rating_range must be (lo, hi), got {r!r}") from None
  if not lo < hi:
    raise ConfigError(f"config.data.rating_range must have lo < hi, got {r!r}")
  return lo, hi


# ---------------------------------------------------------------------------------- shared steps
def _orient(ds: Dataset, orientation: str) -> Dataset:
  """Transposes every matrix for ``orientation="item"`` (rows = items); "user" keeps rows = users.

  Only splits without a ``rows`` restriction are transposed (user-row indices mean nothing once
  rows are items); the pipelines that orient never set one.
  """
  if orientation == "user":
    ds.info["orientation"] = "user"
    return ds
  if orientation != "item":
    raise ConfigError(f"config.data.orientation must be 'user' or 'item', got {orientation!r}")

  def t(es: EvalSplit | None):
    if es is None:
      return None
    if es.rows is not None:
      raise ConfigError("orientation 'item' cannot transpose an evaluation split restricted to "
                        "some user rows")
    return EvalSplit(es.inputs.T, es.targets.T, None, es.info)

  ds.info["orientation"] = "item"
  return Dataset(ds.train.T, t(ds.val), t(ds.test), ds.info, ds.extras)


VAL_SPLITS = {"entries": splits.holdout, "per_user": splits.per_user_holdout}
# How a part is held out (csv's `split`, and every pipeline's validation carve): at random over all
# entries, at random within each row, or each row's latest by time.
CARVES = {**VAL_SPLITS,
          "per_user_time": lambda inter, test_fraction, seed: splits.per_user_time_split(
              inter, test_fraction=test_fraction)}
_PROTOCOLS = {"entries": "holdout", "per_user": "per-user holdout",
              "per_user_time": "per-user latest by time"}


def _with_val(train_full: Interactions, test: Interactions | None, val_fraction: float,
              seed: int, info: dict, test_info: dict | None = None,
              val_split: str = "entries") -> Dataset:
  """Carves a validation hold-out from the training part (no tuning on test) and builds the Dataset.

  ``val_split`` picks the carve: "entries" (``val_fraction`` of all training entries at random,
  ``splits.holdout``), "per_user" (that fraction of each row's entries, at least one, from every
  row with two or more: ``splits.per_user_holdout``) or "per_user_time" (each row's latest
  entries: ``splits.per_user_time_split``). The model trains on ``train`` (train_full
  minus val); val is scored from ``train`` as input; test is scored from ``train_full`` as input
  (val ratings are known information at test time). All of them keep ``train_full``'s row and
  column ids.
  """
  if val_fraction > 0:
    carved = CARVES[val_split](train_full, test_fraction=val_fraction, seed=seed + 1)
    train, val_t = carved.train, carved.test
    protocol = _PROTOCOLS[val_split]
    val = EvalSplit(train, val_t, info={"protocol": f"{protocol} {val_fraction:g} of train",
                                        **carved.info})
  else:
    train, val = train_full, None
  test_split = None if test is None else EvalSplit(train_full, test, info=dict(test_info or {}))
  return Dataset(train, val, test_split, info)


def _random_fold(full: Interactions, fold: int, n_folds: int,
                 seed: int) -> tuple[Interactions, Interactions]:
  """Fold ``fold`` (1-based) of a seeded random partition of the entries into ``n_folds`` parts:
  (every other entry, that part). Same seed: the folds' test parts are disjoint and cover all."""
  r, c, v = full.to_coo_ids()
  ts = None if full.timestamps is None else full.timestamps.tocoo().data
  n = full.nnz
  part = np.empty(n, np.int64)
  part[np.random.default_rng(seed).permutation(n)] = np.arange(n) * n_folds // max(n, 1)
  is_test = part == fold - 1

  def build(keep):
    return Interactions.from_coo(r[keep], c[keep], v[keep], None if ts is None else ts[keep],
                                 row_ids=full.row_ids, col_ids=full.col_ids,
                                 duplicates="error", source="synthetic fold")
  return build(~is_test), build(is_test)


# ------------------------------------------------------------------------------------- movielens
@_register("movielens", {"split", "test_fraction", "val_fraction", "orientation", "rating_range"})
def movielens(cfg, seed: int) -> Dataset:
  """MovieLens ratings. ``split``: "u1".."u5" (the canonical ML-100K folds, by file line) or
  "holdout" (random ``test_fraction`` of the ratings). ``val_fraction`` of the training ratings (at
  random) is the validation split. Without a path: synthetic 1..5 ratings, whose "uN" is fold N of a
  seeded random 5-fold partition (the synthetic data has no canonical line order)."""
  split = _choice(cfg, "split", ML100K_FOLDS + ("holdout",))
  orientation = _choice(cfg, "orientation", ORIENTATIONS)
  val_fraction = _fraction(cfg, "val_fraction", allow_zero=True)
  test_fraction = _fraction(cfg, "test_fraction", allow_zero=False) if split == "holdout" else None
  lo, hi = _rating_range(cfg)
  info: dict[str, Any] = {"rating_range": (lo, hi), "split": split}
  if cfg.path is None:
    full = synthetic_interactions.ratings(seed=seed)
    if split == "holdout":
      s = splits.holdout(full, test_fraction=test_fraction, seed=seed)
      train, test, test_info = s.train, s.test, s.info
    else:
      train, test = _random_fold(full, int(split[1]), 5, seed)
      test_info = {"fold": split, "n_train": train.nnz, "n_test": test.nnz}
  else:
    records = movielens_reader.read_movielens_records(cfg.path, rating_range=(lo, hi))
    info["read"] = records.report.summary()
    if split == "holdout":
      full, _ = records.to_interactions()
      s = splits.holdout(full, test_fraction=test_fraction, seed=seed)
    else:
      s = splits.ml100k_fold(records, int(split[1]))
    train, test, test_info = s.train, s.test, s.info
  ds = _with_val(train, test, val_fraction, seed, info, test_info)
  return _orient(ds, orientation)


# --------------------------------------------------------------------------------------- netflix
@_register("netflix", {"train_dir", "val_dir", "test_dir", "orientation", "rating_range"})
def netflix(cfg, seed: int) -> Dataset:
  """NVIDIA DeepRecommender's Netflix layout: ``path/<train_dir>``, ``<val_dir>``, ``<test_dir>`` of
  ``user\\titem\\trating`` files. Users/items of val/test not in train are dropped and counted (as
  DeepRecommender does). Without a path: synthetic ratings split 80/10/10 at random."""
  orientation = _choice(cfg, "orientation", ORIENTATIONS)
  lo, hi = _rating_range(cfg)
  info: dict[str, Any] = {"rating_range": (lo, hi)}
  if cfg.path is None:
    full = synthetic_interactions.ratings(seed=seed)
    a = splits.holdout(full, test_fraction=0.2, seed=seed)
    b = splits.holdout(a.test, test_fraction=0.5, seed=seed + 1)
    train, val_t, test_t = a.train, b.train, b.test
    val_info, test_info = {}, {}
  else:
    if not os.path.isdir(cfg.path):
      raise DataError(f"{cfg.path}: the netflix pipeline needs a folder holding {cfg.train_dir}/, "
                      f"{cfg.val_dir}/ and {cfg.test_dir}/")

    def read(key: str) -> Interactions:
      sub = cfg[key]
      if not isinstance(sub, str) or not sub:
        raise ConfigError(f"config.data.{key} must be a folder name, got {sub!r}")
      return tsv_reader.read_tsv_dir(os.path.join(cfg.path, sub), rating_range=(lo, hi))

    train = read("train_dir")
    val_t, val_info = read("val_dir").reindex(train.row_ids, train.col_ids)
    test_t, test_info = read("test_dir").reindex(train.row_ids, train.col_ids)
    info["dropped_unseen"] = {"val": val_info, "test": test_info}
    logging.info("netflix: val/test entries with ids unseen in train (dropped): %s",
                 info["dropped_unseen"])
  ds = Dataset(train, EvalSplit(train, val_t, info=dict(val_info)),
               EvalSplit(train, test_t, info=dict(test_info)), info)
  return _orient(ds, orientation)


# -------------------------------------------------------------------------------------- lightgcn
@_register("lightgcn", {"val_fraction", "val_split", "binarize_threshold"})
def lightgcn(cfg, seed: int) -> Dataset:
  """LightGCN/NGCF implicit data, rows = users. ``val_fraction`` of the train.txt entries is held
  out for validation, drawn as ``val_split`` says ("entries": from all entries at random;
  "per_user": from each user's, as test.txt was); test.txt is the test split.
  ``binarize_threshold`` (None: keep all) keeps only entries above it. Without a path: synthetic
  cluster-structured implicit data with the same 80/20 per-user layout."""
  val_fraction = _fraction(cfg, "val_fraction", allow_zero=True)
  val_split = _choice(cfg, "val_split", tuple(VAL_SPLITS))
  threshold = cfg.binarize_threshold
  if threshold is not None:
    checks.number(threshold, "data.binarize_threshold")
  if cfg.path is None:
    train_full, test = synthetic_interactions.implicit(seed=seed)
  else:
    if not os.path.isdir(cfg.path):
      raise DataError(f"{cfg.path}: the lightgcn pipeline needs a folder holding train.txt and "
                      f"test.txt")
    train_full, test = lightgcn_reader.read_lightgcn(cfg.path)
  if threshold is not None:
    train_full = train_full.binarize(threshold)
    test = test.binarize(threshold)
  return _with_val(train_full, test, val_fraction, seed, {"implicit": True, "orientation": "user"},
                   val_split=val_split)


# ------------------------------------------------------------------------------------------- csv
FEEDBACK = ("implicit", "rating")
DUPLICATES = ("last", "sum")
_ESCAPES = {"\\t": "\t", "tab": "\t"}     # a tab as typed on a command line


def _column(cfg, key: str, optional: bool) -> int | str | None:
  col = cfg[key]
  if col is None and optional:
    return None
  if isinstance(col, str) and col:
    return col
  if isinstance(col, (int, np.integer)) and not isinstance(col, bool) and col >= 0:
    return int(col)
  raise ConfigError(f"config.data.{key} must be a column name or a 0-based position"
                    f"{' or None' if optional else ''}, got {col!r}")


def _delimiter(cfg) -> str | None:
  d = cfg.delimiter
  if d is None:
    return None
  if not isinstance(d, str) or not d or d in ("\n", "\\n"):
    raise ConfigError(f"config.data.delimiter must be a field separator (',', '\\t' or 'tab', "
                      f"'::', ...) or None for runs of blanks, got {d!r}")
  return _ESCAPES.get(d, d)


def _min_entries(cfg, key: str) -> int:
  return checks.number(cfg[key], f"data.{key}", minimum=0, integer=True)


# csv's `split` beyond the carves: whole users held out (strong generalization).
USER_SPLIT = "users"


def _user_split_settings(cfg, split: str) -> tuple[float | None, int | None]:
  """``fold_in_fraction`` and ``min_entries_to_split``: both set for split "users", both None for
  every other split (where they would mean nothing)."""
  fold_in, min_split = cfg.fold_in_fraction, cfg.min_entries_to_split
  if split != USER_SPLIT:
    for key, value in (("fold_in_fraction", fold_in), ("min_entries_to_split", min_split)):
      if value is not None:
        raise ConfigError(f"config.data.{key}={value!r} is for split={USER_SPLIT!r} (held-out "
                          f"users); split={split!r} holds out entries: set it to None")
    return None, None
  if fold_in is None or min_split is None:
    raise ConfigError(f"config.data.split={USER_SPLIT!r} (strong generalization) needs "
                      f"fold_in_fraction (the share of each held-out user's entries the model is "
                      f"given; Liang et al.: 0.8) and min_entries_to_split (held-out users with "
                      f"fewer entries are given all of them and not scored; Liang et al.: 5)")
  fold_in = checks.number(fold_in, "data.fold_in_fraction", minimum=0.0, strict=True, below=1.0)
  min_split = checks.number(min_split, "data.min_entries_to_split", minimum=1, integer=True)
  return fold_in, min_split


def _heldout_users(full: Interactions, test_fraction: float, val_fraction: float, seed: int,
                   fold_in: float, min_split: int, info: dict) -> Dataset:
  """Strong generalization (``splits.strong_generalization``): ``test_fraction`` of the users are
  test users and ``val_fraction`` of the rest validation users (rounded); the model trains on the
  other users only (``Dataset.train_rows``) and each held-out user is scored from their fold-in
  entries against their target entries."""
  n_users = full.shape[0]
  n_test = int(round(test_fraction * n_users))
  n_val = int(round(val_fraction * (n_users - n_test)))
  for key, fraction, n, of in (("test_fraction", test_fraction, n_test, n_users),
                               ("val_fraction", val_fraction, n_val, n_users - n_test)):
    if fraction > 0 and n == 0:
      raise ConfigError(f"config.data.{key}={fraction:g} of {of} users holds no user: raise it "
                        f"(or set it to 0)")
  if n_test + n_val == 0:
    raise ConfigError(f"config.data.split={USER_SPLIT!r} with test_fraction and val_fraction 0 "
                      f"holds out no user: nothing to score")
  sg = splits.strong_generalization(full, n_test, n_val, seed=seed, fold_in_fraction=fold_in,
                                    min_items_to_split=min_split)
  info["heldout_users"] = dict(sg.info)

  def part(fold_in_part, target, rows, name):
    if not len(rows):
      return None
    return EvalSplit(fold_in_part, target, rows=rows, info={
        "protocol": f"held-out {name} users: {fold_in:g} of each one's entries given, the rest "
                    f"scored", "users": int(len(rows)),
        "dropped_unseen_items": sg.info[f"{name}_dropped_unseen_items"]})
  return Dataset(sg.train, part(sg.val_fold_in, sg.val_target, sg.val_rows, "val"),
                 part(sg.test_fold_in, sg.test_target, sg.test_rows, "test"), info,
                 train_rows=sg.train_rows)


@_register("csv", {"delimiter", "header", "encoding", "user_col", "item_col", "value_col",
                   "timestamp_col", "ids", "duplicates", "feedback", "rating_range",
                   "binarize_threshold", "min_user_entries", "min_item_entries", "split",
                   "test_fraction", "val_fraction", "fold_in_fraction", "min_entries_to_split",
                   "orientation"})
def csv(cfg, seed: int) -> Dataset:
  """One delimited file of interactions, the shape of most users' own logs:
  ``user, item[, value][, timestamp]`` (other columns ignored; ``user_col`` / ``item_col`` /
  ``value_col`` / ``timestamp_col`` by header name or 0-based position; ``header`` True / False /
  "auto"; ``ids`` "int" | "str"; gzip accepted; ``jaxae.data.readers.csv.read_csv``).

  ``feedback``: "rating" (``value_col`` holds ratings, checked against ``rating_range``; the rating
  evaluator's RMSE) or "implicit" (every kept entry becomes 1; with ``binarize_threshold`` only
  entries whose value is above it are kept: ratings >= 4 with 3.5, or play / click counts).
  ``duplicates``: a repeated (user, item) pair keeps the "last" line, or "sum" adds the values
  (one line per event without a value column gives event counts; implicit feedback only).
  Then users and items with fewer than ``min_user_entries`` / ``min_item_entries`` entries are
  dropped, repeatedly until both hold (a k-core; users / items left with no entry by the
  threshold are always dropped); every dropped line, entry, user and item is counted in
  ``info`` and logged.

  ``split`` holds out ``test_fraction`` as the test split (0: none, train on everything) and then
  ``val_fraction`` of the rest as validation (0: none), both the same way: "entries" (at random
  over all entries), "per_user" (that fraction of each user's entries, at least one, from every
  user with two or more) or "per_user_time" (each user's latest, by ``timestamp_col``). Test is
  scored from train + validation as input, validation from train.

  ``split="users"`` is strong generalization (Liang et al. 2018, Mult-VAE's protocol): whole users
  are held out, ``test_fraction`` of them as test users and ``val_fraction`` of the rest as
  validation users; the model never trains on them (``Dataset.train_rows``). Each held-out user is
  given ``fold_in_fraction`` of their entries (drawn at random) and scored on the rest; one with
  fewer than ``min_entries_to_split`` entries is given all and not scored (counted). Items only
  held-out users have are dropped (counted), as in the paper's code. The test users are the same
  with ``val_fraction=0`` (the refit on train + validation users). Not for models holding
  parameters of each training user (CDAE, GLocal-K) or ``orientation="item"``.

  Without a path: synthetic 1..5 ratings with timestamps (``synthetic_interactions.ratings``), to
  which the same feedback, filter and split settings apply.
  """
  feedback = _choice(cfg, "feedback", FEEDBACK)
  duplicates = _choice(cfg, "duplicates", DUPLICATES)
  split = _choice(cfg, "split", tuple(CARVES) + (USER_SPLIT,))
  orientation = _choice(cfg, "orientation", ORIENTATIONS)
  fold_in, min_split = _user_split_settings(cfg, split)
  if split == USER_SPLIT and orientation == "item":
    raise ConfigError(f"config.data.split={USER_SPLIT!r} holds out whole users, whose fold-in "
                      f"entries are an input row; orientation='item' makes rows items (each user a "
                      f"column the model was built on): use orientation='user'")
  ids = _choice(cfg, "ids", ("int", "str"))
  header = cfg.header
  if isinstance(header, str) and header.lower() in ("true", "false"):   # as a command line gives it
    header = header.lower() == "true"
  if not (isinstance(header, bool) or header == "auto"):
    raise ConfigError(f"config.data.header={cfg.header!r}; known: True, False, 'auto'")
  if not isinstance(cfg.encoding, str) or not cfg.encoding:
    raise ConfigError(f"config.data.encoding must be a text encoding name, got {cfg.encoding!r}")
  delimiter = _delimiter(cfg)
  cols = {k: _column(cfg, k, optional=k in ("value_col", "timestamp_col"))
          for k in ("user_col", "item_col", "value_col", "timestamp_col")}
  test_fraction = _fraction(cfg, "test_fraction", allow_zero=True)
  val_fraction = _fraction(cfg, "val_fraction", allow_zero=True)
  if test_fraction + val_fraction >= 1:
    raise ConfigError(f"config.data.test_fraction + val_fraction must be < 1, got "
                      f"{test_fraction:g} + {val_fraction:g}")
  min_user, min_item = (_min_entries(cfg, k) for k in ("min_user_entries", "min_item_entries"))
  threshold = cfg.binarize_threshold
  info: dict[str, Any] = {"split": split}
  if feedback == "rating":
    if cfg.path is not None and cols["value_col"] is None:
      raise ConfigError("config.data.value_col is None, but feedback='rating' reads the ratings "
                        "from it")
    if threshold is not None:
      raise ConfigError("config.data.binarize_threshold is for feedback='implicit' (it turns "
                        "values into kept / dropped entries); set it to None for ratings")
    if duplicates == "sum":
      raise ConfigError("config.data.duplicates='sum' adds the values of a repeated pair (counts "
                        "of events, plays): for feedback='implicit'; ratings keep the 'last'")
    rating_range = _rating_range(cfg)
    info["rating_range"] = rating_range
  else:
    if cfg.rating_range is not None:
      raise ConfigError("config.data.rating_range is for feedback='rating'; set it to None for "
                        "implicit feedback")
    if threshold is not None:
      checks.number(threshold, "data.binarize_threshold")
      if cfg.path is not None and cols["value_col"] is None and duplicates != "sum":
        raise ConfigError("config.data.binarize_threshold needs values: a value_col, or "
                          "duplicates='sum' (each line one event: the threshold applies to counts)")
    rating_range = None
    info["implicit"] = True
  if split == "per_user_time" and cfg.path is not None and cols["timestamp_col"] is None:
    raise ConfigError("config.data.split='per_user_time' needs timestamps: set "
                      "config.data.timestamp_col")

  if cfg.path is None:
    full = synthetic_interactions.ratings(seed=seed)
  else:
    if os.path.isdir(cfg.path):
      raise DataError(f"{cfg.path}: the csv pipeline reads one file of interactions, not a folder")
    full, report = csv_reader.read_csv(
        cfg.path, cols["user_col"], cols["item_col"], cols["value_col"], cols["timestamp_col"],
        delimiter=delimiter, header=header, ids=ids, rating_range=rating_range,
        encoding=cfg.encoding, duplicates=duplicates, return_report=True)
    info["read"] = report.summary()
  kept = {"entries": full.nnz, "users": full.shape[0], "items": full.shape[1]}
  if feedback == "implicit":
    before = full.nnz
    full = full.binarize(-np.inf if threshold is None else float(threshold))
    info["entries_below_threshold"] = before - full.nnz
  full = full.filter_min_count(max(1, min_user), max(1, min_item), iterate=True)
  info["filtered"] = {"users_dropped": kept["users"] - full.shape[0],
                      "items_dropped": kept["items"] - full.shape[1],
                      "entries_dropped": kept["entries"] - full.nnz
                                         - info.get("entries_below_threshold", 0)}
  if not full.nnz:
    raise DataError(f"{cfg.path or 'synthetic data'}: no interaction left after the threshold and "
                    f"the minimum counts ({info})")
  logging.info("csv: %s users x %s items, %s entries kept; %s", full.shape[0], full.shape[1],
               full.nnz, info)
  if split == USER_SPLIT:
    return _orient(_heldout_users(full, test_fraction, val_fraction, seed, fold_in, min_split,
                                  info), orientation)
  if test_fraction > 0:
    held = CARVES[split](full, test_fraction=test_fraction, seed=seed)
    train_full, test, test_info = held.train, held.test, held.info
  else:
    train_full, test, test_info = full, None, None
  ds = _with_val(train_full, test, val_fraction, seed, info, test_info, val_split=split)
  return _orient(ds, orientation)


# ----------------------------------------------------------------------------------------- melon
_MELON_KEYS = {"synthetic_size", "split_seed", "min_song_count"}
_META_KEYS = {"min_tag_count", "max_tags", "min_song_tag_count", "max_tags_per_song", "genres",
              "detail_genres", "years", "months", "tags"}
_PARTS = ("val", "test")


def _melon_meta_path(path: str) -> str:
  """Where song meta for the playlists at ``path`` would be: ``song_meta.json`` in that folder."""
  folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
  return os.path.join(folder, "song_meta.json")


def _melon_world(cfg, seed: int, meta_needed_by: str | None = None) -> dict[str, Any]:
  """Train playlists, val/test questions + answers + types, and song meta (None if absent).

  - no path: the embedded synthetic world (``synthetic_size``, drawn with ``seed``), already split
    like the competition;
  - a folder holding ``val_answers.json`` (what ``jaxae.data.synthetic`` writes): ``train.json``,
    ``val.json`` / ``test.json`` (questions), ``*_answers.json`` and ``*_question_types.json``
    used as they are;
  - otherwise a playlists file (the file itself, or ``train.json`` in the folder) is split twice
    with the Kakao Arena split (``split_seed``): 20% test questions, then 20% of the rest val
    questions.
  ``song_meta.json`` is read from the folder (the file's folder for a file path) when it is there;
  with ``meta_needed_by`` (a pipeline name) its absence is a DataError, raised before any reading.
  """
  split_seed = checks.number(cfg.split_seed, "data.split_seed", minimum=0, integer=True)
  if cfg.path is None:
    size = cfg.synthetic_size
    if size not in synthetic.SIZES:
      raise ConfigError(f"config.data.synthetic_size={size!r}; known: {sorted(synthetic.SIZES)}")
    w = synthetic.synthesize_melon(size, seed=seed)
    return _checked_world(dict(train=w.train, val=(w.val, w.val_answers, w.val_types),
                               test=(w.test, w.test_answers, w.test_types), song_meta=w.song_meta))
  path = os.fspath(cfg.path)
  meta_path = _melon_meta_path(path)
  if meta_needed_by and not os.path.exists(meta_path):
    raise DataError(f"{path}: {meta_needed_by} needs song meta, but there is no song_meta.json in "
                    f"{os.path.dirname(meta_path)} (the playlists' folder)")
  meta = melon_reader.read_song_meta(meta_path) if os.path.exists(meta_path) else None
  if os.path.isdir(path) and os.path.exists(os.path.join(path, "val_answers.json")):
    out: dict[str, Any] = dict(train=melon_reader.read_playlists(os.path.join(path, "train.json")),
                               song_meta=meta)
    for part in _PARTS:
      q = melon_reader.read_playlists(os.path.join(path, f"{part}.json"))
      a_path = os.path.join(path, f"{part}_answers.json")
      a = melon_reader.read_playlists(a_path)
      types = _read_types(os.path.join(path, f"{part}_question_types.json"), q)
      out[part] = (q, _aligned_answers(q, a, a_path), types)
    return _checked_world(out)
  if os.path.isdir(path):
    path = os.path.join(path, "train.json")
  full = melon_reader.read_playlists(path)
  outer = kakao_split(full, seed=int(split_seed))
  inner = kakao_split(outer.train, seed=int(split_seed) + 1)
  return _checked_world(dict(
      train=inner.train, val=(inner.questions, inner.answers, inner.question_types),
      test=(outer.questions, outer.answers, outer.question_types), song_meta=meta))


def _checked_world(world: dict[str, Any]) -> dict[str, Any]:
  """Playlist ids must be unique across train and the questions (they become matrix rows)."""
  named = [("train", world["train"].ids)] + [(f"{p} questions", world[p][0].ids) for p in _PARTS]
  ids = np.concatenate([x for _, x in named])
  where_ = np.repeat(np.arange(len(named)), [len(x) for _, x in named])
  order = np.argsort(ids, kind="stable")
  dup = np.flatnonzero(ids[order][1:] == ids[order][:-1])
  if len(dup):
    a, b = order[dup[0]], order[dup[0] + 1]
    raise DataError(f"playlist id {int(ids[a])} occurs in {named[where_[a]][0]} and in "
                    f"{named[where_[b]][0]} ({len(dup)} repeated ids); playlist ids must be unique")
  return world


def _aligned_answers(questions, answers, path: str):
  """The answers in the questions' order (each question needs exactly one answer)."""
  pos = answers.index_of(questions.ids)
  if (pos < 0).any():
    raise DataError(f"{path}: no answer for question playlist id {int(questions.ids[pos < 0][0])} "
                    f"({int((pos < 0).sum())} questions without an answer)")
  if len(answers) != len(questions):
    extra = np.setdiff1d(answers.ids, questions.ids)
    raise DataError(f"{path}: answer for playlist id {int(extra[0])}, which is not a question")
  return answers if np.array_equal(pos, np.arange(len(pos))) else answers.select(pos)


def _read_types(path: str, questions) -> np.ndarray | None:
  """Question types aligned with ``questions`` from ``{playlist id: type}``; None when absent."""
  if not os.path.exists(path):
    return None
  try:
    types = json.loads(open_text(path))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: bad JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
  except RecursionError:
    raise DataError(f"{path}: JSON nested too deeply to be a question types file") from None
  if not isinstance(types, dict):
    raise DataError(f"{path}: expected an object playlist id -> question type")
  try:
    out = np.asarray([types[str(i)] for i in questions.ids.tolist()], dtype=str)
  except KeyError as e:
    raise DataError(f"{path}: no question type for playlist id {e.args[0]}") from None
  bad = sorted(set(out.tolist()) - set(QUESTION_TYPES))
  if bad:
    raise DataError(f"{path}: unknown question type {bad[0]!r}; known: {list(QUESTION_TYPES)}")
  return out


def _meta_kwargs(cfg) -> dict[str, Any]:
  return {k: cfg[k] for k in sorted(_META_KEYS)}


def _visible(world: dict[str, Any]):
  """Train playlists then the visible part of every val and test question."""
  return melon_reader.Playlists.concat([world["train"], world["val"][0], world["test"][0]],
                                       source="train + questions")


def _melon_extras(world: dict[str, Any]) -> dict[str, Any]:
  """What the Melon evaluator and recommenders read (see ``jaxae.evaluation.melon``)."""
  extras: dict[str, Any] = {"train_playlists": world["train"], "song_meta": world["song_meta"]}
  for part in _PARTS:
    q, a, types = world[part]
    extras.update({f"{part}_questions": q, f"{part}_answers": a, f"{part}_question_types": types})
  return extras


@_register("melon_song_as_user", _MELON_KEYS | _META_KEYS)
def melon_song_as_user(cfg, seed: int) -> Dataset:
  """Seed B's matrix: rows = songs in >= ``min_song_count`` playlists, columns = the playlists
  (train playlists and the visible part of every question) + one-hot meta. No row-wise eval split:
  the Melon evaluator recommends for the questions in ``extras`` (``val_questions`` ...)."""
  min_song_count = _positive_int(cfg, "min_song_count")
  world = _melon_world(cfg, seed)
  train, blocks = melon_features.song_as_user_matrix(
      _visible(world), world["song_meta"], min_song_count=min_song_count, **_meta_kwargs(cfg))
  info = {"feature_blocks": {k: list(v) for k, v in blocks.items()}, "orientation": "song",
          "song_meta": world["song_meta"] is not None}
  return Dataset(train, None, None, info, _melon_extras(world))


@_register("melon_cf", _MELON_KEYS)
def melon_cf(cfg, seed: int) -> Dataset:
  """Seed A's CF matrix: rows = train playlists then val and test questions (visible songs),
  columns = songs in >= ``min_song_count`` of them. The val/test splits score the question rows
  against the answer songs (answer songs outside the columns are dropped and counted)."""
  min_song_count = _positive_int(cfg, "min_song_count")
  world = _melon_world(cfg, seed)
  train = melon_features.playlist_song_matrix(_visible(world), min_song_count)
  offsets = np.cumsum([0, len(world["train"])] + [len(world[p][0]) for p in _PARTS])
  info: dict[str, Any] = {"orientation": "playlist", "implicit": True}

  def split(k: int, part: str) -> EvalSplit:
    # Answers share their ids with the question rows; songs outside the columns are dropped.
    answers = world[part][1]
    ans = Interactions.from_coo(answers.ids[answers.song_segments()], answers.songs,
                                row_ids=answers.ids, duplicates="last", source=f"{part} answers")
    targets, dropped = ans.reindex(train.row_ids, train.col_ids)
    return EvalSplit(train, targets, rows=np.arange(offsets[k], offsets[k + 1]),
                     info={"answer_songs_not_in_columns": dropped["unknown_cols"]})

  return Dataset(train, split(1, "val"), split(2, "test"), info, _melon_extras(world))


@_register("melon_content", _MELON_KEYS | _META_KEYS)
def melon_content(cfg, seed: int) -> Dataset:
  """Seed A's content matrix: rows = songs in >= ``min_song_count`` playlists, columns = one-hot
  release year / month / genre / frequent tags. Needs song meta (``song_meta.json``)."""
  min_song_count = _positive_int(cfg, "min_song_count")
  world = _melon_world(cfg, seed, meta_needed_by="melon_content")
  train = melon_features.song_meta_onehot(world["song_meta"], _visible(world),
                                          min_song_count=min_song_count, **_meta_kwargs(cfg))
  return Dataset(train, None, None, {"orientation": "song"}, _melon_extras(world))
