"""The Gram-trick and entries MSE terms (``config.loss_impl.full_mse``) against the dense terms: a
hand-worked row, loss values and gradients on Deep AE outputs (untied / tied, padded item dimension,
non-linear output for entries), whole train steps, the "auto" rule and the errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxae import losses
from jaxae.data.sparse import SparseBatch, densify, observed_mask
from jaxae.errors import ConfigError
from jaxae.models import DeepAE
from jaxae.training import mesh as mesh_lib
from jaxae.training import step as step_lib
from tests.test_models import to_sparse_batch
from tests.test_step import first_batch, make_engine, tiny_config, tiny_interactions

N_COLS = 13
LOSS = {"masked_mse": 1.0, "mse": 2.0, "l2": 0.01}


def test_hand_worked_row():
  # z = [1], W = [[1, 2]], b = [0, 1] -> recon = [1, 3]; the row stores x[0] = 3 only.
  # Residuals (1 - 3, 3 - 0) = (-2, 3): mse = (4 + 9) / 2 = 6.5; masked_mse = 4 / 1 = 4.
  # "last_kernel" is W^T, one row per item.
  outputs = {"last_hidden": jnp.array([[1.0]]), "last_kernel": jnp.array([[1.0], [2.0]]),
             "last_bias": jnp.array([0.0, 1.0])}
  batch = SparseBatch(rows=jnp.array([0]), mask=jnp.array([1.0]), lengths=jnp.array([1]),
                      cols=jnp.array([[0, 0]]), vals=jnp.array([[3.0, 0.0]]),
                      seg=jnp.array([[0, 0]]))
  _, terms = losses.compute_loss({"masked_mse": 1.0, "mse": 1.0}, outputs, batch, None,
                                 batch.mask, None, 0, n_cols=2)
  np.testing.assert_allclose(float(terms["mse"]), 6.5, rtol=1e-6)
  np.testing.assert_allclose(float(terms["masked_mse"]), 4.0, rtol=1e-6)


def _batch() -> SparseBatch:
  rng = np.random.RandomState(0)
  dense = ((rng.rand(6, N_COLS) < 0.35) * rng.randint(1, 6, (6, N_COLS))).astype(np.float32)
  dense[np.arange(6), rng.randint(0, N_COLS, 6)] = 4.0
  return to_sparse_batch(dense, np.arange(6), num_shards=2, n_padding_rows=2)   # 8 rows, 2 padding


def _assert_sparse_target_equals_dense(apply_fn, params, batch, terms, anneal=None) -> dict:
  """Loss terms, total and gradients of ``apply_fn(params) -> outputs`` computed with the sparse
  batch as target (the Gram / entries paths) equal those with the dense target and mask; returns
  the dense terms."""
  target, observed = densify(batch, N_COLS), observed_mask(batch, N_COLS)

  def loss(p, sparse: bool):
    out = apply_fn(p)
    if sparse:
      return losses.compute_loss(terms, out, batch, None, batch.mask, p, 0, anneal=anneal)
    return losses.compute_loss(terms, out, target, observed, batch.mask, p, 0, anneal=anneal)

  grad = lambda sparse: jax.jit(jax.value_and_grad(lambda p: loss(p, sparse), has_aux=True))
  (dense_v, dense_t), dense_g = grad(False)(params)
  (sp_v, sp_t), sp_g = grad(True)(params)
  assert dense_v > 0
  for k in terms:
    np.testing.assert_allclose(float(sp_t[k]), float(dense_t[k]), rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(float(sp_v), float(dense_v), rtol=2e-5)
  for a, b in zip(jax.tree.leaves(sp_g), jax.tree.leaves(dense_g)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
  return dense_t


@pytest.mark.parametrize("tied,item_shards", [(False, 1), (True, 1), (False, 4), (True, 4)])
def test_gram_terms_and_gradients_equal_dense(tied, item_shards):
  batch = _batch()
  model = DeepAE(n_cols=N_COLS, layers=(5, 3), activation="selu", tied=tied,
                 item_shards=item_shards, last_layer_outputs=True)
  params = model.init(jax.random.key(0), densify(batch, N_COLS), train=False)["params"]
  keys = iter(jax.random.split(jax.random.key(1), 16))   # non-zero biases, padded parts included
  params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(next(keys), x.shape), params)
  if item_shards == 4:                       # 13 items padded to 16: zero rows / columns
    assert params["encoder_0"]["kernel"].shape == (16, 5)

  def apply(p):
    out = model.apply({"params": p}, batch, train=False)
    assert out["recon"].shape == (8, N_COLS) and "last_kernel" in out
    return out

  _assert_sparse_target_equals_dense(apply, params, batch, LOSS)


@pytest.mark.parametrize("tied,item_shards,last_activation",
                         [(False, 1, False), (True, 4, False), (False, 1, True)])
def test_entries_terms_and_gradients_equal_dense(tied, item_shards, last_activation):
  """The entries path (dense output, sparse target) gives the dense terms and gradients."""
  batch = _batch()
  model = DeepAE(n_cols=N_COLS, layers=(5, 3), activation="selu", tied=tied,
                 item_shards=item_shards, last_activation=last_activation)
  params = model.init(jax.random.key(0), densify(batch, N_COLS), train=False)["params"]
  keys = iter(jax.random.split(jax.random.key(2), 16))
  params = jax.tree.map(lambda x: x + 0.1 * jax.random.normal(next(keys), x.shape), params)

  def apply(p):
    out = model.apply({"params": p}, batch, train=False)
    assert "last_kernel" not in out
    return out

  dense_t = _assert_sparse_target_equals_dense(apply, params, batch, LOSS)
  assert dense_t["mse"] > 0 and dense_t["masked_mse"] > 0


def test_entries_hand_worked_row():
  # recon = [1, 3], the row stores x[0] = 3 only (as test_hand_worked_row): mse 6.5, masked 4.
  batch = SparseBatch(rows=jnp.array([0]), mask=jnp.array([1.0]), lengths=jnp.array([1]),
                      cols=jnp.array([[0, 0]]), vals=jnp.array([[3.0, 0.0]]),
                      seg=jnp.array([[0, 0]]))
  _, terms = losses.compute_loss({"masked_mse": 1.0, "mse": 1.0},
                                 {"recon": jnp.array([[1.0, 3.0]])}, batch, None, batch.mask,
                                 None, 0)
  np.testing.assert_allclose(float(terms["mse"]), 6.5, rtol=1e-6)
  np.testing.assert_allclose(float(terms["masked_mse"]), 4.0, rtol=1e-6)


def _config(full_mse: str, *, sparse_input: bool, refeed_steps: int = 0):
  c = tiny_config(code_dropout=0.2, refeed_steps=refeed_steps, batch_size=8, lr=2e-2)
  c.model.sparse_input = sparse_input
  c.loss = ml_collections.ConfigDict({"masked_mse": 1.0, "mse": 0.5})
  c.loss_impl = ml_collections.ConfigDict({"full_mse": full_mse})
  return c


def _assert_steps_equal_dense(configs: dict, inter, terms: tuple[str, ...]) -> None:
  """Four train steps of each config ({impl: config}) on one batch: the per-term losses and the
  final params of every impl equal the "dense" one's (which must have trained)."""
  runs = {}
  for impl, config in configs.items():
    model, mesh, state, step = make_engine(config, inter)
    assert step_lib.loss_impl(model, config) == impl
    batch = mesh_lib.put_global(first_batch(inter, 8), mesh_lib.batch_sharding(mesh))
    seen = []
    for _ in range(4):
      state, metrics = step(state, batch)
      seen.append([float(metrics[f"loss/{t}"]) for t in terms])
    runs[impl] = (np.array(seen), [np.asarray(x) for x in jax.tree.leaves(state.params)])
  assert runs["dense"][0][-1, 0] < runs["dense"][0][0, 0]            # it trained
  for impl in configs:
    np.testing.assert_allclose(runs[impl][0], runs["dense"][0], rtol=1e-4)
    for a, b in zip(runs[impl][1], runs["dense"][1]):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sparse_input,refeed_steps", [(True, 0), (False, 0), (True, 1)])
def test_train_steps_gram_and_entries_equal_dense(sparse_input, refeed_steps):
  inter = tiny_interactions(n_rows=24, n_cols=N_COLS, seed=3)
  configs = {impl: _config(impl, sparse_input=sparse_input, refeed_steps=refeed_steps)
             for impl in ("dense", "gram", "entries")}
  _assert_steps_equal_dense(configs, inter, ("masked_mse", "mse"))


def test_gram_errors():
  model = DeepAE(n_cols=N_COLS, layers=(5,), last_activation=True)
  gram = ml_collections.ConfigDict({"full_mse": "gram"})
  with pytest.raises(ConfigError, match="linear last layer"):
    losses.full_mse_impl(gram, {"mse": 1.0}, last_width=model.last_layer_width, batch_size=8)
  with pytest.raises(ConfigError, match="bce"):
    losses.full_mse_impl(gram, {"bce": 1.0}, last_width=5, batch_size=8)
  with pytest.raises(ConfigError, match="unknown value 'fast'"):
    losses.full_mse_impl({"full_mse": "fast"}, {"mse": 1.0}, last_width=5, batch_size=8)
  # The full MSE by the Gram trick refuses a non-linear last layer at trace time too.
  batch = _batch()
  nonlinear = DeepAE(n_cols=N_COLS, layers=(5,), last_activation=True, last_layer_outputs=True)
  variables = nonlinear.init(jax.random.key(0), jnp.zeros((2, N_COLS)), train=False)
  out = nonlinear.apply(variables, batch, train=False)
  with pytest.raises(ConfigError, match="linear last layer"):
    losses.compute_loss({"mse": 1.0}, out, batch, None, batch.mask, None, 0)
  # A sparse target with a term that needs the dense output.
  out = {"last_hidden": jnp.zeros((8, 2)), "last_kernel": jnp.zeros((N_COLS, 2)),
         "last_bias": jnp.zeros(N_COLS), "logits": jnp.zeros((8, N_COLS))}
  with pytest.raises(ConfigError, match="multinomial"):
    losses.compute_loss({"multinomial": 1.0}, out, batch, None, batch.mask, None, 0, n_cols=N_COLS)


def test_auto_takes_gram_where_it_wins_else_entries():
  auto = {"full_mse": "auto"}
  d = 64
  big = int(np.ceil(losses.GRAM_CROSSOVER * d))
  with_mse = {"masked_mse": 1.0, "mse": 1.0}
  assert losses.full_mse_impl(auto, with_mse, last_width=d, batch_size=big) == "gram"
  # Below the crossover (or with re-feeding) the output stays dense, the target does not.
  assert losses.full_mse_impl(auto, with_mse, last_width=d, batch_size=big - 1) == "entries"
  assert losses.full_mse_impl(auto, with_mse, last_width=d, batch_size=big,
                              refeed_steps=1) == "entries"
  # Any term that reads the target: the entries path (multinomial / bce included).
  assert losses.full_mse_impl(auto, {"mse": 1.0, "bce": 1.0}, last_width=d,
                              batch_size=1) == "entries"
  assert losses.full_mse_impl(auto, {"multinomial": 1.0, "kl": 1.0}, last_width=None,
                              batch_size=1) == "entries"
  assert losses.full_mse_impl(auto, {"l2": 1.0}, last_width=d, batch_size=1) == "dense"
  assert losses.full_mse_impl({"full_mse": "entries"}, with_mse, last_width=d,
                              batch_size=10 * big) == "entries"
  # Masked terms only read the output at the batch's entries: that path at any batch size.
  assert losses.full_mse_impl(auto, {"masked_mse": 1.0}, last_width=d, batch_size=1) == "gram"
  assert losses.full_mse_impl(auto, with_mse, last_width=None, batch_size=big) == "entries"
  assert losses.full_mse_impl(None, with_mse, last_width=d, batch_size=big) == "dense"
  assert losses.full_mse_impl({"full_mse": "dense"}, with_mse, last_width=d,
                              batch_size=10 * big) == "dense"


def _config_model(module: str, **over):
  import importlib  # pylint: disable=import-outside-toplevel
  c = importlib.import_module(f"configs.{module}").get_config()
  for k, v in over.items():
    c.model[k] = v
  return c


@pytest.mark.parametrize("module,terms", [
    ("mult_vae_gowalla", {"multinomial": 1.0, "kl": 0.2}),
    ("mult_dae_gowalla", {"multinomial": 1.0, "l2": 0.01}),
    ("cdae_gowalla", {"bce": 1.0, "l2": 0.01}),
    ("deep_ae_gowalla", {"multinomial": 1.0, "masked_mse": 0.5, "mse": 0.5}),
    ("kernel_ae_ml100k", {"masked_mse": 1.0, "kernel_l2": 0.1, "l2": 0.01}),
])
def test_every_term_on_the_entries_path_equals_dense(module, terms):
  """Every loss term (each registered term appears in some case) computed from the sparse batch
  and the dense output equals the dense-target term, values and gradients, on the shipped
  models of the term's configs."""
  from jaxae.models import build_model  # pylint: disable=import-outside-toplevel
  batch = _batch()
  model = build_model((_config_model(module, hidden=5) if module == "cdae_gowalla" else
                       _config_model(module)).model, N_COLS, 8)
  x = batch if getattr(model, "sparse_input", False) else densify(batch, N_COLS)
  params = model.init(jax.random.key(0), x, rows=batch.rows, train=False)["params"]
  dense_t = _assert_sparse_target_equals_dense(
      lambda p: model.apply({"params": p}, x, rows=batch.rows, train=False), params, batch, terms,
      anneal={"total_steps": 0, "beta_cap": 1.0})
  for k in terms:
    assert np.isfinite(float(dense_t[k])) and float(dense_t[k]) != 0.0, k


def test_the_entries_cases_cover_every_term():
  covered = {"multinomial", "kl", "l2", "bce", "masked_mse", "mse", "kernel_l2"}
  assert covered == set(losses.LOSSES), "add the new term to the entries equality test"


def test_mult_vae_train_steps_entries_equal_dense():
  """Whole train steps (dropout, KL anneal, Adam) of the Gowalla Mult-VAE config's model."""
  configs = {}
  for impl in ("dense", "entries"):
    config = tiny_config(batch_size=8, lr=1e-2)
    config.model = _config_model("mult_vae_gowalla").model
    config.model.layers = (6, 3)
    config.loss = ml_collections.ConfigDict({"multinomial": 1.0, "kl": 1.0})
    config.loss_anneal = ml_collections.ConfigDict(dict(total_steps=4, beta_cap=0.2))
    config.loss_impl = ml_collections.ConfigDict({"full_mse": impl})
    configs[impl] = config
  _assert_steps_equal_dense(configs, tiny_interactions(n_rows=24, n_cols=N_COLS, seed=5),
                            ("multinomial", "kl"))
