r"""Writing every user's top K (``python -m jaxae.predict``) against the top-N evaluator's pass over
the same users, side by side in one process, on a trained run.

  python -m bench.predict --workdir=DIR [--query=test] [--top_k=20] [--rounds=3]

Three variants, each a whole library call with the data loaded once beforehand: ``evaluate``
(``jaxae.evaluate.evaluate_workdir`` on the ``--query`` split, metrics only, nothing written),
``predict`` (``jaxae.predict.recommend`` with that split's inputs as the queries: the .npy files)
and ``predict+tsv`` (also ``recommendations.tsv``). Each runs once untimed (compiles), then
``--rounds`` rounds of one timed call each, the variants alternating within a round. Prints each
one's median and best seconds, users a second and the ratio to ``evaluate`` (median over median):
what writing the recommendations costs beyond ranking them. Also checks that Recall@K counted from
the written files equals the evaluator's (the same ranking).
"""

from __future__ import annotations

import statistics
import tempfile

from absl import app
from absl import flags

from jaxae import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "a trained run (train.py's workdir)")
_QUERY = flags.DEFINE_enum("query", "test", ["val", "test"], "the split whose users are ranked")
_TOP_K = flags.DEFINE_integer("top_k", 20, "K", lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", 3, "timed calls per variant", lower_bound=1)
cli.define_malloc_flags()


def main(argv):
  cli.no_extra_args(argv)
  cli.tune_malloc()                               # before jax: may re-execute the process
  # pylint: disable=import-outside-toplevel
  import jax
  import numpy as np
  from absl import logging
  from bench.harness import alternating_rounds
  from jaxae import evaluate as eval_lib
  from jaxae import predict
  # pylint: enable=import-outside-toplevel
  logging.set_verbosity(logging.ERROR)
  workdir, query, k = _WORKDIR.value, _QUERY.value, _TOP_K.value
  run = eval_lib.load_checkpoint(workdir)
  data = eval_lib.rebuild_dataset(run)
  split = getattr(data, query)
  out = tempfile.mkdtemp(prefix="bench_predict_")

  def evaluate():
    return eval_lib.evaluate_workdir(workdir, split=query, dataset=data, write=False)

  variants = {
      "evaluate": evaluate,
      "predict": lambda: predict.recommend(workdir, out, top_k=k, query=query, dataset=data),
      "predict+tsv": lambda: predict.recommend(workdir, out, top_k=k, query=query, dataset=data,
                                               tsv=True),
  }
  results = {name: fn() for name, fn in variants.items()}        # compiles every chunk shape
  idx = np.load(f"{out}/{predict.IDX_FILE}")
  t = split.targets.matrix
  rows = np.flatnonzero(np.diff(t.indptr))
  hits = np.array([np.isin(idx[r], t.indices[t.indptr[r]:t.indptr[r + 1]]).sum() for r in rows])
  recall_files = float(np.mean(hits / np.diff(t.indptr)[rows]))
  recall_eval = results["evaluate"]["metrics"].get(f"recall@{k}")
  if recall_eval is None:
    raise app.UsageError(f"--top_k={k}: the run's evaluator gives no recall@{k} (its "
                         f"config.eval.ks: {tuple(run.config.eval.ks)})")
  secs = alternating_rounds(variants, _ROUNDS.value)
  dev = jax.devices()[0]
  n_users = results["predict"]["n_users"]
  print(f"jaxae bench.predict: {run.model_name} step {run.step} ({workdir}); {query} split: "
        f"{n_users:,} users x {results['predict']['n_items']:,} items, top {k}; {dev.platform} "
        f"{dev.device_kind} x{jax.device_count()}, jax {jax.__version__}; {cli.malloc_mode()}")
  print(f"{'variant':>12} {'median s':>9} {'best s':>8} {'users/s':>9} {'vs evaluate':>12}")
  base = statistics.median(secs["evaluate"])
  for name, s in secs.items():
    med = statistics.median(s)
    users = len(rows) if name == "evaluate" else n_users
    print(f"{name:>12} {med:>9.2f} {min(s):>8.2f} {users / med:>9,.0f} {base / med:>11.2f}x")
  print(f"recall@{k}: from the written files {recall_files:.6f}, the evaluator's "
        f"{recall_eval:.6f} ({len(rows):,} users with targets)")
  if abs(recall_files - recall_eval) > 1e-6:
    raise SystemExit("the written recommendations do not rank as the evaluator does")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
