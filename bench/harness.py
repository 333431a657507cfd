"""The measuring pieces shared by the ``bench`` scripts: the peers' figures (ANCHORS.md) and their
targets, the engine built as the training loop builds it, steady-state step timing (compile apart),
a median timer for parts, alternating rounds of whole calls, top-K evaluation timing and peak memory (the glibc huge-page setting is
``jaxae.cli``'s, as for ``train.py``)."""

from __future__ import annotations

import dataclasses
import resource
import time
from typing import Any, Callable

# Peer figures measured on this kind of CPU machine (../shared/ANCHORS.md), Gowalla, and the
# targets of issue 7 as ratios: (name, peer rows/s, target ratio or None, predicate on the
# model and config of a run).
ANCHORS = (
    ("DeepRecommender 40981-512-512-1024 bs128 re-feed 1", 292.0, 2.0,
     lambda m, c: _deeprec(m, c) and int(c.train.refeed_steps) == 1),
    ("DeepRecommender 40981-512-512-1024 bs128 no re-feed", 571.0, 3.0,
     lambda m, c: _deeprec(m, c) and int(c.train.refeed_steps) == 0),
    ("RecBole MultiDAE 600/64 bs2048", 470.0, 3.0,
     lambda m, c: (type(m).__name__ == "MultDAE" and tuple(m.layers) == (600, 64)
                   and int(c.train.batch_size) == 2048)),
    ("Cornac VAECF k=200 [600] batch 100", 296.0, None,
     lambda m, c: (type(m).__name__ == "MultVAE" and tuple(m.layers) == (600, 200)
                   and int(c.train.batch_size) == 100)),
)


def _deeprec(model, config) -> bool:
  return (type(model).__name__ == "DeepAE" and tuple(model.layers) == (512, 512, 1024)
          and int(config.train.batch_size) == 128 and model.activation == "selu")


def median_time(fn, *args, steps: int, carry: bool = False):
  """``(median seconds, last output)`` of ``steps`` calls of ``fn(*args)`` after a warm-up call,
  one sync per call; ``carry``: each call gets the previous output's first element as its first
  argument (a donated train state)."""
  import statistics  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  out = fn(*args)
  jax.block_until_ready(out)
  times = []
  for _ in range(steps):
    if carry:
      args = (out[0],) + tuple(args[1:])
    t = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    times.append(time.perf_counter() - t)
  return statistics.median(times), out


def alternating_rounds(fns: dict, rounds: int) -> dict:
  """Seconds of each of ``fns`` (key -> a call that returns when its work is done), ``rounds``
  rounds of one call each, the calls alternating within a round (so a slow spell of a shared
  machine hits them alike): key -> [seconds per round]."""
  secs = {key: [] for key in fns}
  for _ in range(rounds):
    for key, fn in fns.items():
      start = time.perf_counter()
      fn()
      secs[key].append(time.perf_counter() - start)
  return secs


def time_update(tx, params, steps: int) -> float:
  """Median seconds of one ``tx`` update of ``params`` (gradients 1e-3 everywhere; params and
  optimizer state donated, as in a train step), after a warm-up call."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  # Plain single-device arrays: the update's outputs then match its inputs (no recompile).
  params = jax.tree.map(jnp.asarray, jax.device_get(params))
  grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)

  def update(state, g):
    p, o = state
    upd, o = tx.update(g, o, p)
    return ((jax.tree.map(lambda a, u: a + u, p, upd), o),)   # out[0]: the state, carried

  fn = jax.jit(update, donate_argnums=0)
  return median_time(fn, (params, tx.init(params)), grads, steps=steps, carry=True)[0]


def print_parts(title: str, rows: list[tuple[str, float, str]]) -> None:
  """``title``, then one line per ``(name, seconds, note)``: the name, milliseconds, the note."""
  print(title)
  w0 = max(len(r[0]) for r in rows)
  for name, t, note in rows:
    print(f"{name:<{w0}}  {t * 1e3:9.2f} ms  {note}")


def peak_memory() -> tuple[int, str]:
  """(bytes, how): the device's peak bytes in use, or this process's peak RSS on a CPU device."""
  import jax  # pylint: disable=import-outside-toplevel
  stats = jax.devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return int(stats["peak_bytes_in_use"]), "device peak_bytes_in_use"
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "process peak RSS"


# ----------------------------------------------------------------------------- the engine pieces
@dataclasses.dataclass
class Engine:
  """What the training loop builds, built the same way here (mesh, model, state, jitted step)."""

  config: Any
  mesh: Any
  model: Any
  state: Any
  train_step: Callable
  score_fn: Callable
  num_shards: int
  sparse_input: bool
  put: Callable
  head_fn: Callable | None = None   # step.make_head_fn's (None: the model has no score head)


def build_engine(config, n_rows: int, n_cols: int, steps_per_epoch: int) -> Engine:
  """The mesh, model, optimizer, state and compiled step of ``config`` for an n_rows x n_cols
  matrix, as ``jaxae.training.loop`` builds them."""
  import jax  # pylint: disable=import-outside-toplevel
  from jaxae import models  # pylint: disable=import-outside-toplevel
  from jaxae.training import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training import optim as optim_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training import state as state_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training import step as step_lib  # pylint: disable=import-outside-toplevel

  mesh = mesh_lib.make_mesh(config.mesh)
  model = models.build_model(config.model, n_cols, n_rows)
  if hasattr(mesh_lib, "shard_items"):
    model = mesh_lib.shard_items(model, mesh, n_cols)
  sparse_input = bool(config.model.get("sparse_input", False))
  updates = 1 + int(config.train.refeed_steps)
  tx = optim_lib.make_optimizer(config.optim, steps_per_epoch, int(config.train.epochs), updates)

  def create():
    return state_lib.create_train_state(model, tx, n_cols, sparse_input, int(config.seed))

  step_kwargs, eval_kwargs = {}, {}
  if hasattr(mesh_lib, "state_shardings"):
    sharding = mesh_lib.state_shardings(jax.eval_shape(create), mesh, n_cols)
    step_kwargs["state_sharding"] = sharding
    eval_kwargs["param_sharding"] = sharding.params
  else:
    sharding = mesh_lib.replicated(mesh)
  state = jax.jit(create, out_shardings=sharding)()
  train_step = step_lib.make_train_step(model, config, n_cols, mesh, **step_kwargs)
  score_fn, _ = step_lib.make_eval_fns(model, mesh, n_cols=n_cols, sparse_input=sparse_input,
                                       **eval_kwargs)
  head_fn = step_lib.make_head_fn(model, mesh, n_cols=n_cols, sparse_input=sparse_input,
                                 **eval_kwargs)
  batch_sharding = mesh_lib.batch_sharding(mesh)
  return Engine(config, mesh, model, state, train_step, score_fn, mesh_lib.data_size(mesh),
                sparse_input, lambda b: mesh_lib.put_global(b, batch_sharding), head_fn)


# ----------------------------------------------------------------------------- measurements
@dataclasses.dataclass
class TrainTiming:
  compile_s: float
  shapes: list[int]
  step_s: float
  rows_per_s: float
  flops_per_step: float | None
  loss: float
  batching_rows_per_s: float
  entry_output: bool


def time_training(engine: Engine, train, *, batch_size: int, steps: int, repeats: int,
                  seed: int = 0) -> TrainTiming:
  """Host batching rate, compile seconds and steady-state step time of ``engine`` on ``train``."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxae.data.batching import BatchIterator  # pylint: disable=import-outside-toplevel
  from jaxae.training import step as step_lib  # pylint: disable=import-outside-toplevel
  from bench import flops as flops_lib  # pylint: disable=import-outside-toplevel

  it = BatchIterator(train, batch_size, num_shards=engine.num_shards, seed=seed,
                     drop_remainder=True)
  n_batches = min(steps, it.steps_per_epoch())
  if n_batches < 1:
    raise SystemExit(f"error: {train.shape[0]} rows make no batch of {batch_size}")
  # Host batching alone: a whole epoch when it is short, else a bounded number of batches.
  t = time.perf_counter()
  rows = 0
  host = []
  for i, b in enumerate(it.epoch(0)):
    if i < n_batches:
      host.append(b)
    rows += int(b.mask.sum())
    if i + 1 >= max(n_batches, 200):
      break
  batching = rows / (time.perf_counter() - t)

  entry = bool(getattr(step_lib, "entry_output", lambda m, c: False)(engine.model, engine.config))
  chain = flops_lib.layer_chain(engine.model)
  refeed = int(engine.config.train.refeed_steps)
  flops = None
  if chain is not None:
    per = [flops_lib.step_flops(chain, flops_lib.StepShape(
        rows=int(b.mask.sum()), nnz=int(b.lengths.sum()), sparse_input=engine.sparse_input,
        entry_output=entry, refeed_steps=refeed)) for b in host]
    flops = float(np.mean(per))
  dev = [engine.put(b) for b in host]
  compiled: dict[Any, Any] = {}
  t = time.perf_counter()
  state = engine.state
  for b in dev:
    key = tuple(x.shape for x in jax.tree.leaves(b))
    if key not in compiled:
      compiled[key] = engine.train_step.lower(state, b).compile()
  compile_s = time.perf_counter() - t
  run = [compiled[tuple(x.shape for x in jax.tree.leaves(b))] for b in dev]
  state, metrics = run[0](state, dev[0])               # one untimed step (allocations, caches)
  jax.block_until_ready(metrics)
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    for fn, b in zip(run, dev):
      state, metrics = fn(state, b)
    jax.block_until_ready(metrics)
    best = min(best, (time.perf_counter() - t) / len(dev))
  engine.state = state
  real_rows = float(np.mean([int(b.mask.sum()) for b in host]))
  return TrainTiming(compile_s, sorted({int(b.cols.shape[1]) for b in host}), best,
                     real_rows / best, flops, float(jax.device_get(metrics["loss"])), batching,
                     entry)


@dataclasses.dataclass
class EvalTiming:
  users: int
  seconds: float
  warm_s: float
  metrics: dict


def topn_pass(engine: Engine, params, train, eval_split, ks: tuple[int, ...], batch_size: int,
              topk_group: int = 0, score_tile: int = 0,
              score_dtype: str = "model") -> Callable[[], dict]:
  """One full-catalog top-K pass over the split's rows as the top-N evaluator runs it:
  ``run() -> metrics``. ``topk_group``, ``score_tile`` and ``score_dtype`` are
  ``config.eval``'s keys of those names."""
  import functools  # pylint: disable=import-outside-toplevel
  import ml_collections  # pylint: disable=import-outside-toplevel
  from jaxae.data.dataset import Dataset  # pylint: disable=import-outside-toplevel
  from jaxae.evaluation import EvalContext  # pylint: disable=import-outside-toplevel
  from jaxae.evaluation.context import score_head  # pylint: disable=import-outside-toplevel
  from jaxae.evaluation.topn import TopNEvaluator  # pylint: disable=import-outside-toplevel

  dataset = Dataset(train=train, test=eval_split, info={"name": "bench"})
  ev = TopNEvaluator(ml_collections.ConfigDict({"ks": tuple(ks), "topk_group": int(topk_group),
                                                 "score_tile": int(score_tile),
                                                 "score_dtype": score_dtype}), dataset, "test")
  ctx = EvalContext(score_fn=functools.partial(engine.score_fn, params), dataset=dataset,
                    split="test", batch_size=batch_size, num_shards=engine.num_shards,
                    put_fn=engine.put, params=params, model=engine.model,
                    head=score_head(engine.model, engine.head_fn, params))
  return lambda: ev.run(ctx)


def time_topn(engine: Engine, params, train, eval_split, ks: tuple[int, ...], batch_size: int,
              repeats: int = 1, topk_group: int = 0, score_tile: int = 0,
              score_dtype: str = "model") -> EvalTiming:
  """Full-catalog top-K of the split's rows (:func:`topn_pass`): a first pass compiles every
  chunk shape (reported apart), then the best of ``repeats`` timed passes (none: the first pass
  is the figure)."""
  run = topn_pass(engine, params, train, eval_split, ks, batch_size, topk_group, score_tile,
                  score_dtype)
  t = time.perf_counter()
  out = run()
  warm = time.perf_counter() - t
  best = warm if repeats < 1 else float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    out = run()
    best = min(best, time.perf_counter() - t)
  return EvalTiming(int(out["rows_evaluated"]), best, warm, out)
