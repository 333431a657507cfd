"""Evaluating a saved run from its workdir alone: the library side of ``eval.py``.

:func:`evaluate_workdir` loads a checkpoint with :func:`jaxae.training.checkpoint.load_for_eval`
(config, params and data facts; no optimizer, no training code path), rebuilds the dataset from the
saved config (``load_dataset(config.data, config.seed)``), checks that its row / column ids are the
ones the model was trained on (``workdir/id_maps.npz``), runs the evaluators the config names on a
split and writes:

  ``metrics_<split>_step<N>.json``  {"split", "step", "model", "dataset", "metrics": {name: value}}
  ``metrics.json``                  the same record, for the latest evaluation
  ``results.json``                  Melon only: the recommendations in the Kakao Arena submission
                                    format ``[{"id", "songs": [100], "tags": [10]}]``

A metric that is not finite (e.g. a Melon part with nothing to average) is written as ``null``.

:func:`score_melon_files` is the ``eval.py melon`` subcommand: the official Melon metric of a
results file made by any system, against an answers file.

The pieces (:func:`load_checkpoint`, :func:`rebuild_dataset`, :func:`check_id_maps`,
:func:`make_context`) are shared with ``jaxae.export``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import jax
import numpy as np

from jaxae import cli
from jaxae.data.dataset import Dataset
from jaxae.errors import CheckpointError, ConfigError, DataError, JaxaeError

ID_MAPS_FILE = "id_maps.npz"     # written by jaxae.training.loop.write_id_maps
METRICS_FILE = "metrics.json"
RESULTS_FILE = "results.json"
SPLITS = ("val", "test")


# ----------------------------------------------------------------------------------- loading
@dataclasses.dataclass
class LoadedRun:
  """A checkpoint loaded for scoring: what the evaluators and the exporter need.

  Attributes:
    workdir: the run's directory (absolute).
    step: the checkpoint's step.
    config: the run's config as saved with the checkpoint.
    params: the model parameters, replicated over ``mesh``.
    info: the saved data facts (``dataset_info``: ``n_rows``, ``n_cols``, ``orientation`` ...).
    saved_metrics: the metrics saved with the checkpoint (from training).
    model: the flax module rebuilt from ``config.model``.
    mesh: the mesh the params live on (every device on the "data" axis).
  """

  workdir: str
  step: int
  config: Any
  params: Any
  info: dict
  saved_metrics: dict
  model: Any
  mesh: Any

  @property
  def model_name(self) -> str:
    return str(self.config.model.name)

  @property
  def num_shards(self) -> int:
    from jaxae.training import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
    return mesh_lib.data_size(self.mesh)


def load_checkpoint(workdir: str | os.PathLike, step: int | None = None) -> LoadedRun:
  """Loads the checkpoint at ``step`` (default: the latest) of ``workdir`` for scoring.

  Raises:
    CheckpointError: no workdir / checkpoint / such step, or parameters that do not fit the model
      the saved config describes.
  """
  # Imported here: `eval.py melon` needs none of the engine.
  from jaxae import models  # pylint: disable=import-outside-toplevel
  from jaxae.training import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training import mesh as mesh_lib  # pylint: disable=import-outside-toplevel

  workdir = os.path.abspath(os.fspath(workdir))
  if not os.path.isdir(workdir):
    raise CheckpointError(f"{workdir}: no such workdir")
  if step is not None and (isinstance(step, bool) or int(step) < 0):
    raise ConfigError(f"--step must be a checkpoint step >= 0, got {step!r}")
  mesh = mesh_lib.make_mesh({"data": -1, "model": 1})
  config, params, meta = ckpt_lib.load_for_eval(workdir, step, mesh=mesh)
  info = dict(meta["dataset_info"])
  model = mesh_lib.with_saved_padding(
      models.build_model(config.model, int(info["n_cols"]), int(info["n_rows"])), config)
  return LoadedRun(workdir=workdir, step=int(meta["step"]), config=config, params=params,
                   info=info, saved_metrics=dict(meta.get("metrics") or {}), model=model,
                   mesh=mesh)


def read_id_maps(workdir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """``(row_ids, col_ids)`` of the training matrix, as saved in ``workdir/id_maps.npz``."""
  path = os.path.join(os.fspath(workdir), ID_MAPS_FILE)
  if not os.path.exists(path):
    raise CheckpointError(f"{path}: missing (training writes it); without it the rebuilt data "
                          f"cannot be checked against the data the model was trained on")
  try:
    with np.load(path, allow_pickle=False) as z:
      return np.asarray(z["row_ids"]), np.asarray(z["col_ids"])
  except (OSError, KeyError, ValueError) as e:
    raise CheckpointError(f"{path}: not a readable id map file ({e})") from None


def _first_difference(saved: np.ndarray, rebuilt: np.ndarray) -> int | None:
  """Index of the first position where the id arrays differ (length included), or None."""
  m = min(len(saved), len(rebuilt))
  if saved.dtype.kind != rebuilt.dtype.kind:           # e.g. int ids saved, str ids rebuilt
    a, b = saved[:m].astype(str), rebuilt[:m].astype(str)
  else:
    a, b = saved[:m], rebuilt[:m]
  diff = np.flatnonzero(a != b)
  if len(diff):
    return int(diff[0])
  return None if len(saved) == len(rebuilt) else m


def check_id_maps(workdir: str | os.PathLike, dataset: Dataset) -> None:
  """Raises CheckpointError when ``dataset.train``'s ids differ from the ones saved at training.

  The message names the axis (row / column), the counts when they differ and the first differing id.
  """
  saved_rows, saved_cols = read_id_maps(workdir)
  for axis, saved, rebuilt in (("row", saved_rows, dataset.train.row_ids),
                               ("column", saved_cols, dataset.train.col_ids)):
    rebuilt = np.asarray(rebuilt)
    i = _first_difference(saved, rebuilt)
    if i is None:
      continue
    counts = (f"training had {len(saved)} {axis}s, the rebuilt data has {len(rebuilt)}; "
              if len(saved) != len(rebuilt) else "")
    was = repr(saved[i].item()) if i < len(saved) else "nothing"
    now = repr(rebuilt[i].item()) if i < len(rebuilt) else "nothing"
    raise CheckpointError(
        f"{workdir}: the data changed since training: {counts}first differing {axis} id at index "
        f"{i}: {was} at training, {now} now (rebuilt from config.data; evaluate with the data the "
        f"model was trained on)")


def rebuild_dataset(run: LoadedRun, dataset: Dataset | None = None) -> Dataset:
  """The run's dataset from its saved config (or ``dataset``), checked against ``id_maps.npz``."""
  if dataset is None:
    from jaxae.data import pipelines  # pylint: disable=import-outside-toplevel
    dataset = pipelines.load_dataset(pipelines.upgrade_saved(run.config.data), int(run.config.seed))
  check_id_maps(run.workdir, dataset)
  shape = (int(run.info["n_rows"]), int(run.info["n_cols"]))
  if (dataset.n_rows, dataset.n_cols) != shape:
    raise CheckpointError(f"{run.workdir}: the checkpoint was trained on a {shape[0]} x {shape[1]} "
                          f"matrix, the rebuilt data is {dataset.n_rows} x {dataset.n_cols}")
  nnz = run.info.get("train_nnz")
  if nnz is not None and int(nnz) != int(dataset.train.nnz):
    raise CheckpointError(f"{run.workdir}: the data changed since training: the training matrix "
                          f"had {int(nnz)} entries, the rebuilt one has {dataset.train.nnz}")
  return dataset


def eval_batch_size(run: LoadedRun) -> int:
  """``config.eval.batch_size`` rounded up to a multiple of this machine's data-axis size."""
  b = int(run.config.eval.batch_size)
  if b < 1:
    raise ConfigError(f"config.eval.batch_size must be >= 1, got {b}")
  s = run.num_shards
  return -(-b // s) * s


def make_context(run: LoadedRun, dataset: Dataset, split: str, fns_cache: list | None = None):
  """The :class:`~jaxae.evaluation.EvalContext` of ``run`` on ``dataset`` (jitted score / embed).

  ``fns_cache``: a list shared by several calls (an ensemble's members); runs with an equal model,
  input kind and mesh then share one pair of jitted functions, so each is compiled once.
  """
  # pylint: disable-next=import-outside-toplevel
  from jaxae.evaluation import EvalContext, check_all_rows
  from jaxae.evaluation.context import score_head  # pylint: disable=import-outside-toplevel
  from jaxae.training import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training import step as step_lib  # pylint: disable=import-outside-toplevel

  check_all_rows(run.model, dataset.n_rows, run.config.eval)
  sparse_input = bool(run.config.model.get("sparse_input", False))
  key = (run.model, sparse_input, run.mesh)
  fns = next((f for k, f in fns_cache or () if k == key), None)
  if fns is None:
    fns = step_lib.make_eval_fns(run.model, run.mesh, n_cols=dataset.n_cols,
                                 sparse_input=sparse_input) + (
        step_lib.make_head_fn(run.model, run.mesh, n_cols=dataset.n_cols,
                              sparse_input=sparse_input),)
    if fns_cache is not None:
      fns_cache.append((key, fns))
  score_fn, embed_fn, head_fn = fns
  sharding = mesh_lib.batch_sharding(run.mesh)
  params = run.params
  return EvalContext(score_fn=lambda batch: score_fn(params, batch),
                     embed_fn=lambda batch: embed_fn(params, batch), dataset=dataset, split=split,
                     batch_size=eval_batch_size(run), num_shards=run.num_shards,
                     put_fn=lambda batch: mesh_lib.put_global(batch, sharding), params=params,
                     model=run.model, head=score_head(run.model, head_fn, params))


# -------------------------------------------------------------------------------- evaluation
def _json_value(v: Any) -> Any:
  """A metric value as plain JSON: a finite float, an int, or None for NaN / inf."""
  if isinstance(v, (bool, np.bool_)):
    return bool(v)
  if isinstance(v, (int, np.integer)):
    return int(v)
  f = float(v)
  return f if math.isfinite(f) else None


def write_json(obj: Any, path: str) -> None:
  """Writes ``obj`` as UTF-8 JSON through a temporary file (readers never see half a file)."""
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(obj, f, ensure_ascii=False, indent=1, allow_nan=False)
    f.write("\n")
  os.replace(tmp, path)


def metrics_filename(split: str, step: int) -> str:
  return f"metrics_{split}_step{int(step)}.json"


def best_step(workdir: str | os.PathLike) -> int:
  """The kept checkpoint step with the best validation ``config.eval.metric`` of the run.

  Raises CheckpointError when no kept checkpoint holds that metric (a run trained without
  validation, e.g. ``data.val_fraction=0``: evaluate its latest step instead).
  """
  from jaxae.training import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel

  ckpt = ckpt_lib.Checkpointer(workdir, read_only=True)
  try:
    latest = ckpt.latest_step()
    if latest is None:
      raise CheckpointError(f"{workdir}: no checkpoints")
    eval_config = ckpt.restore_json(latest)["config"].get("eval", {})
    # The run's own ranking rule, read from its saved config.
    metric = str(eval_config.get("metric", "")) or None
    mode = str(eval_config.get("metric_mode", "max"))
    if not any((ckpt.manager.metrics(s) or {}).get(metric) is not None for s in ckpt.all_steps()):
      raise CheckpointError(f"{workdir}: no kept checkpoint has a validation {metric!r} "
                            f"(trained without validation?); evaluate the latest step instead of "
                            f"--best")
    return int(ckpt.best_step(metric, mode))
  finally:
    ckpt.close()


def ensemble_context(runs: list[LoadedRun], dataset: Dataset, split: str):
  """One :class:`~jaxae.evaluation.EvalContext` whose scores are the mean of the ``runs``' scores
  (every run checked against ``dataset`` by :func:`rebuild_dataset`)."""
  from jaxae.models import needs_all_rows  # pylint: disable=import-outside-toplevel
  cache: list = []
  ctxs = [make_context(r, dataset, split, cache) for r in runs]

  def score(batch):
    total = ctxs[0].score_fn(batch)
    for c in ctxs[1:]:
      total = total + c.score_fn(batch)
    return total / len(ctxs)

  # A member that reads the whole matrix decides how rows are fed (others score any rows alike).
  model = next((r.model for r in runs if needs_all_rows(r.model)), runs[0].model)
  return dataclasses.replace(ctxs[0], score_fn=score, embed_fn=None, params=None, model=model,
                             batch_size=max(c.batch_size for c in ctxs), head=None)


def ensemble_filename(split: str, step: int, size: int) -> str:
  return f"metrics_{split}_step{int(step)}_ensemble{int(size)}.json"


def evaluate_workdir(workdir: str | os.PathLike, step: int | None = None, split: str = "val", *,
                     dataset: Dataset | None = None, write: bool = True,
                     ensemble: tuple[tuple[str, int | None], ...] = (),
                     score_dtype: str | None = None,
                     overrides: dict[str, Any] | None = None) -> dict[str, Any]:
  """Scores the checkpoint of ``workdir`` at ``step`` (default: latest) on ``split``.

  Args:
    workdir: a run's directory (``train.py`` made it).
    step: the checkpoint step; None = the latest.
    split: "val" or "test".
    dataset: the data, bypassing the rebuild from the saved config (still checked against the
      saved id maps), as ``train_and_evaluate(..., dataset=)`` takes it.
    write: write the metrics files (and ``results.json`` for Melon) into the workdir.
    ensemble: other runs ``(workdir, step)`` (step None = latest) trained on the same data: the
      scores evaluated are the mean of all the runs' scores (rating / topn evaluators). The record
      lists the members; it is written to ``metrics_<split>_step<N>_ensemble<K>.json`` of
      ``workdir`` only (``metrics.json`` stays the single model's).
    score_dtype: ``config.eval.score_dtype`` for this evaluation ("model" | "float32" |
      "bfloat16"; None = the run's own): the top-N evaluator's output-layer product from operands
      in that dtype. The record then says ``"score_dtype"``.
    overrides: ``{"eval.<key>": value}``: evaluation settings changed for this evaluation only
      (e.g. ``eval.recommender_args.song_neighbours``; ``eval.recommender_args`` may take
      arguments the run's config did not set); the model and the data stay the checkpoint's, so
      any other key is a ConfigError. The record then says ``"overrides"``.

  Returns:
    ``{"split", "step", "model", "dataset", "metrics": {name: float | None}}`` (what is written to
    ``metrics_<split>_step<N>.json`` and ``metrics.json``).

  Raises:
    ConfigError: a bad split, or a config that names no evaluator.
    CheckpointError: no such checkpoint, or data that changed since training.
  """
  # pylint: disable-next=import-outside-toplevel
  from jaxae.evaluation import build_evaluators, evaluators_with

  if split not in SPLITS:
    raise ConfigError(f"--split must be one of {list(SPLITS)}, got {split!r}")
  for key in overrides or {}:               # before the checkpoint is read
    if not key.startswith("eval."):
      raise ConfigError(f"--override {key}: only config.eval.* settings can change at evaluation "
                        f"(the model and the data are the checkpoint's)")
  run = load_checkpoint(workdir, step)
  for key, value in (overrides or {}).items():
    cli.apply_override(run.config, key, value, "--override",
                       open_sections=("eval.recommender_args",))
  evaluator_names = list(run.config.eval.evaluators)
  if not evaluator_names:
    raise ConfigError(f"{run.workdir}: config.eval.evaluators of this run is empty: nothing to "
                      f"evaluate")
  able = evaluators_with("scores_only")
  other = [n for n in evaluator_names if n not in able]
  if ensemble and other:
    raise ConfigError(f"an ensemble averages scores: it runs {', '.join(able)}, "
                      f"not {', '.join(map(repr, other))}")
  if score_dtype is not None:
    with run.config.unlocked():
      run.config.eval.score_dtype = score_dtype
  dataset = rebuild_dataset(run, dataset)
  evaluators = build_evaluators(run.config.eval, dataset, split)
  members = []
  if ensemble:
    members = [load_checkpoint(w, s_) for w, s_ in ensemble]
    for m in members:
      rebuild_dataset(m, dataset)          # the same data (ids, shape, entries) as the first run
    ctx = ensemble_context([run] + members, dataset, split)
  else:
    ctx = make_context(run, dataset, split)
  metrics: dict[str, Any] = {}
  results = None
  for ev in evaluators:
    metrics.update({str(k): _json_value(v) for k, v in ev.run(ctx).items()})
    # An evaluator that makes recommendations (Melon) keeps the records of its last run.
    if getattr(ev, "last_results", None) is not None:
      results = ev.last_results
  record = {"split": split, "step": run.step, "model": run.model_name,
            "dataset": str(run.info.get("name", run.config.data.get("name", ""))),
            "metrics": metrics}
  if score_dtype is not None:
    record["score_dtype"] = score_dtype
  if overrides:
    record["overrides"] = dict(overrides)
  if members:
    record["ensemble"] = [{"workdir": r.workdir, "step": r.step, "model": r.model_name}
                          for r in [run] + members]
    if write and jax.process_index() == 0:
      write_json(record, os.path.join(run.workdir, ensemble_filename(split, run.step,
                                                                     len(members) + 1)))
    return record
  if write and jax.process_index() == 0:
    write_json(record, os.path.join(run.workdir, metrics_filename(split, run.step)))
    write_json(record, os.path.join(run.workdir, METRICS_FILE))
    if results is not None:
      write_results(results, os.path.join(run.workdir, RESULTS_FILE))
  return record


def write_results(results: Any, path: str) -> None:
  """Writes Melon results records in the Kakao Arena submission format (UTF-8, tags unescaped).

  Each record becomes ``{"id": int, "songs": [int], "tags": [str]}``; ints come out of numpy types.
  """
  out = []
  for i, rec in enumerate(results):
    try:
      out.append({"id": int(rec["id"]), "songs": [int(s) for s in rec["songs"]],
                  "tags": [str(t) for t in rec["tags"]]})
    except (KeyError, TypeError, ValueError) as e:
      raise DataError(f"results record {i}: not an {{id, songs, tags}} record ({e})") from None
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(out, f, ensure_ascii=False)
  os.replace(tmp, path)


# ------------------------------------------------------------------------------------ output
def format_table(record: dict[str, Any]) -> str:
  """The metrics of an evaluation record as an aligned two-column table with a title line."""
  metrics = record["metrics"]
  title = " ".join(f"{k}={v}" for k, v in record.items() if k not in ("metrics", "ensemble"))
  if record.get("ensemble"):
    title += f"\nmean scores of {len(record['ensemble'])} runs: " + ", ".join(
        f"{m['workdir']}@{m['step']}" for m in record["ensemble"])
  if not metrics:
    return title + "\n(no metrics)"
  width = max(len(k) for k in metrics)
  lines = [title]
  for k, v in metrics.items():
    text = "nan" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v))
    lines.append(f"  {k:<{width}}  {text:>12}")
  return "\n".join(lines)


# ------------------------------------------------------------------------------ melon scoring
def read_question_types(path: str) -> dict[int, str]:
  """``{playlist id: question type}`` from a JSON object file (the Kakao split's format)."""
  from jaxae.data.readers.common import open_text  # pylint: disable=import-outside-toplevel
  try:
    obj = json.loads(open_text(path))
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: not valid JSON at line {e.lineno} column {e.colno}: "
                    f"{e.msg}") from None
  except RecursionError:
    raise DataError(f"{path}: JSON nested too deeply to be a question types file") from None
  if not isinstance(obj, dict):
    raise DataError(f"{path}: expected a JSON object {{playlist id: question type}}, got "
                    f"{type(obj).__name__}")
  out = {}
  for k, v in obj.items():
    try:
      out[int(k)] = str(v)
    except ValueError:
      raise DataError(f"{path}: key {k!r} is not a playlist id") from None
  return out


def score_melon_files(answers_path: str, results_path: str, question_types_path: str | None = None,
                      *, empty_answers: str = "error") -> dict[str, Any]:
  """The official Melon score of ``results_path`` against ``answers_path`` (JSON files).

  Validation is strict (every answered playlist exactly once, 100 unique songs and 10 unique tags);
  every failure is a DataError naming the file and the playlist.

  Returns:
    ``score_results``' dict: music_ndcg, tag_ndcg, score, counts (and "per_type" with types).
  """
  # pylint: disable=import-outside-toplevel
  from jaxae.data.readers import melon as melon_reader
  from jaxae.evaluation import melon as melon_eval
  # pylint: enable=import-outside-toplevel

  for what, path in (("answers", answers_path), ("results", results_path),
                     ("question types", question_types_path)):
    if path is not None and not os.path.isfile(path):
      raise DataError(f"{path}: no such {what} file")
  answers = melon_reader.read_playlists(answers_path)
  results = melon_eval.read_results(results_path)
  types = read_question_types(question_types_path) if question_types_path else None
  try:
    return melon_eval.score_results(answers, results, types, empty_answers=empty_answers)
  except JaxaeError as e:
    msg = str(e)
    for label, path in (("results", results_path), ("answers", answers_path)):
      if msg.startswith(label + ":"):
        raise type(e)(f"{path}:{msg[len(label) + 1:]}") from None
    raise


def melon_record(scores: dict[str, Any], results_path: str) -> dict[str, Any]:
  """``score_melon_files``' dict as a :func:`format_table` record (per-type keys ``name/type``)."""
  metrics = {k: _json_value(scores[k]) for k in ("music_ndcg", "tag_ndcg", "score", "count")}
  for t, s in scores.get("per_type", {}).items():
    metrics.update({f"{k}/{t}": _json_value(s[k]) for k in ("music_ndcg", "tag_ndcg", "score",
                                                             "count")})
  return {"results": os.fspath(results_path), "metrics": metrics}


__all__ = ["LoadedRun", "load_checkpoint", "read_id_maps", "check_id_maps", "rebuild_dataset",
           "make_context", "ensemble_context", "evaluate_workdir", "write_results", "write_json",
           "format_table", "score_melon_files", "melon_record", "read_question_types",
           "metrics_filename"]
