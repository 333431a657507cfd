"""Mult-DAE and Mult-VAE (Liang et al. 2018, "Variational Autoencoders for Collaborative Filtering",
the authors' ``vae_cf`` code).

Both L2-normalize each input row, apply input dropout (train only), and use ``activation`` (tanh)
on every layer but the output, which gives multinomial logits over the columns. With
``layers=(600, 200)``:

* Mult-DAE: ``n -> 600 -> 200 -> 600 -> n``; the 200-wide layer is the code.
* Mult-VAE: ``n -> 600 -> (mu, logvar)`` of the 200-dim latent, ``z = mu + eps * exp(logvar / 2)``
  at train time (``z = mu`` at eval), decoder ``200 -> 600 -> n``; the per-row KL divergence to
  N(0, I) is returned as ``"kl"``.

With ``layers=(200,)`` (the Gowalla configs): ``n -> 200 -> n`` and ``n -> (mu, logvar) 200 -> n``.

Outputs: ``"logits"``, ``"recon"`` (= logits, the ranking scores), ``"code"`` (the DAE code / the
VAE's mu). Kernels are Xavier-uniform and biases truncated-normal(0.001), as in vae_cf; the output
layer's kernel is stored one row per item, ``[n, layers[0]]`` (:class:`layers.ItemDense`, the same
initial values). The VAE draws its noise from the "dropout" rng stream.
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxae.data.sparse import SparseBatch
from jaxae.models import layers as L

_bias_init = nn.initializers.truncated_normal(stddev=0.001)


def _dense_stack(sizes: tuple[int, ...], cdt, prefix: str, *, items_out: bool = False) -> list:
  """Dense layers ``sizes[0] -> sizes[1] -> ...``; with ``items_out`` the last one is an
  :class:`layers.ItemDense` (the output layer over the catalog, its kernel one row per item)."""
  out = []
  for i in range(len(sizes) - 1):
    cls = L.ItemDense if items_out and i == len(sizes) - 2 else L.Dense
    out.append(cls(sizes[i], sizes[i + 1], dtype=cdt, bias_init=_bias_init, name=f"{prefix}_{i}"))
  return out


def _decode(decoders, act, h: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(the output layer's input, float32; the logits, float32) of the decoder stack from ``h``."""
  for dec in decoders[:-1]:
    h = act(dec(h))
  return h.astype(jnp.float32), decoders[-1](h).astype(jnp.float32)


class _ScoreHead:
  """The output layer as the top-N evaluator's column tiles use it (``config.eval.score_tile``)."""

  def score_layer(self, params) -> tuple[jax.Array, jax.Array]:
    """The output layer's (kernel [n_cols, layers[0]], one row per item as ``layers.ItemDense``
    stores it, bias [n_cols]) in ``params``."""
    last = params[f"decoder_{len(tuple(self.layers)) - 1}"]
    return last["kernel"], last["bias"]

  def score_tile(self, hidden: jax.Array, kernel: jax.Array, bias: jax.Array,
                 dtype: str | None = None) -> jax.Array:
    """The logits at the items of ``kernel`` / ``bias`` (rows of :meth:`score_layer`'s) from
    ``"score_input"``; ``dtype``: the product's operands (:func:`layers.score_product`)."""
    return L.score_product(hidden, kernel, bias, self.dtype, dtype).astype(jnp.float32)


class MultDAE(_ScoreHead, nn.Module):
  """Attributes: ``n_cols``, ``layers`` (encoder sizes), ``input_dropout``, ``activation``,
  ``dtype`` compute dtype name."""

  n_cols: int
  layers: tuple[int, ...]
  input_dropout: float = 0.5
  activation: str = "tanh"
  dtype: str = "float32"

  trainable: ClassVar[bool] = True

  def setup(self):
    cdt = L.get_dtype(self.dtype)
    sizes = (self.n_cols,) + tuple(self.layers)
    self.drop = L.InputDropout(self.input_dropout)
    self.encoders = _dense_stack(sizes, cdt, "encoder")
    self.decoders = _dense_stack(sizes[::-1], cdt, "decoder", items_out=True)

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del rows
    act = L.get_activation(self.activation)
    h = self.drop(L.l2_normalize_rows(x), deterministic=not train)
    for enc in self.encoders:
      h = act(enc(h))
    code = h
    hidden, logits = _decode(self.decoders, act, h)
    return {"logits": logits, "recon": logits, "code": code.astype(jnp.float32),
            "score_input": hidden}


class MultVAE(_ScoreHead, nn.Module):
  """Attributes as :class:`MultDAE`; ``layers[-1]`` is the latent dimension."""

  n_cols: int
  layers: tuple[int, ...]
  input_dropout: float = 0.5
  activation: str = "tanh"
  dtype: str = "float32"

  trainable: ClassVar[bool] = True

  def setup(self):
    cdt = L.get_dtype(self.dtype)
    sizes = (self.n_cols,) + tuple(self.layers)
    latent = sizes[-1]
    self.drop = L.InputDropout(self.input_dropout)
    # Hidden encoder layers, then one layer giving [mu, logvar].
    self.encoders = _dense_stack(sizes[:-1], cdt, "encoder")
    self.to_latent = L.Dense(sizes[-2], 2 * latent, dtype=cdt, bias_init=_bias_init,
                             name=f"encoder_{len(sizes) - 2}")
    self.decoders = _dense_stack(sizes[::-1], cdt, "decoder", items_out=True)

  def __call__(self, x: jax.Array | SparseBatch, *, rows: jax.Array | None = None,
               train: bool) -> dict[str, jax.Array]:
    del rows
    act = L.get_activation(self.activation)
    h = self.drop(L.l2_normalize_rows(x), deterministic=not train)
    for enc in self.encoders:
      h = act(enc(h))
    stats = self.to_latent(h).astype(jnp.float32)
    latent = self.layers[-1]
    mu, logvar = stats[:, :latent], stats[:, latent:]
    std = jnp.exp(0.5 * logvar)
    kl = jnp.sum(0.5 * (-logvar + jnp.exp(logvar) + jnp.square(mu) - 1.0), axis=-1)
    if train:
      z = mu + jax.random.normal(self.make_rng("dropout"), mu.shape, mu.dtype) * std
    else:
      z = mu
    h = z
    hidden, logits = _decode(self.decoders, act, h)
    return {"logits": logits, "recon": logits, "code": mu, "kl": kl, "score_input": hidden}
