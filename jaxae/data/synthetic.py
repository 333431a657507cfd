"""Synthetic Melon data: the embedded default dataset, so the Melon job runs with nothing on disk.

:func:`synthesize_melon` draws a whole Melon world in memory (vectorized numpy, seeded):

* a genre table shaped like ``genre_gn_all.json``: 30 top-level codes ``GN0100``..``GN3000`` and
  detail codes ``GNxx01``.. (``GNxx01`` = "all of xx"), 254 codes in all;
* artists (each with a main genre, a debut year and a popularity), albums (an artist, an issue
  date ``yyyymmdd`` with some ``00`` months / days and some ``00000000``) and songs (an album, its
  artist and date, 1-2 top-level genres, detail genres, power-law popularity);
* latent taste clusters: each is a sparse mix over (genre, era) buckets, a handful of favourite
  artists and its own tags. A playlist draws 1-2 clusters; each song entry comes from a favourite
  artist, a (genre, era) bucket or the global charts, always by power-law popularity. Tags come
  mostly from the cluster's tags; titles are made of tag words; ``like_cnt`` is log-normal and
  ``updt_date`` is after the newest song's issue date.

The playlists are split like the competition (train 77.3%, val 15.5%, test 7.2%: the real
115,071 / 23,015 / 10,740), and val / test become question files with
:func:`jaxae.data.kakao_split.make_questions` (titles blanked on song questions, as in the released
files). :func:`generate_melon` also writes ``train.json``, ``val.json``, ``test.json``,
``song_meta.json``, ``genre_gn_all.json`` plus ``val_answers.json``, ``test_answers.json``,
``val_question_types.json``, ``test_question_types.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np

from jaxae.data import kakao_split
from jaxae.data.readers.melon import (Playlists, SongMeta, csr_from_lengths, csr_take,
                                      dedupe_segments, segment_ids, write_genres, write_playlists,
                                      write_song_meta)
from jaxae.errors import ConfigError

N_TOP_GENRES = 30
N_GENRE_CODES = 254
# Release eras (bucket boundaries on the issue year): <1990, 1990s, 2000s, 2010-14, 2015-17, 2018+.
ERA_EDGES = np.array([1990, 2000, 2010, 2015, 2018])
N_ERAS = len(ERA_EDGES) + 1
# The real train / val / test sizes; their ratios split every synthetic size.
REAL_SPLIT = (115_071, 23_015, 10_740)
# Where a playlist's song entries come from: its clusters' favourite artists, its clusters'
# (genre, era) buckets, the global charts.
SOURCE_P = (0.6, 0.35, 0.05)
END_DATE = np.datetime64("2020-04-23T23:59:59", "s")
START_DATE = np.datetime64("2005-01-01T00:00:00", "s")

_TOP_GENRE_NAMES = (
    "발라드", "댄스", "랩/힙합", "R&B/Soul", "인디음악", "록/메탈", "성인가요", "포크/블루스",
    "POP", "OST", "일렉트로니카", "재즈", "클래식", "J-POP", "뉴에이지", "CCM", "키즈", "국악",
    "월드뮤직", "애니메이션", "뮤지컬", "컨트리", "레게", "라틴", "하우스", "EDM", "어쿠스틱",
    "모던록", "시티팝", "보사노바")
_TAG_WORDS = (
    "감성", "힐링", "드라이브", "카페", "새벽", "잔잔한", "신나는", "운동", "여름", "겨울", "사랑",
    "이별", "설렘", "휴식", "집중", "공부", "밤", "비", "추억", "봄", "가을", "출근길", "퇴근길",
    "여행", "기분전환", "매장음악", "파티", "아이돌", "걸그룹", "보이그룹", "연애", "위로", "혼자",
    "산책", "독서", "잠", "아침", "주말", "회상", "청량", "몽환", "그루브", "편안한", "우울",
    "행복", "스트레스", "노동요", "감성힙합", "인디", "팝", "록", "재즈", "클래식", "트로트",
    "어쿠스틱", "일렉", "알앤비", "발라드", "댄스", "OST", "명곡", "히트곡", "띵곡", "플레이리스트")
_TITLE_TEMPLATES = ("{0}", "{0} {1}", "{0} 노래 모음", "{0} 플레이리스트", "#{0} #{1}",
                    "{0}, {1}, {2}", "{1} {0} 음악", "오늘은 {0}")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """The numbers of one synthetic Melon world.

  Attributes:
    n_playlists: all playlists (train + val + test).
    n_songs, n_artists, n_albums: catalogue sizes (every artist has >= 1 album, every album
      >= 1 song).
    n_clusters: latent taste clusters.
    n_tags: tag vocabulary size.
    n_favorite_artists: favourite artists per cluster.
    n_cluster_tags: tags per cluster.
    median_playlist_len: median songs per playlist (log-normal, clipped to 1..200).
    mean_tags: mean tags per playlist (1 + Poisson, at most 10).
  """

  n_playlists: int
  n_songs: int
  n_artists: int
  n_albums: int
  n_clusters: int
  n_tags: int
  n_favorite_artists: int = 12
  n_cluster_tags: int = 8
  median_playlist_len: float = 30.0
  mean_tags: float = 4.1

  def __post_init__(self):
    if min(self.n_playlists, self.n_clusters, self.n_tags) < 1:
      raise ConfigError(f"synthetic spec needs >= 1 playlist, cluster and tag: {self}")
    if not 1 <= self.n_artists <= self.n_albums <= self.n_songs:
      raise ConfigError("synthetic spec needs 1 <= n_artists <= n_albums <= n_songs, got "
                        f"{self.n_artists}, {self.n_albums}, {self.n_songs}")


SIZES: dict[str, SyntheticSpec] = {
    # Unit tests: a few hundred playlists.
    "tiny": SyntheticSpec(n_playlists=300, n_songs=2_000, n_artists=250, n_albums=700,
                          n_clusters=16, n_tags=150, n_favorite_artists=8),
    "small": SyntheticSpec(n_playlists=1_200, n_songs=6_000, n_artists=700, n_albums=2_000,
                           n_clusters=30, n_tags=400, n_favorite_artists=10),
    # The embedded default (~3.1k train playlists; song_as_user with min_song_count=2 is about
    # 9k songs x 3.4k columns, 0.34M nnz): sized for a song_as_user AE in about a minute on 2 cores.
    "default": SyntheticSpec(n_playlists=4_000, n_songs=20_000, n_artists=2_500, n_albums=7_000,
                             n_clusters=40, n_tags=1_200),
    # Real Melon scale: 148,826 playlists (115,071 train, ~5.1M song entries over ~470k distinct
    # songs; real: 5.3M over 615k), 707,989 songs in the meta table.
    "melon": SyntheticSpec(n_playlists=148_826, n_songs=707_989, n_artists=100_000,
                           n_albums=270_000, n_clusters=800, n_tags=30_000,
                           n_favorite_artists=30),
}


@dataclasses.dataclass
class SyntheticMelon:
  """A synthetic Melon world in memory.

  Attributes:
    train: full training playlists.
    val, test: question playlists; ``val_answers`` / ``test_answers`` hold what was masked out.
    val_types, test_types: question type of each question (``kakao_split.QUESTION_TYPES``).
    song_meta: the song table; genres: code -> name.
    clusters: ``{"playlist_ids": ..., "cluster": ...}`` the latent cluster of every playlist
      (ground truth for diagnostics; not written to the Melon files).
    spec, seed: what generated it.
  """

  train: Playlists
  val: Playlists
  test: Playlists
  val_answers: Playlists
  test_answers: Playlists
  val_types: np.ndarray
  test_types: np.ndarray
  song_meta: SongMeta
  genres: dict[str, str]
  clusters: dict[str, np.ndarray]
  spec: SyntheticSpec
  seed: int

  def write(self, out_dir: str | os.PathLike) -> dict[str, str]:
    """Writes the Melon files (and answers / question types) into ``out_dir``."""
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    paths = {}
    for name in ("train", "val", "test", "val_answers", "test_answers"):
      paths[name] = os.path.join(out, f"{name}.json")
      write_playlists(getattr(self, name), paths[name])
    for name in ("val", "test"):
      q = getattr(self, name)
      types = dict(zip(map(str, q.ids.tolist()), getattr(self, f"{name}_types").tolist()))
      paths[f"{name}_question_types"] = os.path.join(out, f"{name}_question_types.json")
      with open(paths[f"{name}_question_types"], "w", encoding="utf-8") as f:
        json.dump(types, f)
    paths["song_meta"] = os.path.join(out, "song_meta.json")
    write_song_meta(_with_names(self.song_meta), paths["song_meta"])
    paths["genre_gn_all"] = os.path.join(out, "genre_gn_all.json")
    write_genres(self.genres, paths["genre_gn_all"])
    return paths


def resolve_spec(size: str | SyntheticSpec = "tiny", **overrides: Any) -> SyntheticSpec:
  """A named size (``tiny``/``small``/``default``/``melon``) with explicit numbers overriding it."""
  if isinstance(size, SyntheticSpec):
    spec = size
  else:
    if size not in SIZES:
      raise ConfigError(f"unknown synthetic Melon size {size!r}; known: {sorted(SIZES)}")
    spec = SIZES[size]
  fields = {f.name for f in dataclasses.fields(SyntheticSpec)}
  unknown = sorted(set(overrides) - fields)
  if unknown:
    raise ConfigError(f"unknown synthetic Melon setting(s) {unknown}; known: {sorted(fields)}")
  if "n_songs" in overrides:
    # Keep the catalogue's shape: artists and albums scale with songs unless given too.
    ratio = overrides["n_songs"] / spec.n_songs
    for key in ("n_albums", "n_artists"):
      if key not in overrides:
        overrides[key] = max(1, int(round(getattr(spec, key) * ratio)))
  return dataclasses.replace(spec, **overrides) if overrides else spec


def generate_melon(out_dir: str | os.PathLike | None = None, size: str | SyntheticSpec = "tiny",
                   seed: int = 0, **overrides: Any) -> SyntheticMelon:
  """Generates a synthetic Melon world; with ``out_dir`` also writes its JSON files there.

  Args:
    out_dir: folder to write into (created); ``None`` keeps everything in memory.
    size: ``"tiny"`` (~300 playlists, 2k songs), ``"small"``, ``"default"`` (4k playlists, 20k
      songs) or ``"melon"`` (~149k playlists / 115k train, 708k songs, ~5.1M train song entries),
      or a :class:`SyntheticSpec`.
    seed: everything is a pure function of (spec, seed).
    **overrides: explicit numbers (any :class:`SyntheticSpec` field), e.g. ``n_playlists=500``;
      overriding ``n_songs`` alone scales ``n_albums`` / ``n_artists`` with it.
  """
  world = synthesize_melon(size, seed, **overrides)
  if out_dir is not None:
    world.write(out_dir)
  return world


# ------------------------------------------------------------------------------------------- genres
def genre_table() -> tuple[dict[str, str], dict[int, np.ndarray]]:
  """The fixed genre table: ``{code: name}`` and, per top genre 0..29, its detail codes."""
  rng = np.random.default_rng(2020)
  n_detail_total = N_GENRE_CODES - N_TOP_GENRES
  # Every top genre has its "all" detail (xx01) plus >= 2 more; the rest spread at random.
  extra = rng.multinomial(n_detail_total - 3 * N_TOP_GENRES,
                          np.full(N_TOP_GENRES, 1 / N_TOP_GENRES))
  n_detail = 3 + extra
  names: dict[str, str] = {}
  details: dict[int, np.ndarray] = {}
  for g in range(N_TOP_GENRES):
    top = f"GN{g + 1:02d}00"
    names[top] = _TOP_GENRE_NAMES[g]
    codes = [f"GN{g + 1:02d}{k:02d}" for k in range(1, int(n_detail[g]) + 1)]
    names[codes[0]] = "세부장르전체"
    for k, code in enumerate(codes[1:], start=2):
      names[code] = f"{_TOP_GENRE_NAMES[g]} {k - 1}"
    details[g] = np.asarray(codes)
  return dict(sorted(names.items())), details


def tag_vocabulary(n_tags: int) -> np.ndarray:
  """``n_tags`` tag strings: the base words first (most popular), then two- and three-word
  compounds in a fixed shuffled order."""
  words = np.asarray(_TAG_WORDS)
  vocab = [words]
  if n_tags > len(words):
    a, b = np.meshgrid(words, words, indexing="ij")
    pairs = np.char.add(a.ravel(), b.ravel())[a.ravel() != b.ravel()]
    vocab.append(np.random.default_rng(7).permutation(pairs))
  if n_tags > sum(map(len, vocab)):
    need = n_tags - sum(map(len, vocab))
    rng = np.random.default_rng(8)
    idx = rng.integers(0, len(words), size=(need * 2, 3))
    triples = np.char.add(np.char.add(words[idx[:, 0]], words[idx[:, 1]]), words[idx[:, 2]])
    ok = (idx[:, 0] != idx[:, 1]) & (idx[:, 1] != idx[:, 2]) & (idx[:, 0] != idx[:, 2])
    _, first = np.unique(triples[ok], return_index=True)
    vocab.append(triples[ok][np.sort(first)])
  out = np.concatenate(vocab)
  _, first = np.unique(out, return_index=True)
  out = out[np.sort(first)]
  if len(out) < n_tags:
    raise ConfigError(f"n_tags={n_tags} exceeds the {len(out)} distinct synthetic tags")
  return out[:n_tags]


# ----------------------------------------------------------------------------------------- sampling
def _sample_rows(cdf: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """One categorical draw per entry from row ``rows[i]`` of the row-wise CDF matrix ``cdf``."""
  r, k = cdf.shape
  flat = (cdf + np.arange(r)[:, None]).ravel()
  u = rows + rng.random(len(rows)) * (1.0 - 1e-12)
  pos = _search(flat, u) - rows * k
  return np.clip(pos, 0, k - 1)


def _search(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
  """``searchsorted(..., side="right")``; millions of random queries are sorted first, which turns
  the cache-missing binary searches into one cheap merge-like pass."""
  if len(queries) < 100_000:
    return np.searchsorted(sorted_values, queries, side="right")
  order = np.argsort(queries)
  out = np.empty(len(queries), np.int64)
  out[order] = np.searchsorted(sorted_values, queries[order], side="right")
  return out


def _cdf(weights: np.ndarray) -> np.ndarray:
  w = np.maximum(np.asarray(weights, np.float64), 0)
  c = np.cumsum(w, axis=-1)
  return c / np.maximum(c[..., -1:], 1e-300)


class _GroupSampler:
  """Draws items by weight within a group (items grouped by an int key), vectorized."""

  def __init__(self, group: np.ndarray, weights: np.ndarray, n_groups: int):
    self.order = np.argsort(group, kind="stable")
    self.cum = np.concatenate([[0.0], np.cumsum(weights[self.order])])
    counts = np.bincount(group, minlength=n_groups)
    self.start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    self.stop = self.start + counts
    self.mass = self.cum[self.stop] - self.cum[self.start]

  def sample(self, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo, hi = self.cum[self.start[groups]], self.cum[self.stop[groups]]
    u = lo + rng.random(len(groups)) * (hi - lo)
    pos = _search(self.cum, u) - 1
    pos = np.clip(pos, self.start[groups], np.maximum(self.stop[groups] - 1, self.start[groups]))
    return self.order[pos]


def _assign_at_least_one(n_items: int, n_owners: int, weights: np.ndarray,
                         rng: np.random.Generator) -> np.ndarray:
  """Owner of each item: every owner gets one, the rest are drawn by weight."""
  rest = rng.choice(n_owners, size=n_items - n_owners, p=weights / weights.sum())
  return rng.permutation(np.concatenate([np.arange(n_owners), rest]))


def _era(year: np.ndarray) -> np.ndarray:
  return np.searchsorted(ERA_EDGES, year, side="right")


# ---------------------------------------------------------------------------------------- the world
def synthesize_melon(size: str | SyntheticSpec = "tiny", seed: int = 0,
                     **overrides: Any) -> SyntheticMelon:
  """The in-memory variant of :func:`generate_melon` (touches no disk)."""
  spec = resolve_spec(size, **overrides)
  rng = np.random.default_rng(seed)
  genres, details = genre_table()
  catalogue = _catalogue(spec, details, rng)
  full, cluster_of = _playlists(spec, catalogue, rng)

  # Split like the competition, then mask val / test into questions.
  p = spec.n_playlists
  total = sum(REAL_SPLIT)
  n_val = int(round(p * REAL_SPLIT[1] / total))
  n_test = int(round(p * REAL_SPLIT[2] / total))
  perm = rng.permutation(p)
  n_train = p - n_val - n_test
  train = full.select(perm[:n_train])
  parts = {}
  for name, idx in (("val", perm[n_train:n_train + n_val]), ("test", perm[n_train + n_val:])):
    q, a, t = kakao_split.make_questions(
        full.select(idx), rng, blank_titles=kakao_split.RELEASED_BLANK_TITLES)
    q.source, a.source = f"<synthetic {name}>", f"<synthetic {name} answers>"
    parts[name] = (q, a, t)
  train.source = "<synthetic train>"
  return SyntheticMelon(
      train=train, val=parts["val"][0], test=parts["test"][0], val_answers=parts["val"][1],
      test_answers=parts["test"][1], val_types=parts["val"][2], test_types=parts["test"][2],
      song_meta=catalogue["meta"], genres=genres,
      clusters={"playlist_ids": full.ids.copy(), "cluster": cluster_of}, spec=spec, seed=seed)


def _catalogue(spec: SyntheticSpec, details: dict[int, np.ndarray],
               rng: np.random.Generator) -> dict[str, Any]:
  """Artists, albums and songs with genres, dates and popularity; the song meta table."""
  n_a, n_b, n_s = spec.n_artists, spec.n_albums, spec.n_songs
  genre_pop = rng.dirichlet(np.full(N_TOP_GENRES, 0.8))
  # Artists: main genre, debut year (mostly recent), popularity.
  artist_genre = rng.choice(N_TOP_GENRES, size=n_a, p=genre_pop)
  recent = rng.random(n_a) < 0.7
  debut = np.where(recent, rng.integers(2005, 2021, n_a),
                   np.clip(np.round(rng.normal(1992, 10, n_a)), 1955, 2020)).astype(np.int64)
  artist_pop = rng.lognormal(0.0, 1.0, n_a)
  # Albums: artist (popular ones have more), date after the debut, popularity factor.
  album_artist = _assign_at_least_one(n_b, n_a, np.sqrt(artist_pop), rng)
  year = np.minimum(debut[album_artist] + rng.geometric(0.25, n_b) - 1, 2020)
  month = rng.integers(1, 13, n_b)
  month = np.where(year == 2020, np.minimum(month, 4), month)
  day = rng.integers(1, 29, n_b)
  u = rng.random(n_b)
  day = np.where(u < 0.08, 0, day)           # "yyyymm00"
  month = np.where(u < 0.03, 0, month)       # "yyyy0000"
  album_date = year * 10000 + month * 100 + day
  album_date = np.minimum(album_date, 20200423)  # Nothing after the data's end.
  album_date = np.where(rng.random(n_b) < 0.005, 0, album_date)  # "00000000"
  album_genre = np.where(rng.random(n_b) < 0.9, artist_genre[album_artist],
                         rng.choice(N_TOP_GENRES, size=n_b, p=genre_pop))
  album_pop = rng.lognormal(0.0, 0.5, n_b)
  # Songs: album (and so artist, date, genre), power-law popularity.
  song_album = _assign_at_least_one(n_s, n_b, rng.lognormal(0.0, 0.5, n_b), rng)
  song_artist = album_artist[song_album]
  song_genre = album_genre[song_album]
  song_date = album_date[song_album]
  song_year = song_date // 10000
  recency = np.where(song_year >= 2015, 2.0, 1.0)
  song_pop = (artist_pop[song_artist] * album_pop[song_album] * recency
              * rng.lognormal(0.0, 1.0, n_s))

  # Genre baskets: the album genre, sometimes a second top genre.
  second = np.where(rng.random(n_s) < 0.12, rng.choice(N_TOP_GENRES, size=n_s, p=genre_pop), -1)
  second = np.where(second == song_genre, -1, second)
  no_genre = rng.random(n_s) < 0.01
  g_len = np.where(no_genre, 0, 1 + (second >= 0))
  g_vals = np.stack([song_genre, second], 1)[np.arange(2)[None, :] < g_len[:, None]]
  top_codes = np.asarray([f"GN{g + 1:02d}00" for g in range(N_TOP_GENRES)])
  genre_ptr = csr_from_lengths(g_len)
  genre_codes = top_codes[g_vals]
  # Detail baskets: per top genre of the song, "xx01" plus one specific detail code.
  n_det = np.asarray([len(details[g]) for g in range(N_TOP_GENRES)])
  det_off = np.concatenate([[0], np.cumsum(n_det)[:-1]])
  all_details = np.concatenate([details[g] for g in range(N_TOP_GENRES)])
  pick = 1 + (rng.random(len(g_vals)) * (n_det[g_vals] - 1)).astype(np.int64)
  d_vals = np.stack([all_details[det_off[g_vals] + pick], all_details[det_off[g_vals]]], 1).ravel()
  dtl_ptr = csr_from_lengths(2 * g_len)
  # Artist baskets: the album artist, sometimes a featured second one.
  feat = np.where(rng.random(n_s) < 0.05, rng.integers(0, n_a, n_s), -1)
  feat = np.where(feat == song_artist, -1, feat)
  a_len = 1 + (feat >= 0)
  a_vals = np.stack([song_artist, feat], 1)[np.arange(2)[None, :] < a_len[:, None]]

  song_ids = rng.permutation(n_s).astype(np.int64)
  artist_ids = rng.permutation(n_a).astype(np.int64)
  album_ids = rng.permutation(n_b).astype(np.int64)
  # Store the table sorted by song id, like song_meta.json.
  order = np.argsort(song_ids)
  g_ptr_o, g_codes_o = csr_take(genre_ptr, genre_codes, order)
  d_ptr_o, d_vals_o = csr_take(dtl_ptr, d_vals, order)
  a_ptr_o, a_vals_o = csr_take(csr_from_lengths(a_len), artist_ids[a_vals], order)
  meta = SongMeta(song_ids[order], g_ptr_o, g_codes_o, d_ptr_o, d_vals_o, song_date[order],
                  album_ids[song_album][order], a_ptr_o, a_vals_o, source="<synthetic song_meta>")
  return dict(meta=meta, song_ids=song_ids, song_pop=song_pop, song_genre=song_genre,
              song_artist=song_artist, song_date=song_date, artist_genre=artist_genre,
              artist_pop=artist_pop, genre_pop=genre_pop)


def _playlists(spec: SyntheticSpec, cat: dict[str, Any],
               rng: np.random.Generator) -> tuple[Playlists, np.ndarray]:
  """Playlists drawn from latent taste clusters; returns them and each one's main cluster."""
  n_s, n_c, n_p = spec.n_songs, spec.n_clusters, spec.n_playlists
  pop, genre = cat["song_pop"], cat["song_genre"]
  year = cat["song_date"] // 10000
  era = np.where(year > 0, _era(year), rng.integers(0, N_ERAS, n_s))
  bucket = genre * N_ERAS + era
  n_buckets = N_TOP_GENRES * N_ERAS
  by_bucket = _GroupSampler(bucket, pop, n_buckets)
  by_artist = _GroupSampler(cat["song_artist"], pop, spec.n_artists)
  by_all = _GroupSampler(np.zeros(n_s, np.int64), pop, 1)

  # Clusters: sparse genre mix x era mix over the non-empty buckets, favourite artists, tags.
  genre_mix = rng.dirichlet(0.05 + 1.0 * cat["genre_pop"], size=n_c)
  era_mix = rng.dirichlet(np.full(N_ERAS, 0.25) + np.linspace(0.0, 0.5, N_ERAS), size=n_c)
  w = (genre_mix[:, :, None] * era_mix[:, None, :]).reshape(n_c, n_buckets)
  w = w * np.sqrt(by_bucket.mass)[None, :]
  bucket_cdf = _cdf(w)
  artist_by_genre = _GroupSampler(cat["artist_genre"], np.sqrt(cat["artist_pop"]), N_TOP_GENRES)
  k_fav = spec.n_favorite_artists
  fav_genre = _sample_rows(_cdf(genre_mix ** 2), np.repeat(np.arange(n_c), k_fav), rng)
  fav_genre = np.where(artist_by_genre.mass[fav_genre] > 0, fav_genre,
                       cat["artist_genre"][rng.integers(0, spec.n_artists, len(fav_genre))])
  favorites = artist_by_genre.sample(fav_genre, rng).reshape(n_c, k_fav)
  fav_cdf = _cdf(rng.dirichlet(np.ones(k_fav), size=n_c))

  tags = tag_vocabulary(spec.n_tags)
  tag_pop = 1.0 / np.arange(1, len(tags) + 1) ** 0.9
  k_tag = spec.n_cluster_tags
  cluster_tags = _sample_rows(_cdf(tag_pop)[None, :], np.zeros(n_c * k_tag, np.int64),
                              rng).reshape(n_c, k_tag)
  # The main genre's word is a tag of the cluster when the vocabulary has it.
  main_genre = genre_mix.argmax(1)
  genre_word = np.asarray([_TOP_GENRE_NAMES[g].split("/")[0] for g in range(N_TOP_GENRES)])
  tag_pos = {t: i for i, t in enumerate(tags.tolist())}
  gw = np.asarray([tag_pos.get(genre_word[g], -1) for g in main_genre])
  cluster_tags[:, 0] = np.where(gw >= 0, gw, cluster_tags[:, 0])
  tag_w_cdf = _cdf(1.0 / np.arange(1, k_tag + 1) ** 0.7 * np.ones((n_c, 1)))

  # Playlists: one or two clusters, a length, then song entries by source.
  cluster_pop = rng.lognormal(0.0, 0.7, n_c)
  c1 = rng.choice(n_c, size=n_p, p=cluster_pop / cluster_pop.sum())
  c2 = np.where(rng.random(n_p) < 0.3, rng.choice(n_c, size=n_p, p=cluster_pop / cluster_pop.sum()),
                c1)
  length = np.clip(np.round(rng.lognormal(np.log(spec.median_playlist_len), 0.95, n_p)), 1, 200)
  length = length.astype(np.int64)
  n_draw = np.ceil(length * 1.4).astype(np.int64) + 3
  seg = np.repeat(np.arange(n_p), n_draw)
  n = len(seg)
  cl = np.where(rng.random(n) < 0.75, c1[seg], c2[seg])
  src = rng.random(n)
  songs = np.empty(n, np.int64)
  p_art, p_buc = SOURCE_P[0], SOURCE_P[0] + SOURCE_P[1]
  m_art = src < p_art
  m_buc = (src >= p_art) & (src < p_buc)
  m_all = src >= p_buc
  fav = _sample_rows(fav_cdf, cl[m_art], rng)
  songs[m_art] = by_artist.sample(favorites[cl[m_art], fav], rng)
  songs[m_buc] = by_bucket.sample(_sample_rows(bucket_cdf, cl[m_buc], rng), rng)
  songs[m_all] = by_all.sample(np.zeros(int(m_all.sum()), np.int64), rng)
  ptr, songs, _ = dedupe_segments(csr_from_lengths(n_draw), songs)
  ptr, songs = _truncate(ptr, songs, length)

  # Tags: mostly the cluster's own, some from the global tag popularity.
  n_tag = np.minimum(1 + rng.poisson(max(spec.mean_tags - 1.0, 0.0), n_p), 10)
  t_draw = 2 * n_tag + 2
  t_seg = np.repeat(np.arange(n_p), t_draw)
  own = rng.random(len(t_seg)) < 0.8
  t_idx = np.empty(len(t_seg), np.int64)
  tc = c1[t_seg[own]]
  t_idx[own] = cluster_tags[tc, _sample_rows(tag_w_cdf, tc, rng)]
  t_idx[~own] = _sample_rows(_cdf(tag_pop)[None, :], np.zeros(int((~own).sum()), np.int64), rng)
  t_ptr, t_idx, _ = dedupe_segments(csr_from_lengths(t_draw), t_idx)
  t_ptr, t_idx = _truncate(t_ptr, t_idx, n_tag)
  tag_str = tags[t_idx]

  # Titles from the playlist's tag words; likes; update date after the newest song.
  titles = _titles(t_ptr, tag_str, rng)
  like_cnt = np.maximum(np.floor(rng.lognormal(1.6, 1.7, n_p)) - 1, 0).astype(np.int64)
  date = cat["song_date"][songs]
  issue = _yyyymmdd_to_datetime(date)
  newest = np.full(n_p, START_DATE)
  has = np.diff(ptr) > 0
  if len(songs):
    mx = np.maximum.reduceat(issue.astype(np.int64), ptr[:-1][has])
    newest[has] = np.maximum(mx.astype("datetime64[s]"), START_DATE)
  span = (END_DATE - newest).astype(np.int64)
  back = np.minimum(rng.exponential(400 * 86400, n_p), span).astype(np.int64)
  updt = END_DATE - back.astype("timedelta64[s]")
  # Playlists that end at their newest song get a random time on (or after) that day.
  jitter = (rng.random(n_p) * np.minimum(span, 86400)).astype(np.int64)
  updt = np.maximum(updt, newest + jitter.astype("timedelta64[s]"))
  ids = rng.permutation(n_p).astype(np.int64)
  out = Playlists(ids, titles, like_cnt, updt, ptr, cat["song_ids"][songs], t_ptr, tag_str,
                  source="<synthetic>")
  return out, c1


def _truncate(ptr: np.ndarray, values: np.ndarray, length: np.ndarray):
  seg = segment_ids(ptr)
  rank = np.arange(len(values)) - ptr[seg]
  keep = rank < length[seg]
  return csr_from_lengths(np.minimum(np.diff(ptr), length)), values[keep]


def _yyyymmdd_to_datetime(d: np.ndarray) -> np.ndarray:
  """``datetime64[s]`` of yyyymmdd ints (00 month/day -> 01; unknown -> START_DATE - 1 day)."""
  y, m, day = d // 10000, (d // 100) % 100, d % 100
  known = y > 0
  y = np.where(known, y, 1970)
  m = np.maximum(m, 1)
  day = np.maximum(day, 1)
  months = (y - 1970) * 12 + (m - 1)
  dt = months.astype("datetime64[M]").astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
  return np.where(known, dt.astype("datetime64[s]"), START_DATE - np.timedelta64(1, "D"))


def _titles(t_ptr: np.ndarray, tags: np.ndarray, rng: np.random.Generator) -> list[str]:
  """A title per playlist: a template filled with its first tag words (vectorized per template)."""
  n_p = len(t_ptr) - 1
  template = rng.integers(0, len(_TITLE_TEMPLATES), n_p)
  lengths = np.diff(t_ptr)
  words = []
  for k, pad in enumerate(("노래", "음악", "플레이리스트")):
    w = np.full(n_p, pad, dtype=object)
    has = lengths > k
    w[has] = tags[t_ptr[:-1][has] + k]
    words.append(w.astype(str))
  out = np.empty(n_p, dtype=object)
  for t, fmt in enumerate(_TITLE_TEMPLATES):
    sel = template == t
    if not sel.any():
      continue
    # Split the template on its {k} fields and join the literal parts with the words.
    parts = fmt.replace("{", "\x00{").replace("}", "}\x00").split("\x00")
    text = np.full(int(sel.sum()), "", dtype=object)
    for part in parts:
      if part.startswith("{") and part.endswith("}"):
        text = text + words[int(part[1:-1])][sel].astype(object)
      elif part:
        text = text + part
    out[sel] = text
  return out.tolist()


def _with_names(meta: SongMeta) -> SongMeta:
  """Adds plain synthetic song / album / artist names for ``song_meta.json``."""
  if meta.song_names is not None:
    return meta
  song_names = np.char.add("Song ", meta.ids.astype(str)).tolist()
  album_names = np.char.add("Album ", meta.album_id.astype(str)).tolist()
  names = np.char.add("Artist ", meta.artists.astype(str)).tolist() if len(meta.artists) else []
  ap = meta.artist_indptr.tolist()
  artist_names = [names[ap[i]:ap[i + 1]] for i in range(len(meta))]
  return dataclasses.replace(meta, song_names=song_names, album_names=album_names,
                             artist_names=artist_names)
