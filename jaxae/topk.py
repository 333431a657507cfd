"""The exact top K of each row of a score block, on the device (``config.eval.topk_group``).

Used by the top-N evaluator, the Melon recommenders (seed A's model ranking and content
neighbours, seed B's playlist neighbours) and the export's cosine neighbours. ``group`` 0 is
``jax.lax.top_k``; ``group`` N finds the same columns through the maxima of groups of N columns,
which on a 2-core CPU and on an H100 is several times faster over a catalog of tens of thousands
of columns or more (``python -m bench.topk``, docs/benchmarks.md). :func:`top_k_tiled` ranks scores
that come in column tiles (``config.eval.score_tile``) without a whole block.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxae import checks
from jaxae.errors import ConfigError


def config_group(eval_config) -> int:
  """``config.eval.topk_group``, checked (an integer >= 0); absent or None (a config saved before
  the key existed) = 0, ``jax.lax.top_k``, which ranks the same columns."""
  group = eval_config.get("topk_group") if hasattr(eval_config, "get") else None
  return checks.number(0 if group is None else group, "eval.topk_group", minimum=0, integer=True)


def config_tile(eval_config, group: int) -> int:
  """``config.eval.score_tile``, checked (an integer >= 0, a multiple of ``group`` when ``group``
  > 1); absent or None (a config saved before the key existed) = 0: whole score blocks."""
  tile = eval_config.get("score_tile") if hasattr(eval_config, "get") else None
  tile = checks.number(0 if tile is None else tile, "eval.score_tile", minimum=0, integer=True)
  if tile and group > 1 and tile % group:
    raise ConfigError(f"config.eval.score_tile ({tile}) must be a multiple of "
                      f"config.eval.topk_group ({group})")
  return tile


def _grouped(n: int, k: int, group: int) -> bool:
  """Whether the top ``k`` of ``n`` columns goes through groups of ``group`` (else lax.top_k)."""
  return group > 1 and n > k * group


def _maxima(scores: jax.Array, group: int) -> jax.Array:
  """[B, ceil(n / group)] maxima of the row's groups of ``group`` columns (the last one shorter
  when ``group`` does not divide ``n``): a windowed max over the scores as they are (no padded
  copy: on a CPU, padding a score block costs more than ranking it), the short group's from its
  own slice."""
  n = scores.shape[1]
  full = n // group
  maxima = jax.lax.reduce_window(scores, -jnp.inf, jax.lax.max, (1, group), (1, group), "VALID")
  if n % group:
    maxima = jnp.concatenate([maxima, scores[:, full * group:].max(axis=1, keepdims=True)], axis=1)
  return maxima


def _candidates(scores: jax.Array, maxima: jax.Array, k: int,
                group: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The top ``k`` groups by their maxima (ties: lower group first) in column order [B, k], their
  ``k * group`` columns [B, k * group] and those columns' scores (-inf past the row's end)."""
  b = scores.shape[0]
  _, gidx = jax.lax.top_k(maxima, k)
  gidx = jnp.sort(gidx, axis=-1)                                          # column order
  cols = (gidx[:, :, None] * group + jnp.arange(group, dtype=gidx.dtype)).reshape(b, k * group)
  return gidx, cols, jnp.take_along_axis(scores, cols, axis=1, mode="fill", fill_value=-jnp.inf)


def _best(cand: jax.Array, cols: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  vals, pos = jax.lax.top_k(cand, k)
  return vals, jnp.take_along_axis(cols, pos, axis=1)


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
  ``k * group`` candidates instead of ``n`` columns. The short last group's missing columns are
  read as -inf, and come after every real column of the same value, so they are never chosen over
  one."""
  if not _grouped(scores.shape[1], k, group):
    return jax.lax.top_k(scores, k)
  _, cols, cand = _candidates(scores, _maxima(scores, group), k, group)
  return _best(cand, cols, k)


def top_k_excluding(scores: jax.Array, seg: jax.Array, cols: jax.Array, real: jax.Array, k: int,
                    group: int = 0) -> tuple[jax.Array, jax.Array]:
  """:func:`top_k` of ``scores`` [B, n] with the entries ``(seg, cols)`` excluded (a row's
  training items): what ``top_k(scores.at[seg, cols].min(-inf), k, group)`` returns, where the
  entries with ``real`` False (padding) exclude nothing. Duplicate entries are allowed, in any
  order.

  Through groups, the score block is only read: writing -inf into it would copy the whole
  non-donated block first (a CPU spends more on that copy than on the ranking). Instead the maxima
  of the groups that hold an excluded column are taken again from those groups' own scores with
  their excluded columns at -inf, and the excluded columns among the chosen groups' candidates are
  set to -inf: the same maxima and candidates as those of the excluded scores, so the same
  result."""
  b, n = scores.shape
  n_groups = -(-n // max(group, 1))
  if not _grouped(n, k, group) or b * n_groups >= 2 ** 31 - 1:   # (the int32 group keys below)
    scores = scores.at[seg, cols].min(jnp.where(real, -jnp.inf, jnp.inf))
    return top_k(scores, k, group)
  maxima = _maxima(scores, group)
  grp = cols // group
  # The entries sorted by (row, group): each run shares one copy of its group's scores, where
  # every excluded column of the run is set to -inf; padding sorts last, in a run of its own.
  key = jnp.where(real, seg * n_groups + grp, b * n_groups)
  order = jnp.argsort(key)
  key_s, seg_s, col_s, grp_s, real_s = (a[order] for a in (key, seg, cols, grp, real))
  m = key.shape[0]
  starts = jnp.concatenate([jnp.ones(1, bool), key_s[1:] != key_s[:-1]])
  first = jax.lax.cummax(jnp.where(starts, jnp.arange(m), 0))           # its run's first entry
  block = scores.at[seg_s[:, None], grp_s[:, None] * group + jnp.arange(group)].get(
      mode="fill", fill_value=-jnp.inf)                                 # [m, group]
  block = block.at[first, col_s % group].min(-jnp.inf)
  maxima = maxima.at[seg_s, grp_s].min(jnp.where(real_s, block.max(axis=1)[first], jnp.inf))
  gidx, ccols, cand = _candidates(scores, maxima, k, group)
  # Each excluded entry's place among its row's candidates, if its group was chosen.
  slot = jnp.full(maxima.shape, -1, jnp.int32).at[jnp.arange(b)[:, None], gidx].set(
      jnp.arange(k, dtype=jnp.int32))[seg, grp]
  hit = real & (slot >= 0)
  cand = cand.at[seg, jnp.maximum(slot, 0) * group + cols % group].min(
      jnp.where(hit, -jnp.inf, jnp.inf))
  return _best(cand, ccols, k)


def _tiled_first(n_padded: int, k: int, group: int, tile: int) -> tuple[int, int]:
  """(the group size, the width of the first block: at least ``k`` groups) of
  :func:`top_k_tiled`."""
  g = max(group, 1) if n_padded >= k * max(group, 1) else 1
  return g, min(n_padded, -(-(k * g) // tile) * tile)


def tiled_widest(n_padded: int, k: int, group: int, tile: int) -> int:
  """The widest block :func:`top_k_tiled` asks ``block_fn`` for (its first)."""
  return max(_tiled_first(n_padded, k, group, tile)[1], tile)


def top_k_tiled(block_fn: Callable[[jax.Array, int], jax.Array], n: int, n_padded: int,
                seg: jax.Array, cols: jax.Array, real: jax.Array, k: int, group: int,
                tile: int) -> tuple[jax.Array, jax.Array]:
  """:func:`top_k_excluding` of a score block that is never materialized whole: the scores come
  in column tiles, ``block_fn(start, width) -> [B, width]`` (float32; ``start`` a traced multiple
  of ``tile``), each ranked while it is fresh, so no [B, n] block is written and read back
  (where that wins and where it loses: ``python -m bench.score_tiles``).

  ``n`` real columns, ``n_padded`` (a multiple of ``tile``, >= n) columns ``block_fn`` can give
  (columns from ``n`` on count as -inf). Groups of ``max(group, 1)`` columns (``tile`` a multiple
  of it): the first block holds at least ``k`` groups; after each block the top ``k`` groups so
  far (by maxima, ties: lower group first) keep their scores; at the end the top ``k`` of those
  groups' columns, in column order. The same groups as :func:`top_k`'s over the whole row (each
  merge keeps the top ``k`` of the union, and earlier groups come first among equal maxima), so
  the same result as ``top_k_excluding`` of the whole block.
  """
  g, first = _tiled_first(n_padded, k, group, tile)

  def scored(start, width):
    s = block_fn(start, width)
    b = s.shape[0]
    colno = start + jnp.arange(width)
    s = jnp.where(colno < n, s, -jnp.inf)
    local = cols - start
    inside = real & (local >= 0) & (local < width)
    s = s.at[seg, jnp.where(inside, local, width)].min(-jnp.inf, mode="drop")
    return s.reshape(b, width // g, g)

  s = scored(0, first)
  m, gid = jax.lax.top_k(s.max(axis=2), k)                  # [B, k]
  v = jnp.take_along_axis(s, gid[:, :, None], axis=1)       # [B, k, g]

  def merge(t, carry):
    m, gid, v = carry
    start = t * tile
    s = scored(start, tile)
    m, pos = jax.lax.top_k(jnp.concatenate([m, s.max(axis=2)], axis=1), k)
    old = pos < k
    gid = jnp.where(old, jnp.take_along_axis(gid, jnp.minimum(pos, k - 1), axis=1),
                    start // g + pos - k)
    v = jnp.where(old[:, :, None], jnp.take_along_axis(v, jnp.minimum(pos, k - 1)[:, :, None], 1),
                  jnp.take_along_axis(s, jnp.maximum(pos - k, 0)[:, :, None], axis=1))
    return m, gid, v

  m, gid, v = jax.lax.fori_loop(first // tile, n_padded // tile, merge, (m, gid, v))
  order = jnp.argsort(gid, axis=1)                         # column order
  gid = jnp.take_along_axis(gid, order, axis=1)
  b = gid.shape[0]
  cand = jnp.take_along_axis(v, order[:, :, None], axis=1).reshape(b, k * g)
  ccols = (gid[:, :, None] * g + jnp.arange(g, dtype=gid.dtype)).reshape(b, k * g)
  return _best(cand, ccols, k)
