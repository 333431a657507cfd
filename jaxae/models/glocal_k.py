"""GLocal-K (Han et al. 2021, "GLocal-K: Global and Local Kernels for Recommender Systems"): the
kernelized autoencoder of :mod:`jaxae.models.kernel_ae` (the *local* kernel, pre-trained) fine-tuned
with a *global* convolution kernel.

The model sees the whole rating matrix ``R`` [n_rows, n_cols] (rows in id order) at every call:

  1. ``y' = local(R)``: the pre-trained kernel layers' reconstruction of every row;
  2. the global kernel ``G = reshape(mean_cols(y') @ conv_kernel * dot_scale, [gk, gk])``: the
     rows' average predictions weight the ``n_rows`` learned ``gk x gk`` kernels in ``conv_kernel``
     [n_rows, gk*gk];
  3. ``R~ = relu(conv2d(R, G))`` ('SAME' padding: every entry mixes the ``gk x gk`` neighbourhood of
     adjacent row and column ids, as the authors' code does);
  4. the prediction ``local(R~)``, through the same kernel layers (shared with step 1).

The kernel layers keep kernel_ae's parameter names (``layer_0``, ``layer_1`` ...), so a kernel_ae
checkpoint initializes them (``config.train.init_from``); ``conv_kernel`` is the one new parameter.
It is not in the "l2" term (not a "kernel"), as in the paper, where only the local layers are
regularized. How the global kernel starts (``global_init``):

  * ``"random"`` (the authors'): ``conv_kernel`` truncated normal, std 0.1. The global kernel's
    entries then have a standard deviation near ``dot_scale * 0.1 * ||mean_cols(y')||``, where the
    norm is about the mean rating times ``sqrt(n_rows)``: several units for thousands of rows, so
    the fine-tuning starts far from the pre-trained local kernel's predictions, and how well it
    finds its way back depends on the draw (docs/results.md: one of ten draws stalled on ML-1M);
  * ``"identity"``: ``G = delta + reshape(mean_cols(y') @ conv_kernel * dot_scale)`` with
    ``conv_kernel`` starting at zero, ``delta`` the identity convolution (1 at the kernel's centre).
    The first call is then exactly the local kernel's (``relu(R) = R`` for non-negative ratings), so
    a descent method's fine-tuning starts where the pre-training ended. The model's functions are
    the same (``delta`` is one more global kernel ``conv_kernel`` can reach); only the start
    differs.

Because the global kernel and the convolution read every row, a call must hold **all rows** of the
matrix: the batch's rows are scattered into an ``[n_rows, n_cols]`` matrix by their ids (padding
rows add nothing), so the batch order is free but a batch must cover every row
(``needs_all_rows``: the engine asks for ``train.batch_size`` and ``eval.batch_size`` >= the number
of rows, and the rating evaluator feeds every row). The outputs are those of the batch's rows:
``"recon"``, ``"code"`` (last hidden layer of step 4) and ``"kernel_l2"``.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxae.data.sparse import SparseBatch, densify
from jaxae.models.kernel_ae import kernel_stack, local_pass


def global_conv(r: jax.Array, gk: jax.Array) -> jax.Array:
  """``relu`` of the 'SAME' 2-D cross-correlation of the matrix ``r`` [H, W] with ``gk`` [k, k]
  (TensorFlow's ``conv2d`` on a one-channel image, which the authors use)."""
  out = jax.lax.conv_general_dilated(
      r[None, None].astype(jnp.float32), gk[None, None].astype(jnp.float32), (1, 1), "SAME",
      precision=jax.lax.Precision.HIGHEST)
  return jax.nn.relu(out[0, 0])


GLOBAL_INITS = ("random", "identity")


def identity_kernel(size: int) -> jax.Array:
  """The [size, size] kernel whose 'SAME' cross-correlation returns its input: 1 at
  ``((size - 1) // 2, (size - 1) // 2)``, where 'SAME' padding puts the output's own entry (it pads
  ``(size - 1) // 2`` before)."""
  c = (size - 1) // 2
  return jnp.zeros((size, size), jnp.float32).at[c, c].set(1.0)


class GLocalK(nn.Module):
  """Attributes: ``n_cols``, ``n_rows``, ``hidden``, ``kernel_dim``, ``activation`` (as kernel_ae),
  ``gk_size`` (side of the global kernel), ``dot_scale`` (scale of its dot product), ``dtype``,
  ``weight_init`` (of the kernel layers, as kernel_ae), ``global_init`` (how the global kernel
  starts: :data:`GLOBAL_INITS`, see the module docstring)."""

  n_cols: int
  n_rows: int
  hidden: tuple[int, ...]
  kernel_dim: int
  gk_size: int
  dot_scale: float
  activation: str = "sigmoid"
  dtype: str = "float32"
  weight_init: str = "glorot"
  global_init: str = "random"

  trainable: ClassVar[bool] = True
  needs_all_rows: ClassVar[bool] = True

  def setup(self):
    self.kernel_layers = kernel_stack(self.n_cols, self.hidden, self.kernel_dim, self.dtype,
                                      self.weight_init)
    if self.global_init not in GLOBAL_INITS:
      raise ValueError(f"global_init must be one of {GLOBAL_INITS}, got {self.global_init!r}")
    init = (nn.initializers.truncated_normal(stddev=0.1) if self.global_init == "random"
            else nn.initializers.zeros)
    self.conv_kernel = self.param("conv_kernel", init,
                                  (self.n_rows, self.gk_size * self.gk_size), jnp.float32)

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del train  # no dropout
    if rows is None:
      raise ValueError("glocal_k needs the batch's row ids (rows=...)")
    if isinstance(x, SparseBatch):
      x = densify(x, self.n_cols)
    # Padding rows (id 0, all-zero inputs) add nothing.
    full = jnp.zeros((self.n_rows, self.n_cols), jnp.float32).at[rows].add(x.astype(jnp.float32))
    y_dash, _, _ = local_pass(self.kernel_layers, full, self.activation)
    pooled = jnp.mean(y_dash, axis=1)                                   # [n_rows]
    gk = (jnp.dot(pooled, self.conv_kernel, precision=jax.lax.Precision.HIGHEST)
          * self.dot_scale).reshape(self.gk_size, self.gk_size)
    if self.global_init == "identity":
      gk = gk + identity_kernel(self.gk_size)
    recon, code, reg = local_pass(self.kernel_layers, global_conv(full, gk), self.activation)
    return {"recon": recon[rows], "code": code[rows], "kernel_l2": reg}
