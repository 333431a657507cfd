"""Tests of GLocal-K (the kernelized autoencoder fine-tuned with a global convolution kernel) and of
fine-tuning from another run's checkpoint (config.train.init_from): the model against a float64
numpy reference of the authors' computation, batch order and padding, the all-rows checks, the
rating evaluator feeding every row, and init_from's loading rules and errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxae.errors import CheckpointError, ConfigError
from jaxae.models import build_model, needs_all_rows
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import logging as log_lib
from jaxae.training import loop
from tests.test_kernel_ae import _lbfgs_config
from tests.test_loop import tiny_dataset

GLK = dict(name="glocal_k", hidden=[7, 5], kernel_dim=3, activation="sigmoid", gk_size=3,
           dot_scale=0.7)


def _model_params(n_rows=6, n_cols=9, seed=0, **edit):
  model = build_model(ConfigDict(dict(GLK, **edit)), n_cols, n_rows)
  params = model.init(jax.random.PRNGKey(seed), jnp.zeros((1, n_cols)),
                      rows=jnp.zeros((1,), jnp.int32), train=False)["params"]
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda x: x, params)
  for name in [k for k in params if k.startswith("layer_")]:
    for v in ("u", "v"):                     # spread the kernel vectors: some connections cut
      params[name][v] = params[name][v] + rng.normal(0, 0.6, params[name][v].shape)
    params[name]["kernel"] = jnp.asarray(rng.normal(0, 1, params[name]["kernel"].shape))
    params[name]["bias"] = jnp.asarray(rng.normal(0, 0.3, params[name]["bias"].shape))
  params["conv_kernel"] = jnp.asarray(rng.normal(0, 0.5, params["conv_kernel"].shape))
  return model, params


def _reference(params, r, dot_scale, gk_size=3, identity=False):
  """The authors' fine-tuning forward pass in float64 numpy, on the whole matrix ``r``; with
  ``identity``, the global kernel plus the identity convolution (``global_init="identity"``)."""
  p = {k: {n: np.asarray(a, np.float64) for n, a in v.items()}
       for k, v in params.items() if k.startswith("layer_")}
  names = sorted(p)

  def local(h):
    for i, name in enumerate(names):
      q = p[name]
      d2 = ((q["u"][:, None, :] - q["v"][None, :, :]) ** 2).sum(-1)
      h = h @ (q["kernel"] * np.maximum(0.0, 1.0 - d2)) + q["bias"]
      if i < len(names) - 1:
        h = 1 / (1 + np.exp(-h))
    return h

  pooled = local(r).mean(axis=1)
  gk = (pooled @ np.asarray(params["conv_kernel"], np.float64) * dot_scale).reshape(gk_size,
                                                                                 gk_size)
  if identity:
    gk[gk_size // 2, gk_size // 2] += 1.0
  pad = gk_size // 2
  rp = np.pad(r, pad)
  conv = np.zeros_like(r)
  for a in range(gk_size):                   # cross-correlation, 'SAME' zero padding
    for b in range(gk_size):
      conv += gk[a, b] * rp[a:a + r.shape[0], b:b + r.shape[1]]
  return local(np.maximum(conv, 0.0))


def test_matches_numpy_reference():
  model, params = _model_params()
  r = np.random.default_rng(1).integers(0, 6, (6, 9)).astype(np.float32) * \
      (np.random.default_rng(2).random((6, 9)) < 0.5)
  out = jax.jit(lambda p, x: model.apply({"params": p}, x, rows=jnp.arange(6), train=False))(
      params, r)
  want = _reference(params, r.astype(np.float64), GLK["dot_scale"])
  np.testing.assert_allclose(np.asarray(out["recon"]), want, rtol=1e-4, atol=1e-4)
  assert np.ptp(want) > 0.1                  # a non-trivial output
  assert needs_all_rows(model)


def test_identity_global_kernel_matches_numpy_reference():
  """global_init="identity": the learned global kernel plus the identity convolution."""
  model, params = _model_params(global_init="identity")
  assert model.global_init == "identity"
  r = np.random.default_rng(1).integers(0, 6, (6, 9)).astype(np.float32)
  out = model.apply({"params": params}, r, rows=jnp.arange(6), train=False)["recon"]
  want = _reference(params, r.astype(np.float64), GLK["dot_scale"], identity=True)
  np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-4)
  plain = _reference(params, r.astype(np.float64), GLK["dot_scale"])
  assert np.abs(want - plain).max() > 1e-2   # the identity term matters


@pytest.mark.parametrize("gk_size", [1, 2, 3, 4, 5])
def test_identity_start_is_the_local_kernel(gk_size):
  """With global_init="identity" the fresh model (conv_kernel at zero) predicts exactly what the
  local kernel alone (kernel_ae with the same layers) predicts from non-negative ratings, for odd
  and even kernel sides ('SAME' padding puts the identity at (size - 1) // 2); "random" does not."""
  model, params = _model_params(gk_size=gk_size, global_init="identity")
  fresh = model.init(jax.random.PRNGKey(3), jnp.zeros((1, 9)), rows=jnp.zeros((1,), jnp.int32),
                     train=False)["params"]["conv_kernel"]
  assert fresh.shape == (6, gk_size * gk_size) and not np.any(np.asarray(fresh))
  params = dict(params, conv_kernel=fresh)
  local = build_model(ConfigDict(dict(name="kernel_ae", hidden=GLK["hidden"],
                                      kernel_dim=GLK["kernel_dim"],
                                      activation=GLK["activation"])), 9, 6)
  layers = {k: v for k, v in params.items() if k.startswith("layer_")}
  r = np.random.default_rng(5).integers(0, 6, (6, 9)).astype(np.float32)
  want = np.asarray(local.apply({"params": layers}, r, train=False)["recon"])
  got = np.asarray(model.apply({"params": params}, r, rows=jnp.arange(6), train=False)["recon"])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  rand, rparams = _model_params(gk_size=gk_size)
  other = np.asarray(rand.apply({"params": dict(rparams, **layers)}, r, rows=jnp.arange(6),
                                train=False)["recon"])
  assert np.abs(other - want).max() > 1e-2


def test_batch_order_and_padding_do_not_matter():
  """Rows are placed by id: a shuffled batch with padding rows (id 0, zero input) gives every row
  the output it has in the ordered batch."""
  model, params = _model_params()
  r = np.random.default_rng(3).integers(0, 6, (6, 9)).astype(np.float32)
  fn = jax.jit(lambda p, x, rows: model.apply({"params": p}, x, rows=rows, train=False)["recon"])
  ordered = np.asarray(fn(params, r, jnp.arange(6)))
  perm = np.array([4, 0, 5, 2, 1, 3])
  x = np.concatenate([r[perm], np.zeros((2, 9), np.float32)])
  rows = np.concatenate([perm, [0, 0]])
  got = np.asarray(fn(params, x, jnp.asarray(rows)))
  np.testing.assert_allclose(got[:6], ordered[perm], rtol=1e-5, atol=1e-6)


def test_global_kernel_changes_the_prediction():
  """With the conv kernel at zero the input to the local layers is all zeros (relu(0)): every row
  then gets the same prediction; the learned kernel is what makes rows differ."""
  model, params = _model_params()
  r = np.random.default_rng(4).integers(0, 6, (6, 9)).astype(np.float32)
  zero = dict(params, conv_kernel=jnp.zeros_like(params["conv_kernel"]))
  out0 = np.asarray(model.apply({"params": zero}, r, rows=jnp.arange(6), train=False)["recon"])
  out = np.asarray(model.apply({"params": params}, r, rows=jnp.arange(6), train=False)["recon"])
  np.testing.assert_allclose(out0, np.broadcast_to(out0[:1], out0.shape), rtol=1e-6)
  assert np.abs(out - out0).max() > 1e-2


@pytest.mark.parametrize("edit,message", [
    (dict(gk_size=0), r"config.model.gk_size: expected an integer >= 1 and < 2147483648, got 0"),
    (dict(dot_scale=0.0), r"config.model.dot_scale: expected a finite number > 0"),
    (dict(dot_scale="1"), r"config.model.dot_scale: expected a finite number > 0"),
    (dict(global_init="zeros"),
     r"config.model.global_init: unknown value 'zeros'; known: random, identity"),
])
def test_builder_errors(edit, message):
  with pytest.raises(ConfigError, match=message):
    build_model(ConfigDict(dict(GLK, **edit)), 9, 6)
  cfg = dict(GLK)
  del cfg["gk_size"]
  with pytest.raises(ConfigError, match=r"missing key\(s\) gk_size for model 'glocal_k'"):
    build_model(ConfigDict(cfg), 9, 6)


def _adam(c):
  """The same config with Adam (compiles faster than L-BFGS's line search: for the init tests)."""
  c.optim.name = "adam"
  c.optim.lr = 1e-2
  del c.optim["memory_size"]
  return c


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A kernel_ae run (2 Adam epochs, hidden [7, 5]) on tiny_dataset(seed=6)."""
  wd = tmp_path_factory.mktemp("glk") / "pre"
  pre = _adam(_lbfgs_config())
  pre.train.epochs = 2
  pre.train.checkpoint_every_epochs = 1
  pre.train.keep_checkpoints = 2
  loop.train_and_evaluate(pre, wd, dataset=tiny_dataset(seed=6))
  return wd, pre


def _glk_config(epochs=3, **model):
  c = _lbfgs_config()
  c.model = ml_collections.ConfigDict(dict(GLK, **model))
  c.train.epochs = epochs
  c.train.eval_every_epochs = epochs
  c.train.checkpoint_every_epochs = epochs
  c.eval.batch_size = 24
  return c


@pytest.mark.parametrize("section,key", [("train", "batch_size"), ("eval", "batch_size")])
def test_batches_must_hold_every_row(tmp_path, section, key):
  c = _glk_config()
  c[section][key] = 16                        # < the tiny dataset's 24 rows
  with pytest.raises(ConfigError, match=rf"config.{section}.{key} = 16: .* all 24 rows; set "
                                        rf"{section}.{key} >= 24"):
    loop.train_and_evaluate(c, tmp_path, dataset=tiny_dataset())


def test_only_all_rows_evaluators(tmp_path):
  c = _glk_config()
  c.eval.evaluators = ["rating", "topn"]
  c.eval.ks = [5]
  with pytest.raises(ConfigError, match=r"'topn' cannot score GLocalK.*use rating"):
    loop.train_and_evaluate(c, tmp_path, dataset=tiny_dataset())


def test_trains_and_rating_evaluator_scores_every_row(tmp_path):
  """The validation RMSE is the model's output on the whole matrix at the held-out entries."""
  ds = tiny_dataset(seed=5)
  c = _glk_config(epochs=4)
  metrics = loop.train_and_evaluate(c, tmp_path, dataset=ds)
  cfg, params, _ = ckpt_lib.load_for_eval(tmp_path)
  model = build_model(cfg.model, ds.n_cols, ds.n_rows)
  x = ds.train.matrix.toarray()
  pred = np.asarray(model.apply({"params": params}, x, rows=jnp.arange(ds.n_rows),
                                train=False)["recon"])
  t = ds.val.targets.matrix.tocoo()
  err = np.clip(pred[t.row, t.col], 1, 5) - t.data
  assert metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean(err ** 2))), rel=1e-5)
  assert metrics["rows_evaluated"] < ds.n_rows      # counted over the rows with targets


def test_init_from_loads_the_local_kernel(pretrained, tmp_path, capsys):
  """A kernel_ae run initializes GLocal-K's kernel layers; conv_kernel starts fresh; step 0."""
  pre_dir, pre = pretrained
  ds = tiny_dataset(seed=6)
  _, pre_params, _ = ckpt_lib.load_for_eval(pre_dir)
  c = _adam(_glk_config(epochs=1, hidden=list(pre.model.hidden), kernel_dim=pre.model.kernel_dim))
  c.train.init_from = str(pre_dir)
  state = None
  orig = loop._init_from

  def capture(run, state_, tx, sharding):
    nonlocal state
    st = orig(run, state_, tx, sharding)
    state = jax.device_get(st)              # the loop donates st's buffers to its first step
    return st

  loop._init_from = capture
  try:
    loop.train_and_evaluate(c, tmp_path / "ft", dataset=ds)
  finally:
    loop._init_from = orig
  out = capsys.readouterr().out
  assert f"initialized 12 parameter arrays from {pre_dir} (step 2); fresh: conv_kernel" in out
  assert int(state.step) == 0
  for name in pre_params:
    for k in pre_params[name]:
      np.testing.assert_array_equal(np.asarray(state.params[name][k]),
                                    np.asarray(pre_params[name][k]))
  assert state.params["conv_kernel"].shape == (ds.n_rows, 9)
  assert all(not np.any(np.asarray(m)) for m in jax.tree.leaves(state.opt_state)
             if np.ndim(m) > 0)                # Adam's moments start at zero


def test_init_from_errors(pretrained, tmp_path):
  pre_dir, _ = pretrained
  ds = tiny_dataset(seed=6)
  c = _glk_config(epochs=1, hidden=[6, 5], kernel_dim=3)     # layer_0 is 10 x 6 here, 10 x 7 there
  c.train.init_from = str(pre_dir)
  with pytest.raises(CheckpointError, match=r"'params.layer_0.bias' has shape \(7,\) there but "
                                            r"\(6,\) in this model"):
    loop.train_and_evaluate(c, tmp_path / "a", dataset=ds)

  c = _glk_config(epochs=1, hidden=[7], kernel_dim=3)       # one hidden layer: no layer_2
  c.train.init_from = str(pre_dir)
  with pytest.raises(CheckpointError, match=r"'params.layer_1.bias' has shape \(5,\) there but "
                                            r"\(10,\)|holds 'params.layer_2"):
    loop.train_and_evaluate(c, tmp_path / "b", dataset=ds)

  c = _glk_config(epochs=1)
  c.train.init_from = str(pre_dir)
  c.train.batch_size = c.eval.batch_size = 32
  with pytest.raises(CheckpointError, match=r"trained on a 24 x 10 matrix, this run's is 30 x 10"):
    loop.train_and_evaluate(c, tmp_path / "c", dataset=tiny_dataset(n_rows=30, seed=7))

  c = _glk_config(epochs=1)
  c.train.init_from = str(pre_dir)
  c.train.init_step = 5
  with pytest.raises(CheckpointError, match=r"no checkpoint at step 5; saved steps: \[1, 2\]"):
    loop.train_and_evaluate(c, tmp_path / "d", dataset=ds)

  c = _glk_config(epochs=1)
  c.train.init_from = str(tmp_path / "nothing")
  with pytest.raises(CheckpointError, match=r"no checkpoints"):
    loop.train_and_evaluate(c, tmp_path / "e", dataset=ds)

  c = _glk_config(epochs=1)
  c.train.init_step = 1
  with pytest.raises(ConfigError, match=r"init_step is set but config.train.init_from is not"):
    loop.check_config(c)
  c = _glk_config(epochs=1)
  c.train.init_from = str(pre_dir)
  c.model = ml_collections.ConfigDict(dict(name="ease", l2=1.0))
  with pytest.raises(ConfigError, match=r"init_from: ease is fitted in closed form"):
    loop.check_config(c)


def _first_loss(workdir) -> float:
  return next(r["loss"] for r in log_lib.read_metrics(workdir / "metrics.jsonl")
              if r.get("split") == "train")


def test_identity_fine_tuning_starts_at_the_pretrained_loss(pretrained, tmp_path):
  """Fine-tuned with global_init="identity" from a kernel_ae run, the first training loss (before
  any update) is the pre-trained local kernel's own loss on the same data (a kernel_ae run started
  from the same checkpoint logs it); with the authors' random global kernel it is not."""
  pre_dir, pre = pretrained
  ds = tiny_dataset(seed=6)
  shape = dict(hidden=list(pre.model.hidden), kernel_dim=pre.model.kernel_dim)
  losses = {}
  for name, model in [("local", dict(pre.model)), ("identity", dict(global_init="identity")),
                      ("random", dict(global_init="random"))]:
    c = _adam(_glk_config(epochs=1, **shape))
    if name == "local":
      c.model = ml_collections.ConfigDict(model)
    else:
      c.model.update(model)
    c.train.init_from = str(pre_dir)
    c.train.log_every_steps = 1
    loop.train_and_evaluate(c, tmp_path / name, dataset=ds)
    losses[name] = _first_loss(tmp_path / name)
  assert losses["identity"] == pytest.approx(losses["local"], rel=1e-5)
  assert abs(losses["random"] - losses["local"]) > 1e-3 * losses["local"]


@pytest.mark.slow
def test_resume_wins_over_init_from(pretrained, tmp_path, capsys):
  """A workdir with its own checkpoints resumes; init_from only starts fresh runs."""
  pre_dir, pre = pretrained
  ds = tiny_dataset(seed=6)
  c = _adam(_glk_config(epochs=1, hidden=list(pre.model.hidden), kernel_dim=pre.model.kernel_dim))
  c.train.init_from = str(pre_dir)
  c.train.init_step = 1
  loop.train_and_evaluate(c, tmp_path / "ft", dataset=ds)
  assert "initialized 12 parameter arrays" in capsys.readouterr().out
  c.train.epochs = 2
  loop.train_and_evaluate(c, tmp_path / "ft", dataset=ds)
  out = capsys.readouterr().out
  assert "resumed from" in out and "initialized" not in out
