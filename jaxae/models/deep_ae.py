"""The deep autoencoder of Kuchaiev & Ginsburg 2017 ("Training Deep AutoEncoders for Collaborative
Filtering", NVIDIA DeepRecommender ``reco_encoder/model/model.py``).

Encoder ``n_cols -> layers[0] -> ... -> layers[-1]`` (the code), decoder the mirror back to
``n_cols``. Every encoder layer and every decoder layer but the last applies ``activation``; the last
one too when ``last_activation`` (DeepRecommender's ``last_layer_activations``). ``tied`` (their
``is_constrained``): decoder layer j reuses the TRANSPOSE of the mirrored encoder kernel and has only
its own bias. Dropout (``code_dropout``) acts on the code layer only, and only when ``train``.

The same module covers the paper's (n, 512, 512, 1024) Netflix model, the Melon CF AE
(n -> 1024 -> n, untied selu), the Melon content AE (457 -> 512 -> 512 -> 1024, tied relu) and the
Melon song-as-user AE (n -> 2048 -> 1024 -> 2048 -> n, selu; ``layers=(2048, 1024)``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxae.data.sparse import SparseBatch
from jaxae.models import layers as L


class DeepAE(nn.Module):
  """Kuchaiev & Ginsburg's autoencoder.

  Attributes:
    n_cols: input / output width (items, or users for an item-based model).
    layers: encoder sizes; the decoder mirrors them.
    activation: name in ``layers.ACTIVATIONS``.
    tied: constrained decoder (shares the transposed encoder kernels).
    code_dropout: drop probability on the code layer at train time.
    last_activation: apply ``activation`` on the output layer too.
    dtype: compute dtype name ("float32" | "bfloat16"); parameters and outputs stay float32.
  """

  n_cols: int
  layers: tuple[int, ...]
  activation: str = "selu"
  tied: bool = False
  code_dropout: float = 0.0
  last_activation: bool = False
  dtype: str = "float32"

  trainable: ClassVar[bool] = True

  def setup(self):
    cdt = L.get_dtype(self.dtype)
    sizes = (self.n_cols,) + tuple(self.layers)
    self.encoders = [
        L.Dense(sizes[i], sizes[i + 1], dtype=cdt, name=f"encoder_{i}")
        for i in range(len(sizes) - 1)
    ]
    rev = sizes[::-1]
    if self.tied:
      self.decoders = [
          L.TiedDense(rev[j + 1], dtype=cdt, name=f"decoder_{j}") for j in range(len(rev) - 1)
      ]
    else:
      self.decoders = [
          L.Dense(rev[j], rev[j + 1], dtype=cdt, name=f"decoder_{j}")
          for j in range(len(rev) - 1)
      ]
    self.code_drop = nn.Dropout(rate=self.code_dropout)

  def encode(self, x: jax.Array | SparseBatch) -> jax.Array:
    """The code layer (before code dropout), in the compute dtype."""
    act = L.get_activation(self.activation)
    h = x
    for enc in self.encoders:
      h = act(enc(h))
    return h

  def decode(self, z: jax.Array) -> jax.Array:
    """Output layer values (float32) from a code ``z``."""
    act = L.get_activation(self.activation)
    k = len(self.decoders)
    h = z
    for j, dec in enumerate(self.decoders):
      h = dec(h, self.encoders[k - 1 - j].kernel) if self.tied else dec(h)
      if j < k - 1 or self.last_activation:
        h = act(h)
    return h.astype(jnp.float32)

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del rows  # not a per-row model
    code = self.encode(x)
    recon = self.decode(self.code_drop(code, deterministic=not train))
    return {"recon": recon, "code": code.astype(jnp.float32)}
