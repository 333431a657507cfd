"""What every evaluator receives: the scoring functions, the data and how to batch it.

The training engine builds one :class:`EvalContext` per evaluation and passes it to each
:class:`Evaluator` (see ``jaxae.evaluation.build_evaluators``). Evaluators never touch the training
state directly: they call ``score_fn`` / ``embed_fn`` on batches they build with
``jaxae.data.batching.full_batches`` and put on the devices with ``put_fn``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxae.data.batching import full_batches
from jaxae.data.dataset import Dataset, EvalSplit
from jaxae.data.sparse import SparseBatch
from jaxae.errors import ConfigError, DataError

SPLITS = ("val", "test")


def default_put(batch: SparseBatch) -> SparseBatch:
  """Puts a host batch on the default device (single-device runs and tests)."""
  return jax.device_put(batch)


@dataclasses.dataclass(frozen=True)
class ScoreHead:
  """A model's output layer, for scoring in column tiles (``config.eval.score_tile``).

  Attributes:
    hidden_fn: jitted ``SparseBatch -> [B, d]``: the output layer's input (float32).
    kernel: [n, d], one row per item (n >= n_cols: the model's padded item dimension): the
      model's ``score_layer`` at the params, the stored array itself.
    bias: [n].
    tile: ``(hidden, kernel[rows], bias[rows], dtype=None) -> [B, len(rows)]`` float32 scores:
      the model's ``score_tile``, the same values ``score_fn`` gives at those columns (``dtype``:
      the product's operands, ``config.eval.score_dtype``; None: as ``score_fn``).
  """

  hidden_fn: Callable[[SparseBatch], jax.Array]
  kernel: jax.Array
  bias: jax.Array
  tile: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def score_head(model, head_fn: Callable | None, params) -> ScoreHead | None:
  """The :class:`ScoreHead` of ``model`` at ``params`` from its jitted ``head_fn(params, batch)``
  (``training.step.make_head_fn``; None: the model has none, and so has the result)."""
  if head_fn is None:
    return None
  kernel, bias = model.score_layer(params)
  return ScoreHead(hidden_fn=lambda batch: head_fn(params, batch), kernel=kernel, bias=bias,
                   tile=model.score_tile)


@dataclasses.dataclass(kw_only=True)
class EvalContext:
  """Everything an evaluator needs to score one split.

  Attributes:
    score_fn: jitted ``SparseBatch -> [B, n_cols]`` model scores ("recon", ``train=False``).
    embed_fn: jitted ``SparseBatch -> [B, d]`` code-layer output; ``None`` when not available.
    dataset: the :class:`Dataset` being evaluated.
    split: "val" or "test".
    batch_size: rows per evaluation batch (the chunk size of on-device scoring).
    num_shards: size of the mesh's data axis; batches are built with this many shards.
    put_fn: puts a host :class:`SparseBatch` on the devices with the right sharding.
    params: the params pytree (for evaluators that need it).
    model: the flax module.
    head: the model's output layer for scoring in column tiles (:class:`ScoreHead`); None when
      the model has none (or the scores are not one model's, e.g. an ensemble's mean).
  """

  score_fn: Callable[[SparseBatch], jax.Array]
  embed_fn: Callable[[SparseBatch], jax.Array] | None = None
  dataset: Dataset
  split: str
  batch_size: int
  num_shards: int = 1
  put_fn: Callable[[SparseBatch], SparseBatch] = default_put
  params: Any = None
  model: Any = None
  head: ScoreHead | None = None

  def eval_split(self) -> EvalSplit:
    """The :class:`EvalSplit` named by ``split``; ConfigError when the dataset lacks it."""
    return get_split(self.dataset, self.split)


class Evaluator(abc.ABC):
  """One evaluation: ``run(ctx)`` returns flat metric name -> float (quality metrics + counts)."""

  name: str = ""
  # What an evaluator can score, declared by each: ``feeds_all_rows``: run() gives every row to a
  # model that reads the whole matrix at every call (models.needs_all_rows); ``scores_only``: run()
  # reads nothing of the model but ``ctx.score_fn`` (so the mean scores of an ensemble will do).
  feeds_all_rows: bool = False
  scores_only: bool = False

  @classmethod
  def has_split(cls, dataset: Dataset, split: str) -> bool:
    """Whether ``dataset`` holds what this evaluator scores on ``split`` (default: the EvalSplit
    ``dataset.val`` / ``dataset.test``)."""
    return getattr(dataset, split, None) is not None

  @abc.abstractmethod
  def run(self, ctx: EvalContext) -> dict[str, float]:
    """Scores ``ctx.split`` and returns its metrics."""


def get_split(dataset: Dataset, split: str) -> EvalSplit:
  """Returns ``dataset.val`` / ``dataset.test``; a readable ConfigError when absent or misnamed."""
  if split not in SPLITS:
    raise ConfigError(f"evaluation split must be one of {list(SPLITS)}, got {split!r}")
  es = getattr(dataset, split)
  if es is None:
    name = dataset.info.get("name", "the dataset")
    raise ConfigError(f"{name} has no {split!r} split to evaluate")
  return es


def config_value(cfg, key: str, section: str = "eval"):
  """Reads ``cfg[key]`` (ConfigDict or dict); a missing key is a ConfigError naming it."""
  try:
    present = key in cfg
  except TypeError:
    present = False
  if not present:
    raise ConfigError(f"config.{section}.{key} is missing")
  return cfg[key]


def eval_rows(es: EvalSplit) -> tuple[np.ndarray, int]:
  """Rows of ``es`` to evaluate and how many candidates were skipped for having no targets.

  The candidates are ``es.rows`` when given, else every row; those without a target are skipped.
  """
  n_rows = es.inputs.shape[0]
  if es.targets.shape != es.inputs.shape:
    raise DataError(f"evaluation targets shape {es.targets.shape} differs from inputs shape "
                    f"{es.inputs.shape}")
  if es.rows is None:
    rows = np.arange(n_rows, dtype=np.int64)
  else:
    rows = np.asarray(es.rows)
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
      raise DataError(f"evaluation rows must be a 1-D integer array, got shape {rows.shape} "
                      f"dtype {rows.dtype}")
    rows = rows.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
      raise DataError(f"evaluation rows must lie in [0, {n_rows}), got [{rows.min()}, "
                      f"{rows.max()}]")
  has_targets = es.targets.row_lengths()[rows] > 0
  return rows[has_targets], int((~has_targets).sum())


def split_batches(ctx: EvalContext, es: EvalSplit, rows: np.ndarray):
  """Yields this process's host ``(inputs, targets)`` :class:`SparseBatch` pairs over ``rows``.

  In order, ``ctx.batch_size`` rows (global) in ``ctx.num_shards`` shards, the last batch padded;
  under multi-host each process gets its slice of every global batch (``put_fn`` assembles them).
  """
  if ctx.batch_size <= 0 or ctx.batch_size % ctx.num_shards:
    raise ConfigError(f"config.eval.batch_size ({ctx.batch_size}) must be a positive multiple of "
                      f"the data-axis size ({ctx.num_shards})")
  return full_batches(es.inputs, ctx.batch_size, num_shards=ctx.num_shards, targets=es.targets,
                      row_subset=rows, process_index=jax.process_index(),
                      process_count=jax.process_count())


@jax.jit
def _place(table: jax.Array, codes: jax.Array, rows: jax.Array, mask: jax.Array) -> jax.Array:
  """``table[rows] = codes`` for the real rows of a batch (padding rows are dropped)."""
  idx = jnp.where(mask > 0, rows, table.shape[0])
  return table.at[idx].set(codes.astype(table.dtype), mode="drop")


def row_codes(ctx: "EvalContext") -> jax.Array:
  """The code layer of every row of ``ctx.dataset.train``: ``[n_rows, d]`` float32, on the device.

  Batches of ``ctx.batch_size`` rows go through ``ctx.embed_fn``; each batch's codes are scattered
  into the table by row index on the device, so the host never holds more than one input batch.
  Used for song embeddings (Melon seed B) and for the export of item embeddings.
  """
  if ctx.embed_fn is None:
    raise ConfigError("this model gives no code layer (EvalContext.embed_fn is None)")
  if ctx.batch_size <= 0 or ctx.batch_size % ctx.num_shards:
    raise ConfigError(f"config.eval.batch_size ({ctx.batch_size}) must be a positive multiple of "
                      f"the data-axis size ({ctx.num_shards})")
  train = ctx.dataset.train
  table = None
  for batch in full_batches(train, ctx.batch_size, num_shards=ctx.num_shards,
                            process_index=jax.process_index(),
                            process_count=jax.process_count()):
    dev = ctx.put_fn(batch)
    codes = ctx.embed_fn(dev)
    if table is None:
      table = jnp.zeros((train.shape[0], codes.shape[-1]), jnp.float32)
    table = _place(table, codes, dev.rows, dev.mask)
  if table is None:
    raise DataError("the training matrix has no rows to embed")
  return table
