"""Reads and writes the Kakao Arena 2020 Melon files as arrays (playlists, song meta, genres).

The competition ships JSON arrays of playlists (``train.json``, ``val.json``, ``test.json``), song
metadata (``song_meta.json``) and a genre code table (``genre_gn_all.json``). This module turns each
into numpy arrays (lists become CSR-like ``indptr`` + flat values), validates every record with a
readable :class:`~jaxae.errors.DataError`, and writes the same JSON structure back.

Repairs that do not stop reading (a song listed twice in one playlist is kept once) are counted in
``Playlists.skipped`` / ``SongMeta.skipped`` and logged through ``absl.logging``.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import os
from typing import Any, Iterable, Sequence

from absl import logging
import numpy as np

from jaxae.data.matrix import Interactions
from jaxae.data.readers.common import open_text
from jaxae.errors import DataError

PLAYLIST_KEYS = ("tags", "id", "plylst_title", "songs", "like_cnt", "updt_date")
SONG_META_KEYS = ("id", "song_gn_gnr_basket", "song_gn_dtl_gnr_basket", "issue_date", "album_id",
                  "artist_id_basket")
SONG_META_OPTIONAL_KEYS = ("song_name", "album_name", "artist_name_basket")


# ---------------------------------------------------------------------------------------------- CSR
def segment_ids(indptr: np.ndarray) -> np.ndarray:
  """The segment (row) index of every flat value of a CSR-like ``indptr``."""
  lengths = np.diff(indptr)
  return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def csr_take(indptr: np.ndarray, values: np.ndarray,
             index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Gathers the segments ``index`` of a CSR-like pair, vectorized (no loop over segments)."""
  index = np.asarray(index, dtype=np.int64)
  lengths = np.diff(indptr)[index]
  new_indptr = np.zeros(len(index) + 1, np.int64)
  np.cumsum(lengths, out=new_indptr[1:])
  starts = np.asarray(indptr, np.int64)[index]
  pos = np.repeat(starts - new_indptr[:-1], lengths) + np.arange(new_indptr[-1], dtype=np.int64)
  return new_indptr, values[pos]


def csr_from_lengths(lengths: np.ndarray) -> np.ndarray:
  """``indptr`` for the given segment lengths."""
  indptr = np.zeros(len(lengths) + 1, np.int64)
  np.cumsum(lengths, out=indptr[1:])
  return indptr


def dedupe_segments(indptr: np.ndarray,
                    values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Drops repeats of a value inside one segment, keeping the first occurrence (order kept).

  Returns:
    (new indptr, new values, boolean mask over the old values marking the dropped repeats).
  """
  n = len(values)
  if n == 0:
    return np.asarray(indptr, np.int64), values, np.zeros(0, bool)
  seg = segment_ids(indptr)
  if values.dtype.kind in "iu":
    codes = values.astype(np.int64) - int(values.min())
    n_codes = int(codes.max()) + 1
  else:
    uniq, codes = np.unique(values, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    n_codes = len(uniq)
  if len(indptr) - 1 <= (2**62) // max(n_codes, 1):
    key = seg * n_codes + codes
    order = np.argsort(key, kind="stable")
    k = key[order]
    dup_sorted = np.zeros(n, bool)
    dup_sorted[1:] = k[1:] == k[:-1]
  else:  # Astronomically many codes: fall back to a two-key sort.
    order = np.lexsort((np.arange(n), codes, seg))
    dup_sorted = np.zeros(n, bool)
    dup_sorted[1:] = (codes[order][1:] == codes[order][:-1]) & (seg[order][1:] == seg[order][:-1])
  dup = np.zeros(n, bool)
  dup[order] = dup_sorted
  if not dup.any():
    return np.asarray(indptr, np.int64), values, dup
  keep = ~dup
  new_indptr = csr_from_lengths(np.bincount(seg[keep], minlength=len(indptr) - 1))
  return new_indptr, values[keep], dup


# -------------------------------------------------------------------------------------------- dates
def parse_updt_dates(dates: Sequence[str], source: str = "<dates>") -> np.ndarray:
  """Parses ``"YYYY-MM-DD HH:MM:SS.000"`` strings into ``datetime64[s]`` (milliseconds dropped)."""
  arr = np.asarray(list(dates), dtype=str) if not isinstance(dates, np.ndarray) else dates
  if len(arr) == 0:
    return np.zeros(0, "datetime64[s]")
  try:
    out = arr.astype("datetime64[ms]").astype("datetime64[s]")
  except ValueError:
    for i, d in enumerate(arr.tolist()):
      try:
        np.datetime64(d, "ms")
      except ValueError:
        raise DataError(f"{source}: record {i}: updt_date {d!r} is not a "
                        f"'YYYY-MM-DD HH:MM:SS.000' date") from None
    raise
  # numpy also reads "", "NaT", "now" and "today": none of them is a date of the file.
  bad = np.isnat(out) | ~np.char.isdigit(arr.astype("<U1"))
  if bad.any():
    i = int(np.argmax(bad))
    raise DataError(f"{source}: record {i}: updt_date {arr[i]!r} is not a "
                    f"'YYYY-MM-DD HH:MM:SS.000' date")
  return out


def format_updt_dates(dates: np.ndarray) -> list[str]:
  """Formats ``datetime64`` values as the Melon ``"YYYY-MM-DD HH:MM:SS.000"`` strings."""
  if len(dates) == 0:
    return []
  s = np.datetime_as_string(np.asarray(dates).astype("datetime64[s]"), unit="s")
  return np.char.add(np.char.replace(s, "T", " "), ".000").tolist()


# ---------------------------------------------------------------------------------------- Playlists
@dataclasses.dataclass
class Playlists:
  """One Melon playlist file in array form.

  Attributes:
    ids: playlist id of each playlist, int64 [P].
    titles: ``plylst_title`` of each playlist.
    like_cnt: int64 [P].
    updt_date: ``datetime64[s]`` [P].
    song_indptr: int64 [P + 1]; the songs of playlist ``i`` are
      ``songs[song_indptr[i]:song_indptr[i + 1]]``, in file order.
    songs: int64 raw song ids.
    tag_indptr: int64 [P + 1], same layout for ``tags``.
    tags: numpy str array of tags.
    source: where the playlists came from (file name for messages).
    skipped: counts of what reading repaired or dropped (e.g. ``{"duplicate_songs": 3}``).
  """

  ids: np.ndarray
  titles: list[str]
  like_cnt: np.ndarray
  updt_date: np.ndarray
  song_indptr: np.ndarray
  songs: np.ndarray
  tag_indptr: np.ndarray
  tags: np.ndarray
  source: str = "<playlists>"
  skipped: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.ids = np.asarray(self.ids, dtype=np.int64)
    self.titles = list(self.titles)
    self.like_cnt = np.asarray(self.like_cnt, dtype=np.int64)
    self.updt_date = np.asarray(self.updt_date).astype("datetime64[s]")
    self.song_indptr = np.asarray(self.song_indptr, dtype=np.int64)
    self.songs = np.asarray(self.songs, dtype=np.int64)
    self.tag_indptr = np.asarray(self.tag_indptr, dtype=np.int64)
    self.tags = np.asarray(self.tags, dtype=str) if len(self.tags) else np.zeros(0, "<U1")
    p = len(self.ids)
    lens = {"titles": len(self.titles), "like_cnt": len(self.like_cnt),
            "updt_date": len(self.updt_date), "song_indptr - 1": len(self.song_indptr) - 1,
            "tag_indptr - 1": len(self.tag_indptr) - 1}
    bad = {k: v for k, v in lens.items() if v != p}
    if bad:
      raise DataError(f"{self.source}: {p} playlist ids but lengths {bad}")
    if self.song_indptr[-1] != len(self.songs) or self.tag_indptr[-1] != len(self.tags):
      raise DataError(f"{self.source}: indptr does not match the number of songs / tags")

  # -------------------------------------------------------------------------- access
  def __len__(self) -> int:
    return len(self.ids)

  def songs_of(self, i: int) -> np.ndarray:
    return self.songs[self.song_indptr[i]:self.song_indptr[i + 1]]

  def tags_of(self, i: int) -> np.ndarray:
    return self.tags[self.tag_indptr[i]:self.tag_indptr[i + 1]]

  def song_lengths(self) -> np.ndarray:
    return np.diff(self.song_indptr)

  def tag_lengths(self) -> np.ndarray:
    return np.diff(self.tag_indptr)

  def song_segments(self) -> np.ndarray:
    """Playlist index of every entry of ``songs``."""
    return segment_ids(self.song_indptr)

  def tag_segments(self) -> np.ndarray:
    """Playlist index of every entry of ``tags``."""
    return segment_ids(self.tag_indptr)

  def index_of(self, ids) -> np.ndarray:
    """Positions of the given playlist ids (-1 where absent)."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(self.ids, kind="stable")
    sorted_ids = self.ids[order]
    pos = np.searchsorted(sorted_ids, ids)
    pos_c = np.minimum(pos, max(len(sorted_ids) - 1, 0))
    ok = (pos < len(sorted_ids)) & (sorted_ids[pos_c] == ids) if len(sorted_ids) else (
        np.zeros(len(ids), bool))
    return np.where(ok, order[pos_c] if len(order) else 0, -1).astype(np.int64)

  def select(self, index) -> "Playlists":
    """The playlists at ``index`` (int positions or a boolean mask), in that order."""
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    index = index.astype(np.int64)
    s_ptr, s = csr_take(self.song_indptr, self.songs, index)
    t_ptr, t = csr_take(self.tag_indptr, self.tags, index)
    titles = [self.titles[i] for i in index.tolist()]
    return Playlists(self.ids[index], titles, self.like_cnt[index], self.updt_date[index],
                     s_ptr, s, t_ptr, t, source=self.source, skipped=dict(self.skipped))

  @classmethod
  def concat(cls, parts: Sequence["Playlists"], source: str = "<concat>") -> "Playlists":
    """Playlists of ``parts`` one after the other."""
    if not parts:
      return empty_playlists(source)
    s_len = np.concatenate([p.song_lengths() for p in parts])
    t_len = np.concatenate([p.tag_lengths() for p in parts])
    tags = [p.tags for p in parts if len(p.tags)]
    return cls(np.concatenate([p.ids for p in parts]),
               list(itertools.chain.from_iterable(p.titles for p in parts)),
               np.concatenate([p.like_cnt for p in parts]),
               np.concatenate([p.updt_date for p in parts]),
               csr_from_lengths(s_len), np.concatenate([p.songs for p in parts]),
               csr_from_lengths(t_len), np.concatenate(tags) if tags else np.zeros(0, "<U1"),
               source=source)

  # -------------------------------------------------------------------------- conversion
  def to_json_records(self) -> list[dict[str, Any]]:
    """The playlists as the Melon JSON records (same keys, key order and value types)."""
    songs = self.songs.tolist()
    tags = self.tags.tolist()
    sp = self.song_indptr.tolist()
    tp = self.tag_indptr.tolist()
    ids = self.ids.tolist()
    likes = self.like_cnt.tolist()
    dates = format_updt_dates(self.updt_date)
    return [{"tags": tags[tp[i]:tp[i + 1]], "id": ids[i], "plylst_title": self.titles[i],
             "songs": songs[sp[i]:sp[i + 1]], "like_cnt": likes[i], "updt_date": dates[i]}
            for i in range(len(ids))]

  def song_matrix(self, song_vocab=None, *, return_report: bool = False):
    """Playlist x song binary matrix (rows = every playlist, in order).

    Args:
      song_vocab: fixed column ids (raw song ids). Songs not in it are dropped and counted.
        ``None`` = the sorted distinct songs of these playlists.
      return_report: also return ``{"songs_not_in_vocab": n, "playlists_emptied": k}``.
    """
    return self._matrix(self.songs, self.song_indptr, song_vocab, "songs", return_report)

  def tag_matrix(self, tag_vocab=None, *, return_report: bool = False):
    """Playlist x tag binary matrix; like :meth:`song_matrix` for tags."""
    return self._matrix(self.tags, self.tag_indptr, tag_vocab, "tags", return_report)

  def _matrix(self, values, indptr, vocab, what, return_report):
    seg = segment_ids(indptr)
    report = {f"{what}_not_in_vocab": 0, "playlists_emptied": 0}
    if vocab is not None:
      vocab = np.asarray(vocab)
      keep = np.isin(values, vocab) if len(values) else np.zeros(0, bool)
      n_drop = int((~keep).sum())
      if n_drop:
        had = np.bincount(seg, minlength=len(self)) > 0
        has = np.bincount(seg[keep], minlength=len(self)) > 0
        report = {f"{what}_not_in_vocab": n_drop, "playlists_emptied": int((had & ~has).sum())}
        logging.info("%s: %d %s entries not in the vocabulary dropped (%d playlists emptied)",
                     self.source, n_drop, what, report["playlists_emptied"])
        values, seg = values[keep], seg[keep]
    elif len(values) == 0:
      vocab = np.zeros(0, np.int64 if what == "songs" else "<U1")
    m = Interactions.from_coo(self.ids[seg], values, row_ids=self.ids, col_ids=vocab,
                              duplicates="last", source=self.source)
    return (m, report) if return_report else m


def empty_playlists(source: str = "<playlists>") -> Playlists:
  z = np.zeros(1, np.int64)
  return Playlists(np.zeros(0, np.int64), [], np.zeros(0, np.int64), np.zeros(0, "datetime64[s]"),
                   z, np.zeros(0, np.int64), z, np.zeros(0, "<U1"), source=source)


# ----------------------------------------------------------------------------------------- SongMeta
@dataclasses.dataclass
class SongMeta:
  """``song_meta.json`` in array form.

  Attributes:
    ids: song id, int64 [S].
    genre_indptr, genres: ``song_gn_gnr_basket`` as CSR over genre code strings.
    dtl_genre_indptr, dtl_genres: ``song_gn_dtl_gnr_basket`` likewise.
    issue_date: int64 yyyymmdd (0 = unknown; month/day may be 00).
    album_id: int64 (-1 where the file had null).
    artist_indptr, artists: ``artist_id_basket`` as CSR over int64 artist ids.
    song_names, album_names: str per song ("" where absent).
    artist_names: ``artist_name_basket`` per song.
    source, skipped: as in :class:`Playlists`.
  """

  ids: np.ndarray
  genre_indptr: np.ndarray
  genres: np.ndarray
  dtl_genre_indptr: np.ndarray
  dtl_genres: np.ndarray
  issue_date: np.ndarray
  album_id: np.ndarray
  artist_indptr: np.ndarray
  artists: np.ndarray
  song_names: list[str] | None = None
  album_names: list[str] | None = None
  artist_names: list[list[str]] | None = None
  source: str = "<song_meta>"
  skipped: dict = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    self.ids = np.asarray(self.ids, np.int64)
    for name in ("genre_indptr", "dtl_genre_indptr", "artist_indptr", "issue_date", "album_id",
                 "artists"):
      setattr(self, name, np.asarray(getattr(self, name), np.int64))
    for name in ("genres", "dtl_genres"):
      v = getattr(self, name)
      setattr(self, name, np.asarray(v, str) if len(v) else np.zeros(0, "<U1"))
    n = len(self.ids)
    if not (len(self.genre_indptr) == len(self.dtl_genre_indptr) == len(self.artist_indptr) == n + 1
            and len(self.issue_date) == len(self.album_id) == n):
      raise DataError(f"{self.source}: song meta arrays disagree in length")

  def __len__(self) -> int:
    return len(self.ids)

  def index_of(self, song_ids) -> np.ndarray:
    """Row of each given song id in this table (-1 where the song has no meta)."""
    song_ids = np.asarray(song_ids, np.int64)
    order = np.argsort(self.ids, kind="stable")
    sorted_ids = self.ids[order]
    if len(sorted_ids) == 0:
      return np.full(len(song_ids), -1, np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, song_ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == song_ids, order[pos], -1).astype(np.int64)

  def issue_year(self) -> np.ndarray:
    """Release year (0 = unknown)."""
    return self.issue_date // 10000

  def issue_month(self) -> np.ndarray:
    """Release month 1..12 (0 = unknown, also for out-of-range months)."""
    m = (self.issue_date // 100) % 100
    return np.where((m >= 1) & (m <= 12) & (self.issue_year() > 0), m, 0)

  def select(self, index) -> "SongMeta":
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    index = index.astype(np.int64)
    g_ptr, g = csr_take(self.genre_indptr, self.genres, index)
    d_ptr, d = csr_take(self.dtl_genre_indptr, self.dtl_genres, index)
    a_ptr, a = csr_take(self.artist_indptr, self.artists, index)
    pick = lambda xs: None if xs is None else [xs[i] for i in index.tolist()]  # noqa: E731
    return SongMeta(self.ids[index], g_ptr, g, d_ptr, d, self.issue_date[index],
                    self.album_id[index], a_ptr, a, pick(self.song_names), pick(self.album_names),
                    pick(self.artist_names), source=self.source, skipped=dict(self.skipped))

  def to_json_records(self) -> list[dict[str, Any]]:
    """The song meta as ``song_meta.json`` records."""
    n = len(self)
    g, gp = self.genres.tolist(), self.genre_indptr.tolist()
    d, dp = self.dtl_genres.tolist(), self.dtl_genre_indptr.tolist()
    a, ap = self.artists.tolist(), self.artist_indptr.tolist()
    ids, albums = self.ids.tolist(), self.album_id.tolist()
    dates = [f"{x:08d}" for x in self.issue_date.tolist()]
    songs = self.song_names or [""] * n
    album_names = self.album_names or [""] * n
    artist_names = self.artist_names or [[] for _ in range(n)]
    return [{"song_gn_dtl_gnr_basket": d[dp[i]:dp[i + 1]], "issue_date": dates[i],
             "album_name": album_names[i], "album_id": albums[i] if albums[i] >= 0 else None,
             "artist_id_basket": a[ap[i]:ap[i + 1]], "song_name": songs[i],
             "song_gn_gnr_basket": g[gp[i]:gp[i + 1]], "artist_name_basket": artist_names[i],
             "id": ids[i]} for i in range(n)]


# ------------------------------------------------------------------------------------------ reading
def _load_json(path: str | os.PathLike) -> Any:
  """Reads and parses one JSON file (gzip detected by magic bytes) with located errors."""
  text = open_text(path)
  if not text.strip():
    raise DataError(f"{path}: the file is empty")
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: bad JSON at line {e.lineno} column {e.colno} (char {e.pos}): "
                    f"{e.msg}") from None
  except RecursionError:
    raise DataError(f"{path}: JSON nested too deeply to be a Melon file") from None


def _record_name(i: int, rec: Any, id_key: str = "id", what: str = "playlist") -> str:
  rid = rec.get(id_key) if isinstance(rec, dict) else None
  return f"record {i}" + (f" ({what} id {rid})" if rid is not None else "")


def _flatten_checked(lists: list[list], want: type, source: str, records: list, key: str,
                     what: str = "playlist") -> np.ndarray:
  """Concatenates per-record lists, checking every element's type at C speed."""
  flat = list(itertools.chain.from_iterable(lists))
  types = set(map(type, flat))
  if types - {want}:
    for i, xs in enumerate(lists):
      for j, x in enumerate(xs):
        if type(x) is not want:  # noqa: E721 (bool is not an int here)
          raise DataError(f"{source}: {_record_name(i, records[i], what=what)}: {key}[{j}] is "
                          f"{x!r} ({type(x).__name__}), expected {want.__name__}")
  if want is int:
    try:
      return np.array(flat, dtype=np.int64)
    except OverflowError:
      raise DataError(f"{source}: {key} holds an id outside the int64 range") from None
  return np.array(flat, dtype=str) if flat else np.zeros(0, "<U1")


def _check_type(value: Any, want: type, source: str, i: int, rec: dict, key: str,
                what: str = "playlist"):
  if type(value) is not want:  # noqa: E721
    raise DataError(f"{source}: {_record_name(i, rec, what=what)}: key {key!r} is {value!r} "
                    f"({type(value).__name__}), expected {want.__name__}")


def playlists_from_records(records: Any, source: str = "<records>") -> Playlists:
  """Validates Melon playlist records (parsed JSON) and converts them to :class:`Playlists`."""
  if not isinstance(records, list):
    raise DataError(f"{source}: the top level must be a JSON array of playlists, got "
                    f"{type(records).__name__}")
  ids, titles, likes, dates, songs, tags = [], [], [], [], [], []
  for i, rec in enumerate(records):
    if type(rec) is not dict:
      raise DataError(f"{source}: record {i} is {type(rec).__name__}, expected an object")
    for key in PLAYLIST_KEYS:
      if key not in rec:
        raise DataError(f"{source}: {_record_name(i, rec)}: missing key {key!r}")
    _check_type(rec["id"], int, source, i, rec, "id")
    _check_type(rec["plylst_title"], str, source, i, rec, "plylst_title")
    _check_type(rec["like_cnt"], int, source, i, rec, "like_cnt")
    _check_type(rec["updt_date"], str, source, i, rec, "updt_date")
    _check_type(rec["songs"], list, source, i, rec, "songs")
    _check_type(rec["tags"], list, source, i, rec, "tags")
    ids.append(rec["id"])
    titles.append(rec["plylst_title"])
    likes.append(rec["like_cnt"])
    dates.append(rec["updt_date"])
    songs.append(rec["songs"])
    tags.append(rec["tags"])
  try:
    id_arr = np.array(ids, dtype=np.int64)
  except OverflowError:
    raise DataError(f"{source}: a playlist id is outside the int64 range") from None
  _check_unique_ids(id_arr, source, "playlist")
  song_arr = _flatten_checked(songs, int, source, records, "songs")
  tag_arr = _flatten_checked(tags, str, source, records, "tags")
  song_ptr = csr_from_lengths(np.fromiter(map(len, songs), np.int64, len(songs)))
  tag_ptr = csr_from_lengths(np.fromiter(map(len, tags), np.int64, len(tags)))
  skipped = {}
  song_ptr, song_arr, dup_s = dedupe_segments(song_ptr, song_arr)
  tag_ptr, tag_arr, dup_t = dedupe_segments(tag_ptr, tag_arr)
  for name, dup, ptr in (("duplicate_songs", dup_s, song_ptr), ("duplicate_tags", dup_t, tag_ptr)):
    if dup.any():
      skipped[name] = int(dup.sum())
      logging.warning("%s: %d %s inside a playlist dropped (each kept once)", source,
                      skipped[name], name.replace("_", " "))
  upd = parse_updt_dates(np.array(dates, dtype=str) if dates else np.zeros(0, "<U1"), source)
  try:
    like_arr = np.array(likes, np.int64)
  except OverflowError:
    raise DataError(f"{source}: a like_cnt is outside the int64 range") from None
  return Playlists(id_arr, titles, like_arr, upd, song_ptr, song_arr, tag_ptr,
                   tag_arr, source=source, skipped=skipped)


def _check_unique_ids(ids: np.ndarray, source: str, what: str):
  if len(ids) < 2:
    return
  order = np.argsort(ids, kind="stable")
  s = ids[order]
  same = np.flatnonzero(s[1:] == s[:-1])
  if len(same):
    k = same[0]
    a, b = sorted((int(order[k]), int(order[k + 1])))
    raise DataError(f"{source}: duplicate {what} id {int(s[k])} in records {a} and {b} "
                    f"({len(same)} duplicate ids in all)")


def read_playlists(path: str | os.PathLike) -> Playlists:
  """Reads ``train.json`` / ``val.json`` / ``test.json`` (gzip detected) as :class:`Playlists`."""
  return playlists_from_records(_load_json(path), source=os.fspath(path))


def song_meta_from_records(records: Any, source: str = "<records>") -> SongMeta:
  """Validates ``song_meta.json`` records and converts them to :class:`SongMeta`."""
  if not isinstance(records, list):
    raise DataError(f"{source}: the top level must be a JSON array of songs, got "
                    f"{type(records).__name__}")
  ids, gen, dtl, dates, albums, artists = [], [], [], [], [], []
  song_names, album_names, artist_names = [], [], []
  n_null_album = 0
  for i, rec in enumerate(records):
    if type(rec) is not dict:
      raise DataError(f"{source}: record {i} is {type(rec).__name__}, expected an object")
    for key in SONG_META_KEYS:
      if key not in rec:
        raise DataError(f"{source}: {_record_name(i, rec, what='song')}: missing key {key!r}")
    _check_type(rec["id"], int, source, i, rec, "id", "song")
    for key in ("song_gn_gnr_basket", "song_gn_dtl_gnr_basket", "artist_id_basket"):
      _check_type(rec[key], list, source, i, rec, key, "song")
    _check_type(rec["issue_date"], str, source, i, rec, "issue_date", "song")
    d = rec["issue_date"]
    if not (d.isascii() and d.isdigit() and len(d) <= 8):
      raise DataError(f"{source}: {_record_name(i, rec, what='song')}: issue_date {d!r} is not a "
                      f"yyyymmdd string")
    album = rec["album_id"]
    if album is None:
      n_null_album += 1
      album = -1
    else:
      _check_type(album, int, source, i, rec, "album_id", "song")
    ids.append(rec["id"])
    gen.append(rec["song_gn_gnr_basket"])
    dtl.append(rec["song_gn_dtl_gnr_basket"])
    dates.append(int(d))
    albums.append(album)
    artists.append(rec["artist_id_basket"])
    song_names.append(rec.get("song_name") or "")
    album_names.append(rec.get("album_name") or "")
    artist_names.append(rec.get("artist_name_basket") or [])
  id_arr = np.array(ids, dtype=np.int64)
  _check_unique_ids(id_arr, source, "song")
  lens = lambda xs: csr_from_lengths(np.fromiter(map(len, xs), np.int64, len(xs)))  # noqa: E731
  g = _flatten_checked(gen, str, source, records, "song_gn_gnr_basket", "song")
  dg = _flatten_checked(dtl, str, source, records, "song_gn_dtl_gnr_basket", "song")
  a = _flatten_checked(artists, int, source, records, "artist_id_basket", "song")
  skipped = {}
  if n_null_album:
    skipped["null_album_id"] = n_null_album
    logging.warning("%s: %d songs with a null album_id (stored as -1)", source, n_null_album)
  return SongMeta(id_arr, lens(gen), g, lens(dtl), dg, np.array(dates, np.int64),
                  np.array(albums, np.int64), lens(artists), a, song_names, album_names,
                  artist_names, source=source, skipped=skipped)


def read_song_meta(path: str | os.PathLike) -> SongMeta:
  """Reads ``song_meta.json`` into :class:`SongMeta`."""
  return song_meta_from_records(_load_json(path), source=os.fspath(path))


def read_genres(path: str | os.PathLike) -> dict[str, str]:
  """Reads ``genre_gn_all.json``: an object genre code -> name."""
  obj = _load_json(path)
  if not isinstance(obj, dict):
    raise DataError(f"{path}: the top level must be a JSON object code -> name, got "
                    f"{type(obj).__name__}")
  for code, name in obj.items():
    if not isinstance(name, str):
      raise DataError(f"{path}: genre {code!r}: name is {name!r}, expected a string")
  return dict(obj)


# ------------------------------------------------------------------------------------------ writing
def _write_json(obj: Any, path: str | os.PathLike, indent: int | None = None) -> None:
  text = json.dumps(obj, ensure_ascii=False, indent=indent)
  data = text.encode("utf-8")
  p = os.fspath(path)
  parent = os.path.dirname(p)
  if parent:
    os.makedirs(parent, exist_ok=True)
  if p.endswith(".gz"):
    data = gzip.compress(data, mtime=0)
  with open(p, "wb") as f:
    f.write(data)


def write_playlists(playlists: Playlists | Iterable[dict], path: str | os.PathLike) -> None:
  """Writes playlists (a :class:`Playlists` or records) as a Melon JSON array (``.gz`` = gzip)."""
  records = playlists.to_json_records() if isinstance(playlists, Playlists) else list(playlists)
  _write_json(records, path)


def write_song_meta(meta: SongMeta | Iterable[dict], path: str | os.PathLike) -> None:
  """Writes ``song_meta.json``."""
  records = meta.to_json_records() if isinstance(meta, SongMeta) else list(meta)
  _write_json(records, path)


def write_genres(genres: dict[str, str], path: str | os.PathLike) -> None:
  """Writes ``genre_gn_all.json`` (pretty-printed like the original)."""
  _write_json(dict(genres), path, indent=4)
