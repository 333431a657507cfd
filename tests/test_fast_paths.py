"""The step's fast paths give the plain path's results (within float tolerance): the masked loss
computed at the batch's entries only (also with a non-linear output layer and with dense
re-feeding), the bias gradient computed as a matmul, and the NaN guard as a ``lax.cond``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxae import losses
from jaxae.errors import ConfigError
from jaxae.models import build_model
from jaxae.models.layers import add_bias
from jaxae.training import mesh as mesh_lib
from jaxae.training import step as step_lib
from tests.test_step import first_batch, host, make_engine, tiny_config, tiny_interactions


def test_add_bias_gradient_equals_the_plain_sum():
  k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
  y = jax.random.normal(k1, (37, 11))
  b = jax.random.normal(k2, (11,))
  w = jax.random.normal(k3, (37, 11))
  fast = jax.grad(lambda y, b: jnp.sum(w * jnp.tanh(add_bias(y, b))), (0, 1))(y, b)
  plain = jax.grad(lambda y, b: jnp.sum(w * jnp.tanh(y + b)), (0, 1))(y, b)
  for a, c in zip(fast, plain):
    np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)
  # bfloat16 compute: the bias gradient keeps the bias dtype, accumulated in float32.
  g = jax.grad(lambda b: jnp.sum(add_bias(y.astype(jnp.bfloat16), b).astype(jnp.float32)))(
      b.astype(jnp.bfloat16))
  assert g.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(g, np.float32), np.full(11, 37.0), rtol=1e-2)


def test_kernel_rows_equals_take_value_and_gradient():
  k1, k2 = jax.random.split(jax.random.PRNGKey(1))
  kernel = jax.random.normal(k1, (9, 4))
  idx = jnp.array([3, 0, 3, 8, 3, 5])                 # repeated items add up in the gradient
  w = jax.random.normal(k2, (6, 4))
  np.testing.assert_array_equal(losses.kernel_rows(kernel, idx), jnp.take(kernel, idx, axis=0))
  fast = jax.grad(lambda k: jnp.sum(w * jnp.sin(losses.kernel_rows(k, idx))))(kernel)
  plain = jax.grad(lambda k: jnp.sum(w * jnp.sin(jnp.take(k, idx, axis=0))))(kernel)
  np.testing.assert_allclose(fast, plain, rtol=1e-6, atol=1e-7)
  untouched = np.setdiff1d(np.arange(9), np.asarray(idx))
  assert (np.asarray(fast)[untouched] == 0).all()          # -0.0 == 0: no item is pushed
  # Under vmap (one call per shard of a SparseBatch) as the losses call it.
  both = jax.vmap(losses.kernel_rows, in_axes=(None, 0))(kernel, jnp.stack([idx, idx[::-1]]))
  np.testing.assert_array_equal(both[1], jnp.take(kernel, idx[::-1], axis=0))


def test_entry_path_step_copies_no_item_sized_buffer():
  """The sparse first layer's and the entry-path output layer's gradients are scatter-adds into
  [n, d] buffers of their own: the compiled step copies no array of that shape (it did when both
  started from the same zero constant, two copies a step; losses.kernel_rows)."""
  n, d = 300, 16
  inter = tiny_interactions(n_rows=24, n_cols=n, seed=2)
  cfg = tiny_config(layers=(d, 8), optim="momentum", lr=0.05, batch_size=8)
  cfg.model.sparse_input = True
  model, mesh, state, step = make_engine(cfg, inter)
  assert step_lib.entry_output(model, cfg)
  assert jax.tree.map(jnp.shape, state.params)["decoder_1"]["kernel"] == (n, d)   # item-major
  batch = mesh_lib.put_global(first_batch(inter, 8), mesh_lib.batch_sharding(mesh))
  text = step.lower(state, batch).compile().as_text()
  copies = [line.strip()[:160] for line in text.splitlines()
            if " copy(" in line and f"f32[{n},{d}]" in line.split(" copy(")[0]]
  assert not copies, copies


def _config(last_activation: bool, refeed_steps: int, impl: str | None):
  c = tiny_config(layers=(6, 5), optim="momentum", lr=0.05, refeed_steps=refeed_steps,
                  batch_size=8)
  c.model.last_activation = last_activation
  c.model.sparse_input = True
  if impl is not None:
    c.loss_impl = ml_collections.ConfigDict({"full_mse": impl})
  return c


@pytest.mark.parametrize("last_activation", [False, True])
@pytest.mark.parametrize("refeed_steps", [0, 1])
def test_masked_loss_at_the_entries_equals_the_dense_path(last_activation, refeed_steps):
  inter = tiny_interactions(n_rows=20, n_cols=12, seed=3)
  fast_cfg = _config(last_activation, refeed_steps, None)
  dense_cfg = _config(last_activation, refeed_steps, "dense")
  model = build_model(fast_cfg.model, 12, 20)
  assert step_lib.entry_output(model, fast_cfg)          # the default takes the entry path
  assert not step_lib.entry_output(model, dense_cfg)
  batch = first_batch(inter, 8)
  outs = []
  for cfg in (fast_cfg, dense_cfg):
    _, mesh, state, step = make_engine(cfg, inter)
    new_state, metrics = step(state, mesh_lib.put_global(batch, mesh_lib.batch_sharding(mesh)))
    outs.append((host(new_state.params), {k: float(v) for k, v in metrics.items()}))
  (p_fast, m_fast), (p_dense, m_dense) = outs
  assert m_fast["is_finite"] and m_dense["is_finite"]
  for key in ("loss", "grad_norm") + (("refeed_loss",) if refeed_steps else ()):
    np.testing.assert_allclose(m_fast[key], m_dense[key], rtol=2e-5, err_msg=key)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), p_fast,
               p_dense)


def test_entry_path_only_for_masked_terms():
  model = build_model(_config(True, 0, None).model, 12, 20)
  for loss, expected in (({"masked_mse": 1.0}, True), ({"masked_mse": 1.0, "l2": 0.1}, True),
                         ({"masked_mse": 1.0, "mse": 1.0}, False), ({"mse": 1.0}, False)):
    c = _config(True, 0, None)
    c.loss = ml_collections.ConfigDict(loss)
    assert step_lib.entry_output(model, c) is expected, loss
  # The Gram trick for the full MSE needs a linear last layer: asked for explicitly, it refuses.
  c = _config(True, 0, "gram")
  c.loss = ml_collections.ConfigDict({"mse": 1.0})
  with pytest.raises(ConfigError):
    step_lib.entry_output(model, c)


def test_refused_update_leaves_state_unchanged_and_finite_one_equals_plain():
  inter = tiny_interactions(n_rows=16, n_cols=10, seed=5)
  config = tiny_config(optim="adam", lr=1e-2, batch_size=8)
  _, mesh, state, step = make_engine(config, inter)
  before = host(state.params)
  opt_before = host(state.opt_state)
  bad = first_batch(inter, 8)
  bad = bad._replace(vals=np.where(np.arange(bad.vals.shape[1]) == 0, np.nan, bad.vals
                                   ).astype(np.float32))
  state, metrics = step(state, mesh_lib.put_global(bad, mesh_lib.batch_sharding(mesh)))
  assert not bool(metrics["is_finite"])
  jax.tree.map(np.testing.assert_array_equal, host(state.params), before)
  jax.tree.map(np.testing.assert_array_equal, host(state.opt_state), opt_before)
  good = first_batch(inter, 8)
  state, metrics = step(state, mesh_lib.put_global(good, mesh_lib.batch_sharding(mesh)))
  assert bool(metrics["is_finite"])
  # The guarded update is exactly the plain optax update.
  model = build_model(config.model, 10, 16)
  _, _, ref_state, _ = make_engine(config, inter)
  grads = jax.grad(lambda p: step_lib.make_loss_fn(model, config.loss)(
      p, *_dense_args(good, 10))[0])(ref_state.params)
  ref = ref_state.apply_gradients(grads)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               host(state.params), host(ref.params))


def test_refeed_refuses_an_update_whose_dense_output_is_not_finite():
  """On the entries path the loss reads the output at the batch's entries only; the dense output
  re-feeding reads must be finite too, or the update is refused (the state stays bit-identical)."""
  n_cols = 60
  inter = tiny_interactions(n_rows=20, n_cols=n_cols, seed=3)
  config = _config(False, 1, None)
  model, mesh, state, step = make_engine(config, inter)
  assert step_lib.entry_output(model, config)
  batch = first_batch(inter, 8)
  seen = set(np.asarray(batch.cols)[np.asarray(batch.vals) != 0].tolist())
  col = min(set(range(n_cols)) - seen)     # a column none of the batch's entries is in

  def poison(path, leaf):    # the output layer's bias at that column: +inf
    last = path[-1]
    if getattr(last, "key", None) == "bias" and leaf.shape == (n_cols,):
      return leaf.at[col].set(jnp.inf)
    return leaf
  params = jax.tree_util.tree_map_with_path(poison, state.params)
  assert sum(int(np.isinf(np.asarray(x)).sum()) for x in jax.tree.leaves(params)) == 1
  state = state.replace(params=params)
  before, opt_before = host(state.params), host(state.opt_state)
  state, metrics = step(state, mesh_lib.put_global(batch, mesh_lib.batch_sharding(mesh)))
  assert np.isfinite(float(metrics["loss"])) and np.isfinite(float(metrics["grad_norm"]))
  assert not bool(metrics["is_finite"])
  jax.tree.map(np.testing.assert_array_equal, host(state.params), before)
  jax.tree.map(np.testing.assert_array_equal, host(state.opt_state), opt_before)


def _dense_args(batch, n_cols):
  """``(x, target, observed, row_mask, rows, key, step)`` of the plain dense masked-loss path."""
  from jaxae.data.sparse import densify, observed_mask  # pylint: disable=import-outside-toplevel
  b = jax.device_put(batch)
  target = densify(b, n_cols)
  return (target, target, observed_mask(b, n_cols), b.mask, b.rows,
          jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(0), 0), 0), 0)
