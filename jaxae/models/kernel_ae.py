"""The kernelized autoencoder of Muller et al. 2018 ("Kernelized Synaptic Weight Matrices", the
authors' kernelNet_MovieLens; "Sparse FC" in GLocal-K's tables and GLocal-K's local-kernel
pre-training): ``n_cols -> hidden[0] -> ... -> hidden[-1] -> n_cols``, every layer a
:class:`~jaxae.models.layers.KernelDense` (weights multiplied elementwise by a learned compact-support
kernel between per-unit vectors of ``kernel_dim`` dimensions), ``activation`` (sigmoid) on the hidden
layers, identity output.

Outputs: ``"recon"``, ``"code"`` (the last hidden layer) and ``"kernel_l2"`` (half the sum of the
squared kernel values over all layers: the paper's sparsity regularizer, the "kernel_l2" loss term).
The paper's objective ``1/2 sum_observed (r - r^)^2 + lambda_2 sum ||W||^2 + lambda_s sum K^2`` is, up
to the constant factor ``2 / n_observed``, ``masked_mse + l2 * (1/2 sum ||W||^2) + kernel_l2 *
kernel_l2`` with loss weights ``l2 = 4 lambda_2 / n_observed`` and ``kernel_l2 = 4 lambda_s /
n_observed``. It is trained full-batch with L-BFGS (``config.optim.name = "lbfgs"``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxae.data.sparse import SparseBatch
from jaxae.models import layers as L


class KernelAE(nn.Module):
  """Attributes: ``n_cols``, ``hidden`` (sizes of the hidden layers), ``kernel_dim`` (dimension of
  the kernel's unit vectors), ``activation`` (of the hidden layers), ``dtype`` (compute dtype)."""

  n_cols: int
  hidden: tuple[int, ...]
  kernel_dim: int
  activation: str = "sigmoid"
  dtype: str = "float32"

  trainable: ClassVar[bool] = True

  def setup(self):
    cdt = L.get_dtype(self.dtype)
    sizes = (self.n_cols,) + tuple(self.hidden) + (self.n_cols,)
    self.kernel_layers = [
        L.KernelDense(sizes[i], sizes[i + 1], self.kernel_dim, dtype=cdt, name=f"layer_{i}")
        for i in range(len(sizes) - 1)
    ]

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del rows, train  # no per-row parameters, no dropout
    act = L.get_activation(self.activation)
    h = x
    code = None
    reg = jnp.zeros((), jnp.float32)
    last = len(self.kernel_layers) - 1
    for i, layer in enumerate(self.kernel_layers):
      h, k2 = layer(h)
      reg = reg + k2
      if i < last:
        h = act(h)
        code = h
    return {"recon": h.astype(jnp.float32), "code": code.astype(jnp.float32), "kernel_l2": reg}
