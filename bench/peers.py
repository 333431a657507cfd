r"""jaxae and Cornac side by side on the same Gowalla workload, in the same run, as ratios.

  python -m bench.peers [--epochs=1] [--eval_users=2000] [--ease=both|ours|cornac|none]

Workloads (LightGCN Gowalla split from ../shared/data/gowalla: train on train.txt, rank test.txt):

* VAE: Cornac's ``VAECF(k=200, autoencoder_structure=[600], batch_size=100, learning_rate=1e-3,
  beta=1.0, likelihood="mult")`` against jaxae's Mult-VAE with the same layers (n-600-200-600-n,
  tanh), batch, Adam rate and constant KL weight 1.0; jaxae's input dropout is set to 0 because
  VAECF has none (jaxae still L2-normalizes the input rows, as Liang et al. do). Both train
  ``--epochs`` epochs over all users; the rows/s include host batching (compile excluded). Ranking:
  full-catalog top-20 with the training items excluded, Recall@20 (hits / test items) and NDCG@20,
  on the same ``--eval_users`` users for both (Cornac ranks one user at a time in Python), and for
  jaxae also on all users.
* EASE: Cornac's ``EASE(lamb=500)`` (float64 dense Gram and ``np.linalg.inv``) in a child process
  whose address space is capped (``--cornac_mem_gb``) so a failed allocation is a MemoryError, not
  the OOM killer; jaxae's EASE (configs/ease_gowalla.py: float32, blocked in-place solver).

Cornac is optional (the ``bench`` extra); without it the Cornac rows say so and jaxae's still run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

from jaxae import cli

_EPOCHS = flags.DEFINE_integer("epochs", 1, "training epochs of both VAEs")
_EVAL_USERS = flags.DEFINE_integer("eval_users", 2000, "test users both rank (first N test users)")
_EASE = flags.DEFINE_enum("ease", "cornac", ["both", "ours", "cornac", "none"],
                         "EASE runs (jaxae's EASE on Gowalla takes tens of minutes on 2 CPU cores)")
_CORNAC_MEM_GB = flags.DEFINE_float("cornac_mem_gb", 16.0,
                                    "address-space cap of the Cornac EASE child process (GiB)")
_CHILD = flags.DEFINE_bool("cornac_ease_child", False, "internal: run Cornac EASE and print JSON")
_SEED = flags.DEFINE_integer("seed", 0, "seed of both VAEs")
cli.define_malloc_flags("Both sides (jaxae, Cornac) run in this process.")

K = 20


def cornac_available() -> str | None:
  """None when Cornac and torch import, else the reason."""
  try:
    import cornac  # pylint: disable=import-outside-toplevel,unused-import
    import torch  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError as e:
    return (f"{e}; install the bench extra (CPU torch first: pip install torch==2.13.0, then "
            f"pip install -e '.[bench]')")
  return None


def load_gowalla():
  from bench import sizes  # pylint: disable=import-outside-toplevel
  return sizes.load("gowalla")


def triplets(inter, users=None) -> list[tuple[int, int, float]]:
  """UIR triplets of a CSR matrix (only the rows in ``users`` when given)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  m = inter.matrix.tocoo()
  keep = np.ones(m.nnz, bool) if users is None else np.isin(m.row, users)
  return list(zip(m.row[keep].tolist(), m.col[keep].tolist(), [1.0] * int(keep.sum())))


def cornac_split(train, test, users):
  """Cornac train/test Datasets (one id space) of the Gowalla files; test only ``users``."""
  from cornac.eval_methods import BaseMethod  # pylint: disable=import-outside-toplevel
  t = time.perf_counter()
  method = BaseMethod.from_splits(train_data=triplets(train), test_data=triplets(test, users),
                                  exclude_unknowns=True, seed=0, verbose=False)
  return method, time.perf_counter() - t


# ----------------------------------------------------------------------------- jaxae side
def vae_config(epochs: int, seed: int):
  """configs/mult_vae_gowalla.py set to VAECF's settings."""
  from configs import mult_vae_gowalla  # pylint: disable=import-outside-toplevel
  c = mult_vae_gowalla.get_config()
  c.seed = seed
  c.model.layers = (600, 200)
  c.model.input_dropout = 0.0
  c.loss_anneal.total_steps = 0
  c.loss_anneal.beta_cap = 1.0
  c.optim.lr = 1e-3
  c.train.batch_size = 100
  c.train.epochs = epochs
  return c


def ours_vae(data, epochs: int, seed: int, users) -> dict:
  """Trains jaxae's Mult-VAE ``epochs`` epochs (timed, compile excluded) and ranks the test users."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxae.data.batching import BatchIterator, prefetch  # pylint: disable=import-outside-toplevel
  from jaxae.data.dataset import EvalSplit  # pylint: disable=import-outside-toplevel
  from bench import harness as run_lib  # pylint: disable=import-outside-toplevel

  config = vae_config(epochs, seed)
  train = data.train
  bs = int(config.train.batch_size)
  it = BatchIterator(train, bs, seed=seed)
  engine = run_lib.build_engine(config, train.shape[0], train.shape[1], it.steps_per_epoch())
  # Compile every padded shape an epoch uses, on a throwaway state (the timed run starts fresh).
  t = time.perf_counter()
  warm = jax.tree.map(lambda x: x.copy(), engine.state)
  seen = set()
  for e in range(epochs):
    for b in it.epoch(e):
      if b.cols.shape[1] not in seen:
        seen.add(b.cols.shape[1])
        warm, m = engine.train_step(warm, engine.put(b))
        jax.block_until_ready(m)
  compile_s = time.perf_counter() - t
  del warm
  state = engine.state
  t = time.perf_counter()
  for e in range(epochs):
    for b in prefetch(map(engine.put, it.epoch(e)), 2):
      state, m = engine.train_step(state, b)
  jax.block_until_ready(m)
  train_s = time.perf_counter() - t
  engine.state = state
  full = run_lib.time_topn(engine, state.params, train, data.eval_split, (K,), 1024, repeats=1)
  sub_split = EvalSplit(data.eval_split.inputs, data.eval_split.targets, rows=np.asarray(users))
  sub = run_lib.time_topn(engine, state.params, train, sub_split, (K,), 1024, repeats=1)
  return {"rows_per_s": epochs * train.shape[0] / train_s, "train_s": train_s,
          "compile_s": compile_s, "loss": float(m["loss"]), "eval_all_s": full.seconds,
          "eval_all_users": full.users, "recall_all": full.metrics[f"recall@{K}"],
          "ndcg_all": full.metrics[f"ndcg@{K}"], "eval_sub_s": sub.seconds,
          "eval_sub_users": sub.users, "recall_sub": sub.metrics[f"recall@{K}"],
          "ndcg_sub": sub.metrics[f"ndcg@{K}"]}


def ours_ease(data, users) -> dict:
  """jaxae's EASE (configs/ease_gowalla.py) fitted on train.txt, ranking the test users."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from configs import ease_gowalla  # pylint: disable=import-outside-toplevel
  from jaxae import models  # pylint: disable=import-outside-toplevel
  from jaxae.data.dataset import EvalSplit  # pylint: disable=import-outside-toplevel
  from jaxae.training import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from bench import harness as run_lib  # pylint: disable=import-outside-toplevel

  config = ease_gowalla.get_config()
  train = data.train
  engine = run_lib.build_engine(config, train.shape[0], train.shape[1], 1)
  t = time.perf_counter()
  try:
    params = models.CLOSED_FORM["ease"](config.model, train)
    jax.block_until_ready(params)
  except Exception as e:  # pylint: disable=broad-except  # reported as the result
    return {"error": f"{type(e).__name__}: {e}", "fit_s": time.perf_counter() - t}
  fit_s = time.perf_counter() - t
  params = mesh_lib.put_replicated(params, engine.mesh)
  full = run_lib.time_topn(engine, params, train, data.eval_split, (K,), 1024, repeats=1)
  sub = run_lib.time_topn(engine, params, train, EvalSplit(
      data.eval_split.inputs, data.eval_split.targets, rows=np.asarray(users)), (K,), 1024)
  return {"fit_s": fit_s, "eval_all_s": full.seconds, "recall_all": full.metrics[f"recall@{K}"],
          "ndcg_all": full.metrics[f"ndcg@{K}"], "eval_sub_s": sub.seconds,
          "recall_sub": sub.metrics[f"recall@{K}"], "ndcg_sub": sub.metrics[f"ndcg@{K}"]}


# ----------------------------------------------------------------------------- Cornac side
def cornac_vae(data, epochs: int, seed: int, users) -> dict:
  import cornac  # pylint: disable=import-outside-toplevel
  from cornac.eval_methods import ranking_eval  # pylint: disable=import-outside-toplevel
  method, build_s = cornac_split(data.train, data.eval_split.targets, users)
  model = cornac.models.VAECF(k=200, autoencoder_structure=[600], act_fn="tanh",
                              likelihood="mult", n_epochs=epochs, batch_size=100,
                              learning_rate=1e-3, beta=1.0, seed=seed, verbose=False,
                              use_gpu=False)
  t = time.perf_counter()
  model.fit(method.train_set)
  train_s = time.perf_counter() - t
  t = time.perf_counter()
  (recall, ndcg), _ = ranking_eval(model, [cornac.metrics.Recall(k=K), cornac.metrics.NDCG(k=K)],
                                   method.train_set, method.test_set)
  eval_s = time.perf_counter() - t
  n_eval = len(set(method.test_set.uir_tuple[0]))
  return {"rows_per_s": epochs * method.train_set.num_users / train_s, "train_s": train_s,
          "build_s": build_s, "eval_sub_s": eval_s, "eval_sub_users": n_eval,
          "recall_sub": float(recall), "ndcg_sub": float(ndcg)}


def cornac_ease_child(mem_gb: float) -> None:
  """(child process) Cornac EASE under an address-space cap; prints one JSON line."""
  cap = int(mem_gb * 2**30)
  resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
  out: dict = {"mem_cap_gb": mem_gb}
  t = time.perf_counter()
  try:
    import cornac  # pylint: disable=import-outside-toplevel
    data = load_gowalla()
    method, _ = cornac_split(data.train, data.eval_split.targets, None)
    t = time.perf_counter()
    cornac.models.EASE(lamb=500, verbose=False).fit(method.train_set)
    out["fit_s"] = time.perf_counter() - t
  except MemoryError as e:
    out.update(error=f"MemoryError {e}".strip(), after_s=time.perf_counter() - t)
  print(json.dumps(out), flush=True)


def cornac_ease(mem_gb: float) -> dict:
  cmd = [sys.executable, "-m", "bench.peers", "--cornac_ease_child", f"--cornac_mem_gb={mem_gb}"]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  for line in reversed(proc.stdout.splitlines()):
    if line.startswith("{"):
      return json.loads(line)
  return {"error": f"child exited {proc.returncode}: {proc.stderr.strip()[-300:]}"}


# ----------------------------------------------------------------------------- table
def _ratio(a, b) -> str:
  return f"{a / b:.2f}x" if a and b else "-"


def main(argv):
  cli.no_extra_args(argv)
  if _CHILD.value:
    cornac_ease_child(_CORNAC_MEM_GB.value)
    return
  cli.tune_malloc()                               # before jax: may re-execute the process
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxae.evaluation.context import eval_rows  # pylint: disable=import-outside-toplevel
  data = load_gowalla()
  rows_all, _ = eval_rows(data.eval_split)
  users = np.sort(rows_all)[:_EVAL_USERS.value]
  missing = cornac_available()
  epochs = _EPOCHS.value
  print(f"jaxae vs Cornac on Gowalla ({data.description}); {epochs} epoch(s); top-{K} on "
        f"{len(users)} test users for both (and all {len(rows_all):,} for jaxae)")
  lines = []
  ours = ours_vae(data, epochs, _SEED.value, users)
  theirs = None if missing else cornac_vae(data, epochs, _SEED.value, users)
  lines.append(("Mult-VAE / VAECF train rows/s", f"{ours['rows_per_s']:,.0f}",
                "-" if theirs is None else f"{theirs['rows_per_s']:,.0f}",
                _ratio(ours["rows_per_s"], theirs and theirs["rows_per_s"])))
  lines.append((f"  ranking users/s ({len(users)} users)",
                f"{ours['eval_sub_users'] / ours['eval_sub_s']:,.0f}",
                "-" if theirs is None else f"{theirs['eval_sub_users'] / theirs['eval_sub_s']:,.1f}",
                _ratio(ours["eval_sub_users"] / ours["eval_sub_s"],
                       theirs and theirs["eval_sub_users"] / theirs["eval_sub_s"])))
  lines.append((f"  Recall@{K} after {epochs} epoch(s) (same users)", f"{ours['recall_sub']:.4f}",
                "-" if theirs is None else f"{theirs['recall_sub']:.4f}", ""))
  lines.append((f"  NDCG@{K} (same users)", f"{ours['ndcg_sub']:.4f}",
                "-" if theirs is None else f"{theirs['ndcg_sub']:.4f}", ""))
  lines.append((f"  jaxae all {ours['eval_all_users']:,} users: top-{K} s / Recall / NDCG",
                f"{ours['eval_all_s']:.2f} s / {ours['recall_all']:.4f} / {ours['ndcg_all']:.4f}",
                "", ""))
  if _EASE.value != "none":
    e_ours = ours_ease(data, users) if _EASE.value in ("both", "ours") else None
    e_theirs = (None if missing or _EASE.value == "ours" else cornac_ease(_CORNAC_MEM_GB.value))

    def ease_cell(r):
      if r is None:
        return "-"
      if "error" in r:
        return f"fails: {r['error'][:80]}"
      return f"fit {r['fit_s']:.1f} s"

    lines.append(("EASE (l2 500) fit", ease_cell(e_ours), ease_cell(e_theirs), ""))
    if e_ours and "error" not in e_ours:
      lines.append((f"  jaxae EASE Recall@{K} / NDCG@{K} (all users)",
                    f"{e_ours['recall_all']:.4f} / {e_ours['ndcg_all']:.4f}", "", ""))
  w = [max(len(r[i]) for r in lines + [("measure", "jaxae", "Cornac 3", "ratio")])
       for i in range(4)]
  head = ("measure", "jaxae", f"Cornac {_cornac_version()}", "ratio")
  print("  ".join(f"{h:<{w[i]}}" for i, h in enumerate(head)))
  print("  ".join("-" * x for x in w))
  for r in lines:
    print("  ".join(f"{c:<{w[i]}}" for i, c in enumerate(r)).rstrip())
  if missing:
    print(f"Cornac rows skipped: {missing}")
  print(f"{cli.malloc_mode()}; jaxae VAE: compile {ours['compile_s']:.1f} s (not in rows/s), "
        f"last loss {ours['loss']:.4g}"
        + ("" if theirs is None else f"; Cornac dataset build {theirs['build_s']:.2f} s"))


def _cornac_version() -> str:
  try:
    import cornac  # pylint: disable=import-outside-toplevel
    return cornac.__version__
  except ImportError:
    return "(absent)"


if __name__ == "__main__":
  app.run(main)
