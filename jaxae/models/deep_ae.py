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

Two switches for large catalogs: ``item_shards`` pads the item dimension of the first and the last
layer to a multiple of the mesh's model axis (zero rows / columns that never reach an output; the
output is cut back to ``n_cols``), so those layers can be split evenly over devices; and
``last_layer_outputs`` (with a linear last layer, ``last_activation`` False) adds that layer's input
``"last_hidden"`` [B, d], kernel ``"last_kernel"`` [n, d] and bias ``"last_bias"`` [n] (n padded) to
the outputs, from which ``jaxae.losses`` computes the MSE terms without the dense [B, n] output
(Gram trick); the engine sets it, and under jit the unused dense output is never computed. With
``last_activation`` the outputs also hold ``"last_act"`` (the activation): then only the masked
terms, which read the output at the batch's entries alone, take that path (not the full MSE).

The untied output layer stores its kernel one row per item, ``[n, layers[0]]``
(:class:`~jaxae.models.layers.ItemDense`, PyTorch's layout), as the tied decoder reads the first
layer's ``[n, layers[0]]`` kernel: the losses gather the kernel at the batch's items, and a row is
one contiguous read. Every other kernel is ``[in, out]``.
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
    input_dropout: drop probability of input entries at train time (denoising, as Mult-DAE; not in
      the paper, which drops the code only); 0 = off.
    last_activation: apply ``activation`` on the output layer too.
    dtype: compute dtype name ("float32" | "bfloat16"); parameters and outputs stay float32.
    item_shards: pad the item dimension to a multiple of this (the mesh's model axis).
    last_layer_outputs: also return the linear last layer's input, kernel and bias.
  """

  n_cols: int
  layers: tuple[int, ...]
  activation: str = "selu"
  tied: bool = False
  code_dropout: float = 0.0
  input_dropout: float = 0.0
  last_activation: bool = False
  dtype: str = "float32"
  item_shards: int = 1
  last_layer_outputs: bool = False

  trainable: ClassVar[bool] = True

  @property
  def padded_cols(self) -> int:
    """The item dimension of the first / last layer: ``n_cols`` rounded up to ``item_shards``."""
    k = max(int(self.item_shards), 1)
    return -(-self.n_cols // k) * k

  @property
  def last_layer_width(self) -> int | None:
    """Input width of the output layer when that layer is linear (the Gram-trick loss can be used),
    else None."""
    return None if self.last_activation else int(tuple(self.layers)[0])

  @property
  def entry_output_width(self) -> int:
    """Input width of the output layer, linear or not: the masked loss terms can read the output
    at the batch's entries alone (``last_layer_outputs`` adds ``"last_act"`` when non-linear)."""
    return int(tuple(self.layers)[0])

  def setup(self):
    cdt = L.get_dtype(self.dtype)
    sizes = (self.n_cols,) + tuple(self.layers)
    n_pad = self.padded_cols

    def kernel_init(shape):            # the unpadded layer's draw, zero-padded to the item dim
      return L.xavier_uniform if n_pad == self.n_cols else L.padded_init(L.xavier_uniform, shape)

    self.encoders = [
        L.Dense(n_pad if i == 0 else sizes[i], sizes[i + 1], dtype=cdt, name=f"encoder_{i}",
                **({"kernel_init": kernel_init(sizes[:2])} if i == 0 else {}))
        for i in range(len(sizes) - 1)
    ]
    rev = sizes[::-1]
    last = len(rev) - 2
    if self.tied:
      self.decoders = [
          L.TiedDense(n_pad if j == last else rev[j + 1], dtype=cdt, name=f"decoder_{j}")
          for j in range(len(rev) - 1)
      ]
    else:
      self.decoders = [
          L.ItemDense(rev[j], n_pad, dtype=cdt, name=f"decoder_{j}",
                      kernel_init=kernel_init(rev[-2:])) if j == last else
          L.Dense(rev[j], rev[j + 1], dtype=cdt, name=f"decoder_{j}")
          for j in range(len(rev) - 1)
      ]
    self.code_drop = nn.Dropout(rate=self.code_dropout)
    self.input_drop = L.InputDropout(self.input_dropout)

  def encode(self, x: jax.Array | SparseBatch) -> jax.Array:
    """The code layer (before code dropout), in the compute dtype."""
    act = L.get_activation(self.activation)
    h = x
    if not isinstance(x, SparseBatch) and self.padded_cols > self.n_cols:
      h = jnp.pad(x, ((0, 0), (0, self.padded_cols - self.n_cols)))
    for enc in self.encoders:
      h = act(enc(h))
    return h

  def decode(self, z: jax.Array, *, with_last: bool = False):
    """Output layer values (float32) from a code ``z``; with ``with_last`` also the last layer's
    ``(input, kernel [n_pad, d], bias [n_pad])`` (the kernel one row per item)."""
    act = L.get_activation(self.activation)
    k = len(self.decoders)
    h = z
    last_in = z
    for j, dec in enumerate(self.decoders):
      last_in = h
      h = dec(h, self.encoders[k - 1 - j].kernel) if self.tied else dec(h)
      if j < k - 1 or self.last_activation:
        h = act(h)
    if self.padded_cols > self.n_cols:
      h = h[:, :self.n_cols]
    h = h.astype(jnp.float32)
    if not with_last:
      return h
    last = self.decoders[-1]
    kernel = self.encoders[0].kernel if self.tied else last.kernel
    bias = last.variables["params"]["bias"]
    return h, (last_in, kernel, bias)

  def score_layer(self, params) -> tuple[jax.Array, jax.Array]:
    """The output layer's (kernel [padded_cols, layers[0]], one row per item, bias [padded_cols])
    in ``params``, as stored (the first encoder's kernel when tied)."""
    last = params[f"decoder_{len(tuple(self.layers)) - 1}"]
    kernel = params["encoder_0"]["kernel"] if self.tied else last["kernel"]
    return kernel, last["bias"]

  def score_tile(self, hidden: jax.Array, kernel: jax.Array, bias: jax.Array,
                 dtype: str | None = None) -> jax.Array:
    """``recon`` at the items of ``kernel`` / ``bias`` (rows of :meth:`score_layer`'s) from
    ``"score_input"``; ``dtype``: the product's operands (:func:`layers.score_product`)."""
    y = L.score_product(hidden, kernel, bias, self.dtype, dtype)
    return (L.get_activation(self.activation)(y) if self.last_activation else y).astype(
        jnp.float32)

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del rows  # not a per-row model
    if train and self.input_dropout > 0:
      x = self.input_drop(x, deterministic=False)
    code = self.encode(x)
    out = {"code": code.astype(jnp.float32)}
    z = self.code_drop(code, deterministic=not train)
    out["recon"], (hidden, kernel, bias) = self.decode(z, with_last=True)
    out["score_input"] = hidden.astype(jnp.float32)
    if self.last_layer_outputs:
      out.update(last_hidden=out["score_input"], last_kernel=kernel, last_bias=bias)
      if self.last_activation:   # only the masked terms can use it (losses.sparse_predictions)
        out["last_act"] = L.get_activation(self.activation)
    if not self.last_activation:     # a linear output layer: its values are logits too
      out["logits"] = out["recon"]     # (the multinomial / BCE losses of implicit data)
    return out
