"""CDAE, the Collaborative Denoising Auto-Encoder (Wu et al. 2016).

``z_u = sigmoid(W^T y~_u + V_u + b)``, ``y^_u = f(W'^T z_u + b')``: the input row ``y_u`` is corrupted
at train time (each entry / stored nonzero dropped with probability ``corruption`` = q, survivors
scaled by ``1 / (1 - q)``), and a per-row (user) vector ``V_u`` joins the hidden layer, so the model
needs the batch rows' indices (``rows``) and the row count ``n_rows``. ``output`` is "sigmoid" (the
paper's choice for implicit feedback, trained with the "bce" loss on ``logits``) or "identity".

``hidden_activation`` is the paper's sigmoid by default (any name of ``layers.ACTIVATIONS``).
``output_bias_init`` is the value every output bias starts at (default 0, sigmoid(0) = 0.5). With the
"bce" loss over a whole catalog of which a row holds a few entries, a start at about the log-odds of
the data's density, ``log(p / (1 - p))`` with ``p = nnz / (rows * cols)`` (-7.3 on Gowalla), makes
the first outputs the base rate; from 0, Adam moves each bias by about the learning rate per step, so
the first thousands of steps push every output down through the hidden layer instead: on Gowalla the
hidden units saturated alike and the model ranked by popularity (docs/results.md).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxae.data.sparse import SparseBatch
from jaxae.errors import ConfigError, JaxaeError
from jaxae.models import layers as L

OUTPUTS = ("sigmoid", "identity")


class CDAE(nn.Module):
  """Attributes: ``n_cols``, ``n_rows`` (rows with a user node), ``hidden``, ``corruption`` (q),
  ``output`` ("sigmoid" | "identity"), ``dtype`` compute dtype name, ``hidden_activation``,
  ``output_bias_init`` (see the module docstring)."""

  n_cols: int
  n_rows: int
  hidden: int
  corruption: float
  output: str = "sigmoid"
  dtype: str = "float32"
  hidden_activation: str = "sigmoid"
  output_bias_init: float = 0.0

  trainable: ClassVar[bool] = True

  def setup(self):
    if self.output not in OUTPUTS:
      raise ConfigError(
          f"config.model.output: unknown CDAE output {self.output!r}; known: {', '.join(OUTPUTS)}")
    cdt = L.get_dtype(self.dtype)
    self.corrupt = L.InputDropout(self.corruption)
    self.encoder = L.Dense(self.n_cols, self.hidden, dtype=cdt, name="encoder")
    self.user_embedding = nn.Embed(self.n_rows, self.hidden, embedding_init=L.xavier_uniform,
                                   param_dtype=jnp.float32, dtype=cdt, name="user_embedding")
    self.decoder = L.ItemDense(self.hidden, self.n_cols, dtype=cdt,
                               bias_init=nn.initializers.constant(self.output_bias_init),
                               name="decoder")

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    if rows is None:
      if not isinstance(x, SparseBatch):
        raise JaxaeError("cdae needs `rows` (the batch rows' indices) for its per-user node")
      rows = x.rows
    y = self.corrupt(x, deterministic=not train)
    act = L.get_activation(self.hidden_activation, key="model.hidden_activation")
    code = act(self.encoder(y) + self.user_embedding(rows))
    logits = self.decoder(code).astype(jnp.float32)
    recon = self._output(logits)
    code = code.astype(jnp.float32)
    return {"logits": logits, "recon": recon, "code": code, "score_input": code}

  def _output(self, logits: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(logits) if self.output == "sigmoid" else logits

  def score_layer(self, params) -> tuple[jax.Array, jax.Array]:
    """The output layer's (kernel [n_cols, hidden], one row per item as ``layers.ItemDense``
    stores it, bias [n_cols]) in ``params``."""
    return params["decoder"]["kernel"], params["decoder"]["bias"]

  def score_tile(self, hidden: jax.Array, kernel: jax.Array, bias: jax.Array,
                 dtype: str | None = None) -> jax.Array:
    """``recon`` at the items of ``kernel`` / ``bias`` (rows of :meth:`score_layer`'s) from
    ``"score_input"``; ``dtype``: the product's operands (:func:`layers.score_product`)."""
    return self._output(L.score_product(hidden, kernel, bias, self.dtype, dtype)
                        .astype(jnp.float32))
