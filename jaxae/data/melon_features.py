"""Sparse feature matrices for the Melon models, from :class:`Playlists` (+ optional song meta).

* :func:`playlist_song_matrix`: playlist x song, binary (the CF autoencoder's input).
* :func:`song_as_user_matrix`: song x (playlists it occurs in + one-hot meta) (the song_as_user AE).
* :func:`song_meta_onehot`: song x one-hot meta (release year, month, genre, frequent tags), the
  content autoencoder's input.
* :func:`song_tag_cooccurrence`: song x tag counts, as (playlist x song)^T @ (playlist x tag).

Column ids are strings with one prefix per block: ``"pl:<playlist id>"``, ``"gn:<GNxx00>"``,
``"dtl:<GNxxyy>"``, ``"year:<yyyy>"``, ``"month:<mm>"``, ``"tag:<tag>"``; :func:`feature_blocks`
recovers the ``[start, stop)`` column range of each block from the ids.

The width of the meta one-hot is determined by the data and the cut-offs, never fixed:
(#distinct ``song_gn_gnr_basket`` codes of the kept songs) + optionally (#distinct detail genre
codes) + (#distinct known release years) + (#distinct known release months, <= 12) +
(#tags used by >= ``min_tag_count`` playlists, at most ``max_tags``). The seed solution's 457
columns came from its own cut-offs on the full data; without song meta only the tag block exists.
Frequency cut-offs are arguments (the config passes them); all counting is vectorized.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp

from jaxae.data.matrix import Interactions
from jaxae.data.readers.melon import Playlists, SongMeta, segment_ids
from jaxae.errors import DataError

BLOCK_PREFIXES = ("pl", "gn", "dtl", "year", "month", "tag")


# ------------------------------------------------------------------------------------------- counts
def song_counts(playlists: Playlists) -> tuple[np.ndarray, np.ndarray]:
  """(sorted distinct song ids, number of playlists each occurs in)."""
  ids = _unique_sorted(playlists.songs)
  return ids, _count_playlists(playlists.song_segments(), _lookup(ids, playlists.songs), len(ids))


def tag_counts(playlists: Playlists) -> tuple[np.ndarray, np.ndarray]:
  """(sorted distinct tags, number of playlists using each)."""
  ids, inv = np.unique(playlists.tags, return_inverse=True)
  return ids, _count_playlists(playlists.tag_segments(), inv.reshape(-1), len(ids))


def _count_playlists(seg: np.ndarray, idx: np.ndarray, n: int) -> np.ndarray:
  """Playlists per value (a value repeated inside one playlist counts once)."""
  if len(idx) == 0:
    return np.zeros(n, np.int64)
  key = np.sort(seg * n + idx)
  first = np.concatenate([[True], key[1:] != key[:-1]])
  return np.bincount(key[first] % n, minlength=n).astype(np.int64)


def frequent_songs(playlists: Playlists, min_song_count: int = 1) -> np.ndarray:
  """Song ids occurring in at least ``min_song_count`` playlists (sorted)."""
  ids, counts = song_counts(playlists)
  return ids[counts >= min_song_count]


def frequent_tags(playlists: Playlists, min_tag_count: int = 1,
                  max_tags: int | None = None) -> np.ndarray:
  """Tags used by at least ``min_tag_count`` playlists; with ``max_tags`` only the most used ones
  (ties broken by the tag string). Returned sorted by the tag string."""
  ids, counts = tag_counts(playlists)
  keep = counts >= min_tag_count
  ids, counts = ids[keep], counts[keep]
  if max_tags is not None and len(ids) > max_tags:
    order = np.lexsort((ids, -counts))[:max_tags]
    ids = np.sort(ids[order])
  return ids


# ------------------------------------------------------------------------------------------ helpers
def _unique_sorted(x: np.ndarray) -> np.ndarray:
  """``np.unique`` by one sort (much faster than numpy's hash path for millions of ints)."""
  if len(x) == 0:
    return x
  s = np.sort(x)
  return s[np.concatenate([[True], s[1:] != s[:-1]])]


def _lookup(vocab: np.ndarray, values: np.ndarray) -> np.ndarray:
  """Index of each value in the sorted unique ``vocab`` (-1 where absent).

  Integer ids in a compact range use a dense table (a gather instead of a binary search per value).
  """
  if len(vocab) == 0 or len(values) == 0:
    return np.full(len(values), -1, np.int64)
  if vocab.dtype.kind in "iu" and values.dtype.kind in "iu":
    lo, hi = int(vocab[0]), int(vocab[-1])
    if hi - lo < 4 * (len(vocab) + len(values)) + 1024:
      table = np.full(hi - lo + 1, -1, np.int64)
      table[vocab - lo] = np.arange(len(vocab))
      inside = (values >= lo) & (values <= hi)
      out = np.full(len(values), -1, np.int64)
      out[inside] = table[values[inside] - lo]
      return out
  pos = np.minimum(np.searchsorted(vocab, values), len(vocab) - 1)
  return np.where(vocab[pos] == values, pos, -1).astype(np.int64)


def _binary_csr(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
  m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)
  m.sum_duplicates()
  m.data[:] = 1.0
  m.sort_indices()
  return m


def _prefixed(prefix: str, values: Sequence) -> np.ndarray:
  vals = np.asarray(values)
  if len(vals) == 0:
    return np.zeros(0, "<U1")
  return np.char.add(f"{prefix}:", vals.astype(str))


def _playlist_song_csr(playlists: Playlists, song_vocab: np.ndarray) -> sp.csr_matrix:
  """Binary playlist x song CSR over a sorted song vocabulary (unknown songs dropped)."""
  idx = _lookup(song_vocab, playlists.songs)
  keep = idx >= 0
  return _binary_csr(playlists.song_segments()[keep], idx[keep], (len(playlists), len(song_vocab)))


def _playlist_tag_csr(playlists: Playlists, tag_vocab: np.ndarray) -> sp.csr_matrix:
  idx = _lookup(tag_vocab, playlists.tags)
  keep = idx >= 0
  return _binary_csr(playlists.tag_segments()[keep], idx[keep], (len(playlists), len(tag_vocab)))


def _keep_top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
  """Keeps the ``k`` largest entries of each row (ties: lower column first), vectorized."""
  m = m.tocsr()
  rows = segment_ids(m.indptr)
  order = np.lexsort((m.indices, -m.data, rows))
  rank = np.empty(len(rows), np.int64)
  rank[order] = np.arange(len(rows)) - m.indptr[rows[order]]
  keep = rank < k
  out = sp.csr_matrix((m.data[keep], (rows[keep], m.indices[keep])), shape=m.shape)
  out.sort_indices()
  return out


def feature_blocks(col_ids: np.ndarray) -> dict[str, tuple[int, int]]:
  """``{prefix: (start, stop)}`` of each contiguous prefix block of the column ids, in order."""
  col_ids = np.asarray(col_ids).astype(str)
  if len(col_ids) == 0:
    return {}
  prefixes = np.asarray([c.split(":", 1)[0] for c in col_ids.tolist()])
  change = np.flatnonzero(prefixes[1:] != prefixes[:-1]) + 1
  starts = np.concatenate([[0], change])
  stops = np.concatenate([change, [len(col_ids)]])
  blocks: dict[str, tuple[int, int]] = {}
  for a, b in zip(starts.tolist(), stops.tolist()):
    name = str(prefixes[a])
    if name in blocks:
      raise DataError(f"column block {name!r} is not contiguous in the column ids")
    blocks[name] = (a, b)
  return blocks


# ----------------------------------------------------------------------------------------- matrices
def playlist_song_matrix(playlists: Playlists, min_song_count: int = 1, *,
                         song_vocab: np.ndarray | None = None,
                         drop_empty_rows: bool = False) -> Interactions:
  """Playlist x song binary matrix (the CF autoencoder's input).

  Args:
    playlists: rows, in order (row ids = playlist ids).
    min_song_count: keep songs occurring in at least this many of ``playlists``.
    song_vocab: fixed column ids instead (e.g. the training songs when encoding questions); songs
      outside it are dropped.
    drop_empty_rows: drop playlists with no kept song.
  """
  if song_vocab is None:
    song_vocab = frequent_songs(playlists, min_song_count)
    cols = song_vocab
  else:
    cols = np.asarray(song_vocab, np.int64)
    song_vocab = np.unique(cols)
    if len(song_vocab) != len(cols):
      raise DataError("song_vocab has duplicate song ids")
  m = _playlist_song_csr(playlists, song_vocab)
  if not np.array_equal(cols, song_vocab):  # Caller's column order.
    m = m[:, np.searchsorted(song_vocab, cols)].tocsr()
    m.sort_indices()
  out = Interactions(m, playlists.ids, cols)
  if drop_empty_rows:
    out = out.select_rows(out.row_lengths() > 0)
  return out


def song_tag_cooccurrence(playlists: Playlists, min_song_count: int = 1,
                          min_tag_count: int = 1) -> Interactions:
  """Song x tag matrix of how many playlists hold both the song and the tag.

  One sparse product (playlist x song)^T @ (playlist x tag); rows = songs in >= ``min_song_count``
  playlists, columns = tags in >= ``min_tag_count`` playlists (both sorted by id).
  """
  songs = frequent_songs(playlists, min_song_count)
  tags = frequent_tags(playlists, min_tag_count)
  ps = _playlist_song_csr(playlists, songs)
  pt = _playlist_tag_csr(playlists, tags)
  c = (ps.T.tocsr() @ pt).tocsr()
  c.eliminate_zeros()
  c.sort_indices()
  return Interactions(c.astype(np.float32), songs, tags)


def song_meta_onehot(song_meta: SongMeta | None, playlists: Playlists, *,
                     song_ids: np.ndarray | None = None, min_song_count: int = 1,
                     min_tag_count: int = 1, max_tags: int | None = None,
                     min_song_tag_count: int = 1, max_tags_per_song: int | None = None,
                     genres: bool = True, detail_genres: bool = False, years: bool = True,
                     months: bool = True, tags: bool = True) -> Interactions:
  """Song x one-hot meta features (the content autoencoder's input).

  Rows: ``song_ids`` if given, else the songs in >= ``min_song_count`` playlists (sorted). Columns,
  in block order: ``gn:`` genre codes of ``song_gn_gnr_basket``, ``dtl:`` detail genres (only with
  ``detail_genres``), ``year:`` release year and ``month:`` release month from ``issue_date``
  (unknown / 00 parts give no column), ``tag:`` the frequent tags (>= ``min_tag_count`` playlists,
  at most ``max_tags``) of the playlists the song occurs in, where the song and tag share >=
  ``min_song_tag_count`` playlists (optionally only the ``max_tags_per_song`` most shared ones).
  Songs without meta (or ``song_meta=None``) get only tag features. Values are 1.
  """
  if song_ids is None:
    song_ids = frequent_songs(playlists, min_song_count)
  song_ids = np.asarray(song_ids, np.int64)
  mats, col_ids = _meta_blocks(song_meta, playlists, song_ids, min_tag_count=min_tag_count,
                               max_tags=max_tags, min_song_tag_count=min_song_tag_count,
                               max_tags_per_song=max_tags_per_song, genres=genres,
                               detail_genres=detail_genres, years=years, months=months, tags=tags)
  m = sp.hstack(mats, format="csr", dtype=np.float32) if mats else sp.csr_matrix(
      (len(song_ids), 0), dtype=np.float32)
  m.sort_indices()
  return Interactions(m, song_ids, np.concatenate(col_ids) if col_ids else np.zeros(0, "<U1"))


def song_as_user_matrix(playlists: Playlists, song_meta: SongMeta | None = None, *,
                        min_song_count: int = 1, min_tag_count: int = 1,
                        max_tags: int | None = None, min_song_tag_count: int = 1,
                        max_tags_per_song: int | None = None, genres: bool = True,
                        detail_genres: bool = False, years: bool = True, months: bool = True,
                        tags: bool = True) -> tuple[Interactions, dict[str, tuple[int, int]]]:
  """The song_as_user matrix: one row per song, its playlists + its one-hot meta as columns.

  Rows: songs occurring in >= ``min_song_count`` playlists (sorted by id). Columns: ``pl:<id>``
  for every playlist holding a kept song (in playlist order), then the meta blocks of
  :func:`song_meta_onehot` (same arguments). Returns the matrix and ``{block: (start, stop)}``.
  """
  song_ids = frequent_songs(playlists, min_song_count)
  ps = _playlist_song_csr(playlists, song_ids)
  used = np.diff(ps.indptr) > 0
  sp_ = ps[used].T.tocsr()
  mats = [sp_]
  col_ids = [_prefixed("pl", playlists.ids[used])]
  meta_mats, meta_ids = _meta_blocks(song_meta, playlists, song_ids, min_tag_count=min_tag_count,
                                     max_tags=max_tags, min_song_tag_count=min_song_tag_count,
                                     max_tags_per_song=max_tags_per_song, genres=genres,
                                     detail_genres=detail_genres, years=years, months=months,
                                     tags=tags)
  mats += meta_mats
  col_ids += meta_ids
  m = sp.hstack(mats, format="csr", dtype=np.float32)
  m.sort_indices()
  cols = np.concatenate(col_ids)
  return Interactions(m, song_ids, cols), feature_blocks(cols)


def _meta_blocks(song_meta: SongMeta | None, playlists: Playlists, song_ids: np.ndarray, *,
                 min_tag_count: int, max_tags: int | None, min_song_tag_count: int,
                 max_tags_per_song: int | None, genres: bool, detail_genres: bool, years: bool,
                 months: bool, tags: bool) -> tuple[list[sp.csr_matrix], list[np.ndarray]]:
  """The one-hot meta blocks (non-empty ones only) for rows ``song_ids``."""
  n = len(song_ids)
  mats: list[sp.csr_matrix] = []
  ids: list[np.ndarray] = []

  def add(prefix: str, rows: np.ndarray, values: np.ndarray):
    if len(values) == 0:
      return
    vocab, inv = np.unique(values, return_inverse=True)
    mats.append(_binary_csr(rows, inv.reshape(-1), (n, len(vocab))))
    ids.append(_prefixed(prefix, vocab))

  if song_meta is not None and (genres or detail_genres or years or months):
    meta_row = song_meta.index_of(song_ids)
    have = np.flatnonzero(meta_row >= 0)
    sub = song_meta.select(meta_row[have])
    if genres:
      add("gn", have[segment_ids(sub.genre_indptr)], sub.genres)
    if detail_genres:
      add("dtl", have[segment_ids(sub.dtl_genre_indptr)], sub.dtl_genres)
    if years:
      y = sub.issue_year()
      ok = y > 0
      add("year", have[ok], np.char.zfill(y[ok].astype(str), 4) if ok.any() else y[ok])
    if months:
      mo = sub.issue_month()
      ok = mo > 0
      add("month", have[ok], np.char.zfill(mo[ok].astype(str), 2) if ok.any() else mo[ok])
  if tags:
    tag_vocab = frequent_tags(playlists, min_tag_count, max_tags)
    if len(tag_vocab):
      ps = _playlist_song_csr(playlists, np.sort(song_ids))
      if not np.array_equal(np.sort(song_ids), song_ids):
        ps = ps[:, np.searchsorted(np.sort(song_ids), song_ids)].tocsr()
      pt = _playlist_tag_csr(playlists, tag_vocab)
      co = (ps.T.tocsr() @ pt).tocsr()
      co.data[co.data < min_song_tag_count] = 0
      co.eliminate_zeros()
      if max_tags_per_song is not None:
        co = _keep_top_per_row(co, max_tags_per_song)
      used = np.flatnonzero(np.bincount(co.indices, minlength=len(tag_vocab)) > 0)
      if len(used):
        co = co[:, used].tocsr()
        co.data[:] = 1.0
        co.sort_indices()
        mats.append(co.astype(np.float32))
        ids.append(_prefixed("tag", tag_vocab[used]))
  return mats, ids
