r"""Serving new users with ``jaxae.recommender.Recommender``: what a call costs beyond the device's
ranking, per call size, side by side in one process, on a trained user-row run.

  python -m bench.serve --workdir=DIR [--sizes=1,16,256,4096] [--top_k=20] [--rounds=5]
                        [--exclude=E]

For each call size N (users a call), N users of the run's test split (else val) are drawn once and
given as their inputs there, three ways, each timed as whole calls after an untimed one (compiles):

  lists    ``rec.recommend(lists of raw item ids)``: what a server holding requests calls (ids
           matched to the catalog, the batch built, ranked, read back)
  matrix   ``rec.recommend(scipy CSR)``: the same users as a sparse matrix in the run's item order
  device   the floor: the ready-made padded batch of the same shape put on the device, ranked by
           the Recommender's own ``ChunkRanker`` and read back; no host work before it
  excluded (``--exclude=E``) ``lists`` with E random items in ``exclude_items`` (their columns
           masked on the device; its results differ, so they are only checked to hold none of
           the E)

Each round times ``--calls`` calls of a variant (the variants alternating within a round, so a
slow spell of a shared machine hits them alike); printed: median milliseconds a call, users a
second, and the ratio of each variant's time to ``device`` (the host's share of a call). The first
three give the same recommendations (checked).
"""

from __future__ import annotations

import statistics

from absl import app
from absl import flags

from jaxae import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "a trained user-row run (train.py's workdir)")
_SIZES = flags.DEFINE_list("sizes", ["1", "16", "256", "4096"], "users per call")
_TOP_K = flags.DEFINE_integer("top_k", 20, "K", lower_bound=1)
_ROUNDS = flags.DEFINE_integer("rounds", 5, "rounds of timed calls", lower_bound=1)
_CALLS = flags.DEFINE_integer("calls", 0, "calls a variant per round (0: enough for about 0.2 s "
                              "of the device floor)", lower_bound=0)
_SEED = flags.DEFINE_integer("seed", 0, "which users are drawn")
_EXCLUDE = flags.DEFINE_integer("exclude", 0, "also time lists with this many random items in "
                                "exclude_items (variant 'excluded')", lower_bound=0)
cli.define_malloc_flags()


def main(argv):
  cli.no_extra_args(argv)
  cli.tune_malloc()                               # before jax: may re-execute the process
  # pylint: disable=import-outside-toplevel
  import time
  import jax
  import numpy as np
  from absl import logging
  from bench.harness import alternating_rounds
  from jaxae import evaluate as eval_lib
  from jaxae.data.batching import full_batches
  from jaxae.data.matrix import Interactions
  from jaxae.evaluation.topn import flat_top
  from jaxae.recommender import NNZ_LADDER, Recommender
  # pylint: enable=import-outside-toplevel
  logging.set_verbosity(logging.ERROR)
  try:
    sizes = [int(x) for x in _SIZES.value]
  except ValueError:
    raise app.UsageError(f"--sizes: integers expected, got {_SIZES.value}") from None
  if min(sizes) < 1:
    raise app.UsageError(f"--sizes must be >= 1, got {sizes}")
  k = _TOP_K.value
  rec = cli.run(Recommender.load, _WORKDIR.value)
  data = cli.run(eval_lib.rebuild_dataset, rec.run)
  split_name = "test" if data.test is not None else "val"
  split = getattr(data, split_name)
  if split is None:
    raise app.UsageError(f"{_WORKDIR.value}: the run's data has no val or test split to draw "
                         f"users from")
  inputs = split.inputs.matrix
  pool = np.flatnonzero(np.diff(inputs.indptr))
  rng = np.random.default_rng(_SEED.value)
  dev = jax.devices()[0]
  print(f"jaxae bench.serve: {rec.run.model_name} step {rec.run.step} ({_WORKDIR.value}); "
        f"{rec.n_items:,} items, top {k}; users drawn from the {split_name} split's inputs "
        f"({len(pool):,} with items); {dev.platform} {dev.device_kind} x{jax.device_count()}, "
        f"jax {jax.__version__}; {cli.malloc_mode()}")
  print(f"{'users':>6} {'bucket':>7} {'entries':>8} {'variant':>7} {'ms/call':>9} "
        f"{'users/s':>10} {'vs device':>10}")
  for n in sizes:
    rows = rng.choice(pool, size=n, replace=n > len(pool))
    m = inputs[rows]
    lists = [list(rec.item_ids[m.indices[m.indptr[r]:m.indptr[r + 1]]]) for r in range(n)]
    bucket = rec.rows_bucket(n)
    inter = Interactions(m, np.arange(n, dtype=np.int64), rec.item_ids)
    batches = list(full_batches(inter, bucket, num_shards=rec.context.num_shards,
                                nnz_buckets=NNZ_LADDER))

    def device():
      out = [flat_top(*rec.ranker(rec.context.put_fn(b), k)) for b in batches]
      return [np.asarray(i) for _, i in out]

    variants = {"lists": lambda: rec.recommend(lists, k).index,
                "matrix": lambda: rec.recommend(m, k).index,
                "device": device}
    if _EXCLUDE.value:
      banned = list(rec.item_ids[rng.choice(rec.n_items, min(_EXCLUDE.value, rec.n_items - k),
                                            replace=False)])
      variants["excluded"] = lambda: rec.recommend(lists, k, exclude_items=banned).index
    got = {name: fn() for name, fn in variants.items()}            # compiles this bucket
    floor = np.concatenate(got["device"])[:n]
    if "excluded" in got and np.isin(got["excluded"], rec.item_index(banned)).any():
      raise SystemExit(f"{n} users: an excluded item was recommended")
    if not (np.array_equal(got["lists"], floor) and np.array_equal(got["matrix"], floor)):
      raise SystemExit(f"{n} users: the variants' recommendations differ")
    calls = _CALLS.value
    if not calls:
      start = time.perf_counter()
      device()
      calls = max(1, int(0.2 / max(time.perf_counter() - start, 1e-6)))

    def repeat(fn):
      return lambda: [fn() for _ in range(calls)]

    secs = alternating_rounds({name: repeat(fn) for name, fn in variants.items()}, _ROUNDS.value)
    base = statistics.median(secs["device"])
    entries = int(m.nnz)
    for name, s in secs.items():
      med = statistics.median(s) / calls
      print(f"{n:>6} {bucket:>7} {entries:>8} {name:>7} {med * 1e3:>9.2f} {n / med:>10,.0f} "
            f"{med / (base / calls):>9.2f}x")


if __name__ == "__main__":
  flags.mark_flag_as_required("workdir")
  app.run(main)
