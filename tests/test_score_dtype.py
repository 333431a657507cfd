"""The output layer's product in another dtype when the top-N evaluator scores
(``config.eval.score_dtype``): operands rounded to it, float32 accumulation, the same ranking as
those scores give, whole blocks or tiles (eight devices: tests/test_score_tiles.py), eval.py."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxae.errors import ConfigError
from jaxae.evaluation import EvalContext
from jaxae.evaluation import topn
from jaxae.evaluation.topn import TopNEvaluator
from jaxae.models import layers as L
from tests.test_score_tiles import (MODELS, N_COLS, _batches, _context, _data,
                                     _evaluate)


def _rounded_scores(ctx, cfg, batch, dtype):
  """The scores the model would give from operands rounded to ``dtype``, exact sums and a float32
  bias: the reference a float32-accumulated product must match to float32 precision."""
  hidden = ctx.head.hidden_fn(batch)
  kernel, bias = ctx.model.score_layer(ctx.params)
  r = lambda a: np.asarray(jnp.asarray(a).astype(dtype).astype(jnp.float32), np.float64)
  y = (r(hidden) @ r(kernel).T + np.asarray(bias, np.float64))[:, :N_COLS]  # float32 bias
  if cfg["name"] == "cdae" and cfg["output"] == "sigmoid":
    y = 1.0 / (1.0 + np.exp(-y))
  if cfg.get("last_activation"):
    y = np.asarray(jax.nn.selu(jnp.asarray(y, jnp.float32)), np.float64)
  return y


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_product_from_rounded_operands_accumulates_in_float32(name, dtype):
  """Each model's ``score_tile(..., dtype)`` is the product of the operands rounded to ``dtype``
  summed in float32 (a product returned in bfloat16 would be off by ~1e-2 of its size)."""
  ds = _data()
  ctx = _context(MODELS[name], ds)
  batch = ctx.put_fn(next(iter(_batches(ds))))
  kernel, bias = ctx.model.score_layer(ctx.params)
  got = np.asarray(topn._head_scores(ctx.head.hidden_fn(batch), kernel, bias, N_COLS,
                                     ctx.model.score_tile, dtype))
  assert got.dtype == np.float32 and got.shape == (8, N_COLS)
  want = _rounded_scores(ctx, MODELS[name], batch, jnp.dtype(dtype))
  np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6, err_msg=name)
  # ... and it is not what the model's own float32 forward gives when rounding changes operands
  if dtype == "bfloat16" and MODELS[name].get("dtype", "float32") == "float32":
    recon = np.asarray(ctx.score_fn(batch))
    assert np.abs(got - recon).max() > 1e-4, name


@pytest.mark.parametrize("name", sorted(MODELS))
def test_float32_operands_of_a_float32_model_give_its_metrics(name):
  """``score_dtype="float32"`` on a float32 model scores what its forward scores: same metrics,
  whole blocks and tiles; on a bfloat16 model, the metrics of its scores from float32 operands."""
  ctx = _context(MODELS[name], _data())
  plain = _evaluate(ctx, score_dtype="model")
  assert plain["recall@20"] > 0
  whole = _evaluate(ctx, score_dtype="float32")
  tiled = _evaluate(ctx, score_dtype="float32", tile=64)
  assert tiled == pytest.approx(whole, rel=1e-6, abs=1e-7)
  if MODELS[name].get("dtype", "float32") == "float32":
    assert whole == pytest.approx(plain, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("name", ["cdae_sigmoid", "deep_ae_tied_last_act", "mult_dae"])
def test_bfloat16_metrics_are_those_of_the_rounded_scores(name):
  """The bfloat16 path ranks what its scores say: the same metrics as an evaluator handed the
  reference block of rounded operands (``_rounded_scores``) through a plain ``score_fn``; tiles
  agree with whole blocks."""
  ds = _data()
  ctx = _context(MODELS[name], ds)
  ref_ctx = EvalContext(
      score_fn=lambda b: jnp.asarray(_rounded_scores(ctx, MODELS[name], b, jnp.bfloat16),
                                     jnp.float32),
      dataset=ds, split="val", batch_size=ctx.batch_size, put_fn=ctx.put_fn, params=ctx.params,
      model=ctx.model, head=None)
  want = _evaluate(ref_ctx, score_dtype="model")
  whole = _evaluate(ctx, score_dtype="bfloat16")
  tiled = _evaluate(ctx, score_dtype="bfloat16", tile=64)
  assert want["recall@20"] > 0
  assert whole == pytest.approx(want, rel=1e-6, abs=1e-7)
  assert tiled == pytest.approx(want, rel=1e-6, abs=1e-7)


def test_score_dtype_config_errors_and_default():
  ds = _data()
  for bad in ("float16", "bf16", 1, True, ""):
    with pytest.raises(ConfigError, match=r"config.eval.score_dtype: expected \"model\" or one of "
                                          r"bfloat16, float32, got"):
      TopNEvaluator(ml_collections.ConfigDict(dict(ks=[5], score_dtype=bad)), ds, "val")
  assert TopNEvaluator(ml_collections.ConfigDict(dict(ks=[5])), ds, "val").score_dtype is None
  assert TopNEvaluator(ml_collections.ConfigDict(dict(ks=[5], score_dtype="model")), ds,
                       "val").score_dtype is None
  with pytest.raises(ConfigError, match="config.eval.score_dtype: unknown dtype 'float16'"):
    L.score_product(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.zeros(4), "float32", "float16")
  # The commands' flags (jax-free) offer what the config accepts.
  from jaxae import cli  # pylint: disable=import-outside-toplevel
  assert set(cli.SCORE_DTYPES) == {"model"} | set(L.DTYPES)
  for name in cli.SCORE_DTYPES:
    TopNEvaluator(ml_collections.ConfigDict(dict(ks=[5], score_dtype=name)), ds, "val")


@pytest.fixture(scope="module")
def trained_cdae(tmp_path_factory):
  """The shipped Gowalla CDAE config, one epoch on its embedded synthetic implicit data."""
  from configs import cdae_gowalla  # pylint: disable=import-outside-toplevel
  from jaxae.training.loop import train_and_evaluate  # pylint: disable=import-outside-toplevel
  config = cdae_gowalla.get_config()
  config.train.epochs = 1
  config.train.eval_every_epochs = 1
  assert config.eval.score_dtype == "model"            # the default every config inherits
  workdir = str(tmp_path_factory.mktemp("cdae"))
  train_and_evaluate(config, workdir)
  return workdir


def test_eval_py_scores_a_run_in_another_dtype(trained_cdae, tmp_path):
  """``eval.py --score_dtype`` overrides the run's config.eval.score_dtype for that evaluation and
  says so in the record it writes and prints; without it the record is as before."""
  import json  # pylint: disable=import-outside-toplevel
  import os  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  from jaxae import evaluate  # pylint: disable=import-outside-toplevel
  from tests.conftest import REPO_ROOT  # pylint: disable=import-outside-toplevel
  plain = evaluate.evaluate_workdir(trained_cdae, None, "test", write=False)
  assert "score_dtype" not in plain
  f32 = evaluate.evaluate_workdir(trained_cdae, None, "test", write=False, score_dtype="float32")
  assert f32["score_dtype"] == "float32"
  assert f32["metrics"] == pytest.approx(plain["metrics"], rel=1e-6, abs=1e-7)
  proc = subprocess.run([sys.executable, str(REPO_ROOT / "eval.py"), f"--workdir={trained_cdae}",
                         "--split=test", "--score_dtype=bfloat16"], capture_output=True,
                        text=True, cwd=str(tmp_path), timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "score_dtype=bfloat16" in proc.stdout.splitlines()[0]
  with open(os.path.join(trained_cdae, "metrics.json"), encoding="utf-8") as f:
    rec = json.load(f)
  assert rec["score_dtype"] == "bfloat16" and rec["split"] == "test"
  assert rec["metrics"].keys() == plain["metrics"].keys()
  assert rec["metrics"]["recall@20"] == pytest.approx(plain["metrics"]["recall@20"], abs=0.02)
  bad = subprocess.run([sys.executable, str(REPO_ROOT / "eval.py"), f"--workdir={trained_cdae}",
                        "--score_dtype=float16"], capture_output=True, text=True,
                       cwd=str(tmp_path), timeout=120, check=False)
  assert bad.returncode != 0 and "--score_dtype" in bad.stderr and "Traceback" not in bad.stderr
