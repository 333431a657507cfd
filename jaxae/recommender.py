r"""A trained run as a Python object that ranks items for users given their histories (fold-in).

  from jaxae.recommender import Recommender

  rec = Recommender.load("runs/mult_dae")            # the latest checkpoint (best=True: the
  out = rec.recommend([["i1", "i7"], ["i3"]], k=10)  # best validation one)
  out.index, out.scores    # [2, 10] int32 item indices (-1: none left), float32 scores; best first
  out.items()              # [["i4", "i9", ...], [...]]: raw item ids, best first
  out.unknown              # [2] how many of each user's items the catalog lacks (dropped)

What it needs is the run's directory alone (its checkpoint and ``id_maps.npz``): not the training
data, so a serving host holds the model and nothing else. A user's history is the row the model
reads for them (the autoencoder's input); one forward pass scores every item (fold-in), and the
items of the history are excluded unless ``exclude_seen=False`` (``exclude_items`` keeps some
items out for everyone: out of stock, say). Histories come as

  item lists        ``[["i1", "i7"], ...]``: raw ids as in the training data (matched as text, so
                    an integer id may come as its digits); runs on implicit data (every entry 1)
  rating mappings   ``[{"i1": 4.0, "i7": 2.5}, ...]``: runs on rated data (``rating_range``, e.g.
                    MovieLens); each rating checked against the run's range
  a sparse matrix   scipy, ``[n_users, n_items]`` in the run's item order (``rec.item_ids``); its
                    stored values are the entries (1 on implicit runs, within the rating range on
                    rated; a stored zero is an absent entry, as in any sparse matrix)

Items the catalog lacks are dropped and counted (``Recommendations.unknown``, ``counts``); an item
listed twice in one history counts once (``counts["duplicates_merged"]``). A malformed history
(not a list / mapping, a rating out of range or not finite) is a ``DataError`` naming the user's
position.

The ranking is the evaluators' and ``jaxae.predict``'s (``ChunkRanker``: ``config.eval.topk_group``,
``score_tile``, ``score_dtype``), on the device. Compile shapes are bucketed: the users of a call
are padded to a power of two (at most ``config.eval.batch_size``; more users are ranked in chunks of
it) and their entries to a power of two, so a server compiles each (users, entries, k) bucket once
and then reuses it; the first call of a new bucket compiles.

``rec.similar_items(["i1", "i7"], k=10)`` gives the items nearest to each of some items, by the
cosine of the output layer's vector of each item (the export's decoder embedding), in the same
form.

A Recommender holds no state that a call changes: one instance may serve several threads at once.

Models that can fold in a new user are the user-row ones (``orientation`` "user") whose scores come
from the input alone: not item-row models (a user is one of their input units), not models with
parameters per training user (CDAE's user node), not Melon runs (``eval.py`` writes theirs):
``Recommender.load`` refuses those with a ConfigError that says why.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import itertools
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jaxae import export, topk
from jaxae.data.dataset import Dataset
from jaxae.data.matrix import Interactions
from jaxae.errors import CheckpointError, ConfigError, DataError
from jaxae.evaluation.topn import ChunkRanker, rank_rows

# Entries per shard are padded to one of these sizes (powers of two): a fixed ladder, so a call's
# compile shape depends on its size only, never on the other users of the call.
NNZ_LADDER = tuple(2 ** p for p in range(3, 40))


def check_fold_in(run) -> None:
  """Raises ConfigError when new users cannot be folded into ``run`` (``evaluate.LoadedRun``):
  its rows are not users, or it holds parameters of each training user."""
  from jaxae.models import has_row_params  # pylint: disable=import-outside-toplevel
  orientation = run.info.get("orientation")
  if orientation == "item":
    raise ConfigError(f"{run.workdir}: an item-row model ({run.model_name}, orientation 'item') "
                      f"has one input unit per user of its training data: new users cannot be "
                      f"folded in (user-row models can)")
  if orientation != "user":
    raise ConfigError(f"{run.workdir}: rows of this run are {orientation!r}s: new users are "
                      f"folded into a model of user-item data whose rows are users; a Melon run "
                      f"writes its recommendations with eval.py (results.json, the Kakao Arena "
                      f"format)")
  if has_row_params(run.model):
    raise ConfigError(f"{run.workdir}: {run.model_name} holds parameters of each training user "
                      f"(its n_rows): new users have none to be scored with; fold-in works with "
                      f"models whose input alone makes the scores")


def catalog(run) -> np.ndarray:
  """The raw item ids of a user-row ``run``, from its ``id_maps.npz`` (checked against the
  checkpoint's item count)."""
  from jaxae.evaluate import read_id_maps  # pylint: disable=import-outside-toplevel
  _, item_ids = read_id_maps(run.workdir)
  if len(item_ids) != int(run.info["n_cols"]):
    raise CheckpointError(f"{run.workdir}: id_maps.npz holds {len(item_ids)} item ids, the "
                          f"checkpoint's model has {int(run.info['n_cols'])} items")
  return item_ids


@functools.partial(jax.jit, static_argnames=("k", "group"))
def _nearest(unit: jax.Array, rows: jax.Array, k: int, group: int
             ) -> tuple[jax.Array, jax.Array]:
  """:func:`jaxae.export.nearest` of items ``rows`` [q] (-1: padding): (float32 scores, int32
  indices [q, k]), -1 / -inf for padding."""
  i, s = export.nearest(unit, rows, k, group)
  s = jnp.where(rows[:, None] >= 0, s, -jnp.inf)
  return s, jnp.where(jnp.isfinite(s), i, -1).astype(jnp.int32)


def _concatenate(parts: list) -> np.ndarray | list:
  """The ids of every history in order: one array when all are arrays of one kind (no Python
  object a value), else a flat list."""
  if parts and all(type(p) is np.ndarray for p in parts):
    try:
      return np.concatenate(parts)
    except (TypeError, ValueError):          # ints and strings: matched as text, via a list
      pass
  return list(itertools.chain.from_iterable(parts))


def _is_number(v) -> bool:
  try:
    float(v)
  except (TypeError, ValueError):
    return False
  return True


class IdLookup:
  """Positions of values in ``vocab`` (one dtype): by a direct table for non-negative integer ids
  up to a few times the vocabulary's size (one gather a value), else by binary search over its
  sorted copy."""

  def __init__(self, vocab: np.ndarray):
    self.table = None
    if vocab.dtype.kind in "iu" and len(vocab) and int(vocab.min()) >= 0 and (
        int(vocab.max()) < 4 * len(vocab) + (1 << 16)):
      self.table = np.full(int(vocab.max()) + 1, -1, np.int64)
      self.table[vocab] = np.arange(len(vocab))
      return
    self.order = np.argsort(vocab, kind="stable")
    self.sorted = vocab[self.order]

  def find(self, values: np.ndarray) -> np.ndarray:
    """int64 positions of ``values`` in the vocabulary, -1 where absent."""
    if self.table is not None:
      inside = (values >= 0) & (values < len(self.table))
      return np.where(inside, self.table[np.where(inside, values, 0)], -1)
    if not len(values) or not len(self.sorted):
      return np.full(len(values), -1, np.int64)
    pos = np.minimum(np.searchsorted(self.sorted, values), len(self.sorted) - 1)
    return np.where(self.sorted[pos] == values, self.order[pos], -1).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Recommendations:
  """The top K of each user of a :meth:`Recommender.recommend` call, in the call's user order.

  Attributes:
    index: int32 [n_users, K] item indices (into ``item_ids``), best first; -1 where fewer than K
      items were left to recommend.
    scores: float32 [n_users, K] the model's scores (-inf with -1).
    unknown: int64 [n_users] items of each history the catalog lacks (dropped).
    counts: totals: ``users``, ``users_cold`` (an empty history after the drop), ``users_short``
      (fewer than K items left), ``unknown_items``, ``duplicates_merged``
      (:meth:`Recommender.similar_items`: ``items``, ``unknown_items``).
    item_ids: the catalog's raw ids (``Recommender.item_ids``).
  """

  index: np.ndarray
  scores: np.ndarray
  unknown: np.ndarray
  counts: dict[str, int]
  item_ids: np.ndarray = dataclasses.field(repr=False)

  def items(self) -> list[list[Any]]:
    """Each user's recommended raw item ids, best first (the -1 slots left out)."""
    ids = self.item_ids[np.maximum(self.index, 0)].tolist()
    return [[x for x, j in zip(row, idx) if j >= 0] for row, idx in zip(ids, self.index.tolist())]


class Recommender:
  """A user-row run, loaded once, that ranks the catalog for users from their histories.

  Use :meth:`load`. Attributes: ``item_ids`` (raw id of each item index), ``n_items``,
  ``rating_range`` ((lo, hi) for runs on rated data, else None), ``run`` (the
  ``evaluate.LoadedRun``: config, step, params, model), ``context`` (its ``EvalContext``: jitted
  scoring, ``put_fn``, ``batch_size``) and ``ranker`` (the ``ChunkRanker`` it ranks with).
  """

  def __init__(self, run, item_ids: np.ndarray):
    from jaxae import evaluate as eval_lib  # pylint: disable=import-outside-toplevel
    if jax.process_count() > 1:
      raise ConfigError("Recommender runs in one process (it uses every device of this host)")
    check_fold_in(run)
    self.run = run
    self.item_ids = np.asarray(item_ids)
    self.n_items = len(self.item_ids)
    rr = run.info.get("rating_range")
    self.rating_range = None if rr is None else (float(rr[0]), float(rr[1]))
    # Lookup tables: by text (every id), and by value for integer ids (the same matches: an
    # integer's text is its decimal digits; a string search is several times slower).
    self._text = IdLookup(self.item_ids.astype(str))
    self._ints = IdLookup(self.item_ids) if self.item_ids.dtype.kind in "iu" else None
    empty = Interactions(sp.csr_matrix((0, self.n_items), dtype=np.float32),
                         np.zeros(0, np.int64), self.item_ids)
    self.context = eval_lib.make_context(run, Dataset(empty, info=dict(run.info)), "val")
    self.ranker = ChunkRanker.from_config(self.context, self.n_items, run.config.eval)
    self._unit = None        # the items' L2-normalized output-layer vectors (similar_items)

  @classmethod
  def load(cls, workdir: str | os.PathLike, *, step: int | None = None, best: bool = False,
           score_dtype: str | None = None) -> "Recommender":
    """The run in ``workdir`` at checkpoint ``step`` (None: the latest; ``best``: the kept one
    with the best validation ``config.eval.metric``); ``score_dtype`` ("model" | "float32" |
    "bfloat16") overrides ``config.eval.score_dtype``."""
    from jaxae import evaluate as eval_lib  # pylint: disable=import-outside-toplevel
    if best and step is not None:
      raise ConfigError("best=True and step both pick the checkpoint: give one of them")
    run = eval_lib.load_checkpoint(workdir, eval_lib.best_step(workdir) if best else step)
    if score_dtype is not None:
      with run.config.unlocked():
        run.config.eval.score_dtype = score_dtype
    return cls(run, catalog(run))

  def __repr__(self) -> str:
    data = f"ratings {self.rating_range}" if self.rating_range else "implicit"
    return (f"Recommender({self.run.model_name} step {self.run.step} of {self.run.workdir}: "
            f"{self.n_items} items, {data})")

  # ------------------------------------------------------------------------------ histories
  def item_index(self, ids) -> np.ndarray:
    """Item indices of raw ids (matched as text), -1 for ids the catalog lacks."""
    raw = np.asarray(ids).reshape(-1)
    if self._ints is not None and raw.dtype.kind in "iu":
      return self._ints.find(raw)
    return self._text.find(raw.astype(str))

  def _check_values(self, values: np.ndarray, users: np.ndarray, where: str) -> None:
    bad = ~np.isfinite(values)
    what = "a finite rating"
    if self.rating_range is not None:
      lo, hi = self.rating_range
      bad |= (values < lo) | (values > hi)
      what = f"a rating in [{lo:g}, {hi:g}] (the run's rating_range)"
    elif len(values):
      bad |= values != 1.0
      what = "1 (the run's data is implicit: every entry 1)"
    if bad.any():
      j = int(np.argmax(bad))
      raise DataError(f"{where} of user {int(users[j])}: expected {what}, got {float(values[j]):g}")

  def _from_lists(self, histories) -> tuple[sp.csr_matrix, np.ndarray, int]:
    """(CSR [n, n_items], unknown per user, duplicates merged) of item lists / rating mappings."""
    rated = self.rating_range is not None
    lengths, parts, flat_vals = [], [], []
    for u, h in enumerate(histories):
      if type(h) is np.ndarray and h.ndim != 1:
        raise DataError(f"history of user {u}: expected a list of item ids, got a "
                        f"{h.ndim}-d array")
      if not rated and type(h) in (list, tuple, np.ndarray):     # the common case, checked fast
        parts.append(h)
        lengths.append(len(h))
      elif isinstance(h, collections.abc.Mapping):
        if not rated:
          raise DataError(f"history of user {u}: a mapping of ratings, but the run's data is "
                          f"implicit (every entry 1): give a list of item ids")
        parts.append(list(h.keys()))
        flat_vals.extend(h.values())
        lengths.append(len(h))
      elif isinstance(h, (str, bytes)) or not isinstance(h, collections.abc.Iterable):
        raise DataError(f"history of user {u}: expected a list of item ids"
                        f"{' or a mapping item -> rating' if rated else ''}, got "
                        f"{type(h).__name__}")
      else:
        if rated:
          raise DataError(f"history of user {u}: a list of items, but the run's data has ratings "
                          f"(rating_range {self.rating_range}): give a mapping item -> rating")
        ids = list(h)
        parts.append(ids)
        lengths.append(len(ids))
    flat_ids = _concatenate(parts)
    n = len(lengths)
    lengths = np.asarray(lengths, np.int64)
    users = np.repeat(np.arange(n, dtype=np.int64), lengths)
    try:
      vals = (np.asarray(flat_vals, np.float64) if rated else np.ones(len(users), np.float64))
    except (TypeError, ValueError):
      j = next(j for j, v in enumerate(flat_vals) if not _is_number(v))
      raise DataError(f"a rating of user {int(users[j])}: not a number: {flat_vals[j]!r}"
                      ) from None
    self._check_values(vals, users, "a rating")
    cols = self.item_index(flat_ids)
    known = cols >= 0
    unknown = np.bincount(users[~known], minlength=n).astype(np.int64)
    m = sp.csr_matrix((vals[known].astype(np.float32), (users[known], cols[known])),
                      shape=(n, self.n_items))       # repeated (user, item) pairs summed
    merged = np.bincount(users[known], minlength=n) - np.diff(m.indptr)
    dup = int(merged.sum())
    if dup:
      if rated:      # two keys of one mapping that name one item (e.g. 7 and "7")
        raise DataError(f"history of user {int(np.argmax(merged > 0))}: two keys name the same "
                        f"item")
      m.data[:] = 1.0                    # an item listed twice counts once
    return m, unknown, dup

  def _from_matrix(self, m) -> tuple[sp.csr_matrix, np.ndarray, int]:
    if m.ndim != 2 or m.shape[1] != self.n_items:
      raise DataError(f"histories: a sparse matrix of shape [n_users, {self.n_items}] (the run's "
                      f"items) expected, got {m.shape}")
    m = sp.csr_matrix(m, dtype=np.float32, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    coo = m.tocoo()
    self._check_values(coo.data.astype(np.float64), coo.row, "an entry")
    return m, np.zeros(m.shape[0], np.int64), 0

  # ------------------------------------------------------------------------- similar items
  def similar_items(self, items, k: int = 10) -> Recommendations:
    """The ``k`` items most cosine-similar to each of ``items`` (raw ids), itself excluded, by
    the output layer's vector of each item (what ``python -m jaxae.export`` writes as the
    decoder embedding and ranks as ``--top_k`` neighbours). An id the catalog lacks gets a row
    of -1 / -inf, counted (``unknown``, ``counts["unknown_items"]``)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < self.n_items:
      raise ConfigError(f"k must be between 1 and {self.n_items - 1} (the other items), got "
                        f"{k!r}")
    if isinstance(items, (str, bytes)) or not isinstance(items, collections.abc.Iterable):
      raise DataError(f"items: expected a list of item ids, got {type(items).__name__}")
    if self._unit is None:
      name = self.run.model_name
      if name not in export.DECODER_VECTORS:
        raise ConfigError(f"{name} has no output-layer vector per item to compare; similar_items "
                          f"works with {', '.join(sorted(export.DECODER_VECTORS))}")
      self._unit = export.l2_normalize(export.decoder_vectors(self.run.config.model,
                                                              self.run.params, self.n_items))
    rows = self.item_index(items)
    n = len(rows)
    index = np.full((n, k), -1, np.int32)
    scores = np.full((n, k), -np.inf, np.float32)
    bucket = self.rows_bucket(n)
    group = topk.config_group(self.run.config.eval)
    chunks = []
    for start in range(0, n, bucket):
      part = np.full(bucket, -1, np.int64)
      part[:min(bucket, n - start)] = rows[start:start + bucket]
      chunks.append((start, _nearest(self._unit, jnp.asarray(part, jnp.int32), int(k), group)))
    for start, (s, i) in chunks:
      count = min(bucket, n - start)
      scores[start:start + count] = np.asarray(s)[:count]
      index[start:start + count] = np.asarray(i)[:count]
    unknown = (rows < 0).astype(np.int64)
    return Recommendations(index=index, scores=scores, unknown=unknown,
                           counts={"items": n, "unknown_items": int(unknown.sum())},
                           item_ids=self.item_ids)

  def _banned(self, exclude_items) -> tuple[np.ndarray, int]:
    """(sorted item indices, how many ids the catalog lacks) of ``exclude_items``."""
    if exclude_items is None:
      return np.zeros(0, np.int64), 0
    if isinstance(exclude_items, (str, bytes)) or not isinstance(
        exclude_items, collections.abc.Iterable):
      raise DataError(f"exclude_items: expected a list of item ids, got "
                      f"{type(exclude_items).__name__}")
    cols = self.item_index(exclude_items if isinstance(exclude_items, np.ndarray)
                           else list(exclude_items))
    return np.unique(cols[cols >= 0]), int((cols < 0).sum())

  # ------------------------------------------------------------------------------- ranking
  def rows_bucket(self, n: int) -> int:
    """Rows of a call's padded batch: a power of two >= ``n`` (a multiple of the data shards), at
    most the run's evaluation batch size."""
    s = self.context.num_shards
    b = max(1 << max(n - 1, 0).bit_length(), s)
    return min(-(-b // s) * s, self.context.batch_size)

  def recommend(self, histories, k: int = 20, *, exclude_seen: bool = True,
                exclude_items=None) -> Recommendations:
    """The top ``k`` items of each user of ``histories`` (module docstring: lists, mappings or a
    scipy sparse matrix), as :class:`Recommendations`.

    ``exclude_items``: raw ids never to recommend to anyone in this call (e.g. items out of
    stock); ids the catalog lacks are counted (``counts["exclude_unknown"]``). Their columns are
    masked on the device before the ranking (``ChunkRanker.column_mask``).
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
      raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    if k > self.n_items:
      raise ConfigError(f"k ({k}) exceeds the {self.n_items} items to rank")
    banned, banned_unknown = self._banned(exclude_items)
    if sp.issparse(histories):
      m, unknown, dup = self._from_matrix(histories)
    elif isinstance(histories, (str, bytes, collections.abc.Mapping)) or not isinstance(
        histories, collections.abc.Iterable):
      raise DataError(f"histories: expected one history per user (a list of them) or a scipy "
                      f"sparse matrix, got {type(histories).__name__}")
    else:
      m, unknown, dup = self._from_lists(histories)
    n = m.shape[0]
    index = np.full((n, k), -1, np.int32)
    scores = np.full((n, k), -np.inf, np.float32)
    if n:
      inter = Interactions(m, np.arange(n, dtype=np.int64), self.item_ids)
      bucket = self.rows_bucket(n)
      chunks = []
      for start, count, ranked in rank_rows(self.ranker, self.context.put_fn, inter, bucket,
                                            self.context.num_shards, int(k), exclude_seen,
                                            nnz_buckets=NNZ_LADDER,
                                            col_mask=self.ranker.column_mask(banned)):
        for a in ranked:
          a.copy_to_host_async()
        chunks.append((start, count, ranked))
      for start, count, (s, i) in chunks:
        scores[start:start + count] = np.asarray(s)[:count]
        index[start:start + count] = np.asarray(i)[:count]
    lengths = np.diff(m.indptr)
    counts = {"users": int(n), "users_cold": int((lengths == 0).sum()),
              "users_short": int((index[:, -1] < 0).sum()) if n else 0,
              "unknown_items": int(unknown.sum()), "duplicates_merged": int(dup)}
    if exclude_items is not None:
      counts.update(excluded_items=int(len(banned)), exclude_unknown=banned_unknown)
    return Recommendations(index=index, scores=scores, unknown=unknown, counts=counts,
                           item_ids=self.item_ids)

