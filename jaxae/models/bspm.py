"""BSPM (Choi et al. 2023, "Blurring-Sharpening Process Models for Collaborative Filtering") and its
special case GF-CF (Shen et al. 2021): closed-form item-item filters on the normalized interaction
matrix, the shallow linear autoencoder family of EASE.

With ``R~ = D_U^-1/2 R D_I^-1/2`` (user / item degrees of the training matrix ``R``; a zero degree
gives a zero row / column) and ``P~ = R~^T R~`` (items x items), a user's row ``x`` is

  blurred   ``blur_steps`` Euler steps over ``blur_time`` of the heat equation
            ``dy/dt = y P~ - y`` from ``y = x`` (one step of time 1: ``x P~``, GF-CF's linear filter);
  idl       the ideal low-pass filter ``x D_I^-1/2 V V^T D_I^1/2``, ``V`` the top ``factor_dim``
            right singular vectors of ``R~`` (0 = no such term);
  sharpened ``sharpen_steps`` steps (``sharpen_solver`` "euler" or "rk4") over ``sharpen_time`` of
            ``dy/dt = -y P~`` (0 = no sharpening);

  merge "early" (BSPM-EM):  scores = sharpen(blurred + idl_beta * idl)
  merge "late"  (BSPM-LM):  scores = sharpen(blurred) + idl_beta * idl

GF-CF is ``blur_time=1, blur_steps=1, sharpen_time=0`` with ``idl_beta`` its alpha.

Every step is linear in ``x``, so the whole process is one item-item matrix ``F`` with scores
``x @ F``. :func:`fit_bspm` computes ``F`` row block by row block (the process run on the identity's
rows), on the device: ``y P~`` is two sparse products with ``R~`` (gathers and segment sums over its
nonzeros: ``2 * nnz * rows`` multiply-adds), never the dense ``P~`` or a dense ``R~``. The singular
vectors come from ARPACK on the host (``svd_solver="arpack"``, what the papers' ``sparsesvd`` computes)
or from a randomized SVD (Halko et al. 2011) over the same sparse products on the device
(``"randomized"``: fast, approximate near the cut-off when the spectrum is flat). Scoring is then
EASE's: :class:`BSPM` is :class:`~jaxae.models.ease.EASE` (parameter ``"B"`` = ``F``), with the same
sparse-input path, checkpoints, evaluation and export. Memory: ``F`` (``4 n^2`` bytes) plus
``block_size * (2 nnz + 8 n)`` floats of work (:func:`memory_needed`).
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from absl import logging

from jaxae.errors import ConfigError, JaxaeError
from jaxae.models import ease as ease_lib

SOLVERS = ("euler", "rk4")
SVD_SOLVERS = ("arpack", "randomized")
MERGES = ("early", "late")
_BYTES = 4


class BSPM(ease_lib.EASE):
  """``recon = x @ F`` with ``F`` the fitted BSPM filter (parameter "B" [n_cols, n_cols]); get its
  params from :func:`fit_bspm_from_config`. Scoring, sparse input and restoring are EASE's."""


# --------------------------------------------------------------------------- the sparse R~
class NormalizedMatrix:
  """``R~`` on the device as its nonzeros twice: sorted by row (for ``R~ @ y``) and by column (for
  ``R~^T @ t``), plus the item degrees' ``D_I^-1/2`` and ``D_I^1/2``."""

  def __init__(self, matrix: Any):
    r = sp.csr_matrix(matrix, dtype=np.float64)
    r.sum_duplicates()
    self.n_rows, self.n_items = r.shape
    du = np.asarray(r.sum(axis=1)).ravel()
    di = np.asarray(r.sum(axis=0)).ravel()
    if (du < 0).any() or (di < 0).any():
      raise ConfigError("bspm needs non-negative interaction values (degrees are row / column sums)")
    du_inv = np.where(du > 0, 1.0 / np.sqrt(np.maximum(du, 1e-300)), 0.0)
    di_inv = np.where(di > 0, 1.0 / np.sqrt(np.maximum(di, 1e-300)), 0.0)
    norm = (sp.diags(du_inv) @ r @ sp.diags(di_inv)).tocsr()
    norm.eliminate_zeros()
    coo = norm.tocoo()                                   # row-major (from CSR)
    self.nnz = int(coo.nnz)
    self.rows = jnp.asarray(coo.row.astype(np.int32))
    self.cols = jnp.asarray(coo.col.astype(np.int32))
    self.vals = jnp.asarray(coo.data.astype(np.float32))
    order = np.lexsort((coo.row, coo.col))               # column-major
    self.c_rows = jnp.asarray(coo.row[order].astype(np.int32))
    self.c_cols = jnp.asarray(coo.col[order].astype(np.int32))
    self.c_vals = jnp.asarray(coo.data[order].astype(np.float32))
    self.host = norm                                     # scipy CSR (float64), for ARPACK
    self.d_inv_sqrt = jnp.asarray(di_inv.astype(np.float32))
    self.d_sqrt = jnp.asarray(np.sqrt(di).astype(np.float32))

  def arrays(self) -> tuple[jax.Array, ...]:
    return (self.rows, self.cols, self.vals, self.c_rows, self.c_cols, self.c_vals)


def _r_mul(yt, rows, cols, vals, n_rows: int):
  """``R~ @ yt``: [items, m] -> [rows, m]."""
  return jax.ops.segment_sum(yt[cols] * vals[:, None], rows, num_segments=n_rows,
                             indices_are_sorted=True)


def _rt_mul(t, c_rows, c_cols, c_vals, n_items: int):
  """``R~^T @ t``: [rows, m] -> [items, m]."""
  return jax.ops.segment_sum(t[c_rows] * c_vals[:, None], c_cols, num_segments=n_items,
                             indices_are_sorted=True)


def _p_mul(yt, arrays, n_rows: int, n_items: int):
  """``P~ @ yt`` = ``R~^T (R~ yt)`` for yt [items, m] (``P~`` is symmetric: the rows' ``y P~``)."""
  rows, cols, vals, c_rows, c_cols, c_vals = arrays
  return _rt_mul(_r_mul(yt, rows, cols, vals, n_rows), c_rows, c_cols, c_vals, n_items)


# --------------------------------------------------------------------------- randomized SVD
@functools.partial(jax.jit, static_argnames=("n_rows", "n_items", "k", "oversample",
                                             "power_iters"))
def _randomized_vt(arrays, key, *, n_rows: int, n_items: int, k: int, oversample: int,
                   power_iters: int):
  rows, cols, vals, c_rows, c_cols, c_vals = arrays
  m = min(k + oversample, n_items, n_rows)
  omega = jax.random.normal(key, (n_items, m), jnp.float32)
  q, _ = jnp.linalg.qr(_r_mul(omega, rows, cols, vals, n_rows))             # [rows, m]
  for _ in range(power_iters):
    z, _ = jnp.linalg.qr(_rt_mul(q, c_rows, c_cols, c_vals, n_items))       # [items, m]
    q, _ = jnp.linalg.qr(_r_mul(z, rows, cols, vals, n_rows))
  b = _rt_mul(q, c_rows, c_cols, c_vals, n_items).T                         # Q^T R~: [m, items]
  _, s, vt = jnp.linalg.svd(b, full_matrices=False)
  return s[:k], vt[:k]


def top_right_singular_vectors(norm: NormalizedMatrix, k: int, *, solver: str, oversample: int,
                               power_iters: int, seed: int = 0) -> tuple[jax.Array, jax.Array]:
  """``(s [k], Vt [k, items])``: the top-``k`` singular values / right singular vectors of ``R~``,
  largest first.

  ``solver`` "arpack": ``scipy.sparse.linalg.svds`` (implicitly restarted Lanczos, float64, on the
  host: exact to ARPACK's tolerance, as the papers' ``sparsesvd``); "randomized": a randomized range
  finder with ``power_iters`` QR-orthonormalized power iterations and ``oversample`` extra columns,
  on the device. The randomized vectors near the cut-off are only approximate when the spectrum is
  flat there: the error falls like (s[k + oversample] / s[k]) ** (2 * power_iters + 1).
  """
  k = int(k)
  if k >= min(norm.n_rows, norm.n_items):
    raise ConfigError(f"config.model.factor_dim={k} must be smaller than min(rows, items) = "
                      f"{min(norm.n_rows, norm.n_items)}")
  if solver == "arpack":
    from scipy.sparse.linalg import svds  # pylint: disable=import-outside-toplevel
    v0 = np.random.default_rng(seed).standard_normal(min(norm.host.shape))
    _, s, vt = svds(norm.host, k=k, v0=v0)
    order = np.argsort(-s)
    return jnp.asarray(s[order].astype(np.float32)), jnp.asarray(vt[order].astype(np.float32))
  if solver != "randomized":
    raise ConfigError(f"config.model.svd_solver: unknown solver {solver!r}; known: "
                      f"{', '.join(SVD_SOLVERS)}")
  with jax.default_matmul_precision("highest"):
    return _randomized_vt(norm.arrays(), jax.random.PRNGKey(seed), n_rows=norm.n_rows,
                          n_items=norm.n_items, k=k, oversample=int(oversample),
                          power_iters=int(power_iters))


# --------------------------------------------------------------------------- the filter
def _sharpen(yt, arrays, *, n_rows, n_items, time_, steps, solver):
  """``steps`` steps of ``dy/dt = -y P~`` over ``time_`` (transposed layout)."""
  if time_ == 0 or steps == 0:
    return yt
  h = time_ / steps
  f = lambda y: -_p_mul(y, arrays, n_rows, n_items)   # noqa: E731
  for _ in range(steps):
    if solver == "euler":
      yt = yt + h * f(yt)
    else:
      k1 = f(yt)
      k2 = f(yt + 0.5 * h * k1)
      k3 = f(yt + 0.5 * h * k2)
      k4 = f(yt + h * k3)
      yt = yt + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
  return yt


@functools.partial(jax.jit, donate_argnums=0,
                   static_argnames=("start", "size", "n_rows", "n_items", "spec"))
def _filter_block(f, arrays, left, right, *, start: int, size: int, n_rows: int, n_items: int,
                  spec: tuple):
  """Rows ``start .. start+size`` of F: the process run on those rows of the identity."""
  beta, blur_time, blur_steps, sharpen_time, sharpen_steps, solver, merge = spec
  idx = start + jnp.arange(size)
  yt = (jnp.arange(n_items)[:, None] == idx[None, :]).astype(jnp.float32)   # e_i^T: [items, size]
  if blur_time and blur_steps:
    h = blur_time / blur_steps
    for _ in range(blur_steps):
      yt = yt + h * (_p_mul(yt, arrays, n_rows, n_items) - yt)
  sharpen = functools.partial(_sharpen, arrays=arrays, n_rows=n_rows, n_items=n_items,
                              time_=sharpen_time, steps=sharpen_steps, solver=solver)
  if left is None:
    out = sharpen(yt)
  else:
    idl_t = (left[jnp.clip(idx, 0, n_items - 1)] @ right).T                # [items, size]
    out = sharpen(yt + beta * idl_t) if merge == "early" else sharpen(yt) + beta * idl_t
  return jax.lax.dynamic_update_slice(f, out.T[:f.shape[0] - start] if start + size > f.shape[0]
                                      else out.T, (start, 0))


def memory_needed(n_items: int, nnz: int, factor_dim: int, block_size: int) -> int:
  """Peak device bytes of :func:`fit_bspm`: F, the sparse R~ twice, the singular vectors twice and
  a block's work (two [nnz, block] gathers and about eight [items, block] arrays)."""
  n, b = int(n_items), int(block_size)
  return _BYTES * (n * n + 6 * int(nnz) + 2 * n * int(factor_dim) + b * (2 * int(nnz) + 8 * n))


def fit_bspm(x: Any, *, factor_dim: int, idl_beta: float, blur_time: float, blur_steps: int,
             sharpen_time: float, sharpen_steps: int, sharpen_solver: str, merge: str,
             block_size: int, svd_solver: str, svd_oversample: int, svd_power_iters: int,
             max_bytes: int | None = None, seed: int = 0) -> jax.Array:
  """The BSPM filter ``F`` [items, items] (float32, default device) of the interaction matrix ``x``
  [rows, items] (scipy sparse or dense); scores are ``x_rows @ F``."""
  if sharpen_solver not in SOLVERS:
    raise ConfigError(f"config.model.sharpen_solver: unknown solver {sharpen_solver!r}; known: "
                      f"{', '.join(SOLVERS)}")
  if merge not in MERGES:
    raise ConfigError(f"config.model.merge: unknown merge {merge!r}; known: {', '.join(MERGES)}")
  t0 = time.time()
  norm = NormalizedMatrix(x)
  n = norm.n_items
  ease_lib.check_budget(memory_needed(n, norm.nnz, factor_dim, block_size), max_bytes,
                        f"bspm on {n} items ({norm.nnz} nonzeros)",
                        f"its {n}x{n} float32 filter and block_size={block_size} rows of work",
                        "lower model.block_size or raise model.max_bytes")
  left = right = None
  if factor_dim > 0:
    s, vt = top_right_singular_vectors(norm, factor_dim, solver=svd_solver,
                                       oversample=svd_oversample,
                                       power_iters=svd_power_iters, seed=seed)
    left = (vt * norm.d_inv_sqrt[None, :]).T            # D_I^-1/2 V: [items, k]
    right = vt * norm.d_sqrt[None, :]                   # V^T D_I^1/2: [k, items]
    logging.info("bspm: top-%d singular values of R~ in [%.4f, %.4f] (%.1fs)", factor_dim,
                 float(s[-1]), float(s[0]), time.time() - t0)
  spec = (float(idl_beta), float(blur_time), int(blur_steps), float(sharpen_time),
          int(sharpen_steps), sharpen_solver, merge)
  f = jnp.zeros((n, n), jnp.float32)
  size = min(int(block_size), n)
  starts = range(0, n, size)
  report_every = max(1, -(-len(starts) // 10))       # a progress line per ~10% (one sync each)
  with jax.default_matmul_precision("highest"):
    for b, start in enumerate(starts):   # one jitted call per block; the last one is cut back
      f = _filter_block(f, norm.arrays(), left, right, start=start, size=size, n_rows=norm.n_rows,
                        n_items=n, spec=spec)
      if (b + 1) % report_every == 0 and b + 1 < len(starts):
        f.block_until_ready()
        logging.info("bspm: filter rows %d / %d (%.1fs)", start + size, n, time.time() - t0)
  if not bool(jnp.isfinite(f).all()):
    raise JaxaeError("bspm: the filter has non-finite entries (check the interaction values)")
  logging.info("bspm: %dx%d filter from %d nonzeros in %.1fs", n, n, norm.nnz, time.time() - t0)
  return f


KEYS = ("factor_dim", "idl_beta", "blur_time", "blur_steps", "sharpen_time", "sharpen_steps",
        "sharpen_solver", "merge", "block_size", "svd_solver", "svd_oversample",
        "svd_power_iters")


def fit_bspm_from_config(model_config, train: Any) -> dict[str, jax.Array]:
  """``CLOSED_FORM["bspm"]``: fits from ``config.model`` (the keys in :data:`KEYS`; optional
  ``max_bytes``) on the training matrix; returns ``{"B": F}``."""
  matrix = getattr(train, "matrix", train)
  kwargs = {k: model_config[k] for k in KEYS}
  return {"B": fit_bspm(matrix, max_bytes=model_config.get("max_bytes", None), **kwargs)}
