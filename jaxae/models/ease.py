"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): the closed-form
item-item model ``B = I - P / diag(P)``, ``P = (X^T X + l2 I)^-1``, ``diag(B) = 0``.

Not a gradient model: :func:`fit_ease` computes ``B`` with jax on the default device in float32.
``X^T X`` is accumulated over row chunks of the CSR matrix, each chunk scattered into a dense block
*on the device* from its nonzeros, so no dense [users, items] array is ever built on the host. The
item-item matrices need about :func:`memory_needed` bytes; when that exceeds the budget (``max_bytes``,
by default the device's free memory) a ConfigError says how many bytes it would take.

:class:`EASE` wraps ``B`` as a flax module (parameter ``"B"``) so scoring goes through the same
``model.apply(..., train=False)["recon"]`` path as the autoencoders; its ``trainable`` is False.
"""

from __future__ import annotations

import functools
import os
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from jaxae.data.sparse import SparseBatch
from jaxae.errors import ConfigError, JaxaeError
from jaxae.models.layers import embedding_bag

_BYTES = 4                    # float32
_MIN_CHUNK_ELEMS = 1 << 22    # a row chunk of X is at least 16 MiB of float32 (fewer, larger steps)
_MAX_CHUNK_ELEMS = 1 << 26    # ... and at most 256 MiB
_MIN_NNZ_BUCKET = 1 << 10


def _chunk_elems(n_items: int) -> int:
  return min(max(n_items * n_items, _MIN_CHUNK_ELEMS), _MAX_CHUNK_ELEMS)


def memory_needed(n_items: int) -> int:
  """Peak device bytes of :func:`fit_ease` for ``n_items`` columns.

  The solve holds up to five [n, n] float32 arrays (G, its Cholesky factor, the identity right-hand
  side, P and B); the Gram accumulation holds G, one chunk product and one dense row chunk.
  """
  n2 = int(n_items) * int(n_items)
  return _BYTES * max(5 * n2, 2 * n2 + _chunk_elems(int(n_items)))


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


def check_memory(n_items: int, max_bytes: int | None = None) -> None:
  """Raises ConfigError stating the bytes EASE would need when they exceed the budget."""
  budget = available_bytes() if max_bytes is None else int(max_bytes)
  need = memory_needed(n_items)
  if budget is not None and need > budget:
    raise ConfigError(
        f"config.model: ease on {n_items} items needs about {need} bytes "
        f"({need / 2**30:.2f} GiB) for its {n_items}x{n_items} float32 matrices, more than the "
        f"{budget} bytes ({budget / 2**30:.2f} GiB) available; reduce the item count (e.g. a higher "
        f"minimum item count) or raise model.max_bytes")


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


def fit_ease(x: Any, l2: float, *, max_bytes: int | None = None) -> jax.Array:
  """Fits EASE on the interaction matrix ``x`` [rows, items].

  Args:
    x: scipy sparse (CSR) matrix, or a dense numpy / jax array.
    l2: the L2 regularization lambda (> 0 keeps X^T X + lambda I positive definite).
    max_bytes: device memory budget; None = free memory of the default device
      (:func:`available_bytes`).

  Returns:
    B [items, items] float32 on the default device, zero diagonal; scores are ``x_rows @ B``.
  """
  if not np.isfinite(l2) or l2 < 0:
    raise ConfigError(f"config.model.l2: EASE needs a finite l2 >= 0, got {l2!r}")
  n_items = int(x.shape[1])
  check_memory(n_items, max_bytes)
  with jax.default_matmul_precision("highest"):
    b = _ease_from_gram(gram(x), jnp.float32(l2))
  if not bool(jnp.isfinite(b).all()):
    raise JaxaeError(
        f"EASE: X^T X + {l2} I is not positive definite (non-finite result); use a larger model.l2")
  return b


def ease_scores(b: jax.Array, x_rows: jax.Array | SparseBatch) -> jax.Array:
  """Scores [B, items] = ``x_rows @ B`` for dense rows or a SparseBatch (embedding-bag over the
  nonzeros, no dense input needed)."""
  if isinstance(x_rows, SparseBatch):
    return embedding_bag(x_rows, b, jnp.float32)
  return jnp.dot(x_rows.astype(jnp.float32), b, precision=jax.lax.Precision.HIGHEST)


def fit_ease_from_config(model_config, train: Any) -> dict[str, jax.Array]:
  """``CLOSED_FORM["ease"]``: fits from ``config.model`` (``l2``; optional ``max_bytes``) on the
  training matrix (an ``Interactions``, a scipy matrix or an array); returns the params pytree
  ``{"B": B}`` of :class:`EASE`."""
  matrix = getattr(train, "matrix", train)
  max_bytes = model_config.get("max_bytes", None)
  return {"B": fit_ease(matrix, float(model_config.l2), max_bytes=max_bytes)}


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
