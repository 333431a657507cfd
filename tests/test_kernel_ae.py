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
from jaxae.training import logging as log_lib
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
    (dict(memory_size=0), r"config.optim.memory_size: expected an integer >= 1, got 0"),
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


def test_lbfgs_restart_every_equals_fresh_optimizer_each_chunk():
  """restart_every=k: the same updates as a fresh optax.lbfgs for each chunk of k iterations (a
  loop of scipy L-BFGS-B calls with maxiter=k, as GLocal-K's authors train)."""
  def f(p):
    return jnp.sum((p["x"] - jnp.arange(5.0)) ** 2 * jnp.arange(1.0, 6.0)) + 0.01 * jnp.sum(
        p["x"] ** 4)

  c = _lbfgs_config(memory_size=4, restart_every=3)
  tx = optim.make_optimizer(c.optim, 1, 1)
  p, st = {"x": jnp.zeros(5)}, None
  q = dict(p)
  st = tx.init(p)
  ref = optax.lbfgs(memory_size=4)
  for i in range(8):
    v, g = jax.value_and_grad(f)(p)
    u, st = tx.update(g, st, p, value=v, grad=g, value_fn=f)
    p = optax.apply_updates(p, u)
    if i % 3 == 0:
      rst = ref.init(q)
    v, g = jax.value_and_grad(f)(q)
    u, rst = ref.update(g, rst, q, value=v, grad=g, value_fn=f)
    q = optax.apply_updates(q, u)
    np.testing.assert_allclose(np.asarray(p["x"]), np.asarray(q["x"]), rtol=1e-6, atol=1e-7)
  plain = optax.lbfgs(memory_size=4)          # ... and restarting changes the path
  r, rs = {"x": jnp.zeros(5)}, None
  rs = plain.init(r)
  for _ in range(8):
    v, g = jax.value_and_grad(f)(r)
    u, rs = plain.update(g, rs, r, value=v, grad=g, value_fn=f)
    r = optax.apply_updates(r, u)
  assert np.abs(np.asarray(r["x"]) - np.asarray(p["x"])).max() > 1e-6


def test_lbfgs_never_steps_up():
  """A line search that finds no decrease (here: every point but the start costs 100 more) makes
  optax.lbfgs step uphill (its last try); the engine's L-BFGS keeps the params and starts afresh,
  with and without restarts, and takes the same steps as optax.lbfgs where the search succeeds."""
  p0 = {"a": jnp.array([1.0, -2.0, 3.0])}

  def cliff(q):
    return jnp.sum(q["a"] ** 2) + 100.0 * jnp.any(q["a"] != p0["a"])

  def step(tx, f, p, st):
    v, g = jax.value_and_grad(f)(p)
    u, st = tx.update(g, st, p, value=v, grad=g, value_fn=f)
    return optax.apply_updates(p, u), st

  plain = optax.lbfgs(memory_size=4)
  up, _ = step(plain, cliff, p0, plain.init(p0))
  assert float(cliff(up)) > float(cliff(p0)) + 50                     # optax alone steps up
  for restart_every in (0, 3):
    tx = optim.make_optimizer(_lbfgs_config(memory_size=4, restart_every=restart_every).optim, 1, 1)
    p, st = step(tx, cliff, p0, tx.init(p0))
    np.testing.assert_array_equal(np.asarray(p["a"]), np.asarray(p0["a"]))
    assert bool(optim.dropped_update(st))                                # ... and says so
    fresh = tx.init(p0)
    for a, b in zip(jax.tree.leaves(st), jax.tree.leaves(fresh)):   # the memory is dropped
      if np.ndim(a) > 0:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

  bowl = lambda q: jnp.sum((q["a"] - jnp.arange(3.0)) ** 2 * jnp.arange(1.0, 4.0))  # noqa: E731
  tx = optim.make_optimizer(_lbfgs_config(memory_size=4).optim, 1, 1)
  p, st, q, rst = p0, tx.init(p0), p0, plain.init(p0)
  for _ in range(4):
    p, st = step(tx, bowl, p, st)
    q, rst = step(plain, bowl, q, rst)
    np.testing.assert_array_equal(np.asarray(p["a"]), np.asarray(q["a"]))
    assert not bool(optim.dropped_update(st))
  assert float(bowl(p)) < 1e-3 * float(bowl(p0))                 # and they make progress


def _train_rows(workdir):
  return [r for r in log_lib.read_metrics(workdir / "metrics.jsonl") if r.get("split") == "train"]


def test_lbfgs_dropped_is_logged_and_warned(tmp_path, capsys, monkeypatch):
  """Every L-BFGS step logs lbfgs_dropped (0 while the line search descends); a dropped update
  (forced here: optim.dropped_update, tested on real line searches above, always True) logs 1 and
  warns once."""
  c = _lbfgs_config()
  c.train.epochs, c.train.log_every_steps = 3, 1
  loop.train_and_evaluate(c, tmp_path / "a", dataset=tiny_dataset())
  assert [r["lbfgs_dropped"] for r in _train_rows(tmp_path / "a")] == [0.0, 0.0, 0.0]
  assert "L-BFGS" not in capsys.readouterr().err
  monkeypatch.setattr(optim, "dropped_update", lambda opt_state: jnp.asarray(True))
  loop.train_and_evaluate(c, tmp_path / "b", dataset=tiny_dataset())
  assert [r["lbfgs_dropped"] for r in _train_rows(tmp_path / "b")] == [1.0, 1.0, 1.0]
  err = capsys.readouterr().err
  assert err.count("L-BFGS: a line search ended above the current loss by step 1 (epoch 1)") == 1


@pytest.mark.parametrize("edit,message", [
    (dict(restart_every=-1), r"config.optim.restart_every: expected an integer >= 0, got -1"),
    (dict(restart_every=2.5), r"config.optim.restart_every: expected an integer >= 0, got 2.5"),
    (dict(name="adam", restart_every=5), r"restart_every is L-BFGS's; optimizer 'adam' has none"),
])
def test_lbfgs_restart_every_errors(edit, message):
  c = _lbfgs_config(**edit)
  if edit.get("name") == "adam":
    del c.optim["memory_size"]
  with pytest.raises(ConfigError, match=message):
    optim.make_optimizer(c.optim, 1, 1)


@pytest.mark.parametrize("weight_init", ["glorot", "small"])
def test_weight_init(weight_init):
  """"glorot": the authors' TensorFlow default (Glorot-uniform kernel, bias uniform in
  +-sqrt(3 / out)); "small": kernel N(0, 1e-3), zero bias. u, v are small in both."""
  model = build_model(ConfigDict(dict(KAE, weight_init=weight_init)), 40, 4)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, 40)), train=False)["params"]
  w, b = np.asarray(params["layer_0"]["kernel"]), np.asarray(params["layer_0"]["bias"])
  if weight_init == "glorot":
    limit = np.sqrt(6 / (40 + 7))
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.8 * limit
    assert np.abs(w).mean() == pytest.approx(limit / 2, rel=0.15)
    assert np.abs(b).max() <= np.sqrt(3 / 7) and np.abs(b).max() > 0.1
  else:
    assert np.abs(w).max() < 3e-3 and not b.any()
  assert np.abs(np.asarray(params["layer_0"]["u"])).max() < 3e-3
  with pytest.raises(ConfigError, match=r"config.model.weight_init: unknown value 'he'"):
    build_model(ConfigDict(dict(KAE, weight_init="he")), 40, 4)
