"""Hostile inputs: generated malformed files and configs against every entry point that reads them.

Hypothesis feeds each reader (MovieLens, DeepRecommender TSV, CSV, LightGCN txt, Melon JSON), the
config checks with the data / model / optimizer builders, and the Melon results scorer
(``eval.py melon``'s library function) at least 200 inputs each. Every input must end in either

* a :class:`~jaxae.errors.JaxaeError` whose message is one non-empty line, or
* a result equal to the one a small reference implementation in this file computes,

never another exception, a hang (each call runs under a time limit) or a silently wrong result.
Most inputs are valid tables with a few cells replaced by curated hostile tokens and a few layout
changes, so the expected outcome is known exactly (error iff the reference says so, naming a bad
line); raw byte damage (inserted / replaced bytes, truncation) only has to end cleanly.
A couple of real ``train.py`` subprocesses check the command line end of the same contract.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import json
import math
import os
import signal
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxae import evaluate
from jaxae import models
from jaxae.data import pipelines
from jaxae.data.readers import csv as csv_reader
from jaxae.data.readers import lightgcn as lightgcn_reader
from jaxae.data.readers import melon as melon_reader
from jaxae.data.readers import movielens as movielens_reader
from jaxae.data.readers import tsv as tsv_reader
from jaxae.errors import JaxaeError
from jaxae.evaluation import build_evaluators
from jaxae.training import loop
from jaxae.training import mesh as mesh_lib
from jaxae.training import optim as optim_lib
from jaxae.training import state as state_lib
from tests.conftest import REPO_ROOT

MALFORMED_MIN = 200         # malformed inputs each entry point must see (counted, asserted)
SETTINGS = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
# Some generated inputs are valid (to check the result side): generate enough for 200 malformed.
MORE = settings(SETTINGS, max_examples=300)
TIME_LIMIT_S = 20.0
INVALID = object()          # the reference's verdict for a token that must be refused


# ------------------------------------------------------------------------------------ harness
@contextlib.contextmanager
def time_limit(seconds: float = TIME_LIMIT_S):
  """Fails the example instead of hanging (SIGALRM; the tests run on the main thread)."""
  def on_alarm(signum, frame):
    raise AssertionError(f"no answer within {seconds} s: the input made the code hang")
  old = signal.signal(signal.SIGALRM, on_alarm)
  signal.setitimer(signal.ITIMER_REAL, seconds)
  try:
    yield
  finally:
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, old)


def outcome(fn, *args, **kwargs):
  """``("ok", result)`` or ``("error", message)`` for a JaxaeError; anything else propagates."""
  try:
    with time_limit():
      return "ok", fn(*args, **kwargs)
  except JaxaeError as e:
    msg = str(e)
    assert msg.strip() and "\n" not in msg and "Traceback" not in msg, repr(msg)
    return "error", msg


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
  return tmp_path_factory.mktemp("hostile")


def write(path, data: bytes | str) -> str:
  with open(path, "wb") as f:
    f.write(data.encode("utf-8") if isinstance(data, str) else data)
  return os.fspath(path)


# ------------------------------------------------------------------------- delimited tables
# Curated cells: (text, value the format gives it) or (text, INVALID). Values are what a strict
# reading gives: ASCII numbers, surrounding blanks ignored, ids integral, ratings in [1, 5].
BAD_NUMBERS = ["", "abc", "nan", "NaN", "inf", "-inf", "1e400", "0x10", "1_0", "\u0661",
               "\uff11", "1..2", "--1", "'1'", "\x00", "1a", "+-1", "1 2"]
CELLS = {
    "id": [("+3", 3), ("007", 7), ("-2", -2), (" 4 ", 4), ("9007199254740993", 2**53 + 1)]
          + [(t, INVALID) for t in BAD_NUMBERS + ["1.5", "99999999999999999999"]],
    "rating": [("2.5", 2.5), ("+3", 3.0), ("3.", 3.0), ("4e0", 4.0), (" 2 ", 2.0), ("1", 1.0),
               ("5", 5.0)]
              + [(t, INVALID) for t in BAD_NUMBERS + ["0", "6", "-1", "5.01", "0.999"]],
    "time": [("+5", 5), ("0", 0), ("-7", -7), ("978300760", 978300760)]
            + [(t, INVALID) for t in BAD_NUMBERS + ["1.5"]],
}
VALID = {"id": st.integers(1, 6).map(lambda v: (str(v), v)),
         "rating": st.sampled_from(["1", "2", "3", "4", "5", "3.5"]).map(lambda t: (t, float(t))),
         "time": st.integers(0, 2_000_000_000).map(lambda v: (str(v), v))}


class Format:
  """A delimited rating format: file name, delimiter, header line, column kinds, reader call."""

  def __init__(self, name, filename, delimiter, kinds, read, header=None, counts=None,
               times=True):
    self.name, self.filename, self.delimiter, self.kinds = name, filename, delimiter, kinds
    self.read, self.header, self.times = read, header, times
    self.counts = counts or {len(kinds)}     # allowed field counts (all records the same)


FORMATS = [
    Format("movielens_tab", "u.data", "\t", ["id", "id", "rating", "time"],
           lambda p: movielens_reader.read_movielens(p, rating_range=(1.0, 5.0))),
    Format("movielens_dat", "ratings.dat", "::", ["id", "id", "rating", "time"],
           lambda p: movielens_reader.read_movielens(p, rating_range=(1.0, 5.0))),
    Format("movielens_csv", "ratings.csv", ",", ["id", "id", "rating", "time"],
           lambda p: movielens_reader.read_movielens(p, rating_range=(1.0, 5.0)),
           header="userId,movieId,rating,timestamp"),
    Format("tsv", "part.txt", "\t", ["id", "id", "rating", "time"],
           lambda p: tsv_reader.read_tsv_dir(p, rating_range=(1.0, 5.0)), counts={3, 4}),
    Format("csv", "ratings_named.csv", ",", ["id", "id", "rating"],
           lambda p: csv_reader.read_csv(p, user_col="user", item_col="item",
                                         rating_col="rating", rating_range=(1.0, 5.0)),
           header="user,item,rating", counts=set(range(3, 6)), times=False),
]


@st.composite
def table_case(draw, fmt: Format):
  """A table of cells plus layout changes: (bytes, rows of (text, value) cells, hostile), where
  hostile says a curated cell or a changed field count went in."""
  n = draw(st.integers(1, 5))
  rows = [[draw(VALID[k]) for k in fmt.kinds] for _ in range(n)]
  n_cells = draw(st.sampled_from([0, 1, 1, 2]))
  for _ in range(n_cells):
    r, c = draw(st.integers(0, n - 1)), draw(st.integers(0, len(fmt.kinds) - 1))
    rows[r][c] = draw(st.sampled_from(CELLS[fmt.kinds[c]]))
  hostile = n_cells > 0
  if draw(st.booleans()) and draw(st.booleans()):      # a row gains or loses a field
    hostile = True
    r = draw(st.integers(0, n - 1))
    if draw(st.booleans()):
      rows[r] = rows[r] + [("1", 1)]
    else:
      rows[r] = rows[r][:-1]
  lines = [fmt.delimiter.join(text for text, _ in row) for row in rows]
  blank_at = draw(st.lists(st.integers(0, n), max_size=2))
  for pos in sorted(blank_at, reverse=True):
    lines.insert(pos, draw(st.sampled_from(["", "   "])))
  if fmt.header is not None:
    lines.insert(0, fmt.header)
  eol = draw(st.sampled_from(["\n", "\r\n"]))
  text = eol.join(lines) + (eol if draw(st.booleans()) else "")
  if draw(st.booleans()) and not draw(st.booleans()):
    text = "\ufeff" + text
  return text.encode("utf-8"), rows, hostile


def table_reference(fmt: Format, rows) -> tuple[str, object]:
  """("error", bad line numbers) or ("ok", {(user, item): (rating, time)}) (last record wins)."""
  counts = {len(r) for r in rows}
  if len(counts) > 1 or not counts <= fmt.counts:
    return "error", None
  bad = [i for i, row in enumerate(rows) if any(v is INVALID for _, v in row[:len(fmt.kinds)])]
  if bad:
    return "error", bad
  out = {}
  for row in rows:
    vals = [v for _, v in row]
    out[(vals[0], vals[1])] = (vals[2], vals[3] if len(vals) > 3 and fmt.times else None)
  return "ok", out


def entries_of(inter) -> dict:
  r, c, v = inter.to_coo_ids()
  ts = None if inter.timestamps is None else inter.timestamps.tocoo().data
  return {(int(a), int(b)): (float(x), None if ts is None else int(t))
          for a, b, x, t in zip(r, c, v, ts if ts is not None else [None] * len(r))}


def _line_numbers(data: bytes, rows, fmt: Format, bad: list[int]) -> set[int]:
  """1-based file lines of the records ``bad`` (blank lines and the header counted)."""
  text = data.decode("utf-8").lstrip("\ufeff").replace("\r\n", "\n")
  record_lines = [i + 1 for i, line in enumerate(text.split("\n"))
                  if line.strip() and not (fmt.header and line == fmt.header)]
  return {record_lines[i] for i in bad}


FORMATS_BY_FILE = {f.filename: f for f in FORMATS}


def _damage(data: bytes, draw_ops) -> bytes:
  for op, pos, blob in draw_ops:
    pos = min(pos, len(data))
    if op == "insert":
      data = data[:pos] + blob + data[pos:]
    elif op == "replace":
      data = data[:pos] + blob + data[pos + len(blob):]
    else:
      data = data[:pos]
  return data


DAMAGE = st.lists(st.tuples(st.sampled_from(["insert", "replace", "truncate"]),
                            st.integers(0, 200), st.binary(min_size=1, max_size=3)),
                  min_size=1, max_size=3)


def damaged(path: str, data: bytes, ops, gz: bool) -> None:
  """Byte damage (inserted / replaced bytes, a cut) of a table, plain or in a gzip stream (cut or
  not): a clean error, or a consistent rating matrix."""
  data = _damage(data, ops)
  lines = data.count(b"\n") + 1
  if gz:
    data = gzip.compress(data, mtime=0)
    data = data[:len(data) * 2 // 3] if ops[0][0] == "truncate" else data
  got, value = outcome(FORMATS_BY_FILE[os.path.basename(path)].read, write(path, data))
  if got == "ok":
    vals = value.matrix.data
    assert value.nnz >= 1 and np.isfinite(vals).all()
    assert vals.min() >= 1.0 and vals.max() <= 5.0
    assert value.nnz <= lines


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_delimited_readers_refuse_or_read_exactly(fmt, scratch):
  path = os.path.join(scratch, fmt.filename)
  malformed = [0]

  @MORE
  @given(case=table_case(fmt), ops=st.one_of(st.none(), st.none(), st.none(), DAMAGE),
         gz=st.booleans())
  def check(case, ops, gz):
    data, rows, hostile = case
    malformed[0] += hostile or ops is not None
    if ops is not None:
      damaged(path, data, ops, gz)
      return
    got, value = outcome(fmt.read, write(path, data))
    want, expected = table_reference(fmt, rows)
    assert got == want, (data, value)
    if got == "ok":
      assert entries_of(value) == expected, data
      if not any(len(r) > 3 for r in rows) or not fmt.times:
        assert value.timestamps is None
    elif expected:          # a bad cell: the message names the file and one of the bad lines
      lines = _line_numbers(data, rows, fmt, expected)
      assert any(f"{path}:{ln}:" in value for ln in lines), (value, lines)

  check()
  assert malformed[0] >= MALFORMED_MIN


# ---------------------------------------------------------------------------- LightGCN txt
LG_BAD = ["-1", "1.5", "abc", "1e3", "2147483647", "99999999999999999999", "1_0", "\u0661",
          "\x00", "+-3"]


@st.composite
def lightgcn_case(draw):
  n = draw(st.integers(1, 4))
  lines = [[str(u)] + [str(draw(st.integers(0, 9))) for _ in range(draw(st.integers(0, 4)))]
           for u in draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))]
  bad = []
  for _ in range(draw(st.sampled_from([0, 1, 1, 2]))):
    i = draw(st.integers(0, n - 1))
    j = draw(st.integers(0, len(lines[i]) - 1))
    lines[i][j] = draw(st.sampled_from(LG_BAD))
    bad.append(i)
  sep = draw(st.sampled_from([" ", "  ", "\t"]))
  text = "\n".join(sep.join(ln) for ln in lines) + draw(st.sampled_from(["", "\n", "\n\n"]))
  return text.encode(), lines, sorted(set(bad))


def test_lightgcn_reader_refuses_or_reads_exactly(scratch):
  path = os.path.join(scratch, "train.txt")
  malformed = [0]

  @MORE
  @given(case=lightgcn_case(), ops=st.one_of(st.none(), DAMAGE))
  def check(case, ops):
    data, lines, bad = case
    malformed[0] += bool(bad) or ops is not None
    if ops is not None:
      data = _damage(data, ops)
    got, value = outcome(lightgcn_reader.read_lightgcn, write(path, data))
    if ops is not None:
      if got == "ok":
        assert value.nnz <= len(data.split()) and (value.matrix.data == 1.0).all()
      return
    assert got == ("error" if bad else "ok"), (data, value)
    if got == "ok":
      want = {(int(ln[0]), int(i)) for ln in lines for i in ln[1:]}
      r, c, _ = value.to_coo_ids()
      assert set(zip(r.tolist(), c.tolist())) == want and value.nnz == len(want)
      assert value.shape == (max(int(ln[0]) for ln in lines) + 1,
                             max([int(i) + 1 for ln in lines for i in ln[1:]], default=0))
    else:
      assert any(f"{path}:{i + 1}:" in value for i in bad), value

  check()
  assert malformed[0] >= MALFORMED_MIN


# ---------------------------------------------------------------------------- Melon JSON
HOSTILE_JSON = [None, True, False, 1.5, "x", "", [], {}, -1, 2**70, -(2**70), [1, "a"], [None],
                [[1]], [True], "2020-01-01 00:00:00.000", {"id": 1}, float("nan")]
DATES_OK = ["2020-01-01 10:00:00.000", "2019-12-31 23:59:59.000", "2020-01-01 00:00:00.000"]
DATES_BAD = ["", "NaT", "now", "yesterday", "2020-13-01 00:00:00.000", "2020-02-30 00:00:00.000"]
KEY_TYPES = {"id": int, "plylst_title": str, "like_cnt": int, "updt_date": str, "songs": list,
             "tags": list}


@st.composite
def playlist_record(draw, pid):
  return {"tags": draw(st.lists(st.sampled_from(["rock", "jazz", "\uc7ac\uc988", "a b"]),
                                max_size=3)),
          "id": pid, "plylst_title": draw(st.sampled_from(["", "title", "\ud0c0\uc774\ud2c0"])),
          "songs": draw(st.lists(st.integers(-3, 30), max_size=5)),
          "like_cnt": draw(st.integers(0, 10)), "updt_date": draw(st.sampled_from(DATES_OK))}


@st.composite
def melon_case(draw):
  """(the parsed JSON of a playlist file, hostile: it differs from the valid records drawn)."""
  ids = draw(st.lists(st.integers(0, 20), max_size=4, unique=True))
  records = [draw(playlist_record(i)) for i in ids]
  valid = copy.deepcopy(records)
  for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
    if not records:
      break
    rec = records[draw(st.integers(0, len(records) - 1))]
    key = draw(st.sampled_from(sorted(KEY_TYPES) + ["extra_key"]))
    action = draw(st.sampled_from(["delete", "value", "date", "dup_id", "item"]))
    if action == "delete":
      rec.pop(key, None)
    elif action == "value":
      rec[key] = draw(st.sampled_from(HOSTILE_JSON))
    elif action == "date":
      rec["updt_date"] = draw(st.sampled_from(DATES_BAD + DATES_OK))
    elif action == "dup_id":
      rec["id"] = records[0].get("id")
    elif isinstance(rec.get("songs"), list) and isinstance(rec.get("tags"), list):
      target = rec["songs"] if draw(st.booleans()) else rec["tags"]
      target.append(draw(st.sampled_from(HOSTILE_JSON + [3, "pop"])))
  top = draw(st.sampled_from(["list", "list", "list", "dict", "number", "string"]))
  obj = records if top == "list" else {"number": 7, "string": "x"}.get(top, {"a": records})
  return obj, top != "list" or json.dumps(records) != json.dumps(valid)


def _is_int64(x) -> bool:
  return type(x) is int and -2**63 <= x < 2**63  # noqa: E721 (bool is not an id)


def melon_reference(obj):
  """None when the records must be refused, else [(id, title, songs, tags)] (repeats dropped)."""
  if not isinstance(obj, list):
    return None
  out, seen = [], set()
  for rec in obj:
    if not isinstance(rec, dict) or any(k not in rec for k in KEY_TYPES):
      return None
    if any(type(rec[k]) is not t for k, t in KEY_TYPES.items()):  # noqa: E721
      return None
    if not (_is_int64(rec["id"]) and _is_int64(rec["like_cnt"])):
      return None
    if not all(_is_int64(s) for s in rec["songs"]) or not all(type(t) is str for t in rec["tags"]):
      return None
    if rec["updt_date"] not in DATES_OK or rec["id"] in seen:
      return None
    seen.add(rec["id"])
    out.append((rec["id"], rec["plylst_title"], list(dict.fromkeys(rec["songs"])),
                list(dict.fromkeys(rec["tags"]))))
  return out


def test_melon_playlist_reader_refuses_or_reads_exactly(scratch):
  path = os.path.join(scratch, "p.json")
  malformed = [0]

  @MORE
  @given(case=melon_case(), encoding=st.sampled_from(["plain", "plain", "gzip", "bom"]),
         ops=st.one_of(st.none(), st.none(), DAMAGE))
  def check(case, encoding, ops):
    obj, hostile = case
    malformed[0] += hostile or ops is not None
    text = json.dumps(obj, ensure_ascii=False).encode("utf-8")
    if ops is not None:
      text = _damage(text, ops)
    data = {"plain": text, "gzip": gzip.compress(text, mtime=0),
            "bom": b"\xef\xbb\xbf" + text}[encoding]
    got, value = outcome(melon_reader.read_playlists, write(path, data))
    if ops is not None:           # damaged text: a clean error, or records that pass validation
      if got == "ok":
        assert len(value.song_indptr) == len(value) + 1
      return
    want = melon_reference(obj)
    assert got == ("error" if want is None else "ok"), (obj, value)
    if got == "ok":
      assert [(int(value.ids[i]), value.titles[i], value.songs_of(i).tolist(),
               value.tags_of(i).tolist()) for i in range(len(value))] == want

  check()
  assert malformed[0] >= MALFORMED_MIN


def test_melon_reader_refuses_json_nested_too_deeply(scratch):
  path = write(os.path.join(scratch, "deep.json"), "[" * 100_000 + "]" * 100_000)
  got, msg = outcome(melon_reader.read_playlists, path)
  assert got == "error" and "nested too deeply" in msg


# ------------------------------------------------------------------- Melon results (eval.py)
ANSWERS = [{"tags": ["rock", "jazz"], "id": 11, "plylst_title": "", "songs": [3, 105, 7],
            "like_cnt": 0, "updt_date": "2020-01-01 00:00:00.000"},
           {"tags": ["pop"], "id": 12, "plylst_title": "t", "songs": [150],
            "like_cnt": 1, "updt_date": "2020-01-01 00:00:00.000"}]
TAG_POOL = ["rock", "jazz", "pop", "k", "l", "m", "n", "o", "p", "q", "r", "s"]


def official_score(answers, results) -> float:
  """The Kakao Arena formula written out: mean over playlists of 0.85 nDCG@100 + 0.15 nDCG@10."""
  def ndcg(gt, rec):
    dcg = sum(1.0 / math.log(i + 2) for i, r in enumerate(rec) if r in gt)
    return dcg / sum(1.0 / math.log(i + 2) for i in range(len(gt)))
  by_id = {a["id"]: a for a in answers}
  scores = [0.85 * ndcg(by_id[r["id"]]["songs"], r["songs"])
            + 0.15 * ndcg(by_id[r["id"]]["tags"], r["tags"]) for r in results]
  return sum(scores) / len(scores)


RESULT_MUTATIONS = ["none", "bom", "gzip", "short_songs", "long_songs", "dup_song", "dup_tag",
                    "short_tags", "unknown_id", "missing_record", "dup_record", "song_value",
                    "tag_value", "id_value", "missing_key", "not_object", "not_list", "truncate",
                    "empty"]


@st.composite
def results_case(draw):
  rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
  results = []
  for a in ANSWERS:
    songs = (rng.permutation(199)[:100] + 1).tolist()    # often hitting the answers' songs
    tags = [TAG_POOL[i] for i in rng.permutation(len(TAG_POOL))[:10]]
    results.append({"id": a["id"], "songs": songs, "tags": tags})
  results = results if draw(st.booleans()) else results[::-1]
  return results, draw(st.sampled_from(RESULT_MUTATIONS)), draw(st.integers(0, 1)), draw(
      st.sampled_from(HOSTILE_JSON + ["7"]))


def results_reference(results) -> bool:
  """The official validation: every question answered once with 100 unique song ids and 10
  unique tags, nothing else."""
  if not isinstance(results, list) or not all(
      isinstance(r, dict) and {"id", "songs", "tags"} <= set(r) for r in results):
    return False
  for r in results:
    if not (_is_int64(r["id"]) and isinstance(r["songs"], list) and isinstance(r["tags"], list)):
      return False
    if not (all(_is_int64(x) for x in r["songs"]) and all(type(t) is str for t in r["tags"])):
      return False
    if len(set(r["songs"])) != 100 or len(r["songs"]) != 100:
      return False
    if len(set(r["tags"])) != 10 or len(r["tags"]) != 10:
      return False
  ids = [r["id"] for r in results]
  return sorted(ids) == sorted(a["id"] for a in ANSWERS)


def test_melon_results_scoring_refuses_or_scores_exactly(scratch):
  malformed = [0]

  @MORE
  @given(case=results_case())
  def check(case):
    malformed[0] += case[1] not in ("none", "bom", "gzip")
    score_case(case, scratch)

  check()
  assert malformed[0] >= MALFORMED_MIN


def score_case(case, scratch) -> None:
  """Mutates valid results as ``case`` says and scores them: refused iff the official validation
  refuses them, else the official score."""
  results, mutation, k, bad_value = case
  rec = results[k]
  if mutation == "short_songs":
    rec["songs"] = rec["songs"][:99]
  elif mutation == "long_songs":
    rec["songs"] = rec["songs"] + [1000]
  elif mutation == "dup_song":
    rec["songs"][5] = rec["songs"][6]
  elif mutation == "dup_tag":
    rec["tags"][0] = rec["tags"][9]
  elif mutation == "short_tags":
    rec["tags"] = rec["tags"][:9]
  elif mutation == "unknown_id":
    rec["id"] = 99
  elif mutation == "missing_record":
    results.pop(k)
  elif mutation == "dup_record":
    results.append(copy.deepcopy(rec))
  elif mutation == "song_value":
    rec["songs"][3] = bad_value
  elif mutation == "tag_value":
    rec["tags"][3] = bad_value
  elif mutation == "id_value":
    rec["id"] = bad_value
  elif mutation == "missing_key":
    rec.pop(["id", "songs", "tags"][k + (bad_value is None)])
  elif mutation == "not_object":
    results[k] = bad_value
  obj = results if mutation != "not_list" else {"results": results}
  valid = results_reference(obj) and mutation not in ("truncate", "empty")
  text = json.dumps(obj).encode()
  text = {"bom": b"\xef\xbb\xbf" + text, "gzip": gzip.compress(text, mtime=0),
          "truncate": text[:len(text) // 2], "empty": b""}.get(mutation, text)
  answers = write(os.path.join(scratch, "answers.json"), json.dumps(ANSWERS))
  results_path = write(os.path.join(scratch, "results.json"), text)
  got, value = outcome(evaluate.score_melon_files, answers, results_path)
  assert got == ("ok" if valid else "error"), (mutation, bad_value, value)
  if got == "ok":
    assert value["count"] == 2
    assert value["score"] == pytest.approx(official_score(ANSWERS, results), rel=1e-12)


# ------------------------------------------------------------------------ config overrides
BASE_CONFIGS = ("autorec_ml100k", "deeprec_netflix", "mult_vae_gowalla")
HOSTILE_VALUES = [None, True, False, 0, -1, 1, 3, 2**63, float("inf"), float("nan"), 0.5, -0.5,
                  1e-12, "", "x", "adam", "relu", "float32", (), (0,), (-3,), (1, 2), [], {},
                  {"a": 1}, "None"]
UNKNOWN_KEYS = ["epochz", "lr_", "Name", "layers ", "hidden_units", "seed"]


def _load_config(name: str) -> ml_collections.ConfigDict:
  sys.path.insert(0, str(REPO_ROOT))
  try:
    module = __import__(f"configs.{name}", fromlist=["get_config"])
  finally:
    sys.path.remove(str(REPO_ROOT))
  c = module.get_config()
  c.train.epochs = 2
  return c


class _Runs(dict):
  def __repr__(self) -> str:   # hypothesis prints the arguments of a failing example
    return f"<base runs of {', '.join(self)}>"


@pytest.fixture(scope="module")
def base_runs():
  """Each base config as a plain dict and its dataset (reused when the data section is intact)."""
  out = _Runs()
  for name in BASE_CONFIGS:
    c = _load_config(name)
    out[name] = (c.to_dict(), pipelines.load_dataset(c.data, int(c.seed)))
  return out


def start_run(config, dataset):
  """Everything `train_and_evaluate` does with a config before the first step (no compiling)."""
  loop.check_config(config)
  mesh_lib.make_mesh(config.mesh)
  if dataset is None:
    dataset = pipelines.load_dataset(config.data, int(config.seed))
  model = models.build_model(config.model, dataset.n_cols, dataset.n_rows)
  if models.is_trainable(config.model):
    tx = optim_lib.make_optimizer(config.optim, 10, int(config.train.epochs),
                                  1 + int(config.train.refeed_steps))
    sparse = bool(config.model.get("sparse_input", False))
    jax.eval_shape(lambda: state_lib.create_train_state(model, tx, dataset.n_cols, sparse,
                                                        int(config.seed)))
  if list(config.eval.evaluators):
    build_evaluators(config.eval, dataset, "val")
  return dataset


@SETTINGS
@given(base=st.sampled_from(BASE_CONFIGS),
       section=st.sampled_from(["", "data", "model", "loss", "optim", "train", "eval", "mesh"]),
       existing=st.booleans(), index=st.integers(0, 50), value=st.sampled_from(HOSTILE_VALUES))
def test_config_overrides_are_refused_in_one_line_or_run(base, section, existing, index, value,
                                                         base_runs):
  raw, dataset = base_runs[base]
  d = copy.deepcopy(raw)
  target = d if not section else d[section]
  keys = sorted(target) if existing else UNKNOWN_KEYS
  key = keys[index % len(keys)]
  target[key] = value
  config = ml_collections.ConfigDict(d)
  got, ds = outcome(start_run, config, None if section == "data" else dataset)
  if got == "ok" and key not in (raw if not section else raw[section]):
    pytest.fail(f"unknown key config.{section + '.' if section else ''}{key} was accepted")
  if got == "ok":
    assert ds.n_rows >= 1 and ds.n_cols >= 1


# --------------------------------------------------------------------- train.py subprocesses
def _train_py(*args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "train.py", *args], cwd=REPO_ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


CONFIG_FILES = {   # file text (None: no file) -> the one line train.py ends with
    "missing": (None, "no such file"),
    "syntax": ("def get_config(:\n  pass\n", "the config file does not load: SyntaxError: "),
    "import": ("import no_such_module_here\n", "does not load: ModuleNotFoundError: No module "
               "named 'no_such_module_here'"),
    "no get_config": ("X = 1\n", "the config file defines no get_config()"),
    "raises": ("def get_config():\n  raise ValueError('no such preset')\n",
               "get_config() raised ValueError: no such preset"),
    "a folder": ("folder", "not a file"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_FILES))
def test_train_py_names_a_config_file_that_gives_no_config(case, tmp_path):
  text, message = CONFIG_FILES[case]
  path = tmp_path / "my_config.py"
  if text == "folder":
    path.mkdir()
  elif text is not None:
    path.write_text(text)
  p = _train_py(f"--config={path}", f"--workdir={tmp_path / 'wd'}", timeout=120)
  assert p.returncode == 2, p.stderr
  lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
  assert "Traceback" not in p.stderr and len(lines) == 1, p.stderr
  assert lines[0].startswith(f"error: --config={path}: ") and message in lines[0], lines[0]
  assert not (tmp_path / "wd").exists()


@pytest.mark.parametrize("override,message", [
    ("--config.train.epochz=3", "error: cannot apply the config --config.train.epochz=3"),
    ("--config.data.path=/nonexistent/u.data", "no such file or directory"),
])
def test_train_py_reports_a_bad_override_in_one_line(override, message, tmp_path):
  p = _train_py("--config=configs/autorec_ml100k.py", override, f"--workdir={tmp_path / 'wd'}")
  assert p.returncode == 2, p.stderr
  lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
  assert "Traceback" not in p.stderr and lines[-1].startswith("error: "), p.stderr
  assert message in lines[-1], lines[-1]
  assert not (tmp_path / "wd" / "checkpoints").exists() or not os.listdir(
      tmp_path / "wd" / "checkpoints")
