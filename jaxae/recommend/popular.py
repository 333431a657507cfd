"""Kakao Arena's popularity baselines for Melon questions, and the ranking helpers they share.

`most_popular` is the reference ``most_popular.py``: the 200 most frequent training songs and the
100 most frequent training tags, minus the question's own songs / tags, first 100 / 10.
`genre_most_popular` is the reference ``genre_most_popular.py``: the songs of the question's most
frequent genre ranked by their training count (the 200 best per genre), minus the question's
songs, first 100; tags as in `most_popular`.

Exactness notes (what the reference code does, reproduced here):
  * "Most frequent" is ``collections.Counter.most_common``: count descending, ties in the order the
    items were first met (training playlists in file order, each playlist's list in order).
  * The genre of a question is ``Counter.most_common(1)`` over the ``song_gn_gnr_basket`` genres of
    its songs in order: the most frequent genre, ties to the genre met first. A genre's songs are
    ranked by training count, ties in song-meta order, songs never played included (count 0).
Deviations, each only where the reference would hand in an invalid answer (fewer than 100 songs /
10 tags, which its own evaluator rejects): when the 200-song (100-tag) pool minus the question's
items is too short, the ranking continues down the full popularity list; when a genre list is too
short, it is filled with the most popular songs not yet chosen. Both are counted in ``report``.
Question songs unknown to song meta raise ``KeyError`` in the reference; here they add no genre
(counted).

Everything is vectorized over questions (numpy / scipy), no Python loop per question or per song;
the helpers (`playlist_arrays`, `Vocab`, `first_unseen`, `top_per_row`, `merge_fill`, `fill_up`,
`to_records`) are shared with `jaxae.recommend.song_as_user`.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, NamedTuple

import numpy as np
import scipy.sparse as sp

from jaxae import checks
from jaxae.errors import DataError, JaxaeError

N_SONGS = 100          # songs per answer (the competition's fixed answer size)
N_TAGS = 10            # tags per answer
SONG_POOL = 200        # most_popular.py: most_popular(train, "songs", 200)
TAG_POOL = 100         # most_popular.py: most_popular(train, "tags", 100)
GENRE_POOL = 200       # genre_most_popular.py: most_common(200) per genre


# --------------------------------------------------------------------------------------- inputs
class PlaylistArrays(NamedTuple):
  """Playlists in array form (the fields `jaxae.data.readers.melon.Playlists` has).

  ``songs[song_indptr[i]:song_indptr[i+1]]`` are playlist ``i``'s raw song ids, likewise tags.
  """

  ids: np.ndarray            # int64 [P]
  titles: list               # str [P]
  song_indptr: np.ndarray    # int64 [P+1]
  songs: np.ndarray          # int64 [nnz]
  tag_indptr: np.ndarray     # int64 [P+1]
  tags: np.ndarray           # str [nnz]

  def __len__(self) -> int:
    return len(self.ids)


def playlist_arrays(playlists: Any, what: str = "playlists") -> PlaylistArrays:
  """Array view of a ``Playlists`` object (anything with its array fields) or of JSON records.

  Records are dicts with ``id``, ``songs``, ``tags`` (``plylst_title`` optional, "" when absent), as
  in the Kakao files and in results files. Raises DataError naming the record and the problem.
  """
  if hasattr(playlists, "song_indptr") and hasattr(playlists, "tag_indptr"):
    titles = getattr(playlists, "titles", None)
    n = len(playlists.ids)
    return PlaylistArrays(
        np.asarray(playlists.ids, np.int64), list(titles) if titles is not None else [""] * n,
        np.asarray(playlists.song_indptr, np.int64), np.asarray(playlists.songs, np.int64),
        np.asarray(playlists.tag_indptr, np.int64), np.asarray(playlists.tags).astype(str))
  if not isinstance(playlists, (list, tuple)):
    raise DataError(f"{what}: expected Playlists or a list of playlist records, got "
                    f"{type(playlists).__name__}")
  return _records_to_arrays(playlists, what)


def _records_to_arrays(records, what: str) -> PlaylistArrays:
  ids, song_lists, tag_lists, titles = [], [], [], []
  for i, r in enumerate(records):
    if not isinstance(r, dict):
      raise DataError(f"{what} record {i}: expected a JSON object, got {type(r).__name__}")
    for key in ("id", "songs", "tags"):
      if key not in r:
        raise DataError(f"{what} record {i} (playlist id {r.get('id', '?')}): missing key {key!r}")
    pid = r["id"]
    if not isinstance(pid, (int, np.integer)) or isinstance(pid, bool) or not (
        _INT64_MIN <= pid <= _INT64_MAX):
      raise DataError(f"{what} record {i}: playlist id must be an integer, got {pid!r}")
    for key in ("songs", "tags"):
      if not isinstance(r[key], (list, tuple, np.ndarray)):
        raise DataError(f"{what} record {i} (playlist id {pid}): {key!r} must be a list, got "
                        f"{type(r[key]).__name__}")
    ids.append(int(pid))
    song_lists.append(r["songs"])
    tag_lists.append(r["tags"])
    titles.append(str(r.get("plylst_title", "")))
  song_indptr = _indptr(song_lists)
  tag_indptr = _indptr(tag_lists)
  flat = list(itertools.chain.from_iterable(song_lists))
  is_id = lambda x: (isinstance(x, (int, np.integer)) and not isinstance(x, bool)  # noqa: E731
                     and _INT64_MIN <= x <= _INT64_MAX)
  # Element types checked at C speed (bool, float, None, nested lists are not song ids).
  if any(t is bool or not issubclass(t, (int, np.integer)) for t in set(map(type, flat))) or (
      flat and not _INT64_MIN <= min(flat) <= max(flat) <= _INT64_MAX):
    bad = _first_bad(song_lists, is_id)
    raise DataError(f"{what} record {bad[0]} (playlist id {ids[bad[0]]}): songs must be integer "
                    f"ids, got {bad[1]!r}")
  songs = np.array(flat, np.int64) if flat else np.zeros(0, np.int64)
  tags = list(itertools.chain.from_iterable(tag_lists))
  if not all(isinstance(t, str) for t in tags):
    bad = _first_bad(tag_lists, lambda x: isinstance(x, str))
    raise DataError(f"{what} record {bad[0]} (playlist id {ids[bad[0]]}): tags must be strings, "
                    f"got {bad[1]!r}")
  return PlaylistArrays(np.asarray(ids, np.int64), titles, song_indptr, songs.astype(np.int64),
                        tag_indptr, np.asarray(tags, dtype=str) if tags else np.zeros(0, "<U1"))


def _indptr(lists) -> np.ndarray:
  indptr = np.zeros(len(lists) + 1, np.int64)
  np.cumsum(np.fromiter((len(x) for x in lists), np.int64, count=len(lists)), out=indptr[1:])
  return indptr


_INT64_MIN, _INT64_MAX = -2**63, 2**63 - 1


def _first_bad(lists, ok) -> tuple[int, Any]:
  for i, items in enumerate(lists):
    for x in items:
      if not ok(x):
        return i, x
  raise AssertionError("no bad element found")  # pragma: no cover


def row_of_entries(indptr: np.ndarray) -> np.ndarray:
  """The row index of every entry of a CSR-like ``indptr``."""
  return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))


# --------------------------------------------------------------------------------------- vocab
class Vocab:
  """Raw items (song ids or tag strings) seen in training <-> codes 0..n-1, with popularity.

  ``ranking`` lists the codes of every training item by ``Counter.most_common`` order: count
  descending, ties to the item met first in ``items`` (file order). ``rank[code]`` is its position.
  """

  def __init__(self, items: np.ndarray):
    self.items, first, inverse, counts = np.unique(items, return_index=True, return_inverse=True,
                                                   return_counts=True)
    self.counts = counts.astype(np.int64)
    self.ranking = np.lexsort((first, -self.counts)).astype(np.int64)
    self.rank = np.empty(len(self.items), np.int64)
    self.rank[self.ranking] = np.arange(len(self.items))
    self.codes_of_items = inverse.reshape(-1).astype(np.int64)

  def __len__(self) -> int:
    return len(self.items)

  def encode(self, raw: np.ndarray) -> np.ndarray:
    """Codes of ``raw`` items; -1 for items never seen in training."""
    raw = np.asarray(raw)
    if not len(self.items) or not raw.size:
      return np.full(raw.shape, -1, np.int64)
    idx = np.clip(np.searchsorted(self.items, raw), 0, len(self.items) - 1)
    return np.where(self.items[idx] == raw, idx, -1).astype(np.int64)


def code_matrix(indptr: np.ndarray, codes: np.ndarray, n_cols: int) -> sp.csr_matrix:
  """Binary CSR [rows, n_cols] of the coded entries (code -1 entries dropped, repeats merged)."""
  rows = row_of_entries(indptr)
  keep = codes >= 0
  m = sp.csr_matrix((np.ones(int(keep.sum()), np.float32), (rows[keep], codes[keep])),
                    shape=(len(indptr) - 1, n_cols))
  m.sum_duplicates()
  m.data[:] = 1.0
  return m


# ------------------------------------------------------------------------------------- ranking
def first_unseen(ranking: np.ndarray, exclude: sp.csr_matrix, k: int, pool: int,
                 what: str = "songs", need: np.ndarray | None = None) -> np.ndarray:
  """For each row, the first ``k`` codes of ``ranking`` not in that row of ``exclude``.

  Looks at the first ``pool`` codes of the ranking (the reference's 200 songs / 100 tags); rows with
  too few left there look further down the ranking (pool doubled until it suffices).

  Args:
    ranking: [V'] codes, best first (no repeats).
    exclude: binary CSR [Q, V] of codes to skip per row.
    k: codes per row (the output width).
    pool: how much of the ranking the reference code considers.
    what: noun for the error message.
    need: optional [Q] codes each row really needs (<= k); later slots of a row are -1.

  Returns:
    [Q, k] int64 codes. Raises JaxaeError when some row cannot get what it needs at all.
  """
  n_q = exclude.shape[0]
  need = np.full(n_q, k, np.int64) if need is None else np.asarray(need, np.int64)
  out = np.full((n_q, k), -1, np.int64)
  todo = np.flatnonzero(need > 0)
  pool = min(max(pool, k), len(ranking))
  pos = np.full(exclude.shape[1], -1, np.int64)
  while len(todo):
    pos[:] = -1
    pos[ranking[:pool]] = np.arange(pool)
    sub = exclude[todo]
    rows = row_of_entries(sub.indptr)
    p = pos[sub.indices]
    keep = p >= 0
    mask = np.zeros((len(todo), pool), bool)
    mask[rows[keep], p[keep]] = True
    ok = (pool - mask.sum(axis=1)) >= need[todo]
    order = np.argsort(mask[ok], axis=1, kind="stable")[:, :k]
    got = np.full((int(ok.sum()), k), -1, np.int64)
    got[:, :order.shape[1]] = ranking[:pool][order]
    out[todo[ok]] = np.where(np.arange(k)[None, :] < need[todo[ok]][:, None], got, -1)
    todo = todo[~ok]
    if len(todo):
      if pool >= len(ranking):
        raise JaxaeError(f"cannot recommend {need[todo[0]]} more {what} to a question: the "
                         f"training data has only {len(ranking)} distinct {what} and that "
                         f"question already holds or was given {exclude[todo[0]].nnz} of them")
      pool = min(2 * pool, len(ranking))
  return out


_BUCKETS = 1024   # per row: the coarse value buckets of real scores before the top-k sort


def _may_place(rows: np.ndarray, v: np.ndarray, n_q: int, k: int, top: int) -> np.ndarray:
  """Which entries (integer values ``0 <= v <= top`` of CSR-ordered ``rows``) are at least their
  row's ``k``-th largest value (a row with fewer than ``k`` keeps all): every row's top ``k``,
  ties included, from one [rows, values] histogram."""
  hist = np.bincount(rows * (top + 1) + v, minlength=n_q * (top + 1)).reshape(n_q, top + 1)
  at_least = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]     # [row, x]: entries >= x
  kth = np.maximum((at_least >= k).sum(axis=1) - 1, 0)
  return v >= kth[rows]


def top_per_row(scores: sp.csr_matrix, k: int, tie_rank: np.ndarray,
                return_scores: bool = False) -> tuple[np.ndarray, ...]:
  """The ``k`` best stored codes of every row of a sparse score matrix.

  Order: score descending, ties to the smaller ``tie_rank[code]`` (more popular first), then to the
  stored order. Only stored (nonzero) entries count. Where the rows hold many more entries than
  ``k``, only those at least their row's ``k``-th score are sorted (`_may_place`, one histogram
  pass; for real scores >= 0 first over coarse buckets of their float32 bits, which keep every
  entry that can place before the exact ranks are taken); the order is the same.

  Returns:
    ``(codes [Q, k] int64 padded with -1, n [Q] how many are real)``, and with ``return_scores``
    their scores [Q, k] as a third (-inf where padded).
  """
  scores = scores.tocsr()
  scores.eliminate_zeros()
  n_q = scores.shape[0]
  rows = row_of_entries(scores.indptr)
  cols = scores.indices.astype(np.int64)
  data = values = scores.data
  n_v = len(tie_rank)
  indptr = scores.indptr
  many = data.size > 4 * k * n_q and n_q * _BUCKETS <= max(2 * data.size, 1 << 16)

  def keep_only(keep):
    nonlocal rows, cols, data, values, indptr
    rows, cols, data, values = rows[keep], cols[keep], data[keep], values[keep]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_q))])

  if data.size and not (np.array_equal(data, np.round(data)) and data.min() >= 0):
    # Other than counts (weighted votes). Non-negative ones: their float32 bit patterns (monotone
    # in the value) in _BUCKETS coarse buckets keep every row's top k and ties (`_may_place`)
    # before any sort.
    if many and data.min() >= 0:
      bits = data.astype(np.float32).view(np.int32).astype(np.int64)
      bits -= bits.min()
      bits >>= max(int(bits.max()).bit_length() - _BUCKETS.bit_length() + 1, 0)
      keep_only(_may_place(rows, bits, n_q, k, int(bits.max())))
    # Their dense ranks order the entries exactly as the scores do, ties included, and are
    # integers >= 0.
    data = np.unique(data, return_inverse=True)[1].reshape(-1)
  top = float(data.max(initial=0))
  if data.size > 4 * k * n_q and n_q * (top + 1) <= max(2 * data.size, 1 << 16):
    # Many more entries than k per row, and a histogram no larger than the entries.
    keep_only(_may_place(rows, data.astype(np.int64), n_q, k, int(top)))
  if data.size and (n_q + 1) * (top + 1) * n_v < 2**62:
    # One int64 key (row, -score, rank) sorts several times faster than a lexsort of the three.
    key = (rows * int(top + 1) + (int(top) - data.astype(np.int64))) * n_v + tie_rank[cols]
    # Distinct ranks (a permutation, as every caller passes) make every key distinct, so the
    # faster unstable sort gives the one order; else the stable sort keeps the stored order.
    distinct = np.bincount(tie_rank, minlength=n_v).max(initial=0) <= 1
    order = np.argsort(key, kind=None if distinct else "stable")
  else:
    order = np.lexsort((tie_rank[cols], -data, rows))
  rank_in_row = np.arange(len(order)) - indptr[rows]   # rows stay grouped as in the CSR
  keep = rank_in_row < k
  out = np.full((n_q, k), -1, np.int64)
  out[rows[keep], rank_in_row[keep]] = cols[order][keep]
  n = np.minimum(np.diff(indptr), k)
  if not return_scores:
    return out, n
  top_scores = np.full((n_q, k), -np.inf, values.dtype)
  top_scores[rows[keep], rank_in_row[keep]] = values[order][keep]
  return out, n, top_scores


def top_unseen_per_row(scores: sp.csr_matrix, seen: sp.csr_matrix, k: int,
                       tie_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """`top_per_row` of ``scores`` with each row's ``seen`` codes (nonzeros of the same shape) left
  out: the best ``k + m`` are ranked (``m``: the most seen codes of a row), then the seen dropped,
  which gives the same codes as ranking the scores without them, without a masked copy of all."""
  seen = seen.tocsr()
  m = int(np.diff(seen.indptr).max(initial=0))
  codes, n = top_per_row(scores, k + m, tie_rank)
  if m:
    n_q, width = codes.shape
    n_cols = scores.shape[1]
    rows = np.repeat(np.arange(n_q, dtype=np.int64), width)
    is_seen = np.isin(rows * n_cols + codes.reshape(-1),
                      row_of_entries(seen.indptr) * n_cols + seen.indices)
    is_seen = is_seen.reshape(n_q, width) & (codes >= 0)
    codes = np.take_along_axis(codes, np.argsort(is_seen, axis=1, kind="stable"), 1)
    n = n - is_seen.sum(axis=1)
    codes = np.where(np.arange(width)[None, :] < n[:, None], codes, -1)
  return codes[:, :k], np.minimum(n, k)


def top_per_row_chunked(scores_of: Callable[[np.ndarray], sp.csr_matrix], rows: np.ndarray,
                        k: int, tie_rank: np.ndarray, chunk: int,
                        seen: sp.csr_matrix | None = None) -> tuple[np.ndarray, np.ndarray]:
  """`top_per_row` of ``scores_of(rows[s:s + chunk])`` over ``rows`` in chunks, which bounds the
  sparse score blocks (with ``seen`` [all rows, codes]: `top_unseen_per_row`, ``seen[rows]``
  left out): ``(codes [len(rows), k] padded with -1, n [len(rows)])``."""
  codes, n = np.full((len(rows), k), -1, np.int64), np.zeros(len(rows), np.int64)
  for s in range(0, len(rows), chunk):
    r = rows[s:s + chunk]
    codes[s:s + chunk], n[s:s + chunk] = (
        top_per_row(scores_of(r), k, tie_rank) if seen is None
        else top_unseen_per_row(scores_of(r), seen[r], k, tie_rank))
  return codes, n


def merge_fill(chosen: np.ndarray, n_chosen: np.ndarray, fill: np.ndarray) -> np.ndarray:
  """Row-wise ``chosen[:n] + fill[:k-n]`` for [Q, k] arrays (fill must not repeat chosen codes)."""
  k = chosen.shape[1]
  j = np.arange(k)[None, :]
  n = n_chosen[:, None]
  from_fill = np.take_along_axis(fill, np.clip(j - n, 0, k - 1), axis=1)
  return np.where(j < n, chosen, from_fill)


def fill_up(chosen: np.ndarray, n_chosen: np.ndarray, seen: sp.csr_matrix, vocab: Vocab, k: int,
            pool: int, what: str) -> np.ndarray:
  """Completes each row's ``chosen[:n]`` to ``k`` codes with the most popular new codes."""
  n_q = chosen.shape[0]
  rows = np.repeat(np.arange(n_q), n_chosen)
  picked = chosen[np.arange(k)[None, :] < n_chosen[:, None]]
  taken = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, picked)), shape=seen.shape)
  exclude = (seen + taken).tocsr()
  fill = first_unseen(vocab.ranking, exclude, k, pool, what, need=k - n_chosen)
  return merge_fill(chosen, n_chosen, fill)


def to_records(ids: np.ndarray, songs: np.ndarray, tags: np.ndarray) -> list[dict]:
  """Results records ``[{"id": int, "songs": [int] * 100, "tags": [str] * 10}]`` (JSON-ready)."""
  return [{"id": i, "songs": s, "tags": t}
          for i, s, t in zip(np.asarray(ids).tolist(), np.asarray(songs).tolist(),
                             np.asarray(tags).tolist())]


def _check_sizes(n_songs: int, n_tags: int, song_pool: int, tag_pool: int, **more: int):
  checks.recommender_ints([("n_songs", n_songs, 1), ("n_tags", n_tags, 1),
                           ("song_pool", song_pool, 1), ("tag_pool", tag_pool, 1)]
                          + [(name, v, 1) for name, v in more.items()])


class _Prepared(NamedTuple):
  train: PlaylistArrays
  questions: PlaylistArrays
  songs: Vocab
  tags: Vocab
  seen_songs: sp.csr_matrix     # [Q, |songs|] the question's own songs
  seen_tags: sp.csr_matrix      # [Q, |tags|]


def prepare(train: Any, questions: Any) -> _Prepared:
  """Array views, training vocabularies with popularity, and the questions' own items as codes."""
  t = playlist_arrays(train, "train playlists")
  q = playlist_arrays(questions, "questions")
  if not len(t):
    raise DataError("train playlists: no playlists to learn popularity from")
  songs, tags = Vocab(t.songs), Vocab(t.tags)
  return _Prepared(t, q, songs, tags,
                   code_matrix(q.song_indptr, songs.encode(q.songs), len(songs)),
                   code_matrix(q.tag_indptr, tags.encode(q.tags), len(tags)))


def _pool_shortfall(seen: sp.csr_matrix, vocab: Vocab, k: int, pool: int) -> int:
  """Rows whose reference pool (first ``pool`` of the ranking) has fewer than ``k`` unseen items."""
  in_pool = np.zeros(len(vocab), np.float32)
  in_pool[vocab.ranking[:pool]] = 1.0
  return int(((min(pool, len(vocab)) - seen @ in_pool) < k).sum())


# ----------------------------------------------------------------------------------- baselines
def most_popular(train: Any, questions: Any, *, n_songs: int = N_SONGS, n_tags: int = N_TAGS,
                 song_pool: int = SONG_POOL, tag_pool: int = TAG_POOL,
                 report: dict | None = None) -> list[dict]:
  """Kakao's ``most_popular.py``: the most frequent training songs / tags the question lacks.

  Args:
    train: training ``Playlists`` (or records): popularity is counted there.
    questions: question ``Playlists`` (or records): their own songs / tags are excluded.
    n_songs, n_tags: answer sizes (100 / 10 in the competition).
    song_pool, tag_pool: how many popular items the reference considers (200 / 100); rows needing
      more look further down (counted as ``song_pool_extended`` / ``tag_pool_extended``).
    report: optional dict that receives counts (questions, pool extensions).

  Returns:
    results records ``[{"id", "songs", "tags"}]`` in question order.
  """
  _check_sizes(n_songs, n_tags, song_pool, tag_pool)
  p = prepare(train, questions)
  songs = first_unseen(p.songs.ranking, p.seen_songs, n_songs, song_pool, "songs")
  tags = first_unseen(p.tags.ranking, p.seen_tags, n_tags, tag_pool, "tags")
  if report is not None:
    report.update(questions=len(p.questions),
                  song_pool_extended=_pool_shortfall(p.seen_songs, p.songs, n_songs, song_pool),
                  tag_pool_extended=_pool_shortfall(p.seen_tags, p.tags, n_tags, tag_pool))
  return to_records(p.questions.ids, p.songs.items[songs], p.tags.items[tags])


def _genre_baskets(song_meta: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(song ids [S], genre indptr [S+1], genre codes as str) of ``song_gn_gnr_basket``."""
  for name in ("ids", "genre_indptr", "genres"):
    if not hasattr(song_meta, name):
      raise DataError(f"song meta has no {name!r} array (expected a "
                      f"jaxae.data.readers.melon.SongMeta)")
  return (np.asarray(song_meta.ids, np.int64), np.asarray(song_meta.genre_indptr, np.int64),
          np.asarray(song_meta.genres).astype(str))


def genre_most_popular(train: Any, questions: Any, *, song_meta: Any = None,
                       n_songs: int = N_SONGS, n_tags: int = N_TAGS, song_pool: int = SONG_POOL,
                       tag_pool: int = TAG_POOL, genre_pool: int = GENRE_POOL,
                       report: dict | None = None) -> list[dict]:
  """Kakao's ``genre_most_popular.py``: popular songs of the question's most frequent genre.

  Without ``song_meta`` (the real sample has none) every question falls back to `most_popular`
  (counted as ``genre_fallback_no_meta``). Questions whose songs have no known genre use the global
  most-popular list, as the reference does. Tags are `most_popular`'s.

  Args:
    song_meta: ``SongMeta`` (``ids`` + ``song_gn_gnr_basket`` as ``genre_indptr`` / ``genres``).
    genre_pool: songs kept per genre (the reference's ``most_common(200)``).
    Others: as in `most_popular`.
  """
  _check_sizes(n_songs, n_tags, song_pool, tag_pool, genre_pool=genre_pool)
  if song_meta is None:
    out = most_popular(train, questions, n_songs=n_songs, n_tags=n_tags, song_pool=song_pool,
                       tag_pool=tag_pool, report=report)
    if report is not None:
      report["genre_fallback_no_meta"] = report["questions"]
    return out
  p = prepare(train, questions)
  q = p.questions
  n_q = len(q)
  meta_ids, g_indptr, g_codes = _genre_baskets(song_meta)
  genres, g_code = np.unique(g_codes, return_inverse=True)
  g_code = g_code.reshape(-1).astype(np.int64)
  n_g, n_meta = len(genres), len(meta_ids)

  # Per genre: its songs (meta order) ranked by training count, the best `genre_pool` (meta rows).
  pair = np.unique(g_code * max(n_meta, 1) + row_of_entries(g_indptr))   # a basket repeat once
  e_genre, e_song = pair // max(n_meta, 1), pair % max(n_meta, 1)
  song_code = p.songs.encode(meta_ids)                   # -1: never in training (count 0)
  count = np.where(song_code >= 0, p.songs.counts[np.maximum(song_code, 0)], 0)
  order = np.lexsort((e_song, -count[e_song], e_genre))
  e_song, e_genre = e_song[order], e_genre[order]
  rank = np.arange(len(e_genre)) - np.searchsorted(e_genre, np.arange(n_g))[e_genre]
  keep = rank < genre_pool
  genre_top = np.full((max(n_g, 1), genre_pool), -1, np.int64)
  genre_top[e_genre[keep], rank[keep]] = e_song[keep]

  # Per question: the most frequent genre over its songs' baskets, ties to the genre met first.
  q_row = row_of_entries(q.song_indptr)
  meta_order = np.argsort(meta_ids, kind="stable")
  pos = np.clip(np.searchsorted(meta_ids[meta_order], q.songs), 0, max(n_meta - 1, 0))
  known = (meta_ids[meta_order][pos] == q.songs) if n_meta else np.zeros(len(q.songs), bool)
  q_meta = meta_order[pos] if n_meta else np.zeros(len(q.songs), np.int64)
  n_basket = np.where(known, np.diff(g_indptr)[q_meta] if n_meta else 0, 0)
  e_src = np.repeat(np.arange(len(q.songs)), n_basket)  # question-song entry of each (song, genre)
  offs = np.arange(len(e_src)) - np.repeat(np.cumsum(n_basket) - n_basket, n_basket)
  e_q = q_row[e_src]
  e_g = g_code[g_indptr[q_meta[e_src]] + offs]
  top_genre = np.full(n_q, -1, np.int64)
  if len(e_q):
    uniq, first, cnt = np.unique(e_q * n_g + e_g, return_index=True, return_counts=True)
    uq = uniq // n_g
    best = np.lexsort((first, -cnt, uq))                # per question: max count, then met first
    lead = np.ones(len(best), bool)
    lead[1:] = uq[best][1:] != uq[best][:-1]
    top_genre[uq[best][lead]] = (uniq % n_g)[best][lead]
  has_genre = top_genre >= 0

  # The genre list minus the question's own songs, first n_songs (raw ids: never-played songs of the
  # genre can be recommended, as in the reference).
  cand_meta = np.where(has_genre[:, None], genre_top[np.maximum(top_genre, 0)], -1)
  cand_ids = np.where(cand_meta >= 0, meta_ids[np.maximum(cand_meta, 0)] if n_meta else -1, -1)
  span = int(max(cand_ids.max(initial=0), q.songs.max(initial=0))) + 1
  cand_ok = (cand_meta >= 0) & ~np.isin(np.arange(n_q)[:, None] * span + np.maximum(cand_ids, 0),
                                        q_row * span + q.songs)
  n_from_genre = np.minimum(cand_ok.sum(axis=1), n_songs)
  order = np.argsort(~cand_ok, axis=1, kind="stable")[:, :n_songs]
  chosen = np.full((n_q, n_songs), -1, np.int64)
  chosen[:, :order.shape[1]] = np.take_along_axis(cand_ids, order, axis=1)
  chosen = np.where(np.arange(n_songs)[None, :] < n_from_genre[:, None], chosen, -1)

  # Fill up (questions without a genre get the whole list here: the reference's global song_mp).
  songs = _fill_raw(chosen, n_from_genre, p, n_songs, song_pool)
  tags = first_unseen(p.tags.ranking, p.seen_tags, n_tags, tag_pool, "tags")
  if report is not None:
    report.update(
        questions=n_q, genre_questions=int(has_genre.sum()),
        genre_short_filled=int((has_genre & (n_from_genre < n_songs)).sum()),
        question_songs_without_meta=int((~known).sum()),
        tag_pool_extended=_pool_shortfall(p.seen_tags, p.tags, n_tags, tag_pool))
  return to_records(q.ids, songs, p.tags.items[tags])


def _fill_raw(chosen_ids: np.ndarray, n_chosen: np.ndarray, p: _Prepared, k: int,
              pool: int) -> np.ndarray:
  """Completes raw-id rows ``chosen_ids[:n]`` with popular training songs not seen nor chosen."""
  n_q = chosen_ids.shape[0]
  real = np.arange(k)[None, :] < n_chosen[:, None]
  codes = p.songs.encode(chosen_ids[real])
  rows = np.repeat(np.arange(n_q), n_chosen)
  known = codes >= 0
  taken = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (rows[known], codes[known])),
                        shape=p.seen_songs.shape)
  fill_codes = first_unseen(p.songs.ranking, (p.seen_songs + taken).tocsr(), k, pool, "songs",
                            need=k - n_chosen)
  return merge_fill(chosen_ids, n_chosen, p.songs.items[fill_codes])
