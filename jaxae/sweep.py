r"""Hyper-parameter sweep on the validation split: a grid of config overrides, one run each.

  python -m jaxae.sweep --config=configs/autorec_ml100k.py \
      --config.data.path=../shared/data/ml-100k/u.data \
      --grid='loss.l2=[1e-3,1e-2]' --grid='model.hidden=[500,1000]' --workdir=workdirs/sweep_autorec

Each ``--grid`` names a config key and a Python list of values (``ast.literal_eval``: numbers,
strings in quotes, tuples such as ``[(600,200),(600,64)]``); the sweep runs every combination with
`train_and_evaluate` in ``<workdir>/<index>_<overrides>`` and reads its validation records from
``metrics.jsonl``. It scores a run by its best ``config.eval.metric`` on the **validation** split
(``config.eval.metric_mode``) and the epoch where that happened, so the test split is never looked
at. The table (best first), ``sweep.jsonl`` and the ``train.py`` command of the winner are written
at the end; a run already in ``sweep.jsonl`` is not run again (re-running the same command resumes
the sweep). The data are loaded once when no ``data.*`` key or ``seed`` varies.

Every combination is validated (unknown key, wrong type, bad value) before the first run starts; a
run that fails at training time (non-finite loss at too high a learning rate ...) is recorded as
failed with its one-line reason and the sweep goes on.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import shlex
import sys
import time
from typing import Any

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxae import cli
from jaxae.errors import ConfigError, JaxaeError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
_GRID = flags.DEFINE_multi_string(
    "grid", [], "KEY=[v1,v2,...]: a config key (dotted, e.g. loss.l2) and the values to try.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Root of the sweep's run directories. Default: "
                               "workdirs/sweep_<config file name>.")
cli.define_malloc_flags()
flags.mark_flags_as_required(["config"])

RESULTS_FILE = "sweep.jsonl"


def parse_grid(specs: list[str]) -> list[tuple[str, list[Any]]]:
  """``["loss.l2=[1e-3,1e-2]", ...]`` -> ``[("loss.l2", [0.001, 0.01]), ...]``; one-line errors."""
  out = cli.parse_assignments(specs, "--grid", "KEY=[v1,v2,...]",
                              "model.activation=['selu','tanh']")
  for key, values in out.items():
    if not isinstance(values, list) or not values:
      raise ConfigError(f"--grid {key}={values!r}: the values must be a non-empty list, e.g. "
                        f"{key}=[1,2]")
  return list(out.items())


def apply_override(config, key: str, value: Any) -> None:
  """Sets ``config.<key>`` (dotted) to ``value``; an unknown key or a wrong type is a ConfigError."""
  cli.apply_override(config, key, value, "--grid")


def combinations(grid: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
  """Every combination of the grid's values, in the grid's order (the last key varies fastest)."""
  keys = [k for k, _ in grid]
  return [dict(zip(keys, vals)) for vals in itertools.product(*[v for _, v in grid])]


def run_name(index: int, overrides: dict[str, Any]) -> str:
  """A directory name: ``03_loss.l2=0.01_model.hidden=500`` (unsafe characters replaced)."""
  text = "_".join(f"{k}={v}" for k, v in overrides.items())
  return f"{index:02d}_" + re.sub(r"[^A-Za-z0-9._=+-]+", "-", text)[:150]


def best_val(records: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any]:
  """The best validation record for ``metric`` (mode "max" | "min") and the last one."""
  val = [r for r in records if r.get("split") == "val" and r.get(metric) is not None]
  if not val:
    return {"best": None, "best_epoch": None, "best_step": None, "last": None}
  pick = max if mode == "max" else min
  best = pick(val, key=lambda r: float(r[metric]))
  return {"best": float(best[metric]), "best_epoch": float(best["epoch"]),
          "best_step": int(best["step"]), "last": float(val[-1][metric])}


def override_flag(key: str, value: Any) -> str:
  """The ``train.py`` flag that sets ``key`` to ``value`` (tuples as ``(a,b)``), shell-quoted."""
  # Sequences as tuples (what config fields such as model.layers hold; sweep.jsonl stores lists).
  text = repr(tuple(value)).replace(" ", "") if isinstance(value, (tuple, list)) else str(value)
  return shlex.quote(f"--config.{key}={text}")


def read_results(path: str) -> dict[str, dict[str, Any]]:
  """``sweep.jsonl`` keyed by run name (the last record of each)."""
  from jaxae.training import logging as log_lib  # pylint: disable=import-outside-toplevel
  return {rec["name"]: rec for rec in log_lib.read_metrics(path)}   # skips a torn last line


def sweep(config, grid: list[tuple[str, list[Any]]], workdir: str, *,
          base_flags: tuple[str, ...] = (), config_path: str = "CONFIG") -> list[dict[str, Any]]:
  """Runs the grid; returns one record per combination (best validation metric first)."""
  # Imports here keep `--help` and flag errors fast.
  from jaxae.data import pipelines  # pylint: disable=import-outside-toplevel
  from jaxae.training import logging as log_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training.loop import check_config, train_and_evaluate  # pylint: disable=import-outside-toplevel

  check_config(config)
  metric, mode = str(config.eval.metric), str(config.eval.metric_mode)
  if not list(config.eval.evaluators):
    raise ConfigError("a sweep scores runs on the validation split: config.eval.evaluators is empty")
  combos = combinations(grid)
  configs = []
  for overrides in combos:                     # validate everything before the first run
    c = copy.deepcopy(config)
    for key, value in overrides.items():
      apply_override(c, key, value)
    check_config(c)
    configs.append(c)

  os.makedirs(workdir, exist_ok=True)
  results_path = os.path.join(workdir, RESULTS_FILE)
  done = read_results(results_path)
  shared_data = not any(k == "seed" or k.startswith("data.") for k, _ in grid)
  dataset = None
  records = []
  for i, (overrides, c) in enumerate(zip(combos, configs)):
    name = run_name(i, overrides)
    if name in done:
      print(f"[{i + 1}/{len(combos)}] {name}: already in {RESULTS_FILE}, not run again", flush=True)
      records.append(done[name])
      continue
    if dataset is None or not shared_data:
      dataset = pipelines.load_dataset(c.data, int(c.seed))
      if dataset.val is None:
        raise ConfigError("a sweep scores runs on the validation split, and the data have none "
                          "(set config.data.val_fraction > 0)")
    print(f"[{i + 1}/{len(combos)}] {name}", flush=True)
    run_dir = os.path.join(workdir, name)
    t0 = time.time()
    rec: dict[str, Any] = {"name": name, "overrides": overrides, "metric": metric}
    try:
      train_and_evaluate(c, run_dir, dataset=dataset)
      rec.update(best_val(log_lib.read_metrics(os.path.join(run_dir, log_lib.METRICS_FILE)),
                          metric, mode))
      rec["status"] = "ok"
    except JaxaeError as e:                    # e.g. NonFiniteError: record it, try the next one
      rec.update({"status": "failed", "error": f"{type(e).__name__}: {e}", "best": None})
    rec["wall_s"] = round(time.time() - t0, 1)
    with open(results_path, "a", encoding="utf-8") as fh:
      fh.write(json.dumps(rec, default=str) + "\n")
    records.append(rec)

  ok = [r for r in records if r.get("best") is not None]
  ok.sort(key=lambda r: r["best"], reverse=(mode == "max"))
  ranked = ok + [r for r in records if r.get("best") is None]
  print(format_table(ranked, metric, mode))
  if ok:
    winner = ok[0]
    flags_text = " ".join([shlex.quote(f) for f in base_flags] + [override_flag(k, v)
                                              for k, v in winner["overrides"].items()])
    print(f"\nbest on validation: {winner['name']} ({metric} {winner['best']:.6g} at epoch "
          f"{winner['best_epoch']:g})\n  python train.py --config={config_path} {flags_text}")
  return ranked


def format_table(records: list[dict[str, Any]], metric: str, mode: str) -> str:
  """A plain-text table of the runs: overrides, best validation metric, its epoch, last, wall."""
  keys = list(records[0]["overrides"]) if records else []
  head = keys + [f"best val {metric} ({mode})", "at epoch", "last", "wall s"]
  rows = []
  for r in records:
    cells = [str(r["overrides"].get(k)) for k in keys]
    if r.get("best") is None:
      cells += [r.get("status", "failed"), "", "", str(r.get("wall_s", ""))]
      if r.get("error"):
        cells[-3] = r["error"][:60]
    else:
      cells += [f"{r['best']:.6g}", f"{r['best_epoch']:g}", f"{r['last']:.6g}", f"{r['wall_s']}"]
    rows.append(cells)
  widths = [max(len(h), *(len(row[j]) for row in rows)) if rows else len(h)
            for j, h in enumerate(head)]
  lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
  lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
  return "\n".join(lines)


def main(argv):
  cli.no_extra_args(argv)
  cli.quiet_third_party_logs()
  config_path = config_flags.get_config_filename(flags.FLAGS["config"])
  workdir = _WORKDIR.value or os.path.join(
      "workdirs", "sweep_" + os.path.splitext(os.path.basename(config_path))[0])
  base = tuple(a for a in sys.argv[1:] if a.startswith("--config."))
  grid = cli.run(parse_grid, _GRID.value)
  cli.tune_malloc()                               # before jax: may re-execute the process
  cli.run(sweep, _CONFIG.value, grid, workdir, base_flags=base, config_path=config_path)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
