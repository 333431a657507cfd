"""Loss terms by name and their weighted sum, as ``config.loss`` ({term name: weight}) asks.

Every term is a pure, jit-compatible function ``term(outputs, target, observed, row_mask, params)``
returning a float32 scalar, where ``outputs`` is the model's output dict, ``target`` [B, n] the dense
targets, ``observed`` [B, n] the 0/1 mask of stored entries and ``row_mask`` [B] 1 for real rows, 0 for
padding rows. Padding rows contribute nothing and are not counted in any normalizer.

  masked_mse   sum over observed entries of real rows of (recon - target)^2 / number of those
               entries (NVIDIA DeepRecommender's MSEloss / num_ratings)
  mse          mean of (recon - target)^2 over all entries of real rows (rows * cols)
  bce          binary cross-entropy of ``logits`` vs target, summed over columns, mean over real rows
               (CDAE's per-user loss averaged over users). Over a sparse catalog, start the output
               biases near the density's log-odds (CDAE's ``model.output_bias_init``): from 0 the
               model can spend its hidden layer on pushing every output down (docs/results.md)
  multinomial  -sum(log_softmax(logits) * target) per row, mean over real rows (Liang et al. 2018)
  kl           the model's per-row ``kl``, mean over real rows; its weight is annealed by
               :func:`kl_weight` (``config.loss_anneal``)
  l2           sum over weight matrices (params named "kernel" or "embedding") of ||W||^2 / 2
  kernel_l2    the model's ``kernel_l2`` (half the summed squares of a kernelized model's kernel
               values, :class:`~jaxae.models.kernel_ae.KernelAE`: Muller et al.'s sparsity term)

The Gram trick (``config.loss_impl.full_mse``, :func:`full_mse_impl`): when the last layer is linear,
``recon = z W + b`` with ``z`` [B, d], and the target is the sparse batch ``x``, then per row
``||z W + b - x||^2 = z (W W^T) z^T + 2 z.(W b) + b.b - 2 x.(z W + b) + ||x||^2``: the first three
need only the d x d Gram ``W W^T``, the fourth only the predictions at x's nonzeros (gathered
columns of W), so neither the [B, n] output nor the dense target is built. ``masked_mse`` uses the
same gathered predictions. :func:`compute_loss` takes this path when ``target`` is a
:class:`SparseBatch` (then ``observed`` is unused) and the model returns ``last_hidden``,
``last_kernel`` [n, d] (``W^T``: one row per item, as the model stores it, so the gather reads
rows) and ``last_bias`` [n] (n may be padded with zero rows).

The entries path (``full_mse = "entries"``; the key's name is historical, it covers every term):
the model's dense [B, n] output, but no dense target or observed mask. Every term that reads the
target needs only the output at x's nonzeros and a row sum over the output: ``mse`` the identity
above with ``||recon||^2`` from the output itself, ``multinomial`` ``logsumexp(z) * sum(x) -
sum_entries x * z``, ``bce`` ``sum_j softplus(z_j) - sum_entries t * z``. It is the dense path's
arithmetic without its two [B, n] float32 arrays (the target and the mask, written and read on
every step). :func:`compute_loss` takes it when ``target`` is a SparseBatch and the model returns
no last-layer pieces.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from jaxae import checks
from jaxae.data import sparse
from jaxae.data.sparse import SparseBatch
from jaxae.errors import ConfigError

Array = jax.Array
TermFn = Callable[[Mapping[str, Array], Array, Array, Array, Any], Array]

WEIGHT_PARAM_NAMES = ("kernel", "embedding")


def _need(outputs: Mapping[str, Array], key: str, term: str) -> Array:
  if key not in outputs:
    raise ConfigError(f"config.loss.{term}: needs the model output {key!r}, but the model gives "
                      f"only {', '.join(sorted(outputs))}")
  return outputs[key].astype(jnp.float32)


def _row_mean(per_row: Array, row_mask: Array) -> Array:
  """Mean of a [B] vector over the real rows (padding rows ignored, even if non-finite)."""
  real = row_mask.astype(jnp.float32) > 0
  total = jnp.sum(jnp.where(real, per_row, 0.0))
  return total / jnp.maximum(jnp.sum(real.astype(jnp.float32)), 1.0)


def masked_mse(outputs, target, observed, row_mask, params=None) -> Array:
  """Squared error over the observed entries of real rows / their number."""
  del params
  recon = _need(outputs, "recon", "masked_mse")
  w = observed.astype(jnp.float32) * (row_mask.astype(jnp.float32) > 0)[:, None]
  sq = jnp.where(w > 0, jnp.square(recon - target.astype(jnp.float32)), 0.0)
  return jnp.sum(w * sq) / jnp.maximum(jnp.sum(w), 1.0)


def mse(outputs, target, observed, row_mask, params=None) -> Array:
  """Squared error over every entry of the real rows / (real rows * cols)."""
  del observed, params
  recon = _need(outputs, "recon", "mse")
  per_row = jnp.mean(jnp.square(recon - target.astype(jnp.float32)), axis=-1)
  return _row_mean(per_row, row_mask)


def bce(outputs, target, observed, row_mask, params=None) -> Array:
  """Sigmoid cross-entropy on ``logits``, summed over columns, mean over real rows."""
  del observed, params
  logits = _need(outputs, "logits", "bce")
  t = target.astype(jnp.float32)
  per_entry = jnp.logaddexp(0.0, logits) - logits * t     # -t log s(z) - (1-t) log(1 - s(z))
  return _row_mean(jnp.sum(per_entry, axis=-1), row_mask)


def multinomial(outputs, target, observed, row_mask, params=None) -> Array:
  """Multinomial negative log-likelihood of the target counts under softmax(logits)."""
  del observed, params
  logits = _need(outputs, "logits", "multinomial")
  per_row = -jnp.sum(jax.nn.log_softmax(logits, axis=-1) * target.astype(jnp.float32), axis=-1)
  return _row_mean(per_row, row_mask)


def kl(outputs, target, observed, row_mask, params=None) -> Array:
  """The model's per-row KL divergence, mean over real rows (weight annealed by compute_loss)."""
  del target, observed, params
  return _row_mean(_need(outputs, "kl", "kl"), row_mask)


def l2(outputs, target, observed, row_mask, params=None) -> Array:
  """sum over weight matrices of ||W||^2 / 2 (biases are not penalized)."""
  del outputs, target, observed, row_mask
  total = jnp.zeros((), jnp.float32)
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    last = path[-1]
    name = getattr(last, "key", getattr(last, "name", None))
    if name in WEIGHT_PARAM_NAMES:
      total = total + 0.5 * jnp.sum(jnp.square(leaf.astype(jnp.float32)))
  return total


def kernel_l2(outputs, target, observed, row_mask, params=None) -> Array:
  """The model's ``kernel_l2`` output (a parameter term: it does not depend on the batch)."""
  del target, observed, row_mask, params
  return _need(outputs, "kernel_l2", "kernel_l2")


LOSSES: dict[str, TermFn] = {
    "masked_mse": masked_mse,
    "mse": mse,
    "bce": bce,
    "multinomial": multinomial,
    "kl": kl,
    "l2": l2,
    "kernel_l2": kernel_l2,
}


# --------------------------------------------------------------------------- Gram trick
FULL_MSE_IMPLS = ("dense", "entries", "gram", "auto")
# "auto" takes the Gram path when batch_size >= GRAM_CROSSOVER * d (d = the last layer's input
# width). Measured by bench/bench_gram_mse.py at 40,981 items (docs/benchmarks.md, "Gram-trick full
# MSE"): against the dense target the Gram path is faster from B/d = 0.5 at d = 256 and from 1.5 at
# d = 1024; against the entries path from between B/d = 1 and 2 at both widths.
GRAM_CROSSOVER = 1.5
# Terms the Gram path can compute from the sparse batch (the others need the dense output).
SPARSE_TERMS = ("masked_mse", "mse", "kl", "l2")
# Terms that read the target (the others read only the outputs or the params). The entries path
# computes every term: these from the batch's entries and row sums over the dense output.
TARGET_TERMS = ("masked_mse", "mse", "bce", "multinomial")
_HI = jax.lax.Precision.HIGHEST


@jax.custom_vjp
def kernel_rows(kernel: Array, idx: Array) -> Array:
  """``kernel[idx]``: rows of an item-major kernel at the batch's items, ``idx.shape + [d]``.

  The value and the gradient are ``jnp.take``'s; the gradient's scatter-add starts from a buffer of
  -0.0 instead of 0.0 (the same sums: ``-0.0 + x == x``, and an item no entry reads keeps a zero
  gradient). Why: with a sparse first layer the embedding-bag's gradient is also a scatter-add
  into a zero ``[n, d]`` buffer, and XLA:CPU gives two equal constant broadcasts one buffer, then
  copies it for each scatter (two more passes over ``[n, d]`` a step); a different constant keeps
  the buffers apart (tests/test_fast_paths.py checks the compiled step for those copies).
  """
  return jnp.take(kernel, idx, axis=0)


def _kernel_rows_fwd(kernel, idx):
  return jnp.take(kernel, idx, axis=0), (kernel, idx)   # the kernel: a parameter, alive anyway


def _kernel_rows_bwd(res, g):
  kernel, idx = res
  start = jnp.full(kernel.shape, -0.0, kernel.dtype)
  return start.at[idx].add(g.astype(kernel.dtype)), None


kernel_rows.defvjp(_kernel_rows_fwd, _kernel_rows_bwd)


def _last_layer(outputs: Mapping[str, Array], term: str) -> tuple[Array, Array, Array]:
  for key in ("last_hidden", "last_kernel", "last_bias"):
    if key not in outputs:
      raise ConfigError(f"config.loss_impl.full_mse='gram': term {term} needs the model's linear "
                        f"last layer ({key!r}), but the model gives only {', '.join(sorted(outputs))}")
  return (outputs["last_hidden"].astype(jnp.float32), outputs["last_kernel"].astype(jnp.float32),
          outputs["last_bias"].astype(jnp.float32))


def _entry_rows(batch: SparseBatch) -> tuple[Array, Array]:
  """[S, N] row of each entry within the batch and [S, N] bool: a stored entry, not padding."""
  return sparse.global_segments(batch), sparse.real_entries(batch)


def gather_entries(dense: Array, batch: SparseBatch) -> Array:
  """[S, N] float32 values of a [B, n] array at the batch's stored entries (padding entries give
  the value at column 0 of their row, masked later)."""
  return jax.vmap(lambda d, seg, cols: d[seg, cols])(
      sparse.shard_rows(dense, batch), batch.seg, batch.cols).astype(jnp.float32)


def _entry_sums(per_entry: Array, batch: SparseBatch, b_size: int) -> Array:
  """[B] sums of a [S, N] per-entry quantity over each row's stored entries (padding: 0)."""
  rows, real = _entry_rows(batch)
  return jax.ops.segment_sum(jnp.where(real, per_entry, 0.0).ravel(), rows.ravel(),
                             num_segments=b_size)


def sparse_predictions(outputs: Mapping[str, Array], batch: SparseBatch, term: str = "mse"
                       ) -> Array:
  """[S, N] predictions ``z_row . W[:, col] + b[col]`` at the batch's stored entries (gathered
  rows of the item-major last kernel ``W^T``; padding entries give the prediction of column 0,
  masked later).
  A model that returns only ``recon`` (the entries path): the output gathered at those entries."""
  if "last_kernel" not in outputs and "recon" in outputs:
    return gather_entries(outputs["recon"], batch)
  z, w, b = _last_layer(outputs, term)
  zs = sparse.shard_rows(z, batch)

  # One gather for all shards (outside the vmap): its gradient is one scatter-add into [n, d].
  wc = kernel_rows(w, batch.cols)                             # [S, N, d]

  def one(z_s, wc_s, cols, seg):
    return jnp.einsum("nd,nd->n", z_s[seg], wc_s, precision=_HI) + b[cols]

  pred = jax.vmap(one)(zs, wc, batch.cols, batch.seg)
  act = outputs.get("last_act")          # a non-linear output layer (entry terms only)
  return pred if act is None else act(pred)


def masked_mse_sparse(outputs, batch: SparseBatch, row_mask, params=None, *, n_cols=None,
                      pred=None) -> Array:
  """:func:`masked_mse` from the predictions at the stored entries only."""
  del params, n_cols
  pred = sparse_predictions(outputs, batch, "masked_mse") if pred is None else pred
  rows, real = _entry_rows(batch)
  w = real & (row_mask.astype(jnp.float32)[rows] > 0)
  sq = jnp.where(w, jnp.square(pred - batch.vals.astype(jnp.float32)), 0.0)
  return jnp.sum(sq) / jnp.maximum(jnp.sum(w.astype(jnp.float32)), 1.0)


def mse_gram(outputs, batch: SparseBatch, row_mask, params=None, *, n_cols: int,
             pred=None) -> Array:
  """:func:`mse` by the Gram trick: no [B, n] array (see the module docstring)."""
  del params
  if outputs.get("last_act") is not None:
    raise ConfigError("config.loss.mse: the Gram trick needs a linear last layer; set "
                      "config.model.last_activation to False or config.loss_impl.full_mse='dense'")
  z, w, b = _last_layer(outputs, "mse")
  if w.shape[0] > n_cols:            # an item dimension padded for the model axis: real items only
    w, b = w[:n_cols], b[:n_cols]
  pred = sparse_predictions(outputs, batch, "mse") if pred is None else pred
  gram = jnp.dot(w.T, w, precision=_HI)                                   # [d, d]
  wb = jnp.dot(b, w, precision=_HI)                                       # [d]
  out_sq = (jnp.sum(jnp.dot(z, gram, precision=_HI) * z, axis=-1)
            + 2.0 * jnp.dot(z, wb, precision=_HI) + jnp.dot(b, b, precision=_HI))      # [B]
  return _mse_from_out_sq(out_sq, pred, batch, row_mask, n_cols)


def _mse_from_out_sq(out_sq: Array, pred: Array, batch: SparseBatch, row_mask: Array,
                     n_cols: int) -> Array:
  """:func:`mse` from each row's ``||recon||^2`` [B] and the predictions at its entries:
  ``(||recon||^2 - 2 x.recon + ||x||^2) / n`` per row, mean over real rows."""
  vals = batch.vals.astype(jnp.float32)
  b_size = row_mask.shape[0]
  cross = _entry_sums(vals * pred, batch, b_size)
  x_sq = _entry_sums(jnp.square(vals), batch, b_size)
  per_row = (out_sq - 2.0 * cross + x_sq) / float(n_cols)
  return _row_mean(per_row, row_mask)


def mse_entries(outputs, batch: SparseBatch, row_mask, params=None, *, n_cols: int,
                pred=None) -> Array:
  """:func:`mse` from the dense output and the sparse batch: no dense target (module docstring)."""
  del params
  recon = _need(outputs, "recon", "mse")[:, :n_cols]
  pred = sparse_predictions(outputs, batch, "mse") if pred is None else pred
  return _mse_from_out_sq(jnp.sum(jnp.square(recon), axis=-1), pred, batch, row_mask, n_cols)


def _scatter_sub_entries(dense: Array, batch: SparseBatch, upd: Array) -> Array:
  """``dense`` [B, n] minus ``upd`` [S, N] at the batch's stored entries (padding entries must carry
  0); per shard, as :func:`gather_entries` reads them. On a buffer nothing else reads, XLA does it
  in place."""
  out = jax.vmap(lambda d, seg, cols, u: d.at[seg, cols].add(-u))(
      sparse.shard_rows(dense, batch), batch.seg, batch.cols, upd)
  return out.reshape(dense.shape)


def _row_lse(logits: Array) -> tuple[Array, Array, Array]:
  """[B] ``logsumexp`` of each row as ``jax.nn.logsumexp`` computes it (a non-finite max -> 0),
  with ``e = exp(z - max)`` [B, n] and its row sums [B] (softmax = e / sum)."""
  m = jnp.max(logits, axis=-1, keepdims=True)
  m = jnp.where(jnp.isfinite(m), m, 0.0)
  e = jnp.exp(logits - m)
  total = jnp.sum(e, axis=-1)
  return m[:, 0] + jnp.log(total), e, total


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _dense_minus_cross(kind: str, logits: Array, batch: SparseBatch, weights: Array,
                       x_sum: Array) -> Array:
  """[B] per-row ``dense(z) - sum_entries w * z`` of the [B, n] ``logits`` z, where ``dense`` is
  ``logsumexp(z) * x_sum`` (kind "lse": the multinomial) or ``sum_j softplus(z_j)`` ("softplus":
  bce; ``x_sum`` None), and ``weights`` [S, N] are the entries' w (0 at padding). Differentiable
  in ``logits`` only (the batch, its weights and sums are data).

  The gradient is one pass over a [B, n] array (``g * x_sum * softmax(z)`` from the forward's
  ``exp(z - max)``, resp. ``g * sigmoid(z)``) with the entries' ``g * w`` then subtracted in place;
  autodiff of the same expression also fills a zero [B, n] array for the entries' scatter and adds
  the two in a further pass (Mult-DAE 600/64 bs 2048: ~2% of the step, docs/benchmarks.md)."""
  return _dense_minus_cross_fwd(kind, logits, batch, weights, x_sum)[0]


def _dense_minus_cross_fwd(kind, logits, batch, weights, x_sum):
  cross = _entry_sums(weights * gather_entries(logits, batch), batch, logits.shape[0])
  if kind == "lse":
    lse, e, total = _row_lse(logits)
    return lse * x_sum - cross, (e, total, batch, weights, x_sum)
  return jnp.sum(jnp.logaddexp(0.0, logits), axis=-1) - cross, (logits, None, batch, weights, None)


def _dense_minus_cross_bwd(kind, res, g):
  a, total, batch, weights, x_sum = res
  if kind == "lse":                     # a = exp(z - max): softmax(z) = a / its row sum
    dz = (g * x_sum / total)[:, None] * a
  else:                                 # a = z
    dz = g[:, None] * jax.nn.sigmoid(a)
  rows, _ = _entry_rows(batch)
  return _scatter_sub_entries(dz, batch, g[rows] * weights), None, None, None


_dense_minus_cross.defvjp(_dense_minus_cross_fwd, _dense_minus_cross_bwd)


def _entry_weights(batch: SparseBatch) -> Array:
  """[S, N] float32 values of the batch's stored entries, 0 at padding."""
  _, real = _entry_rows(batch)
  return jnp.where(real, batch.vals.astype(jnp.float32), 0.0)


def multinomial_entries(outputs, batch: SparseBatch, row_mask, params=None, *,
                        n_cols: int) -> Array:
  """:func:`multinomial` from the dense logits and the sparse batch: per row
  ``-sum_j x_j log_softmax(z)_j = logsumexp(z) * sum(x) - sum_entries x * z`` (no dense target)."""
  del params
  logits = _need(outputs, "logits", "multinomial")[:, :n_cols]
  vals = _entry_weights(batch)
  x_sum = _entry_sums(vals, batch, row_mask.shape[0])
  return _row_mean(_dense_minus_cross("lse", logits, batch, vals, x_sum), row_mask)


def bce_entries(outputs, batch: SparseBatch, row_mask, params=None, *, n_cols: int) -> Array:
  """:func:`bce` from the dense logits and the sparse batch: per row
  ``sum_j softplus(z_j) - sum_entries t * z`` (no dense target)."""
  del params
  logits = _need(outputs, "logits", "bce")[:, :n_cols]
  vals = _entry_weights(batch)
  return _row_mean(_dense_minus_cross("softplus", logits, batch, vals, None), row_mask)


ENTRY_FNS = {"multinomial": multinomial_entries, "bce": bce_entries}


def full_mse_impl(loss_impl, loss_config, *, last_width: int | None, batch_size: int,
                  refeed_steps: int = 0, entry_width: int | None = None) -> str:
  """Which path computes the loss: "dense" (the model's [B, n] output and a dense target),
  "entries" (the dense output, the target read at the batch's entries) or "gram" (no dense output:
  the Gram trick for the MSE terms, or the masked terms alone at the entries).

  Args:
    loss_impl: ``config.loss_impl`` (``full_mse``: "dense" | "entries" | "gram" | "auto") or None
      (= "dense").
    loss_config: ``config.loss``.
    last_width: the input width ``d`` of the model's last layer when that layer is linear and the
      model can return its pieces, else None.
    batch_size: rows per step.
    refeed_steps: dense re-feeding passes (they need the dense output anyway, so "auto" does not
      take the Gram path with them).
    entry_width: the input width of the model's last layer when the model can return its pieces,
      linear or not (with a non-linear one only the masked terms take the sparse path).

  Raises:
    ConfigError: an unknown value; "gram" with a non-linear last layer or a term that needs the
      dense output (bce, multinomial).
  """
  impl = "dense"
  if loss_impl is not None and "full_mse" in loss_impl:
    impl = loss_impl["full_mse"]
  if impl not in FULL_MSE_IMPLS:
    raise ConfigError(f"config.loss_impl.full_mse: unknown value {impl!r}; known: "
                      f"{', '.join(FULL_MSE_IMPLS)}")
  terms = list(active_terms(loss_config, {"total_steps": 0, "beta_cap": 1.0}))
  dense_only = [t for t in terms if t not in SPARSE_TERMS]
  if impl == "entries":
    return "entries"
  if impl == "gram":
    if last_width is None:
      raise ConfigError("config.loss_impl.full_mse='gram' needs a model with a linear last layer "
                        "(deep_ae with model.last_activation False); use 'dense' or 'auto'")
    if dense_only:
      raise ConfigError(f"config.loss_impl.full_mse='gram': loss term(s) {', '.join(dense_only)} "
                        f"need the dense output; the Gram path computes {', '.join(SPARSE_TERMS)}")
    return "gram"
  if (impl == "auto" and last_width is not None and not dense_only and "mse" in terms
      and refeed_steps == 0 and batch_size >= GRAM_CROSSOVER * last_width):
    return "gram"
  # Masked terms only (no full mse): the loss reads the output at the batch's entries alone, so the
  # sparse path is exact and cheaper at any size (no Gram matrix is formed); it is the default
  # unless "dense" is asked for. A non-linear last layer is fine here (``entry_width``).
  unset = loss_impl is None or "full_mse" not in loss_impl
  if ((unset or impl == "auto") and "masked_mse" in terms and "mse" not in terms
      and not dense_only and (last_width is not None or entry_width is not None)):
    return "gram"
  # Otherwise the output is dense, but its target and mask need not be (the entries path).
  if impl == "auto" and any(t in TARGET_TERMS for t in terms):
    return "entries"
  return "dense"


def kl_weight(step, total_anneal_steps: int, beta_cap: float) -> Array:
  """Liang et al.'s KL annealing: ``min(beta_cap, step / total_anneal_steps)``; ``beta_cap`` from the
  start when ``total_anneal_steps`` <= 0. ``step`` may be a traced integer."""
  if total_anneal_steps <= 0:
    return jnp.asarray(beta_cap, jnp.float32)
  return jnp.minimum(jnp.float32(beta_cap),
                     jnp.asarray(step, jnp.float32) / jnp.float32(total_anneal_steps))


def check_loss_config(loss_config, anneal=None) -> dict[str, float]:
  """{term: weight} from ``config.loss``; ConfigError for an unknown term, a non-number weight, an
  empty config, or a "kl" term without ``config.loss_anneal`` (total_steps, beta_cap)."""
  if loss_config is None or not hasattr(loss_config, "keys") or not list(loss_config.keys()):
    raise ConfigError(f"config.loss: expected a dict of term name -> weight with terms from "
                      f"{', '.join(LOSSES)}, got {loss_config!r}")
  weights = {}
  for name in loss_config.keys():
    if name not in LOSSES:
      raise ConfigError(f"config.loss: unknown loss term {name!r}; known: {', '.join(LOSSES)}")
    weights[name] = checks.number(loss_config[name], f"loss.{name}", minimum=0.0)
  if "kl" in weights:
    if anneal is None:
      raise ConfigError("config.loss.kl: needs config.loss_anneal (total_steps, beta_cap); pass "
                        "anneal=config.loss_anneal to compute_loss")
    for key in ("total_steps", "beta_cap"):
      if key not in anneal:
        raise ConfigError(f"config.loss_anneal: missing key {key}")
    unknown = sorted(set(anneal.keys()) - {"total_steps", "beta_cap"})
    if unknown:
      raise ConfigError(f"config.loss_anneal: unknown key(s) {', '.join(unknown)}; known: "
                        "total_steps, beta_cap")
  return weights


def active_terms(loss_config, anneal=None) -> dict[str, float]:
  """The terms of ``config.loss`` with a nonzero weight (:func:`check_loss_config`): a term of
  weight 0 is switched off, neither computed nor reported. ConfigError when every weight is 0."""
  weights = check_loss_config(loss_config, anneal)
  active = {name: w for name, w in weights.items() if w}
  if not active:
    raise ConfigError(f"config.loss: every term has weight 0 ({', '.join(weights)}); nothing to "
                      "train")
  return active


def compute_loss(loss_config, outputs: Mapping[str, Array], target: Array | SparseBatch,
                 observed: Array | None, row_mask: Array, params: Any, step, *, anneal=None,
                 n_cols: int | None = None) -> tuple[Array, dict[str, Array]]:
  """The weighted sum of the configured terms.

  Args:
    loss_config: ``config.loss``, {term name: weight}.
    outputs: the model's output dict.
    target: [B, n] dense targets, or the SparseBatch itself for the Gram path (module docstring).
    observed: [B, n] 1 where an entry is stored (``jaxae.data.sparse.observed_mask``); unused by
      the Gram path.
    row_mask: [B] 1 for real rows, 0 for padding rows.
    params: the params pytree (for "l2").
    step: the optimizer step (for the KL anneal); may be traced.
    anneal: ``config.loss_anneal`` (``total_steps``, ``beta_cap``); required when "kl" is a term.
    n_cols: the item count the "mse" mean divides by on the Gram path (default: the width of
      ``outputs["recon"]``).

  Returns:
    ``(loss, terms)``: ``loss = sum_t weight_t * term_t`` (the kl term's weight times
    ``kl_weight(step, ...)``), and ``terms`` the unweighted value of each term, plus "kl_beta" (the
    annealed factor) when "kl" is a term. A term of weight 0 is switched off: it is neither
    computed nor in ``terms`` (no pass over its inputs, no 0 x gradient, and a non-finite value of
    it cannot make the loss non-finite).
  """
  weights = active_terms(loss_config, anneal)
  total = jnp.zeros((), jnp.float32)
  terms: dict[str, Array] = {}
  sparse = isinstance(target, SparseBatch)
  gram = sparse and "last_kernel" in outputs
  if sparse:        # Gram / entries path: predictions at the stored entries, shared by the MSEs
    bad = [t for t in weights if t not in SPARSE_TERMS] if gram else []
    if bad:
      raise ConfigError(f"config.loss.{bad[0]}: needs the dense output; the Gram path (sparse "
                        f"target) computes only {', '.join(SPARSE_TERMS)}")
    n_cols = int(outputs["recon"].shape[-1]) if n_cols is None else int(n_cols)
    pred = (sparse_predictions(outputs, target)
            if any(t in weights for t in ("masked_mse", "mse")) else None)
  for name, weight in weights.items():
    if sparse and name in ("masked_mse", "mse"):
      term = masked_mse_sparse if name == "masked_mse" else (mse_gram if gram else mse_entries)
      value = term(outputs, target, row_mask, params, n_cols=n_cols, pred=pred)
    elif sparse and name in ENTRY_FNS:
      value = ENTRY_FNS[name](outputs, target, row_mask, params, n_cols=n_cols)
    else:
      value = LOSSES[name](outputs, target, observed, row_mask, params)
    terms[name] = value
    if name == "kl":
      beta = kl_weight(step, int(anneal["total_steps"]), float(anneal["beta_cap"]))
      terms["kl_beta"] = beta
      value = beta * value
    total = total + weight * value
  return total, terms
