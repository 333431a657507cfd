"""The kernelized autoencoder of Muller et al. 2018 ("Kernelized Synaptic Weight Matrices", the
authors' kernelNet_MovieLens; "Sparse FC" in GLocal-K's tables and GLocal-K's local-kernel
pre-training): ``n_cols -> hidden[0] -> ... -> hidden[-1] -> n_cols``, every layer a
:class:`~jaxae.models.layers.KernelDense` (weights multiplied elementwise by a learned compact-support
kernel between per-unit vectors of ``kernel_dim`` dimensions), ``activation`` (sigmoid) on the hidden
layers, identity output.

Outputs: ``"recon"``, ``"code"`` (the last hidden layer) and ``"kernel_l2"`` (half the sum of the
squared kernel values over all layers: the paper's sparsity regularizer, the "kernel_l2" loss term).
The authors' code minimizes ``1/2 sum_observed (r - r^)^2 + lambda_2 / 2 sum ||W||^2 + lambda_s / 2
sum K^2`` (TensorFlow's ``l2_loss`` and ``l2_regularizer`` both halve); times ``2 / n_observed`` that
is ``masked_mse + l2 * (1/2 sum ||W||^2) + kernel_l2 * kernel_l2`` with loss weights
``l2 = 2 lambda_2 / n_observed`` and ``kernel_l2 = 2 lambda_s / n_observed``. It is trained
full-batch with L-BFGS (``config.optim.name = "lbfgs"``).
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
  the kernel's unit vectors), ``activation`` (of the hidden layers), ``dtype`` (compute dtype),
  ``weight_init`` ("glorot" | "small": :class:`~jaxae.models.layers.KernelDense`)."""

  n_cols: int
  hidden: tuple[int, ...]
  kernel_dim: int
  activation: str = "sigmoid"
  dtype: str = "float32"
  weight_init: str = "glorot"

  trainable: ClassVar[bool] = True

  def setup(self):
    self.kernel_layers = kernel_stack(self.n_cols, self.hidden, self.kernel_dim, self.dtype,
                                      self.weight_init)

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del rows, train  # no per-row parameters, no dropout
    recon, code, reg = local_pass(self.kernel_layers, x, self.activation)
    return {"recon": recon, "code": code, "kernel_l2": reg}


def kernel_stack(n_cols: int, hidden: tuple[int, ...], kernel_dim: int, dtype: str,
                 weight_init: str) -> list[L.KernelDense]:
  """The layers ``n_cols -> hidden... -> n_cols`` named ``layer_0, layer_1, ...`` (call in setup;
  GLocal-K reuses them under the same names, so a kernel_ae checkpoint initializes it)."""
  cdt = L.get_dtype(dtype)
  sizes = (n_cols,) + tuple(hidden) + (n_cols,)
  return [L.KernelDense(sizes[i], sizes[i + 1], kernel_dim, dtype=cdt, weight_init=weight_init,
                        name=f"layer_{i}") for i in range(len(sizes) - 1)]


def local_pass(layers, x: jax.Array | SparseBatch, activation: str
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(recon, code, kernel_l2)`` of ``x`` through the kernel layers: ``activation`` on the hidden
  layers, identity output; ``code`` is the last hidden layer."""
  act = L.get_activation(activation)
  h = x
  code = None
  reg = jnp.zeros((), jnp.float32)
  last = len(layers) - 1
  for i, layer in enumerate(layers):
    h, k2 = layer(h)
    reg = reg + k2
    if i < last:
      h = act(h)
      code = h
  return h.astype(jnp.float32), code.astype(jnp.float32), reg
