"""The compiled train step (with dense re-feeding) and the compiled scoring functions.

One ``jax.jit`` function per run does a whole step on the mesh: densify the sparse batch on the
device, forward, loss, gradients, optax update, then ``refeed_steps`` dense re-feeding updates
(Kuchaiev & Ginsburg 2017, section 3.2). Batches are split over the mesh's "data" axis and the
state is replicated, so XLA inserts the gradient all-reduce; nothing leaves the devices (metrics
come back as device scalars).

Dense re-feeding follows NVIDIA DeepRecommender's ``run.py`` (``aug_step``): after the normal
update, for each re-feed pass the previous pass's output ``f(x)`` is detached and used as BOTH the
input and the target of a new forward pass; its loss is the same loss as the normal pass, with the
observed mask recomputed from the re-fed target as ``MSEloss`` does (``mask = targets != 0``: a
dense output is "observed" everywhere it is nonzero). Each re-feed pass makes its own optimizer
update. The optional noise is Gaussian with stddev ``refeed_noise`` added to the re-fed input
(which, as in their code, is also the target); DeepRecommender used dropout noise (``noise_prob``)
there instead.

L-BFGS (``config.optim.name = "lbfgs"``, full-batch): its update also gets the loss value and the
loss of this batch as a function of the params (same dropout key), which its line search evaluates
inside the same jit; it takes no re-feeding and no model axis.

Large catalogs: the state may be split over the mesh's "model" axis (``state_sharding``, from
``mesh.state_shardings``); dense [B, n] targets and outputs are then constrained to (data, model)
and XLA's SPMD partitioner does the rest. With ``config.loss_impl.full_mse`` resolving to "gram"
(``losses.full_mse_impl``) the normal pass never builds the dense target or output: the loss comes
from the last layer's input, kernel and bias and the sparse batch (re-fed passes stay dense); with
"entries" the output is dense but the target is not (every term reads the output at the batch's
entries and row sums over it).

NaN / Inf guard: every update is applied only when its loss and gradient norm are finite (with
re-feeding, also the pass's dense output, which re-feeding reads); otherwise that update is
refused inside the jit (a ``lax.cond`` keeps the previous params and optimizer state), so params
never become non-finite. The step returns ``metrics["is_finite"]`` (a device bool: every pass of
the step was finite); the loop accumulates it on the device and reads it only at its
periodic logging sync, where a False stops training (no per-step host sync).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from jaxae import losses, models
from jaxae.data.sparse import SparseBatch, densify, observed_mask
from jaxae.errors import ConfigError
from jaxae.training import mesh as mesh_lib
from jaxae.training import optim as optim_lib
from jaxae.training.state import TrainState

# Per-pass key: fold_in(fold_in(state.rng, state.step), pass); pass 0 is the normal pass.
_NOISE_STREAM = 1_000_003


def _model_input(batch: SparseBatch, dense: jax.Array, sparse_input: bool):
  return batch if sparse_input else dense


def _if_finite(ok: jax.Array, new: TrainState, old: TrainState) -> TrainState:
  """``new`` where ``ok`` (a device bool) is True, else ``old`` (a refused update, in the jit)."""
  return jax.tree.map(lambda n, o: jnp.where(ok, n, o), new, old)


def _apply_if_finite(ok: jax.Array, state: TrainState, grads, **extra_args) -> TrainState:
  """``state.apply_gradients(grads, **extra_args)`` when ``ok`` (a device bool), else ``state``
  unchanged (``extra_args``: L-BFGS's ``value``, ``grad``, ``value_fn``).

  The same result as :func:`_if_finite` over the applied state, but as a ``lax.cond``: XLA then
  updates the donated params and optimizer state in place, where the ``jnp.where`` form makes it
  copy the optimizer state (and read it twice) on every update (2 copies of the big kernels' momentum
  per step for SGD, 4 for Adam, in the compiled step's HLO).
  """
  return jax.lax.cond(ok, lambda s, g: s.apply_gradients(g, **extra_args), lambda s, g: s,
                      state, grads)


def _finite(loss: jax.Array, grad_norm: jax.Array, output: jax.Array | None = None) -> jax.Array:
  """True when the loss and the global gradient norm are finite (a NaN/Inf gradient entry makes
  the norm NaN/Inf), and, given a pass's dense ``output`` (re-feeding), that output too.

  Re-feeding reads the output as the next pass's input and target, while the entries-path loss
  reads it at the batch's entries only, so it is checked for every pass of a re-feeding step (the
  last pass's too: one rule). The check also makes the output an input of the conditional update:
  without it XLA keeps the pre-update output layer alive for computing it later, as copies of the
  layer's kernel (two [hidden, n_items] copies per Deep AE re-feed step; docs/benchmarks.md has the
  step time with and without them)."""
  ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  return ok if output is None else ok & jnp.isfinite(jnp.sum(output))


def make_loss_fn(model, loss_config, anneal=None, mesh=None) -> Callable:
  """``loss_fn(params, x, target, observed, row_mask, rows, key, step) -> (loss, (terms, recon))``.

  ``x`` is what the model sees (dense or a SparseBatch); the model runs with ``train=True`` and its
  dropout stream seeded by ``key``; ``anneal`` is ``config.loss_anneal`` (the KL weight schedule).
  ``target`` may be the SparseBatch (Gram path, ``observed`` None). With a ``mesh`` whose model
  axis is > 1 the output is constrained to (data, model).
  """

  def loss_fn(params, x, target, observed, row_mask, rows, key, step):
    outputs = model.apply({"params": params}, x, rows=rows, train=True, rngs={"dropout": key})
    outputs = {**outputs, "recon": mesh_lib.constrain_items(outputs["recon"], mesh)}
    loss, terms = losses.compute_loss(loss_config, outputs, target, observed, row_mask, params,
                                      step, anneal=anneal)
    return loss, (terms, outputs["recon"].astype(jnp.float32))

  return loss_fn


def loss_impl(model, config) -> str:
  """"dense", "entries" or "gram": how this config's loss is computed
  (``losses.full_mse_impl``)."""
  return losses.full_mse_impl(config.get("loss_impl"), config.loss,
                              last_width=getattr(model, "last_layer_width", None),
                              batch_size=int(config.train.batch_size),
                              refeed_steps=int(config.train.refeed_steps),
                              entry_width=getattr(model, "entry_output_width", None))


def entry_output(model, config) -> bool:
  """True when the normal pass computes the output layer only at the batch's entries (the sparse
  path of :func:`loss_impl`); ``bench/flops.py`` counts FLOPs by it."""
  return loss_impl(model, config) == "gram"


def train_step_fn(model, config, n_cols: int, mesh=None
                  ) -> Callable[[TrainState, SparseBatch], Any]:
  """The uncompiled step ``(state, batch) -> (state, metrics)`` (see :func:`make_train_step`)."""
  sparse_input = bool(config.model.get("sparse_input", False))
  refeed_steps = int(config.train.refeed_steps)
  refeed_noise = float(config.train.refeed_noise)
  if refeed_steps < 0:
    raise ConfigError(f"config.train.refeed_steps must be >= 0, got {refeed_steps}")
  if refeed_noise < 0:
    raise ConfigError(f"config.train.refeed_noise must be >= 0, got {refeed_noise}")
  with_value_fn = optim_lib.needs_value_fn(config.optim)
  if with_value_fn and refeed_steps:
    raise ConfigError("config.train.refeed_steps must be 0 with optim.name='lbfgs' (its line search "
                      "needs one fixed objective per step)")
  if with_value_fn and mesh is not None and mesh_lib.model_size(mesh) > 1:
    raise ConfigError("config.mesh.model must be 1 with optim.name='lbfgs' (its memory of past "
                      "updates is not laid out for an item-sharded state)")
  impl = loss_impl(model, config)
  gram = impl == "gram"
  sparse_target = impl in ("gram", "entries")
  if gram:
    model = model.clone(last_layer_outputs=True)
  loss_fn = make_loss_fn(model, config.loss, config.get("loss_anneal"), mesh)
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def step(state: TrainState, batch: SparseBatch):
    step_key = jax.random.fold_in(state.rng, state.step)
    if sparse_target:     # no dense target: the loss reads the sparse batch
      target, observed = batch, None
      x = batch if sparse_input else mesh_lib.constrain_items(densify(batch, n_cols), mesh)
    else:
      target = mesh_lib.constrain_items(densify(batch, n_cols), mesh)
      observed = mesh_lib.constrain_items(observed_mask(batch, n_cols), mesh)
      x = _model_input(batch, target, sparse_input)
    pass_key = jax.random.fold_in(step_key, 0)
    (loss, (terms, recon)), grads = grad_fn(state.params, x, target, observed, batch.mask,
                                            batch.rows, pass_key, state.step)
    grad_norm = optax.tree.norm(grads)
    is_finite = _finite(loss, grad_norm, recon if refeed_steps else None)
    extra = {}
    if with_value_fn:     # L-BFGS: its line search evaluates this batch's loss at other params
      def value_fn(params):
        return loss_fn(params, x, target, observed, batch.mask, batch.rows, pass_key,
                       state.step)[0]
      extra = dict(value=loss, grad=grads, value_fn=value_fn)
    new_state = _apply_if_finite(is_finite, state, grads, **extra)
    metrics = {"loss": loss, "grad_norm": grad_norm}
    if with_value_fn:     # 1 where the line search ended uphill and the update was dropped
      metrics["lbfgs_dropped"] = optim_lib.dropped_update(new_state.opt_state).astype(jnp.float32)
    metrics.update({f"loss/{k}": v for k, v in terms.items()})

    if refeed_steps:
      def refeed(t, carry):
        st, previous, _, ok = carry
        key = jax.random.fold_in(step_key, t + 1)
        refed = jax.lax.stop_gradient(previous)
        if refeed_noise > 0:
          noise_key = jax.random.fold_in(key, _NOISE_STREAM)
          refed = refed + refeed_noise * jax.random.normal(noise_key, refed.shape, refed.dtype)
        refed_observed = (refed != 0).astype(jnp.float32)
        (r_loss, (_, r_recon)), r_grads = grad_fn(st.params, refed, refed, refed_observed,
                                                  batch.mask, batch.rows, key, state.step)
        r_ok = _finite(r_loss, optax.tree.norm(r_grads), r_recon)
        return _apply_if_finite(r_ok, st, r_grads), r_recon, r_loss, ok & r_ok

      new_state, _, refeed_loss, is_finite = jax.lax.fori_loop(
          0, refeed_steps, refeed, (new_state, recon, jnp.zeros((), jnp.float32), is_finite))
      metrics["refeed_loss"] = refeed_loss
    metrics["is_finite"] = is_finite

    return new_state.replace(step=state.step + 1), metrics

  return step


def make_train_step(model, config, n_cols: int, mesh, state_sharding=None
                    ) -> Callable[[TrainState, SparseBatch], Any]:
  """The jitted step ``(state, batch) -> (state, metrics)``; the state argument is donated.

  The state is placed by ``state_sharding`` (a TrainState of NamedShardings, e.g.
  ``mesh.state_shardings``; default: replicated over ``mesh``); metrics are replicated; every field
  of the batch is split over "data" on its leading axis. Dropout keys are
  ``fold_in(state.rng, state.step)`` (then the pass index), so a run is a pure function of the seed.
  """
  rep = mesh_lib.replicated(mesh)
  state_sh = rep if state_sharding is None else state_sharding
  return jax.jit(train_step_fn(model, config, n_cols, mesh),
                 in_shardings=(state_sh, mesh_lib.batch_sharding(mesh)),
                 out_shardings=(state_sh, rep), donate_argnums=0)


def _eval_forward(model, n_cols: int, sparse_input: bool) -> Callable:
  """``(params, batch) -> model outputs`` at ``train=False`` (the batch densified on the device
  unless the model takes it sparse)."""

  def forward(params, batch: SparseBatch) -> dict[str, jax.Array]:
    x = batch if sparse_input else densify(batch, n_cols)
    return model.apply({"params": params}, x, rows=batch.rows, train=False)

  return forward


def make_eval_fns(model, mesh, *, n_cols: int | None = None, sparse_input: bool = False,
                  param_sharding=None) -> tuple[Callable, Callable]:
  """Jitted ``score_fn(params, batch) -> [B, n_cols]`` ("recon") and ``embed_fn(params, batch)``
  (the code layer [B, d]), both with ``train=False``, outputs split over "data" like the batch.

  ``n_cols`` defaults to ``model.n_cols``; with ``sparse_input`` the model gets the SparseBatch,
  otherwise the batch is densified on the device first. ``param_sharding``: how the params are
  placed (default: replicated).
  """
  n_cols = int(model.n_cols if n_cols is None else n_cols)
  rep = mesh_lib.replicated(mesh) if param_sharding is None else param_sharding
  shard = mesh_lib.batch_sharding(mesh)

  forward = _eval_forward(model, n_cols, sparse_input)

  def score(params, batch):
    return forward(params, batch)["recon"].astype(jnp.float32)

  def embed(params, batch):
    return forward(params, batch)["code"].astype(jnp.float32)

  score_fn = jax.jit(score, in_shardings=(rep, shard), out_shardings=shard)
  embed_fn = jax.jit(embed, in_shardings=(rep, shard), out_shardings=shard)
  return score_fn, embed_fn


def make_head_fn(model, mesh, *, n_cols: int | None = None, sparse_input: bool = False,
                 param_sharding=None) -> Callable | None:
  """Jitted ``head_fn(params, batch) -> [B, d]``: the input of the model's output layer
  (``"score_input"``, ``train=False``; the output layer itself is not computed), split over "data"
  like the batch, for the top-N evaluator's column tiles (``config.eval.score_tile``). None when
  the model has no such head (``models.has_score_head``) or its item dimension is split over the
  mesh's "model" axis (then the evaluator scores whole blocks with ``score_fn``)."""
  if not models.has_score_head(model) or mesh_lib.model_size(mesh) > 1:
    return None
  n_cols = int(model.n_cols if n_cols is None else n_cols)
  rep = mesh_lib.replicated(mesh) if param_sharding is None else param_sharding

  forward = _eval_forward(model, n_cols, sparse_input)

  def head(params, batch):
    return forward(params, batch)["score_input"]

  return jax.jit(head, in_shardings=(rep, mesh_lib.batch_sharding(mesh)),
                 out_shardings=mesh_lib.batch_sharding(mesh))
