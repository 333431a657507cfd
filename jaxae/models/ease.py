"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): the closed-form
item-item model ``B = I - P / diag(P)``, ``P = (X^T X + l2 I)^-1``, ``diag(B) = 0``.

Not a gradient model: :func:`fit_ease` computes ``B`` with jax on the default device in float32, with
one of two solvers (``config.model.solver``):

  cholesky  ``X^T X`` accumulated over row chunks of the CSR matrix, each chunk scattered into a dense
            block *on the device* (no dense [users, items] array on the host), then one Cholesky
            factorization and a solve against the identity: about ``5 n^2`` floats at the peak.
  blocked   for catalogs whose ``n^2`` float32 matrices do not fit five times: the sparse ``X^T X``
            (scipy, on the host: 12 bytes per nonzero of the Gram, never dense there) is cut into
            ``block_size`` tiles, and the inverse is computed tile by tile on the device, in place,
            on the lower triangle only (blocked Cholesky ``LL^T``, then ``L^-1``, then
            ``L^-T L^-1``: LAPACK's potrf / trtri / lauum, ``n^3`` flops in all), and ``B`` is
            written into one [n, n] array: about ``1.5 n^2`` floats at the peak (Gowalla's 40,981
            items: 10.3 GB, where the cholesky solver needs 33.6 GB and a float64 dense inverse
            about 44 GB).

The item-item matrices need about :func:`memory_needed` bytes; when that exceeds the budget
(``max_bytes``, by default the device's free memory) a ConfigError says how many bytes it would take.

:class:`EASE` wraps ``B`` as a flax module (parameter ``"B"``) so scoring goes through the same
``model.apply(..., train=False)["recon"]`` path as the autoencoders; its ``trainable`` is False.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from absl import logging

from jaxae.data.sparse import SparseBatch
from jaxae.errors import ConfigError, JaxaeError

_BYTES = 4                    # float32
_MIN_CHUNK_ELEMS = 1 << 22    # a row chunk of X is at least 16 MiB of float32 (fewer, larger steps)
_MAX_CHUNK_ELEMS = 1 << 26    # ... and at most 256 MiB
_MIN_NNZ_BUCKET = 1 << 10


def _chunk_elems(n_items: int) -> int:
  return min(max(n_items * n_items, _MIN_CHUNK_ELEMS), _MAX_CHUNK_ELEMS)


SOLVERS = ("cholesky", "blocked")
DEFAULT_SOLVER = "cholesky"     # what an absent config.model.solver means
DEFAULT_BLOCK_SIZE = 2048       # what an absent config.model.block_size means (blocked solver)
_TILE_ALIGN = 8


def tile_layout(n_items: int, block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[int, int]:
  """``(tiles, tile)`` of the blocked solver: ``tiles`` = ceil(n / block_size) tiles per side, each
  ``tile`` items (about n / tiles, rounded up to a multiple of 8; the last one padded)."""
  n, block_size = int(n_items), int(block_size)
  if block_size < 1:
    raise ConfigError(f"config.model.block_size: expected a positive integer, got {block_size}")
  tiles = max(1, -(-n // block_size))
  tile = -(-n // tiles)
  tile = -(-tile // _TILE_ALIGN) * _TILE_ALIGN
  return tiles, tile


def memory_needed(n_items: int, solver: str = DEFAULT_SOLVER,
                  block_size: int = DEFAULT_BLOCK_SIZE) -> int:
  """Peak device bytes of :func:`fit_ease` for ``n_items`` columns.

  cholesky: up to five [n, n] float32 arrays (G, its Cholesky factor, the identity right-hand side,
  P and B); the Gram accumulation holds G, one chunk product and one dense row chunk.
  blocked: the lower-triangle tiles of G / L / L^-1 / P (all in place, ``T(T+1)/2`` tiles of
  ``t x t``), plus the [n, n] output B while the tiles are written into it, plus two tiles of
  workspace. (The host additionally holds the sparse X^T X: 12 bytes per nonzero.)
  """
  n = int(n_items)
  n2 = n * n
  if solver == "cholesky":
    return _BYTES * max(5 * n2, 2 * n2 + _chunk_elems(n))
  if solver == "blocked":
    tiles, tile = tile_layout(n, block_size)
    return _BYTES * (n2 + (tiles * (tiles + 1) // 2 + 2) * tile * tile)
  raise ConfigError(f"config.model.solver: unknown EASE solver {solver!r}; known: "
                    f"{', '.join(SOLVERS)}")


def available_bytes() -> int | None:
  """Free memory of the default device (``bytes_limit - bytes_in_use``); on a CPU device (no memory
  stats) the host's physical memory; None when neither is known."""
  stats = jax.local_devices()[0].memory_stats()
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:
    return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
  except (ValueError, OSError, AttributeError):
    return None


def check_budget(need: int, max_bytes: int | None, subject: str, purpose: str, remedy: str) -> None:
  """Raises ConfigError when ``need`` bytes exceed the budget (``max_bytes``, or the device's free
  memory when None): ``config.model: <subject> needs about <need> bytes ... for <purpose>, more than
  the <budget> bytes available; <remedy>``. Shared by the closed-form models."""
  budget = available_bytes() if max_bytes is None else int(max_bytes)
  if budget is not None and need > budget:
    raise ConfigError(
        f"config.model: {subject} needs about {need} bytes ({need / 2**30:.2f} GiB) for {purpose}, "
        f"more than the {budget} bytes ({budget / 2**30:.2f} GiB) available; {remedy}")


def check_memory(n_items: int, max_bytes: int | None = None, solver: str = DEFAULT_SOLVER,
                 block_size: int = DEFAULT_BLOCK_SIZE) -> None:
  """Raises ConfigError stating the bytes EASE would need when they exceed the budget."""
  hint = (" or use model.solver='blocked' (about 1.5 n^2 floats instead of 5 n^2)"
          if solver == "cholesky" else "")
  check_budget(memory_needed(n_items, solver, block_size), max_bytes, f"ease on {n_items} items",
               f"its {n_items}x{n_items} float32 matrices with the {solver} solver",
               f"reduce the item count (e.g. a higher minimum item count), raise "
               f"model.max_bytes{hint}")


# --------------------------------------------------------------------------- Gram matrix
@functools.partial(jax.jit, static_argnames=("chunk_rows", "n_items"), donate_argnums=0)
def _accumulate_gram(g, r, c, v, *, chunk_rows: int, n_items: int):
  block = jnp.zeros((chunk_rows, n_items), jnp.float32).at[r, c].add(v)
  return g + jax.lax.dot_general(block, block, (((0,), (0,)), ((), ())),
                                 precision=jax.lax.Precision.HIGHEST)


@jax.jit
def _dense_gram(x):
  x = x.astype(jnp.float32)
  return jax.lax.dot_general(x, x, (((0,), (0,)), ((), ())), precision=jax.lax.Precision.HIGHEST)


def gram(x: Any) -> jax.Array:
  """``X^T X`` [n_items, n_items] float32 on the default device.

  ``x`` is a scipy sparse matrix (accumulated over row chunks, each densified on the device from its
  nonzeros) or a dense numpy / jax array.
  """
  if not sp.issparse(x):
    return _dense_gram(jnp.asarray(x))
  x = sp.csr_matrix(x)
  n_rows, n_items = x.shape
  chunk_rows = max(1, min(n_rows, _chunk_elems(n_items) // max(n_items, 1)))
  g = jnp.zeros((n_items, n_items), jnp.float32)
  for start in range(0, n_rows, chunk_rows):   # one step per chunk of rows, not per row
    sub = x[start:start + chunk_rows]
    nnz = sub.nnz
    bucket = max(_MIN_NNZ_BUCKET, 1 << max(nnz - 1, 0).bit_length())  # few distinct jit shapes
    r = np.zeros(bucket, np.int32)
    c = np.zeros(bucket, np.int32)
    v = np.zeros(bucket, np.float32)
    r[:nnz] = np.repeat(np.arange(sub.shape[0], dtype=np.int32), np.diff(sub.indptr))
    c[:nnz] = sub.indices
    v[:nnz] = sub.data
    g = _accumulate_gram(g, r, c, v, chunk_rows=chunk_rows, n_items=n_items)
  return g


# --------------------------------------------------------------------------- closed form
@functools.partial(jax.jit, donate_argnums=0)
def _ease_from_gram(g: jax.Array, l2: jax.Array) -> jax.Array:
  n = g.shape[0]
  idx = jnp.arange(n)
  g = g.at[idx, idx].add(l2)
  factor = jax.scipy.linalg.cho_factor(g, lower=True)
  p = jax.scipy.linalg.cho_solve(factor, jnp.eye(n, dtype=g.dtype))
  b = -p / jnp.diag(p)[None, :]           # B = I - P diagMat(1 / diag(P)), off the diagonal
  return b.at[idx, idx].set(0.0)


# --------------------------------------------------------------------------- blocked solver
# Tile kernels of the blocked solver. Each output replaces a donated tile, so the lower triangle of
# tiles is the only [n, n]-sized state while G turns into L, L^-1 and P.
_HI = jax.lax.Precision.HIGHEST


@functools.partial(jax.jit, donate_argnums=0)
def _tile_cholesky(a):
  return jnp.linalg.cholesky(a)


@functools.partial(jax.jit, donate_argnums=1)
def _tile_solve_right_t(l, a):              # a @ l^-T  (l lower triangular)
  return jax.lax.linalg.triangular_solve(l, a, left_side=False, lower=True, transpose_a=True)


@functools.partial(jax.jit, donate_argnums=0)
def _tile_sub_abt(c, a, b):                 # c - a @ b^T
  return c - jnp.dot(a, b.T, precision=_HI)


@jax.jit
def _tile_inv_lower(l):                     # l^-1 (lower triangular)
  eye = jnp.eye(l.shape[0], dtype=l.dtype)
  return jax.lax.linalg.triangular_solve(l, eye, left_side=True, lower=True)


@jax.jit
def _tile_ab(a, b):
  return jnp.dot(a, b, precision=_HI)


@functools.partial(jax.jit, donate_argnums=0)
def _tile_add_ab(c, a, b):                  # c + a @ b
  return c + jnp.dot(a, b, precision=_HI)


@functools.partial(jax.jit, donate_argnums=1)
def _tile_neg_solve_left(l, s):             # -(l^-1 s)
  return -jax.lax.linalg.triangular_solve(l, s, left_side=True, lower=True)


@jax.jit
def _tile_atb(a, b):
  return jnp.dot(a.T, b, precision=_HI)


@functools.partial(jax.jit, donate_argnums=0)
def _tile_add_atb(c, a, b):                 # c + a^T @ b
  return c + jnp.dot(a.T, b, precision=_HI)


@functools.partial(jax.jit, static_argnames=("n",))
def _zeros_square(*, n: int):
  return jnp.zeros((n, n), jnp.float32)


@functools.partial(jax.jit, donate_argnums=0, static_argnames=("transpose",))
def _write_b_tile(b, p, d, r0, c0, *, transpose: bool):
  """Writes ``-P_tile / diag(P)[cols]`` (or of its transpose) into ``b`` at ``(r0, c0)``."""
  t = p.T if transpose else p
  return jax.lax.dynamic_update_slice(b, -t / d[None, :], (r0, c0))


@functools.partial(jax.jit, donate_argnums=0)
def _zero_diagonal(b):
  idx = jnp.arange(b.shape[0])
  return b.at[idx, idx].set(0.0)


def _gram_tiles(x: Any, l2: float, tiles: int, tile: int) -> list[list[jax.Array | None]]:
  """Lower-triangle tiles of ``X^T X + l2 I`` (padded with the identity to ``tiles * tile``).

  The Gram matrix is a sparse product on the host (scipy; float64 sums, 12 bytes per nonzero);
  one row block at a time is made dense (``tile x n``) and its tiles are put on the device.
  """
  x = sp.csr_matrix(x) if sp.issparse(x) else sp.csr_matrix(np.asarray(x))
  n = x.shape[1]
  x = x.astype(np.float64)
  g = (x.T @ x).tocsr()
  del x
  n_pad = tiles * tile
  out: list[list[jax.Array | None]] = [[None] * tiles for _ in range(tiles)]
  for i in range(tiles):                    # a loop over row blocks (a handful), not over rows
    r0, r1 = i * tile, min((i + 1) * tile, n)
    block = np.zeros((tile, n_pad), np.float32)
    if r1 > r0:
      block[:r1 - r0, :n] = g[r0:r1].toarray()
    local = np.arange(tile)
    rows = r0 + local
    block[local, rows] += np.where(rows < n, np.float32(l2), np.float32(1.0))
    for j in range(i + 1):
      out[i][j] = jax.device_put(block[:, j * tile:(j + 1) * tile])
  return out


def _blocked_ease(x: Any, l2: float, block_size: int) -> jax.Array:
  """EASE's B by the tiled in-place inverse (see the module docstring), on the default device."""
  n = int(x.shape[1])
  tiles, tile = tile_layout(n, block_size)
  t0 = time.time()

  def phase(name: str) -> None:
    jax.block_until_ready([a for row in t for a in row if a is not None])
    logging.info("ease blocked solver (%d items, %d x %d tiles of %d): %s done at %.1fs", n, tiles,
                 tiles, tile, name, time.time() - t0)

  def drain() -> None:
    # One sync per block column: at most one column's tile ops are queued ahead of the device, so
    # their outputs (and the donated tiles they replace) never pile up in memory.
    jax.block_until_ready([a for row in t for a in row if a is not None])

  t = _gram_tiles(x, l2, tiles, tile)
  phase("sparse X^T X + tiles")
  rng = range(tiles)
  # 1. Cholesky, right-looking: t[i][j] (i >= j) becomes L[i, j] with G = L L^T.
  for k in rng:
    t[k][k] = _tile_cholesky(t[k][k])
    for i in range(k + 1, tiles):
      t[i][k] = _tile_solve_right_t(t[k][k], t[i][k])
    for j in range(k + 1, tiles):
      for i in range(j, tiles):
        t[i][j] = _tile_sub_abt(t[i][j], t[i][k], t[j][k])
    drain()
  phase("Cholesky")
  # 2. M = L^-1 in place, column blocks left to right, rows top to bottom:
  #    M[j, j] = L[j, j]^-1;  M[i, j] = -L[i, i]^-1 sum_{k=j}^{i-1} L[i, k] M[k, j].
  #    (L[i, k] with k > j and L[i, i] are not overwritten yet when M[i, j] is computed.)
  for j in rng:
    t[j][j] = _tile_inv_lower(t[j][j])
    for i in range(j + 1, tiles):
      acc = _tile_ab(t[i][j], t[j][j])
      for k in range(j + 1, i):
        acc = _tile_add_ab(acc, t[i][k], t[k][j])
      t[i][j] = _tile_neg_solve_left(t[i][i], acc)
    drain()
  phase("L^-1")
  # 3. P = M^T M in place (lower tiles): P[i, j] = sum_{k >= i} M[k, i]^T M[k, j], same order.
  for j in rng:
    for i in range(j, tiles):
      acc = _tile_atb(t[i][i], t[i][j])
      for k in range(i + 1, tiles):
        acc = _tile_add_atb(acc, t[k][i], t[k][j])
      t[i][j] = acc
    drain()
  phase("P = L^-T L^-1")
  # 4. B = -P / diag(P) (columns), zero diagonal, written tile by tile into one [n, n] array.
  diag = jnp.concatenate([jnp.diagonal(t[j][j]) for j in rng])[:n]
  b = _zeros_square(n=n)
  for j in rng:
    c0, c1 = j * tile, min((j + 1) * tile, n)
    for i in range(j, tiles):
      r0, r1 = i * tile, min((i + 1) * tile, n)
      if r1 > r0 and c1 > c0:
        p = t[i][j][:r1 - r0, :c1 - c0]
        b = _write_b_tile(b, p, diag[c0:c1], r0, c0, transpose=False)
        if i > j:
          b = _write_b_tile(b, p, diag[r0:r1], c0, r0, transpose=True)
      t[i][j] = None                        # frees the tile
    b.block_until_ready()
  return _zero_diagonal(b)


def fit_ease(x: Any, l2: float, *, max_bytes: int | None = None, solver: str = DEFAULT_SOLVER,
             block_size: int = DEFAULT_BLOCK_SIZE) -> jax.Array:
  """Fits EASE on the interaction matrix ``x`` [rows, items].

  Args:
    x: scipy sparse (CSR) matrix, or a dense numpy / jax array.
    l2: the L2 regularization lambda (> 0 keeps X^T X + lambda I positive definite).
    max_bytes: device memory budget; None = free memory of the default device
      (:func:`available_bytes`).
    solver: "cholesky" (dense factor + solve, about 5 n^2 floats) or "blocked" (tiled in-place
      inverse, about 1.5 n^2 floats); see the module docstring.
    block_size: the blocked solver's tile size (items per tile side, before rounding).

  Returns:
    B [items, items] float32 on the default device, zero diagonal; scores are ``x_rows @ B``.
  """
  if not np.isfinite(l2) or l2 < 0:
    raise ConfigError(f"config.model.l2: EASE needs a finite l2 >= 0, got {l2!r}")
  n_items = int(x.shape[1])
  check_memory(n_items, max_bytes, solver, block_size)
  with jax.default_matmul_precision("highest"):
    if solver == "blocked":
      b = _blocked_ease(x, float(l2), int(block_size))
    else:
      b = _ease_from_gram(gram(x), jnp.float32(l2))
  if not bool(jnp.isfinite(b).all()):
    raise JaxaeError(
        f"EASE: X^T X + {l2} I is not positive definite (non-finite result); use a larger model.l2")
  return b


# Entries per step of the chunked sparse scoring: a [chunk, n] slab of B at a time instead of one
# [nonzeros, n] gather (at Gowalla's 40,981 items a 1,024-row batch has up to ~32k nonzeros: 5 GB).
_SCORE_CHUNK = 256


def _sparse_scores(batch: SparseBatch, b: jax.Array) -> jax.Array:
  """``densify(batch) @ B`` accumulated over chunks of the nonzeros (rows of B gathered and added
  into each row's scores), per data shard; same sums as ``embedding_bag``, little memory."""
  n = b.shape[1]
  rows_per_shard = batch.batch_size // batch.num_shards

  def one(cols, vals, seg):
    k = min(_SCORE_CHUNK, cols.shape[0])
    pad = (-cols.shape[0]) % k            # padding entries: value 0, add nothing
    cols, vals, seg = (jnp.pad(a, (0, pad)) for a in (cols, vals, seg))

    def add(acc, chunk):
      c, v, r = chunk
      return acc.at[r].add(b[c] * v.astype(jnp.float32)[:, None]), None

    acc, _ = jax.lax.scan(add, jnp.zeros((rows_per_shard, n), jnp.float32),
                          (cols.reshape(-1, k), vals.reshape(-1, k), seg.reshape(-1, k)))
    return acc

  return jax.vmap(one)(batch.cols, batch.vals, batch.seg).reshape(batch.batch_size, n)


def ease_scores(b: jax.Array, x_rows: jax.Array | SparseBatch) -> jax.Array:
  """Scores [B, items] = ``x_rows @ B`` for dense rows or a SparseBatch (rows of B gathered at the
  nonzeros, in chunks; no dense input needed)."""
  if isinstance(x_rows, SparseBatch):
    return _sparse_scores(x_rows, b)
  return jnp.dot(x_rows.astype(jnp.float32), b, precision=jax.lax.Precision.HIGHEST)


def fit_ease_from_config(model_config, train: Any) -> dict[str, jax.Array]:
  """``CLOSED_FORM["ease"]``: fits from ``config.model`` (``l2``; optional ``max_bytes``,
  ``solver`` (absent = "cholesky"), ``block_size`` (absent = 2048)) on the training matrix (an
  ``Interactions``, a scipy matrix or an array); returns the params pytree ``{"B": B}`` of
  :class:`EASE`."""
  matrix = getattr(train, "matrix", train)
  max_bytes = model_config.get("max_bytes", None)
  solver = model_config.get("solver", None) or DEFAULT_SOLVER
  block_size = model_config.get("block_size", None) or DEFAULT_BLOCK_SIZE
  return {"B": fit_ease(matrix, float(model_config.l2), max_bytes=max_bytes, solver=solver,
                        block_size=int(block_size))}


class EASE(nn.Module):
  """``recon = x @ B`` with ``B`` the fitted item-item matrix (parameter "B" [n_cols, n_cols]).

  Not trainable: get its params from :func:`fit_ease_from_config` instead of ``init`` + gradient
  steps (``init`` only gives zeros of the right shape, e.g. for ``jax.eval_shape`` when restoring).
  There is no code layer, so the output has only ``"recon"``.
  """

  n_cols: int

  trainable: ClassVar[bool] = False

  @nn.compact
  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool = False) -> dict[str, jax.Array]:
    del rows, train
    b = self.param("B", nn.initializers.zeros, (self.n_cols, self.n_cols), jnp.float32)
    return {"recon": ease_scores(b, x)}
