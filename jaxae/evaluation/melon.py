"""The Kakao Arena Melon metric (Music nDCG@100, Tag nDCG@10, score) and its evaluator.

Exactly the official ``evaluate.py`` (``ArenaEvaluator``):

  _idcg(l)      = sum_{i < l} 1 / ln(i + 2)                  (table for l = 0 .. 100)
  _ndcg(gt, rec) = sum_{i : rec[i] in gt} 1 / ln(i + 2)  /  _idcg(len(gt))
  music_ndcg    = mean over playlists of _ndcg(answer songs, the 100 recommended songs)
  tag_ndcg      = mean over playlists of _ndcg(answer tags, the 10 recommended tags)
  score         = 0.85 * music_ndcg + 0.15 * tag_ndcg

The quirk: the ideal DCG counts ``len(answer)`` ideal hits, not ``min(len(answer), K)``, so an
answer with more than 10 tags can never reach a Tag nDCG of 1 (songs: answers hold at most 100, so
there it is the usual nDCG@100). The logarithm's base cancels in the ratio.

Validation is the official one, made strict and readable: every question answered exactly once, no
playlist id that is not a question, exactly 100 unique songs and 10 unique tags each. Each failure
is a :class:`~jaxae.errors.JaxaeError` naming the playlist id and the problem.

Empty answers: the official code divides ``0.0`` by ``_idcgs[0] == 0`` and stops with "float
division by zero" (its ``evaluate`` prints the exception and gives no score), so by default
(``empty_answers="error"``) an answer with no songs or no tags is an error here too (DataError
naming the playlist). The Kakao split never makes one from playlists that have songs and tags, but
splitting playlists that lack tags (e.g. the released ``test.json``, itself a question file) does;
``empty_answers="skip"`` then leaves such a playlist out of that part's mean only (counted in
``music_count`` / ``tag_count``). An answer longer than 100 is always an error (the official
``_idcgs`` table has 101 entries: IndexError).

Scoring is vectorized: the recommendations become a [N, 100] (and [N, 10]) code array, membership in
the answers is one ``np.isin`` over (row, item) keys, DCG a product with the discount vector.

`MelonEvaluator` (``config.eval.evaluators: ["melon"]``) runs the recommender named by
``config.eval.recommender`` (arguments ``config.eval.recommender_args``) on the split's questions
and scores it against the split's answers, both read from ``dataset.extras``:

  extras["train_playlists"]            training Playlists (neighbours, popularity)
  extras["<split>_questions"]          question Playlists of "val" / "test"
  extras["<split>_answers"]            answer Playlists (or records) of the same ids
  extras["<split>_question_types"]     optional {playlist id: type} or an array aligned with the
                                       questions; else the official types
  extras["song_meta"]                  optional SongMeta (genre_most_popular)

Song embeddings (``song_as_user``) are the model's code layer for every row of ``dataset.train``
(the song-as-user matrix: one row per song, raw song ids in ``row_ids``). A recommender that ranks
with the model itself (``hybrid``: the CF AE, ``dataset.train`` = playlists x songs) gets the
model's scores as ``score_top_k`` (batches on the device) and the column song ids.

Baselines (``config.eval.baselines``, e.g. ``("most_popular",)``): recommenders that do not depend
on the model are scored on the same questions, once per evaluator (the result is cached: it does
not change with the params), and reported beside the model as ``baseline/<name>/music_ndcg``,
``.../tag_ndcg``, ``.../melon_score`` (and per question type, ``.../melon_score/<type>`` ...).
"""

from __future__ import annotations

import json
from typing import Any

import jax
import numpy as np

from jaxae import topk
from jaxae.data.dataset import Dataset
from jaxae.errors import ConfigError, DataError
from jaxae.evaluation.context import EvalContext, Evaluator, config_value, row_codes
from jaxae.recommend import Recommender, get_recommender
from jaxae.recommend.hybrid import model_top_k
from jaxae.recommend.popular import PlaylistArrays, playlist_arrays

N_SONGS = 100
N_TAGS = 10
MUSIC_WEIGHT = 0.85
TAG_WEIGHT = 0.15
MAX_ANSWER = 100     # the official _idcgs table covers answers of 0..100 items
EMPTY_ANSWERS = ("error", "skip")


def idcg_table(max_len: int = MAX_ANSWER) -> np.ndarray:
  """``table[l]`` = ideal DCG of ``l`` hits = sum_{i < l} 1 / ln(i + 2), for l = 0 .. max_len."""
  table = np.zeros(max_len + 1, np.float64)
  np.cumsum(1.0 / np.log(np.arange(max_len, dtype=np.float64) + 2.0), out=table[1:])
  return table


def ndcg_rows(rec: np.ndarray, ans_indptr: np.ndarray, ans: np.ndarray) -> np.ndarray:
  """Official nDCG of every row: ``rec`` [N, K] item codes vs ragged answers (CSR-like codes).

  Codes are non-negative integers (any encoding shared by ``rec`` and ``ans``). A row with an
  empty answer gets NaN (the official code divides by zero there).
  """
  n, k = rec.shape
  lengths = np.diff(ans_indptr)
  span = int(max(rec.max(initial=0), ans.max(initial=0))) + 1
  ans_keys = np.sort(np.repeat(np.arange(n, dtype=np.int64), lengths) * span + ans)
  rec_keys = np.arange(n, dtype=np.int64)[:, None] * span + rec
  if len(ans_keys):
    pos = np.minimum(np.searchsorted(ans_keys, rec_keys), len(ans_keys) - 1)
    hits = ans_keys[pos] == rec_keys                       # membership of (row, item) pairs
  else:
    hits = np.zeros(rec.shape, bool)
  dcg = hits @ (1.0 / np.log(np.arange(k, dtype=np.float64) + 2.0))
  idcg = idcg_table(max(MAX_ANSWER, int(lengths.max(initial=0))))[lengths]
  return np.where(lengths > 0, dcg / np.where(lengths > 0, idcg, 1.0), np.nan)


def official_question_type(has_songs: np.ndarray, has_tags: np.ndarray,
                           has_title: np.ndarray) -> np.ndarray:
  """The official ``get_question_type`` names (lower case) from what each question shows."""
  names = np.array(["nothing", "title_only", "tag_only", "tag_title", "song_only", "song_title",
                    "song_tag", "all"])
  return names[4 * np.asarray(has_songs, int) + 2 * np.asarray(has_tags, int)
               + np.asarray(has_title, int)]


def official_question_types(questions: Any) -> dict[int, str]:
  """{playlist id: official question type} from which of songs / tags / title a question shows."""
  q = playlist_arrays(questions, "questions")
  types = official_question_type(np.diff(q.song_indptr) > 0, np.diff(q.tag_indptr) > 0,
                                 np.array([t != "" for t in q.titles], bool))
  return dict(zip(q.ids.tolist(), types.tolist()))


# ----------------------------------------------------------------------------------- validation
def _id_list(ids: np.ndarray, limit: int = 5) -> str:
  shown = ", ".join(str(i) for i in ids[:limit].tolist())
  return shown + (f", ... ({len(ids)} in all)" if len(ids) > limit else "")


def _fixed_rows(indptr: np.ndarray, items: np.ndarray, ids: np.ndarray, k: int,
                what: str) -> np.ndarray:
  """[N, k] rows of a ragged list that must hold exactly ``k`` distinct items per row."""
  lengths = np.diff(indptr)
  wrong = np.flatnonzero(lengths != k)
  if len(wrong):
    i = wrong[0]
    raise DataError(f"results: playlist {ids[i]} has {lengths[i]} {what}, expected exactly {k}"
                    + (f" ({len(wrong)} playlists are wrong)" if len(wrong) > 1 else ""))
  rows = items.reshape(len(ids), k)
  if k > 1 and len(ids):
    s = np.sort(rows, axis=1)
    dup = s[:, 1:] == s[:, :-1]
    bad = np.flatnonzero(dup.any(axis=1))
    if len(bad):
      i = bad[0]
      item = s[i, 1:][dup[i]][0].item()
      raise DataError(f"results: playlist {ids[i]} recommends {what[:-1]} {item!r} more than once "
                      f"(each of the {k} {what} must be unique)")
  return rows


def validate_results(results: Any, question_ids: Any, *, n_songs: int = N_SONGS,
                     n_tags: int = N_TAGS) -> PlaylistArrays:
  """Checks results records as the official evaluator does and returns them in array form.

  Args:
    results: records ``[{"id", "songs", "tags"}]`` (or a Playlists-like object).
    question_ids: the ids of the questions (= of the answers); each must be answered once.
    n_songs, n_tags: the required answer sizes (100 / 10).

  Returns:
    ``PlaylistArrays`` of the results (ids in results order; each row exactly n_songs / n_tags).

  Raises:
    DataError naming the playlist id for: a malformed record, a duplicate result id, an id that is
    not a question, a missing question, a wrong number of songs or tags, a repeated song or tag.
  """
  r = playlist_arrays(results, "results")
  qids = np.asarray(question_ids, np.int64)
  ids_sorted = np.sort(r.ids)
  dup = ids_sorted[1:][ids_sorted[1:] == ids_sorted[:-1]]
  if len(dup):
    raise DataError(f"results: playlist {dup[0]} is answered more than once")
  unknown = r.ids[~np.isin(r.ids, qids)]
  if len(unknown):
    raise DataError(f"results: playlist {unknown[0]} is not a question"
                    + (f" (unknown ids: {_id_list(unknown)})" if len(unknown) > 1 else ""))
  missing = qids[~np.isin(qids, r.ids)]
  if len(missing):
    raise DataError(f"results: {len(missing)} question(s) have no answer: playlist "
                    f"{_id_list(missing)}")
  _fixed_rows(r.song_indptr, r.songs, r.ids, n_songs, "songs")
  _fixed_rows(r.tag_indptr, r.tags, r.ids, n_tags, "tags")
  return r


def _check_answers(a: PlaylistArrays, empty_answers: str) -> None:
  if empty_answers not in EMPTY_ANSWERS:
    raise ConfigError(f"empty_answers must be one of {list(EMPTY_ANSWERS)}, got {empty_answers!r}")
  ids_sorted = np.sort(a.ids)
  dup = ids_sorted[1:][ids_sorted[1:] == ids_sorted[:-1]]
  if len(dup):
    raise DataError(f"answers: playlist {dup[0]} appears more than once")
  for what, indptr in (("songs", a.song_indptr), ("tags", a.tag_indptr)):
    lengths = np.diff(indptr)
    empty = np.flatnonzero(lengths == 0)
    if len(empty) and empty_answers == "error":
      raise DataError(
          f"answers: playlist {a.ids[empty[0]]} has no {what}: its nDCG is undefined (the official "
          f"evaluate.py fails with a division by zero); {len(empty)} answer(s) have no {what} "
          f"(empty_answers='skip' leaves them out of the {what} mean)")
    long = np.flatnonzero(lengths > MAX_ANSWER)
    if len(long):
      raise DataError(f"answers: playlist {a.ids[long[0]]} has {lengths[long[0]]} {what}; the "
                      f"official metric handles at most {MAX_ANSWER}")


# ------------------------------------------------------------------------------------- scoring
def _encode(rec: np.ndarray, ans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Shared non-negative codes for two arrays of ids or strings (small ints are used as is)."""
  if rec.dtype.kind in "iu" and ans.dtype.kind in "iu":
    lo = min(rec.min(initial=0), ans.min(initial=0))
    hi = max(rec.max(initial=0), ans.max(initial=0))
    if lo >= 0 and (int(hi) + 1) * (len(rec) + 1) < 2**62:
      return rec.astype(np.int64), ans.astype(np.int64)
  vocab, inv = np.unique(np.concatenate([rec.ravel(), ans]), return_inverse=True)
  inv = inv.reshape(-1)
  return inv[:rec.size].reshape(rec.shape), inv[rec.size:]


def score_results(answers: Any, results: Any, question_types: Any = None, *,
                  empty_answers: str = "error") -> dict:
  """The official Melon score of results against answers.

  Args:
    answers: answer records (``id``, ``songs``, ``tags``) or Playlists: the hidden songs / tags.
    results: results records ``[{"id", "songs": [100], "tags": [10]}]``.
    question_types: optional {playlist id: type name} for a per-type breakdown (e.g. the Kakao
      split's ``question_types.json``, or `official_question_types` of the questions).
    empty_answers: "error" (the official behaviour: an answer without songs or without tags makes
      the evaluation fail) or "skip" (such a playlist is left out of that part's mean only).

  Returns:
    ``{"music_ndcg", "tag_ndcg", "score", "count", "music_count", "tag_count"}`` (the counts are
    the playlists averaged; they differ from ``count`` only with "skip"); ``score`` is
    ``0.85 * music_ndcg + 0.15 * tag_ndcg`` (= the mean of per-playlist scores, as officially,
    when nothing is skipped). With ``question_types`` also ``"per_type"``: {type: the same dict}.
  """
  a = playlist_arrays(answers, "answers")
  _check_answers(a, empty_answers)
  r = validate_results(results, a.ids)           # as officially: always validated first
  n = len(r)
  if not n:
    raise DataError("results: nothing to score (no playlists)")
  order = np.argsort(a.ids)
  row = order[np.searchsorted(a.ids[order], r.ids)]     # answer row of each result
  k_s = np.diff(r.song_indptr)[0]
  k_t = np.diff(r.tag_indptr)[0]

  def gather(indptr, items):
    lengths = np.diff(indptr)[row]
    starts = indptr[row]
    new_ptr = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=new_ptr[1:])
    src = np.arange(new_ptr[-1]) - np.repeat(new_ptr[:-1] - starts, lengths)
    return new_ptr, items[src]

  s_ptr, s_items = gather(a.song_indptr, a.songs)
  t_ptr, t_items = gather(a.tag_indptr, a.tags)
  rec_s, ans_s = _encode(r.songs.reshape(n, k_s), s_items)
  rec_t, ans_t = _encode(r.tags.reshape(n, k_t), t_items)
  music = ndcg_rows(rec_s, s_ptr, ans_s)
  tag = ndcg_rows(rec_t, t_ptr, ans_t)
  out = _summary(music, tag)
  if question_types is not None:
    by_id = {int(k): v for k, v in question_types.items()}   # JSON files give string keys
    try:
      types = np.array([str(by_id[i]) for i in r.ids.tolist()])
    except KeyError as e:
      raise DataError(f"question types: playlist {e.args[0]} has no question type") from None
    out["per_type"] = {str(t): _summary(music[types == t], tag[types == t])
                       for t in np.unique(types)}
  return out


def _summary(music: np.ndarray, tag: np.ndarray) -> dict:
  def mean(x):
    x = x[~np.isnan(x)]
    return float(x.mean()) if len(x) else float("nan")
  m, t = mean(music), mean(tag)
  return {"music_ndcg": m, "tag_ndcg": t, "score": MUSIC_WEIGHT * m + TAG_WEIGHT * t,
          "count": int(len(music)), "music_count": int((~np.isnan(music)).sum()),
          "tag_count": int((~np.isnan(tag)).sum())}


def read_results(path) -> list[dict]:
  """Reads a results JSON file (a list of ``{"id", "songs", "tags"}``); DataError when malformed."""
  from jaxae.data.readers.common import open_text  # pylint: disable=g-import-not-at-top
  text = open_text(path)
  try:
    records = json.loads(text)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: "
                    f"{e.msg}") from None
  except RecursionError:
    raise DataError(f"{path}: JSON nested too deeply to be a results file") from None
  if not isinstance(records, list):
    raise DataError(f"{path}: expected a JSON array of results, got {type(records).__name__}")
  for i, rec in enumerate(records):
    if not isinstance(rec, dict):
      raise DataError(f"{path}: result {i} is not a JSON object")
    for key in ("id", "songs", "tags"):
      if key not in rec:
        raise DataError(f"{path}: result {i} (playlist id {rec.get('id', '?')}) has no {key!r}")
  return records


# ----------------------------------------------------------------------------------- evaluator
def song_embeddings(ctx: EvalContext) -> jax.Array:
  """The model's code layer for every row of ``ctx.dataset.train`` ([n_rows, d], on the device)."""
  if ctx.embed_fn is None:
    raise ConfigError("the melon evaluator's recommender needs song embeddings, but this model "
                      "gives no code layer (EvalContext.embed_fn is None)")
  return row_codes(ctx)


def _extra(dataset: Dataset, key: str, required: bool = True):
  if key not in dataset.extras:
    if not required:
      return None
    raise ConfigError(f"the melon evaluator needs dataset.extras[{key!r}] (a Melon data pipeline "
                      f"provides it); present: {sorted(dataset.extras)}")
  return dataset.extras[key]


def _headline(s: dict, prefix: str = "") -> dict[str, float]:
  """``score_results``' dict as flat metrics: the three scores overall and per question type."""
  out = {f"{prefix}music_ndcg": s["music_ndcg"], f"{prefix}tag_ndcg": s["tag_ndcg"],
         f"{prefix}melon_score": s["score"]}
  for t, v in s.get("per_type", {}).items():
    out.update({f"{prefix}music_ndcg/{t}": v["music_ndcg"], f"{prefix}tag_ndcg/{t}": v["tag_ndcg"],
                f"{prefix}melon_score/{t}": v["score"]})
  return out


def _baseline_names(eval_config) -> tuple[str, ...]:
  """``config.eval.baselines`` (optional, default none): names of model-free recommenders."""
  try:
    raw = eval_config["baselines"] if "baselines" in eval_config else ()
  except TypeError:
    raw = ()
  if raw is None:
    return ()
  if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
    raise ConfigError(f"config.eval.baselines must be a list of recommender names, got {raw!r}")
  names = tuple(str(n) for n in raw)
  if len(set(names)) != len(names):
    raise ConfigError(f"config.eval.baselines names a recommender twice: {list(names)}")
  for n in names:
    if get_recommender(n).depends_on_model:
      raise ConfigError(f"config.eval.baselines: {n!r} depends on the model being evaluated; a "
                        f"baseline must be a fixed recommender (e.g. most_popular)")
  return names


class MelonEvaluator(Evaluator):
  """Kakao Arena score of a recommender on a split's questions (``config.eval.evaluators:
  ["melon"]``).

  Config keys: ``eval.recommender`` (a name in ``jaxae.recommend.RECOMMENDERS``),
  ``eval.recommender_args`` (keyword arguments for it, including its ``setup``'s; may be empty),
  ``eval.empty_answers`` ("error" as officially, or "skip"; see the module docstring) and the
  optional ``eval.baselines`` (model-free recommenders scored beside it). Metrics: ``music_ndcg``,
  ``tag_ndcg``, ``melon_score``, the same per question type as ``music_ndcg/<type>`` ..., the
  number of questions, the recommender's report counts (``rec/<name>``) and every baseline's
  scores (``baseline/<name>/...``).
  """

  name = "melon"
  config_keys = ("recommender", "recommender_args", "empty_answers", "baselines")
  last_results: list | None = None   # results records of the last run (Kakao submission format)

  @classmethod
  def has_split(cls, dataset: Dataset, split: str) -> bool:
    return f"{split}_questions" in dataset.extras

  def __init__(self, eval_config, dataset: Dataset, split: str):
    if split not in ("val", "test"):
      raise ConfigError(f"evaluation split must be 'val' or 'test', got {split!r}")
    self.recommender_name = config_value(eval_config, "recommender")
    self.recommender = get_recommender(self.recommender_name)
    raw_args = config_value(eval_config, "recommender_args")
    args = dict(raw_args.to_dict() if hasattr(raw_args, "to_dict") else (raw_args or {}))
    allowed = self.recommender.arg_names()
    unknown = sorted(set(args) - set(allowed))
    if unknown:
      raise ConfigError(f"config.eval.recommender_args: unknown argument(s) {unknown} for "
                        f"{self.recommender_name!r}; known: {allowed}")
    self.empty_answers = config_value(eval_config, "empty_answers")
    if self.empty_answers not in EMPTY_ANSWERS:
      raise ConfigError(f"config.eval.empty_answers must be one of {list(EMPTY_ANSWERS)}, got "
                        f"{self.empty_answers!r}")
    self.baselines = _baseline_names(eval_config)
    self.topk_group = topk.config_group(eval_config)   # how the model's columns are ranked
    self._baseline_metrics: dict[str, float] | None = None
    self.split = split
    for key in ("train_playlists", f"{split}_questions", f"{split}_answers"):
      _extra(dataset, key)
    setup_names = set(self.recommender.setup_arg_names())
    self.args = {k: v for k, v in args.items() if k not in setup_names}
    if self.recommender.setup is not None:   # once per evaluator (e.g. load seed A's content AE)
      self.args.update(self.recommender.setup(
          dataset, split, **{k: v for k, v in args.items() if k in setup_names}))

  def _questions(self, ds: Dataset):
    """(train playlists, questions, answers, {playlist id: question type}) of the split."""
    train = _extra(ds, "train_playlists")
    questions = _extra(ds, f"{self.split}_questions")
    answers = _extra(ds, f"{self.split}_answers")
    types = _extra(ds, f"{self.split}_question_types", required=False)
    if types is None:
      types = official_question_types(questions)
    elif not hasattr(types, "items"):                     # an array aligned with the questions
      q_ids = playlist_arrays(questions, "questions").ids
      if len(types) != len(q_ids):
        raise DataError(f"dataset.extras[{self.split + '_question_types'!r}] has {len(types)} "
                        f"entries for {len(q_ids)} questions")
      types = dict(zip(q_ids.tolist(), np.asarray(types).tolist()))
    return train, questions, answers, types

  def _recommend(self, name: str, rec: Recommender, ds: Dataset, kwargs: dict, report: dict):
    train, questions, _, _ = self._questions(ds)
    if rec.uses_song_meta:
      kwargs["song_meta"] = _extra(ds, "song_meta", required=False)
    try:
      return rec(train, questions, report=report, **kwargs)
    except TypeError as e:
      raise ConfigError(f"recommender {name!r}: {e}") from None

  def baseline_metrics(self, ds: Dataset) -> dict[str, float]:
    """``baseline/<name>/...`` scores of every configured baseline (computed once, then cached)."""
    if self._baseline_metrics is None:
      _, _, answers, types = self._questions(ds)
      out: dict[str, float] = {}
      for name in self.baselines:
        results = self._recommend(name, get_recommender(name), ds, {}, {})
        s = score_results(answers, results, types, empty_answers=self.empty_answers)
        out.update(_headline(s, f"baseline/{name}/"))
      self._baseline_metrics = out
    return dict(self._baseline_metrics)

  def run(self, ctx: EvalContext) -> dict[str, float]:
    ds = ctx.dataset
    _, _, answers, types = self._questions(ds)
    kwargs = dict(self.args)
    if self.recommender.needs_embeddings:
      kwargs.update(song_embeddings=song_embeddings(ctx), song_ids=ds.train.row_ids)
    if self.recommender.needs_scores:
      if ctx.batch_size <= 0 or ctx.batch_size % ctx.num_shards:
        raise ConfigError(f"config.eval.batch_size ({ctx.batch_size}) must be a positive multiple "
                          f"of the data-axis size ({ctx.num_shards})")
      kwargs.update(score_top_k=model_top_k(ctx.score_fn, ctx.put_fn, batch_size=ctx.batch_size,
                                            num_shards=ctx.num_shards, group=self.topk_group),
                    score_song_ids=ds.train.col_ids)
    if self.recommender.takes_topk_group:
      kwargs["topk_group"] = self.topk_group
    report: dict = {}
    results = self._recommend(self.recommender_name, self.recommender, ds, kwargs, report)
    s = score_results(answers, results, types, empty_answers=self.empty_answers)
    self.last_results = results      # the scored records; eval.py writes them as results.json
    out = _headline({k: v for k, v in s.items() if k != "per_type"})
    out.update({"questions": float(s["count"]), "questions_music": float(s["music_count"]),
                "questions_tag": float(s["tag_count"])})
    for t, v in s["per_type"].items():
      out.update({f"music_ndcg/{t}": v["music_ndcg"], f"tag_ndcg/{t}": v["tag_ndcg"],
                  f"melon_score/{t}": v["score"], f"questions/{t}": float(v["count"])})
    out.update({f"rec/{k}": float(v) for k, v in report.items()
                if isinstance(v, (int, float, np.integer, np.floating))})
    out.update(self.baseline_metrics(ds))
    return out


__all__ = ["MelonEvaluator", "score_results", "validate_results", "read_results", "idcg_table",
           "ndcg_rows", "official_question_types", "song_embeddings"]
