"""The exact top K of each row of a score block, on the device (``config.eval.topk_group``).

Used by the top-N evaluator, the Melon recommender that ranks a model's columns (seed A) and the
export's cosine neighbours. ``group`` 0 is ``jax.lax.top_k``; ``group`` N finds the same columns
through the maxima of groups of N columns, which on a 2-core CPU and on an H100 is several times
faster over a catalog of tens of thousands of columns or more (``python -m bench.topk``,
docs/benchmarks.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxae import checks


def config_group(eval_config) -> int:
  """``config.eval.topk_group``, checked (an integer >= 0); absent or None (a config saved before
  the key existed) = 0, ``jax.lax.top_k``, which ranks the same columns."""
  group = eval_config.get("topk_group") if hasattr(eval_config, "get") else None
  return checks.number(0 if group is None else group, "eval.topk_group", minimum=0, integer=True)


def top_k(scores: jax.Array, k: int, group: int = 0) -> tuple[jax.Array, jax.Array]:
  """(values, column indices) of the ``k`` largest scores of each row of ``[B, n]`` ``scores``,
  best first, the same as ``jax.lax.top_k`` (ties included: equal scores come out in column order).

  ``group`` 0 (or 1, or a row of at most ``k * group`` columns) is ``jax.lax.top_k`` itself. Else
  through group maxima: the row's columns in groups of ``group`` (the last one shorter when
  ``group`` does not divide ``n``), the top ``k`` groups by their maximum (ties: lower group
  first), then the top ``k`` of those groups' ``k * group`` columns. Exact: every group ranked
  ahead of the group of a top-``k`` column holds a column ranked ahead of that column, so at most
  ``k - 1`` groups rank ahead of it; candidates are kept in column order, so ties resolve as
  ``jax.lax.top_k`` resolves them. The sort-based top-K then runs over ``n / group`` maxima and
  ``k * group`` candidates instead of ``n`` columns. The maxima come from a windowed max over the
  scores as they are (no padded copy: on a CPU, padding a score block costs more than ranking it)
  and the short last group's from its own slice; its missing columns are read as -inf, and come
  after every real column of the same value, so they are never chosen over one."""
  b, n = scores.shape
  if group <= 1 or n <= k * group:
    return jax.lax.top_k(scores, k)
  full = n // group
  maxima = jax.lax.reduce_window(scores, -jnp.inf, jax.lax.max, (1, group), (1, group), "VALID")
  if n % group:
    maxima = jnp.concatenate([maxima, scores[:, full * group:].max(axis=1, keepdims=True)], axis=1)
  _, gidx = jax.lax.top_k(maxima, k)                                      # [B, k]
  gidx = jnp.sort(gidx, axis=-1)                                          # column order
  cols = (gidx[:, :, None] * group + jnp.arange(group, dtype=gidx.dtype)).reshape(b, k * group)
  cand = jnp.take_along_axis(scores, cols, axis=1, mode="fill", fill_value=-jnp.inf)
  vals, pos = jax.lax.top_k(cand, k)
  return vals, jnp.take_along_axis(cols, pos, axis=1)


def top_k_excluding(scores: jax.Array, seg: jax.Array, cols: jax.Array, real: jax.Array, k: int,
                    group: int = 0) -> tuple[jax.Array, jax.Array]:
  """:func:`top_k` of ``scores`` [B, n] with the entries ``(seg, cols)`` excluded (a row's
  training items): min with -inf at the real entries, +inf (a no-op) at the padding ones."""
  scores = scores.at[seg, cols].min(jnp.where(real, -jnp.inf, jnp.inf))
  return top_k(scores, k, group)
