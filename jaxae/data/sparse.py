"""The batch format shared by the host iterator, the models and the train step.

A :class:`SparseBatch` is a fixed-shape, padded, row-sharded COO block of an :class:`Interactions`
matrix. Shapes (``B`` rows, ``S`` data shards, ``N`` padded nonzeros per shard, ``B % S == 0``):

  rows     int32   [B]     index of each batch row in the source matrix (0 for padding rows)
  mask     float32 [B]     1 for a real row, 0 for a padding row (the last, partial batch)
  lengths  int32   [B]     nonzeros of each row (0 for padding rows)
  cols     int32   [S, N]  column index of each nonzero of shard s (0 for padding entries)
  vals     float32 [S, N]  value of each nonzero (0 for padding entries)
  seg      int32   [S, N]  row of each nonzero *within its shard*, 0 .. B/S - 1 (padding: B/S - 1)

Shard ``s`` holds the nonzeros of batch rows ``s*B/S .. (s+1)*B/S - 1``. Sharding the leading axis of
every field over the mesh's data axis therefore keeps each device's rows and their nonzeros on that
device; ``N`` is bucketed by the iterator so jit sees only a few shapes. Padding entries carry value 0,
so a scatter-add or a gather + segment-sum ignores them without a mask.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SparseBatch(NamedTuple):
  rows: jax.Array
  mask: jax.Array
  lengths: jax.Array
  cols: jax.Array
  vals: jax.Array
  seg: jax.Array

  @property
  def batch_size(self) -> int:
    return self.rows.shape[0]

  @property
  def num_shards(self) -> int:
    return self.cols.shape[0]


def densify(batch: SparseBatch, n_cols: int, dtype=jnp.float32) -> jax.Array:
  """Scatters the nonzeros into zeros [B, n_cols] on the device (call inside jit).

  Each shard scatters into its own [B/S, n_cols] block (vmapped over the shard axis), so under a
  data-sharded mesh the scatter stays local to each device.
  """
  s, _ = batch.cols.shape
  rows_per_shard = batch.batch_size // s

  def one(cols, vals, seg):
    return jnp.zeros((rows_per_shard, n_cols), dtype).at[seg, cols].add(vals.astype(dtype))

  dense = jax.vmap(one)(batch.cols, batch.vals, batch.seg)
  return dense.reshape(batch.batch_size, n_cols)


def observed_mask(batch: SparseBatch, n_cols: int, dtype=jnp.float32) -> jax.Array:
  """1 where an entry is stored in the batch (even a stored 0 rating would count), else 0."""
  ones = batch._replace(vals=real_entries(batch).astype(dtype))
  return densify(ones, n_cols, dtype)


def real_entries(batch: SparseBatch) -> jax.Array:
  """[S, N] bool: True for stored entries, False for padding (derived from per-row lengths)."""
  s, n = batch.cols.shape
  lengths = batch.lengths.reshape(s, -1)                       # [S, B/S]
  nnz = lengths.sum(axis=1, keepdims=True)                     # [S, 1]
  return jnp.arange(n)[None, :] < nnz                          # entries are packed row by row


def shard_rows(a: jax.Array, batch: SparseBatch) -> jax.Array:
  """``a`` [B, ...] as [S, B / S, ...]: each data shard's rows, as its entries' ``seg`` index them."""
  s = batch.cols.shape[0]
  return a.reshape(s, batch.batch_size // s, *a.shape[1:])


def global_segments(batch: SparseBatch) -> jax.Array:
  """[S, N] row of each nonzero within the whole batch (0 .. B-1): the flat embedding-bag form."""
  s, _ = batch.cols.shape
  rows_per_shard = batch.batch_size // s
  return batch.seg + (jnp.arange(s, dtype=batch.seg.dtype) * rows_per_shard)[:, None]
