"""RMSE and MAE of the model's predictions on held-out ratings.

For every batch of evaluated rows the model scores the rows' inputs; the scores of the held-out
(row, column) entries are gathered on the device (``score[seg_row, col]``, per data shard), clipped
to ``dataset.info["rating_range"]`` when present, and their squared / absolute errors are summed
on the device per batch; all the batch sums are read back once, at the end.

Held-out entries whose row has an empty input or whose column never occurs in the training matrix
("cold") are counted (``targets_cold_rows`` / ``targets_cold_cols``) and still scored: the model's
output for an empty input is its prediction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxae.data.dataset import Dataset
from jaxae.data.sparse import SparseBatch, real_entries
from jaxae.errors import DataError
from jaxae.models import needs_all_rows
from jaxae.evaluation.context import (EvalContext, Evaluator, eval_rows, get_split,
                                      split_batches)


def rmse_from_predictions(pred, target) -> float:
  """Root mean squared error of two equal-length arrays (NaN when empty)."""
  pred = np.asarray(pred, np.float64).ravel()
  target = np.asarray(target, np.float64).ravel()
  if pred.shape != target.shape:
    raise ValueError(f"pred has {pred.size} values but target has {target.size}")
  if not pred.size:
    return float("nan")
  return float(np.sqrt(np.mean((pred - target) ** 2)))


def mae_from_predictions(pred, target) -> float:
  """Mean absolute error of two equal-length arrays (NaN when empty)."""
  pred = np.asarray(pred, np.float64).ravel()
  target = np.asarray(target, np.float64).ravel()
  if pred.shape != target.shape:
    raise ValueError(f"pred has {pred.size} values but target has {target.size}")
  if not pred.size:
    return float("nan")
  return float(np.mean(np.abs(pred - target)))


def rating_range(dataset: Dataset) -> tuple[float, float] | None:
  """``dataset.info["rating_range"]`` as (lo, hi) floats, or None when absent."""
  rr = dataset.info.get("rating_range")
  if rr is None:
    return None
  try:
    lo, hi = (float(v) for v in rr)
  except (TypeError, ValueError):
    raise DataError(f"dataset info rating_range must be a (lo, hi) pair, got {rr!r}") from None
  if not lo <= hi:
    raise DataError(f"dataset info rating_range has lo {lo} > hi {hi}")
  return lo, hi


@jax.jit
def _batch_sums(scores: jax.Array, targets: SparseBatch, lo: jax.Array, hi: jax.Array) -> jax.Array:
  """[sum of squared errors, sum of absolute errors] over the batch's target entries."""
  s, _ = targets.cols.shape
  shard_scores = scores.reshape(s, -1, scores.shape[-1])           # [S, B/S, n]
  pred = jax.vmap(lambda sc, seg, col: sc[seg, col])(shard_scores, targets.seg, targets.cols)
  pred = jnp.clip(pred.astype(jnp.float32), lo, hi)
  err = jnp.where(real_entries(targets), pred - targets.vals, 0.0)  # padding entries -> 0
  return jnp.stack([jnp.sum(err * err), jnp.sum(jnp.abs(err))])


class RatingEvaluator(Evaluator):
  """RMSE / MAE on the held-out ratings of a split (``config.eval.evaluators: ["rating"]``)."""

  name = "rating"
  feeds_all_rows = True
  scores_only = True

  def __init__(self, eval_config, dataset: Dataset, split: str):
    del eval_config  # nothing to configure: the metric is fixed, the range comes from the data
    get_split(dataset, split)
    rating_range(dataset)
    self.split = split

  def run(self, ctx: EvalContext) -> dict[str, float]:
    es = get_split(ctx.dataset, self.split)
    rows, skipped = eval_rows(es)
    t = es.targets.matrix[rows]
    n_targets = int(t.nnz)
    if not n_targets:
      raise DataError(f"the {self.split!r} split has no held-out ratings to compute RMSE on")
    # Cold counts on the host (vectorized over the target entries).
    t_len = np.diff(t.indptr)
    cold_row = es.inputs.row_lengths()[rows] == 0
    cold_rows = int(t_len[cold_row].sum())
    cold_cols = int((ctx.dataset.train.col_counts()[t.indices] == 0).sum())

    rr = rating_range(ctx.dataset)
    lo, hi = (-np.inf, np.inf) if rr is None else rr
    lo, hi = jnp.float32(lo), jnp.float32(hi)
    # A model that reads the whole matrix at every call (GLocal-K) gets every row; rows without
    # targets add nothing to the sums.
    fed = np.arange(es.inputs.shape[0], dtype=np.int64) if needs_all_rows(ctx.model) else rows
    sums = []                                     # per-batch device arrays: no host sync
    for inputs, targets in split_batches(ctx, es, fed):
      scores = ctx.score_fn(ctx.put_fn(inputs))
      sums.append(_batch_sums(scores, ctx.put_fn(targets), lo, hi))
    sse, sae = np.asarray(jax.device_get(jnp.stack(sums)), np.float64).sum(axis=0)  # one transfer
    return {
        "rmse": float(np.sqrt(sse / n_targets)),
        "mae": float(sae / n_targets),
        "targets": float(n_targets),
        "targets_cold_rows": float(cold_rows),
        "targets_cold_cols": float(cold_cols),
        "rows_evaluated": float(len(rows)),
        "rows_skipped_no_targets": float(skipped),
    }
