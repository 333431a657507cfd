"""Orbax checkpoints of a run: save, keep the last N plus the best, restore, and load for eval.

A workdir holds ``checkpoints/<step>/`` with four items: ``state`` (the :class:`TrainState` arrays,
``StandardSave``), ``config`` (the run's config as JSON), ``dataset_info`` (the data's facts plus
``n_rows`` / ``n_cols``) and ``metrics`` (the metrics of that step, JSON). Retention keeps the last
``keep_checkpoints`` steps AND the one with the best ``config.eval.metric`` (orbax ``LatestN`` or
``BestN`` preservation). Everything needed to score with a checkpoint is in it:
:func:`load_for_eval` rebuilds the model from the saved config alone.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocm

from jaxae.errors import CheckpointError, ConfigError

CHECKPOINT_DIR = "checkpoints"
ITEMS = ("state", "config", "dataset_info", "metrics")


def checkpoint_dir(workdir: str | os.PathLike) -> str:
  return os.path.join(os.path.abspath(os.fspath(workdir)), CHECKPOINT_DIR)


def _to_json(value: Any) -> Any:
  """Plain JSON types (numpy / jax scalars -> float / int, arrays -> lists, others -> str)."""
  return json.loads(json.dumps(value, default=_json_default))


def _json_default(x: Any) -> Any:
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, (np.floating,)):
    return float(x)
  if isinstance(x, (np.ndarray, jax.Array)):
    return np.asarray(x).tolist()
  return str(x)


def _metric_fn(metric: str, mode: str):
  worst = -math.inf if mode == "max" else math.inf

  def value(metrics) -> float:
    v = float(metrics[metric])
    return worst if math.isnan(v) else v

  return value


class Checkpointer:
  """The run's checkpoint manager (one per workdir).

  Args:
    workdir: the run's directory; checkpoints go to ``workdir/checkpoints``.
    keep: how many of the latest checkpoints to keep (``config.train.keep_checkpoints``).
    metric: metric name that picks the best checkpoint (``config.eval.metric``); None = only the
      last ``keep``.
    mode: "max" or "min" (``config.eval.metric_mode``).
    read_only: open for restoring only (eval).
  """

  def __init__(self, workdir: str | os.PathLike, *, keep: int = 1, metric: str | None = None,
               mode: str = "max", read_only: bool = False):
    if mode not in ("max", "min"):
      raise ConfigError(f"config.eval.metric_mode must be 'max' or 'min', got {mode!r}")
    if int(keep) < 1:
      raise ConfigError(f"config.train.keep_checkpoints must be >= 1, got {keep}")
    self.metric = metric
    self.mode = mode
    self.directory = checkpoint_dir(workdir)
    if read_only:
      if not os.path.isdir(self.directory):
        raise CheckpointError(f"{workdir}: no checkpoints (no {CHECKPOINT_DIR}/ folder)")
      options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    else:
      policies: list = [ocm.LatestN(n=int(keep))]
      if metric:
        policies.append(ocm.BestN(get_metric_fn=_metric_fn(metric, mode), reverse=mode == "min",
                                  n=1, keep_checkpoints_without_metrics=False))
      options = ocp.CheckpointManagerOptions(
          create=True, preservation_policy=ocm.AnyPreservationPolicy(policies),
          enable_async_checkpointing=True)
    handlers = {"state": ocp.StandardCheckpointHandler(),
                "config": ocp.JsonCheckpointHandler(),
                "dataset_info": ocp.JsonCheckpointHandler(),
                "metrics": ocp.JsonCheckpointHandler()}
    self.manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=handlers)

  # ---------------------------------------------------------------- queries
  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The kept step with the best ``metric`` (the latest step when no step has the metric)."""
    if not self.metric:
      return self.latest_step()
    score = _metric_fn(self.metric, self.mode)
    ranked = []
    for step in self.all_steps():
      m = self.manager.metrics(step)
      if m is not None and self.metric in m:
        ranked.append((score(m), step))
    if not ranked:
      return self.latest_step()
    pick = max if self.mode == "max" else min
    return pick(ranked, key=lambda t: (t[0], t[1] if self.mode == "max" else -t[1]))[1]

  def _step(self, step: int | None) -> int:
    steps = self.all_steps()
    if step is None:
      if not steps:
        raise CheckpointError(f"{self.directory}: no checkpoint to restore")
      return max(steps)
    if int(step) not in steps:
      raise CheckpointError(f"{self.directory}: no checkpoint at step {step}; saved steps: "
                            f"{sorted(steps)}")
    return int(step)

  # ---------------------------------------------------------------- save
  def save(self, state, *, config, dataset_info: dict, metrics: dict) -> bool:
    """Saves ``state`` at ``int(state.step)`` (asynchronously); False when that step exists.

    ``metrics`` go to the ``metrics`` item; when they hold ``self.metric`` it also ranks the
    checkpoint for best-by-metric retention.
    """
    step = int(jax.device_get(state.step))
    if step in self.all_steps():
      return False
    metrics = _to_json(dict(metrics))
    config_json = json.loads(config.to_json_best_effort()) if hasattr(
        config, "to_json_best_effort") else _to_json(config)
    rank = None
    if self.metric and self.metric in metrics and metrics[self.metric] is not None:
      rank = {self.metric: float(metrics[self.metric])}
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        config=ocp.args.JsonSave(config_json),
        dataset_info=ocp.args.JsonSave(_to_json(dict(dataset_info))),
        metrics=ocp.args.JsonSave(metrics))
    return bool(self.manager.save(step, args=args, metrics=rank, force=True))

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()

  # ---------------------------------------------------------------- restore
  def restore(self, target_state, step: int | None = None):
    """Restores the state saved at ``step`` (default: the latest) into ``target_state``'s shapes.

    ``target_state`` may hold arrays (their shardings are kept) or ``jax.ShapeDtypeStruct``s.

    Raises:
      CheckpointError: no such checkpoint, or a parameter whose saved shape differs (naming the
        parameter path and both shapes).
    """
    step = self._step(step)
    saved = self.saved_shapes(step)
    _check_shapes(target_state, saved, self.directory, step)
    abstract = jax.tree.map(_abstract_leaf, target_state)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise CheckpointError(f"{self.directory}/{step}: cannot restore the train state "
                            f"({_first_line(e)})") from None
    return restored.state

  def restore_params(self, abstract_params, step: int | None = None, sharding=None):
    """Restores only ``params`` (shapes checked as in :meth:`restore`), e.g. for evaluation."""
    step = self._step(step)
    saved = {k: v for k, v in self.saved_shapes(step).items() if k.startswith("params.")}
    _check_shapes({"params": abstract_params}, saved, self.directory, step)
    item = {"params": jax.tree.map(lambda x: _abstract_leaf(x, sharding), abstract_params)}
    restore_args = jax.tree.map(
        lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding, global_shape=x.shape, dtype=x.dtype),
        item)
    # The state item is a plain orbax PyTree; a PyTree checkpointer restores a subtree of it.
    path = os.path.join(self.directory, str(step), "state")
    try:
      with ocp.PyTreeCheckpointer() as checkpointer:
        restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
            item=item, restore_args=restore_args, partial_restore=True))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise CheckpointError(f"{path}: cannot restore the parameters ({_first_line(e)})") from None
    return restored["params"]

  def restore_json(self, step: int | None = None) -> dict[str, Any]:
    """The JSON items ``config``, ``dataset_info``, ``metrics`` saved at ``step``."""
    step = self._step(step)
    try:
      r = self.manager.restore(step, args=ocp.args.Composite(
          config=ocp.args.JsonRestore(), dataset_info=ocp.args.JsonRestore(),
          metrics=ocp.args.JsonRestore()))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise CheckpointError(f"{self.directory}/{step}: cannot read the saved config / info "
                            f"({_first_line(e)})") from None
    return {"config": r.config, "dataset_info": r.dataset_info, "metrics": r.metrics}

  def saved_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
    """``{"params.encoder_0.kernel": shape, ...}`` of every array saved in the state item."""
    try:
      meta = self.manager.item_metadata(step)["state"]
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise CheckpointError(f"{self.directory}/{step}: unreadable checkpoint metadata "
                            f"({_first_line(e)})") from None
    if meta is None:
      raise CheckpointError(f"{self.directory}/{step}: the checkpoint has no train state")
    tree = getattr(meta, "tree", meta)
    out: dict[str, tuple[int, ...]] = {}
    _flatten_metadata(tree, (), out)
    return out


def _first_line(e: BaseException) -> str:
  text = str(e).strip().splitlines()
  return text[0] if text else type(e).__name__


def _abstract_leaf(x, sharding=None):
  sh = sharding if sharding is not None else getattr(x, "sharding", None)
  return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sh)


def _flatten_metadata(tree, prefix: tuple, out: dict) -> None:
  if tree is None:
    return
  if isinstance(tree, dict):
    for k, v in tree.items():
      _flatten_metadata(v, prefix + (str(k),), out)
  elif isinstance(tree, (list, tuple)):
    for i, v in enumerate(tree):
      _flatten_metadata(v, prefix + (str(i),), out)
  elif hasattr(tree, "shape"):
    out[".".join(prefix)] = tuple(int(d) for d in tree.shape)


def _key_name(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def tree_shapes(tree) -> dict[str, tuple[int, ...]]:
  """``{"params.encoder_0.kernel": shape, ...}`` of a pytree, named as orbax names saved arrays."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {".".join(_key_name(k) for k in path): tuple(int(d) for d in np.shape(x))
          for path, x in leaves}


def _check_shapes(target, saved: dict, directory: str, step: int) -> None:
  want = tree_shapes(target)
  for name, shape in want.items():
    if name not in saved:
      raise CheckpointError(f"{directory}/{step}: the checkpoint has no {name!r} (the model or "
                            f"optimizer differs from the one that saved it)")
    if tuple(saved[name]) != tuple(shape):
      raise CheckpointError(f"{directory}/{step}: parameter {name!r} has shape "
                            f"{tuple(saved[name])} in the checkpoint but {tuple(shape)} in the "
                            f"model being restored")
  extra = sorted(set(saved) - set(want))
  if extra:
    raise CheckpointError(f"{directory}/{step}: the checkpoint holds {extra[0]!r} that the model "
                          f"being restored does not have ({len(extra)} such arrays)")


def restore_latest(workdir: str | os.PathLike, target_state):
  """The latest state saved in ``workdir`` restored into ``target_state``'s shapes, or None."""
  if not os.path.isdir(checkpoint_dir(workdir)):
    return None
  ckpt = Checkpointer(workdir, read_only=True)
  try:
    if ckpt.latest_step() is None:
      return None
    return ckpt.restore(target_state)
  finally:
    ckpt.close()


def load_for_eval(workdir: str | os.PathLike, step: int | None = None, mesh=None
                  ) -> tuple[ml_collections.ConfigDict, Any, dict]:
  """Loads a checkpoint in a process that knows nothing but the workdir.

  Rebuilds the model from the saved config (``jaxae.models.build_model`` with the saved ``n_rows``
  / ``n_cols``), gets its abstract params with ``jax.eval_shape`` and restores only the params,
  replicated over ``mesh`` (default: all devices on the data axis).

  Returns:
    ``(config, params, info)`` where ``info`` holds ``step``, ``dataset_info`` and the saved
    ``metrics`` of that step.
  """
  # Imported here: the model registry is not needed to save / restore train states.
  from jaxae import models  # pylint: disable=import-outside-toplevel
  from jaxae.training import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training import state as state_lib  # pylint: disable=import-outside-toplevel

  ckpt = Checkpointer(workdir, read_only=True)
  try:
    step = ckpt._step(step)  # pylint: disable=protected-access
    saved = ckpt.restore_json(step)
    config = ml_collections.ConfigDict(saved["config"])
    info = saved["dataset_info"]
    if "n_rows" not in info or "n_cols" not in info:
      raise CheckpointError(f"{ckpt.directory}/{step}: the saved dataset info lacks n_rows/n_cols")
    n_rows, n_cols = int(info["n_rows"]), int(info["n_cols"])
    model = models.build_model(config.model, n_cols, n_rows)
    sparse_input = bool(config.model.get("sparse_input", False))
    abstract = jax.eval_shape(
        lambda: state_lib.init_params(model, n_cols, sparse_input, jax.random.PRNGKey(0)))
    if mesh is None:
      mesh = mesh_lib.make_mesh({"data": -1, "model": 1})
    params = ckpt.restore_params(abstract, step, sharding=mesh_lib.replicated(mesh))
  finally:
    ckpt.close()
  return config, params, {"step": step, "dataset_info": info, "metrics": saved["metrics"]}
