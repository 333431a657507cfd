r"""Top-K over a full catalog on the device: ``jax.lax.top_k`` on whole rows against the exact
top-K through group maxima that the top-N evaluator can use (``config.eval.topk_group``), and a
two-stage blocked top-K kept here for comparison.

  python -m bench.topk [--rows=4096] [--cols=277218] [--k=100] [--blocks=0,1024]
      [--groups=4,8,16,32,64] [--repeats=5] [--exclude=0]

"lax" (block 0) is ``jax.lax.top_k`` over each whole row; block N splits the row into blocks of N
columns (the last padded with -inf), takes the top K of each block, then the top K of those
candidates (:func:`blocked_top_k`, not used by the library: slower than the group form on every
device measured); gN takes the top K groups of N columns by their maxima, then the top K of those
groups' columns (``jaxae.topk.top_k`` with ``group=N``). Both are exact: the script checks that every variant
returns the same indices as block 0 on the same random scores (float32, fresh normal draws, some
columns set to -inf as the evaluator's exclusion does), then times each (median of ``--repeats``
after a warm-up; a new score matrix per timed call is not needed: top-K reads its input once).

``--exclude=E`` times what the evaluator runs instead: the top K with E random entries of each row
(its training items) excluded, ``jaxae.topk.top_k_excluding``. Then "lax" is its ``group`` 0 (-inf
written into the score block, then ``jax.lax.top_k``), gN its group path (the block only read),
and sN the group form after the same write into the block (``top_k`` of the excluded scores: what
``top_k_excluding`` did before session 11); blocks are not timed.
"""

from __future__ import annotations

import statistics
import time

from absl import app
from absl import flags

_ROWS = flags.DEFINE_integer("rows", 4096, "rows per call (the evaluator's chunk)")
_COLS = flags.DEFINE_integer("cols", 277_218, "columns (the catalog)")
_K = flags.DEFINE_integer("k", 100, "K")
_BLOCKS = flags.DEFINE_list("blocks", ["0", "1024"],
                            "block sizes to compare (0 = jax.lax.top_k on the whole row)")
_GROUPS = flags.DEFINE_list("groups", ["4", "8", "16", "32", "64"],
                            "group sizes of the group-maxima top-K to compare")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls (median reported)")
_EXCLUDE = flags.DEFINE_integer("exclude", 0, "entries of each row to exclude (the evaluator's "
                                "training items; 0 = none): times top_k_excluding")


def blocked_top_k(scores, k: int, block: int):
  """Two stages: the top ``k`` of each block of ``block`` columns, then of those ``k * n_blocks``
  candidates (block-major, so ties keep column order); ``jax.lax.top_k`` when ``block`` is 0."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  b, n = scores.shape
  if block <= 0 or n <= block or block < k:
    return jax.lax.top_k(scores, k)
  n_blocks = -(-n // block)
  padded = jnp.pad(scores, ((0, 0), (0, n_blocks * block - n)), constant_values=-jnp.inf)
  vals, idx = jax.lax.top_k(padded.reshape(b, n_blocks, block), k)            # [B, nb, k]
  idx = idx + (jnp.arange(n_blocks, dtype=idx.dtype) * block)[None, :, None]
  vals, pos = jax.lax.top_k(vals.reshape(b, -1), k)
  return vals, jnp.take_along_axis(idx.reshape(b, -1), pos, axis=1)


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxae.topk import top_k, top_k_excluding  # pylint: disable=import-outside-toplevel

  rows, cols, k, n_ex = _ROWS.value, _COLS.value, _K.value, _EXCLUDE.value
  key = jax.random.PRNGKey(0)
  scores = jax.random.normal(key, (rows, cols), jnp.float32)
  excluded = jax.random.uniform(jax.random.PRNGKey(1), (rows, cols)) < 0.001
  scores = jnp.where(excluded, -jnp.inf, scores)
  ref_i = None
  results = []
  if n_ex > 0:
    seg = jnp.repeat(jnp.arange(rows, dtype=jnp.int32), n_ex)
    ex_cols = jax.random.randint(jax.random.PRNGKey(2), seg.shape, 0, cols, jnp.int32)
    real = jnp.ones(seg.shape, bool)
    def scattered(s):
      return s.at[seg, ex_cols].min(-jnp.inf)
    variants = [("lax", lambda s: top_k_excluding(s, seg, ex_cols, real, k, 0))]
    for g in map(int, _GROUPS.value):
      variants += [(f"g{g}", lambda s, g=g: top_k_excluding(s, seg, ex_cols, real, k, g)),
                   (f"s{g}", lambda s, g=g: top_k(scattered(s), k, g))]
  else:
    variants = [(str(int(b)) if int(b) else "lax", lambda s, b=int(b): blocked_top_k(s, k, b))
                for b in _BLOCKS.value]
    variants += [(f"g{int(g)}", lambda s, g=int(g): top_k(s, k, g)) for g in _GROUPS.value]
  for name, f in variants:
    fn = jax.jit(f)
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
    results.append((name, first, med, same))
  dev = jax.devices()[0]
  print(f"top-{k} of [{rows:,}, {cols:,}] float32 scores"
        + (f", {n_ex} entries a row excluded" if n_ex > 0 else "")
        + f" on {dev.platform} {dev.device_kind}, jax {jax.__version__}; "
        f"median of {_REPEATS.value}")
  print(f"{'block':>7}  {'first call (compile)':>20}  {'median':>10}  {'rows/s':>12}  {'GB/s read':>9}"
        f"  check")
  for name, first, med, same in results:
    print(f"{name:>7}  {first:>18.2f} s  {med * 1e3:>7.2f} ms  {rows / med:>12,.0f}  "
          f"{rows * cols * 4 / med / 1e9:>9.1f}  {same}")


if __name__ == "__main__":
  app.run(main)
