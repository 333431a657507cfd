"""Multi-process training: `train.py` as two cooperating processes on this machine (JAX's CPU
collectives, gloo) ends with the same parameters as one process with the same two devices.

Each process has one CPU device; the single process gets two (``--xla_force_host_platform_device_
count=2``), so both runs have a data axis of 2 and see the same global batches. The two processes
share one workdir: checkpoints are written once (Orbax coordinates), and only process 0 logs.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from jaxae.errors import ConfigError
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import mesh as mesh_lib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

CONFIG = textwrap.dedent("""
    from configs import base

    def get_config():
      c = base.get_base()
      c.data.name = "movielens"          # embedded synthetic ratings: 600 users x 1000 items
      c.data.path = None
      c.data.split = "u1"
      c.data.test_fraction = 0.1
      c.data.val_fraction = 0.1
      c.data.orientation = "user"
      c.data.rating_range = (1.0, 5.0)
      c.model.name = "deep_ae"
      c.model.layers = (16,)
      c.model.activation = "selu"
      c.model.tied = False
      c.model.code_dropout = 0.2
      c.model.last_activation = False
      c.model.sparse_input = True
      c.model.dtype = "float32"
      c.loss.masked_mse = 1.0
      c.optim.name = "adam"
      c.optim.lr = 1e-3
      c.train.batch_size = 64
      c.train.epochs = 2
      c.train.refeed_steps = 1
      c.train.log_every_steps = 4
      c.eval.evaluators = ("rating",)
      c.eval.metric = "rmse"
      c.eval.metric_mode = "min"
      c.eval.batch_size = 128
      return c
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict[str, str]:
  env = dict(os.environ)
  env["JAX_PLATFORMS"] = "cpu"
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
  return env


def _train_cmd(config: pathlib.Path, workdir: pathlib.Path, *extra: str) -> list[str]:
  return [sys.executable, str(REPO_ROOT / "train.py"), f"--config={config}",
          f"--workdir={workdir}", *extra]


def _final_params(workdir: pathlib.Path):
  _, params, meta = ckpt_lib.load_for_eval(workdir)
  return meta["step"], [np.asarray(x) for x in jax.tree.leaves(params)]


def _one_and_two_processes(config: pathlib.Path, one: pathlib.Path, two: pathlib.Path):
  """``train.py`` with ``config`` as one process with two devices (workdir ``one``), then as two
  cooperating processes with one each (``two``); returns the two processes' (stdout, stderr)."""
  single = subprocess.run(_train_cmd(config, one), cwd=REPO_ROOT, env=_env(2),
                          capture_output=True, text=True, timeout=600)
  assert single.returncode == 0, single.stderr[-3000:]
  port = _free_port()
  procs = [subprocess.Popen(
      _train_cmd(config, two, f"--coordinator_address=localhost:{port}", "--num_processes=2",
                 f"--process_id={i}"),
      cwd=REPO_ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return outs


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
  config = tmp_path / "mp_config.py"
  config.write_text(CONFIG)
  one, two = tmp_path / "one", tmp_path / "two"
  outs = _one_and_two_processes(config, one, two)

  # Process 0 logged the data, the progress and the final metrics; process 1 none of it.
  assert "final" in outs[0][0] and "rmse" in outs[0][0] and "dataset movielens" in outs[0][1]
  assert "rmse" not in outs[1][0] and "step" not in outs[1][0]
  assert "dataset movielens" not in outs[1][1]
  # One set of checkpoints, at the same steps as the single process's.
  steps_two = sorted(os.listdir(two / "checkpoints"))
  assert steps_two == sorted(os.listdir(one / "checkpoints")) and steps_two
  step_one, params_one = _final_params(one)
  step_two, params_two = _final_params(two)
  assert step_one == step_two > 0
  for a, b in zip(params_two, params_one):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


TOPN_CONFIG = textwrap.dedent("""
    from configs import base

    def get_config():
      c = base.get_base()
      c.data = base.lightgcn_data()      # path None: embedded synthetic implicit data
      c.model.name = "cdae"
      c.model.hidden = 16
      c.model.corruption = 0.2
      c.model.output = "sigmoid"
      c.model.sparse_input = True
      c.loss.bce = 1.0
      c.train.batch_size = 64
      c.train.epochs = 1
      c.train.log_every_steps = 4
      c.eval = base.topn_eval(20)
      c.eval.ks = (5, 20)
      c.eval.batch_size = 128
      c.eval.score_dtype = "{score_dtype}"
      c.eval.score_tile = {score_tile}
      return c
""")


@pytest.mark.slow
@pytest.mark.parametrize("score_dtype,score_tile", [("bfloat16", 0), ("model", 128)])
def test_two_processes_rank_like_one_process(tmp_path, score_dtype, score_tile):
  """The top-N evaluator's output layer scored apart (from bfloat16 operands, or in column tiles)
  with each process holding half of every chunk's rows: the validation metrics of one process."""
  from jaxae.training import logging as log_lib  # pylint: disable=import-outside-toplevel
  config = tmp_path / "mp_topn.py"
  config.write_text(TOPN_CONFIG.format(score_dtype=score_dtype, score_tile=score_tile))
  one, two = tmp_path / "one", tmp_path / "two"
  _one_and_two_processes(config, one, two)

  def val_metrics(workdir):
    recs = [r for r in log_lib.read_metrics(workdir / "metrics.jsonl") if r["split"] == "val"]
    assert recs, workdir
    return {k: v for k, v in recs[-1].items() if k != "split"}

  m_one, m_two = val_metrics(one), val_metrics(two)
  assert m_one["recall@20"] > 0 and m_one["rows_evaluated"] > 1000
  assert m_two == pytest.approx(m_one, rel=1e-5, abs=1e-6)


def test_distributed_flags_go_together():
  with pytest.raises(ConfigError, match="go together"):
    mesh_lib.initialize_distributed(coordinator_address="localhost:1234", num_processes=2)
  with pytest.raises(ConfigError, match="process_id=2"):
    mesh_lib.initialize_distributed(coordinator_address="localhost:1234", num_processes=2,
                                    process_id=2)


def test_train_py_reports_a_bad_flag_combination(tmp_path):
  config = tmp_path / "mp_config.py"
  config.write_text(CONFIG)
  proc = subprocess.run(_train_cmd(config, tmp_path / "wd", "--num_processes=2"), cwd=REPO_ROOT,
                        env=_env(1), capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith("error: --coordinator_address")
