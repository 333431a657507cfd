r"""The benchmark table for one config and one data size.

  python -m bench.run --config=configs/deeprec_netflix.py --size=gowalla [--steps=20] [--repeats=3]
      [--scale=0.1] [--eval_rows=20000] [--eval_repeats=2] [--smoke]
      [--config.train.refeed_steps=0 ...]

Rows: compile seconds (reported apart), steady-state step time and train rows/s (best of
``--repeats`` timed loops of ``--steps`` steps, batches already on the device, one sync per loop),
model FLOPs per step counted honestly (``bench/flops.py``: a sparse first layer, a masked output
layer and the absent input gradient do fewer), achieved FLOP/s and the fraction of the device's peak
(on CPU the peak is an f32 ``jnp.dot`` measured in the same run; on a GPU the data-sheet figure),
peak device memory (``memory_stats`` where the device has it, else the process's peak RSS), host
batching rows/s (``BatchIterator`` alone, no device) and full-catalog top-100 evaluation users/s.
For the Gowalla anchors of ``../shared/ANCHORS.md`` (same model settings) it prints the ratio to the
peer's figure and the target. The config's data section is ignored: ``--size`` gives the data.
``--smoke`` runs a tiny matrix for a few steps (CI; not a measurement).
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

from bench.harness import ANCHORS, build_engine, peak_memory, time_topn, time_training
from jaxae import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.")
_SIZE = flags.DEFINE_string("size", "gowalla", "ml100k | gowalla | netflix | melon_cf | "
                            "song_as_user (ignored with --smoke)")
_STEPS = flags.DEFINE_integer("steps", 20, "timed train steps per repeat")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed loops; the best one is reported")
_SCALE = flags.DEFINE_float("scale", 1.0, "fraction of rows and nonzeros of a synthetic size")
_EVAL_ROWS = flags.DEFINE_integer("eval_rows", 20_000,
                                  "rows ranked by the evaluation of a synthetic size")
_EVAL_K = flags.DEFINE_integer("eval_k", 100, "top-K of the evaluation row")
_EVAL_REPEATS = flags.DEFINE_integer("eval_repeats", 2, "timed evaluation passes after the first "
                                     "(which compiles); 0 = the first pass is the figure")
_SMOKE = flags.DEFINE_bool("smoke", False, "tiny data, 2 steps, 1 repeat: checks the suite runs")
cli.define_malloc_flags()
flags.mark_flags_as_required(["config"])

GOWALLA_EVAL_TARGET_S = 5.0       # full-ranking top-20 of all 29,858 Gowalla users
GOWALLA_LOAD_TARGET_S = 0.3       # train.txt -> CSR


@dataclasses.dataclass
class Row:
  measure: str
  value: str
  notes: str = ""


def _fmt_rate(x: float) -> str:
  return f"{x:,.0f}" if x >= 100 else f"{x:,.1f}"


def _fmt_flops(x: float) -> str:
  for unit, div in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
    if x >= div:
      return f"{x / div:.2f} {unit}"
  return f"{x:.0f} FLOP"


# ----------------------------------------------------------------------------- the table
def print_table(title: list[str], rows: list[Row]) -> None:
  for line in title:
    print(line)
  w0 = max(len(r.measure) for r in rows)
  w1 = max(len(r.value) for r in rows)
  print(f"{'measure':<{w0}}  {'value':>{w1}}  notes")
  print(f"{'-' * w0}  {'-' * w1}  {'-' * 5}")
  for r in rows:
    print(f"{r.measure:<{w0}}  {r.value:>{w1}}  {r.notes}".rstrip())
  sys.stdout.flush()


def bench(config, size: str, *, steps: int, repeats: int, scale: float, eval_rows: int,
          eval_k: int, smoke: bool, eval_repeats: int = 2) -> list[Row]:
  """Runs every measurement for ``config`` on ``size`` and prints the table; returns its rows."""
  import jax  # pylint: disable=import-outside-toplevel
  from jaxae import models  # pylint: disable=import-outside-toplevel
  from bench import flops as flops_lib  # pylint: disable=import-outside-toplevel
  from bench import sizes  # pylint: disable=import-outside-toplevel

  orientation = str(config.data.get("orientation", "user") or "user")
  data = sizes.load("smoke" if smoke else size, scale=scale, orientation=orientation,
                    eval_rows=eval_rows)
  train = data.train
  n_rows, n_cols = train.shape
  batch_size = int(config.train.batch_size)
  if smoke:
    batch_size = min(batch_size, 64)
    config.train.batch_size = batch_size
  dev = jax.devices()[0]
  peak, peak_how = flops_lib.device_peak(str(config.model.get("dtype", "float32")))
  rows: list[Row] = [Row("data", f"{data.load_seconds:.3f} s", f"{data.load_what}")]
  trainable = models.is_trainable(config.model)
  steps_per_epoch = max(1, n_rows // batch_size)
  engine = build_engine(config, n_rows, n_cols, steps_per_epoch)
  model = engine.model
  title = [
      f"jaxae bench: config={_CONFIG_PATH[0]} size={'smoke' if smoke else size}",
      f"data: {data.description}",
      f"device: {dev.platform} {dev.device_kind} x{jax.device_count()} ({os.cpu_count()} host "
      f"cores, {platform.processor() or platform.machine()}), jax {jax.__version__}; "
      f"{cli.malloc_mode()}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
      + (" -- SMOKE RUN, NOT A MEASUREMENT" if smoke else ""),
  ]
  chain = flops_lib.layer_chain(model)
  if chain is not None:
    widths = [chain[0][0]] + [o for _, o in chain]
    title.append(f"model: {config.model.name} {'-'.join(map(str, widths))} "
                 f"{config.model.get('dtype', 'float32')}, sparse_input="
                 f"{engine.sparse_input}, refeed_steps={int(config.train.refeed_steps)}, batch "
                 f"{batch_size}, optimizer {config.optim.name}, loss "
                 f"{', '.join(f'{k}={v:g}' for k, v in config.loss.items())}")
  else:
    title.append(f"model: {config.model.name}")

  params = engine.state.params
  if trainable:
    tt = time_training(engine, train, batch_size=batch_size, steps=steps, repeats=repeats)
    params = engine.state.params
    rows.append(Row("compile (train step)", f"{tt.compile_s:.2f} s",
                    f"{len(tt.shapes)} shape(s), padded nnz {tt.shapes}; not in the step time"))
    rows.append(Row("step time (steady state)", f"{tt.step_s * 1e3:.2f} ms",
                    f"best of {repeats} x {min(steps, steps_per_epoch)} steps; last loss "
                    f"{tt.loss:.4g}" + ("; output layer at the entries only (masked loss)"
                                        if tt.entry_output else "")))
    rows.append(Row("train rows/s", _fmt_rate(tt.rows_per_s), f"batch {batch_size}"))
    rows.append(Row("epoch (steady state)", f"{n_rows / tt.rows_per_s:.2f} s",
                    f"{n_rows:,} rows at the steady-state rate; host batching alone takes "
                    f"{n_rows / tt.batching_rows_per_s:.2f} s for them (overlapped by the "
                    f"prefetch thread)"))
    if tt.flops_per_step is not None:
      achieved = tt.flops_per_step / tt.step_s
      rows.append(Row("model FLOPs per step", _fmt_flops(tt.flops_per_step),
                      "matmuls only, counted as in bench/flops.py"))
      frac = f"{achieved / peak:.0%} of peak {_fmt_flops(peak)}/s ({peak_how})" if peak else \
          peak_how
      rows.append(Row("achieved FLOP/s", _fmt_flops(achieved) + "/s", frac))
      if dev.platform != "cpu":
        dtype = str(config.model.get("dtype", "float32"))
        mm = flops_lib.measure_peak(dtype)
        rows.append(Row(f"{dtype} jnp.dot 8192^3", _fmt_flops(mm) + "/s",
                        f"measured in this run; the step reaches {achieved / mm:.0%} of it"))
    rows.append(Row("host batching rows/s", _fmt_rate(tt.batching_rows_per_s),
                    "BatchIterator alone (no device), batch "
                    f"{batch_size}, {engine.num_shards} shard(s)"))
  else:
    from jaxae.training import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
    t = time.perf_counter()
    fitted = models.CLOSED_FORM[config.model.name](config.model, train)
    jax.block_until_ready(fitted)
    rows.append(Row(f"fit ({config.model.name})", f"{time.perf_counter() - t:.2f} s",
                    "closed form, float32"))
    params = mesh_lib.put_replicated(fitted, engine.mesh)

  ev_batch = int(config.eval.get("batch_size", 1024))
  group = int(config.eval.get("topk_group", 0) or 0)
  tile = int(config.eval.get("score_tile", 0) or 0) if engine.head_fn is not None else 0
  sdt = str(config.eval.get("score_dtype", "model")) if engine.head_fn is not None else "model"
  et = time_topn(engine, params, train, data.eval_split, (eval_k,), ev_batch,
                 repeats=eval_repeats, topk_group=group, score_tile=tile, score_dtype=sdt)
  ev_note = (f"{et.users:,} rows x {n_cols:,} columns, chunk {ev_batch}, topk_group {group}, "
             f"score_tile {tile}, score_dtype {sdt}; "
             + (f"first pass (compile) {et.warm_s:.2f} s; " if eval_repeats else
                "one pass, compile included; ")
             + f"recall@{eval_k} {et.metrics[f'recall@{eval_k}']:.4f}")
  if chain is not None:
    ev_note += f"; {_fmt_flops(score_flops_of(chain, train, data.eval_split, engine) / et.seconds)}/s"
  rows.append(Row(f"eval top-{eval_k} users/s", _fmt_rate(et.users / et.seconds), ev_note))
  rows.append(Row(f"eval top-{eval_k}, all {et.users:,} rows", f"{et.seconds:.2f} s",
                  "wall time of the pass above"))
  mem, how = peak_memory()
  rows.append(Row("peak memory", f"{mem / 2**30:.2f} GiB", how))

  if not smoke and size == "gowalla":
    rows.append(Row("target: Gowalla train.txt load", f"{data.load_seconds:.3f} s",
                    f"target <= {GOWALLA_LOAD_TARGET_S} s: "
                    f"{'MET' if data.load_seconds <= GOWALLA_LOAD_TARGET_S else 'NOT MET'}"))
    e20 = time_topn(engine, params, train, data.eval_split, (20,), ev_batch, repeats=2,
                    topk_group=group, score_tile=tile, score_dtype=sdt)
    rows.append(Row("target: top-20 eval, all users", f"{e20.seconds:.2f} s",
                    f"{e20.users:,} users; target <= {GOWALLA_EVAL_TARGET_S} s: "
                    f"{'MET' if e20.seconds <= GOWALLA_EVAL_TARGET_S else 'NOT MET'}; recall@20 "
                    f"{e20.metrics['recall@20']:.4f} (of the briefly trained model)"))
    if trainable:
      for name, peer, target, pred in ANCHORS:
        if pred(model, config):
          ratio = tt.rows_per_s / peer
          verdict = "" if target is None else (
              f"; target >= {target:.1f}x: {'MET' if ratio >= target else 'NOT MET'}")
          rows.append(Row(f"vs {name}", f"{ratio:.2f}x",
                          f"peer {peer:g} rows/s on this kind of CPU (ANCHORS.md){verdict}"))
  print_table(title, rows)
  return rows


def score_flops_of(chain, train, split, engine) -> float:
  """Model FLOPs of scoring the split's rows (their inputs' nonzeros for a sparse first layer)."""
  from bench import flops as flops_lib  # pylint: disable=import-outside-toplevel
  from jaxae.evaluation.context import eval_rows  # pylint: disable=import-outside-toplevel
  rows, _ = eval_rows(split)
  nnz = int(split.inputs.row_lengths()[rows].sum())
  return flops_lib.score_flops(chain, len(rows), nnz, engine.sparse_input)


_CONFIG_PATH = [""]


def main(argv):
  cli.no_extra_args(argv)
  cli.tune_malloc()                               # before jax: may re-execute the process
  _CONFIG_PATH[0] = config_flags.get_config_filename(flags.FLAGS["config"])
  smoke = _SMOKE.value
  cli.run(bench, _CONFIG.value, _SIZE.value, steps=2 if smoke else _STEPS.value,
          repeats=1 if smoke else _REPEATS.value, scale=_SCALE.value,
          eval_rows=256 if smoke else _EVAL_ROWS.value, eval_k=min(_EVAL_K.value, 20)
          if smoke else _EVAL_K.value, smoke=smoke, eval_repeats=1 if smoke else
          _EVAL_REPEATS.value)


if __name__ == "__main__":
  app.run(main)
