"""Model-axis sharding: the item dimension split over "model" on a 2-D (data x model) mesh of 8
simulated CPU devices trains exactly like one device.

The child process starts with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (conftest).
With 30 items a model axis of 4 pads the item dimension to 32 (zero rows / columns), one of 2 does
not; both must give the losses, parameters (the first 30 items) and scores of the 1-device run, the
first layer's kernel must really be cut into item slices (and Adam's moments with it), and the
compiled step must not all-gather anything item-sized ("entries": the multinomial and BCE terms
read at the batch's entries, whose gradient is scattered into the sharded logits; "mult_dae": the
same for Mult-DAE's item-major output layer, on the meshes whose model axis divides 30). The slow
test runs the whole training loop (`train_and_evaluate`, checkpoint, `load_for_eval`, exported
item vectors) on a 2 x 4 mesh against an 8 x 1 mesh.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from jaxae.errors import ConfigError
from jaxae.models import DeepAE
from jaxae.training import mesh as mesh_lib
from tests.conftest import run_on_eight_devices


_CHILD = textwrap.dedent("""
    import json, re, sys, tempfile
    import jax
    import ml_collections
    import numpy as np
    from jax.sharding import PartitionSpec as P
    from jaxae import export
    from jaxae.data.batching import BatchIterator
    from jaxae.models import build_model
    from jaxae.training import checkpoint as ckpt_lib
    from jaxae.training import loop
    from jaxae.training import mesh as mesh_lib
    from jaxae.training import optim as optim_lib
    from jaxae.training import state as state_lib
    from jaxae.training import step as step_lib
    from tests.test_loop import rated_config, tiny_dataset
    from tests.test_step import tiny_config, tiny_interactions

    kind = sys.argv[1]
    assert len(jax.devices()) == 8, jax.devices()
    N = 30
    out = {}
    inter = tiny_interactions(n_rows=40, n_cols=N, seed=5)     # 40 rows / 16: last batch padded
    config = tiny_config(code_dropout=0.3, batch_size=16,
                         refeed_steps=1 if kind == "sparse" else 0, refeed_noise=0.1)
    config.model.sparse_input = kind == "sparse"
    config.model.tied = kind == "sparse"
    if kind == "gram":                      # full MSE by the Gram trick on the sharded items
      config.loss = ml_collections.ConfigDict({"masked_mse": 1.0, "mse": 0.5})
      config.loss_impl = ml_collections.ConfigDict({"full_mse": "gram"})
    if kind == "entries":                   # implicit-data terms from the entries, items sharded
      config.loss = ml_collections.ConfigDict({"multinomial": 1.0, "bce": 0.5})
      config.loss_impl = ml_collections.ConfigDict({"full_mse": "entries"})
    if kind == "mult_dae":                  # an item-major output layer (ItemDense) of Mult-DAE
      config.model = ml_collections.ConfigDict(dict(
          name="mult_dae", layers=[6], input_dropout=0.0, activation="tanh", sparse_input=True,
          dtype="float32"))
      config.loss = ml_collections.ConfigDict({"multinomial": 1.0})
    meshes = ((1, 1), (4, 2)) if kind == "mult_dae" else ((1, 1), (2, 4), (4, 2))   # no padding

    def item_sized_all_gathers(text, n_pad):
      out = []
      for line in text.splitlines():
        if "all-gather(" in line and " = " in line:
          dims = re.findall(r"\\[([0-9,]*)\\]", line.split(" = ")[1].split("all-gather(")[0])
          if any(int(d) >= N for ds in dims for d in ds.split(",") if d):
            out.append(line.strip()[:200])
      return out

    for data, model_axis in (() if kind == "loop" else meshes):
      config.mesh.data, config.mesh.model = data, model_axis
      mesh = mesh_lib.make_mesh(config.mesh, devices=jax.devices()[:data * model_axis])
      model = mesh_lib.shard_items(build_model(config.model, N, 40), mesh, N)
      n_pad = mesh_lib.padded_items(N, model_axis)
      tx = optim_lib.make_optimizer(config.optim, 3, 2, 1 + config.train.refeed_steps)
      create = lambda: state_lib.create_train_state(model, tx, N, config.model.sparse_input, 0)
      shardings = mesh_lib.state_shardings(jax.eval_shape(create), mesh, N)
      state = jax.jit(create, out_shardings=shardings)()
      step = step_lib.make_train_step(model, config, N, mesh, state_sharding=shardings)
      if kind in ("gram", "entries"):
        assert step_lib.loss_impl(model, config) == kind
      losses, gathers = [], None
      for host_batch in BatchIterator(inter, 16, num_shards=data, seed=0).epoch(0):
        batch = mesh_lib.put_global(host_batch, mesh_lib.batch_sharding(mesh))
        if gathers is None:
          gathers = item_sized_all_gathers(step.lower(state, batch).compile().as_text(), n_pad)
        state, metrics = step(state, batch)
        losses += [float(metrics["loss"])] + ([float(metrics["refeed_loss"])]
                                              if "refeed_loss" in metrics else [])
      kernel = state.params["encoder_0"]["kernel"]
      mu = [x for path, x in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]
            if "mu" in str(path) and "encoder_0" in str(path) and "kernel" in str(path)][0]
      last = "decoder_0"
      bias = state.params[last]["bias"]
      score_fn, _ = step_lib.make_eval_fns(model, mesh, n_cols=N,
                                           sparse_input=config.model.sparse_input,
                                           param_sharding=shardings.params)
      host_batch = next(iter(BatchIterator(inter, 16, num_shards=data, shuffle=False).epoch(0)))
      scores = score_fn(state.params, mesh_lib.put_global(host_batch,
                                                          mesh_lib.batch_sharding(mesh)))
      params = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(x)
                for path, x in jax.tree_util.tree_flatten_with_path(state.params)[0]}
      out[f"{data}x{model_axis}"] = {
          "losses": losses, "gathers": gathers, "n_pad": n_pad,
          "kernel_spec": list(kernel.sharding.spec), "mu_spec": list(mu.sharding.spec),
          "bias_spec": list(bias.sharding.spec),
          "last_kernel_spec": (list(state.params[last]["kernel"].sharding.spec)
                               if "kernel" in state.params[last] else None),
          "kernel_shard_rows": sorted({s.data.shape[0] for s in kernel.addressable_shards}),
          "padding_abs": float(np.abs(np.asarray(kernel)[N:]).sum()),
          "scores": np.asarray(scores).tolist(),
          # Items beyond N (padding) are cut off: the first N are the 1-device layer's.
          "params": {k: (v[:N] if v.shape[0] == n_pad else v[..., :N] if v.shape[-1] == n_pad
                         else v).ravel().tolist() for k, v in params.items()}}

    # The whole loop on a 2 x 4 mesh vs 8 x 1: same metrics, checkpoint restorable for evaluation.
    if kind == "loop":
      ds = tiny_dataset(n_rows=32, n_cols=N, seed=1)
      for data, model_axis in ((8, 1), (2, 4)):
        c = rated_config(epochs=2)
        c.train.batch_size = 16
        c.mesh.data, c.mesh.model = data, model_axis
        wd = tempfile.mkdtemp()
        final = loop.train_and_evaluate(c, wd, dataset=ds)
        saved_config, params, _ = ckpt_lib.load_for_eval(wd)
        vectors = export.decoder_vectors(saved_config.model, params, N)
        out[f"loop{data}x{model_axis}"] = {
            "rmse": final["rmse"], "loss": final["loss"],
            "kernel_shape": list(params["encoder_0"]["kernel"].shape),
            "vectors": np.asarray(vectors).tolist()}
    print("RESULT" + json.dumps(out))
""")


def _run_child(kind: str) -> dict:
  return run_on_eight_devices(_CHILD, kind, timeout=600)


def _check_like_one_device(run: dict, one: dict, rows: list[int]) -> None:
  # The first layer's kernel, its Adam moment and the last bias are cut into item slices.
  assert run["kernel_spec"] == ["model"], run["kernel_spec"]
  assert run["mu_spec"] == run["kernel_spec"]
  assert run["bias_spec"] == ["model"]
  assert run["last_kernel_spec"] in (None, ["model"])     # item-major [n, d]: rows (None: tied)
  assert run["kernel_shard_rows"] == rows
  assert run["padding_abs"] == 0.0          # padded rows (2x4: items 30, 31) stay zero
  assert run["gathers"] == [], run["gathers"]
  np.testing.assert_allclose(run["losses"], one["losses"], rtol=1e-5)
  np.testing.assert_allclose(run["scores"], one["scores"], rtol=1e-4, atol=1e-5)
  assert run["params"].keys() == one["params"].keys()
  for k in one["params"]:
    np.testing.assert_allclose(run["params"][k], one["params"][k], rtol=1e-5, atol=1e-6,
                               err_msg=k)


@pytest.mark.parametrize("kind", ["sparse", "gram", "entries"])
def test_model_axis_matches_one_device(kind):
  out = _run_child(kind)
  one = out["1x1"]
  assert one["kernel_spec"] == []
  for name, rows in (("2x4", [8]), ("4x2", [15])):
    _check_like_one_device(out[name], one, rows)
  assert out["2x4"]["n_pad"] == 32 and out["4x2"]["n_pad"] == 30
  assert (out["4x2"]["last_kernel_spec"] is None) == (kind == "sparse")    # tied: no kernel


def test_item_major_output_of_mult_dae_on_a_model_axis():
  """Mult-DAE's output kernel ``[n, d]`` (``layers.ItemDense``) is cut into item rows too, and the
  multinomial read at the entries trains as on one device (30 items over 2: no padding)."""
  out = _run_child("mult_dae")
  assert out["4x2"]["last_kernel_spec"] == ["model"]
  _check_like_one_device(out["4x2"], out["1x1"], [15])


@pytest.mark.slow
def test_training_loop_on_a_model_axis():
  out = _run_child("loop")
  sharded, data_only = out["loop2x4"], out["loop8x1"]
  # The checkpoint keeps the padded item dimension; load_for_eval restores it from the config.
  assert sharded["kernel_shape"] == [32, 6] and data_only["kernel_shape"] == [30, 6]
  np.testing.assert_allclose(sharded["rmse"], data_only["rmse"], rtol=1e-5)
  np.testing.assert_allclose(sharded["loss"], data_only["loss"], rtol=1e-5)
  # The exported item vectors drop the padding: the same [30, 6] as the unsharded run's.
  np.testing.assert_allclose(sharded["vectors"], data_only["vectors"], rtol=1e-4, atol=1e-6)


def test_item_rule_and_errors():
  # The rule: the last axis whose length is the padded item count goes over "model".
  assert mesh_lib.item_axis_spec((32, 6), 32) == mesh_lib.P("model")
  assert mesh_lib.item_axis_spec((6, 32), 32) == mesh_lib.P(None, "model")
  assert mesh_lib.item_axis_spec((32, 32), 32) == mesh_lib.P(None, "model")
  assert mesh_lib.item_axis_spec((6,), 32) == mesh_lib.P()
  assert mesh_lib.item_axis_spec((), 32) == mesh_lib.P()
  assert mesh_lib.padded_items(30, 4) == 32 and mesh_lib.padded_items(30, 1) == 30

  class FakeMesh:                               # only .shape is read by shard_items
    shape = {"data": 1, "model": 4}

  padded = mesh_lib.shard_items(DeepAE(n_cols=30, layers=(6,)), FakeMesh(), 30)
  assert padded.item_shards == 4 and padded.padded_cols == 32

  class NoPadding:
    n_cols = 30

  with pytest.raises(ConfigError, match="mesh.model=4 must divide the 30 items"):
    mesh_lib.shard_items(NoPadding(), FakeMesh(), 30)
  assert isinstance(mesh_lib.shard_items(NoPadding(), FakeMesh(), 32), NoPadding)
