"""Tests of the synthetic Melon generator: determinism, format, structure a model can learn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from jaxae.data import kakao_split, synthetic
from jaxae.data.readers import melon
from jaxae.errors import ConfigError


@pytest.fixture(scope="module")
def tiny() -> synthetic.SyntheticMelon:
  return synthetic.synthesize_melon("tiny", seed=0)


def _arrays(p: melon.Playlists):
  return (p.ids, p.song_indptr, p.songs, p.tag_indptr, p.tags, p.like_cnt, p.updt_date)


def test_deterministic_per_seed(tiny):
  again = synthetic.synthesize_melon("tiny", seed=0)
  for name in ("train", "val", "test", "val_answers", "test_answers"):
    for u, v in zip(_arrays(getattr(tiny, name)), _arrays(getattr(again, name))):
      np.testing.assert_array_equal(u, v)
    assert getattr(tiny, name).titles == getattr(again, name).titles
  np.testing.assert_array_equal(tiny.song_meta.issue_date, again.song_meta.issue_date)
  np.testing.assert_array_equal(tiny.song_meta.genres, again.song_meta.genres)
  other = synthetic.synthesize_melon("tiny", seed=1)
  assert not np.array_equal(other.train.songs[:50], tiny.train.songs[:50])


def test_sizes_and_overrides(tiny):
  spec = synthetic.SIZES["tiny"]
  assert len(tiny.train) + len(tiny.val) + len(tiny.test) == spec.n_playlists
  assert len(tiny.song_meta) == spec.n_songs
  total = sum(synthetic.REAL_SPLIT)
  assert len(tiny.val) == round(spec.n_playlists * synthetic.REAL_SPLIT[1] / total)
  w = synthetic.synthesize_melon("tiny", seed=2, n_playlists=80, n_songs=500)
  assert len(w.train) + len(w.val) + len(w.test) == 80 and len(w.song_meta) == 500
  with pytest.raises(ConfigError, match="unknown synthetic Melon setting"):
    synthetic.synthesize_melon("tiny", n_users=5)
  with pytest.raises(ConfigError, match="unknown synthetic Melon size 'huge'"):
    synthetic.synthesize_melon("huge")
  with pytest.raises(ConfigError, match="n_artists <= n_albums"):
    synthetic.synthesize_melon("tiny", n_albums=10)
  assert synthetic.resolve_spec("tiny", n_songs=1000).n_albums == 350


def test_playlists_are_well_formed(tiny):
  full = melon.Playlists.concat([tiny.train, tiny.val_answers, tiny.test_answers])
  meta = tiny.song_meta
  assert np.isin(full.songs, meta.ids).all()
  assert len(np.unique(full.ids)) == len(full)
  lengths = tiny.train.song_lengths()
  assert lengths.min() >= 1 and lengths.max() <= 200
  assert 1 <= tiny.train.tag_lengths().min() and tiny.train.tag_lengths().max() <= 10
  for p in (tiny.train, tiny.val):
    for i in range(len(p)):
      assert len(np.unique(p.songs_of(i))) == len(p.songs_of(i))
      assert len(np.unique(p.tags_of(i))) == len(p.tags_of(i))
  assert all(t != "" for t in tiny.train.titles)
  # Titles are made of tag words.
  words = set(synthetic.tag_vocabulary(synthetic.SIZES["tiny"].n_tags).tolist())
  assert all(any(w in t for w in words) for t in tiny.train.titles)
  # A playlist is updated after its newest song was issued.
  row = meta.index_of(tiny.train.songs)
  d = meta.issue_date[row]
  known = d > 0
  day = np.char.add(np.char.zfill((d // 10000).astype(str), 4), np.char.add(
      "-", np.char.add(np.char.zfill(np.maximum((d // 100) % 100, 1).astype(str), 2),
                       np.char.add("-", np.char.zfill(np.maximum(d % 100, 1).astype(str), 2)))))
  seg = tiny.train.song_segments()
  issued = np.where(known, day, "1970-01-01").astype("datetime64[s]")
  assert (tiny.train.updt_date[seg] >= issued).all()
  assert tiny.train.updt_date.max() <= np.datetime64("2020-04-23T23:59:59")
  assert (tiny.train.like_cnt >= 0).all()


def test_song_meta_and_genres(tiny):
  genres, details = synthetic.genre_table()
  assert len(genres) == 254
  assert sum(c.endswith("00") for c in genres) == 30
  meta = tiny.song_meta
  assert set(meta.genres.tolist()) <= set(genres) and set(meta.dtl_genres.tolist()) <= set(genres)
  # Detail codes belong to the song's top-level genres (same GNxx prefix).
  g_seg = melon.segment_ids(meta.genre_indptr)
  d_seg = melon.segment_ids(meta.dtl_genre_indptr)
  tops = {(int(s), g[:4]) for s, g in zip(g_seg, meta.genres.tolist())}
  assert all((int(s), d[:4]) in tops for s, d in zip(d_seg, meta.dtl_genres.tolist()))
  dates = meta.issue_date
  assert (dates == 0).sum() < len(dates) * 0.05
  known = dates[dates > 0]
  assert (known // 10000 >= 1900).all() and (known <= 20200431).all()
  assert ((known // 100) % 100 <= 12).all() and (known % 100 <= 31).all()
  assert ((known // 100) % 100 == 0).any()  # Some "yyyy0000".
  assert tiny.genres == genres


def test_questions_are_kakao_questions(tiny):
  assert set(tiny.val_types.tolist()) <= set(kakao_split.QUESTION_TYPES)
  np.testing.assert_array_equal(tiny.val.ids, tiny.val_answers.ids)
  song_q = np.isin(tiny.val_types, ["song_only", "song_tags"])
  assert all((t == "") for t, s in zip(tiny.val.titles, song_q) if s)
  # Question + answer give back a full playlist (no playlist over 100 songs loses anything here
  # unless its songs were deleted and it had more than 100).
  n = tiny.val.song_lengths() + tiny.val_answers.song_lengths()
  assert (n >= 1).all()


def test_write_and_read_back(tmp_path):
  w = synthetic.generate_melon(tmp_path, "tiny", seed=3, n_playlists=60, n_songs=400,
                               n_albums=150, n_artists=40)
  names = {p.name for p in tmp_path.iterdir()}
  assert {"train.json", "val.json", "test.json", "song_meta.json", "genre_gn_all.json",
          "val_answers.json", "test_answers.json", "val_question_types.json",
          "test_question_types.json"} == names
  for name in ("train", "val", "test", "val_answers", "test_answers"):
    back = melon.read_playlists(tmp_path / f"{name}.json")
    assert back.to_json_records() == getattr(w, name).to_json_records()
  meta = melon.read_song_meta(tmp_path / "song_meta.json")
  np.testing.assert_array_equal(meta.ids, w.song_meta.ids)
  np.testing.assert_array_equal(meta.dtl_genres, w.song_meta.dtl_genres)
  np.testing.assert_array_equal(meta.artists, w.song_meta.artists)
  assert meta.song_names[0].startswith("Song ")
  assert melon.read_genres(tmp_path / "genre_gn_all.json") == w.genres


def _hit_rates(w: synthetic.SyntheticMelon, k: int) -> tuple[float, float]:
  """Hit rate@k on the val answers of item-item co-occurrence and of most-popular."""
  songs = np.unique(np.concatenate([w.train.songs, w.val.songs]))

  def matrix(p: melon.Playlists, keep=None):
    ok = np.isin(p.songs, songs)
    m = sp.csr_matrix((np.ones(ok.sum()), (p.song_segments()[ok],
                                            np.searchsorted(songs, p.songs[ok]))),
                      shape=(len(p), len(songs)))
    m.data[:] = 1.0
    return m

  x, q, a = matrix(w.train), matrix(w.val), matrix(w.val_answers)
  rows = np.flatnonzero((np.diff(q.indptr) > 0) & (np.diff(a.indptr) > 0))
  q, a = q[rows].toarray(), a[rows].toarray()
  co = (x.T @ x).tocsr()
  co.setdiag(0)
  scores = {"cooc": (sp.csr_matrix(q) @ co).toarray(),
            "popular": np.tile(np.asarray(x.sum(0)).ravel(), (len(rows), 1))}
  rates = {}
  for name, s in scores.items():
    s = np.where(q > 0, -np.inf, s)
    top = np.argpartition(-s, k, axis=1)[:, :k]
    rates[name] = np.take_along_axis(a, top, 1).sum() / a.sum()
  return rates["cooc"], rates["popular"]


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_cooccurrence_beats_most_popular(size):
  w = synthetic.synthesize_melon(size, seed=0)
  cooc, popular = _hit_rates(w, k=20)
  assert popular > 0
  assert cooc >= 2.0 * popular, (cooc, popular)
