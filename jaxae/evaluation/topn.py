"""Recall@K and NDCG@K over the full catalog, scored in chunks on the device.

For each chunk of evaluated rows (``ctx.batch_size`` rows) the model scores every column;
:func:`jaxae.topk.top_k_excluding` picks the ``max(ks)`` best columns that are not the rows' input
(training) entries (as if those were -inf), and each of the chunk's held-out target entries is
compared with its row's picked columns (no [chunk, n_cols] relevance block).
Per-row metrics are summed per chunk on the device and all chunk sums are read back once, at the
end. Only a ``[chunk, n_cols]`` score block ever exists (a million rows x a million columns never
materializes).

``config.eval.topk_group`` picks how the top K is found (:func:`jaxae.topk.top_k`): 0 =
``jax.lax.top_k`` over each whole row; N = through the maxima of groups of N columns. Both are exact
and give the same columns (ties go to the lower column index in both); groups of 64 are several
times faster on a 2-core CPU and an order of magnitude faster on an H100 over a 277k catalog
(``python -m bench.topk``, docs/benchmarks.md). A config saved without the key ranks with
``jax.lax.top_k``.

``config.eval.score_tile`` = T (0 = off) scores a model with a linear output layer
(``models.has_score_head``; ``EvalContext.head``) T columns at a time and ranks each tile as it
comes (:func:`jaxae.topk.top_k_tiled`): the same metrics, and no [chunk, n_cols] block; faster for
a small K on a 2-core CPU, slower for a large one (``python -m bench.score_tiles``,
docs/benchmarks.md). Other models (and ensembles) score whole blocks.

``config.eval.score_dtype`` = "model" (the default) scores with the model's own forward, in its
compute dtype; "bfloat16" / "float32" computes the output layer's product (for a model with one,
as above) from operands in that dtype, accumulated and returned in float32
(:func:`jaxae.models.layers.score_product`), whole blocks or tiles. bfloat16 operands make the
product, most of a top-N pass, faster on some CPUs with bfloat16 dot instructions (an AMD EPYC
with AVX512_BF16; slower on an Intel Xeon with it: ``python -m bench.score_tiles
--score_dtypes=model,bfloat16``, docs/benchmarks.md); the scores
carry bfloat16's rounding, so near-equal scores may swap ranks and the metrics move within that
noise (``eval.py --score_dtype``).

Definitions (binary relevance: every stored target entry is relevant; ``T`` = number of targets of
the row, ``hits@K`` = relevant columns among the top K):

  recall@K        hits@K / T                 LightGCN (``RecallPrecision_ATk``)
  recall@K_liang  hits@K / min(K, T)         Liang et al. 2018 vae_cf (``Recall_at_k_batch``)
  ndcg@K          DCG@K / IDCG@K, DCG@K = sum_{r < K} rel_r / log2(r + 2) (rank r from 0) and
                  IDCG@K = sum_{r < min(K, T)} 1 / log2(r + 2).

NDCG is the same in both reference codes (LightGCN's ``NDCGatK_r`` and vae_cf's
``NDCG_binary_at_k_batch``); they differ only at the edges: vae_cf weights DCG by the held-out value
(the same for 0/1 data) and divides by zero for a row with no targets, LightGCN sets IDCG=0 to 1.
Both evaluate only rows that have targets, as here: rows without targets are skipped and counted
(``rows_skipped_no_targets``). LightGCN excludes training items with a score of -1024 rather than
-inf (the same ranking unless a model scores below -1024). A column excluded by -inf never counts
as a hit, even when it is also a target (possible only when fewer than K columns remain).

Ids unseen in training are counted, never an error: held-out entries whose column has no training
entry (``targets_cold_cols``) or whose row has an empty input (``targets_cold_rows``) are ranked like
any other (the model scores every column), and reported.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from jaxae import topk
from jaxae.data.batching import full_batches
from jaxae.data.dataset import Dataset
from jaxae.data.sparse import SparseBatch, real_entries
from jaxae.errors import ConfigError, DataError
from jaxae.evaluation.context import (EvalContext, Evaluator, config_value, eval_rows, get_split,
                                      split_batches)
from jaxae.models.layers import DTYPES


def metric_names(ks) -> list[str]:
  """The metric keys in accumulator order: for each K recall@K, recall@K_liang, ndcg@K."""
  return [name for k in ks for name in (f"recall@{k}", f"recall@{k}_liang", f"ndcg@{k}")]


def topn_row_metrics(top_scores: jax.Array, top_rel: jax.Array, n_targets: jax.Array,
                     ks: tuple[int, ...]) -> jax.Array:
  """Per-row metrics [B, 3 * len(ks)] from the sorted top-max(ks) scores and their relevance.

  Args:
    top_scores: [B, Kmax] scores of the picked columns, best first (-inf = excluded column).
    top_rel: [B, Kmax] 1 where the picked column is a target of the row, else 0.
    n_targets: [B] number of targets of each row (rows with 0 give 0 for every metric).
    ks: the cutoffs, each <= Kmax.
  """
  kmax = top_scores.shape[1]
  hits = jnp.where(jnp.isfinite(top_scores), top_rel.astype(jnp.float32), 0.0)
  disc = 1.0 / jnp.log2(jnp.arange(kmax, dtype=jnp.float32) + 2.0)
  idcg_table = jnp.cumsum(disc)                                   # IDCG of 1..Kmax ideal hits
  n_t = n_targets.astype(jnp.float32)
  safe_t = jnp.maximum(n_t, 1.0)
  out = []
  for k in ks:
    h = hits[:, :k]
    n_hits = h.sum(axis=1)
    ideal = jnp.minimum(n_t, float(k))
    dcg = (h * disc[:k]).sum(axis=1)
    idcg = idcg_table[jnp.maximum(ideal.astype(jnp.int32) - 1, 0)]
    out += [n_hits / safe_t, n_hits / jnp.maximum(ideal, 1.0), dcg / idcg]
  return jnp.stack(out, axis=1) * (n_t > 0)[:, None]


def _ranked(rank, per_shard, inputs: SparseBatch, k: int, exclude: bool
            ) -> tuple[jax.Array, jax.Array]:
  """Each shard's ``rank(x, seg, cols, real, k)`` -> (top-k scores, columns) from its slice ``x``
  of each array in ``per_shard`` (leading axis: the rows): ``[S, B/S, k]`` each, shard-local rows.
  ``exclude``: the rows' input entries are excluded (``real``); else none is (``real`` all False)."""
  s, _ = inputs.cols.shape
  shards = [a.reshape((s, -1) + a.shape[1:]) for a in per_shard]       # [S, B/S, ...]
  real = real_entries(inputs)
  if not exclude:
    real = jnp.zeros_like(real)
  return jax.vmap(lambda x, seg, cols, r: rank(x, seg, cols, r, k))(shards, inputs.seg,
                                                                   inputs.cols, real)


@functools.partial(jax.jit, static_argnames=("k", "group", "exclude"))
def _block_top_k(scores: jax.Array, inputs: SparseBatch, k: int, group: int = 0,
                 exclude: bool = True, col_mask: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array]:
  """:func:`_ranked` of a whole [B, n_cols] score block (``col_mask`` [>= n_cols]: 0 or -inf
  added to every row's scores)."""
  scores = scores.astype(jnp.float32)
  if col_mask is not None:   # one more pass over the block (XLA does not fuse it into the ranking)
    scores = scores + col_mask[None, :scores.shape[1]]

  def rank(x, seg, cols, real, k):
    if not exclude:
      return topk.top_k(x[0], k, group)
    return topk.top_k_excluding(x[0], seg, cols, real, k, group)

  return _ranked(rank, [scores], inputs, k, exclude)


@functools.partial(jax.jit, static_argnames=("k", "group", "tile", "n_cols", "n_pad",
                                             "score_tile", "score_dtype", "exclude"))
def _tiled_top_k(hidden: jax.Array, kernel: jax.Array, bias: jax.Array, inputs: SparseBatch,
                 k: int, group: int, tile: int, n_cols: int, n_pad: int, score_tile,
                 score_dtype: str | None = None, exclude: bool = True,
                 col_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """:func:`_ranked` from the output layer's input ``hidden`` [B, d]: each row's scores made
  ``tile`` columns at a time (``score_tile`` on runs of rows of the item-major ``kernel`` [n, d]
  and of ``bias`` [n], with operands in ``score_dtype``; ``n_pad``: n up to a multiple of
  ``tile``; ``col_mask`` [n_pad]: 0 or -inf added to each tile) and ranked as they come
  (:func:`jaxae.topk.top_k_tiled`).

  The kernel is not padded to ``n_pad`` rows (a copy of it, a gigabyte at Melon scale): a block
  that would run past its last row scores the last rows instead and shifts them into place (the
  columns from ``n`` on are then never ranked). Only a kernel narrower than the widest block is
  padded, here, in the compiled program."""
  widest = topk.tiled_widest(n_pad, k, group, tile)
  if kernel.shape[0] < widest:                      # a small catalog: pad it (a small copy)
    kernel = jnp.pad(kernel, ((0, widest - kernel.shape[0]), (0, 0)))
    bias = jnp.pad(bias, (0, widest - bias.shape[0]))
  rows = kernel.shape[0]

  def rank(x, seg, cols, real, k):
    def block(start, width):
      lo = jnp.minimum(start, rows - width)         # start, except past the kernel's end
      y = score_tile(x[0], jax.lax.dynamic_slice_in_dim(kernel, lo, width),
                     jax.lax.dynamic_slice_in_dim(bias, lo, width), score_dtype)
      # Column j of the block is column lo + j: shift it to start + j (what wraps round lands on
      # columns >= rows >= n_cols, which top_k_tiled never ranks).
      y = jax.lax.cond(lo == start, lambda y: y, lambda y: jnp.roll(y, lo - start, axis=1), y)
      if col_mask is not None:       # [n_pad]
        y = y + jax.lax.dynamic_slice_in_dim(col_mask, start, width)[None, :]
      return y
    return topk.top_k_tiled(block, n_cols, n_pad, seg, cols, real, k, group, tile)

  return _ranked(rank, [hidden], inputs, k, exclude)


@functools.partial(jax.jit, static_argnames=("n_cols", "score_tile", "score_dtype"))
def _head_scores(hidden: jax.Array, kernel: jax.Array, bias: jax.Array, n_cols: int, score_tile,
                 score_dtype: str | None) -> jax.Array:
  """The whole [B, n_cols] score block from the output layer's input ``hidden`` [B, d], its
  product's operands in ``score_dtype``; ranked by :func:`_block_top_k` in a jit of its own, as a
  model's ``score_fn`` block is (ranking in the same jit as the product measured slower:
  docs/benchmarks.md)."""
  return score_tile(hidden, kernel, bias, score_dtype)[:, :n_cols]


@functools.partial(jax.jit, static_argnames=("ks",))
def _metric_sums(top_s: jax.Array, top_i: jax.Array, targets: SparseBatch,
                 ks: tuple[int, ...]) -> jax.Array:
  """[3 * len(ks)] sums of a chunk's per-row metrics (padding rows add 0) from its ranked columns
  (:func:`_ranked`'s shard-shaped ``[S, B/S, max(ks)]``)."""

  def relevance(top_i, t_seg, t_cols, t_real):
    # Relevance of the picked columns from the targets' entries ([targets, K] compares), not
    # from a [B, n] relevance block.
    hit = (top_i[t_seg] == t_cols[:, None]) & t_real[:, None]
    return jnp.zeros(top_i.shape, jnp.int8).at[t_seg].max(hit.astype(jnp.int8))

  top_rel = jax.vmap(relevance)(top_i, targets.seg, targets.cols, real_entries(targets))
  kmax = top_s.shape[-1]
  per_row = topn_row_metrics(top_s.reshape(-1, kmax), top_rel.reshape(-1, kmax),
                             targets.lengths * (targets.mask > 0), ks)
  return per_row.sum(axis=0)


class ChunkRanker:
  """The top K columns of each row of a chunk, as ``config.eval`` ranks them.

  Scores come from the model's own forward (``ctx.score_fn``, whole [chunk, n_cols] blocks) or,
  when ``tile`` or ``score_dtype`` asks and the model has an output layer to score apart
  (``ctx.head``), from that layer's product in ``score_dtype``, in whole blocks or in column tiles
  ranked as they come. Ranked by :func:`jaxae.topk.top_k` with groups of ``group``; the rows' input
  entries excluded unless asked not to. Used by the top-N evaluator and by ``jaxae.predict``.

  Attributes:
    fallback: ``tile`` / ``score_dtype`` asked for but the model has no head: whole blocks from its
      own forward (the caller says so once).
  """

  def __init__(self, ctx: EvalContext, n_cols: int, group: int = 0, tile: int = 0,
               score_dtype: str | None = None):
    asked = bool(tile or score_dtype)
    self.head = ctx.head if asked else None
    self.fallback = asked and self.head is None
    self.score_fn = ctx.score_fn
    self.n_cols, self.group, self.tile, self.score_dtype = n_cols, group, tile, score_dtype
    # The width of the scores this ranker makes: the head's item dimension (its kernel as stored:
    # the tiles run past its last row, no padded copy) up to a multiple of the tile, else n_cols.
    self.width = n_cols
    if self.head is not None:
      rows, step = self.head.kernel.shape[0], max(tile, 1)
      self.width = -(-rows // step) * step

  @classmethod
  def from_config(cls, ctx: EvalContext, n_cols: int, eval_config) -> "ChunkRanker":
    """The ranker ``eval_config`` asks for: ``topk_group``, ``score_tile``, ``score_dtype``."""
    group = topk.config_group(eval_config)
    return cls(ctx, n_cols, group, topk.config_tile(eval_config, group),
               config_score_dtype(eval_config))

  def column_mask(self, banned: np.ndarray) -> jax.Array | None:
    """The ``col_mask`` that keeps columns ``banned`` (indices) out of every row's top K: -inf
    there, 0 elsewhere, as wide as the scores this ranker makes (None when nothing is banned)."""
    if not len(banned):
      return None
    mask = np.zeros(self.width, np.float32)
    mask[np.asarray(banned, np.int64)] = -np.inf
    return jnp.asarray(mask)

  def __call__(self, inputs: SparseBatch, k: int, exclude: bool = True,
               col_mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(scores, columns) of the top ``k`` of each row of the device batch ``inputs``, best first,
    shard-shaped ``[S, B/S, k]`` (-inf: fewer than ``k`` columns left after the exclusion).
    ``col_mask`` (:meth:`column_mask`): columns never picked, as if they were excluded."""
    head = self.head
    if head is None:
      return _block_top_k(self.score_fn(inputs), inputs, k, self.group, exclude, col_mask)
    if not self.tile:                             # whole blocks, the product in score_dtype
      scores = _head_scores(head.hidden_fn(inputs), head.kernel, head.bias, self.n_cols,
                            head.tile, self.score_dtype)
      return _block_top_k(scores, inputs, k, self.group, exclude, col_mask)
    return _tiled_top_k(head.hidden_fn(inputs), head.kernel, head.bias, inputs, k, self.group,
                        self.tile, self.n_cols, self.width, head.tile, self.score_dtype, exclude,
                        col_mask)


@jax.jit
def flat_top(top_s: jax.Array, top_i: jax.Array) -> tuple[jax.Array, jax.Array]:
  """A chunk's ranked ``[S, B/S, K]`` (or ``[B, K]``) as ``[B, K]`` float32 scores and int32
  columns, -1 where the score is -inf (no column left there)."""
  k = top_s.shape[-1]
  s = top_s.reshape(-1, k).astype(jnp.float32)
  return s, jnp.where(jnp.isfinite(s), top_i.reshape(-1, k), -1).astype(jnp.int32)


def rank_rows(ranker: ChunkRanker, put_fn, inter, batch_size: int, num_shards: int, k: int,
              exclude: bool = True, *, row_subset: np.ndarray | None = None,
              nnz_buckets=16, col_mask: jax.Array | None = None):
  """Ranks the rows of ``inter`` (or of ``row_subset``, in its order) chunk by chunk.

  Yields ``(start, count, (scores, columns))`` per chunk of ``batch_size`` rows: the chunk's
  :func:`flat_top` device arrays, whose first ``count`` rows are output rows ``start ..
  start + count - 1`` (the rest is padding). Nothing is read back: the caller copies when it
  needs to, so the device runs ahead. ``col_mask``: as :meth:`ChunkRanker.__call__`'s.
  """
  start = 0
  for batch in full_batches(inter, batch_size, num_shards=num_shards, row_subset=row_subset,
                            nnz_buckets=nnz_buckets):
    count = int(batch.mask.sum())
    yield start, count, flat_top(*ranker(put_fn(batch), k, exclude, col_mask))
    start += count


def config_score_dtype(eval_config) -> str | None:
  """``config.eval.score_dtype``, checked: None for "model" (the model's own forward; also when
  absent, a config saved before the key existed), else "bfloat16" | "float32"."""
  name = eval_config.get("score_dtype") if hasattr(eval_config, "get") else None
  if name is None or name == "model":
    return None
  if not isinstance(name, str) or name not in DTYPES:
    raise ConfigError(f"config.eval.score_dtype: expected \"model\" or one of "
                      f"{', '.join(sorted(DTYPES))}, got {name!r}")
  return name


class TopNEvaluator(Evaluator):
  """Recall@K / NDCG@K for K in ``config.eval.ks`` (``config.eval.evaluators: ["topn"]``)."""

  name = "topn"
  scores_only = True

  def __init__(self, eval_config, dataset: Dataset, split: str):
    raw = config_value(eval_config, "ks")
    ok = isinstance(raw, (list, tuple)) and len(raw) > 0 and all(
        isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1 for k in raw)
    if not ok:
      raise ConfigError(f"config.eval.ks must be a non-empty list of positive integers, got "
                        f"{raw!r}")
    if max(raw) > dataset.n_cols:
      raise ConfigError(f"config.eval.ks: K={max(raw)} exceeds the {dataset.n_cols} columns to "
                        f"rank")
    get_split(dataset, split)
    self.ks = tuple(sorted({int(k) for k in raw}))
    self.group = topk.config_group(eval_config)
    self.tile = topk.config_tile(eval_config, self.group)
    self.score_dtype = config_score_dtype(eval_config)
    self.split = split
    self._told = False

  def run(self, ctx: EvalContext) -> dict[str, float]:
    es = get_split(ctx.dataset, self.split)
    if es.inputs.shape[1] < max(self.ks):
      raise DataError(f"cannot rank top {max(self.ks)} of {es.inputs.shape[1]} columns")
    rows, skipped = eval_rows(es)
    out = {"rows_evaluated": float(len(rows)), "rows_skipped_no_targets": float(skipped)}
    if not len(rows):
      raise DataError(f"the {self.split!r} split has no rows with held-out targets to rank")
    t = es.targets.matrix[rows]                   # cold counts on the host, vectorized
    out["targets_cold_rows"] = float(np.diff(t.indptr)[es.inputs.row_lengths()[rows] == 0].sum())
    out["targets_cold_cols"] = float((ctx.dataset.train.col_counts()[t.indices] == 0).sum())
    ranker = ChunkRanker(ctx, es.inputs.shape[1], self.group, self.tile, self.score_dtype)
    if ranker.fallback and not self._told:
      logging.info("eval.score_tile / eval.score_dtype: this model has no output layer to score "
                   "apart (or its items are split over the mesh); scoring whole [chunk, n_cols] "
                   "blocks with its own forward")
      self._told = True
    sums = []                                     # per-chunk device arrays: no host sync
    for inputs, targets in split_batches(ctx, es, rows):
      inputs, targets = ctx.put_fn(inputs), ctx.put_fn(targets)
      top_s, top_i = ranker(inputs, max(self.ks))
      sums.append(_metric_sums(top_s, top_i, targets, self.ks))
    total = np.asarray(jax.device_get(jnp.stack(sums)), np.float64).sum(axis=0)  # one transfer
    out.update({name: float(v) / len(rows) for name, v in zip(metric_names(self.ks), total)})
    return out
