"""Data parallelism: a mesh of 8 (virtual CPU) devices trains exactly like a mesh of 1.

The comparison runs in a child process because the device count is fixed when jax starts:
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` is in the child's environment (conftest). Both
meshes see the same global batches (same seed, same rows; only the number of data shards differs)
and must give the same losses and parameters within float tolerance.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from tests.conftest import run_on_eight_devices


_CHILD = textwrap.dedent("""
    import json, sys
    import jax
    import numpy as np
    from jaxae.data.batching import BatchIterator
    from jaxae.training import mesh as mesh_lib
    from tests.test_step import make_engine, tiny_config, tiny_interactions

    sparse_input = sys.argv[1] == "sparse"
    assert len(jax.devices()) == 8, jax.devices()
    inter = tiny_interactions(n_rows=40, n_cols=12, seed=5)   # 40 rows / 16: last batch padded
    B, epochs = 16, 1
    if sys.argv[1] == "lbfgs":      # L-BFGS: the line search runs on the sharded batch too
      config = tiny_config(optim="lbfgs", lr=1.0, batch_size=16)
      config.optim.memory_size = 4
    elif sys.argv[1] == "glocal_k":  # every row in one sharded batch, scattered into the matrix
      B, epochs = 48, 3
      config = tiny_config(optim="lbfgs", lr=1.0, batch_size=B)
      config.optim.memory_size = 4
      config.model = type(config.model)(dict(name="glocal_k", hidden=[7, 5], kernel_dim=3,
                                             activation="sigmoid", gk_size=3, dot_scale=0.5))
      config.loss.kernel_l2 = 1e-3
    else:
      config = tiny_config(code_dropout=0.3, refeed_steps=1, refeed_noise=0.1, batch_size=16)
    config.model.sparse_input = sparse_input
    out = {}
    for name, devices in (("8", jax.devices()), ("1", jax.devices()[:1])):
      mesh = mesh_lib.make_mesh(config.mesh, devices=devices)
      _, mesh, state, step = make_engine(config, inter, mesh)
      shards = mesh_lib.data_size(mesh)
      it = BatchIterator(inter, B, num_shards=shards, seed=0)
      init = [np.asarray(x).ravel().tolist() for x in jax.tree.leaves(state.params)]
      losses = []
      for host_batch in (b for e in range(epochs) for b in it.epoch(e)):
        batch = mesh_lib.put_global(host_batch, mesh_lib.batch_sharding(mesh))
        # Each device holds its own rows and their nonzeros (one [1, N] shard of cols each).
        assert [s.data.shape[0] for s in batch.cols.addressable_shards] == [1] * shards
        assert [s.data.shape[0] for s in batch.rows.addressable_shards] == [B // shards] * shards
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
        losses.append(float(metrics.get("refeed_loss", 0.0)))
      assert all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state.params))
      assert len(jax.tree.leaves(state.params)[0].sharding.device_set) == len(devices)
      out[name] = {"losses": losses, "step": int(state.step), "init": init,
                   "params": [np.asarray(x).ravel().tolist()
                              for x in jax.tree.leaves(state.params)]}
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.parametrize("kind", ["dense", "sparse", "lbfgs", "glocal_k"])
def test_eight_devices_match_one_device(kind):
  out = run_on_eight_devices(_CHILD, kind)
  eight, one = out["8"], out["1"]
  assert eight["step"] == one["step"] == 3
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)
  assert len(eight["params"]) == len(one["params"])
  for a, b in zip(eight["params"], one["params"]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # The runs did train: the parameters moved away from their (shared) initial values.
  assert not np.allclose(np.concatenate(eight["params"]), np.concatenate(eight["init"]))
