r"""``train.py`` (and ``eval.py``) with ``--hugepages``, without it, and with ``--keep_heap``,
alternating, as a user runs them.

  python -m bench.hugepages --config=configs/cdae_gowalla.py [--rounds=2] [--eval] \
      -- --config.data.path=../shared/data/gowalla --config.train.epochs=2

Each round runs ``python train.py --config=CONFIG ARGS --workdir=<fresh>`` once with
``--hugepages`` (the default: the process re-executes itself with
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``), once with ``--nohugepages`` and once with
``--keep_heap`` (huge pages and :data:`jaxae.cli.KEEP_HEAP`), all started from an environment
without those tunables; with ``--eval`` each run's workdir is then evaluated by
``eval.py --split=test`` the same way. Prints each variant's median and best wall time (the whole
command: start-up, data, compilation, steps, evaluations, checkpoints) and their ratio to
``--nohugepages``, and checks that all variants end with the same metrics (the tunables change
where memory comes from, not what is computed).
"""

from __future__ import annotations

import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from jaxae import cli
from jaxae.training import logging as log_lib

_CONFIG = flags.DEFINE_string("config", None, "config file for train.py", required=True)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "runs per variant (alternating)", lower_bound=1)
_EVAL = flags.DEFINE_bool("eval", False, "also time eval.py --split=test on each run's workdir")

REPO = pathlib.Path(__file__).resolve().parent.parent
VARIANTS = ("--hugepages", "--nohugepages", "--keep_heap")
# The tunables the variants set (or not) themselves.
_THEIRS = {t.partition("=")[0] for _, tunables in cli.MALLOC_FLAGS.values() for t in tunables}


def _env() -> dict[str, str]:
  """This environment without the tunables of ``--hugepages`` / ``--keep_heap``."""
  env = dict(os.environ)
  tun = [t for t in env.pop("GLIBC_TUNABLES", "").split(":")
         if t and t.partition("=")[0] not in _THEIRS]
  if tun:
    env["GLIBC_TUNABLES"] = ":".join(tun)
  return env


def _timed(cmd: list[str]) -> float:
  start = time.perf_counter()
  p = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, check=False)
  secs = time.perf_counter() - start
  if p.returncode:
    raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
  return secs


def _last_metrics(workdir: pathlib.Path) -> dict:
  last = log_lib.read_metrics(workdir / log_lib.METRICS_FILE)[-1]
  return {k: v for k, v in last.items()                      # what was computed, not how fast
          if not (k.endswith("_s") or "time" in k)}


def main(argv):
  extra = argv[1:]
  train = {v: [] for v in VARIANTS}
  evals = {v: [] for v in VARIANTS}
  finals = {}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(_ROUNDS.value):
      for v in VARIANTS:
        wd = pathlib.Path(tmp) / f"{v.strip('-')}_{r}"
        train[v].append(_timed([sys.executable, "train.py", f"--config={_CONFIG.value}", *extra,
                                f"--workdir={wd}", v]))
        finals.setdefault(v, _last_metrics(wd))
        if _EVAL.value:
          evals[v].append(_timed([sys.executable, "eval.py", f"--workdir={wd}", "--split=test",
                                  v]))
  a = finals[VARIANTS[0]]
  differ = [(v, finals[v]) for v in VARIANTS[1:] if finals[v] != a]
  same = not differ
  print(f"jaxae bench.hugepages: train.py --config={_CONFIG.value} {' '.join(extra)}; "
        f"{_ROUNDS.value} round(s), alternating; started without their malloc tunables "
        f"({cli.malloc_mode()} here)")
  print(f"{'command':<10} {'variant':<15} {'median s':>9} {'best s':>8} {'nohugepages / this':>19}")
  for name, runs in (("train.py", train), ("eval.py", evals)):
    if not runs[VARIANTS[0]]:
      continue
    base = statistics.median(runs["--nohugepages"])
    for v in VARIANTS:
      med = statistics.median(runs[v])
      print(f"{name:<10} {v:<15} {med:>9.2f} {min(runs[v]):>8.2f} {base / med:>18.2f}x")
  print("final metrics: " + ("the same in every variant" if same else
                              f"DIFFER: {VARIANTS[0]} {a} vs " + "; ".join(
                                  f"{v} {m}" for v, m in differ)))
  if not same:
    raise SystemExit(1)


if __name__ == "__main__":
  app.run(main)
