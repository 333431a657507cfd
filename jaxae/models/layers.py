"""Building blocks shared by the autoencoders: activations by name, dense / tied dense layers whose
first layer also takes a :class:`SparseBatch` (embedding-bag over the nonzeros), and input dropout /
L2-normalization that work on both dense and sparse inputs.

Every layer keeps its parameters in float32 and computes in ``dtype`` (float32 or bfloat16). Kernels
are stored ``[in_features, out_features]`` (but :class:`ItemDense`'s, one row per output item,
``[out_features, in_features]``) and initialized Xavier-uniform (Glorot & Bengio 2010, the
initialization of NVIDIA DeepRecommender); biases start at zero unless a model says otherwise.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxae.data.sparse import SparseBatch
from jaxae.errors import ConfigError

Array = jax.Array
Initializer = Callable[..., Array]

xavier_uniform: Initializer = nn.initializers.xavier_uniform()
zeros: Initializer = nn.initializers.zeros


def padded_init(init: Initializer, true_shape: tuple[int, ...]) -> Initializer:
  """``init`` drawn for ``true_shape`` then zero-padded to the (larger) shape asked for.

  A layer whose item dimension is padded to a multiple of the mesh's model axis starts with the
  same values as the unpadded layer (same key, same fan-in / fan-out) plus zero rows / columns.
  """
  true_shape = tuple(int(s) for s in true_shape)

  def init_fn(key, shape, dtype=jnp.float32):
    w = init(key, true_shape, dtype)
    return jnp.pad(w, [(0, int(s) - t) for s, t in zip(shape, true_shape)])

  return init_fn


def _leaky_relu(x: Array) -> Array:
  # PyTorch's F.leaky_relu default slope, as DeepRecommender uses it.
  return jax.nn.leaky_relu(x, negative_slope=0.01)


def _identity(x: Array) -> Array:
  return x


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "selu": jax.nn.selu,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "lrelu": _leaky_relu,
    "elu": jax.nn.elu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "swish": jax.nn.swish,
    "identity": _identity,
}

DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def get_activation(name: str, key: str = "model.activation") -> Callable[[Array], Array]:
  """The activation function called ``name``; ConfigError naming ``key`` and the known names."""
  if not isinstance(name, str) or name not in ACTIVATIONS:
    raise ConfigError(
        f"config.{key}: unknown activation {name!r}; known: {', '.join(sorted(ACTIVATIONS))}")
  return ACTIVATIONS[name]


def get_dtype(name: str, key: str = "model.dtype") -> Any:
  """The jnp compute dtype called ``name`` ("float32" | "bfloat16")."""
  if not isinstance(name, str) or name not in DTYPES:
    raise ConfigError(f"config.{key}: unknown dtype {name!r}; known: {', '.join(sorted(DTYPES))}")
  return DTYPES[name]


# --------------------------------------------------------------------------- sparse helpers
def _per_shard(fn, batch: SparseBatch, *extra):
  """vmaps ``fn(cols, vals, seg, *extra)`` over the shard axis of a SparseBatch.

  Working shard by shard with the local segment ids (instead of the flat ``global_segments``) gives
  the same sums, but keeps every gather / segment-sum on the device that holds that shard.
  """
  return jax.vmap(fn)(batch.cols, batch.vals, batch.seg, *extra)


def embedding_bag(batch: SparseBatch, table: Array, dtype: Any = jnp.float32) -> Array:
  """``densify(batch) @ table`` without the dense matrix: sum over each row's nonzeros of
  ``table[col] * val``.

  Args:
    batch: the sparse rows (B rows, S shards).
    table: [n_cols, d] kernel (float32 parameters).
    dtype: compute dtype of the gathered rows; the segment sum accumulates in float32.

  Returns:
    [B, d] array in ``dtype``.
  """
  b = batch.batch_size
  rows_per_shard = b // batch.num_shards

  def one(cols, vals, seg):
    gathered = table[cols].astype(dtype) * vals.astype(dtype)[:, None]      # [N, d]
    return jax.ops.segment_sum(gathered.astype(jnp.float32), seg, num_segments=rows_per_shard)

  out = _per_shard(one, batch)                                                # [S, B/S, d]
  return out.reshape(b, table.shape[-1]).astype(dtype)


def row_sq_norms(batch: SparseBatch) -> Array:
  """[S, B/S] sum of squared values of each row, computed from the nonzeros."""
  rows_per_shard = batch.batch_size // batch.num_shards

  def one(cols, vals, seg):
    del cols
    return jax.ops.segment_sum(jnp.square(vals.astype(jnp.float32)), seg,
                               num_segments=rows_per_shard)

  return _per_shard(one, batch)


def l2_normalize_rows(x: Array | SparseBatch, eps: float = 1e-12) -> Array | SparseBatch:
  """Each row divided by its L2 norm, as ``tf.nn.l2_normalize(x, 1)`` in Liang et al.'s vae_cf:
  ``x * rsqrt(max(sum(x**2), eps))``. For a SparseBatch the norms come from the values (segment sums)
  and the values are rescaled in place."""
  if isinstance(x, SparseBatch):
    inv = jax.lax.rsqrt(jnp.maximum(row_sq_norms(x), eps))                  # [S, B/S]
    scale = jax.vmap(lambda inv_s, seg: inv_s[seg])(inv, x.seg)             # [S, N]
    return x._replace(vals=(x.vals.astype(jnp.float32) * scale).astype(x.vals.dtype))
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=-1, keepdims=True), eps))


class InputDropout(nn.Module):
  """Dropout of input entries (dense) or of the stored nonzeros (SparseBatch), survivors scaled by
  ``1 / (1 - rate)``. Only active when ``deterministic`` is False; uses the "dropout" rng stream."""

  rate: float

  @nn.compact
  def __call__(self, x: Array | SparseBatch, *, deterministic: bool) -> Array | SparseBatch:
    drop = nn.Dropout(rate=self.rate)
    if isinstance(x, SparseBatch):
      return x._replace(vals=drop(x.vals, deterministic=deterministic))
    return drop(x, deterministic=deterministic)


@jax.custom_vjp
def add_bias(y: Array, bias: Array) -> Array:
  """``y + bias`` (bias broadcast over the leading axes), whose bias gradient is a matmul.

  The bias gradient is the column sum of the output gradient over the batch. XLA:CPU's YNNPACK
  reduction runs a column sum of a [B, n] array some 30x slower than ``ones[B] @ g`` (jax 0.10,
  measured by docs/benchmarks.md's commands), so the backward computes it as that matmul, with
  float32 accumulation; the value is the same sum (up to its order).
  """
  return y + bias


def _add_bias_fwd(y, bias):
  # Residuals: only the dtypes (as empty arrays); the gradients need no saved values.
  return y + bias, (jnp.zeros((0,), y.dtype), jnp.zeros((0,), bias.dtype))


def _add_bias_bwd(res, g):
  y_like, bias_like = res
  g2 = g.reshape(-1, g.shape[-1])
  db = jnp.dot(jnp.ones((g2.shape[0],), g2.dtype), g2, preferred_element_type=jnp.float32)
  return g.astype(y_like.dtype), db.astype(bias_like.dtype)


add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


def linear(x: Array, kernel: Array, bias: Array | None, dtype) -> Array:
  """``x @ kernel + bias`` in the compute ``dtype`` (the parameters cast to it): the product of
  :class:`Dense` (``kernel`` [in, features])."""
  y = jnp.dot(x.astype(dtype), kernel.astype(dtype))
  return y if bias is None else add_bias(y, bias.astype(y.dtype))


def score_product(hidden: Array, kernel: Array, bias: Array, model_dtype: str,
                  score_dtype: str | None) -> Array:
  """The output layer's product when the top-N evaluator scores (a model's ``score_tile``):
  ``hidden @ kernel.T + bias`` for the item-major ``kernel`` [items, d] of ``score_layer`` (or any
  run of its rows, ``config.eval.score_tile``), as :func:`item_product`.

  ``score_dtype`` None: as the model's forward computes it, in its compute dtype ``model_dtype``.
  Else (``config.eval.score_dtype``): from operands in ``score_dtype`` ("bfloat16" | "float32"),
  accumulated and returned in float32, the float32 bias added. bfloat16 operands halve the bytes
  the product reads; whether XLA then runs it faster than in float32 depends on the CPU (faster on
  an AMD EPYC with AVX512_BF16, slower on an Intel Xeon with it: docs/benchmarks.md). The scores
  carry the operands' rounding (about 3 significant digits), so near-equal scores may swap ranks.
  """
  if score_dtype is None:
    return item_product(hidden, kernel, bias, get_dtype(model_dtype))
  return item_product(hidden, kernel, bias, get_dtype(score_dtype, "eval.score_dtype"),
                      out_dtype=jnp.float32)


# --------------------------------------------------------------------------- layers
class Dense(nn.Module):
  """``x @ kernel + bias`` with float32 parameters and ``dtype`` compute.

  ``x`` may be a dense [B, in_features] array or a SparseBatch over ``in_features`` columns (then the
  product is an embedding-bag over the nonzeros). The kernel is exposed as ``self.kernel`` so that a
  tied (constrained) decoder layer can reuse its transpose.
  """

  in_features: int
  features: int
  dtype: Any = jnp.float32
  use_bias: bool = True
  kernel_init: Initializer = xavier_uniform
  bias_init: Initializer = zeros

  def setup(self):
    self.kernel = self.param("kernel", self.kernel_init, (self.in_features, self.features),
                             jnp.float32)
    if self.use_bias:
      self.bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)

  def __call__(self, x: Array | SparseBatch) -> Array:
    if isinstance(x, SparseBatch):
      y = embedding_bag(x, self.kernel, self.dtype)
      return add_bias(y, self.bias.astype(self.dtype)) if self.use_bias else y
    return linear(x, self.kernel, self.bias if self.use_bias else None, self.dtype)


def item_product(z: Array, kernel: Array, bias: Array, dtype, out_dtype=None) -> Array:
  """``z @ kernel.T + bias`` for a kernel stored one row per output unit, ``[features, in]``, in
  the compute ``dtype``: the product of :class:`TiedDense` and :class:`ItemDense`, and of the
  models' ``score_tile`` (:func:`score_product`). ``out_dtype`` (None: the product's own,
  ``dtype``) asks for the product accumulated and returned in that dtype, e.g. bfloat16 operands
  with a float32 result.

  The product contracts the kernel's second axis (no ``kernel.T`` in the program): for a one-row
  ``z`` XLA turns ``z @ kernel.T`` into a matrix-vector product over a transposed copy of the
  kernel made on every call (7-10x slower for a 40,981 x 200 kernel on a CPU, ``python -m
  bench.tied_product``); for more rows the two compile alike.
  """
  y = jax.lax.dot_general(z.astype(dtype), kernel.astype(dtype), (((z.ndim - 1,), (1,)), ((), ())),
                          preferred_element_type=out_dtype)
  return add_bias(y, bias.astype(y.dtype))


class TiedDense(nn.Module):
  """A decoder layer of a constrained autoencoder: ``z @ kernel.T + bias`` where ``kernel`` is the
  mirrored encoder layer's kernel [features, in]; only the bias is a parameter of this layer."""

  features: int
  dtype: Any = jnp.float32
  bias_init: Initializer = zeros

  @nn.compact
  def __call__(self, z: Array, kernel: Array) -> Array:
    bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
    return item_product(z, kernel, bias, self.dtype)


class ItemDense(nn.Module):
  """An output layer over a catalog, its kernel stored one row per item: ``kernel`` [features,
  in_features] (PyTorch's ``nn.Linear`` layout), ``z @ kernel.T + bias``.

  The same function as :class:`Dense` ``(in_features, features)`` with the kernel transposed, and
  the same initial values (``kernel_init`` draws the ``[in_features, features]`` kernel, which is
  stored transposed). The output layer of the deep AE (untied), CDAE and Mult-DAE / Mult-VAE.

  What the layout changes is, first, the masked loss's gather: the losses read the
  kernel at the batch's items (``jaxae.losses.sparse_predictions``), and a row per item is one
  contiguous read (and one contiguous scatter-add for its gradient) where a column is
  ``in_features`` strided ones. Second, the weight gradient of a dense output (the multinomial's,
  BCE's): XLA:CPU's product for ``g^T z`` into ``[items, width]`` ran faster than for ``z^T g``
  into ``[width, items]`` (Mult-DAE 600/64's step 1.11x; docs/benchmarks.md has the steps'
  times in both layouts). The first layer's kernel ``[items, width]`` already reads its rows (the
  embedding-bag); a tied decoder reads that kernel too.
  """

  in_features: int
  features: int
  dtype: Any = jnp.float32
  kernel_init: Initializer = xavier_uniform
  bias_init: Initializer = zeros

  def setup(self):
    init = self.kernel_init
    self.kernel = self.param(
        "kernel", lambda key, shape, dtype=jnp.float32: init(key, shape[::-1], dtype).T,
        (self.features, self.in_features), jnp.float32)
    self.bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)

  def __call__(self, z: Array) -> Array:
    return item_product(z, self.kernel, self.bias, self.dtype)


KERNEL_WEIGHT_INITS = ("glorot", "small")


def local_kernel(u: Array, v: Array) -> Array:
  """Muller et al. 2018's compact-support kernel ``max(0, 1 - ||u_i - v_j||^2)`` between the
  [in, d] input vectors ``u`` and the [out, d] output vectors ``v``: an [in, out] matrix whose zeros
  cut connections (a learned sparsity pattern)."""
  d2 = (jnp.sum(jnp.square(u), axis=1)[:, None] + jnp.sum(jnp.square(v), axis=1)[None, :]
        - 2.0 * jnp.dot(u, v.T, precision=jax.lax.Precision.HIGHEST))
  return jnp.maximum(0.0, 1.0 - d2)


class KernelDense(nn.Module):
  """A kernelized dense layer (Muller et al. 2018, "Kernelized Synaptic Weight Matrices"; GLocal-K's
  local kernel): ``x @ (kernel * local_kernel(u, v)) + bias``.

  Parameters: ``kernel`` [in, out] (L2-penalized by the "l2" loss term like every kernel), ``u``
  [in, kernel_dim], ``v`` [out, kernel_dim], ``bias`` [out]. ``u`` and ``v`` are truncated normal
  with standard deviation 1e-3 (every connection starts open, kernel ~ 1), as in the authors' code.
  ``weight_init`` draws ``kernel`` and ``bias``: "glorot" is the authors' (TensorFlow's default for
  ``tf.get_variable``: Glorot-uniform kernel, and for the 1-D bias the same rule with fan-in = fan-out
  = out, i.e. uniform in +-sqrt(3 / out)); "small" is truncated normal 1e-3 for the kernel and a zero
  bias. ``__call__`` returns ``(y, sum(local_kernel^2) / 2)``: the second value is the layer's share
  of the "kernel_l2" loss term. ``x`` may be a SparseBatch (embedding-bag over the nonzeros).
  """

  in_features: int
  features: int
  kernel_dim: int
  dtype: Any = jnp.float32
  weight_init: str = "glorot"

  @nn.compact
  def __call__(self, x: Array | SparseBatch) -> tuple[Array, Array]:
    small = nn.initializers.truncated_normal(stddev=1e-3)
    if self.weight_init == "glorot":
      w_init = nn.initializers.glorot_uniform()
      limit = (3.0 / self.features) ** 0.5
      b_init = lambda key, shape, dtype: jax.random.uniform(key, shape, dtype, -limit, limit)
    elif self.weight_init == "small":
      w_init, b_init = small, zeros
    else:
      raise ValueError(f"unknown weight_init {self.weight_init!r}; known: {KERNEL_WEIGHT_INITS}")
    w = self.param("kernel", w_init, (self.in_features, self.features), jnp.float32)
    u = self.param("u", small, (self.in_features, self.kernel_dim), jnp.float32)
    v = self.param("v", small, (self.features, self.kernel_dim), jnp.float32)
    bias = self.param("bias", b_init, (self.features,), jnp.float32)
    k = local_kernel(u, v)
    w_eff = w * k
    if isinstance(x, SparseBatch):
      y = embedding_bag(x, w_eff, self.dtype)
    else:
      y = jnp.dot(x.astype(self.dtype), w_eff.astype(self.dtype))
    return add_bias(y, bias.astype(self.dtype)), 0.5 * jnp.sum(jnp.square(k))
