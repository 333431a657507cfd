"""Builds the optax optimizer and learning-rate schedule named by ``config.optim``.

Schedules are written in epochs in the config and converted to optimizer updates here: one train
step makes ``1 + refeed_steps`` updates (dense re-feeding updates after every normal one), so an
epoch is ``steps_per_epoch * updates_per_step`` updates. ``multistep`` multiplies the rate by
``decay_factor`` at the first update of every milestone epoch, as PyTorch's ``MultiStepLR`` stepped
once per epoch does in the Deep AE paper's code.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxae import checks
from jaxae.errors import ConfigError

OPTIM_KEYS = ("name", "lr", "momentum", "weight_decay", "clip_norm", "schedule", "milestones",
              "decay_factor", "warmup_epochs")
OPTIMIZERS = ("adam", "adamw", "sgd", "momentum", "adagrad", "rmsprop", "lbfgs")
# Keys an optim section may have or lack: memory_size is L-BFGS's (required when name is "lbfgs"),
# restart_every too (optional; absent or 0 = never restart).
OPTIONAL_OPTIM_KEYS = ("memory_size", "restart_every")
SCHEDULES = ("constant", "multistep", "cosine", "warmup_cosine")


def _get(cfg, key: str):
  if key not in cfg:
    raise ConfigError(f"config.optim.{key} is missing")
  return cfg[key]


def _number(cfg, key: str, *, minimum: float = 0.0, strict: bool = False,
            maximum: float | None = None) -> float:
  return checks.number(_get(cfg, key), f"optim.{key}", minimum=minimum, strict=strict,
                       maximum=maximum)


def make_schedule(optim_config, steps_per_epoch: int, epochs: int,
                  updates_per_step: int = 1) -> Callable:
  """The learning rate as a function of the optimizer's update count.

  Args:
    optim_config: ``config.optim``.
    steps_per_epoch: train steps (batches) per epoch.
    epochs: total epochs (the horizon of the cosine schedules).
    updates_per_step: optimizer updates per train step (``1 + refeed_steps``).
  """
  lr = _number(optim_config, "lr", strict=True)
  name = _get(optim_config, "schedule")
  per_epoch = max(1, int(steps_per_epoch)) * max(1, int(updates_per_step))
  total = max(1, int(epochs) * per_epoch)
  if name == "constant":
    return optax.constant_schedule(lr)
  if name == "multistep":
    milestones = _get(optim_config, "milestones")
    factor = _number(optim_config, "decay_factor", strict=True)
    try:
      epochs_at = sorted(int(m) for m in milestones)
    except (TypeError, ValueError):
      raise ConfigError(f"config.optim.milestones must be a list of epochs, got "
                        f"{milestones!r}") from None
    if any(m < 0 for m in epochs_at):
      raise ConfigError(f"config.optim.milestones must be >= 0, got {epochs_at}")
    scales: dict[int, float] = {}
    for m in epochs_at:
      scales[m * per_epoch] = scales.get(m * per_epoch, 1.0) * factor
    return optax.piecewise_constant_schedule(lr, scales)
  if name == "cosine":
    return optax.cosine_decay_schedule(lr, decay_steps=total)
  if name == "warmup_cosine":
    warmup = _number(optim_config, "warmup_epochs")
    warmup_steps = int(round(warmup * per_epoch))
    if warmup_steps >= total:
      raise ConfigError(f"config.optim.warmup_epochs={warmup} must be smaller than "
                        f"config.train.epochs={epochs}")
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=warmup_steps,
                                              decay_steps=total, end_value=0.0)
  raise ConfigError(f"config.optim.schedule: unknown schedule {name!r}; known: {list(SCHEDULES)}")


def make_optimizer(optim_config, steps_per_epoch: int, epochs: int,
                   updates_per_step: int = 1) -> optax.GradientTransformation:
  """Gradient clipping (``clip_norm``) -> weight decay -> the named optimizer with its schedule.

  ``lbfgs`` (``optax.lbfgs``: ``memory_size`` past updates, a zoom line search that satisfies the
  strong Wolfe conditions, ``lr`` scaling the direction before the search, so 1.0 is plain L-BFGS;
  a step the line search leaves above the current loss is dropped: :func:`descent_only`)
  is meant for full-batch training (``train.batch_size`` >= the number of rows): its update needs the
  loss value and the loss as a function of the params, which the train step passes
  (:func:`needs_value_fn`); it takes no schedule, weight decay or clipping (they would make the line
  search's objective differ from the gradient's).

  ``adamw`` decays weights the decoupled way (its own ``weight_decay``); every other optimizer gets
  ``optax.add_decayed_weights`` before it, i.e. ``weight_decay * param`` added to the gradient as
  PyTorch's ``weight_decay`` argument does. ``momentum`` is SGD with (heavy-ball) momentum.
  """
  name = _get(optim_config, "name")
  if name not in OPTIMIZERS:
    raise ConfigError(f"config.optim.name: unknown optimizer {name!r}; known: {list(OPTIMIZERS)}")
  if name == "lbfgs":
    return _lbfgs(optim_config)
  for key in ("memory_size", "restart_every"):
    if key in optim_config:
      raise ConfigError(f"config.optim.{key} is L-BFGS's; optimizer {name!r} has none")
  schedule = make_schedule(optim_config, steps_per_epoch, epochs, updates_per_step)
  weight_decay = _number(optim_config, "weight_decay")
  momentum = _number(optim_config, "momentum", maximum=1.0)
  clip_norm = _get(optim_config, "clip_norm")
  if clip_norm is not None:
    clip_norm = _number(optim_config, "clip_norm", strict=True)

  if name == "adam":
    base = optax.adam(schedule)
  elif name == "adamw":
    base = optax.adamw(schedule, weight_decay=weight_decay)
  elif name == "sgd":
    base = optax.sgd(schedule)
  elif name == "momentum":
    base = optax.sgd(schedule, momentum=momentum)
  elif name == "adagrad":
    base = optax.adagrad(schedule)
  else:  # rmsprop
    base = optax.rmsprop(schedule, momentum=momentum or None)

  chain = []
  if clip_norm is not None:
    chain.append(optax.clip_by_global_norm(clip_norm))
  if name != "adamw" and weight_decay > 0:
    chain.append(optax.add_decayed_weights(weight_decay))
  chain.append(base)
  return optax.chain(*chain)


def needs_value_fn(optim_config) -> bool:
  """True when the optimizer's update needs ``value``, ``grad`` and ``value_fn`` (L-BFGS)."""
  return optim_config.get("name") == "lbfgs"


def _lbfgs(optim_config) -> optax.GradientTransformationExtraArgs:
  lr = _number(optim_config, "lr", strict=True)
  if "memory_size" not in optim_config:
    raise ConfigError("config.optim.memory_size is missing (L-BFGS keeps that many past updates)")
  memory = checks.number(optim_config["memory_size"], "optim.memory_size", minimum=1,
                         integer=True)
  if _get(optim_config, "schedule") != "constant":
    raise ConfigError(f"config.optim.schedule: lbfgs takes its step from a line search; use "
                      f"'constant', got {optim_config['schedule']!r}")
  if _number(optim_config, "weight_decay") > 0 or _get(optim_config, "clip_norm") is not None:
    raise ConfigError("config.optim: lbfgs takes no weight_decay or clip_norm (put an l2 term in "
                      "config.loss instead)")
  tx = descent_only(optax.lbfgs(learning_rate=lr, memory_size=memory))
  every = checks.number(optim_config.get("restart_every") or 0, "optim.restart_every", minimum=0,
                        integer=True)   # 0 = never
  return restarting(tx, every) if every else tx


# The increase over the starting value that optax's zoom line search itself accepts as an
# "approximate decrease" (its approx_dec_rtol, relative to |value|), which optax.lbfgs uses.
ASCENT_RTOL = 1e-6


def descent_only(tx: optax.GradientTransformationExtraArgs, rtol: float = ASCENT_RTOL
                 ) -> optax.GradientTransformationExtraArgs:
  """``tx`` (an optax optimizer with a line search) that never takes a step up: when the line search
  ends at a value above ``value`` (the loss at the current params) by more than ``rtol * |value|``,
  or at a non-finite one, the update is zero and ``tx``'s state starts afresh (its curvature pairs
  dropped), as scipy's L-BFGS-B restarts from the gradient after a failed line search.

  optax's zoom line search, when it finds no step with sufficient decrease in its 20 tries, returns
  the last step it tried, which can be far uphill (docs/failure_behaviour.md: a fine-tuning whose
  loss jumped by 70% in one update before this guard). A fresh start that fails again leaves the
  params where they are (the loss then stays flat, as scipy stops), never above where they were."""

  def update_fn(updates, state, params=None, *, value, **extra_args):
    new_updates, new_state = tx.update(updates, state, params, value=value, **extra_args)
    reached = optax.tree.get(new_state, "value")
    ok = reached <= value + rtol * jnp.abs(value)          # False for NaN
    fresh = tx.init(params)
    new_updates = jax.tree.map(lambda u: jnp.where(ok, u, jnp.zeros_like(u)), new_updates)
    new_state = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_state, fresh)
    return new_updates, new_state

  return optax.GradientTransformationExtraArgs(tx.init, update_fn)


def dropped_update(opt_state) -> jax.Array:
  """After an L-BFGS update (``config.optim.name = "lbfgs"``): True when :func:`descent_only`
  dropped it. A dropped update leaves optax.lbfgs's state fresh, whose line-search value is inf;
  every update it takes leaves the (finite) value it reached."""
  return jnp.isinf(optax.tree.get(opt_state, "value"))


class RestartState(NamedTuple):
  count: jax.Array      # updates made so far
  inner: Any            # the wrapped optimizer's state


def restarting(tx: optax.GradientTransformationExtraArgs, every: int
               ) -> optax.GradientTransformationExtraArgs:
  """``tx`` whose state starts afresh (``tx.init`` at the current params) before every ``every``-th
  update: L-BFGS that forgets its curvature pairs every ``every`` iterations, as a loop of
  ``scipy.optimize.minimize(method="L-BFGS-B", options={"maxiter": every})`` calls does (how
  GLocal-K's authors train)."""

  def init_fn(params):
    return RestartState(count=jnp.zeros((), jnp.int32), inner=tx.init(params))

  def update_fn(updates, state, params=None, **extra_args):
    fresh = (state.count > 0) & (state.count % every == 0)
    inner = jax.lax.cond(fresh, lambda s: tx.init(params), lambda s: s, state.inner)
    updates, inner = tx.update(updates, inner, params, **extra_args)
    return updates, RestartState(count=state.count + 1, inner=inner)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
