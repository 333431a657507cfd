"""Seed B of the song-as-user Melon solution: playlist neighbours from song embeddings.

Given song embeddings ``E [n_songs, d]`` (the code layer of the song-as-user autoencoder for each
song row, with the raw song ids of its rows):

  1. playlist embedding = the sum of its songs' embeddings (songs without an embedding are skipped
     and counted), for training playlists and questions alike, summed on the device;
  2. cosine similarity of each question to every training playlist, on the device in chunks of
     questions, best ``song_neighbours`` among the playlists that hold songs and best
     ``tag_neighbours`` among those that hold tags (one search when every playlist holds both) by
     :func:`jaxae.topk.top_k` (the evaluator's ``config.eval.topk_group``; ties to the lower
     training index); a training playlist with the question's own id is never its neighbour;
  3. songs = the songs with the most votes from the top ``song_neighbours`` (10) neighbours, tags =
     the tags with the most votes from the top ``tag_neighbours`` (50), ties to the more popular
     item; the question's own songs / tags are excluded. A vote is a plain count (seed B as
     published: ``song_vote_power`` / ``tag_vote_power`` 0) or the neighbour's cosine to that
     power (a power above 0; a neighbour with cosine <= 0 then votes nothing); with
     ``own_tag_weight`` above 0 the tag votes are blended with the tags that co-occur with the
     question's own (`jaxae.recommend.cooccurrence.blend_own_tags`, as seed A's);
  4. filled up to 100 songs / 10 tags with the most popular training items not already there.

A playlist without songs (tags) never takes a neighbour's place in the song (tag) vote. Where every
training playlist holds both, this is the published rule exactly; in a sample such as the released
``test.json``, where many playlists hold only one of them, it keeps empty voters out.

Questions with no embedded song fall back: with tags, neighbours are found by tag overlap (cosine of
binary playlist x tag rows: ``|A & B| / sqrt(|A| |B|)``, overlap > 0 only, ranked from the nonzeros
of the sparse product, ties to the lower training index; with ``cooccurrence_songs`` their songs
are instead those that co-occur most with their tags, seed A's cold start); with neither, and
``titles`` on, by the same overlap of their titles' character bigrams (`title_tokens`) with the
training titles'; else the answer is pure popularity (most_popular). Vote counting is a sparse
product (questions x neighbours weight matrix times the training playlist x song matrix), never a
per-song Python dict.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jaxae import checks, topk
from jaxae.errors import DataError
from jaxae.recommend.cooccurrence import (blend_own_tags, song_tag_counts, songs_of_tags,
                                          tag_given_tag)
from jaxae.recommend.popular import (N_SONGS, N_TAGS, SONG_POOL, TAG_POOL, Vocab, _indptr,
                                     code_matrix, fill_up, prepare, row_of_entries, to_records,
                                     top_per_row, top_per_row_chunked)

SONG_NEIGHBOURS = 10   # seed B: songs from the 10 nearest playlists
TAG_NEIGHBOURS = 50    # seed B: tags from the 50 nearest playlists
_ENTRY_FLOATS = 1 << 24  # floats gathered per device chunk when summing song embeddings
_VOTE_ROWS = 1024        # questions per sparse vote product
_WORD = re.compile(r"\w+")


@functools.partial(jax.jit, donate_argnums=0)
def _add_rows(acc: jax.Array, emb: jax.Array, idx: jax.Array, seg: jax.Array) -> jax.Array:
  """acc[seg] += emb[idx]; padding entries carry seg = len(acc) and are dropped."""
  return acc.at[seg].add(emb[idx], mode="drop")


def sum_embeddings(emb: jax.Array, indptr: np.ndarray, rows: np.ndarray) -> jax.Array:
  """[P, d] sums of ``emb[rows]`` per CSR segment (entries with row -1 skipped), on the device.

  Entries are processed in fixed-size chunks (one compiled shape) so the gathered block stays
  bounded whatever the number of entries.
  """
  n_p = len(indptr) - 1
  d = emb.shape[1]
  seg = row_of_entries(indptr)
  keep = rows >= 0
  seg, rows = seg[keep].astype(np.int32), rows[keep].astype(np.int32)
  cap = int(math.log2(max(_ENTRY_FLOATS // max(d, 1), 1)))
  chunk = 1 << max(8, min(cap, (max(len(rows), 1) - 1).bit_length()))   # power of 2: few shapes
  acc = jnp.zeros((n_p, d), jnp.float32)
  for s in range(0, len(rows), chunk):
    r, g = rows[s:s + chunk], seg[s:s + chunk]
    pad = chunk - len(r)
    if pad:
      r = np.pad(r, (0, pad))
      g = np.pad(g, (0, pad), constant_values=n_p)
    acc = _add_rows(acc, emb, jnp.asarray(r), jnp.asarray(g))
  return acc


@jax.jit
def _unit_rows(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Rows scaled to unit norm, and which rows are nonzero."""
  norm = jnp.linalg.norm(x, axis=1, keepdims=True)
  return x / jnp.maximum(norm, 1e-30), norm[:, 0] > 0


@functools.partial(jax.jit, static_argnames=("ks", "chunk", "group"))
def _cosine_top_k(q_all: jax.Array, self_all: jax.Array, start: jax.Array, train_unit: jax.Array,
                  train_oks: tuple, ks: tuple, chunk: int, group: int = 0) -> tuple:
  """For each ``(train_ok, k)``: the top-k cosine neighbours of rows ``start .. start+chunk`` of
  ``q_all`` (unit-norm rows) among the training rows ``train_ok`` allows; one product for all."""
  q = jax.lax.dynamic_slice_in_dim(q_all, start, chunk)
  self_idx = jax.lax.dynamic_slice_in_dim(self_all, start, chunk)
  sims = jnp.matmul(q, train_unit.T, precision=jax.lax.Precision.HIGHEST)
  is_self = jnp.arange(train_unit.shape[0])[None, :] == self_idx[:, None]
  return tuple(topk.top_k(jnp.where(~ok[None, :] | is_self, -jnp.inf, sims), k, group)
               for ok, k in zip(train_oks, ks))


def _pad_rows(x: np.ndarray, size: int, value=0) -> np.ndarray:
  if len(x) == size:
    return x
  return np.pad(x, [(0, size - len(x))] + [(0, 0)] * (x.ndim - 1), constant_values=value)


def neighbours_by_embedding(q_unit: jax.Array, train_unit: jax.Array,
                            train_oks: Sequence[jax.Array], self_idx: np.ndarray,
                            ks: Sequence[int], chunk_size: int,
                            group: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
  """Top-k cosine neighbours [Q, k] (index, cosine) of unit question rows among training ones, for
  each search ``(train_ok, k)`` of ``zip(train_oks, ks)``: the searches share one product.

  ``train_unit`` and each ``train_ok`` come from `_unit_rows` (a ``train_ok`` may exclude more
  rows): training rows with a zero embedding are never neighbours, and the cosine is -inf where
  fewer than ``k`` training rows qualify. One compiled function serves every chunk (the questions
  are padded to a multiple of ``chunk_size``).
  ``group``: how each chunk's top k is found (:func:`jaxae.topk.top_k`; the same neighbours).
  """
  ks = tuple(int(k) for k in ks)
  n = q_unit.shape[0]
  if not n:
    return [(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)) for k in ks]
  n_pad = -(-n // chunk_size) * chunk_size
  q_unit = jnp.pad(q_unit, ((0, n_pad - n), (0, 0)))
  self_all = jnp.asarray(_pad_rows(self_idx.astype(np.int32), n_pad, -1))
  parts = jax.device_get([_cosine_top_k(q_unit, self_all, jnp.int32(s), train_unit,
                                        tuple(train_oks), ks, chunk_size, group)
                          for s in range(0, n_pad, chunk_size)])
  return [(np.concatenate([p[j][1] for p in parts])[:n].astype(np.int64),
           np.concatenate([p[j][0] for p in parts])[:n]) for j in range(len(ks))]


def neighbours_by_tags(q_tags: sp.csr_matrix, train_tags: sp.csr_matrix, self_idx: np.ndarray,
                       ks: Sequence[int], chunk_size: int,
                       candidates: Sequence[np.ndarray | None]
                       ) -> list[tuple[np.ndarray, np.ndarray]]:
  """Top-k neighbours [Q, k] (index, cosine) by cosine of binary tag rows (overlap > 0 only), for
  each search ``(k, candidates)`` of ``zip(ks, candidates)``: the searches share one product.

  Only playlists that share a tag with the question can be neighbours, so the ranking reads the
  nonzeros of the sparse product alone (``chunk_size`` questions at a time, which bounds its
  memory): no dense [questions, playlists] block is ever made. Best first, ties to the lower
  playlist index (as :func:`jaxae.topk.top_k` breaks them); the cosine is -inf where fewer than
  ``k`` playlists share a tag with the question (its own playlist never counts, nor a playlist
  that the search's ``candidates`` [P] bool, when not None, leaves out).
  """
  def unit(m: sp.csr_matrix) -> sp.csr_matrix:
    n = np.sqrt(np.asarray(m.sum(axis=1)).ravel())
    return sp.diags(np.where(n > 0, 1.0 / np.maximum(n, 1e-30), 0.0).astype(np.float32)) @ m

  qu, tu_t = unit(q_tags).tocsr(), unit(train_tags).T.tocsc()
  n_q, n_t = qu.shape[0], tu_t.shape[1]
  out = [(np.zeros((n_q, k), np.int64), np.full((n_q, k), -np.inf, np.float32)) for k in ks]
  by_index = np.arange(n_t)                       # ties to the lower playlist index
  for s in range(0, n_q, chunk_size):
    e = min(s + chunk_size, n_q)
    prod = (qu[s:e] @ tu_t).tocoo()
    r, c, v = prod.row, prod.col, prod.data
    shared = (v > 0) & (c != self_idx[s:e][r])
    for (idx_out, sim_out), k, cand in zip(out, ks, candidates):
      keep = shared if cand is None else shared & cand[c]
      block = sp.csr_matrix((v[keep], (r[keep], c[keep])), shape=(e - s, n_t))
      idx, _, sims = top_per_row(block, k, by_index, return_scores=True)
      idx_out[s:e], sim_out[s:e] = np.maximum(idx, 0), sims
  return out


def vote_weights(nb: np.ndarray, sims: np.ndarray, q_rows: np.ndarray, n_q: int, n_train: int,
                 power: float = 0.0) -> sp.csr_matrix:
  """[n_q, n_train] each question's vote weight for each of its neighbours (float64, sparse).

  A neighbour (finite ``sims``) votes with weight ``cosine ** power``: ``power`` 0 is a plain
  count (seed B); above 0 a neighbour with a cosine <= 0 votes nothing.
  """
  ok = np.isfinite(sims).ravel()
  w = sims.ravel()[ok].astype(np.float64)
  w = np.ones_like(w) if power == 0 else np.where(w > 0, np.maximum(w, 0.0) ** power, 0.0)
  r = np.repeat(q_rows, nb.shape[1])[ok]
  return sp.csr_matrix((w, (r, nb.ravel()[ok])), shape=(n_q, n_train))


def top_voted(weights: sp.csr_matrix, items: sp.csr_matrix, seen: sp.csr_matrix, k: int,
              tie_rank: np.ndarray, own: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` items with the most votes per question (``weights @ items``), never a ``seen`` one.

  ``own``: None, or ``(own_tags [Q, tags], given, weight)`` for tag votes blended with the tags
  that co-occur with the question's own (:func:`jaxae.recommend.cooccurrence.blend_own_tags`).
  The vote product runs ``_VOTE_ROWS`` questions at a time, which bounds its memory whatever the
  number of questions and neighbours. Returns `top_per_row`'s ``(codes [Q, k], n [Q])``.
  """
  items = items.astype(np.float64)

  def votes_of(rows):
    votes = weights[rows] @ items
    if own is None:
      return votes
    own_tags, given, weight = own
    return blend_own_tags(votes, own_tags[rows], given, weight)

  return top_per_row_chunked(votes_of, np.arange(weights.shape[0]), k, tie_rank, _VOTE_ROWS,
                             seen=seen)                                # never the own items


def title_tokens(title: str) -> list[str]:
  """The character bigrams of a title's words (lower case; a one-character word is its own token).

  Bigrams match Korean titles written with or without spaces (``마음뭉클해지는노래모음`` and
  ``뭉클한 노래`` share ``뭉클`` and ``노래``) without a tokenizer.
  """
  out = set()
  for word in _WORD.findall(title.lower()):
    out.update(word[i:i + 2] for i in range(max(len(word) - 1, 1)))
  return sorted(out)


def title_matrices(train_titles: list, question_titles: list) -> tuple[sp.csr_matrix,
                                                                       sp.csr_matrix]:
  """Binary [playlists, tokens] rows of the training and question titles over the training
  titles' tokens (a question token no training title has is left out)."""
  def tokens(titles):
    lists = [title_tokens(str(t)) for t in titles]
    return _indptr(lists), np.array(list(itertools.chain.from_iterable(lists)), dtype=str)

  t_ptr, t_tok = tokens(train_titles)
  q_ptr, q_tok = tokens(question_titles)
  vocab = Vocab(t_tok)
  return (code_matrix(t_ptr, vocab.codes_of_items, len(vocab)),
          code_matrix(q_ptr, vocab.encode(q_tok), len(vocab)))


def self_index(train_ids: np.ndarray, question_ids: np.ndarray) -> np.ndarray:
  """Training row with each question's id, or -1."""
  order = np.argsort(train_ids, kind="stable")
  pos = np.clip(np.searchsorted(train_ids[order], question_ids), 0, max(len(train_ids) - 1, 0))
  hit = train_ids[order][pos] == question_ids if len(train_ids) else np.zeros(len(question_ids),
                                                                               bool)
  return np.where(hit, order[pos], -1).astype(np.int64)


def _embedding_rows(song_ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
  """Row of each raw song id in the embedding table, or -1."""
  order = np.argsort(song_ids, kind="stable")
  pos = np.clip(np.searchsorted(song_ids[order], raw), 0, max(len(song_ids) - 1, 0))
  hit = song_ids[order][pos] == raw if len(song_ids) else np.zeros(len(raw), bool)
  return np.where(hit, order[pos], -1).astype(np.int64)


def song_as_user(train: Any, questions: Any, *, song_embeddings: Any, song_ids: Any,
                 song_neighbours: int = SONG_NEIGHBOURS, tag_neighbours: int = TAG_NEIGHBOURS,
                 n_songs: int = N_SONGS, n_tags: int = N_TAGS, chunk_size: int = 256,
                 song_pool: int = SONG_POOL, tag_pool: int = TAG_POOL, topk_group: int = 0,
                 song_vote_power: float = 0.0, tag_vote_power: float = 0.0,
                 titles: bool = False, own_tag_weight: float = 0.0,
                 cooccurrence_songs: bool = False, report: dict | None = None) -> list[dict]:
  """Seed B: answers from the nearest training playlists in song-embedding space.

  Args:
    train: training ``Playlists`` (or records): the neighbours, and popularity for the fill-up.
    questions: question ``Playlists`` (or records).
    song_embeddings: [n_songs, d] array (numpy or jax, kept on the device when it is there).
    song_ids: [n_songs] raw song id of each embedding row (unique).
    song_neighbours, tag_neighbours: how many nearest playlists vote for songs / tags (only
      playlists that hold songs / tags are counted among them).
    n_songs, n_tags: answer sizes (100 / 10).
    chunk_size: questions per on-device similarity block ([chunk_size, n_train] floats), and
      per sparse tag-overlap product.
    song_pool, tag_pool: the popularity pools of the fill-up (see `most_popular`).
    topk_group: how the nearest playlists by embedding are found (:func:`jaxae.topk.top_k`: 0 =
      ``jax.lax.top_k``; the same neighbours either way); the Melon evaluator passes its
      ``config.eval.topk_group``.
    song_vote_power, tag_vote_power: each neighbour votes with weight ``cosine ** power`` (0: a
      plain count, seed B as published; a neighbour with cosine <= 0 votes nothing above 0).
    titles: questions with neither an embedded song nor a known tag find their neighbours by
      title overlap (off: popularity, as published).
    own_tag_weight: 0 (as published), or the tag votes of every question are blended with the
      tags that co-occur with its own tags (``P(t | t')`` in the training playlists, summed over
      its tags ``t'``): both votes scaled to sum 1 per question, the own-tag votes weighted by it.
    cooccurrence_songs: questions answered through their tags (no embedded song) take the songs
      that co-occur most with their tags (seed A's cold start, counted as
      ``questions_tag_cooccurrence_songs``) instead of their tag-overlap neighbours' votes (off,
      as published); their tags still come from those neighbours.
    report: optional dict that receives counts: questions per route (``questions_embedding``,
      ``questions_tag_overlap``, ``questions_title_overlap``, ``questions_popular``; of the
      tag-overlap ones, ``questions_tag_cooccurrence_songs`` took the co-occurring songs), song
      entries without an embedding (``question_songs_without_embedding``,
      ``train_songs_without_embedding``), training playlists without any
      (``train_playlists_without_embedding``), and slots filled by popularity (``songs_filled``,
      ``tags_filled``).

  Returns:
    results records ``[{"id", "songs", "tags"}]`` in question order.
  """
  checks.recommender_ints((("song_neighbours", song_neighbours, 1),
                           ("tag_neighbours", tag_neighbours, 1), ("n_songs", n_songs, 1),
                           ("n_tags", n_tags, 1), ("chunk_size", chunk_size, 1),
                           ("song_pool", song_pool, 1), ("tag_pool", tag_pool, 1),
                           ("topk_group", topk_group, 0)))
  titles = checks.recommender_flag("titles", titles)
  cooccurrence_songs = checks.recommender_flag("cooccurrence_songs", cooccurrence_songs)
  powers = {"songs": checks.number(song_vote_power, "eval.recommender_args.song_vote_power",
                                   minimum=0),
            "tags": checks.number(tag_vote_power, "eval.recommender_args.tag_vote_power",
                                  minimum=0)}
  own_tag_weight = checks.number(own_tag_weight, "eval.recommender_args.own_tag_weight",
                                 minimum=0)
  emb = jnp.asarray(song_embeddings, jnp.float32)
  ids = np.asarray(song_ids)
  if emb.ndim != 2 or ids.ndim != 1 or emb.shape[0] != len(ids):
    raise DataError(f"song embeddings {tuple(emb.shape)} do not match {ids.shape} song ids")
  if ids.size and ids.dtype.kind not in "iu":
    raise DataError(f"song ids of the embedding rows must be integers, got dtype {ids.dtype}")
  ids = ids.astype(np.int64)
  if len(np.unique(ids)) != len(ids):
    dup = np.sort(ids)[np.flatnonzero(np.diff(np.sort(ids)) == 0)[0]]
    raise DataError(f"song id {dup} has more than one embedding row")

  p = prepare(train, questions)
  t, q = p.train, p.questions
  n_q, n_t = len(q), len(t)

  t_rows = _embedding_rows(ids, t.songs)
  q_rows = _embedding_rows(ids, q.songs)
  train_unit, train_ok = _unit_rows(sum_embeddings(emb, t.song_indptr, t_rows))
  q_unit, q_ok = _unit_rows(sum_embeddings(emb, q.song_indptr, q_rows))
  has_emb, train_ok_host = (np.asarray(x) for x in jax.device_get((q_ok, train_ok)))
  has_tags = np.diff(p.seen_tags.indptr) > 0
  if titles:
    train_titles, q_titles = title_matrices(t.titles, q.titles)
  else:
    train_titles, q_titles = sp.csr_matrix((n_t, 0)), sp.csr_matrix((n_q, 0))
  has_title = np.diff(q_titles.indptr) > 0
  by_emb = np.flatnonzero(has_emb)
  by_tags = np.flatnonzero(~has_emb & has_tags)
  by_title = np.flatnonzero(~has_emb & ~has_tags & has_title)
  self_idx = self_index(t.ids, q.ids)
  q_sel = q_unit if len(by_emb) == n_q else q_unit[jnp.asarray(by_emb)]
  rows = np.concatenate([by_emb, by_tags, by_title])
  train_tags = code_matrix(t.tag_indptr, p.tags.codes_of_items, len(p.tags))
  train_songs = code_matrix(t.song_indptr, p.songs.codes_of_items, len(p.songs))

  holds = {"songs": np.diff(train_songs.indptr) > 0, "tags": np.diff(train_tags.indptr) > 0}
  n_nb = {"songs": min(song_neighbours, n_t), "tags": min(tag_neighbours, n_t)}
  # One search for both votes when every playlist holds songs and tags, else one per vote (the
  # searches of each route share its product): {name: (neighbours, candidate playlists)}.
  if holds["songs"].all() and holds["tags"].all():
    searches = {"both": (max(n_nb.values()), holds["songs"])}
  else:
    searches = {w: (n_nb[w], holds[w]) for w in n_nb}
  embedded = neighbours_by_embedding(
      q_sel, train_unit, [train_ok & jnp.asarray(c) for _, c in searches.values()],
      self_idx[by_emb], [n for n, _ in searches.values()], chunk_size, topk_group)
  by_overlap = [neighbours_by_tags(q_m[rows_m], train_m, self_idx[rows_m],
                                   [n for n, _ in searches.values()], chunk_size,
                                   [c for _, c in searches.values()])
                for q_m, train_m, rows_m in ((p.seen_tags, train_tags, by_tags),
                                             (q_titles, train_titles, by_title))]
  found = {}
  for w, *parts in zip(searches, embedded, *by_overlap):
    found[w] = tuple(np.concatenate(x) for x in zip(*parts))
  if "both" in found:
    nb, sims = found.pop("both")
    found = {w: (nb[:, :n], sims[:, :n]) for w, n in n_nb.items()}

  own = {"songs": None,
         "tags": (p.seen_tags, tag_given_tag(train_tags), own_tag_weight) if own_tag_weight
                 else None}
  out = {}
  for what, items, seen, vocab, n_out, pool in (
      ("songs", train_songs, p.seen_songs, p.songs, n_songs, song_pool),
      ("tags", train_tags, p.seen_tags, p.tags, n_tags, tag_pool)):
    nb, sims = found[what]
    voting = np.ones(len(rows), bool)             # rows: by_emb, by_tags, by_title
    by_cooc = what == "songs" and cooccurrence_songs
    if by_cooc:                                   # their songs come from the co-occurrence
      voting[len(by_emb):len(by_emb) + len(by_tags)] = False
    weights = vote_weights(nb[voting], sims[voting], rows[voting], n_q, n_t, powers[what])
    chosen, n_chosen = top_voted(weights, items, seen, n_out, vocab.rank, own[what])
    if by_cooc and len(by_tags):
      tag_songs = song_tag_counts(train_songs, train_tags).T.tocsr()
      chosen[by_tags], n_chosen[by_tags] = songs_of_tags(p.seen_tags, p.seen_songs, tag_songs,
                                                         by_tags, n_out, vocab.rank, chunk_size)
    out[what] = vocab.items[fill_up(chosen, n_chosen, seen, vocab, n_out, pool, what)]
    out[what + "_filled"] = int((n_out - n_chosen).sum())

  if report is not None:
    report.update(
        questions=n_q, questions_embedding=len(by_emb), questions_tag_overlap=len(by_tags),
        questions_title_overlap=len(by_title),
        questions_tag_cooccurrence_songs=len(by_tags) if cooccurrence_songs else 0,
        questions_popular=n_q - len(by_emb) - len(by_tags) - len(by_title),
        question_songs_without_embedding=int((q_rows < 0).sum()),
        train_songs_without_embedding=int((t_rows < 0).sum()),
        train_playlists_without_embedding=int((~train_ok_host).sum()),
        songs_filled=out["songs_filled"], tags_filled=out["tags_filled"])
  return to_records(q.ids, out["songs"], out["tags"])
