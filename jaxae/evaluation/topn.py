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
product, most of a top-N pass, faster on a CPU with bfloat16 dot instructions (AVX512_BF16;
``python -m bench.score_tiles --score_dtypes=model,bfloat16``, docs/benchmarks.md); the scores
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


def _sums(rank, per_shard, inputs: SparseBatch, targets: SparseBatch,
          ks: tuple[int, ...]) -> jax.Array:
  """[3 * len(ks)] sums of the chunk's per-row metrics (padding rows add 0), where
  ``rank(x, seg, cols, real, k)`` gives one shard's (top-k scores, columns) with its input entries
  excluded, from its slice ``x`` of each array in ``per_shard`` (leading axis: the rows)."""
  s, _ = inputs.cols.shape
  shards = [a.reshape((s, -1) + a.shape[1:]) for a in per_shard]       # [S, B/S, ...]

  def one_shard(x, in_seg, in_cols, in_real, t_seg, t_cols, t_real):
    top_s, top_i = rank(x, in_seg, in_cols, in_real, max(ks))          # no input entries
    # Relevance of the picked columns from the targets' entries ([targets, K] compares), not
    # from a [B, n] relevance block.
    hit = (top_i[t_seg] == t_cols[:, None]) & t_real[:, None]
    return top_s, jnp.zeros(top_i.shape, jnp.int8).at[t_seg].max(hit.astype(jnp.int8))

  top_s, top_rel = jax.vmap(one_shard)(shards, inputs.seg, inputs.cols, real_entries(inputs),
                                       targets.seg, targets.cols, real_entries(targets))
  kmax = top_s.shape[-1]
  per_row = topn_row_metrics(top_s.reshape(-1, kmax), top_rel.reshape(-1, kmax),
                             targets.lengths * (targets.mask > 0), ks)
  return per_row.sum(axis=0)


@functools.partial(jax.jit, static_argnames=("ks", "group"))
def _chunk_sums(scores: jax.Array, inputs: SparseBatch, targets: SparseBatch,
                ks: tuple[int, ...], group: int = 0) -> jax.Array:
  """:func:`_sums` of a [B, n_cols] score block."""

  def rank(x, seg, cols, real, k):
    return topk.top_k_excluding(x[0], seg, cols, real, k, group)

  return _sums(rank, [scores.astype(jnp.float32)], inputs, targets, ks)


@functools.partial(jax.jit, static_argnames=("ks", "group", "tile", "n_cols", "score_tile",
                                             "score_dtype"))
def _tiled_chunk_sums(hidden: jax.Array, kernel: jax.Array, bias: jax.Array, inputs: SparseBatch,
                      targets: SparseBatch, ks: tuple[int, ...], group: int, tile: int,
                      n_cols: int, score_tile, score_dtype: str | None = None) -> jax.Array:
  """:func:`_sums` from the output layer's input ``hidden`` [B, d]: each row's scores made
  ``tile`` columns at a time (``score_tile`` on the slices of ``kernel`` [d, n_pad] and ``bias``
  [n_pad], ``n_pad`` a multiple of ``tile``, with operands in ``score_dtype``) and ranked as they
  come (:func:`jaxae.topk.top_k_tiled`)."""

  def rank(x, seg, cols, real, k):
    def block(start, width):
      return score_tile(x[0], jax.lax.dynamic_slice_in_dim(kernel, start, width, axis=1),
                        jax.lax.dynamic_slice_in_dim(bias, start, width), score_dtype)
    return topk.top_k_tiled(block, n_cols, kernel.shape[1], seg, cols, real, k, group, tile)

  return _sums(rank, [hidden], inputs, targets, ks)


@functools.partial(jax.jit, static_argnames=("n_cols", "score_tile", "score_dtype"))
def _head_scores(hidden: jax.Array, kernel: jax.Array, bias: jax.Array, n_cols: int, score_tile,
                 score_dtype: str | None) -> jax.Array:
  """The whole [B, n_cols] score block from the output layer's input ``hidden`` [B, d], its
  product's operands in ``score_dtype``; ranked by :func:`_chunk_sums` in a jit of its own, as a
  model's ``score_fn`` block is (ranking in the same jit as the product measured slower:
  docs/benchmarks.md)."""
  return score_tile(hidden, kernel, bias, score_dtype)[:, :n_cols]


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
    asked = bool(self.tile or self.score_dtype)
    head = ctx.head if asked else None
    if asked and head is None and not self._told:
      logging.info("eval.score_tile / eval.score_dtype: this model has no output layer to score "
                   "apart (or its items are split over the mesh); scoring whole [chunk, n_cols] "
                   "blocks with its own forward")
      self._told = True
    if head is not None:                          # the kernel's columns to a multiple of the tile
      pad = -head.kernel.shape[1] % self.tile if self.tile else 0
      kernel, bias = head.kernel, head.bias
      if pad:
        kernel, bias = jnp.pad(kernel, ((0, 0), (0, pad))), jnp.pad(bias, (0, pad))
    sums = []                                     # per-chunk device arrays: no host sync
    for inputs, targets in split_batches(ctx, es, rows):
      inputs, targets = ctx.put_fn(inputs), ctx.put_fn(targets)
      if head is None:
        sums.append(_chunk_sums(ctx.score_fn(inputs), inputs, targets, self.ks, self.group))
      elif not self.tile:                         # whole blocks, the product in score_dtype
        scores = _head_scores(head.hidden_fn(inputs), kernel, bias, es.inputs.shape[1],
                              head.tile, self.score_dtype)
        sums.append(_chunk_sums(scores, inputs, targets, self.ks, self.group))
      else:
        sums.append(_tiled_chunk_sums(head.hidden_fn(inputs), kernel, bias, inputs, targets,
                                      self.ks, self.group, self.tile, es.inputs.shape[1],
                                      head.tile, self.score_dtype))
    total = np.asarray(jax.device_get(jnp.stack(sums)), np.float64).sum(axis=0)  # one transfer
    out.update({name: float(v) / len(rows) for name, v in zip(metric_names(self.ks), total)})
    return out
