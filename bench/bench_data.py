"""Benchmark of the host data path: reading into CSR and cutting batches (prints a table).

Rows:
  * Gowalla ``train.txt`` -> CSR seconds (``jaxae.data.readers.lightgcn``; skipped when the file
    is absent),
  * ``BatchIterator`` rows/s over a Melon-scale song-as-user shaped synthetic matrix (power-law row
    lengths, default 600k x 25k, ~5M nonzeros, built with scipy), without and with ``prefetch``,
    optionally with a simulated device step of ``--step_ms`` per batch (where prefetch overlaps),
  * the number of distinct padded sizes ``N`` an epoch hits (= jit compile shapes).

Writes no files.

  python bench/bench_data.py [--gowalla PATH] [--batch_size 1024] [--num_shards 1] [--step_ms 0]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import numpy as np
import scipy.sparse as sp

from jaxae.data.batching import BatchIterator, prefetch
from jaxae.data.matrix import Interactions

_REPO = pathlib.Path(__file__).resolve().parents[1]


def power_law_matrix(n_rows: int, n_cols: int, nnz: int, alpha: float, seed: int) -> Interactions:
  """A binary matrix with Pareto(alpha) row lengths (>= 1) and about ``nnz`` nonzeros.

  Row ``i`` takes ``L_i`` distinct columns: a window at a random offset of one random column
  permutation (vectorized; song-as-user columns, the playlists, are roughly uniform).
  """
  rng = np.random.default_rng(seed)
  raw = rng.pareto(alpha, n_rows) + 1.0
  lengths = np.clip(np.round(raw * nnz / raw.sum()), 1, n_cols).astype(np.int64)
  indptr = np.zeros(n_rows + 1, np.int64)
  np.cumsum(lengths, out=indptr[1:])
  within = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
  offsets = np.repeat(rng.integers(0, n_cols, n_rows), lengths)
  cols = rng.permutation(n_cols)[(offsets + within) % n_cols]
  m = sp.csr_matrix((np.ones(len(cols), np.float32), cols.astype(np.int32), indptr),
                    shape=(n_rows, n_cols))
  m.sort_indices()
  return Interactions(m, np.arange(n_rows), np.arange(n_cols))


def time_gowalla(path: pathlib.Path, repeats: int) -> tuple[float, str] | None:
  if not path.is_file():
    return None
  from jaxae.data.readers.lightgcn import read_lightgcn  # pylint: disable=g-import-not-at-top
  best, inter = float("inf"), None
  for _ in range(repeats):
    t = time.perf_counter()
    inter = read_lightgcn(path)
    best = min(best, time.perf_counter() - t)
  return best, f"{inter.shape[0]} x {inter.shape[1]}, nnz {inter.nnz}"


def run_epoch(batches, step_s: float) -> tuple[int, float, set[int]]:
  """Consumes an epoch; returns (real rows, seconds, distinct padded N)."""
  rows, sizes = 0, set()
  t = time.perf_counter()
  for batch in batches:
    rows += int(batch.mask.sum())
    sizes.add(batch.cols.shape[1])
    if step_s:
      time.sleep(step_s)                         # stands in for the device step (releases the GIL)
  return rows, time.perf_counter() - t, sizes


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--gowalla", default=os.fspath(
      _REPO.parent / "shared" / "data" / "gowalla" / "train.txt"),
                      help="Gowalla train.txt (default: ../shared/data/gowalla/train.txt)")
  parser.add_argument("--rows", type=int, default=600_000)
  parser.add_argument("--cols", type=int, default=25_000)
  parser.add_argument("--nnz", type=int, default=5_000_000)
  parser.add_argument("--alpha", type=float, default=1.2, help="Pareto shape of row lengths")
  parser.add_argument("--batch_size", type=int, default=1024)
  parser.add_argument("--num_shards", type=int, default=1)
  parser.add_argument("--prefetch", type=int, default=2, help="prefetch queue size")
  parser.add_argument("--step_ms", type=float, default=0.0,
                      help="simulated device step per batch (ms); 0 = host only")
  parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  table: list[tuple[str, str, str]] = []
  gow = time_gowalla(pathlib.Path(args.gowalla), args.repeats)
  if gow is None:
    print(f"(skipping Gowalla: {args.gowalla} not found)")
  else:
    table.append(("Gowalla train.txt -> CSR", f"{gow[0]:.3f} s", gow[1]))

  t = time.perf_counter()
  inter = power_law_matrix(args.rows, args.cols, args.nnz, args.alpha, args.seed)
  lengths = inter.row_lengths()
  table.append(("synthetic song-as-user matrix (scipy)", f"{time.perf_counter() - t:.2f} s",
                f"{inter.shape[0]} x {inter.shape[1]}, nnz {inter.nnz}, row length median "
                f"{np.median(lengths):.0f} / mean {lengths.mean():.1f} / max {lengths.max()}"))

  it = BatchIterator(inter, args.batch_size, num_shards=args.num_shards, seed=args.seed)
  step_s = args.step_ms / 1e3
  note = f"batch {args.batch_size}, {args.num_shards} shard(s)" + (
      f", {args.step_ms:g} ms simulated step" if step_s else "")
  seen: set[int] = set()
  for label, wrap in (("BatchIterator", lambda b: b),
                      (f"BatchIterator + prefetch({args.prefetch})",
                       lambda b: prefetch(b, args.prefetch))):
    best = 0.0
    for rep in range(args.repeats):
      rows, secs, sizes = run_epoch(wrap(it.epoch(rep)), step_s)
      best = max(best, rows / secs)
      seen |= sizes
    table.append((label, f"{best:,.0f} rows/s", note))
  table.append(("compile shapes (distinct N seen)", str(len(seen)),
                f"seen {sorted(seen)}; grid {list(it.bucket_sizes)}"))

  w0 = max(len(r[0]) for r in table)
  w1 = max(len(r[1]) for r in table)
  print(f"{'measure':<{w0}}  {'result':>{w1}}  details")
  print(f"{'-' * w0}  {'-' * w1}  {'-' * 7}")
  for name, value, detail in table:
    print(f"{name:<{w0}}  {value:>{w1}}  {detail}")


if __name__ == "__main__":
  main()
