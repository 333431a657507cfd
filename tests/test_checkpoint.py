"""Checkpoints: round trip, resume step, last-N + best retention, shape mismatch, eval loading."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest

from jaxae.errors import CheckpointError
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import mesh as mesh_lib
from tests.test_step import first_batch, host, make_engine, tiny_config, tiny_interactions

INFO = {"name": "tiny", "n_rows": 24, "n_cols": 10}


def _trained(config, inter, steps: int):
  model, mesh, state, step = make_engine(config, inter)
  batch = mesh_lib.put_global(first_batch(inter, 8), mesh_lib.batch_sharding(mesh))
  for _ in range(steps):
    state, _ = step(state, batch)
  return model, mesh, state, step, batch


def test_round_trip_and_resume_step(tmp_path):
  inter = tiny_interactions()
  config = tiny_config()
  _, mesh, state, step, batch = _trained(config, inter, 3)
  saved = host(state)
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=2)
  assert ckpt.save(state, config=config, dataset_info=INFO, metrics={"loss": 1.5})
  assert not ckpt.save(state, config=config, dataset_info=INFO, metrics={})   # same step: skipped
  # Keep training (the step donates its input state) while the save completes.
  for _ in range(2):
    state, _ = step(state, batch)
  ckpt.wait()
  ckpt.close()

  _, _, fresh, _ = make_engine(tiny_config(seed=7), inter, mesh)
  restored = ckpt_lib.restore_latest(tmp_path, fresh)
  assert int(restored.step) == 3
  for a, b in zip(jax.tree.leaves(host(restored)), jax.tree.leaves(saved)):
    np.testing.assert_array_equal(a, b)
  assert all(x.sharding.is_equivalent_to(mesh_lib.replicated(mesh), x.ndim)
             for x in jax.tree.leaves(restored.params))
  # The restored state trains on exactly like the original did.
  cont, _ = step(restored, batch)
  assert int(cont.step) == 4
  saved_json = ckpt_lib.Checkpointer(tmp_path, read_only=True).restore_json()
  assert saved_json["metrics"] == {"loss": 1.5}
  assert saved_json["config"]["model"]["layers"] == [6]
  assert saved_json["dataset_info"] == INFO


def test_restore_latest_without_checkpoint_is_none(tmp_path):
  inter = tiny_interactions()
  _, _, state, _ = make_engine(tiny_config(), inter)
  assert ckpt_lib.restore_latest(tmp_path, state) is None


def test_shape_mismatch_names_the_parameter_and_both_shapes(tmp_path):
  inter = tiny_interactions()
  _, _, state, _ = make_engine(tiny_config(layers=(6,)), inter)
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=1)
  ckpt.save(state, config=tiny_config(), dataset_info=INFO, metrics={})
  ckpt.wait()
  ckpt.close()
  _, _, other, _ = make_engine(tiny_config(layers=(5,)), inter)
  with pytest.raises(CheckpointError) as err:
    ckpt_lib.restore_latest(tmp_path, other)
  msg = str(err.value)
  # The output layer's kernel is [items, in]: (10, 6) saved, (10, 5) wanted.
  assert "'params.decoder_0.kernel' has shape (10, 6) in the checkpoint but (10, 5)" in msg, msg
  assert "\n" not in msg


def _old_layout(tree, name: str = "decoder_0"):
  """``tree`` as a checkpoint written before the deep AE's output kernel was item-major: that
  kernel (and the optimizer moments that mirror it) [width, items]."""
  def one(path, x):
    names = [ckpt_lib._key_name(k) for k in path]        # pylint: disable=protected-access
    return x.T if names[-2:] == [name, "kernel"] else x

  return jax.tree_util.tree_map_with_path(one, tree)


def test_checkpoint_of_the_older_output_layout_restores_transposed(tmp_path, capsys):
  inter = tiny_interactions()
  config = tiny_config(optim="adam")
  _, mesh, state, step, batch = _trained(config, inter, 2)
  saved = host(state)
  old = _old_layout(state)
  assert old.params["decoder_0"]["kernel"].shape == (6, 10)
  moved = {k: v for k, v in ckpt_lib.tree_shapes(old).items() if v == (6, 10)}
  assert sorted(moved) == ["opt_state.0.0.mu.decoder_0.kernel", "opt_state.0.0.nu.decoder_0.kernel",
                           "params.decoder_0.kernel"]                      # Adam's moments too
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=1)
  ckpt.save(old, config=config, dataset_info=INFO, metrics={})
  ckpt.wait()
  ckpt.close()
  _, _, fresh, _ = make_engine(tiny_config(optim="adam", seed=3), inter, mesh)
  restored = ckpt_lib.restore_latest(tmp_path, fresh)
  notice = capsys.readouterr().err
  assert "params.decoder_0.kernel" in notice and "transposed as it is restored" in notice, notice
  for a, b in zip(jax.tree.leaves(host(restored)), jax.tree.leaves(saved)):
    np.testing.assert_array_equal(a, b)
  assert all(x.sharding.is_equivalent_to(mesh_lib.replicated(mesh), x.ndim)
             for x in jax.tree.leaves(restored.params))
  step(restored, batch)                                         # and it trains on
  _, params, _ = ckpt_lib.load_for_eval(tmp_path)               # eval.py's way in
  for a, b in zip(jax.tree.leaves(host(params)), jax.tree.leaves(saved.params)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("model,loss,layer", [
    (dict(name="cdae", hidden=6, corruption=0.0, output="sigmoid"), "bce", "decoder"),
    (dict(name="mult_dae", layers=[6], input_dropout=0.0, activation="tanh"), "multinomial",
     "decoder_0"),
])
def test_older_output_layout_of_cdae_and_mult_dae_restores_transposed(tmp_path, capsys, model,
                                                                      loss, layer):
  inter = tiny_interactions()
  config = tiny_config(optim="adam")
  config.model = ml_collections.ConfigDict(dict(model, dtype="float32"))
  config.loss = ml_collections.ConfigDict({loss: 1.0})
  _, mesh, state, step, batch = _trained(config, inter, 2)
  assert state.params[layer]["kernel"].shape == (10, 6)                     # item-major
  saved = host(state)
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=1)
  ckpt.save(_old_layout(state, layer), config=config, dataset_info=INFO, metrics={})
  ckpt.wait()
  ckpt.close()
  config.seed = 3
  _, _, fresh, _ = make_engine(config, inter, mesh)
  restored = ckpt_lib.restore_latest(tmp_path, fresh)
  assert f"params.{layer}.kernel" in capsys.readouterr().err
  for a, b in zip(jax.tree.leaves(host(restored)), jax.tree.leaves(saved)):
    np.testing.assert_array_equal(a, b)
  step(restored, batch)


def test_only_the_last_decoder_kernel_may_be_saved_transposed(tmp_path):
  inter = tiny_interactions()
  config = tiny_config(layers=(6, 4))
  _, _, state, _ = make_engine(config, inter)
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=1)
  ckpt.save(_old_layout(state, "decoder_0"), config=config, dataset_info=INFO, metrics={})
  ckpt.wait()
  ckpt.close()
  with pytest.raises(CheckpointError,
                     match=r"decoder_0.kernel' has shape \(6, 4\) in the checkpoint but \(4, 6\)"):
    ckpt_lib.restore_latest(tmp_path, state)


@pytest.mark.parametrize("mode,best", [("min", 1), ("max", 2)])
def test_keeps_the_last_n_and_the_best(tmp_path, mode, best):
  inter = tiny_interactions()
  _, _, state, _ = make_engine(tiny_config(), inter)
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=2, metric="rmse", mode=mode)
  for step, rmse in [(1, 0.5), (2, 0.9), (3, 0.7), (4, 0.8), (5, 0.6)]:
    ckpt.save(state.replace(step=state.step * 0 + step), config=tiny_config(),
              dataset_info=INFO, metrics={"rmse": rmse, "loss": 1.0})
  ckpt.wait()
  assert sorted(ckpt.all_steps()) == sorted({best, 4, 5})
  assert ckpt.best_step() == best
  ckpt.close()


def test_load_for_eval_rebuilds_the_model_from_the_saved_config(tmp_path):
  inter = tiny_interactions()
  config = tiny_config(layers=(5,))
  model, _, state, _, batch = _trained(config, inter, 2)
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=1)
  ckpt.save(state, config=config, dataset_info=INFO, metrics={"loss": 2.0})
  ckpt.wait()
  ckpt.close()
  loaded_config, params, info = ckpt_lib.load_for_eval(tmp_path)
  assert loaded_config.model.layers == [5]
  assert info["step"] == 2 and info["dataset_info"]["n_cols"] == 10
  assert info["metrics"] == {"loss": 2.0}
  for a, b in zip(jax.tree.leaves(host(params)), jax.tree.leaves(host(state.params))):
    np.testing.assert_array_equal(a, b)
  x = inter.matrix[np.asarray(batch.rows)].toarray()
  np.testing.assert_allclose(model.apply({"params": params}, x, train=False)["recon"],
                             model.apply({"params": state.params}, x, train=False)["recon"])
  with pytest.raises(CheckpointError, match="no checkpoint at step 99"):
    ckpt_lib.load_for_eval(tmp_path, step=99)
  with pytest.raises(CheckpointError, match="no checkpoints"):
    ckpt_lib.load_for_eval(tmp_path / "nothing")
