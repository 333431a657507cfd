"""`train_and_evaluate`: one run from a config to a trained, evaluated, checkpointed model.

The loop checks the config, builds the mesh, loads the data, builds the model, resumes from the
latest checkpoint of the workdir if there is one, and trains epoch by epoch: host batches from a
seeded :class:`BatchIterator` (prefetched on a thread) become global arrays and go through the
compiled step. Every ``log_every_steps`` one host sync reads the accumulated step metrics for the
progress line, ``metrics.jsonl`` and TensorBoard. Every ``eval_every_epochs`` the validation
evaluators run; every ``checkpoint_every_epochs`` and at the end a checkpoint is saved (the last
``keep_checkpoints`` plus the best by ``config.eval.metric`` are kept). Closed-form models (EASE)
are fitted instead of trained, then evaluated and saved the same way.

A resumed run continues at the saved step: the epoch's data order is a pure function of
``(seed, epoch)``, so ``epoch(e, start_step=k)`` replays exactly the batches not yet trained on, and
the state (params, optimizer state, step, PRNG key) comes back bit for bit: a run killed at any
point and started again with the same command ends with the params of an uninterrupted run. A
resume whose data, model or seed differ from the saved run's is refused, naming each difference
(:func:`jaxae.training.resume.check_same_run`); the schedule may change (more epochs). With
the optional ``train.checkpoint_every_steps`` (0 = off) a checkpoint is also saved every that many
steps, so a kill mid-epoch loses at most that many steps of work.

Failure behaviour (docs/failure_behaviour.md): before any data is read the workdir must be creatable
and writable, and before the first step its file system must have room for one more checkpoint
(:func:`jaxae.training.checkpoint.check_free_space`); a corrupt latest checkpoint is reported and
the previous good one resumed (:meth:`Checkpointer.restore_good`). Non-finite steps are refused
inside the compiled step; the loop reads the accumulated ``is_finite`` flag at its periodic sync
(each log interval, before every checkpoint) and stops with :class:`NonFiniteError`, naming the
first bad step and the last good checkpoint, which is left as it was.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxae import checks
from jaxae import losses
from jaxae import models
from jaxae.data.batching import BatchIterator, prefetch
from jaxae.data.dataset import Dataset
from jaxae.errors import ConfigError, JaxaeError
from jaxae.evaluation import EvalContext, build_evaluators, check_all_rows, split_available
from jaxae.evaluation.context import score_head
from jaxae.training import checkpoint as ckpt_lib
from jaxae.training import early_stopping
from jaxae.training import logging as log_lib
from jaxae.training import mesh as mesh_lib
from jaxae.training import optim as optim_lib
from jaxae.training import resume as resume_lib
from jaxae.training import state as state_lib
from jaxae.training import step as step_lib

ID_MAPS_FILE = "id_maps.npz"

EVAL_KEYS = ("evaluators", "metric", "metric_mode", "batch_size")
# Keys of config.eval that belong to one evaluator (read by it). An evaluator class may also declare
# them itself as a ``config_keys`` tuple, which takes precedence.
EVALUATOR_KEYS = {
    "topn": ("ks", "topk_group", "score_tile", "score_dtype"),
    "melon": ("recommender", "recommender_args", "empty_answers", "baselines", "topk_group"),
}
TOP_LEVEL_KEYS = ("seed", "data", "model", "loss", "optim", "train", "eval", "mesh")
OPTIONAL_TOP_LEVEL_KEYS = ("loss_anneal", "loss_impl")
SECTION_KEYS = {
    "optim": optim_lib.OPTIM_KEYS,
    "train": ("batch_size", "epochs", "refeed_steps", "refeed_noise", "log_every_steps",
              "eval_every_epochs", "checkpoint_every_epochs", "keep_checkpoints", "prefetch",
              "shuffle"),
    "mesh": ("data", "model"),
    "loss_anneal": ("total_steps", "beta_cap"),
    "loss_impl": ("full_mse",),
}
# Keys a section may have or lack (absent = off).
OPTIONAL_SECTION_KEYS = {
    "train": ("checkpoint_every_steps", "init_from", "init_step", "seed", "patience"),
    "optim": optim_lib.OPTIONAL_OPTIM_KEYS,
}


class NonFiniteError(JaxaeError):
  """Training met a non-finite loss or gradient (its update was refused); the run stops."""


# --------------------------------------------------------------------------- config checks
def _keys(section) -> list[str]:
  return list(section.keys()) if hasattr(section, "keys") else []


def _check_exact(section, name: str, expected: tuple[str, ...],
                 optional: tuple[str, ...] = ()) -> None:
  if not hasattr(section, "keys"):
    raise ConfigError(f"config.{name} must be a section with keys {', '.join(expected)}, got "
                      f"{section!r}")
  have = set(_keys(section))
  missing = [k for k in expected if k not in have]
  if missing:
    raise ConfigError(f"config.{name}: missing key(s) {', '.join(missing)}")
  unknown = sorted(have - set(expected) - set(optional))
  if unknown:
    raise ConfigError(f"config.{name}: unknown key(s) {', '.join(unknown)}; known: "
                      f"{', '.join(expected + optional)}")


def _evaluator_keys() -> set[str]:
  from jaxae.evaluation import EVALUATORS  # pylint: disable=import-outside-toplevel
  keys: set[str] = set()
  for name, factory in EVALUATORS.items():
    keys.update(getattr(factory, "config_keys", None) or EVALUATOR_KEYS.get(name, ()))
  return keys


def _check_eval_keys(section) -> None:
  """config.eval: the engine's keys must be there; others must belong to a known evaluator."""
  if not hasattr(section, "keys"):
    raise ConfigError(f"config.eval must be a section with keys {', '.join(EVAL_KEYS)}")
  have = set(_keys(section))
  missing = [k for k in EVAL_KEYS if k not in have]
  if missing:
    raise ConfigError(f"config.eval: missing key(s) {', '.join(missing)}")
  allowed = set(EVAL_KEYS) | _evaluator_keys()
  unknown = sorted(have - allowed)
  if unknown:
    raise ConfigError(f"config.eval: unknown key(s) {', '.join(unknown)}; known: "
                      f"{', '.join(EVAL_KEYS + tuple(sorted(allowed - set(EVAL_KEYS))))}")


def _int(cfg, section: str, key: str, minimum: int) -> int:
  return checks.number(cfg[key], f"{section}.{key}", minimum=minimum, integer=True)


def _real(cfg, section: str, key: str, minimum: float, *, strict: bool = False,
          maximum: float | None = None) -> float:
  return checks.number(cfg[key], f"{section}.{key}", minimum=minimum, strict=strict,
                       maximum=maximum)


def _check_values(config) -> None:
  """Values the sections' own builders read only in some settings (so a typo could hide there
  until a later run): optimizer numbers, loss weights, KL annealing, re-feeding noise."""
  o = config.optim
  _real(o, "optim", "lr", 0.0, strict=True)
  _real(o, "optim", "momentum", 0.0, maximum=1.0)
  _real(o, "optim", "weight_decay", 0.0)
  _real(o, "optim", "decay_factor", 0.0, strict=True)
  _real(o, "optim", "warmup_epochs", 0.0)
  if o.clip_norm is not None:
    _real(o, "optim", "clip_norm", 0.0, strict=True)
  m = o.milestones
  if isinstance(m, str) or not isinstance(m, (list, tuple)) or not all(
      isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 0 for x in m):
    raise ConfigError(f"config.optim.milestones must be a list of epochs >= 0, got {m!r}")
  for name in _keys(config.loss):
    _real(config.loss, "loss", name, 0.0)
  if "loss_anneal" in config and hasattr(config.loss_anneal, "keys"):
    a = config.loss_anneal
    if "total_steps" in a:
      _int(a, "loss_anneal", "total_steps", 0)
    if "beta_cap" in a:
      _real(a, "loss_anneal", "beta_cap", 0.0)
  _real(config.train, "train", "refeed_noise", 0.0)


def check_config(config) -> None:
  """Raises ConfigError for a missing or unknown key (or a bad value) in the contract's sections.

  The top level must have exactly seed, data, model, loss, optim, train, eval, mesh (plus the
  optional loss_anneal); optim / train / mesh / loss_anneal must have exactly their keys; eval must
  have evaluators, metric, metric_mode, batch_size and may have the keys of registered evaluators
  (:data:`EVALUATOR_KEYS`); data and model need ``name`` (their other keys are checked by the
  pipeline / model registry); loss terms are checked by ``jaxae.losses``.
  """
  have = set(_keys(config))
  missing = [k for k in TOP_LEVEL_KEYS if k not in have]
  if missing:
    raise ConfigError(f"config: missing section(s) {', '.join(missing)}")
  unknown = sorted(have - set(TOP_LEVEL_KEYS) - set(OPTIONAL_TOP_LEVEL_KEYS))
  if unknown:
    raise ConfigError(f"config: unknown key(s) {', '.join(unknown)}; known: "
                      f"{', '.join(TOP_LEVEL_KEYS + OPTIONAL_TOP_LEVEL_KEYS)}")
  checks.number(config.seed, "seed", minimum=0, below=2**63, integer=True)
  for name, expected in SECTION_KEYS.items():
    if name in have:
      _check_exact(config[name], name, expected, OPTIONAL_SECTION_KEYS.get(name, ()))
  _check_eval_keys(config.eval)
  for name in ("data", "model"):
    if not hasattr(config[name], "keys") or "name" not in config[name]:
      raise ConfigError(f"config.{name}: missing key name")
  if models.is_trainable(config.model):   # a closed-form model (EASE) has no loss to check
    losses.active_terms(config.loss, config.get("loss_anneal"))
  if "loss_impl" in have and config.loss_impl.full_mse not in losses.FULL_MSE_IMPLS:
    raise ConfigError(f"config.loss_impl.full_mse: unknown value {config.loss_impl.full_mse!r}; "
                      f"known: {', '.join(losses.FULL_MSE_IMPLS)}")

  t = config.train
  _int(t, "train", "batch_size", 1)
  _int(t, "train", "epochs", 1)
  _int(t, "train", "refeed_steps", 0)
  _int(t, "train", "log_every_steps", 1)
  _int(t, "train", "eval_every_epochs", 0)
  _int(t, "train", "checkpoint_every_epochs", 0)
  _int(t, "train", "keep_checkpoints", 1)
  _int(t, "train", "prefetch", 0)
  if "checkpoint_every_steps" in t:
    _int(t, "train", "checkpoint_every_steps", 0)
  if "patience" in t:
    _int(t, "train", "patience", 0)
    if t.patience and not t.eval_every_epochs and models.is_trainable(config.model):
      raise ConfigError(f"config.train.patience={t.patience} counts validation evaluations, and "
                        f"config.train.eval_every_epochs=0 runs none: set it to 1 or more")
  if isinstance(t.refeed_noise, bool) or not isinstance(t.refeed_noise, (int, float)) or (
      t.refeed_noise < 0):
    raise ConfigError(f"config.train.refeed_noise must be a number >= 0, got {t.refeed_noise!r}")
  if t.get("seed") is not None:
    _int(t, "train", "seed", 0)
  init_from = t.get("init_from")
  if init_from is not None and (not isinstance(init_from, str) or not init_from):
    raise ConfigError(f"config.train.init_from must be a workdir path or None, got {init_from!r}")
  if init_from is not None and not models.is_trainable(config.model):
    raise ConfigError(f"config.train.init_from: {config.model.name} is fitted in closed form, "
                      f"there is nothing to initialize")
  if t.get("init_step") is not None:
    if init_from is None:
      raise ConfigError("config.train.init_step is set but config.train.init_from is not")
    _int(t, "train", "init_step", 0)
  if not isinstance(t.shuffle, bool):
    raise ConfigError(f"config.train.shuffle must be true/false, got {t.shuffle!r}")
  e = config.eval
  if isinstance(e.evaluators, str) or not hasattr(e.evaluators, "__iter__"):
    raise ConfigError(f"config.eval.evaluators must be a list of names, got {e.evaluators!r}")
  if not isinstance(e.metric, str) or not e.metric:
    raise ConfigError(f"config.eval.metric must be a metric name, got {e.metric!r}")
  if e.metric_mode not in ("max", "min"):
    raise ConfigError(f"config.eval.metric_mode must be 'max' or 'min', got {e.metric_mode!r}")
  _int(e, "eval", "batch_size", 1)
  if config.model.name == "most_popular" and "rating" in tuple(e.evaluators):
    raise ConfigError("config.eval.evaluators: most_popular ranks items and predicts no ratings; "
                      "use it with the top-N evaluator ('topn'), not 'rating'")
  if config.optim.name not in optim_lib.OPTIMIZERS:
    raise ConfigError(f"config.optim.name: unknown optimizer {config.optim.name!r}; known: "
                      f"{list(optim_lib.OPTIMIZERS)}")
  if config.optim.schedule not in optim_lib.SCHEDULES:
    raise ConfigError(f"config.optim.schedule: unknown schedule {config.optim.schedule!r}; "
                      f"known: {list(optim_lib.SCHEDULES)}")
  _check_values(config)


# --------------------------------------------------------------------------- helpers
def _due(epoch_done: int, every: int, epochs: int) -> bool:
  """Whether an epoch-boundary action runs after ``epoch_done`` epochs (always after the last)."""
  return epoch_done == epochs or (every > 0 and epoch_done % every == 0)


def write_id_maps(workdir: str, dataset: Dataset) -> str:
  """Writes ``workdir/id_maps.npz`` (raw row / column ids of the training matrix) once."""
  path = os.path.join(workdir, ID_MAPS_FILE)
  if not os.path.exists(path):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
      np.savez(f, row_ids=dataset.train.row_ids, col_ids=dataset.train.col_ids)
    os.replace(tmp, path)
  return path


def dataset_info(dataset: Dataset) -> dict[str, Any]:
  """The data's facts saved with every checkpoint (``n_rows`` / ``n_cols`` rebuild the model)."""
  info = dict(dataset.info)
  info.update(n_rows=int(dataset.n_rows), n_cols=int(dataset.n_cols), train_nnz=dataset.train.nnz)
  return info


@jax.jit
def _track_finite(ok: jax.Array, first_bad: jax.Array, is_finite: jax.Array,
                  step: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The steps' ``is_finite`` flags and-ed on the device, and the first step that was not."""
  return ok & is_finite, jnp.where(ok & ~is_finite, step, first_bad)


def _closed_form_state(params, seed: int) -> state_lib.TrainState:
  tx = optax.identity()
  return state_lib.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                              opt_state=tx.init(params), rng=jax.random.PRNGKey(seed), tx=tx)


class _Run:
  """The pieces of one run shared by the training and the closed-form paths."""

  def __init__(self, config, workdir: str, dataset: Dataset):
    self.config = config
    self.workdir = workdir
    self.dataset = dataset
    self.is_main = jax.process_index() == 0
    self.mesh = mesh_lib.make_mesh(config.mesh)
    self.num_shards = mesh_lib.data_size(self.mesh)
    self.n_rows, self.n_cols = dataset.n_rows, dataset.n_cols
    # With mesh.model > 1 the item dimension is split over the model axis (padded if need be).
    self.model = mesh_lib.shard_items(models.build_model(config.model, self.n_cols, self.n_rows),
                                      self.mesh, self.n_cols)
    check_all_rows(self.model, self.n_rows, config.eval, int(config.train.batch_size))
    if dataset.train_rows is not None and models.has_row_params(self.model):
      raise ConfigError(
          f"config.model.name={config.model.name!r} holds parameters of each training user, and "
          f"the held-out users of this split (strong generalization) have none to be scored "
          f"with: use a model whose input alone makes the scores (mult_vae, mult_dae, deep_ae, "
          f"autorec, ease, ...)")
    self.sparse_input = bool(config.model.get("sparse_input", False))
    self.param_sharding = mesh_lib.param_shardings(jax.eval_shape(lambda: state_lib.init_params(
        self.model, self.n_cols, self.sparse_input, jax.random.PRNGKey(0))), self.mesh, self.n_cols)
    self.info = dataset_info(dataset)
    self.metric = str(config.eval.metric)
    # No validation split (e.g. data.val_fraction=0: the final fit on all of the training data,
    # with the epochs a validation run chose): train without validation; eval.py scores the test.
    names = list(config.eval.evaluators)
    self.no_val = bool(names) and not split_available(names, dataset, "val")
    self.evaluators = (build_evaluators(config.eval, dataset, "val")
                       if names and not self.no_val else [])
    if self.no_val:
      self.warn("the data have no validation split: training without validation, keeping the "
                "last checkpoints (score the test split with eval.py --split=test)")
    self.score_fn, self.embed_fn = step_lib.make_eval_fns(
        self.model, self.mesh, n_cols=self.n_cols, sparse_input=self.sparse_input,
        param_sharding=self.param_sharding)
    self.head_fn = step_lib.make_head_fn(
        self.model, self.mesh, n_cols=self.n_cols, sparse_input=self.sparse_input,
        param_sharding=self.param_sharding)
    self._batch_sharding = mesh_lib.batch_sharding(self.mesh)
    # Last, so that nothing above can raise with them open (``close`` runs once the run exists).
    self.writer = log_lib.MetricsWriter(workdir, enabled=self.is_main)
    try:
      self.ckpt = ckpt_lib.Checkpointer(workdir, keep=int(config.train.keep_checkpoints),
                                        metric=self.metric, mode=str(config.eval.metric_mode))
    except BaseException:
      self.writer.close()
      raise

  def put(self, batch):
    return mesh_lib.put_global(batch, self._batch_sharding)

  def evaluate(self, params) -> dict[str, float]:
    """Runs every validation evaluator; {} when there are none."""
    if not self.evaluators:
      return {}
    ctx = EvalContext(score_fn=functools.partial(self.score_fn, params),
                      embed_fn=functools.partial(self.embed_fn, params), dataset=self.dataset,
                      split="val", batch_size=int(self.config.eval.batch_size),
                      num_shards=self.num_shards, put_fn=self.put, params=params,
                      model=self.model, head=score_head(self.model, self.head_fn, params))
    out: dict[str, float] = {}
    for ev in self.evaluators:
      out.update({k: float(v) for k, v in ev.run(ctx).items()})
    return out

  def restore(self, target):
    """The newest good checkpoint as ``(state, step, saved JSON items)`` (None: none), once it is
    known to come from this run's data, model and seed (:func:`resume.check_same_run`)."""
    restored = self.ckpt.restore_good(target, warn=self.warn)
    if restored is not None:
      _, step, saved = restored
      resume_lib.check_same_run(saved["config"], saved["dataset_info"], self.config, self.info,
                                f"{self.ckpt.directory}/{step}")
    return restored

  def log(self, text: str) -> None:
    if self.is_main:
      print(text, flush=True)

  def warn(self, text: str) -> None:
    if self.is_main:
      print(f"warning: {text}", file=sys.stderr, flush=True)

  def plot(self) -> None:
    if self.is_main:
      log_lib.plot_curves(self.writer.path, os.path.join(self.workdir, log_lib.CURVES_FILE),
                          self.metric)

  def close(self) -> None:
    try:
      self.ckpt.wait()
      self.ckpt.close()
    finally:
      self.writer.close()


# --------------------------------------------------------------------------- entry point
def train_and_evaluate(config, workdir: str | os.PathLike, *, dataset: Dataset | None = None
                       ) -> dict[str, float]:
  """Trains (or fits) the model ``config`` describes, in ``workdir``; returns the final metrics.

  Args:
    config: the run's ConfigDict (see ``configs/base.py``).
    workdir: where checkpoints, ``metrics.jsonl``, TensorBoard files, ``curves.png`` and
      ``id_maps.npz`` go; a workdir that holds checkpoints is resumed.
    dataset: the data, bypassing ``jaxae.data.pipelines.load_dataset(config.data, config.seed)``.

  Returns:
    The final validation metrics plus ``loss`` (the last epoch's mean training loss), ``step``
    and ``epoch``.
  """
  check_config(config)
  workdir = os.path.abspath(os.fspath(workdir))
  if jax.process_index() == 0:
    ckpt_lib.check_workdir(workdir)          # creatable and writable, before any data is read
  if dataset is None:
    from jaxae.data import pipelines  # pylint: disable=import-outside-toplevel
    dataset = pipelines.load_dataset(config.data, int(config.seed))
  run = _Run(config, workdir, dataset)
  try:
    if run.is_main:
      write_id_maps(workdir, dataset)
    if models.is_trainable(config.model):
      final = _train(run)
    else:
      final = _fit_closed_form(run)
  finally:
    run.close()
  run.log(log_lib.final_summary(final, run.writer.path))
  return final


def _fit_closed_form(run: _Run) -> dict[str, float]:
  config = run.config
  name = config.model.name
  abstract_params = jax.eval_shape(lambda: state_lib.init_params(
      run.model, run.n_cols, run.sparse_input, jax.random.PRNGKey(0)))
  state = None
  abstract_state = _closed_form_state(abstract_params, int(config.seed))
  target = jax.tree.map(
      lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), abstract_state,
      mesh_lib.state_shardings(abstract_state, run.mesh, run.n_cols))
  if run.is_main:
    ckpt_lib.check_free_space(run.workdir, target)
  restored = run.restore(target)
  if restored is not None:
    state = restored[0]
    run.log(f"restored the fitted {name} model from {run.ckpt.directory}")
  if state is None:
    t0 = time.time()
    params = models.CLOSED_FORM[name](config.model, run.dataset.train)
    params = jax.device_put(params, run.param_sharding)
    state = _closed_form_state(params, int(config.seed))
    run.log(f"fitted {name} in {time.time() - t0:.1f}s")
  val = run.evaluate(state.params)
  final = {"step": 0, "epoch": 0, **val}
  if val:
    run.writer.write(0, 0.0, "val", val)
  run.ckpt.save(state, config=config, dataset_info=run.info, metrics=final)
  return final


def train_seed(config) -> int:
  """The seed of the initialization, dropout and batch order: ``config.train.seed``, or
  ``config.seed`` when that is None / absent (the data's splits always use ``config.seed``, so runs
  that differ only in ``train.seed`` see the same data: an ensemble's members)."""
  s = config.train.get("seed")
  return int(config.seed) if s is None else int(s)


def _init_from(run: _Run, state, tx, state_sharding):
  """A fresh state whose params come (where the other run has them) from ``train.init_from``."""
  tc = run.config.train
  params, step, loaded, fresh = ckpt_lib.init_params_from(
      tc.init_from, tc.get("init_step"), state.params, n_rows=run.n_rows, n_cols=run.n_cols)
  run.log(f"initialized {len(loaded)} parameter arrays from {tc.init_from} (step {step})"
          + (f"; fresh: {', '.join(n.removeprefix('params.') for n in fresh)}" if fresh else ""))
  return jax.jit(lambda st, p: st.replace(params=p, opt_state=tx.init(p)),
                 out_shardings=state_sharding)(state, params)


def _train(run: _Run) -> dict[str, float]:
  config = run.config
  tc = config.train
  epochs = int(tc.epochs)
  batch_size = int(tc.batch_size)
  log_every = int(tc.log_every_steps)
  updates_per_step = 1 + int(tc.refeed_steps)
  batches = BatchIterator(run.dataset.train, batch_size, num_shards=run.num_shards,
                          shuffle=bool(tc.shuffle), seed=train_seed(config),
                          row_subset=run.dataset.train_rows,
                          process_index=jax.process_index(), process_count=jax.process_count())
  steps_per_epoch = batches.steps_per_epoch()
  if steps_per_epoch < 1:
    raise ConfigError("the training matrix has no rows to train on")
  if batches.num_rows < run.n_rows:
    run.log(f"training on {batches.num_rows:,} of the {run.n_rows:,} rows (the others are "
            f"held-out users, scored from their fold-in entries)")
  if optim_lib.needs_value_fn(config.optim) and steps_per_epoch > 1:
    run.warn(f"optim.name='lbfgs' with {steps_per_epoch} batches per epoch: each step's line search "
             f"sees one mini-batch (L-BFGS is meant for full batches: set train.batch_size >= "
             f"{batches.num_rows}, the number of training rows)")
  total_steps = epochs * steps_per_epoch
  tx = optim_lib.make_optimizer(config.optim, steps_per_epoch, epochs, updates_per_step)
  schedule = optim_lib.make_schedule(config.optim, steps_per_epoch, epochs, updates_per_step)

  rep = mesh_lib.replicated(run.mesh)

  def create_state():
    return state_lib.create_train_state(run.model, tx, run.n_cols, run.sparse_input,
                                        train_seed(config))

  # Params and optimizer state: replicated, or split over "model" by the item rule (mesh.py).
  state_sharding = mesh_lib.state_shardings(jax.eval_shape(create_state), run.mesh, run.n_cols)
  state = jax.jit(create_state, out_shardings=state_sharding)()
  last_metrics: dict[str, Any] = {}
  patience = int(tc.get("patience", 0) or 0)
  if patience and not run.evaluators:       # no validation metric to count
    why = "without a validation split" if run.no_val else "with no config.eval.evaluators"
    run.warn(f"config.train.patience={patience}: {why} there is nothing to stop on; every epoch "
             f"runs")
    patience = 0
  stopper = early_stopping.EarlyStopping(patience, str(config.eval.metric_mode))
  restored = run.restore(state)
  if restored is not None:
    state, step0, saved = restored
    stopper.restore(saved["metrics"])
    last_metrics = {k: v for k, v in saved["metrics"].items()
                    if k not in early_stopping.STATE_KEYS}
    run.log(f"resumed from {run.ckpt.directory} at step {step0}")
  elif tc.get("init_from") is not None:
    state = _init_from(run, state, tx, state_sharding)
  if run.is_main:
    ckpt_lib.check_free_space(run.workdir, state)   # room for one more checkpoint, before step 1
  step = int(jax.device_get(state.step))
  if step > total_steps:
    raise ConfigError(f"the checkpoint in {run.workdir} is at step {step}, past the "
                      f"{total_steps} steps of this config ({epochs} epochs x {steps_per_epoch})")
  train_step = step_lib.make_train_step(run.model, config, run.n_cols, run.mesh,
                                        state_sharding=state_sharding)
  impl = step_lib.loss_impl(run.model, config)
  if impl == "entries":
    run.log("loss: from the dense output at the batch's entries and its row sums, no dense "
            "[batch, items] target or mask (config.loss_impl.full_mse)")
  if impl == "gram":
    run.log("loss: from the last layer at the batch's entries"
            + (" and the d x d Gram of its kernel" if "mse" in config.loss else "")
            + ", no dense [batch, items] target or output (config.loss_impl.full_mse)"
            + ("; re-fed passes stay dense" if int(tc.refeed_steps) else ""))
  ckpt_every = int(tc.get("checkpoint_every_steps", 0) or 0)

  window: list[dict[str, jax.Array]] = []
  warned_dropped = [False]
  epoch_loss = [0.0, 0]
  clock = [time.time(), step]
  # [all steps so far finite, first non-finite step]: updated on the device, read at each flush.
  finite = [jax.device_put(np.bool_(True), rep), jax.device_put(np.int32(0), rep)]

  def flush(epoch: int) -> None:
    """The one host sync per log interval: means of the window's metrics -> logs; then the
    NaN / Inf guard (:class:`NonFiniteError` when a step of the interval was not finite)."""
    if not window:
      return
    host, (all_finite, first_bad) = jax.device_get((window, finite))
    means = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
    epoch_loss[0] += float(np.sum([m["loss"] for m in host]))
    epoch_loss[1] += len(host)
    window.clear()
    now = time.time()
    steps = step - clock[1]
    elapsed = max(now - clock[0], 1e-9)
    rows_per_s = steps * batch_size / elapsed
    means["rows_per_s"] = rows_per_s
    means["lr"] = float(schedule(max(step - 1, 0) * updates_per_step))
    clock[0], clock[1] = now, step
    if means.get("lbfgs_dropped", 0.0) > 0 and not warned_dropped[0]:
      warned_dropped[0] = True
      run.warn(f"L-BFGS: a line search ended above the current loss by step {step} (epoch "
               f"{epoch + 1}); that update was dropped and the optimizer started afresh "
               f"(metrics.jsonl: lbfgs_dropped, the share of such steps). A loss that stays flat "
               f"from here has gone as low as float32 line searches can take it: more epochs "
               f"change nothing")
    run.writer.write(step, step / steps_per_epoch, "train", means)
    run.log(log_lib.progress_line(epoch=epoch + 1, epochs=epochs, step=step,
                                  total_steps=total_steps, rows_per_s=rows_per_s,
                                  loss=means["loss"],
                                  eta_s=(total_steps - step) * elapsed / max(steps, 1)))
    if not all_finite:
      stop_non_finite(int(first_bad))

  def stop_non_finite(bad_step: int) -> None:
    run.writer.flush()
    run.ckpt.wait()                         # a save in flight holds a state from before the sync
    last = run.ckpt.latest_step()
    good = (f"the last good checkpoint is step {last} ({run.ckpt.directory}/{last}), left intact"
            if last is not None else "no checkpoint was saved before it")
    raise NonFiniteError(
        f"training stopped: non-finite loss or gradient at step {bad_step} (epoch "
        f"{(bad_step - 1) // steps_per_epoch + 1}); its update was refused, so the params stayed "
        f"finite; {good}. Lower config.optim.lr or set config.optim.clip_norm (or check the data) "
        f"and run again: the run resumes from that checkpoint")

  def save_step_checkpoint(epoch: int) -> None:
    """A mid-epoch checkpoint (``train.checkpoint_every_steps``), after a sync that checked it."""
    flush(epoch)
    loss = epoch_loss[0] / max(epoch_loss[1], 1)
    run.ckpt.save(state, config=config, dataset_info=run.info,
                  metrics={"epoch": step / steps_per_epoch, "loss": loss, **stopper.state()},
                  best_candidate=False)

  val: dict[str, float] = {}
  warned_metric = False
  first_epoch, start_in_epoch = divmod(step, steps_per_epoch)
  stopped_before = stopper.stopped          # a run resumed after it stopped early: no more epochs
  if stopped_before:
    run.log(f"{stopper.reason(run.metric)}, before this resume: no epoch runs (a larger "
            f"config.train.patience lets it go on)")
  for epoch in range(first_epoch, first_epoch if stopped_before else epochs):
    epoch_loss[:] = [0.0, 0]
    source = batches.epoch(epoch, start_step=start_in_epoch if epoch == first_epoch else 0)
    # The prefetch thread builds the host batches and puts them on the devices ahead of the step.
    it = prefetch(map(run.put, source), int(tc.prefetch))
    try:
      for batch in it:
        state, metrics = train_step(state, batch)
        step += 1
        finite[:] = _track_finite(finite[0], finite[1], metrics.pop("is_finite"), state.step)
        window.append(metrics)
        if ckpt_every and step % ckpt_every == 0 and step % steps_per_epoch:
          save_step_checkpoint(epoch)
        elif step % log_every == 0:
          flush(epoch)
    finally:
      close = getattr(it, "close", None)
      if close is not None:
        close()
    flush(epoch)
    done = epoch + 1
    train_loss = epoch_loss[0] / max(epoch_loss[1], 1)
    record: dict[str, Any] = {"epoch": done, "loss": train_loss}
    if _due(done, int(tc.eval_every_epochs), epochs):
      val = run.evaluate(state.params)
      if val:
        run.writer.write(step, float(done), "val", val)
        run.log(f"epoch {done}/{epochs} validation: " +
                ", ".join(f"{k}={v:.6g}" for k, v in val.items()))
      record.update(val)
      if run.metric not in record and not warned_metric and not run.no_val:
        warned_metric = True
        run.warn(f"config.eval.metric {run.metric!r} is not among the metrics of this run "
                 f"({', '.join(sorted(record))}); only the last checkpoints are kept, not the best"
                 + (", and config.train.patience cannot stop the run early" if stopper.patience
                    else ""))
      if stopper.patience and run.metric in val and stopper.update(val[run.metric], done):
        run.log(f"{stopper.reason(run.metric)}; training ends after epoch {done} of {epochs}")
    last_metrics = record
    if (_due(done, int(tc.checkpoint_every_epochs), epochs) or stopper.stopped
        or (ckpt_every and step % ckpt_every == 0)):
      run.ckpt.save(state, config=config, dataset_info=run.info,
                    metrics={**record, **stopper.state()})
    run.writer.flush()
    run.plot()
    clock[:] = [time.time(), step]          # rows/s measures training only, not eval / saving
    if stopper.stopped:
      break

  if (step == total_steps and first_epoch >= epochs) or stopped_before:
    # Already trained to the end (or stopped early): evaluate the restored model again.
    val = run.evaluate(state.params)
    last_metrics = {**last_metrics, **val}
  run.ckpt.save(state, config=config, dataset_info=run.info,
                metrics={**last_metrics, **stopper.state()})
  run.plot()
  final = {k: v for k, v in last_metrics.items() if k != "epoch"}
  return {"step": step, "epoch": step / steps_per_epoch, **final}
