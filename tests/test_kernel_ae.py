"""Tests of the kernelized autoencoder (Muller et al. 2018) and of full-batch L-BFGS training: the
kernel layer against numpy, sparse = dense input, the kernel_l2 term, the L-BFGS config checks, and
the engine's L-BFGS steps against optax.lbfgs driven by hand on the same objective."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from jaxae import losses
from jaxae.errors import ConfigError
from jaxae.models import build_model, layers as L
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import loop, optim
from tests.test_loop import rated_config, tiny_dataset
from tests.test_models import to_sparse_batch

KAE = dict(name="kernel_ae", hidden=[7, 5], kernel_dim=3, activation="sigmoid")


def _params(seed=0, n=9):
  model = build_model(ConfigDict(KAE), n, 4)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, n)), train=False)["params"]
  # Spread the kernel vectors so that some connections are cut (kernel exactly 0).
  params = jax.tree.map(lambda x: x, params)
  for i, name in enumerate(sorted(params)):
    for j, v in enumerate(("u", "v")):
      params[name][v] = params[name][v] + jax.random.normal(
          jax.random.PRNGKey(10 * i + j), params[name][v].shape) * 0.6
    params[name]["kernel"] = jax.random.normal(jax.random.PRNGKey(7), params[name]["kernel"].shape)
  return model, params


def test_layer_and_model_match_numpy():
  model, params = _params()
  x = np.random.default_rng(0).integers(0, 6, (4, 9)).astype(np.float32)
  out = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False))(params, x)
  h, reg = x.astype(np.float64), 0.0
  names = sorted(params)                       # layer_0, layer_1, layer_2
  for i, name in enumerate(names):
    p = {k: np.asarray(v, np.float64) for k, v in params[name].items()}
    d2 = ((p["u"][:, None, :] - p["v"][None, :, :]) ** 2).sum(-1)
    k = np.maximum(0.0, 1.0 - d2)
    reg += 0.5 * (k ** 2).sum()
    h = h @ (p["kernel"] * k) + p["bias"]
    if i < len(names) - 1:
      h = 1 / (1 + np.exp(-h))
      code = h
  assert 0 < (k == 0).mean() < 1                  # the test exercises cut connections
  np.testing.assert_allclose(np.asarray(out["recon"]), h, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(out["code"]), code, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(float(out["kernel_l2"]), reg, rtol=1e-4)
  # The loss term is that output, whatever the batch.
  assert float(losses.kernel_l2(out, None, None, None)) == pytest.approx(reg, rel=1e-4)


def test_sparse_input_equals_dense():
  model, params = _params(1)
  x = np.random.default_rng(1).integers(0, 6, (4, 9)).astype(np.float32) * \
      (np.random.default_rng(2).random((4, 9)) < 0.4)
  dense = model.apply({"params": params}, x, train=False)["recon"]
  sparse = model.apply({"params": params}, to_sparse_batch(x, np.arange(4), 2), train=False)["recon"]
  np.testing.assert_allclose(np.asarray(sparse), np.asarray(dense), rtol=1e-5, atol=1e-6)


def test_initial_kernel_is_open():
  """The authors' init (std 1e-3 vectors): every connection starts with kernel ~ 1."""
  model = build_model(ConfigDict(KAE), 9, 4)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 9)), train=False)["params"]
  k = L.local_kernel(params["layer_0"]["u"], params["layer_0"]["v"])
  assert float(k.min()) > 0.9999


def _lbfgs_config(**optim_overrides):
  c = rated_config(epochs=6)
  c.model = ml_collections.ConfigDict(dict(KAE))
  c.loss = ml_collections.ConfigDict({"masked_mse": 1.0, "l2": 1e-3, "kernel_l2": 1e-4})
  c.optim = ml_collections.ConfigDict(dict(
      name="lbfgs", lr=1.0, memory_size=5, momentum=0.0, weight_decay=0.0, clip_norm=None,
      schedule="constant", milestones=[], decay_factor=1.0, warmup_epochs=0))
  c.optim.update(optim_overrides)
  c.train.batch_size = 24                       # the tiny dataset's 24 rows: full batch
  c.train.shuffle = False
  return c


@pytest.mark.parametrize("edit,message", [
    (dict(schedule="cosine"), r"schedule: lbfgs takes its step from a line search"),
    (dict(weight_decay=0.1), r"lbfgs takes no weight_decay or clip_norm"),
    (dict(clip_norm=1.0), r"lbfgs takes no weight_decay or clip_norm"),
    (dict(memory_size=0), r"memory_size must be a positive integer"),
])
def test_lbfgs_config_errors(edit, message):
  with pytest.raises(ConfigError, match=message):
    optim.make_optimizer(_lbfgs_config(**edit).optim, 1, 1)


def test_lbfgs_memory_size_belongs_to_lbfgs():
  c = _lbfgs_config()
  del c.optim["memory_size"]
  with pytest.raises(ConfigError, match=r"memory_size is missing"):
    optim.make_optimizer(c.optim, 1, 1)
  c = _lbfgs_config(name="adam")
  with pytest.raises(ConfigError, match=r"memory_size is L-BFGS's; optimizer 'adam' has none"):
    optim.make_optimizer(c.optim, 1, 1)


def test_lbfgs_on_mini_batches_warns(tmp_path, capsys):
  c = _lbfgs_config()
  c.train.epochs = 1
  c.train.batch_size = 8                           # 3 batches of the 24 rows
  loop.train_and_evaluate(c, tmp_path, dataset=tiny_dataset())
  err = capsys.readouterr().err
  assert "optim.name='lbfgs' with 3 batches per epoch" in err and "batch_size >= 24" in err


def test_lbfgs_refuses_refeeding(tmp_path):
  c = _lbfgs_config()
  c.train.refeed_steps = 1
  with pytest.raises(ConfigError, match=r"refeed_steps must be 0 with optim.name='lbfgs'"):
    loop.train_and_evaluate(c, tmp_path, dataset=tiny_dataset())


@pytest.mark.slow
def test_engine_lbfgs_equals_optax_lbfgs_by_hand(tmp_path):
  """Six full-batch epochs of the engine = six optax.lbfgs updates on the same objective."""
  ds = tiny_dataset(seed=4)
  c = _lbfgs_config()
  loop.train_and_evaluate(c, tmp_path, dataset=ds)
  _, got, _ = ckpt_lib.load_for_eval(tmp_path)

  x = jnp.asarray(ds.train.matrix.toarray())
  observed = (x != 0).astype(jnp.float32)
  model = build_model(c.model, x.shape[1], x.shape[0])
  from jaxae.training import state as state_lib  # pylint: disable=import-outside-toplevel
  params = state_lib.init_params(model, x.shape[1], False,
                                 jax.random.split(jax.random.PRNGKey(c.seed))[0])

  def objective(p):
    out = model.apply({"params": p}, x, train=True)
    loss, _ = losses.compute_loss(c.loss, out, x, observed, jnp.ones(x.shape[0]), p, 0)
    return loss

  tx = optax.lbfgs(learning_rate=1.0, memory_size=5)
  opt_state = tx.init(params)

  @jax.jit
  def by_hand(params, opt_state):
    value, grad = jax.value_and_grad(objective)(params)
    updates, opt_state = tx.update(grad, opt_state, params, value=value, grad=grad,
                                   value_fn=objective)
    return optax.apply_updates(params, updates), opt_state, value

  losses_seen = []
  for _ in range(6):
    params, opt_state, value = by_hand(params, opt_state)
    losses_seen.append(float(value))
  assert losses_seen[-1] < 0.5 * losses_seen[0]                  # L-BFGS makes progress here
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(params)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-3, atol=2e-5)
