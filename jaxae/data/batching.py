"""Host-side batching: `Interactions` rows -> fixed-shape `SparseBatch`es, in a seeded order.

:class:`BatchIterator` cuts the rows of a CSR matrix into batches of ``batch_size`` rows and lays each
batch out as a row-sharded, padded COO block (:class:`jaxae.data.sparse.SparseBatch`). Everything is
vectorized numpy (one gather per batch, no Python loop over rows), so the host keeps an accelerator
fed; :func:`prefetch` runs any iterator on a background thread to overlap that work with the step.

Determinism and resumption: the row order of epoch ``e`` is
``np.random.default_rng([seed, e]).permutation(...)``, a pure function of ``(seed, e)``, so
``epoch(e, start_step=k)`` yields exactly batches ``k..`` of the uninterrupted epoch.

Multi-host: ``batch_size`` and ``num_shards`` are *global* (the mesh's data axis). Every process
computes the same permutation and yields only its slice of each global batch: rows
``[p*B/P, (p+1)*B/P)`` and shards ``[p*S/P, (p+1)*S/P)``. The padded nonzero count ``N`` of a step is
bucketed from the *global* batch's largest per-shard nonzero count, which every process computes from
the shared permutation and the row lengths without communication, so all processes agree on shapes.

Compile shapes: ``N`` is rounded up to one of a few geometric bucket sizes (powers of two, plus the
largest possible per-shard nonzero count as the top bucket), so jit compiles only a few shapes.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from jaxae.data.matrix import Interactions
from jaxae.data.sparse import SparseBatch
from jaxae.errors import ConfigError, DataError, JaxaeError

# Bucket sizes are multiples of this (and powers of two below the top bucket are at least this).
_MIN_BUCKET = 8
# dense_rows refuses outputs larger than this many entries (1 GiB of float32).
_DENSE_LIMIT = 2**28


class BatchIterator:
  """Seeded, resumable, multi-host batches of the rows of an :class:`Interactions` matrix.

  Args:
    inter: the matrix; each row is one example.
    batch_size: global batch size ``B`` (rows per step over all processes).
    num_shards: global number of data shards ``S`` (the mesh's data axis size); ``B % S == 0`` and
      ``S % process_count == 0``.
    shuffle: shuffle the rows every epoch (else the rows are taken in order).
    seed: non-negative seed; the order of epoch ``e`` is ``default_rng([seed, e]).permutation``.
    drop_remainder: drop the last, partial batch (else it is padded with ``mask == 0`` rows).
    nnz_buckets: an int ``K``: at most ``K`` padded sizes (powers of two up to the largest
      possible per-shard nonzero count, which is the top size; see :func:`bucket_grid`), or an
      explicit sequence of sizes (topped with the largest possible count when it does not reach it).
    row_subset: indices of the rows to iterate over (default: every row). Batch ``rows`` still hold
      indices into ``inter``.
    targets: optional second matrix with the same rows (e.g. held-out ratings); then every item is a
      pair ``(inputs, targets)`` of batches over the same rows, each with its own padded ``N``.
    process_index, process_count: this process's slice of every global batch.
  """

  def __init__(self, inter: Interactions, batch_size: int, *, num_shards: int = 1,
               shuffle: bool = True, seed: int = 0, drop_remainder: bool = False,
               nnz_buckets: int | Sequence[int] = 16, row_subset: np.ndarray | None = None,
               targets: Interactions | None = None, process_index: int = 0,
               process_count: int = 1):
    batch_size, num_shards = int(batch_size), int(num_shards)
    process_index, process_count = int(process_index), int(process_count)
    if batch_size < 1:
      raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if num_shards < 1 or batch_size % num_shards:
      raise ConfigError(f"batch_size {batch_size} must be a positive multiple of num_shards "
                        f"{num_shards}")
    if process_count < 1 or not 0 <= process_index < process_count:
      raise ConfigError(f"process_index {process_index} must be in [0, process_count "
                        f"{process_count})")
    if num_shards % process_count:
      raise ConfigError(f"num_shards {num_shards} must be a multiple of process_count "
                        f"{process_count} (each process holds whole shards)")
    if int(seed) < 0:
      raise ConfigError(f"seed must be >= 0, got {seed}")
    n_rows = inter.shape[0]
    if targets is not None and targets.shape[0] != n_rows:
      raise DataError(f"targets have {targets.shape[0]} rows but the inputs have {n_rows}; they "
                      f"must share the row space")
    if row_subset is None:
      rows = np.arange(n_rows, dtype=np.int64)
    else:
      rows = np.asarray(row_subset)
      if rows.dtype == bool:
        if rows.shape != (n_rows,):
          raise DataError(f"boolean row_subset has shape {rows.shape}, expected ({n_rows},)")
        rows = np.flatnonzero(rows)
      rows = rows.astype(np.int64).reshape(-1)
      if len(rows) and (rows.min() < 0 or rows.max() >= n_rows):
        bad = rows[(rows < 0) | (rows >= n_rows)][0]
        raise DataError(f"row_subset holds row {int(bad)}, outside [0, {n_rows})")

    self.inter = inter
    self.targets = targets
    self.batch_size = batch_size
    self.num_shards = num_shards
    self.shuffle = bool(shuffle)
    self.seed = int(seed)
    self.drop_remainder = bool(drop_remainder)
    self.process_index = process_index
    self.process_count = process_count
    self.rows_per_shard = batch_size // num_shards
    self.local_batch_size = batch_size // process_count
    self.local_num_shards = num_shards // process_count
    self._rows = rows
    self._parts = [_Part(inter, rows, self.rows_per_shard, nnz_buckets)]
    if targets is not None:
      self._parts.append(_Part(targets, rows, self.rows_per_shard, nnz_buckets))

  # ---------------------------------------------------------------- sizes
  @property
  def num_rows(self) -> int:
    """Rows iterated over per epoch (before padding / dropping)."""
    return len(self._rows)

  def steps_per_epoch(self) -> int:
    n, b = len(self._rows), self.batch_size
    return n // b if self.drop_remainder else -(-n // b)

  @property
  def bucket_sizes(self) -> tuple[int, ...]:
    """The padded ``N`` values the input batches can take (increasing)."""
    return self._parts[0].sizes

  @property
  def target_bucket_sizes(self) -> tuple[int, ...] | None:
    """The padded ``N`` values of the target batches (``None`` without targets)."""
    return self._parts[1].sizes if self.targets is not None else None

  def padded_sizes(self, epoch: int) -> np.ndarray:
    """[steps] padded ``N`` of the input batch of every step of ``epoch`` (no batch is built)."""
    order = self._padded_order(epoch)
    return self._parts[0].step_sizes(order, self.batch_size, self.num_shards)

  # ---------------------------------------------------------------- iteration
  def order(self, epoch: int) -> np.ndarray:
    """Row indices (into ``inter``) of ``epoch`` in batch order, before padding / dropping."""
    if int(epoch) < 0:
      raise ConfigError(f"epoch must be >= 0, got {epoch}")
    if not self.shuffle:
      return self._rows
    perm = np.random.default_rng([self.seed, int(epoch)]).permutation(len(self._rows))
    return self._rows[perm]

  def _padded_order(self, epoch: int) -> np.ndarray:
    """[steps * B] rows of the epoch's batches; -1 marks the padding rows of the last batch."""
    order = self.order(epoch)
    total = self.steps_per_epoch() * self.batch_size
    padded = np.full(total, -1, np.int64)
    m = min(total, len(order))
    padded[:m] = order[:m]
    return padded

  def epoch(self, epoch: int, start_step: int = 0
            ) -> Iterator[SparseBatch | tuple[SparseBatch, SparseBatch]]:
    """Yields this process's slice of the batches ``start_step..`` of ``epoch``.

    Each item is a :class:`SparseBatch` of numpy arrays (``rows`` [B/P], ``cols`` [S/P, N], ...),
    or a pair ``(inputs, targets)`` when the iterator has targets.
    """
    start_step = int(start_step)
    if start_step < 0:
      raise ConfigError(f"start_step must be >= 0, got {start_step}")
    padded = self._padded_order(epoch)   # computed eagerly: bad arguments raise at call time
    return self._generate(padded, start_step)

  def _generate(self, padded: np.ndarray, start_step: int):
    b, s = self.batch_size, self.num_shards
    steps = len(padded) // b
    sizes = [part.step_sizes(padded, b, s) for part in self._parts]
    lb = self.local_batch_size
    for t in range(start_step, steps):
      lo = t * b + self.process_index * lb
      rows = padded[lo:lo + lb]
      batches = tuple(part.gather(rows, self.local_num_shards, int(n[t]))
                      for part, n in zip(self._parts, sizes))
      yield batches if len(batches) > 1 else batches[0]

  def __iter__(self) -> Iterator[Any]:
    """Epoch 0 (for one-shot uses; training calls :meth:`epoch`)."""
    return self.epoch(0)


class _Part:
  """One matrix of a BatchIterator (inputs or targets): its CSR arrays and its bucket grid."""

  def __init__(self, inter: Interactions, rows: np.ndarray, rows_per_shard: int,
               nnz_buckets: int | Sequence[int]):
    m = inter.matrix
    self.indptr = m.indptr.astype(np.int64, copy=False)
    self.indices = m.indices
    self.data = m.data.astype(np.float32, copy=False)
    self.row_lengths = np.diff(self.indptr)
    self.rows_per_shard = rows_per_shard
    self.sizes = bucket_grid(self.row_lengths[rows], rows_per_shard, nnz_buckets)
    self._sizes_arr = np.asarray(self.sizes, np.int64)

  def step_sizes(self, padded: np.ndarray, batch_size: int, num_shards: int) -> np.ndarray:
    """Padded N of every global batch: the bucket of its largest per-shard nonzero count."""
    lengths = np.where(padded >= 0, self.row_lengths[np.maximum(padded, 0)], 0)
    per_shard = lengths.reshape(-1, num_shards, batch_size // num_shards).sum(axis=2)
    need = per_shard.max(axis=1) if len(per_shard) else np.zeros(0, np.int64)
    return self._sizes_arr[np.searchsorted(self._sizes_arr, need, side="left")]

  def gather(self, rows: np.ndarray, num_shards: int, n_pad: int) -> SparseBatch:
    """The SparseBatch of ``rows`` (-1 = padding row) laid out as ``num_shards`` x ``n_pad``."""
    b = len(rows)
    rps = b // num_shards
    real = rows >= 0
    safe = np.where(real, rows, 0)
    lengths = np.where(real, self.row_lengths[safe], 0)
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    starts_out = ends - lengths                                   # first output slot of each row
    # Source position of every output entry: row start + offset within the row.
    src = np.arange(total, dtype=np.int64) + np.repeat(self.indptr[safe] - starts_out, lengths)
    row_of = np.repeat(np.arange(b, dtype=np.int64), lengths)
    shard = row_of // rps
    shard_nnz = lengths.reshape(num_shards, rps).sum(axis=1)
    if shard_nnz.max(initial=0) > n_pad:
      raise AssertionError(f"shard nnz {shard_nnz.max()} exceeds the bucket {n_pad}")
    shard_start = np.cumsum(shard_nnz) - shard_nnz
    dest = shard * n_pad + (np.arange(total, dtype=np.int64) - shard_start[shard])

    cols = np.zeros(num_shards * n_pad, np.int32)
    vals = np.zeros(num_shards * n_pad, np.float32)
    seg = np.full(num_shards * n_pad, rps - 1, np.int32)
    cols[dest] = self.indices[src]
    vals[dest] = self.data[src]
    seg[dest] = row_of - shard * rps
    return SparseBatch(
        rows=safe.astype(np.int32), mask=real.astype(np.float32),
        lengths=lengths.astype(np.int32), cols=cols.reshape(num_shards, n_pad),
        vals=vals.reshape(num_shards, n_pad), seg=seg.reshape(num_shards, n_pad))


def _round_up(x: int, m: int) -> int:
  return -(-x // m) * m


def bucket_grid(lengths: np.ndarray, rows_per_shard: int,
                nnz_buckets: int | Sequence[int] = 16) -> tuple[int, ...]:
  """The padded per-shard nonzero sizes for batches drawn from rows with these ``lengths``.

  The top bucket is the largest possible per-shard count (the sum of the ``rows_per_shard`` longest
  rows) rounded up to a multiple of 8, so every batch fits. With an int ``K``, the others are the
  powers of two from the smallest possible count of a full shard (the ``rows_per_shard`` shortest
  rows, at least 8) up to the top: a padded batch is at most twice its real size. When that ladder
  has more than ``K`` sizes, the sizes under half a mean shard's count go first, then it is thinned
  to every 2nd (3rd, ...) power of two. jit compiles only the
  sizes that batches actually hit: a batch's count concentrates around its mean, so an epoch hits a
  few adjacent sizes (plus rare large ones when a few very long rows share a shard). An explicit
  sequence is used as given, topped with the largest possible count when it does not reach it.
  """
  lengths = np.asarray(lengths, np.int64)
  n = len(lengths)
  k = min(rows_per_shard, n)
  top = int(np.partition(lengths, n - k)[n - k:].sum()) if k else 0
  cap = _round_up(max(top, 1), _MIN_BUCKET)
  if isinstance(nnz_buckets, (int, np.integer)):
    n_buckets = int(nnz_buckets)
    if n_buckets < 1:
      raise ConfigError(f"nnz_buckets must be >= 1, got {n_buckets}")
    low = int(np.partition(lengths, k - 1)[:k].sum()) if k else 0
    lo = 2 ** int(math.floor(math.log2(max(low, _MIN_BUCKET))))
    ladder = []
    p = lo
    while p < cap:
      ladder.append(p)
      p *= 2
    room = n_buckets - 1
    if len(ladder) > room:
      # Too many: first drop the small sizes under half a mean shard's count (only short last
      # batches use them), then keep every 2nd (3rd, ...) size.
      half_mean = rows_per_shard * float(lengths.mean()) / 2
      droppable = sum(1 for x in ladder if 2 * x <= half_mean)
      ladder = ladder[min(droppable, len(ladder) - room):]
      if len(ladder) > room:
        ladder = ladder[::-(-len(ladder) // room)] if room else []
    return tuple(ladder) + (cap,)
  try:
    given = sorted({int(x) for x in nnz_buckets})
  except (TypeError, ValueError):
    raise ConfigError(f"nnz_buckets must be an int or a sequence of ints, got {nnz_buckets!r}"
                      ) from None
  if not given or given[0] < 1:
    raise ConfigError(f"nnz_buckets sizes must be positive, got {list(nnz_buckets)}")
  kept = [x for x in given if x < top]
  above = [x for x in given if x >= top]
  kept.append(above[0] if above else cap)
  return tuple(kept)


def full_batches(inter: Interactions, batch_size: int, *, num_shards: int = 1,
                 nnz_buckets: int | Sequence[int] = 16, row_subset: np.ndarray | None = None,
                 targets: Interactions | None = None, process_index: int = 0,
                 process_count: int = 1
                 ) -> Iterator[SparseBatch | tuple[SparseBatch, SparseBatch]]:
  """Every row (or every row of ``row_subset``) once, in order, for evaluation.

  The last batch is padded with ``mask == 0`` rows. Yields pairs ``(inputs, targets)`` when
  ``targets`` is given.
  """
  it = BatchIterator(inter, batch_size, num_shards=num_shards, shuffle=False,
                     drop_remainder=False, nnz_buckets=nnz_buckets, row_subset=row_subset,
                     targets=targets, process_index=process_index, process_count=process_count)
  return it.epoch(0)


def dense_rows(inter: Interactions, rows) -> np.ndarray:
  """[len(rows), n_cols] float32 dense copy of some rows. ONLY for tests and tiny data.

  Training and evaluation never densify on the host (batches stay sparse until the device); this
  refuses outputs over 2**28 entries.
  """
  rows = np.asarray(rows, np.int64).reshape(-1)
  if len(rows) * inter.shape[1] > _DENSE_LIMIT:
    raise JaxaeError(f"dense_rows of {len(rows)} rows x {inter.shape[1]} columns is too large; "
                     f"it is meant for tests and tiny data only")
  return inter.matrix[rows].toarray().astype(np.float32, copy=False)


# -------------------------------------------------------------------- prefetch
_ITEM, _END, _ERROR = 0, 1, 2


class _Prefetcher:
  """Iterator over ``source`` produced ``size`` items ahead on a daemon thread."""

  def __init__(self, source: Iterable[Any], size: int):
    self._queue: queue.Queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._done = False
    self._thread = threading.Thread(
        target=_produce, args=(iter(source), self._queue, self._stop), daemon=True,
        name="jaxae-prefetch")
    self._thread.start()

  def __iter__(self) -> "_Prefetcher":
    return self

  def __next__(self) -> Any:
    if self._done:
      raise StopIteration
    kind, payload = self._queue.get()
    if kind == _ITEM:
      return payload
    self._done = True
    self._thread.join()
    if kind == _ERROR:
      raise payload
    raise StopIteration

  def close(self, timeout: float | None = 10.0) -> None:
    """Stops the producer (it finishes the item in progress) and waits for its thread."""
    if self._done:
      return
    self._done = True
    self._stop.set()
    while True:                            # unblock a producer waiting on a full queue
      try:
        self._queue.get_nowait()
      except queue.Empty:
        break
    self._thread.join(timeout)

  def __enter__(self) -> "_Prefetcher":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def __del__(self):
    try:
      self.close(timeout=0)
    except Exception:  # pylint: disable=broad-except  # interpreter shutdown
      pass


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
  while not stop.is_set():
    try:
      q.put(item, timeout=0.05)
      return True
    except queue.Full:
      continue
  return False


def _produce(source: Iterator[Any], q: queue.Queue, stop: threading.Event) -> None:
  try:
    for item in source:
      if not _put(q, (_ITEM, item), stop):
        return
    _put(q, (_END, None), stop)
  except BaseException as e:  # pylint: disable=broad-except  # re-raised in the consumer
    _put(q, (_ERROR, e), stop)
  finally:
    close = getattr(source, "close", None)
    if stop.is_set() and close is not None:
      close()


def prefetch(iterator: Iterable[Any], size: int = 2) -> Iterator[Any]:
  """Runs ``iterator`` on a background thread, keeping up to ``size`` items ready.

  Yields the same items in the same order. An exception raised by the producer is re-raised by
  ``next`` in the consumer (after the items produced before it). ``close()`` (also called by a
  ``with`` block and on garbage collection) stops the thread after the item in progress and closes
  the source generator. ``size == 0`` returns a plain iterator (no thread).
  """
  size = int(size)
  if size < 0:
    raise ConfigError(f"prefetch size must be >= 0, got {size}")
  if size == 0:
    return iter(iterator)
  return _Prefetcher(iterator, size)
