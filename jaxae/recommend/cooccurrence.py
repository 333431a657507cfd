"""Song <-> tag and tag <-> tag co-occurrence in the training playlists, read by both Melon seeds.

Every count is a sparse product of the binary playlist x song (``S``) and playlist x tag (``T``)
matrices of the training playlists:

  * ``song_tag_counts`` = ``S^T T`` [songs, tags]: training playlists holding both;
  * ``tag_given_tag`` [t', t] = ``P(t | t')``: of the training playlists holding ``t'``, the share
    that also holds ``t`` (zero diagonal);
  * ``songs_of_tags``: a question's tags vote for the songs that co-occur with them (seed A's cold
    start), its own songs excluded;
  * ``blend_own_tags``: votes for tags (from songs or neighbours) blended with the tags that
    co-occur with the question's own ones, both scaled to sum 1 per question.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from jaxae.recommend.popular import top_per_row_chunked


def row_shares(m: sp.spmatrix) -> sp.csr_matrix:
  """Each row of ``m`` divided by its sum (rows summing to 0 stay 0)."""
  total = np.asarray(m.sum(axis=1)).ravel()
  return (sp.diags(np.where(total > 0, 1.0 / np.where(total > 0, total, 1.0), 0.0)) @ m).tocsr()


def song_tag_counts(train_songs: sp.csr_matrix, train_tags: sp.csr_matrix) -> sp.csr_matrix:
  """[songs, tags]: how many training playlists hold both (``S^T T``)."""
  return (train_songs.T.tocsr() @ train_tags).tocsr()


def tag_given_tag(train_tags: sp.csr_matrix) -> sp.csr_matrix:
  """[t', t] float64: ``P(t | t')`` among the training playlists holding ``t'``; zero diagonal."""
  tag_tag = (train_tags.T @ train_tags).tocsr().astype(np.float64)   # diagonal: playlists
  holding = np.maximum(tag_tag.diagonal(), 1.0)
  tag_tag.setdiag(0.0)
  given = (sp.diags(1.0 / holding) @ tag_tag).tocsr()
  given.eliminate_zeros()
  return given


def blend_own_tags(votes: sp.spmatrix, own_tags: sp.spmatrix, given: sp.csr_matrix,
                   weight: float) -> sp.csr_matrix:
  """``row_shares(votes) + weight * row_shares(own_tags @ given)`` [Q, tags].

  ``votes``: each question's votes for the tags; ``own_tags``: its own tags (binary [Q, tags]);
  ``given``: `tag_given_tag`. A question without votes (or without own tags that co-occur with
  any) keeps the other term alone.
  """
  return (row_shares(votes) + weight * row_shares(own_tags @ given)).tocsr()


def songs_of_tags(own_tags: sp.csr_matrix, own_songs: sp.csr_matrix, tag_songs: sp.csr_matrix,
                  rows: np.ndarray, k: int, tie_rank: np.ndarray,
                  chunk: int) -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` songs that co-occur most with the tags of questions ``rows``
  (``own_tags[rows] @ tag_songs``).

  Args:
    own_tags: [Q, tags] binary: the questions' tags.
    own_songs: [Q, songs] binary: their songs, never chosen.
    tag_songs: [tags, songs] `song_tag_counts` transposed (CSR).
    rows: the questions to answer.
    k: songs per question.
    tie_rank: [songs] popularity rank (ties to the more popular song).
    chunk: questions per sparse product, which bounds its memory.

  Returns:
    ``(codes [len(rows), k] padded with -1, n [len(rows)])`` (`top_per_row`'s order).
  """
  return top_per_row_chunked(lambda r: own_tags[r] @ tag_songs, rows, k, tie_rank, chunk,
                             seen=own_songs)


__all__ = ["row_shares", "song_tag_counts", "tag_given_tag", "blend_own_tags", "songs_of_tags"]
