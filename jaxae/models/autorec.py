"""AutoRec (Sedhain et al. 2015): ``h(r) = f(W g(V r + mu) + b)`` with one hidden layer, ``g`` the
sigmoid and ``f`` the identity.

Item-based (I-AutoRec) vs user-based (U-AutoRec) is only the orientation of the matrix, which the
data pipeline chooses (``Interactions.T``); the model is the same. The paper's L2 penalty
``lambda/2 (||W||^2 + ||V||^2)`` is the "l2" loss term (``jaxae.losses``).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxae.data.sparse import SparseBatch
from jaxae.models import layers as L


class AutoRec(nn.Module):
  """Attributes: ``n_cols`` input / output width, ``hidden`` code size, ``dtype`` compute dtype."""

  n_cols: int
  hidden: int
  dtype: str = "float32"

  trainable: ClassVar[bool] = True

  def setup(self):
    cdt = L.get_dtype(self.dtype)
    self.encoder = L.Dense(self.n_cols, self.hidden, dtype=cdt, name="encoder")
    self.decoder = L.Dense(self.hidden, self.n_cols, dtype=cdt, name="decoder")

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del rows, train  # no per-row parameters, no dropout
    code = jax.nn.sigmoid(self.encoder(x))
    recon = self.decoder(code)                       # identity output
    return {"recon": recon.astype(jnp.float32), "code": code.astype(jnp.float32)}
