"""Reliability of a run: bit-identical resume, corrupt checkpoints, the NaN / Inf guard, workdir
checks before training, one-line errors from the command line, and ids unseen in training.

The SIGKILL version of the resume test (real subprocesses, a real kill): tests/test_resume_kill.py.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxae import cli
from jaxae.data import pipelines
from jaxae.data.batching import BatchIterator
from jaxae.data.dataset import Dataset, EvalSplit
from jaxae.data.matrix import Interactions
from jaxae.errors import CheckpointError
from jaxae.evaluation import EvalContext
from jaxae.evaluation.topn import TopNEvaluator
from jaxae.models import build_model
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import logging as log_lib
from jaxae.training import loop
from jaxae.training import mesh as mesh_lib
from jaxae.training import optim as optim_lib
from jaxae.training import state as state_lib
from jaxae.training import step as step_lib
from tests.test_loop import tiny_dataset
from tests.test_step import host, make_engine, tiny_config, tiny_interactions

INFO = {"name": "tiny", "n_rows": 24, "n_cols": 10}


@pytest.fixture(autouse=True)
def no_png(monkeypatch):
  """curves.png is drawn after every epoch (matplotlib, ~0.5 s): not what these tests check."""
  monkeypatch.setattr(log_lib, "plot_curves", lambda *args, **kwargs: None)


def _leaves(tree) -> list[np.ndarray]:
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


def _assert_bit_identical(a, b) -> None:
  la, lb = _leaves(a), _leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    assert x.dtype == y.dtype and x.shape == y.shape
    assert x.tobytes() == y.tobytes()


def _dir_digest(path) -> str:
  h = hashlib.sha256()
  for f in sorted(glob.glob(os.path.join(path, "**"), recursive=True)):
    if os.path.isfile(f):
      h.update(os.path.relpath(f, path).encode())
      with open(f, "rb") as fh:
        h.update(fh.read())
  return h.hexdigest()


def _one_line_error(capsys) -> str:
  err = capsys.readouterr().err
  lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
  assert len(lines) == 1 and "Traceback" not in err, err
  return lines[0]


# --------------------------------------------------------------------------- NaN / Inf guard
def test_step_refuses_a_non_finite_update_inside_the_jit():
  inter = tiny_interactions()
  r, c, v = inter.to_coo_ids()
  v = v.copy()
  v[0] = np.nan                                      # row 0 holds a NaN rating
  bad = Interactions.from_coo(r, c, v, row_ids=inter.row_ids, col_ids=inter.col_ids)
  config = tiny_config(refeed_steps=1)               # the normal pass and a re-feed pass
  _, mesh, state, step = make_engine(config, bad)
  sharding = mesh_lib.batch_sharding(mesh)
  batches = BatchIterator(bad, 8, shuffle=False, nnz_buckets=1).epoch(0)
  with_nan, finite = [mesh_lib.put_global(b, sharding) for b in list(batches)[:2]]

  before = host(state)
  state, metrics = step(state, with_nan)
  assert not bool(metrics["is_finite"]) and not np.isfinite(float(metrics["loss"]))
  assert int(state.step) == int(before.step) + 1     # the data order stays aligned
  _assert_bit_identical(state.params, before.params)  # refused: params and optimizer untouched
  _assert_bit_identical(state.opt_state, before.opt_state)

  kept = host(state)
  state, metrics = step(state, finite)
  assert bool(metrics["is_finite"]) and np.isfinite(float(metrics["loss"]))
  changed = [not np.array_equal(a, b) for a, b in zip(_leaves(state.params), _leaves(kept.params))]
  assert all(changed)
  assert all(np.isfinite(x).all() for x in _leaves(state.params))


def test_nan_guard_stops_at_the_sync_naming_the_step_and_the_last_good_checkpoint(tmp_path,
                                                                                  capsys):
  ds = tiny_dataset(n_rows=48)
  config = tiny_config(epochs=2)
  config.train.checkpoint_every_steps = 2
  config.train.log_every_steps = 3
  num_shards = mesh_lib.data_size(mesh_lib.make_mesh(config.mesh))
  order = BatchIterator(ds.train, 8, num_shards=num_shards, seed=0).order(0)
  # The 5th batch of epoch 1 holds the row that gets a NaN: step 5 is the first bad one.
  r, c, v = ds.train.to_coo_ids()
  v = v.copy()
  v[np.flatnonzero(r == ds.train.row_ids[order[4 * 8]])[0]] = np.nan
  train = Interactions.from_coo(r, c, v, row_ids=ds.train.row_ids, col_ids=ds.train.col_ids)
  ds = Dataset(train=train, val=None, info=ds.info)

  with pytest.raises(SystemExit) as exit_info:
    cli.run(loop.train_and_evaluate, config, tmp_path, dataset=ds)
  assert exit_info.value.code == 2
  msg = _one_line_error(capsys)
  assert "non-finite loss or gradient at step 5 (epoch 1)" in msg, msg
  ckpt_dir = os.path.join(tmp_path, "checkpoints")
  assert f"the last good checkpoint is step 4 ({ckpt_dir}/4), left intact" in msg, msg

  ckpt = ckpt_lib.Checkpointer(tmp_path, read_only=True)
  assert ckpt.all_steps() == [4]                      # nothing saved after the bad step
  _, params, _ = ckpt_lib.load_for_eval(tmp_path)
  assert all(np.isfinite(x).all() for x in _leaves(params))
  ckpt.close()
  # The guard was read at the sync after the bad step (step 6), not at the step itself.
  with open(tmp_path / "metrics.jsonl", encoding="utf-8") as f:
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in f if '"train"' in line]
  assert steps[-1] == 6


# ----------------------------------------------------------------- resume and corrupt steps
def _reuse_compiled_step(monkeypatch) -> None:
  """One jitted train step per (config, columns) for the runs of a test: each run would compile
  the same program again (seconds here); running it from one executable changes no bit. Separate
  processes, which do compile again, are tests/test_resume_kill.py's."""
  real_step, real_tx = step_lib.make_train_step, optim_lib.make_optimizer
  cache = {}

  def make(model, config, n_cols, mesh, *args, **kwargs):
    key = ("step", config.to_json(), n_cols)
    if key not in cache:
      cache[key] = real_step(model, config, n_cols, mesh, *args, **kwargs)
    return cache[key]

  def make_tx(optim_config, *args):        # the same optax object: the state's static part
    key = ("tx", optim_config.to_json(), args)
    if key not in cache:
      cache[key] = real_tx(optim_config, *args)
    return cache[key]
  monkeypatch.setattr(step_lib, "make_train_step", make)
  monkeypatch.setattr(optim_lib, "make_optimizer", make_tx)


def _interrupt_after(monkeypatch, n_steps: int):
  """The next run's train step raises KeyboardInterrupt when asked for step ``n_steps + 1``;
  returns the real ``make_train_step``."""
  real = step_lib.make_train_step

  def make(*args, **kwargs):
    fn = real(*args, **kwargs)
    calls = [0]

    def step(state, batch):
      calls[0] += 1
      if calls[0] > n_steps:
        raise KeyboardInterrupt
      return fn(state, batch)
    return step
  monkeypatch.setattr(step_lib, "make_train_step", make)
  return real


def _truncate_arrays(step_dir: str) -> None:
  for f in glob.glob(os.path.join(step_dir, "state", "**", "d", "*"), recursive=True):
    with open(f, "r+b") as fh:
      fh.truncate(max(os.path.getsize(f) // 2, 1))


def test_interrupted_run_resumes_mid_epoch_past_a_corrupt_checkpoint_bit_identically(
    tmp_path, monkeypatch, capsys):
  ds = tiny_dataset()                                 # 24 rows, batch 8: 3 steps per epoch
  config = tiny_config(epochs=3)
  config.train.checkpoint_every_steps = 2             # steps 2, 4, 8 mid-epoch; 3, 6, 9 at ends
  config.train.keep_checkpoints = 3
  config.train.log_every_steps = 100
  _reuse_compiled_step(monkeypatch)
  straight = loop.train_and_evaluate(config, tmp_path / "straight", dataset=ds)
  assert straight["step"] == 9

  wd = tmp_path / "interrupted"
  real = _interrupt_after(monkeypatch, 7)
  with pytest.raises(SystemExit) as exit_info:
    cli.run(loop.train_and_evaluate, config, wd, dataset=ds)
  assert exit_info.value.code == 130
  monkeypatch.setattr(step_lib, "make_train_step", real)
  ckpt = ckpt_lib.Checkpointer(wd, read_only=True)
  assert ckpt.all_steps() == [3, 4, 6]
  ckpt.close()
  _truncate_arrays(os.path.join(wd, "checkpoints", "6"))   # the latest step reads back broken
  capsys.readouterr()

  resumed = loop.train_and_evaluate(config, wd, dataset=ds)
  captured = capsys.readouterr()
  assert "checkpoint step 6" in captured.err and "corrupt" in captured.err
  assert "using step 4" in captured.err and "Traceback" not in captured.err
  assert "resumed from" in captured.out and "at step 4" in captured.out
  assert os.path.isdir(os.path.join(wd, "checkpoints_corrupt", "6"))
  assert resumed["step"] == 9
  _, a, _ = ckpt_lib.load_for_eval(tmp_path / "straight")
  _, b, _ = ckpt_lib.load_for_eval(wd)
  _assert_bit_identical(a, b)                          # epoch 2 replayed from its 2nd batch


@pytest.fixture(scope="module")
def two_saved_steps(tmp_path_factory):
  """A workdir holding checkpoints at steps 1 and 2 of the tiny model, and their host states."""
  wd = tmp_path_factory.mktemp("saved")
  inter = tiny_interactions()
  _, mesh, state, step = make_engine(tiny_config(), inter)
  batch = mesh_lib.put_global(next(iter(BatchIterator(inter, 8, nnz_buckets=1).epoch(0))),
                              mesh_lib.batch_sharding(mesh))
  ckpt = ckpt_lib.Checkpointer(wd, keep=2)
  saved = {}
  for _ in range(2):
    state, _ = step(state, batch)
    saved[int(state.step)] = host(state)
    ckpt.save(state, config=tiny_config(), dataset_info=INFO, metrics={"loss": 1.0})
    ckpt.wait()
  ckpt.close()
  return wd, saved, state


CORRUPTIONS = {
    "truncated arrays": _truncate_arrays,
    "garbage arrays": lambda d: [open(f, "wb").write(b"\x00garbage" * 64) for f in glob.glob(
        os.path.join(d, "state", "**", "d", "*"), recursive=True)],
    "no array metadata": lambda d: os.remove(os.path.join(d, "state", "_METADATA")),
    "no metrics item": lambda d: os.remove(os.path.join(d, "metrics", "metrics")),
    "empty step folder": lambda d: [shutil.rmtree(d), os.makedirs(d)],
    "zeroed manifest": lambda d: open(os.path.join(d, "state", "manifest.ocdbt"), "wb").close(),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_corrupt_latest_step_is_reported_moved_aside_and_the_previous_one_used(
    two_saved_steps, kind, tmp_path, capfd):
  src, saved, state = two_saved_steps
  wd = tmp_path / "wd"
  shutil.copytree(src, wd)
  CORRUPTIONS[kind](os.path.join(wd, "checkpoints", "2"))
  warnings = []
  ckpt = ckpt_lib.Checkpointer(wd, keep=2)
  restored, step, meta = ckpt.restore_good(state, warn=warnings.append)
  assert step == 1 and meta["metrics"] == {"loss": 1.0}
  _assert_bit_identical(restored, saved[1])
  assert len(warnings) == 1 and "checkpoint step 2" in warnings[0] and "using step 1" in warnings[0]
  assert "\n" not in warnings[0]
  assert ckpt.all_steps() == [1]                       # step 2 will be saved again
  assert os.path.isdir(wd / "checkpoints_corrupt" / "2")
  ckpt.close()
  assert "Traceback" not in capfd.readouterr().err


def test_checkpoint_with_non_finite_values_is_corrupt(two_saved_steps, tmp_path):
  src, saved, state = two_saved_steps
  wd = tmp_path / "wd"
  shutil.copytree(src, wd)
  ckpt = ckpt_lib.Checkpointer(wd, keep=3)
  params = jax.tree.map(lambda x: x * jnp.nan, state.params)
  ckpt.save(state.replace(params=params, step=state.step + 1), config=tiny_config(),
            dataset_info=INFO, metrics={})
  ckpt.wait()
  warnings = []
  _, step, _ = ckpt.restore_good(state, warn=warnings.append)
  assert step == 2 and "holds NaN or Inf" in warnings[0]
  ckpt.close()


def test_steps_without_the_best_metric_rank_last_after_a_restart(two_saved_steps, tmp_path):
  _, _, state = two_saved_steps
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=1, metric="rmse", mode="min")
  ckpt.save(state.replace(step=state.step * 0 + 1), config=tiny_config(), dataset_info=INFO,
            metrics={"rmse": 0.9, "loss": 1.0})
  ckpt.save(state.replace(step=state.step * 0 + 2), config=tiny_config(), dataset_info=INFO,
            metrics={"loss": 0.5}, best_candidate=False)          # a mid-epoch checkpoint
  ckpt.wait()
  ckpt.close()
  # A restarted run reads the steps' metrics back from disk (step 2 has no rmse) and saves on.
  ckpt = ckpt_lib.Checkpointer(tmp_path, keep=1, metric="rmse", mode="min")
  ckpt.save(state.replace(step=state.step * 0 + 3), config=tiny_config(), dataset_info=INFO,
            metrics={"loss": 0.4}, best_candidate=False)
  ckpt.wait()
  assert ckpt.all_steps() == [1, 3] and ckpt.best_step() == 1
  ckpt.close()


def test_shape_mismatch_fails_naming_the_parameter_and_moves_nothing(two_saved_steps, tmp_path):
  src, _, _ = two_saved_steps
  wd = tmp_path / "wd"
  shutil.copytree(src, wd)
  config = tiny_config(layers=(5,))
  model = build_model(config.model, 10, 24)
  tx = optim_lib.make_optimizer(config.optim, 3, 2, 1)
  other = jax.eval_shape(lambda: state_lib.create_train_state(model, tx, 10, False, 0))
  ckpt = ckpt_lib.Checkpointer(wd, keep=2)
  before = _dir_digest(wd)
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match=r"'params\.decoder_0\.kernel' has "
                     r"shape \(10, 6\) in the checkpoint but \(10, 5\)"):   # [items, in]
    ckpt.restore_good(other, warn=pytest.fail)
  ckpt.close()
  assert _dir_digest(wd) == before and not os.path.exists(wd / "checkpoints_corrupt")


def test_every_step_corrupt_means_a_fresh_start(two_saved_steps, tmp_path):
  src, _, state = two_saved_steps
  wd = tmp_path / "wd"
  shutil.copytree(src, wd)
  for s in ("1", "2"):
    _truncate_arrays(os.path.join(wd, "checkpoints", s))
  warnings = []
  ckpt = ckpt_lib.Checkpointer(wd, keep=2)
  assert ckpt.restore_good(state, warn=warnings.append) is None
  assert "using step 1" in warnings[0] and "training starts over" in warnings[1]
  assert ckpt.all_steps() == []
  ckpt.close()


# ------------------------------------------------------------------------ workdir up front
def test_workdir_that_cannot_be_created_fails_before_any_data_is_read(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("x")
  config = tiny_config()
  config.data = ml_collections.ConfigDict(dict(name="no_such_pipeline", path=None))
  # The data config is bad too: the workdir error comes first, so nothing was read.
  with pytest.raises(CheckpointError, match=r"a_file/wd: cannot create the run's folder \(Not a "
                     r"directory\)"):
    loop.train_and_evaluate(config, blocker / "wd")
  (tmp_path / "wd2").mkdir()
  (tmp_path / "wd2" / "checkpoints").write_text("not a folder")
  with pytest.raises(CheckpointError, match="checkpoints: exists but is not a folder"):
    loop.train_and_evaluate(config, tmp_path / "wd2")


def test_checkpoint_size_estimate_is_the_state_arrays():
  config = tiny_config()
  model = build_model(config.model, 10, 24)
  tx = optim_lib.make_optimizer(config.optim, 3, 2, 1)
  abstract = jax.eval_shape(lambda: state_lib.create_train_state(model, tx, 10, False, 0))
  # Deep AE 10-6-10, untied: 10*6 + 6 + 6*10 + 10 = 136 float32 params; Adam keeps mu and nu of
  # the same shapes and an int32 count, the lr schedule another count; the state adds the int32
  # step and the uint32[2] PRNG key.
  assert ckpt_lib.state_nbytes(abstract) == 136 * 4 * 3 + 4 + 4 + 4 + 8


def test_full_disk_fails_before_the_first_step(tmp_path, monkeypatch):
  monkeypatch.setattr(ckpt_lib, "free_bytes", lambda path: 1000)
  compiled = []
  real = step_lib.make_train_step
  monkeypatch.setattr(step_lib, "make_train_step",
                      lambda *a, **k: compiled.append(1) or real(*a, **k))
  need = 136 * 4 * 3 + 20 + ckpt_lib.METADATA_SLACK_BYTES
  with pytest.raises(CheckpointError, match=rf"only 1000 B free, but one checkpoint of this model "
                     rf"needs about {need / 2**20:.1f} MiB"):
    loop.train_and_evaluate(tiny_config(), tmp_path, dataset=tiny_dataset())
  assert not compiled and not os.listdir(tmp_path / "checkpoints")


def test_cli_turns_os_errors_into_one_line(tmp_path, capsys):
  def disk_full():
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x"))
  with pytest.raises(SystemExit) as exit_info:
    cli.run(disk_full)
  assert exit_info.value.code == 1
  assert _one_line_error(capsys) == f"error: No space left on device: {tmp_path / 'x'}"


# ------------------------------------------------------------------ ids unseen in training
def test_topn_counts_targets_of_cold_rows_and_columns():
  # 3 users x 5 items. Item 4 and user 2 occur only in the held-out targets.
  train = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0]], np.float32)
  test = np.array([[0, 0, 1, 0, 1], [1, 0, 0, 0, 0], [0, 1, 0, 0, 1]], np.float32)
  to = lambda m: Interactions.from_coo(*np.nonzero(m), m[np.nonzero(m)],  # noqa: E731
                                       row_ids=np.arange(3), col_ids=np.arange(5))
  ds = Dataset(train=to(train), val=EvalSplit(to(train), to(test)))
  table = jnp.asarray(np.tile(np.arange(5, 0, -1, dtype=np.float32), (3, 1)))
  ctx = EvalContext(score_fn=lambda b: table[b.rows], dataset=ds, split="val", batch_size=4,
                    num_shards=1)
  cfg = ml_collections.ConfigDict(dict(evaluators=["topn"], ks=[2], metric="recall@2",
                                       metric_mode="max", batch_size=4))
  m = TopNEvaluator(cfg, ds, "val").run(ctx)
  # Columns 3 and 4 never trained: targets (0, 4) and (2, 4) -> 2; user 2's input is empty: its
  # 2 targets. Top 2 (training items excluded): u0 2, 3; u1 0, 3; u2 0, 1.
  assert m["targets_cold_cols"] == 2 and m["targets_cold_rows"] == 2
  assert m["recall@2"] == pytest.approx((1 / 2 + 1 / 1 + 1 / 2) / 3)


def test_lightgcn_ids_only_in_test_are_scored_and_counted(tmp_path):
  (tmp_path / "train.txt").write_text("0 0 1\n1 1 2\n")
  (tmp_path / "test.txt").write_text("0 3\n1 0\n2 1 3\n")    # item 3, user 2: test only
  cfg = ml_collections.ConfigDict(dict(name="lightgcn", path=str(tmp_path), val_fraction=0.0,
                                       val_split="entries", binarize_threshold=None))
  ds = pipelines.load_dataset(cfg, 0)
  assert ds.train.shape == (3, 4) and ds.test.targets.nnz == 4
  ctx = EvalContext(score_fn=lambda b: jnp.ones((b.rows.shape[0], 4)), dataset=ds, split="test",
                    batch_size=4, num_shards=1)
  ecfg = ml_collections.ConfigDict(dict(evaluators=["topn"], ks=[1], metric="recall@1",
                                        metric_mode="max", batch_size=4))
  m = TopNEvaluator(ecfg, ds, "test").run(ctx)
  assert m["rows_evaluated"] == 3 and m["targets_cold_cols"] == 2 and m["targets_cold_rows"] == 2
