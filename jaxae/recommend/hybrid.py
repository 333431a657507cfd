r"""Seed A of the Melon solution (hybrid): content neighbours densify the query, the CF AE ranks.

Two trained autoencoders: the content AE (``configs/melon_content_ae.py``: songs x one-hot meta; its
code layer places songs by release year / month / genre / tags) and the CF AE
(``configs/melon_cf_ae.py``: playlists x songs; it scores every song for a playlist). For each
question:

  1. densify: every question song the content AE knows brings its nearest songs by cosine of the
     content codes (on the device, :func:`jaxae.topk.top_k` in chunks of query songs, the
     evaluator's ``config.eval.topk_group``; only songs the CF AE
     has as columns qualify), ``k`` per song with ``k = clip(ceil((dense_query_songs - n) / m),
     min_content_neighbours, max_content_neighbours)`` for a question of ``n`` songs of which ``m``
     have a content code (``k = 0`` once ``n >= dense_query_songs``): the query grows towards about
     100 songs;
  2. songs: the CF AE scores every song for the densified query (batches of queries on the device);
     the top ``n_songs`` (100) that are not the question's own songs (``-inf`` before ``top_k``);
  3. tags: the song <-> tag co-occurrence of the training playlists (``C = S^T T``, S playlist x
     song, T playlist x tag) summed over the recommended songs, minus the question's own tags, top
     ``n_tags`` (10), ties to the more popular tag. As published every recommended song counts 1
     and ``C`` is used as it is; three settings (all off by default) refine it:
     ``tag_rank_discount`` weighs the song at rank ``r`` (0-based) by ``1 / log2(r + 2)``,
     ``tag_song_norm`` divides each song's row of ``C`` by (the number of training playlists
     holding it and a tag) to that power (1: the song's tag distribution), and
     ``own_tag_weight`` adds the tags that co-occur with the question's own tags (``P(t | t')``
     from the training playlists, summed over its tags ``t'``): both votes are scaled to sum 1
     per question and the own-tag votes weighted by it;
  4. cold start: a question with no song the CF AE (or its densification) can take but with
     known tags gets the songs that co-occur most with its tags (``tags @ C^T``), tags as in 3;
     with neither, and ``titles`` on, the ``title_neighbours`` training playlists whose titles
     overlap most with its title (character bigrams, as seed B's title route:
     :func:`jaxae.recommend.song_as_user.title_tokens`) vote for its songs and its tags (weight
     ``cosine ** title_vote_power``; only playlists holding songs / tags count); a question with
     none of these is answered by popularity (`most_popular`). Short lists are filled up with the
     most popular training items not already there.

Without song meta (the real Melon sample has no ``song_meta.json``) there is no content AE: the
``melon_content`` pipeline refuses to build its matrix, so a content AE trained on a tag block
alone would need a different pipeline. Seed A then runs **without densification**
(``content=None``): the CF AE scores the question's own songs only. The report counts it
(``content_model`` 0, ``questions_densified`` 0), so a score without densification is never
mistaken for the full seed.

How a user runs it (``configs/melon_hybrid.py``): train the content AE, then the CF AE with the
Melon evaluator and ``recommender="hybrid"``; the evaluator hands the recommender the model being
evaluated (the CF AE) as ``score_top_k`` and loads the content AE once from
``eval.recommender_args.content_workdir`` (:func:`load_content`)::

  python train.py --config=configs/melon_content_ae.py --workdir=workdirs/melon_content_ae
  python train.py --config=configs/melon_hybrid.py \
      --config.eval.recommender_args.content_workdir=workdirs/melon_content_ae
  python eval.py --workdir=workdirs/melon_hybrid --split=test     # results.json for submission
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jaxae import checks
from jaxae.data.batching import full_batches
from jaxae.data.matrix import Interactions
from jaxae.data.sparse import SparseBatch, real_entries
from jaxae.errors import CheckpointError, ConfigError, DataError
from jaxae.recommend.cooccurrence import (blend_own_tags, song_tag_counts, songs_of_tags,
                                          tag_given_tag)
from jaxae.recommend.popular import (N_SONGS, N_TAGS, SONG_POOL, TAG_POOL, code_matrix,
                                     fill_up, first_unseen, merge_fill, prepare, row_of_entries,
                                     to_records, top_per_row_chunked)
from jaxae.recommend.song_as_user import (neighbours_by_embedding, neighbours_by_tags,
                                          self_index, title_matrices, top_voted, vote_weights)
from jaxae.topk import top_k_excluding

DENSE_QUERY_SONGS = 100   # seed A: densify the query to about 100 songs
MIN_CONTENT_NEIGHBOURS = 1
MAX_CONTENT_NEIGHBOURS = 3

# (query [Q, n_cols] binary CSR, exclude [Q, n_cols] binary CSR, k) -> (column [Q, k], valid [Q, k])
ScoreTopK = Callable[[sp.csr_matrix, sp.csr_matrix, int], tuple[np.ndarray, np.ndarray]]


class ContentEmbeddings(NamedTuple):
  """The content AE's code of each song row (what densifies the queries)."""

  embeddings: Any         # [S, d] float (numpy or jax; kept on the device when it is there)
  song_ids: np.ndarray    # [S] raw song id of each row (unique)
  source: str = ""        # where they come from, for messages (``workdir@step``)


# ------------------------------------------------------------------------------- the CF model
@functools.partial(jax.jit, static_argnames=("k", "group"))
def _top_k_excluding(scores: jax.Array, exclude: SparseBatch, k: int, group: int = 0
                     ) -> tuple[jax.Array, jax.Array]:
  """Per row the ``k`` best columns of ``scores`` [B, n], ``exclude``'s entries set to -inf
  (``group``: :func:`jaxae.topk.top_k`'s)."""
  s = exclude.cols.shape[0]
  shard_scores = scores.astype(jnp.float32).reshape(s, -1, scores.shape[-1])   # [S, B/S, n]
  one_shard = functools.partial(top_k_excluding, k=k, group=group)
  vals, idx = jax.vmap(one_shard)(shard_scores, exclude.seg, exclude.cols, real_entries(exclude))
  return vals.reshape(-1, k), idx.reshape(-1, k)


def model_top_k(score_fn: Callable[[SparseBatch], jax.Array],
                put_fn: Callable[[SparseBatch], SparseBatch] = jax.device_put, *,
                batch_size: int = 1024, num_shards: int = 1, group: int = 0) -> ScoreTopK:
  """A :data:`ScoreTopK` from a model's jitted ``score_fn`` (``SparseBatch -> [B, n_cols]``).
  ``group`` picks how the top k is found (``config.eval.topk_group``, :func:`jaxae.topk.top_k`:
  0 = ``jax.lax.top_k``; the same columns either way).

  The queries go through ``full_batches`` (``batch_size`` rows in ``num_shards`` shards, put on the
  devices by ``put_fn``); only a ``[batch_size, n_cols]`` score block exists at a time and the
  top-k of every batch stays on the device until one transfer at the end. The batches' ``rows``
  are the query indices (0 ..): right for models without per-row parameters (the Deep AE), not for
  CDAE's user embedding. Single-process: the top-k blocks are read back whole.
  """
  def top_k(query: sp.csr_matrix, exclude: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    n, n_cols = query.shape
    if exclude.shape != query.shape:
      raise DataError(f"exclusion matrix {exclude.shape} differs from the queries {query.shape}")
    if not n:
      return np.zeros((0, k), np.int64), np.zeros((0, k), bool)

    def inter(m):
      m = sp.csr_matrix(m, dtype=np.float32)
      m.sum_duplicates()
      m.sort_indices()
      return Interactions(m, np.arange(n), np.arange(n_cols))

    parts = []
    for inputs, excl in full_batches(inter(query), batch_size, num_shards=num_shards,
                                     targets=inter(exclude)):
      inputs = put_fn(inputs)
      parts.append(_top_k_excluding(score_fn(inputs), put_fn(excl), k, group))
    vals, idx = jax.device_get(([v for v, _ in parts], [i for _, i in parts]))
    vals, idx = np.concatenate(vals)[:n], np.concatenate(idx)[:n]
    return idx.astype(np.int64), np.isfinite(vals)

  return top_k


# ---------------------------------------------------------------------------- the content AE
def load_content(dataset, split: str, *, content_workdir: str | None = None,
                 content_step: int | None = None) -> dict[str, Any]:
  """The evaluator's one-time setup of ``hybrid``: the content AE's song codes from its workdir.

  Loads the checkpoint (``jaxae.evaluate.load_checkpoint``: ``load_for_eval`` under the hood),
  rebuilds its data from its saved config (checked against its ``id_maps.npz``) and embeds every
  song row with its code layer. The content AE must come from the same Melon world as ``dataset``
  (same training playlists, same questions of ``split``); otherwise a ConfigError says so.

  Returns:
    ``{"content": ContentEmbeddings | None}`` (None without ``content_workdir``: no densification).
  """
  if content_workdir is None:
    return {"content": None}
  if not isinstance(content_workdir, (str, os.PathLike)) or not os.fspath(content_workdir):
    raise ConfigError(f"config.eval.recommender_args.content_workdir must be a workdir or None, "
                      f"got {content_workdir!r}")
  # pylint: disable=import-outside-toplevel  (the evaluation package imports the recommenders)
  from jaxae import evaluate
  from jaxae.evaluation.melon import song_embeddings
  # pylint: enable=import-outside-toplevel
  if not os.path.isdir(content_workdir):
    raise CheckpointError(f"content_workdir {os.fspath(content_workdir)!r}: no such workdir (train "
                          f"configs/melon_content_ae.py there first)")
  run = evaluate.load_checkpoint(content_workdir, content_step)
  if run.config.data.get("name") != "melon_content":
    raise ConfigError(f"content_workdir {run.workdir}: expected a content AE (data.name "
                      f"'melon_content'), found data.name {run.config.data.get('name')!r}")
  cds = evaluate.rebuild_dataset(run)
  for key in ("train_playlists", f"{split}_questions"):
    mine, theirs = dataset.extras.get(key), cds.extras.get(key)
    if mine is None or theirs is None:
      continue
    if not np.array_equal(np.asarray(mine.ids if hasattr(mine, "ids") else [r["id"] for r in mine]),
                          np.asarray(theirs.ids)):
      raise ConfigError(f"content_workdir {run.workdir}: its content AE was trained on another "
                        f"Melon world ({key} differ from the evaluated data's); train it with the "
                        f"same seed, data.path and data.split_seed")
  emb = song_embeddings(evaluate.make_context(run, cds, split))
  return {"content": ContentEmbeddings(emb, np.asarray(cds.train.row_ids, np.int64),
                                       f"{run.workdir}@{run.step}")}


def _lookup(sorted_or_not: np.ndarray, raw: np.ndarray) -> np.ndarray:
  """Index of each ``raw`` id in the id array ``sorted_or_not`` (any order), or -1."""
  order = np.argsort(sorted_or_not, kind="stable")
  if not len(order):
    return np.full(len(raw), -1, np.int64)
  pos = np.clip(np.searchsorted(sorted_or_not[order], raw), 0, len(order) - 1)
  return np.where(sorted_or_not[order][pos] == raw, order[pos], -1).astype(np.int64)


@jax.jit
def _unit(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  norm = jnp.linalg.norm(x, axis=1, keepdims=True)
  return x / jnp.maximum(norm, 1e-30), norm[:, 0] > 0


def neighbours_per_song(content: ContentEmbeddings, rows: np.ndarray, allowed: np.ndarray, k: int,
                        chunk_size: int, group: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` nearest content rows [len(rows), k] (index, valid) of content ``rows`` by cosine.

  Candidates are the content rows with a nonzero code and ``allowed`` (e.g. CF columns); a row is
  never its own neighbour; a query row whose own code is zero has no neighbour. ``group``: how the
  top k is found (:func:`jaxae.topk.top_k`; the same neighbours either way).
  """
  unit, ok = _unit(jnp.asarray(content.embeddings, jnp.float32))
  cand_ok = ok & jnp.asarray(allowed)
  ((nb, sims),) = neighbours_by_embedding(unit[jnp.asarray(rows)], unit, [cand_ok], rows, [k],
                                          chunk_size, group)
  return nb, np.isfinite(sims) & np.asarray(jax.device_get(ok))[rows][:, None]


def densify_queries(q_row: np.ndarray, q_songs: np.ndarray, n_q: int, content: ContentEmbeddings,
                    cf_ids: np.ndarray, *, dense_query_songs: int, min_neighbours: int,
                    max_neighbours: int, chunk_size: int,
                    group: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
  """Content neighbours of the question songs: (question row, CF column) pairs to add, and counts.

  Args:
    q_row, q_songs: question index and raw song id of every question song entry.
    n_q: number of questions.
    content: the content AE's song codes.
    cf_ids: raw song id of each CF column (only these can be added).
    group: how each song's nearest songs are found (`neighbours_per_song`).
  """
  c_ids = np.asarray(content.song_ids, np.int64)
  if np.asarray(content.embeddings).ndim != 2 or content.embeddings.shape[0] != len(c_ids):
    raise DataError(f"content embeddings {tuple(content.embeddings.shape)} do not match "
                    f"{len(c_ids)} song ids")
  c_row = _lookup(c_ids, q_songs)
  has = c_row >= 0
  n_songs_q = np.bincount(q_row, minlength=n_q)
  m_songs_q = np.bincount(q_row[has], minlength=n_q)
  need = np.maximum(dense_query_songs - n_songs_q, 0)
  per_song = np.clip(-(-need // np.maximum(m_songs_q, 1)), min_neighbours, max_neighbours)
  per_song = np.where(need > 0, per_song, 0)
  cf_col = _lookup(cf_ids, c_ids)                   # CF column of each content row, or -1
  counts = {"question_songs_without_content": int((~has).sum()),
            "content_songs_not_in_cf": int((cf_col < 0).sum())}
  use = has & (per_song[q_row] > 0)
  if not use.any() or max_neighbours < 1:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), counts
  uniq, inv = np.unique(c_row[use], return_inverse=True)
  k = int(min(max_neighbours, len(c_ids) - 1))
  if k < 1:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), counts
  nb, valid = neighbours_per_song(content, uniq, cf_col >= 0, k, chunk_size, group)
  nb, valid = nb[inv.reshape(-1)], valid[inv.reshape(-1)]           # per query-song entry
  take = valid & (np.arange(k)[None, :] < per_song[q_row[use]][:, None])
  rows = np.repeat(q_row[use], k).reshape(-1, k)[take]
  return rows, cf_col[nb[take]], counts


# ---------------------------------------------------------------------------------- seed A
def _complete_songs(chosen_ids: np.ndarray, n_chosen: np.ndarray, p, k: int,
                    pool: int) -> np.ndarray:
  """Completes raw-id rows ``chosen_ids[:n]`` with popular training songs not seen nor chosen."""
  n_q = chosen_ids.shape[0]
  real = np.arange(k)[None, :] < n_chosen[:, None]
  codes = p.songs.encode(chosen_ids[real])
  rows = np.repeat(np.arange(n_q), n_chosen)
  known = codes >= 0
  taken = sp.csr_matrix((np.ones(int(known.sum()), np.float32), (rows[known], codes[known])),
                        shape=p.seen_songs.shape)
  fill = first_unseen(p.songs.ranking, (p.seen_songs + taken).tocsr(), k, pool, "songs",
                      need=k - n_chosen)
  return merge_fill(chosen_ids, n_chosen, p.songs.items[np.maximum(fill, 0)])


def hybrid(train: Any, questions: Any, *, score_top_k: ScoreTopK, score_song_ids: Any,
           content: ContentEmbeddings | None = None,
           dense_query_songs: int = DENSE_QUERY_SONGS,
           min_content_neighbours: int = MIN_CONTENT_NEIGHBOURS,
           max_content_neighbours: int = MAX_CONTENT_NEIGHBOURS, n_songs: int = N_SONGS,
           n_tags: int = N_TAGS, chunk_size: int = 256, song_pool: int = SONG_POOL,
           tag_pool: int = TAG_POOL, topk_group: int = 0, tag_rank_discount: bool = False,
           tag_song_norm: float = 0.0, own_tag_weight: float = 0.0, titles: bool = False,
           title_neighbours: int = 100, title_vote_power: float = 0.0,
           report: dict | None = None) -> list[dict]:
  """Seed A: densified queries ranked by the CF AE, tags by song <-> tag co-occurrence.

  Args:
    train: training ``Playlists`` (or records): co-occurrence and popularity.
    questions: question ``Playlists`` (or records).
    score_top_k: the CF AE as a :data:`ScoreTopK` (see :func:`model_top_k`).
    score_song_ids: [n_cols] raw song id of each CF column (unique integers).
    content: the content AE's song codes; None: no densification (counted).
    dense_query_songs: the query size densification aims at (100).
    min_content_neighbours, max_content_neighbours: neighbours per query song (1 .. 3).
    n_songs, n_tags: answer sizes (100 / 10).
    chunk_size: query songs per on-device cosine block, questions per co-occurrence block.
    song_pool, tag_pool: popularity pools of the fill-up (see `most_popular`).
    topk_group: how the content neighbours are found (:func:`jaxae.topk.top_k`: 0 =
      ``jax.lax.top_k``; the same songs either way); the Melon evaluator passes its
      ``config.eval.topk_group``, which it also builds ``score_top_k`` with.
    tag_rank_discount, tag_song_norm, own_tag_weight: how the tags are voted (step 3; False / 0 /
      0: as published).
    titles: questions with neither a song the CF AE takes nor a known tag are answered from the
      training playlists with the most similar titles (off: popularity, as published).
    title_neighbours, title_vote_power: how many of those playlists vote, and the power of the
      cosine each votes with (0: a plain count).
    report: optional dict receiving counts: questions per route (``questions_cf``,
      ``questions_tag_cooccurrence``, ``questions_title_overlap``, ``questions_popular``),
      ``content_model`` (1 / 0),
      ``questions_densified``, ``densify_songs_added``, ``dense_query_songs_mean`` (CF route),
      ``question_songs_not_in_cf``, ``question_songs_without_content``, ``content_songs_not_in_cf``,
      ``songs_filled``, ``tags_filled``.

  Returns:
    results records ``[{"id", "songs", "tags"}]`` in question order.
  """
  checks.recommender_ints((("dense_query_songs", dense_query_songs, 1),
                           ("min_content_neighbours", min_content_neighbours, 0),
                           ("max_content_neighbours", max_content_neighbours, 0),
                           ("n_songs", n_songs, 1), ("n_tags", n_tags, 1),
                           ("chunk_size", chunk_size, 1), ("song_pool", song_pool, 1),
                           ("tag_pool", tag_pool, 1), ("topk_group", topk_group, 0),
                           ("title_neighbours", title_neighbours, 1)))
  tag_rank_discount = checks.recommender_flag("tag_rank_discount", tag_rank_discount)
  titles = checks.recommender_flag("titles", titles)
  tag_song_norm, own_tag_weight, title_vote_power = (
      checks.number(v, f"eval.recommender_args.{k}", minimum=0)
      for k, v in (("tag_song_norm", tag_song_norm), ("own_tag_weight", own_tag_weight),
                   ("title_vote_power", title_vote_power)))
  if min_content_neighbours > max_content_neighbours:
    raise ConfigError(f"config.eval.recommender_args: hybrid's min_content_neighbours "
                      f"({min_content_neighbours}) exceeds "
                      f"max_content_neighbours ({max_content_neighbours})")
  cf_ids = np.asarray(score_song_ids)
  if cf_ids.ndim != 1 or (cf_ids.size and cf_ids.dtype.kind not in "iu"):
    raise DataError(f"hybrid needs a CF model whose columns are song ids (the melon_cf pipeline); "
                    f"got column ids of dtype {cf_ids.dtype}")
  cf_ids = cf_ids.astype(np.int64)
  if len(np.unique(cf_ids)) != len(cf_ids):
    raise DataError("hybrid: the CF model's column song ids are not unique")
  n_cf = len(cf_ids)

  p = prepare(train, questions)
  t, q = p.train, p.questions
  n_q = len(q)
  q_row = row_of_entries(q.song_indptr)
  q_col = _lookup(cf_ids, q.songs)
  known = q_col >= 0

  # 1. Densify the queries with content neighbours (CF columns only).
  add_r, add_c = np.zeros(0, np.int64), np.zeros(0, np.int64)
  counts: dict[str, int] = {}
  if content is not None:
    add_r, add_c, counts = densify_queries(
        q_row, q.songs, n_q, content, cf_ids, dense_query_songs=dense_query_songs,
        min_neighbours=min_content_neighbours, max_neighbours=max_content_neighbours,
        chunk_size=chunk_size, group=topk_group)

  def binary(r, c):
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(n_q, n_cf))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m

  own = binary(q_row[known], q_col[known])
  query = binary(np.concatenate([q_row[known], add_r]), np.concatenate([q_col[known], add_c]))
  q_len = np.diff(query.indptr)

  # 2. CF route: the CF AE ranks every song for the densified query, the question's songs excluded.
  by_cf = np.flatnonzero(q_len > 0)
  chosen = np.full((n_q, n_songs), -1, np.int64)
  n_chosen = np.zeros(n_q, np.int64)
  k_cf = min(n_songs, n_cf)
  if len(by_cf) and k_cf:
    idx, valid = score_top_k(query[by_cf], own[by_cf], k_cf)
    order = np.argsort(~valid, axis=1, kind="stable")          # valid first, rank order kept
    idx, valid = np.take_along_axis(idx, order, 1), np.take_along_axis(valid, order, 1)
    chosen[by_cf, :k_cf] = np.where(valid, cf_ids[np.clip(idx, 0, n_cf - 1)], -1)
    n_chosen[by_cf] = valid.sum(axis=1)

  # 3. Cold start with tags: the songs co-occurring most with the question's tags.
  train_songs = code_matrix(t.song_indptr, p.songs.codes_of_items, len(p.songs))
  train_tags = code_matrix(t.tag_indptr, p.tags.codes_of_items, len(p.tags))
  cooc = song_tag_counts(train_songs, train_tags)   # [songs, tags]: playlists holding both
  has_tags = np.diff(p.seen_tags.indptr) > 0
  by_tags = np.flatnonzero((q_len == 0) & has_tags)

  def raw_songs(codes):                                   # song codes -> raw ids (-1 stays)
    return np.where(codes >= 0, p.songs.items[np.maximum(codes, 0)], -1)

  codes, n_chosen[by_tags] = songs_of_tags(p.seen_tags, p.seen_songs, cooc.T.tocsr(), by_tags,
                                           n_songs, p.songs.rank, chunk_size)
  chosen[by_tags] = raw_songs(codes)
  holds = {"songs": np.diff(train_songs.indptr) > 0, "tags": np.diff(train_tags.indptr) > 0}

  # Cold start with a title only: the playlists with the most similar titles vote.
  by_title, title_tags = np.zeros(0, np.int64), None
  if titles and len(t):
    train_titles, q_titles = title_matrices(t.titles, q.titles)
    by_title = np.flatnonzero((q_len == 0) & ~has_tags & (np.diff(q_titles.indptr) > 0))
    found = neighbours_by_tags(q_titles[by_title], train_titles,
                               self_index(t.ids, q.ids[by_title]),
                               [min(title_neighbours, len(t))] * 2, chunk_size,
                               [holds["songs"], holds["tags"]])
    votes = {}
    for (what, items, seen, vocab, n_out), (nb, sims) in zip(
        (("songs", train_songs, p.seen_songs, p.songs, n_songs),
         ("tags", train_tags, p.seen_tags, p.tags, n_tags)), found):
      weights = vote_weights(nb, sims, np.arange(len(by_title)), len(by_title), len(t),
                             title_vote_power)
      votes[what] = top_voted(weights, items, seen[by_title], n_out, vocab.rank)
    codes, n_chosen[by_title] = votes["songs"]
    chosen[by_title] = raw_songs(codes)
    title_tags = votes["tags"]
  songs = _complete_songs(chosen, n_chosen, p, n_songs, song_pool)

  # 4. Tags from the co-occurrence of the recommended songs (routes cf and tags), from the title
  # neighbours (route title); else popular.
  answered = np.zeros(n_q, bool)
  answered[by_cf] = True
  answered[by_tags] = True
  s_codes = p.songs.encode(songs.reshape(-1)).reshape(n_q, n_songs)
  rows = np.repeat(np.arange(n_q), n_songs).reshape(n_q, n_songs)
  ok = (s_codes >= 0) & answered[:, None]
  rank_weight = (1.0 / np.log2(np.arange(n_songs) + 2.0) if tag_rank_discount
                 else np.ones(n_songs))
  picked = sp.csr_matrix((np.broadcast_to(rank_weight, (n_q, n_songs))[ok],
                          (rows[ok], s_codes[ok])), shape=(n_q, len(p.songs)))
  song_votes = cooc                                              # [songs, tags]: one song's votes
  if tag_song_norm:
    tagged = train_songs.T @ holds["tags"].astype(np.float64)
    song_votes = (sp.diags(np.maximum(tagged, 1.0) ** -tag_song_norm) @ cooc).tocsr()
  tag_given = tag_given_tag(train_tags) if own_tag_weight else None   # [t', t]: P(t | t')

  def song_tag_scores(r):
    s = (picked[r] @ song_votes).tocsr()
    return blend_own_tags(s, p.seen_tags[r], tag_given, own_tag_weight) if own_tag_weight else s

  t_chosen, t_n = top_per_row_chunked(song_tag_scores, np.arange(n_q), n_tags, p.tags.rank,
                                      chunk_size, seen=p.seen_tags)
  if title_tags is not None:
    t_chosen[by_title], t_n[by_title] = title_tags
  tags = fill_up(t_chosen, t_n, p.seen_tags, p.tags, n_tags, tag_pool, "tags")

  if report is not None:
    densified = np.zeros(n_q, bool)
    added = (query - own).tocsr()
    added.eliminate_zeros()
    densified[np.diff(added.indptr) > 0] = True
    report.update(
        questions=n_q, questions_cf=len(by_cf), questions_tag_cooccurrence=len(by_tags),
        questions_title_overlap=len(by_title),
        questions_popular=n_q - len(by_cf) - len(by_tags) - len(by_title),
        content_model=int(content is not None), questions_densified=int(densified.sum()),
        densify_songs_added=int(added.nnz),
        dense_query_songs_mean=float(q_len[by_cf].mean()) if len(by_cf) else 0.0,
        question_songs_not_in_cf=int((~known).sum()),
        question_songs_without_content=counts.get("question_songs_without_content",
                                                  int(len(q.songs)) if content is None else 0),
        content_songs_not_in_cf=counts.get("content_songs_not_in_cf", 0),
        songs_filled=int((n_songs - n_chosen).sum()), tags_filled=int((n_tags - t_n).sum()))
  return to_records(q.ids, songs, p.tags.items[tags])


__all__ = ["hybrid", "model_top_k", "load_content", "ContentEmbeddings", "densify_queries",
           "neighbours_per_song", "ScoreTopK"]
