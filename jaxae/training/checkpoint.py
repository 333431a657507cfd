"""Orbax checkpoints of a run: save, keep the last N plus the best, restore, and load for eval.

A workdir holds ``checkpoints/<step>/`` with four items: ``state`` (the :class:`TrainState` arrays,
``StandardSave``), ``config`` (the run's config as JSON), ``dataset_info`` (the data's facts plus
``n_rows`` / ``n_cols``) and ``metrics`` (the metrics of that step, JSON). Retention keeps the last
``keep_checkpoints`` steps AND the one with the best ``config.eval.metric`` (orbax ``LatestN`` or
``BestN`` preservation). Everything needed to score with a checkpoint is in it:
:func:`load_for_eval` rebuilds the model from the saved config alone.

Failure handling: a save is atomic (orbax writes ``<step>.orbax-checkpoint-tmp-*`` and renames it
when complete, so a run killed mid-save leaves no half step behind, only a temporary folder that is
ignored, and removed by the next run). A step that exists but does not read back (truncated or
corrupted files, missing items) is found by :meth:`Checkpointer.restore_good`, reported, moved to
``workdir/checkpoints_corrupt/`` and the previous step is used. A checkpoint whose arrays do not
fit the model being restored raises :class:`CheckpointMismatchError` naming the parameter (no
fallback: that is another config).
:func:`check_workdir` / :func:`check_free_space` refuse to start a run whose workdir is not writable
or lacks room for one more checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as ocm

from jaxae.errors import CheckpointError, ConfigError

CHECKPOINT_DIR = "checkpoints"
CORRUPT_DIR = "checkpoints_corrupt"
ITEMS = ("state", "config", "dataset_info", "metrics")
# Room asked for beyond the arrays of one checkpoint: the JSON items and orbax's metadata files.
METADATA_SLACK_BYTES = 1 << 20


class CheckpointMismatchError(CheckpointError):
  """A readable checkpoint whose arrays do not fit the model being restored (another config)."""


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
    # Orbax reads a step's metrics back from its "metrics" item: a mid-epoch checkpoint or one
    # saved without evaluation has no value for the metric and ranks last.
    try:
      v = float(metrics[metric])
    except (KeyError, TypeError, ValueError):
      return worst
    return worst if math.isnan(v) else v

  return value


class _DropReadOnlyNotice(logging.Filter):
  """Drops orbax's "Given directory is read only" warning (read-only is what restoring asks)."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Given directory is read only")


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
          enable_async_checkpointing=True,
          cleanup_tmp_directories=True)   # what a kill mid-save left behind
    handlers = {"state": ocp.StandardCheckpointHandler(),
                "config": ocp.JsonCheckpointHandler(),
                "dataset_info": ocp.JsonCheckpointHandler(),
                "metrics": ocp.JsonCheckpointHandler()}
    quiet = _DropReadOnlyNotice() if read_only else None
    if quiet is not None:      # orbax warns of every read-only manager: the mode asked for
      logging.getLogger("absl").addFilter(quiet)
    try:
      self.manager = ocp.CheckpointManager(self.directory, options=options,
                                           item_handlers=handlers)
    finally:
      if quiet is not None:
        logging.getLogger("absl").removeFilter(quiet)

  # ---------------------------------------------------------------- queries
  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self, metric: str | None = None, mode: str | None = None) -> int | None:
    """The kept step with the best ``metric`` (default: this Checkpointer's; ``mode`` likewise),
    the latest step when no step has the metric."""
    metric = self.metric if metric is None else metric
    mode = self.mode if mode is None else mode
    if not metric:
      return self.latest_step()
    score = _metric_fn(metric, mode)
    ranked = []
    for step in self.all_steps():
      m = self.manager.metrics(step)
      if m is not None and metric in m:
        ranked.append((score(m), step))
    if not ranked:
      return self.latest_step()
    pick = max if mode == "max" else min
    return pick(ranked, key=lambda t: (t[0], t[1] if mode == "max" else -t[1]))[1]

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
  def save(self, state, *, config, dataset_info: dict, metrics: dict,
           best_candidate: bool = True) -> bool:
    """Saves ``state`` at ``int(state.step)`` (asynchronously); False when that step exists.

    ``metrics`` go to the ``metrics`` item; when they hold ``self.metric`` (and ``best_candidate``:
    a mid-epoch checkpoint is not, its metrics cover part of an epoch) it also ranks the checkpoint
    for best-by-metric retention.
    """
    step = int(jax.device_get(state.step))
    if step in self.all_steps():
      return False
    metrics = _to_json(dict(metrics))
    config_json = json.loads(config.to_json_best_effort()) if hasattr(
        config, "to_json_best_effort") else _to_json(config)
    rank = None
    if (best_candidate and self.metric and self.metric in metrics
        and metrics[self.metric] is not None):
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
    transposed = _check_shapes(target_state, saved, self.directory, step)
    abstract = jax.tree.map(_abstract_leaf, target_state)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_as_saved(abstract, transposed))))
    except (ValueError, KeyError, OSError, RuntimeError) as e:
      raise CheckpointError(f"{self.directory}/{step}: cannot restore the train state "
                            f"({_first_line(e)})") from None
    return _transpose_back(restored.state, abstract, transposed)

  def restore_good(self, target_state, warn: Callable[[str], None] | None = None
                   ) -> tuple[Any, int, dict[str, Any]] | None:
    """Restores the newest step that reads back whole: ``(state, step, restore_json(step))``.

    A step whose metadata, arrays or JSON items cannot be read is reported through ``warn``, moved
    to ``workdir/checkpoints_corrupt/<step>`` (kept for inspection, out of the manager's way: the
    run will save that step again) and the previous step is tried. Returns None when there is no
    checkpoint, or when none reads back (each reported and moved aside: the run starts over).

    Raises:
      CheckpointMismatchError: a readable step whose arrays do not fit ``target_state`` (a
        different config): no fallback, the message names the parameter.
    """
    warn = warn or (lambda text: None)
    steps = sorted(self.all_steps(), reverse=True)
    for i, step in enumerate(steps):
      try:
        state = self.restore(target_state, step)
        saved = self.restore_json(step)
        _check_finite(state, self.directory, step)
        return state, step, saved
      except CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except  (any unreadable step is corrupt)
        _quiet_closed_loop_callbacks()
        moved = self.quarantine(step)
        then = (f"using step {steps[i + 1]}" if i + 1 < len(steps) else
                "no earlier checkpoint: training starts over")
        warn(f"checkpoint step {step} in {self.directory} is corrupt or half-written "
             f"({_first_line(e)}); moved to {moved}; {then}")
    return None

  def quarantine(self, step: int) -> str:
    """Moves ``checkpoints/<step>`` to ``checkpoints_corrupt/<step>[.n]``; returns the new path."""
    src = os.path.join(self.directory, str(step))
    dst_dir = os.path.join(os.path.dirname(self.directory), CORRUPT_DIR)
    dst = os.path.join(dst_dir, str(step))
    if jax.process_index() == 0:
      os.makedirs(dst_dir, exist_ok=True)
      n = 0
      while os.path.exists(dst):
        n += 1
        dst = os.path.join(dst_dir, f"{step}.{n}")
      try:
        os.replace(src, dst)
      except OSError as e:
        raise CheckpointError(f"{src}: corrupt, and it cannot be moved aside ({e.strerror or e}); "
                              f"remove it by hand and run again") from None
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
      multihost_utils.sync_global_devices(f"jaxae_quarantine_{step}")
    self.manager.reload()
    return dst

  def restore_params(self, abstract_params, step: int | None = None, sharding=None):
    """Restores only ``params`` (shapes checked as in :meth:`restore`), e.g. for evaluation."""
    step = self._step(step)
    saved = {k: v for k, v in self.saved_shapes(step).items() if k.startswith("params.")}
    transposed = _check_shapes({"params": abstract_params}, saved, self.directory, step)
    abstract = {"params": jax.tree.map(lambda x: _abstract_leaf(x, sharding), abstract_params)}
    params = self.read_params(_as_saved(abstract, transposed)["params"], step)
    return _transpose_back({"params": params}, abstract, transposed)["params"]

  def read_params(self, abstract_params, step: int):
    """The arrays of ``abstract_params`` (a subtree of the saved params; abstract leaves with
    shardings) read from ``step``; their names and shapes are the caller's to check."""
    item = {"params": abstract_params}
    restore_args = jax.tree.map(
        lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding, global_shape=x.shape, dtype=x.dtype),
        item)
    # The state item is a plain orbax PyTree; a PyTree checkpointer restores a subtree of it.
    path = os.path.join(self.directory, str(step), "state")
    try:
      with ocp.PyTreeCheckpointer() as checkpointer:
        restored = checkpointer.restore(path, args=ocp.args.PyTreeRestore(
            item=item, restore_args=restore_args, partial_restore=True))
    except (ValueError, KeyError, OSError, RuntimeError) as e:
      raise CheckpointError(f"{path}: cannot restore the parameters ({_first_line(e)})") from None
    return restored["params"]

  def restore_json(self, step: int | None = None) -> dict[str, Any]:
    """The JSON items ``config``, ``dataset_info``, ``metrics`` saved at ``step``."""
    step = self._step(step)
    try:
      r = self.manager.restore(step, args=ocp.args.Composite(
          config=ocp.args.JsonRestore(), dataset_info=ocp.args.JsonRestore(),
          metrics=ocp.args.JsonRestore()))
    except (ValueError, KeyError, OSError, RuntimeError) as e:
      raise CheckpointError(f"{self.directory}/{step}: cannot read the saved config / info "
                            f"({_first_line(e)})") from None
    return {"config": r.config, "dataset_info": r.dataset_info, "metrics": r.metrics}

  def saved_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
    """``{"params.encoder_0.kernel": shape, ...}`` of every array saved in the state item."""
    try:
      meta = self.manager.item_metadata(step)["state"]
    except (ValueError, KeyError, OSError, RuntimeError) as e:
      raise CheckpointError(f"{self.directory}/{step}: unreadable checkpoint metadata "
                            f"({_first_line(e)})") from None
    if meta is None:
      raise CheckpointError(f"{self.directory}/{step}: the checkpoint has no train state")
    tree = getattr(meta, "tree", meta)
    out: dict[str, tuple[int, ...]] = {}
    _flatten_metadata(tree, (), out)
    return out


def _quiet_closed_loop_callbacks() -> None:
  """Silences the stray "Event loop is closed" tracebacks a failed restore leaves behind.

  When one array of a corrupt step fails to read, orbax closes its event loop while TensorStore
  still completes the step's other reads; their callbacks then hit the closed loop on a TensorStore
  thread and Python prints each as an "Exception ignored" traceback. They carry no information
  (the failure was already reported), so a filter for exactly that error is installed (once, for
  the process); every other unraisable exception still reaches the previous hook.
  """
  previous = sys.unraisablehook
  if getattr(previous, "_jaxae_quiet_closed_loop", False):
    return

  def hook(unraisable) -> None:
    e = unraisable.exc_value
    if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
      return
    previous(unraisable)

  hook._jaxae_quiet_closed_loop = True  # pylint: disable=protected-access
  sys.unraisablehook = hook


def _check_finite(state, directory: str, step: int) -> None:
  """A saved state holding NaN / Inf is corrupt (training never saves one: see step.py's guard).

  The check runs on the devices; one bool per array comes back."""
  arrays = {k: x for k, x in tree_arrays(state).items() if jnp.issubdtype(x.dtype, jnp.floating)}
  finite = jax.device_get({k: jnp.isfinite(x).all() for k, x in arrays.items()})
  bad = [k for k, ok in finite.items() if not ok]
  if bad:
    raise CheckpointError(f"{directory}/{step}: {bad[0]!r} holds NaN or Inf values")


def tree_arrays(tree) -> dict[str, Any]:
  """``{"params.encoder_0.kernel": array, ...}``: the array leaves of a pytree, named as orbax
  names saved arrays."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {_path_name(path): x for path, x in leaves}


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


def _path_name(path) -> str:
  """``"params.encoder_0.kernel"``: a leaf's key path as orbax names the saved array."""
  return ".".join(_key_name(k) for k in path)


def tree_shapes(tree) -> dict[str, tuple[int, ...]]:
  """``{"params.encoder_0.kernel": shape, ...}`` of a pytree, named as orbax names saved arrays."""
  leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {_path_name(path): tuple(int(d) for d in np.shape(x)) for path, x in leaves}


_DECODER_KERNEL = re.compile(r"params\.decoder_(\d+)\.kernel")


def _last_decoder_kernel(names) -> str | None:
  """The output layer's kernel among the ``params.`` names: ``decoder_<k>.kernel`` of the highest k
  (the deep AE, Mult-DAE / Mult-VAE), else ``decoder.kernel`` (CDAE; None: no such kernel)."""
  ks = [int(m.group(1)) for m in map(_DECODER_KERNEL.fullmatch, names) if m]
  if ks:
    return f"decoder_{max(ks)}.kernel"
  return "decoder.kernel" if "params.decoder.kernel" in names else None


def _legacy_transposed(want: dict, saved: dict) -> set[str]:
  """Names whose saved array is the transpose of the one restored: the output kernel of a deep AE,
  Mult-DAE / Mult-VAE or CDAE, and the optimizer moments that mirror it, from a checkpoint written
  before that layer stored its kernel one row per item (``[items, width]``, ``layers.ItemDense``;
  it was ``[width, items]``). Only the last decoder's kernel qualifies, and only when not square."""
  last = _last_decoder_kernel(want)
  if last is None:
    return set()
  out = set()
  for name, shape in want.items():
    old = saved.get(name)
    if (name.endswith("." + last) and len(shape) == 2 and shape[0] != shape[1]
        and old is not None and tuple(old) == tuple(shape)[::-1]):
      out.add(name)
  return out


def _check_shapes(target, saved: dict, directory: str, step: int) -> set[str]:
  """Raises CheckpointMismatchError unless ``saved`` holds every array of ``target`` in its shape;
  returns the names saved transposed in the older layout (:func:`_legacy_transposed`), which the
  restore reads as saved and transposes."""
  want = tree_shapes(target)
  transposed = _legacy_transposed(want, saved)
  for name, shape in want.items():
    if name not in saved:
      raise CheckpointMismatchError(f"{directory}/{step}: the checkpoint has no {name!r} (the "
                                    f"model or optimizer differs from the one that saved it)")
    if tuple(saved[name]) != tuple(shape) and name not in transposed:
      raise CheckpointMismatchError(f"{directory}/{step}: parameter {name!r} has shape "
                                    f"{tuple(saved[name])} in the checkpoint but {tuple(shape)} "
                                    f"in the model being restored")
  extra = sorted(set(saved) - set(want))
  if extra:
    raise CheckpointMismatchError(f"{directory}/{step}: the checkpoint holds {extra[0]!r} that "
                                  f"the model being restored does not have ({len(extra)} such "
                                  f"arrays)")
  if transposed and jax.process_index() == 0:    # stderr: eval.py quiets the logs below errors
    print(f"jaxae: {directory}/{step}: {', '.join(sorted(transposed))} saved [width, items] (the "
          f"output layer before it was stored one row per item); transposed as it is "
          f"restored", file=sys.stderr)
  return transposed


def _as_saved(abstract, transposed: set[str]):
  """``abstract`` with the leaves named in ``transposed`` in their saved (reversed) shape, read
  unsharded (their target sharding splits the other axis)."""
  if not transposed:
    return abstract

  def one(path, x):
    if _path_name(path) not in transposed:
      return x
    sharding = getattr(x, "sharding", None)
    if sharding is not None and hasattr(sharding, "mesh"):
      sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    return jax.ShapeDtypeStruct(tuple(x.shape)[::-1], x.dtype, sharding=sharding)

  return jax.tree_util.tree_map_with_path(one, abstract)


def _transpose_back(tree, abstract, transposed: set[str]):
  """The leaves named in ``transposed`` transposed into the shape (and sharding) of
  ``abstract``'s."""
  if not transposed:
    return tree
  flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
  targets = jax.tree.leaves(abstract)
  out = []
  for (path, x), want in zip(flat, targets):
    if _path_name(path) in transposed:
      x = jnp.transpose(x)
      sharding = getattr(want, "sharding", None)
      x = jax.device_put(x, sharding) if sharding is not None else x
    out.append(x)
  return jax.tree_util.tree_unflatten(treedef, out)


# ------------------------------------------------------------------------------ workdir checks
def state_nbytes(tree) -> int:
  """Bytes of the array leaves of ``tree`` (arrays or ``ShapeDtypeStruct``s): one checkpoint's
  arrays, uncompressed."""
  return int(sum(int(np.prod(np.shape(x), dtype=np.int64)) * np.dtype(x.dtype).itemsize
                 for x in jax.tree.leaves(tree) if hasattr(x, "dtype")))


def free_bytes(path: str) -> int:
  """Free bytes on the file system holding ``path`` (for the unprivileged user)."""
  return int(shutil.disk_usage(path).free)


def _fmt_bytes(n: float) -> str:
  for unit in ("B", "KiB", "MiB", "GiB"):
    if abs(n) < 1024 or unit == "GiB":
      return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
    n /= 1024
  return f"{n:.1f} GiB"


def check_workdir(workdir: str | os.PathLike) -> None:
  """Creates ``workdir`` and ``workdir/checkpoints`` and proves they are writable (a probe file is
  written, synced and removed), before any data is read or any step trained.

  Raises:
    CheckpointError: the folder cannot be created (e.g. a path under a regular file) or written
      (read-only file system, permissions, no space left), naming the folder and the OS reason.
  """
  workdir = os.path.abspath(os.fspath(workdir))
  directory = checkpoint_dir(workdir)
  for d in (workdir, directory):
    if os.path.exists(d) and not os.path.isdir(d):
      raise CheckpointError(f"{d}: exists but is not a folder")
    try:
      os.makedirs(d, exist_ok=True)
    except OSError as e:
      raise CheckpointError(f"{d}: cannot create the run's folder ({e.strerror or e})") from None
  try:
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".jaxae-write-probe-") as f:
      f.write(b"jaxae")
      f.flush()
      os.fsync(f.fileno())
  except OSError as e:
    raise CheckpointError(f"{directory}: the workdir is not writable ({e.strerror or e})") from None


def check_free_space(workdir: str | os.PathLike, state) -> int:
  """Refuses to start when the workdir's file system cannot hold one more checkpoint of ``state``.

  The size of a checkpoint is estimated from ``state``'s arrays (params and optimizer state,
  uncompressed) plus :data:`METADATA_SLACK_BYTES`. Returns that estimate in bytes.

  Raises:
    CheckpointError: naming the folder, the free space and the estimate.
  """
  need = state_nbytes(state) + METADATA_SLACK_BYTES
  directory = checkpoint_dir(workdir)
  free = free_bytes(directory if os.path.isdir(directory) else os.fspath(workdir))
  if free < need:
    raise CheckpointError(f"{directory}: only {_fmt_bytes(free)} free, but one checkpoint of this "
                          f"model needs about {_fmt_bytes(need)}; free some space or choose "
                          f"another --workdir")
  return need


def _subtree(tree, keep: set[str], prefix: str = "params") -> dict:
  """The part of the nested dict ``tree`` whose leaves' dotted names are in ``keep``."""
  out = {}
  for k, v in tree.items():
    name = f"{prefix}.{k}"
    if isinstance(v, dict) or hasattr(v, "items"):
      sub = _subtree(v, keep, name)
      if sub:
        out[k] = sub
    elif name in keep:
      out[k] = v
  return out


def _merge(tree, loaded) -> dict:
  return {k: (_merge(v, loaded[k]) if hasattr(v, "items") else loaded[k]) if k in loaded else v
          for k, v in tree.items()}


def init_params_from(workdir: str | os.PathLike, step: int | None, params, *, n_rows: int,
                     n_cols: int) -> tuple[Any, int, list[str], list[str]]:
  """``params`` with the arrays another run saved (``config.train.init_from``: fine-tuning).

  Every parameter saved at ``step`` (None = the latest) of ``workdir`` must exist in ``params``
  with the same shape and is loaded into it (each keeps the sharding of the array it replaces);
  parameters of ``params`` the checkpoint lacks keep their fresh values. The saved matrix must have
  ``n_rows`` x ``n_cols``.

  Returns:
    ``(params, step, loaded names, fresh names)``.

  Raises:
    CheckpointError: no such workdir / step, other data, or a saved parameter this model lacks or
      holds in another shape (CheckpointMismatchError).
  """
  ckpt = Checkpointer(workdir, read_only=True)
  try:
    step = ckpt._step(step)
    info = ckpt.restore_json(step)["dataset_info"]
    where = f"config.train.init_from: {ckpt.directory}/{step}"
    if (info.get("n_rows"), info.get("n_cols")) != (n_rows, n_cols):
      raise CheckpointMismatchError(
          f"{where} was trained on a {info.get('n_rows')} x {info.get('n_cols')} matrix, this "
          f"run's is {n_rows} x {n_cols}")
    saved = {k: v for k, v in ckpt.saved_shapes(step).items() if k.startswith("params.")}
    want = tree_shapes({"params": params})
    for name, shape in sorted(saved.items()):
      if name not in want:
        raise CheckpointMismatchError(f"{where} holds {name!r}, which this model does not have")
      if tuple(shape) != tuple(want[name]):
        raise CheckpointMismatchError(f"{where}: {name!r} has shape {tuple(shape)} there but "
                                      f"{tuple(want[name])} in this model")
    loaded = ckpt.read_params(jax.tree.map(_abstract_leaf, _subtree(params, set(saved))), step)
  finally:
    ckpt.close()
  fresh = sorted(set(want) - set(saved))
  return _merge(params, loaded), step, sorted(saved), fresh


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
    model = mesh_lib.with_saved_padding(models.build_model(config.model, n_cols, n_rows), config)
    sparse_input = bool(config.model.get("sparse_input", False))
    abstract = jax.eval_shape(
        lambda: state_lib.init_params(model, n_cols, sparse_input, jax.random.PRNGKey(0)))
    if mesh is None:
      mesh = mesh_lib.make_mesh({"data": -1, "model": 1})
    params = ckpt.restore_params(abstract, step, sharding=mesh_lib.replicated(mesh))
  finally:
    ckpt.close()
  return config, params, {"step": step, "dataset_info": info, "metrics": saved["metrics"]}
