"""The data sizes of the benchmark suite: real files (ML-100K, Gowalla) or scipy-built synthetic
matrices with power-law row lengths at the scale of Netflix and Melon.

Each size gives a :class:`BenchData`: the training matrix (rows are what the autoencoder
reconstructs), an evaluation split (held-out entries of some rows) and a description for the
table. ``scale`` (< 1) shrinks the rows and the nonzeros of the synthetic sizes together, so the
nonzeros per row and the column count (the model's width) stay those of the full size: a step
costs the same, only an epoch is shorter.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time

import numpy as np
import scipy.sparse as sp

from jaxae.data.dataset import EvalSplit
from jaxae.data.matrix import Interactions
from jaxae.errors import ConfigError, DataError

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir() -> pathlib.Path:
  """``$JAXAE_SHARED_DATA`` or ``../shared/data`` beside the repository (as the tests use)."""
  env = os.environ.get("JAXAE_SHARED_DATA")
  return pathlib.Path(env) if env else REPO.parent / "shared" / "data"


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """A synthetic size: ``rows`` x ``cols`` with about ``nnz`` entries; ``ratings`` draws 1..5
  values (explicit feedback), else every value is 1 (implicit)."""

  rows: int
  cols: int
  nnz: int
  ratings: bool
  what: str


SYNTHETIC: dict[str, SyntheticSpec] = {
    # Netflix Prize: 480,189 users x 17,770 movies, 100,480,507 ratings (1..5).
    "netflix": SyntheticSpec(480_189, 17_770, 100_480_507, True, "Netflix-like"),
    # Melon seed A's CF AE: 115k playlists x 277k songs, ~46 songs per playlist.
    "melon_cf": SyntheticSpec(115_071, 277_218, 5_285_871, False, "Melon-like CF AE"),
    # Full-catalog evaluation at scale: a million users over the Melon song catalog.
    "melon_1m": SyntheticSpec(1_000_000, 277_218, 45_935_000, False, "1M users x Melon catalog"),
    # Melon seed B's song-as-user AE: 600k songs x 25k features.
    "song_as_user": SyntheticSpec(600_000, 25_000, 5_000_000, False, "Melon-like song-as-user"),
    # --smoke: a tiny matrix that runs end to end in seconds (CI).
    "smoke": SyntheticSpec(512, 300, 6_000, True, "tiny smoke"),
}
REAL = ("ml100k", "gowalla")
SIZES = REAL + tuple(k for k in SYNTHETIC if k != "smoke")


@dataclasses.dataclass
class BenchData:
  """The training matrix, an evaluation split, a one-line description and the load seconds."""

  name: str
  train: Interactions
  eval_split: EvalSplit
  description: str
  load_seconds: float
  load_what: str


def power_law(n_rows: int, n_cols: int, nnz: int, *, ratings: bool, alpha: float = 1.2,
              seed: int = 0) -> Interactions:
  """A CSR matrix with Pareto(``alpha``) row lengths (1..n_cols, about ``nnz`` in all).

  Row ``i`` takes ``L_i`` distinct columns: a window at a random offset of one random column
  permutation (vectorized, no loop over rows). Values are 1, or uniform 1..5 with ``ratings``.
  """
  rng = np.random.default_rng(seed)
  raw = rng.pareto(alpha, n_rows) + 1.0
  lengths = np.clip(np.round(raw * nnz / raw.sum()), 1, n_cols).astype(np.int64)
  indptr = np.zeros(n_rows + 1, np.int64)
  np.cumsum(lengths, out=indptr[1:])
  total = int(indptr[-1])
  within = np.arange(total, dtype=np.int64)
  within -= np.repeat(indptr[:-1], lengths)
  within += np.repeat(rng.integers(0, n_cols, n_rows), lengths)
  within %= n_cols
  cols = rng.permutation(n_cols).astype(np.int32)[within]
  del within
  if ratings:
    vals = rng.integers(1, 6, total, dtype=np.int8).astype(np.float32)
  else:
    vals = np.ones(total, np.float32)
  m = sp.csr_matrix((vals, cols, indptr), shape=(n_rows, n_cols))
  m.sort_indices()
  return Interactions(m, np.arange(n_rows), np.arange(n_cols))


def holdout_rows(inter: Interactions, n_eval_rows: int, fraction: float = 0.2,
                 seed: int = 1) -> tuple[Interactions, EvalSplit]:
  """Holds out ``fraction`` of the entries of the first ``n_eval_rows`` rows (rows are i.i.d. in
  the synthetic sizes): returns (the matrix without them, the split that ranks them)."""
  m = inter.matrix
  n_eval_rows = min(n_eval_rows, m.shape[0])
  rng = np.random.default_rng(seed)
  in_eval = np.zeros(m.nnz, bool)
  in_eval[:m.indptr[n_eval_rows]] = True
  held = in_eval & (rng.random(m.nnz) < fraction)
  row_of = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))

  def part(keep: np.ndarray) -> Interactions:
    sub = sp.csr_matrix((m.data[keep], m.indices[keep],
                         np.concatenate([[0], np.cumsum(np.bincount(row_of[keep],
                                                                    minlength=m.shape[0]))])),
                        shape=m.shape)
    return Interactions(sub, inter.row_ids, inter.col_ids)

  train, targets = part(~held), part(held)
  rows = np.arange(n_eval_rows, dtype=np.int64)
  return train, EvalSplit(train, targets, rows=rows, info={"protocol": f"holdout {fraction:g}"})


def _describe(inter: Interactions, what: str) -> str:
  lengths = inter.row_lengths()
  return (f"{what}: {inter.shape[0]:,} x {inter.shape[1]:,}, nnz {inter.nnz:,} "
          f"(per row mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, "
          f"max {lengths.max()})")


def load(name: str, *, scale: float = 1.0, orientation: str = "user", eval_rows: int = 20_000,
         seed: int = 0) -> BenchData:
  """The benchmark data called ``name`` (one of :data:`SIZES`, or "smoke").

  Args:
    name: the size.
    scale: fraction of the rows and nonzeros of a synthetic size (the columns stay).
    orientation: "item" transposes the real ML-100K matrix (I-AutoRec's rows are items).
    eval_rows: rows of a synthetic size whose held-out entries the evaluation ranks.
    seed: the synthetic generator's seed.
  """
  if not 0 < scale <= 1:
    raise ConfigError(f"--scale must be in (0, 1], got {scale}")
  t = time.perf_counter()
  if name == "gowalla":
    from jaxae.data.readers.lightgcn import read_lightgcn  # pylint: disable=import-outside-toplevel
    folder = shared_data_dir() / "gowalla"
    if not (folder / "train.txt").is_file():
      raise DataError(f"{folder}/train.txt not found (set JAXAE_SHARED_DATA)")
    train_path = folder / "train.txt"
    t = time.perf_counter()
    train = read_lightgcn(train_path)
    load_s = time.perf_counter() - t
    full_train, test = read_lightgcn(folder)
    split = EvalSplit(full_train, test, info={"protocol": "LightGCN test.txt"})
    return BenchData(name, full_train, split, _describe(full_train, "Gowalla (real files)"),
                     load_s, f"train.txt -> CSR ({train.nnz:,} entries)")
  if name == "ml100k":
    from jaxae.data.readers.movielens import read_movielens  # pylint: disable=import-outside-toplevel
    path = shared_data_dir() / "ml-100k" / "u.data"
    if not path.is_file():
      raise DataError(f"{path} not found (set JAXAE_SHARED_DATA)")
    inter = read_movielens(path)
    load_s = time.perf_counter() - t
    if orientation == "item":
      inter = inter.T
    train, split = holdout_rows(inter, inter.shape[0], seed=seed + 1)
    return BenchData(name, train, split, _describe(train, f"ML-100K (real u.data, rows={orientation}"
                                                   "s, 20% held out)"),
                     load_s, "u.data -> CSR")
  if name not in SYNTHETIC:
    raise ConfigError(f"--size: unknown size {name!r}; known: {', '.join(SIZES)}")
  spec = SYNTHETIC[name]
  n_rows = max(1, int(round(spec.rows * scale)))
  nnz = max(n_rows, int(round(spec.nnz * scale)))
  inter = power_law(n_rows, spec.cols, nnz, ratings=spec.ratings, seed=seed)
  train, split = holdout_rows(inter, eval_rows, seed=seed + 1)
  load_s = time.perf_counter() - t
  scaled = "" if scale == 1 else f", SCALED x{scale:g} in rows and nnz (full: {spec.rows:,} rows)"
  return BenchData(name, train, split,
                   _describe(train, f"{spec.what} synthetic (scipy, power-law rows{scaled})"),
                   load_s, "scipy generation")
