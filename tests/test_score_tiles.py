"""Scoring in column tiles (``config.eval.score_tile``): the same top-N metrics as whole
[chunk, n_cols] score blocks, for every model with a linear output layer, and the fallback."""

from __future__ import annotations

import textwrap

import jax
import ml_collections
import numpy as np
import pytest
import scipy.sparse as sp
from absl import logging

from jaxae.data.dataset import Dataset, EvalSplit
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError
from jaxae.evaluation import EvalContext
from jaxae.evaluation.context import score_head
from jaxae.evaluation import topn
from jaxae.evaluation.topn import TopNEvaluator
from jaxae.models import build_model, has_score_head
from jaxae.training import mesh as mesh_lib
from jaxae.training import step as step_lib
from tests.conftest import run_on_eight_devices

N_ROWS, N_COLS = 37, 301

MODELS = {
    "cdae_sigmoid": dict(name="cdae", hidden=16, corruption=0.2, output="sigmoid"),
    "cdae_identity_bf16": dict(name="cdae", hidden=16, corruption=0.2, output="identity",
                               dtype="bfloat16", sparse_input=True),
    "deep_ae": dict(name="deep_ae", layers=[24, 8], activation="selu", tied=False,
                    code_dropout=0.5, last_activation=False, sparse_input=False,
                    dtype="float32"),
    "deep_ae_tied_last_act": dict(name="deep_ae", layers=[24], activation="selu", tied=True,
                                  code_dropout=0.0, last_activation=True, sparse_input=True,
                                  dtype="float32"),
    "mult_dae": dict(name="mult_dae", layers=[20, 6], input_dropout=0.5, activation="tanh"),
    "mult_vae_bf16": dict(name="mult_vae", layers=[20, 6], input_dropout=0.5, activation="tanh",
                          dtype="bfloat16"),
}


def _data(seed: int = 0) -> Dataset:
  rng = np.random.default_rng(seed)
  train = (rng.random((N_ROWS, N_COLS)) < 0.05).astype(np.float32)
  test = ((rng.random((N_ROWS, N_COLS)) < 0.05) & (train == 0)).astype(np.float32)
  test[2] = 0                                               # a row without targets
  inter = [Interactions(sp.csr_matrix(m), np.arange(N_ROWS), np.arange(N_COLS))
           for m in (train, test)]
  return Dataset(train=inter[0], val=EvalSplit(inter[0], inter[1]))


def _context(model_config: dict, ds: Dataset, seed: int = 0):
  mcfg = ml_collections.ConfigDict(model_config)
  model = build_model(mcfg, N_COLS, N_ROWS)
  mesh = mesh_lib.make_mesh(ml_collections.ConfigDict(dict(data=-1, model=1)))
  sparse = bool(model_config.get("sparse_input", False))
  x = np.zeros((2, N_COLS), np.float32)
  params = model.init({"params": jax.random.PRNGKey(seed), "dropout": jax.random.PRNGKey(1)},
                      x, rows=np.arange(2), train=False)["params"]
  # Biases away from their constant init, so that the tiles' bias slices matter.
  params = jax.tree_util.tree_map_with_path(
      lambda p, v: v + 0.5 * jax.random.normal(jax.random.PRNGKey(len(str(p))), v.shape)
      if "bias" in str(p[-1]) else v, params)
  score_fn, _ = step_lib.make_eval_fns(model, mesh, n_cols=N_COLS, sparse_input=sparse)
  head_fn = step_lib.make_head_fn(model, mesh, n_cols=N_COLS, sparse_input=sparse)
  sharding = mesh_lib.batch_sharding(mesh)
  shards = mesh_lib.data_size(mesh)
  return EvalContext(score_fn=lambda b: score_fn(params, b), dataset=ds, split="val",
                     batch_size=8 * shards, num_shards=shards,
                     put_fn=lambda b: mesh_lib.put_global(b, sharding),
                     params=params, model=model, head=score_head(model, head_fn, params))


def _evaluate(ctx, ks=(5, 20), group=4, tile=0, score_dtype="model"):
  cfg = ml_collections.ConfigDict(dict(ks=list(ks), topk_group=group, score_tile=tile,
                                       score_dtype=score_dtype))
  return TopNEvaluator(cfg, ctx.dataset, "val").run(ctx)


@pytest.mark.parametrize("name,group,tile", [
    ("cdae_sigmoid", 4, 64), ("cdae_identity_bf16", 0, 48), ("deep_ae", 8, 8),
    ("deep_ae_tied_last_act", 4, 64), ("mult_dae", 0, 48), ("mult_vae_bf16", 8, 8),
    ("deep_ae", 4, 512)])
def test_tiles_give_the_metrics_of_whole_blocks(name, group, tile, monkeypatch):
  """(tile, group): 64 / 4 (one first block, then merges), 48 / 0 (runs of jax.lax.top_k), 8 / 8
  (the first block 3 tiles, groups of a whole tile), 512 / 4 (one tile wider than the 301 items:
  the kernel padded in the program). Every tile size but 512 leaves the last tile running past
  the kernel's last row (scored from the last rows, shifted into place)."""
  ctx = _context(MODELS[name], _data())
  assert ctx.head is not None and has_score_head(ctx.model)
  whole = _evaluate(ctx, group=group)
  monkeypatch.setattr(topn, "_block_top_k", None)           # no whole block from here on
  tiled = _evaluate(ctx, group=group, tile=tile)
  assert whole["recall@20"] > 0                  # a case where the ranking decides something
  assert tiled == pytest.approx(whole, rel=1e-6, abs=1e-7)


def test_score_tile_reproduces_recon():
  """Each model's ``score_tile`` over all of ``score_layer``'s columns is its ``recon``."""
  ds = _data()
  for name, cfg in MODELS.items():
    ctx = _context(cfg, ds)
    batch = ctx.put_fn(next(iter(_batches(ds))))
    recon = np.asarray(ctx.score_fn(batch))
    kernel, bias = ctx.model.score_layer(ctx.params)
    tiled = np.asarray(ctx.model.score_tile(ctx.head.hidden_fn(batch), kernel, bias))
    # bfloat16: XLA may round the whole block's product to bfloat16 or keep it in float32.
    tol = 1e-2 if cfg.get("dtype") == "bfloat16" else 1e-6
    np.testing.assert_allclose(tiled[:, :N_COLS], recon, rtol=tol, atol=tol, err_msg=name)


def test_the_head_scores_from_the_stored_item_major_kernel():
  """``score_layer`` hands the evaluators the output kernel as stored, one row per item: no copy
  (a transpose of a Melon-sized kernel is a gigabyte more for each evaluation)."""
  ds = _data()
  for name, cfg in MODELS.items():
    ctx = _context(cfg, ds)
    leaves = jax.tree.leaves(ctx.params)
    assert any(ctx.head.kernel is leaf for leaf in leaves), name
    assert any(ctx.head.bias is leaf for leaf in leaves), name
    assert ctx.head.kernel.shape[0] == ctx.head.bias.shape[0] >= N_COLS, name


def _batches(ds):
  from jaxae.data.batching import full_batches  # pylint: disable=import-outside-toplevel
  return full_batches(ds.train, 8)


@pytest.mark.parametrize("key,value", [("score_tile", 64), ("score_dtype", "bfloat16")])
def test_models_without_a_head_score_whole_blocks(key, value, monkeypatch):
  """EASE has no output layer to score apart (in tiles, or from bfloat16 operands): the key
  changes nothing, and says so once in the log."""
  ds = _data()
  cfg = ml_collections.ConfigDict(dict(name="ease", l2=10.0))
  model = build_model(cfg, N_COLS, N_ROWS)
  assert not has_score_head(model)
  mesh = mesh_lib.make_mesh(ml_collections.ConfigDict(dict(data=-1, model=1)))
  assert step_lib.make_head_fn(model, mesh, n_cols=N_COLS) is None
  from jaxae.models import CLOSED_FORM  # pylint: disable=import-outside-toplevel
  params = CLOSED_FORM["ease"](cfg, ds.train)
  score_fn, _ = step_lib.make_eval_fns(model, mesh, n_cols=N_COLS)
  ctx = EvalContext(score_fn=lambda b: score_fn(params, b), dataset=ds, split="val",
                    batch_size=8, params=params, model=model,
                    head=score_head(model, None, params))
  said = []
  monkeypatch.setattr(logging, "info", lambda msg, *a: said.append(msg % a if a else msg))
  ev = TopNEvaluator(ml_collections.ConfigDict({"ks": [5], "topk_group": 4, key: value}), ds,
                     "val")
  assert ev.run(ctx) == _evaluate(ctx, ks=(5,))
  ev.run(ctx)
  assert sum(key in m for m in said) == 1


def test_score_tile_config_errors():
  ds = _data()
  for bad in (-1, 2.5, True, "64"):
    with pytest.raises(ConfigError, match="config.eval.score_tile: expected an integer >= 0"):
      TopNEvaluator(ml_collections.ConfigDict(dict(ks=[5], score_tile=bad)), ds, "val")
  with pytest.raises(ConfigError, match=r"score_tile \(100\) must be a multiple of "
                                        r"config.eval.topk_group \(64\)"):
    TopNEvaluator(ml_collections.ConfigDict(dict(ks=[5], topk_group=64, score_tile=100)), ds,
                  "val")
  ev = TopNEvaluator(ml_collections.ConfigDict(dict(ks=[5], topk_group=0, score_tile=100)), ds,
                     "val")
  assert ev.tile == 100


_CHILD = textwrap.dedent("""
    import json
    import jax
    from tests.test_score_tiles import MODELS, _context, _data, _evaluate
    assert len(jax.devices()) == 8
    out = {}
    for name in ("cdae_sigmoid", "deep_ae"):
      ctx = _context(MODELS[name], _data())
      assert ctx.num_shards == 8 and ctx.head is not None
      out[name] = [_evaluate(ctx, group=4, tile=t, score_dtype=d)
                   for d in ("model", "bfloat16") for t in (0, 64)]
    print("RESULT" + json.dumps(out))
""")


def test_tiles_and_bfloat16_scores_on_eight_devices():
  """Rows split over 8 (simulated CPU) devices, the output kernel replicated: tiles give the
  metrics of whole blocks, and bfloat16 operands (``config.eval.score_dtype``, whole or tiled)
  the metrics they give on one device."""
  out = run_on_eight_devices(_CHILD)
  for name, (whole, tiled, bf16_whole, bf16_tiled) in out.items():
    assert whole["recall@20"] > 0, name
    assert tiled == pytest.approx(whole, rel=1e-6, abs=1e-7), name
    one = _evaluate(_context(MODELS[name], _data()), group=4, score_dtype="bfloat16")
    assert bf16_whole == pytest.approx(one, rel=1e-6, abs=1e-7), name
    assert bf16_tiled == pytest.approx(one, rel=1e-6, abs=1e-7), name
