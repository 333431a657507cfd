r"""Top-K over a full catalog on the device: ``jax.lax.top_k`` on whole rows against the two-stage
(blocked) top-K that the top-N evaluator can use (``config.eval.topk_block``).

  python -m bench.topk [--rows=4096] [--cols=277218] [--k=100] [--blocks=0,2048,4096,8192]
      [--repeats=5]

Block 0 is ``jax.lax.top_k`` over each whole row; block N splits the row into blocks of N columns
(the last padded with -inf), takes the top K of each block, then the top K of those candidates
(``jaxae.evaluation.topn.blocked_top_k``). Both are exact: the script checks that every variant
returns the same indices as block 0 on the same random scores (float32, fresh normal draws, some
columns set to -inf as the evaluator's exclusion does), then times each (median of ``--repeats``
after a warm-up; a new score matrix per timed call is not needed: top-K reads its input once).
"""

from __future__ import annotations

import statistics
import time

from absl import app
from absl import flags

_ROWS = flags.DEFINE_integer("rows", 4096, "rows per call (the evaluator's chunk)")
_COLS = flags.DEFINE_integer("cols", 277_218, "columns (the catalog)")
_K = flags.DEFINE_integer("k", 100, "K")
_BLOCKS = flags.DEFINE_list("blocks", ["0", "2048", "4096", "8192"],
                            "block sizes to compare (0 = jax.lax.top_k on the whole row)")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls (median reported)")


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxae.evaluation.topn import top_k  # pylint: disable=import-outside-toplevel

  rows, cols, k = _ROWS.value, _COLS.value, _K.value
  key = jax.random.PRNGKey(0)
  scores = jax.random.normal(key, (rows, cols), jnp.float32)
  excluded = jax.random.uniform(jax.random.PRNGKey(1), (rows, cols)) < 0.001
  scores = jnp.where(excluded, -jnp.inf, scores)
  ref_i = None
  results = []
  for block in [int(b) for b in _BLOCKS.value]:
    fn = jax.jit(lambda s, block=block: top_k(s, k, block))
    t = time.perf_counter()
    vals, idx = fn(scores)
    jax.block_until_ready(idx)
    first = time.perf_counter() - t
    idx_host = np.asarray(idx)
    if ref_i is None:
      ref_i = idx_host
      same = "reference"
    else:
      same = "same indices" if np.array_equal(idx_host, ref_i) else \
          f"DIFFERENT indices in {(idx_host != ref_i).any(axis=1).sum()} rows"
    times = []
    for _ in range(_REPEATS.value):
      t = time.perf_counter()
      jax.block_until_ready(fn(scores))
      times.append(time.perf_counter() - t)
    med = statistics.median(times)
    results.append((block, first, med, same))
  dev = jax.devices()[0]
  print(f"top-{k} of [{rows:,}, {cols:,}] float32 scores on {dev.platform} {dev.device_kind}, "
        f"jax {jax.__version__}; median of {_REPEATS.value}")
  print(f"{'block':>7}  {'first call (compile)':>20}  {'median':>10}  {'rows/s':>12}  {'GB/s read':>9}"
        f"  check")
  for block, first, med, same in results:
    name = "lax" if block == 0 else str(block)
    print(f"{name:>7}  {first:>18.2f} s  {med * 1e3:>7.2f} ms  {rows / med:>12,.0f}  "
          f"{rows * cols * 4 / med / 1e9:>9.1f}  {same}")


if __name__ == "__main__":
  app.run(main)
