r"""Where the Gram-trick full MSE wins: loss + gradient time of the dense path vs the Gram path.

For a linear last layer ``recon = z W + b`` (``z`` [B, d], ``W`` [d, n]) and a sparse batch, it
times one jitted ``value_and_grad`` of ``masked_mse + mse`` with respect to ``(z, W, b)``:

  dense  densify the target and the observed mask, the [B, n] output, the two terms
         (``jaxae.losses.masked_mse`` / ``mse``): about ``6 B n d`` flops plus several [B, n] passes
  gram   ``jaxae.losses.mse_gram`` / ``masked_mse_sparse``: the d x d Gram ``W W^T`` and the
         predictions at the nonzeros: about ``6 n d^2 + 6 nnz d`` flops, nothing of size [B, n]
  entries the dense output, the terms from it at the nonzeros and its squared norm
         (``jaxae.losses.mse_entries``): the dense path's flops without the dense target and mask

for a grid of batch sizes ``B`` and widths ``d`` at ``n`` items (Gowalla's 40,981 by default) with
``--nnz`` nonzeros per row, and prints the milliseconds, the ratio dense / gram and, per ``d``, the
smallest ``B`` where the Gram path is faster (the crossover, as ``B / d``; ``jaxae.losses`` uses it
for ``config.loss_impl.full_mse = "auto"``). Each figure is the median of ``--repeats`` calls after
a warm-up call (compile time excluded). Writes no files.

  python bench/bench_gram_mse.py [--items 40981] [--widths 64,256,1024]
      [--batches 64,128,256,512,1024,2048,4096] [--nnz 27] [--repeats 5] [--smoke]
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

_REPO = pathlib.Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
  sys.path.insert(0, str(_REPO))

from jaxae import losses  # pylint: disable=wrong-import-position
from jaxae.data.sparse import SparseBatch, densify, observed_mask  # pylint: disable=wrong-import-position

LOSS = {"masked_mse": 1.0, "mse": 1.0}


def synthetic_batch(batch: int, n_items: int, nnz_per_row: int, seed: int = 0) -> SparseBatch:
  """One shard of ``batch`` rows with ``nnz_per_row`` distinct random columns each, values 1..5."""
  rng = np.random.default_rng(seed)
  k = min(nnz_per_row, n_items)
  keys = np.arange(batch, dtype=np.int64)[:, None] * n_items + rng.integers(0, n_items, (batch, k))
  keys = np.unique(keys)                  # sorted by row then column; drops the rare repeats
  flat_rows = (keys // n_items).astype(np.int32)
  flat_cols = (keys % n_items).astype(np.int32)
  lengths = np.bincount(flat_rows, minlength=batch).astype(np.int32)
  vals = rng.integers(1, 6, len(flat_cols)).astype(np.float32)
  return SparseBatch(rows=jnp.arange(batch, dtype=jnp.int32), mask=jnp.ones(batch, jnp.float32),
                     lengths=jnp.asarray(lengths), cols=jnp.asarray(flat_cols)[None],
                     vals=jnp.asarray(vals)[None], seg=jnp.asarray(flat_rows)[None])


def loss_and_grad_fns(n_items: int):
  """The three jitted ``(z, w, b, batch) -> (loss, grads)`` functions (dense, gram, entries)."""

  def dense_loss(z, w, b, batch):
    target = densify(batch, n_items)
    observed = observed_mask(batch, n_items)
    outputs = {"recon": jnp.dot(z, w) + b}
    return losses.compute_loss(LOSS, outputs, target, observed, batch.mask, None, 0)[0]

  def gram_loss(z, w, b, batch):
    outputs = {"last_hidden": z, "last_kernel": w, "last_bias": b}
    return losses.compute_loss(LOSS, outputs, batch, None, batch.mask, None, 0,
                               n_cols=n_items)[0]

  def entries_loss(z, w, b, batch):
    outputs = {"recon": jnp.dot(z, w) + b}
    return losses.compute_loss(LOSS, outputs, batch, None, batch.mask, None, 0)[0]

  grad = lambda f: jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))
  return grad(dense_loss), grad(gram_loss), grad(entries_loss)


def _time(fn, args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))                      # compile + warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def measure(n_items: int, widths, batches, nnz_per_row: int, repeats: int, seed: int = 0):
  """Rows ``(d, B, dense_s, gram_s, entries_s, max_abs_loss_diff)`` over the grid (same inputs
  for all three; the loss difference is the largest of gram's and entries' from dense)."""
  dense_fn, gram_fn, entries_fn = loss_and_grad_fns(n_items)
  rng = np.random.default_rng(seed)
  rows = []
  for d in widths:
    w = jnp.asarray(rng.normal(0, 1 / np.sqrt(d), (d, n_items)).astype(np.float32))
    b = jnp.asarray(rng.normal(0, 0.1, n_items).astype(np.float32))
    for bsz in batches:
      z = jnp.asarray(rng.normal(0, 1, (bsz, d)).astype(np.float32))
      batch = synthetic_batch(bsz, n_items, nnz_per_row, seed)
      args = (z, w, b, batch)
      dense_s = _time(dense_fn, args, repeats)
      gram_s = _time(gram_fn, args, repeats)
      entries_s = _time(entries_fn, args, repeats)
      ref = float(dense_fn(*args)[0])
      diff = max(abs(ref - float(gram_fn(*args)[0])), abs(ref - float(entries_fn(*args)[0])))
      rows.append((d, bsz, dense_s, gram_s, entries_s, diff))
  return rows


def crossovers(rows) -> dict[int, int | None]:
  """Per width d: the smallest batch from which the Gram path stays faster than both others
  (None: never)."""
  out: dict[int, int | None] = {}
  for d in sorted({r[0] for r in rows}):
    mine = sorted((r for r in rows if r[0] == d), key=lambda r: r[1])
    best = None
    for r in reversed(mine):
      if r[3] < min(r[2], r[4]):
        best = r[1]
      else:
        break
    out[d] = best
  return out


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--items", type=int, default=40981)
  p.add_argument("--widths", default="64,256,1024")
  p.add_argument("--batches", default="64,128,256,512,1024,2048,4096")
  p.add_argument("--nnz", type=int, default=27, help="nonzeros per row (Gowalla: about 27)")
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 repeat (checks it runs)")
  a = p.parse_args(argv)
  if a.smoke:
    a.items, a.widths, a.batches, a.repeats = 500, "8,32", "16,64", 1
  widths = [int(x) for x in a.widths.split(",")]
  batches = [int(x) for x in a.batches.split(",")]
  print(f"Gram-trick full MSE vs dense: n={a.items} items, {a.nnz} nonzeros per row, "
        f"loss = masked_mse + mse, value_and_grad w.r.t. (z, W, b); device "
        f"{jax.devices()[0].device_kind} x{len(jax.devices())}; median of {a.repeats}")
  print(f"{'d':>6} {'batch':>6} {'dense ms':>10} {'gram ms':>10} {'entries ms':>10} "
        f"{'dense/gram':>11} {'dense/entries':>13} {'|loss diff|':>12}")
  rows = measure(a.items, widths, batches, a.nnz, a.repeats)
  for d, bsz, ds, gs, es, diff in rows:
    print(f"{d:>6} {bsz:>6} {ds * 1e3:>10.2f} {gs * 1e3:>10.2f} {es * 1e3:>10.2f} "
          f"{ds / gs:>11.2f} {ds / es:>13.2f} {diff:>12.3g}")
  for d, bsz in crossovers(rows).items():
    where = (f"the Gram path is faster from batch {bsz} on (B/d = {bsz / d:.2g})" if bsz
             else "a dense-output path (dense or entries) is faster over the whole grid")
    print(f"crossover d={d}: {where}")


if __name__ == "__main__":
  main()
