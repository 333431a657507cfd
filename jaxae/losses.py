"""Loss terms by name and their weighted sum, as ``config.loss`` ({term name: weight}) asks.

Every term is a pure, jit-compatible function ``term(outputs, target, observed, row_mask, params)``
returning a float32 scalar, where ``outputs`` is the model's output dict, ``target`` [B, n] the dense
targets, ``observed`` [B, n] the 0/1 mask of stored entries and ``row_mask`` [B] 1 for real rows, 0 for
padding rows. Padding rows contribute nothing and are not counted in any normalizer.

  masked_mse   sum over observed entries of real rows of (recon - target)^2 / number of those
               entries (NVIDIA DeepRecommender's MSEloss / num_ratings)
  mse          mean of (recon - target)^2 over all entries of real rows (rows * cols)
  bce          binary cross-entropy of ``logits`` vs target, summed over columns, mean over real rows
               (CDAE's per-user loss averaged over users)
  multinomial  -sum(log_softmax(logits) * target) per row, mean over real rows (Liang et al. 2018)
  kl           the model's per-row ``kl``, mean over real rows; its weight is annealed by
               :func:`kl_weight` (``config.loss_anneal``)
  l2           sum over weight matrices (params named "kernel" or "embedding") of ||W||^2 / 2
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

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


LOSSES: dict[str, TermFn] = {
    "masked_mse": masked_mse,
    "mse": mse,
    "bce": bce,
    "multinomial": multinomial,
    "kl": kl,
    "l2": l2,
}


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
    w = loss_config[name]
    if isinstance(w, bool) or not isinstance(w, (int, float)):
      raise ConfigError(f"config.loss.{name}: weight must be a number, got {w!r}")
    weights[name] = float(w)
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


def compute_loss(loss_config, outputs: Mapping[str, Array], target: Array, observed: Array,
                 row_mask: Array, params: Any, step, *, anneal=None
                 ) -> tuple[Array, dict[str, Array]]:
  """The weighted sum of the configured terms.

  Args:
    loss_config: ``config.loss``, {term name: weight}.
    outputs: the model's output dict.
    target: [B, n] dense targets.
    observed: [B, n] 1 where an entry is stored (``jaxae.data.sparse.observed_mask``).
    row_mask: [B] 1 for real rows, 0 for padding rows.
    params: the params pytree (for "l2").
    step: the optimizer step (for the KL anneal); may be traced.
    anneal: ``config.loss_anneal`` (``total_steps``, ``beta_cap``); required when "kl" is a term.

  Returns:
    ``(loss, terms)``: ``loss = sum_t weight_t * term_t`` (the kl term's weight times
    ``kl_weight(step, ...)``), and ``terms`` the unweighted value of each term, plus "kl_beta" (the
    annealed factor) when "kl" is a term.
  """
  weights = check_loss_config(loss_config, anneal)
  total = jnp.zeros((), jnp.float32)
  terms: dict[str, Array] = {}
  for name, weight in weights.items():
    value = LOSSES[name](outputs, target, observed, row_mask, params)
    terms[name] = value
    if name == "kl":
      beta = kl_weight(step, int(anneal["total_steps"]), float(anneal["beta_cap"]))
      terms["kl_beta"] = beta
      total = total + weight * beta * value
    else:
      total = total + weight * value
  return total, terms
