"""The Kakao Arena split: full playlists -> train + masked questions + answers.

Reproduces ``split_data.py`` of kakao-arena/melon-playlist-continuation (``ArenaSplitter``):

1. ``random.seed(777); random.shuffle(playlists)``, then the first ``int(0.8 * P)`` playlists are
   train and the rest are the playlists to question. We shuffle an index list with
   ``random.Random(seed)``, which draws exactly the same permutation, so with ``seed=777`` and the
   same input order our train / question partition (and its order) equals the official one.
2. The question playlists are cut, in that shuffled order, into contiguous blocks at
   ``int(0.3 T)``, ``int(0.8 T)``, ``int(0.95 T)``: song-only 30%, song+tags 50%, tags-only 15%,
   title-only 5% (``_mask_data``).
3. ``_mask(playlists, mask_cols, del_cols)``: a *masked* field keeps a uniformly random
   ``len // 2`` of its entries (in original order) in the question and the other ``len - len // 2``
   in the answer; a *deleted* field is empty in the question and the answer holds its first 100
   songs / 10 tags. song-only masks songs and deletes tags; song+tags masks both; tags-only masks
   tags and deletes songs; title-only deletes both. Every other field (id, title, like_cnt,
   updt_date) is copied to both question and answer.
4. Questions and answers are shuffled with one shared permutation.

Deviations (documented, deliberate):

* Randomness: the official masks and final shuffle use numpy's global generator without a seed, so
  they are not reproducible; ours use ``np.random.default_rng(seed)`` and are deterministic.
* Masked-out halves are also truncated to 100 songs / 10 tags (``max_answer_songs`` /
  ``max_answer_tags``); the official code truncates only deleted fields. Melon playlists hold at
  most 200 songs, so a masked-out half is at most 100 songs anyway; the cap guarantees the metric's
  assumption (answers hold <= 100 songs / 10 tags) for any input.
* ``blank_titles`` (default none, as in the official code) empties the title of the given question
  types. The released ``test.json`` has empty titles in every question that has songs (song-only
  and song+tags), so ``RELEASED_BLANK_TITLES`` reproduces that look; answers keep the title.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from typing import Sequence

from absl import logging
import numpy as np

from jaxae.data.readers.melon import (Playlists, csr_from_lengths, read_playlists, segment_ids,
                                      write_playlists)
from jaxae.errors import DataError

QUESTION_TYPES = ("song_only", "song_tags", "tags_only", "title_only")
# Cumulative block ends of the four types (``_mask_data``).
TYPE_BOUNDS = (0.3, 0.8, 0.95)
OFFICIAL_SEED = 777
TRAIN_FRACTION = 0.8
MAX_ANSWER_SONGS = 100
MAX_ANSWER_TAGS = 10
RELEASED_BLANK_TITLES = ("song_only", "song_tags")

# Which fields a question type masks (True) or deletes (False): (songs, tags).
_MASKED = {"song_only": (True, False), "song_tags": (True, True), "tags_only": (False, True),
           "title_only": (False, False)}


@dataclasses.dataclass
class KakaoSplit:
  """Train playlists plus questions / answers (aligned: row ``i`` of both is one playlist).

  Attributes:
    train: the full training playlists.
    questions: the masked question playlists.
    answers: per question, the masked-out songs / tags (same ids, titles, dates as questions).
    question_types: str array [Q], one of ``QUESTION_TYPES`` per question.
  """

  train: Playlists
  questions: Playlists
  answers: Playlists
  question_types: np.ndarray

  def type_counts(self) -> dict[str, int]:
    return {t: int((self.question_types == t).sum()) for t in QUESTION_TYPES}

  def write(self, out_dir: str | os.PathLike) -> dict[str, str]:
    """Writes ``train.json``, ``questions.json``, ``answers.json``, ``question_types.json``."""
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    paths = {name: os.path.join(out, f"{name}.json")
             for name in ("train", "questions", "answers", "question_types")}
    write_playlists(self.train, paths["train"])
    write_playlists(self.questions, paths["questions"])
    write_playlists(self.answers, paths["answers"])
    types = dict(zip(map(str, self.questions.ids.tolist()), self.question_types.tolist()))
    with open(paths["question_types"], "w", encoding="utf-8") as f:
      json.dump(types, f, ensure_ascii=False)
    return paths


def make_questions(playlists: Playlists, rng: np.random.Generator, *,
                   blank_titles: Sequence[str] = (),
                   max_answer_songs: int = MAX_ANSWER_SONGS,
                   max_answer_tags: int = MAX_ANSWER_TAGS,
                   shuffle: bool = True) -> tuple[Playlists, Playlists, np.ndarray]:
  """``_mask_data``: turns full playlists into (questions, answers, question types).

  The playlists are taken in the given order: the first 30% become song-only questions, the next
  50% song+tags, 15% tags-only, the last 5% title-only. Vectorized over all entries.
  """
  unknown = set(blank_titles) - set(QUESTION_TYPES)
  if unknown:
    raise DataError(f"blank_titles: unknown question types {sorted(unknown)}; known: "
                    f"{list(QUESTION_TYPES)}")
  t = len(playlists)
  bounds = [0] + [int(t * b) for b in TYPE_BOUNDS] + [t]
  type_idx = np.repeat(np.arange(len(QUESTION_TYPES)), np.diff(bounds))
  masked_songs = np.array([_MASKED[q][0] for q in QUESTION_TYPES])[type_idx]
  masked_tags = np.array([_MASKED[q][1] for q in QUESTION_TYPES])[type_idx]

  q_sptr, q_songs, a_sptr, a_songs = _mask_field(playlists.song_indptr, playlists.songs,
                                                 masked_songs, max_answer_songs, rng)
  q_tptr, q_tags, a_tptr, a_tags = _mask_field(playlists.tag_indptr, playlists.tags, masked_tags,
                                               max_answer_tags, rng)
  types = np.asarray(QUESTION_TYPES)[type_idx]
  blank = np.isin(types, list(blank_titles))
  q_titles = ["" if b else title for b, title in zip(blank.tolist(), playlists.titles)]
  common = dict(ids=playlists.ids, like_cnt=playlists.like_cnt, updt_date=playlists.updt_date)
  questions = Playlists(titles=q_titles, song_indptr=q_sptr, songs=q_songs, tag_indptr=q_tptr,
                        tags=q_tags, source="<questions>", **common)
  answers = Playlists(titles=list(playlists.titles), song_indptr=a_sptr, songs=a_songs,
                      tag_indptr=a_tptr, tags=a_tags, source="<answers>", **common)
  if shuffle:
    perm = rng.permutation(t)
    questions, answers, types = questions.select(perm), answers.select(perm), types[perm]
  return questions, answers, types


def _mask_field(indptr: np.ndarray, values: np.ndarray, masked: np.ndarray, cap: int,
                rng: np.random.Generator):
  """Splits one CSR field: masked rows keep a random ``len // 2`` in the question, deleted rows
  keep none; the answer gets the rest, truncated to its first ``cap`` entries."""
  seg = segment_ids(indptr)
  lengths = np.diff(indptr)
  n = len(values)
  keys = rng.random(n)
  order = np.lexsort((keys, seg))
  rank = np.empty(n, np.int64)
  rank[order] = np.arange(n, dtype=np.int64) - indptr[seg[order]]
  in_q = masked[seg] & (rank < (lengths // 2)[seg])
  in_a = ~in_q
  # Rank of each answer entry among its playlist's answer entries, in original order.
  a_seg = seg[in_a]
  a_len = np.bincount(a_seg, minlength=len(lengths))
  a_ptr = csr_from_lengths(a_len)
  a_rank = np.arange(len(a_seg), dtype=np.int64) - a_ptr[a_seg]
  keep_a = a_rank < cap
  a_vals = values[in_a][keep_a]
  a_ptr = csr_from_lengths(np.minimum(a_len, cap))
  q_ptr = csr_from_lengths(np.bincount(seg[in_q], minlength=len(lengths)))
  return q_ptr, values[in_q], a_ptr, a_vals


def kakao_split(playlists: Playlists, *, seed: int = OFFICIAL_SEED,
                train_fraction: float = TRAIN_FRACTION, blank_titles: Sequence[str] = (),
                max_answer_songs: int = MAX_ANSWER_SONGS,
                max_answer_tags: int = MAX_ANSWER_TAGS) -> KakaoSplit:
  """Splits full playlists like the official ``ArenaSplitter.run`` (see the module docstring)."""
  if not 0.0 < train_fraction < 1.0:
    raise DataError(f"train_fraction must be in (0, 1), got {train_fraction}")
  perm = list(range(len(playlists)))
  random.Random(seed).shuffle(perm)
  perm = np.asarray(perm, dtype=np.int64)
  n_train = int(len(playlists) * train_fraction)
  train = playlists.select(perm[:n_train])
  rest = playlists.select(perm[n_train:])
  rng = np.random.default_rng(seed)
  questions, answers, types = make_questions(rest, rng, blank_titles=blank_titles,
                                             max_answer_songs=max_answer_songs,
                                             max_answer_tags=max_answer_tags)
  split = KakaoSplit(train, questions, answers, types)
  logging.info("Kakao split of %s (seed %d): %d train, %d questions %s", playlists.source, seed,
               len(train), len(questions), split.type_counts())
  return split


def write_split(split: KakaoSplit | Playlists, out_dir: str | os.PathLike,
                **split_kwargs) -> KakaoSplit:
  """Writes a split (computing it first with :func:`kakao_split` when given playlists)."""
  if isinstance(split, Playlists):
    split = kakao_split(split, **split_kwargs)
  elif split_kwargs:
    raise TypeError(f"split options {sorted(split_kwargs)} given with an already computed split")
  split.write(out_dir)
  return split


def read_split(out_dir: str | os.PathLike) -> KakaoSplit:
  """Reads a split written by :func:`write_split`, checking that its files agree."""
  out = os.fspath(out_dir)
  train = read_playlists(os.path.join(out, "train.json"))
  questions = read_playlists(os.path.join(out, "questions.json"))
  answers = read_playlists(os.path.join(out, "answers.json"))
  types_path = os.path.join(out, "question_types.json")
  if not np.array_equal(questions.ids, answers.ids):
    raise DataError(f"{out}: questions.json and answers.json list different playlist ids")
  try:
    with open(types_path, encoding="utf-8") as f:
      types_map = json.load(f)
  except FileNotFoundError:
    raise DataError(f"{types_path}: no such file") from None
  except json.JSONDecodeError as e:
    raise DataError(f"{types_path}: bad JSON at line {e.lineno} column {e.colno}: "
                    f"{e.msg}") from None
  if not isinstance(types_map, dict):
    raise DataError(f"{types_path}: expected an object playlist id -> question type")
  missing = [i for i in questions.ids.tolist() if str(i) not in types_map]
  if missing:
    raise DataError(f"{types_path}: no question type for playlist id {missing[0]} "
                    f"({len(missing)} missing)")
  types = np.asarray([types_map[str(i)] for i in questions.ids.tolist()], dtype=str)
  bad = sorted(set(types.tolist()) - set(QUESTION_TYPES))
  if bad:
    raise DataError(f"{types_path}: unknown question type {bad[0]!r}; known: "
                    f"{list(QUESTION_TYPES)}")
  overlap = np.intersect1d(train.ids, questions.ids)
  if len(overlap):
    raise DataError(f"{out}: playlist id {int(overlap[0])} is both in train.json and "
                    f"questions.json")
  return KakaoSplit(train, questions, answers, types)
