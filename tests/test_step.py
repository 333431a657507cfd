"""The compiled train step: learning, dense re-feeding vs a hand-written reference, determinism,
and the optimizers / schedules it is built with."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jaxae.data.batching import BatchIterator
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError
from jaxae.models import build_model
from jaxae.training import mesh as mesh_lib
from jaxae.training import optim as optim_lib
from jaxae.training import state as state_lib
from jaxae.training import step as step_lib


# --------------------------------------------------------------------------- shared helpers
def tiny_interactions(n_rows: int = 24, n_cols: int = 10, density: float = 0.4,
                      seed: int = 0) -> Interactions:
  """A small explicit-rating matrix (ratings 1..5), every row with at least one rating."""
  rng = np.random.default_rng(seed)
  dense = (rng.random((n_rows, n_cols)) < density)
  dense[np.arange(n_rows), rng.integers(0, n_cols, n_rows)] = True
  r, c = np.nonzero(dense)
  v = rng.integers(1, 6, len(r)).astype(np.float32)
  return Interactions.from_coo(r, c, v, row_ids=np.arange(n_rows), col_ids=np.arange(n_cols))


def tiny_config(*, layers=(6,), code_dropout: float = 0.0, optim: str = "adam", lr: float = 1e-2,
                refeed_steps: int = 0, refeed_noise: float = 0.0, batch_size: int = 8,
                epochs: int = 2, seed: int = 0) -> ml_collections.ConfigDict:
  """A complete config (every section of the contract) for a tiny Deep AE."""
  c = ml_collections.ConfigDict()
  c.seed = seed
  c.data = ml_collections.ConfigDict(dict(name="tiny", path=None))
  c.model = ml_collections.ConfigDict(dict(
      name="deep_ae", layers=list(layers), activation="selu", tied=False,
      code_dropout=code_dropout, last_activation=False, sparse_input=False, dtype="float32"))
  c.loss = ml_collections.ConfigDict({"masked_mse": 1.0})
  c.loss_anneal = ml_collections.ConfigDict(dict(total_steps=0, beta_cap=1.0))
  c.optim = ml_collections.ConfigDict(dict(
      name=optim, lr=lr, momentum=0.9, weight_decay=0.0, clip_norm=None, schedule="constant",
      milestones=[], decay_factor=0.5, warmup_epochs=0))
  c.train = ml_collections.ConfigDict(dict(
      batch_size=batch_size, epochs=epochs, refeed_steps=refeed_steps, refeed_noise=refeed_noise,
      log_every_steps=2, eval_every_epochs=1, checkpoint_every_epochs=1, keep_checkpoints=1,
      prefetch=1, shuffle=True))
  c.eval = ml_collections.ConfigDict(dict(evaluators=[], metric="loss", metric_mode="min",
                                          batch_size=8))
  c.mesh = ml_collections.ConfigDict(dict(data=-1, model=1))
  return c


def make_engine(config, inter: Interactions, mesh=None):
  """(model, mesh, state, jitted step) for ``config`` on ``inter``."""
  mesh = mesh or mesh_lib.make_mesh(config.mesh)
  model = build_model(config.model, inter.shape[1], inter.shape[0])
  tx = optim_lib.make_optimizer(config.optim, 1, config.train.epochs,
                                1 + config.train.refeed_steps)
  state = jax.jit(lambda: state_lib.create_train_state(model, tx, inter.shape[1], False,
                                                       config.seed),
                  out_shardings=mesh_lib.replicated(mesh))()
  step = step_lib.make_train_step(model, config, inter.shape[1], mesh)
  return model, mesh, state, step


def first_batch(inter: Interactions, batch_size: int, num_shards: int = 1, seed: int = 0):
  return next(iter(BatchIterator(inter, batch_size, num_shards=num_shards, seed=seed,
                                 nnz_buckets=1).epoch(0)))


def host(tree):
  return jax.tree.map(lambda x: np.array(x), jax.device_get(tree))


# --------------------------------------------------------------------------- the step
def test_step_reduces_the_loss():
  inter = tiny_interactions()
  config = tiny_config(lr=3e-2)
  _, mesh, state, step = make_engine(config, inter)
  batch = mesh_lib.put_global(first_batch(inter, 8), mesh_lib.batch_sharding(mesh))
  losses = []
  for _ in range(15):
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  assert int(state.step) == 15
  assert np.isfinite(losses).all()
  assert losses[-1] < 0.5 * losses[0], losses


def _ref_forward(p, x):
  """Deep AE with one hidden selu layer and a linear output, written out by hand."""
  h = jax.nn.selu(x @ p["encoder_0"]["kernel"] + p["encoder_0"]["bias"])
  return h @ p["decoder_0"]["kernel"].T + p["decoder_0"]["bias"]      # item-major output kernel


def _ref_masked_mse(p, x, target, row_mask):
  """DeepRecommender's MSEloss / num_ratings: mask = target != 0, real rows only."""
  w = (target != 0).astype(jnp.float32) * row_mask[:, None]
  return jnp.sum(w * (_ref_forward(p, x) - target) ** 2) / jnp.sum(w)


@pytest.mark.parametrize("refeed_steps", [1, 2])
def test_refeed_step_equals_hand_written_two_pass_reference(refeed_steps):
  inter = tiny_interactions(n_rows=3, n_cols=7, seed=1)
  lr, momentum = 0.05, 0.9
  config = tiny_config(layers=(4,), optim="momentum", lr=lr, refeed_steps=refeed_steps,
                       batch_size=4)
  model, mesh, state, step = make_engine(config, inter)
  host_batch = first_batch(inter, 4)        # 3 real rows + 1 padding row
  assert host_batch.mask.tolist() == [1, 1, 1, 0]
  params0 = host(state.params)

  # The reference: SGD with heavy-ball momentum, one normal pass then the re-fed passes.
  x = np.zeros((4, 7), np.float32)
  real = host_batch.mask > 0
  x[real] = inter.matrix[host_batch.rows[real]].toarray()
  row_mask = jnp.asarray(host_batch.mask)
  # The module computes what the reference says (so the reference tests the step, not the model).
  np.testing.assert_allclose(model.apply({"params": params0}, x, train=False)["recon"],
                             _ref_forward(params0, x), rtol=1e-5, atol=1e-6)
  p = params0
  grad = jax.grad(_ref_masked_mse)(p, x, x, row_mask)
  velocity = grad
  p = jax.tree.map(lambda w, v: w - lr * v, p, velocity)
  previous = _ref_forward(params0, x)          # the first pass's output, before its update
  for _ in range(refeed_steps):
    refed = jax.lax.stop_gradient(previous)
    previous = _ref_forward(p, refed)
    grad = jax.grad(_ref_masked_mse)(p, refed, refed, row_mask)
    velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grad)
    p = jax.tree.map(lambda w, v: w - lr * v, p, velocity)

  new_state, metrics = step(state, mesh_lib.put_global(host_batch, mesh_lib.batch_sharding(mesh)))
  got = host(new_state.params)
  for path, want in jax.tree_util.tree_flatten_with_path(p)[0]:
    have = got
    for k in path:
      have = have[k.key]
    np.testing.assert_allclose(have, want, rtol=2e-5, atol=1e-6, err_msg=str(path))
  np.testing.assert_allclose(float(metrics["loss"]), _ref_masked_mse(params0, x, x, row_mask),
                             rtol=1e-5)
  assert "refeed_loss" in metrics
  # The re-fed updates really happened: one normal update alone lands elsewhere.
  one = jax.tree.map(lambda w, g: w - lr * g, params0,
                     jax.grad(_ref_masked_mse)(params0, x, x, row_mask))
  assert not np.allclose(got["encoder_0"]["kernel"], one["encoder_0"]["kernel"], atol=1e-6)


def test_refeed_noise_changes_the_update():
  inter = tiny_interactions(n_rows=8, n_cols=7, seed=2)
  outs = []
  for noise in (0.0, 0.5):
    config = tiny_config(layers=(4,), optim="sgd", lr=0.1, refeed_steps=1, refeed_noise=noise,
                         batch_size=8)
    _, mesh, state, step = make_engine(config, inter)
    state, _ = step(state, mesh_lib.put_global(first_batch(inter, 8),
                                               mesh_lib.batch_sharding(mesh)))
    outs.append(host(state.params)["encoder_0"]["kernel"])
  assert not np.allclose(outs[0], outs[1])


def _run_steps(seed: int, n: int = 3, step=None):
  """``n`` steps from the seed's initial state (dropout, re-feed noise: every RNG is used)."""
  inter = tiny_interactions(seed=3)
  config = tiny_config(code_dropout=0.3, refeed_steps=1, refeed_noise=0.1, seed=seed)
  _, mesh, state, own_step = make_engine(config, inter)
  step = step or own_step
  it = BatchIterator(inter, 8, num_shards=1, seed=0, nnz_buckets=1)   # same data order, one shape
  for host_batch, _ in zip(it.epoch(0), range(n)):
    state, _ = step(state, mesh_lib.put_global(host_batch, mesh_lib.batch_sharding(mesh)))
  return host(state.params), step


def test_same_seed_gives_bit_identical_params():
  a, step_a = _run_steps(0)
  b, _ = _run_steps(0)                      # built and compiled again from scratch
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.array_equal(x, y)
  c, _ = _run_steps(1, step=step_a)         # another seed (the compiled step does not depend on it)
  assert not all(np.array_equal(x, z) for x, z in zip(jax.tree.leaves(a), jax.tree.leaves(c)))


def test_dropout_keys_depend_on_the_step():
  """Two steps on the same batch from the same params use different dropout masks."""
  inter = tiny_interactions(seed=4)
  config = tiny_config(code_dropout=0.5, optim="sgd", lr=1e-12)
  _, mesh, state, step = make_engine(config, inter)
  batch = mesh_lib.put_global(first_batch(inter, 8), mesh_lib.batch_sharding(mesh))
  state, m1 = step(state, batch)
  state, m2 = step(state, batch)        # lr ~0: same params, only the step (dropout key) differs
  assert float(m1["loss"]) != float(m2["loss"])


def test_eval_fns_score_and_embed():
  inter = tiny_interactions()
  config = tiny_config()
  model, mesh, state, _ = make_engine(config, inter)
  score_fn, embed_fn = step_lib.make_eval_fns(model, mesh)
  b = first_batch(inter, 8)
  scores = score_fn(state.params, mesh_lib.put_global(b, mesh_lib.batch_sharding(mesh)))
  x = inter.matrix[b.rows].toarray()
  want = model.apply({"params": state.params}, x, train=False)
  np.testing.assert_allclose(np.asarray(scores), want["recon"], rtol=1e-5, atol=1e-6)
  codes = embed_fn(state.params, mesh_lib.put_global(b, mesh_lib.batch_sharding(mesh)))
  assert codes.shape == (8, 6)
  np.testing.assert_allclose(np.asarray(codes), want["code"], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- optimizers
def _optim(**kw) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict({**tiny_config().optim.to_dict(), **kw})


@pytest.mark.parametrize("name", [o for o in optim_lib.OPTIMIZERS if o != "lbfgs"])
def test_every_optimizer_makes_finite_updates(name):   # lbfgs: tests/test_kernel_ae.py
  tx = optim_lib.make_optimizer(_optim(name=name, weight_decay=0.01), 10, 2)
  p = {"w": jnp.ones((3,))}
  updates, _ = tx.update({"w": jnp.full((3,), 0.5)}, tx.init(p), p)
  assert np.isfinite(np.asarray(updates["w"])).all() and np.any(np.asarray(updates["w"]) != 0)


def test_unknown_optimizer_and_schedule_name_the_key_and_known_values():
  with pytest.raises(ConfigError, match=r"config\.optim\.name.*'bfgs'.*adam.*rmsprop.*lbfgs"):
    optim_lib.make_optimizer(_optim(name="bfgs"), 10, 2)
  with pytest.raises(ConfigError, match=r"config\.optim\.schedule.*'step'.*multistep"):
    optim_lib.make_optimizer(_optim(schedule="step"), 10, 2)


def test_multistep_schedule_decays_at_epoch_milestones():
  # 5 steps per epoch, 2 updates per step (one re-feed): an epoch is 10 updates.
  sched = optim_lib.make_schedule(_optim(lr=1.0, schedule="multistep", milestones=[2, 3],
                                         decay_factor=0.5), 5, 4, updates_per_step=2)
  assert [float(sched(u)) for u in (0, 19, 20, 29, 30, 39)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_warmup_cosine_schedule():
  sched = optim_lib.make_schedule(_optim(lr=1.0, schedule="warmup_cosine", warmup_epochs=1),
                                  10, 2)
  assert float(sched(0)) == 0.0
  assert float(sched(10)) == pytest.approx(1.0)
  assert float(sched(20)) == pytest.approx(0.0, abs=1e-6)
  cos = optim_lib.make_schedule(_optim(lr=2.0, schedule="cosine"), 10, 2)
  assert float(cos(10)) == pytest.approx(1.0)      # half way: lr * (1 + cos(pi / 2)) / 2


def test_coupled_weight_decay_and_clipping():
  p = {"w": jnp.asarray([1.0, -2.0])}
  g = {"w": jnp.asarray([3.0, 4.0])}                 # global norm 5
  tx = optim_lib.make_optimizer(_optim(name="sgd", lr=0.1, weight_decay=0.5), 1, 1)
  u, _ = tx.update(g, tx.init(p), p)
  np.testing.assert_allclose(u["w"], [-0.1 * (3.0 + 0.5), -0.1 * (4.0 - 1.0)], rtol=1e-6)
  tx = optim_lib.make_optimizer(_optim(name="sgd", lr=1.0, clip_norm=1.0), 1, 1)
  u, _ = tx.update(g, tx.init(p), p)
  np.testing.assert_allclose(u["w"], [-0.6, -0.8], rtol=1e-6)
  # adamw decays decoupled: with a zero gradient the update is -lr * wd * param.
  tx = optim_lib.make_optimizer(_optim(name="adamw", lr=0.1, weight_decay=0.5), 1, 1)
  u, _ = tx.update({"w": jnp.zeros(2)}, tx.init(p), p)
  np.testing.assert_allclose(u["w"], [-0.05, 0.1], rtol=1e-6)
  assert isinstance(tx, optax.GradientTransformation)
