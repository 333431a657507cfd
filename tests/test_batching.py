"""Tests of the host batch iterator (jaxae.data.batching) and prefetch."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.sparse as sp

from jaxae.data import batching
from jaxae.data.batching import BatchIterator, bucket_grid, dense_rows, full_batches, prefetch
from jaxae.data.matrix import Interactions
from jaxae.data.sparse import SparseBatch, densify
from jaxae.errors import ConfigError, DataError, JaxaeError


def _random_inter(n_rows=37, n_cols=11, density=0.3, seed=0, empty_rows=(3, 20)) -> Interactions:
  rng = np.random.default_rng(seed)
  dense = (rng.random((n_rows, n_cols)) < density) * rng.integers(1, 6, (n_rows, n_cols))
  dense[list(empty_rows)] = 0
  m = sp.csr_matrix(dense.astype(np.float32))
  return Interactions(m, np.arange(n_rows) + 100, np.arange(n_cols))


def _heavy_tailed(n_rows=20000, n_cols=400, seed=1) -> Interactions:
  """Power-law row lengths (most rows 1-3 entries, a few hundred long)."""
  rng = np.random.default_rng(seed)
  lengths = np.minimum(np.floor(rng.pareto(1.1, n_rows) + 1).astype(np.int64), n_cols)
  rows = np.repeat(np.arange(n_rows), lengths)
  cols = rng.integers(0, n_cols, len(rows))
  m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_rows, n_cols))
  m.sum_duplicates()
  m.data[:] = 1.0
  return Interactions(m, np.arange(n_rows), np.arange(n_cols))


def _assert_batches_equal(a, b):
  if not isinstance(a, SparseBatch):                # an (inputs, targets) pair
    assert not isinstance(b, SparseBatch) and len(a) == len(b)
    for x, y in zip(a, b):
      _assert_batches_equal(x, y)
    return
  for name in SparseBatch._fields:
    x, y = getattr(a, name), getattr(b, name)
    assert x.shape == y.shape and x.dtype == y.dtype, name
    np.testing.assert_array_equal(x, y, err_msg=name)


def _dense(batch: SparseBatch, n_cols: int) -> np.ndarray:
  return np.asarray(densify(batch, n_cols))


def test_hand_computed_layout():
  # Rows: 0 -> {1: 5, 3: 2}, 1 -> {}, 2 -> {0: 1, 2: 4, 3: 3}.
  m = sp.csr_matrix(np.array([[0, 5, 0, 2], [0, 0, 0, 0], [1, 0, 4, 3]], np.float32))
  inter = Interactions(m, [10, 11, 12], [0, 1, 2, 3])
  (batch,) = list(full_batches(inter, 4, num_shards=2, nnz_buckets=[1, 2, 4]))
  # Shard 0 holds rows 0, 1 (2 nonzeros); shard 1 holds row 2 and a padding row (3 nonzeros).
  # The largest shard needs 3 -> bucket 4.
  np.testing.assert_array_equal(batch.rows, [0, 1, 2, 0])
  np.testing.assert_array_equal(batch.mask, [1, 1, 1, 0])
  np.testing.assert_array_equal(batch.lengths, [2, 0, 3, 0])
  np.testing.assert_array_equal(batch.cols, [[1, 3, 0, 0], [0, 2, 3, 0]])
  np.testing.assert_array_equal(batch.vals, [[5, 2, 0, 0], [1, 4, 3, 0]])
  np.testing.assert_array_equal(batch.seg, [[0, 0, 1, 1], [0, 0, 0, 1]])
  assert batch.rows.dtype == np.int32 and batch.cols.dtype == np.int32
  assert batch.seg.dtype == np.int32 and batch.lengths.dtype == np.int32
  assert batch.vals.dtype == np.float32 and batch.mask.dtype == np.float32


def test_order_is_a_pure_function_of_seed_and_epoch():
  inter = _random_inter()
  a = BatchIterator(inter, 8, seed=3)
  b = BatchIterator(inter, 8, seed=3)
  for e in (0, 1):
    for x, y in zip(a.epoch(e), b.epoch(e), strict=True):
      _assert_batches_equal(x, y)
  rows = lambda it, e: np.concatenate([bt.rows[bt.mask > 0] for bt in it.epoch(e)])
  expected = np.random.default_rng([3, 1]).permutation(37)
  np.testing.assert_array_equal(rows(a, 1), expected)
  assert not np.array_equal(rows(a, 0), rows(a, 1))
  assert not np.array_equal(rows(a, 1), rows(BatchIterator(inter, 8, seed=4), 1))
  np.testing.assert_array_equal(rows(BatchIterator(inter, 8, shuffle=False), 5), np.arange(37))


def test_resume_from_start_step_equals_tail_of_epoch():
  inter = _random_inter()
  it = BatchIterator(inter, 8, num_shards=2, seed=7)
  full = list(it.epoch(2))
  assert len(full) == it.steps_per_epoch() == 5
  for k in (0, 1, 3, 5):
    tail = list(BatchIterator(inter, 8, num_shards=2, seed=7).epoch(2, start_step=k))
    assert len(tail) == len(full) - k
    for x, y in zip(tail, full[k:]):
      _assert_batches_equal(x, y)


@pytest.mark.parametrize("num_shards", [1, 4])
def test_every_nonzero_appears_exactly_once(num_shards):
  inter = _random_inter()
  n_rows, n_cols = inter.shape
  out = np.zeros((n_rows, n_cols), np.float32)
  seen = np.zeros(n_rows, np.int64)
  for batch in BatchIterator(inter, 8, num_shards=num_shards, seed=1).epoch(0):
    dense = _dense(batch, n_cols)
    real = batch.mask > 0
    assert not dense[~real].any()
    np.testing.assert_array_equal(batch.lengths, (dense != 0).sum(1))
    np.add.at(out, batch.rows[real], dense[real])
    np.add.at(seen, batch.rows[real], 1)
  np.testing.assert_array_equal(seen, np.ones(n_rows))
  np.testing.assert_array_equal(out, inter.matrix.toarray())


def test_sharded_layout_densifies_like_one_shard():
  inter = _random_inter(n_rows=50)
  one = BatchIterator(inter, 8, num_shards=1, seed=5)
  four = BatchIterator(inter, 8, num_shards=4, seed=5)
  for a, b in zip(one.epoch(0), four.epoch(0), strict=True):
    assert b.cols.shape[0] == 4 and b.seg.max() <= 1
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(_dense(a, 11), _dense(b, 11))


def test_multi_process_slices_concatenate_to_single_process_batch():
  inter = _heavy_tailed(n_rows=300, n_cols=50)
  targets = _random_inter(n_rows=300, n_cols=7, seed=2, empty_rows=())
  kw = dict(num_shards=4, seed=9, targets=targets)
  single = list(BatchIterator(inter, 16, **kw).epoch(1))
  per_process = [list(BatchIterator(inter, 16, process_index=p, process_count=2, **kw).epoch(1))
                 for p in range(2)]
  assert all(len(pp) == len(single) for pp in per_process)
  for t, whole in enumerate(single):
    for part in range(2):                        # inputs, targets
      slices = [per_process[p][t][part] for p in range(2)]
      assert slices[0].cols.shape == slices[1].cols.shape   # same N on every process
      assert slices[0].batch_size == 8 and slices[0].num_shards == 2
      joined = SparseBatch(*[np.concatenate([getattr(s, f) for s in slices])
                             for f in SparseBatch._fields])
      _assert_batches_equal(joined, whole[part])


def test_padding_rows_and_drop_remainder():
  inter = _random_inter()                        # 37 rows
  it = BatchIterator(inter, 8, num_shards=2, seed=0)
  batches = list(it.epoch(0))
  assert [int(b.mask.sum()) for b in batches] == [8, 8, 8, 8, 5]
  last = batches[-1]
  np.testing.assert_array_equal(last.mask, [1] * 5 + [0] * 3)
  np.testing.assert_array_equal(last.rows[5:], 0)
  np.testing.assert_array_equal(last.lengths[5:], 0)
  # Padding entries: value 0, column 0, the shard's last segment.
  nnz = last.lengths.reshape(2, 4).sum(1)
  for s in range(2):
    assert not last.vals[s, nnz[s]:].any() and not last.cols[s, nnz[s]:].any()
    assert (last.seg[s, nnz[s]:] == 3).all()
  dropped = BatchIterator(inter, 8, num_shards=2, seed=0, drop_remainder=True)
  assert dropped.steps_per_epoch() == 4
  kept = list(dropped.epoch(0))
  assert len(kept) == 4 and all(b.mask.all() for b in kept)
  for x, y in zip(kept, batches[:4]):
    _assert_batches_equal(x, y)


def test_targets_are_batched_like_the_inputs():
  inter = _random_inter()
  targets = _random_inter(n_cols=6, seed=4, empty_rows=(0,))
  for inputs, tgt in BatchIterator(inter, 8, num_shards=2, targets=targets, seed=2).epoch(0):
    np.testing.assert_array_equal(inputs.rows, tgt.rows)
    np.testing.assert_array_equal(inputs.mask, tgt.mask)
    real = inputs.mask > 0
    np.testing.assert_array_equal(_dense(tgt, 6)[real], dense_rows(targets, tgt.rows[real]))
    np.testing.assert_array_equal(_dense(inputs, 11)[real], dense_rows(inter, inputs.rows[real]))
  with pytest.raises(DataError, match="rows"):
    BatchIterator(inter, 8, targets=_random_inter(n_rows=36))


def test_row_subset_and_full_batches():
  inter = _random_inter()
  subset = np.array([30, 2, 17, 5, 11])
  got = np.concatenate([b.rows[b.mask > 0] for b in BatchIterator(inter, 2, row_subset=subset,
                                                                  seed=0).epoch(0)])
  np.testing.assert_array_equal(np.sort(got), np.sort(subset))
  ordered = list(full_batches(inter, 4, row_subset=subset))
  np.testing.assert_array_equal(np.concatenate([b.rows[b.mask > 0] for b in ordered]), subset)
  everything = list(full_batches(inter, 16, num_shards=4))
  np.testing.assert_array_equal(np.concatenate([b.rows for b in everything])[:37], np.arange(37))
  dense = np.concatenate([_dense(b, 11) for b in everything])[:37]
  np.testing.assert_array_equal(dense, inter.matrix.toarray())
  with pytest.raises(DataError, match="outside"):
    BatchIterator(inter, 4, row_subset=[0, 37])


def test_distinct_padded_sizes_are_few_on_heavy_tailed_rows():
  inter = _heavy_tailed()
  lengths = inter.row_lengths()
  assert lengths.max() > 50 * np.median(lengths)        # the test data really is heavy-tailed
  it = BatchIterator(inter, 256, num_shards=4, seed=0)
  sizes = set()
  for batch in it.epoch(0):
    n = batch.cols.shape[1]
    need = batch.lengths.reshape(4, -1).sum(1).max()
    assert n in it.bucket_sizes and n >= need
    smaller = [s for s in it.bucket_sizes if s < n]
    assert not smaller or smaller[-1] < need              # the smallest bucket that fits
    sizes.add(n)
  assert 2 <= len(sizes) <= 8
  np.testing.assert_array_equal(it.padded_sizes(0), [b.cols.shape[1] for b in it.epoch(0)])


def test_bucket_grid_by_hand():
  lengths = np.array([10, 1, 3, 2])
  # rows_per_shard 2: largest possible shard 10 + 3 = 13 -> top 16; smallest full shard 1 + 2 = 3
  # -> ladder starts at 8 (the minimum bucket).
  assert bucket_grid(lengths, 2) == (8, 16)
  assert bucket_grid(lengths, 2, 1) == (16,)
  assert bucket_grid(lengths, 2, [4, 100, 200]) == (4, 100)
  assert bucket_grid(lengths, 2, [2, 5]) == (2, 5, 16)
  # 40 rows of length 100, rows_per_shard 4: smallest 400 -> 256; largest 400 -> top 400.
  assert bucket_grid(np.full(40, 100), 4) == (256, 400)
  # 99 rows of length 1 and one of 10**6, rows_per_shard 8: top 10**6 + 7 -> 1000008; the full
  # ladder 8 .. 2**19 has 17 sizes; the mean shard holds 8 * 10000.99 = 80008 entries, so the 12
  # sizes 8 .. 16384 (2x <= 40004) may be dropped: 2 go for K = 16, all 12 for K = 6.
  lengths = np.r_[np.ones(99, int), 10**6]
  assert bucket_grid(lengths, 8) == tuple(2**i for i in range(5, 20)) + (1000008,)
  assert bucket_grid(lengths, 8, 6) == (32768, 65536, 131072, 262144, 524288, 1000008)
  # K = 4: after dropping, 5 sizes remain for 3 places: every 2nd one.
  assert bucket_grid(lengths, 8, 4) == (32768, 131072, 524288, 1000008)
  with pytest.raises(ConfigError):
    bucket_grid(lengths, 2, 0)


def test_argument_errors():
  inter = _random_inter()
  with pytest.raises(ConfigError, match="multiple of num_shards"):
    BatchIterator(inter, 10, num_shards=4)
  with pytest.raises(ConfigError, match="process_count"):
    BatchIterator(inter, 8, num_shards=2, process_count=4)
  with pytest.raises(ConfigError, match="process_index"):
    BatchIterator(inter, 8, process_index=1, process_count=1)
  with pytest.raises(ConfigError, match="start_step"):
    BatchIterator(inter, 8).epoch(0, start_step=-1)
  with pytest.raises(JaxaeError, match="tiny"):
    dense_rows(Interactions(sp.csr_matrix((1, 2**28 + 1), dtype=np.float32), [0],
                            np.arange(2**28 + 1)), [0, 0])


def test_prefetch_yields_the_same_sequence():
  inter = _random_inter()
  it = BatchIterator(inter, 8, num_shards=2, seed=3)
  plain = list(it.epoch(1))
  ahead = list(prefetch(it.epoch(1), size=2))
  assert len(ahead) == len(plain)
  for x, y in zip(ahead, plain):
    _assert_batches_equal(x, y)
  assert list(prefetch(range(5), size=0)) == list(range(5))
  with pytest.raises(ConfigError):
    prefetch(range(3), size=-1)


def test_prefetch_reraises_a_producer_exception():
  def source():
    yield 1
    yield 2
    raise KeyError("broken record")

  got = []
  with pytest.raises(KeyError, match="broken record"):
    for x in prefetch(source(), size=1):
      got.append(x)
  assert got == [1, 2]


def test_prefetch_stops_cleanly_when_closed_early():
  closed = threading.Event()

  def endless():
    try:
      i = 0
      while True:
        yield i
        i += 1
    finally:
      closed.set()

  it = prefetch(endless(), size=3)
  assert [next(it) for _ in range(4)] == [0, 1, 2, 3]
  it.close()
  assert closed.is_set()                         # the source generator was closed
  assert not it._thread.is_alive()               # pylint: disable=protected-access
  with pytest.raises(StopIteration):
    next(it)
  with prefetch(endless(), size=2) as again:
    assert next(again) == 0
  assert not again._thread.is_alive()            # pylint: disable=protected-access


def test_prefetch_module_has_no_leftover_threads():
  before = {t.ident for t in threading.enumerate()}
  list(batching.prefetch(iter(range(100)), size=4))
  leftover = [t for t in threading.enumerate()
              if t.ident not in before and t.name == "jaxae-prefetch"]
  assert not leftover
