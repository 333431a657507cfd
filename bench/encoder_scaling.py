r"""Encoder-side step time against the item count, at the same nonzeros per row.

  python -m bench.encoder_scaling [--items=27722,277218] [--hidden=1024] [--batch_size=256]
      [--mean_nnz=46] [--steps=20]

With the sparse first layer (an embedding-bag over a row's nonzeros) the encoder's work depends on
the nonzeros, not on the item count. "Encoder-side step" = gather the first-layer rows of the batch's
items, forward through the encoder, backward to every encoder parameter with the first layer's
gradient kept as its rows (what a sparse update needs), and apply plain SGD in place (a scatter-add
into the donated table): nothing of size items x hidden is read or written. The same batches (same
row lengths) are drawn for each item count. For contrast the table also gives the full train step
of the Melon CF AE shape (n -> hidden -> n, Adam, dense [n, hidden] optimizer state and output),
which does scale with the items.
"""

from __future__ import annotations

import time

from absl import app
from absl import flags

_ITEMS = flags.DEFINE_list("items", ["27722", "277218"], "item counts to compare")
_HIDDEN = flags.DEFINE_integer("hidden", 1024, "first-layer width")
_BATCH = flags.DEFINE_integer("batch_size", 256, "rows per step")
_MEAN_NNZ = flags.DEFINE_integer("mean_nnz", 46, "mean nonzeros per row (Melon: ~46 songs)")
_STEPS = flags.DEFINE_integer("steps", 20, "timed steps (best of 3 loops)")
_FULL = flags.DEFINE_bool("full_step", True, "also time the full train step at each size")


def _batches(n_items: int, steps: int, batch_size: int, mean_nnz: int, seed: int = 0):
  """``steps`` SparseBatches whose row lengths do not depend on ``n_items`` (same seed)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from jaxae.data.batching import BatchIterator  # pylint: disable=import-outside-toplevel
  from bench.sizes import power_law  # pylint: disable=import-outside-toplevel
  rows = steps * batch_size
  inter = power_law(rows, n_items, rows * mean_nnz, ratings=False, seed=seed)
  it = BatchIterator(inter, batch_size, shuffle=False, nnz_buckets=[int(
      np.ceil(inter.row_lengths().reshape(steps, batch_size).sum(1).max() / 8) * 8)])
  return list(it.epoch(0)), inter


def encoder_step_fn(lr: float = 0.01):
  """``step(table, bias0, rest, batch) -> (table, bias0, rest, loss)``: the encoder-side step."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def loss_fn(rows_g, bias0, rest, batch):
    seg, vals = batch.seg[0], batch.vals[0]
    b = batch.rows.shape[0]
    h = jax.ops.segment_sum(rows_g * vals[:, None], seg, num_segments=b) + bias0
    h = jax.nn.selu(h)
    for w, c in rest:
      h = jax.nn.selu(h @ w + c)
    return jnp.mean(jnp.square(h))          # any scalar of the code: the backward is what counts

  def step(table, bias0, rest, batch):
    cols = batch.cols[0]
    rows_g = table[cols]                                  # [N, hidden]: the batch's rows only
    loss, (g_rows, g_b, g_rest) = jax.value_and_grad(loss_fn, argnums=(0, 1, 2))(
        rows_g, bias0, rest, batch)
    table = table.at[cols].add(-lr * g_rows)              # sparse in-place SGD on the table
    rest = jax.tree.map(lambda p, g: p - lr * g, rest, g_rest)
    return table, bias0 - lr * g_b, rest, loss

  return jax.jit(step, donate_argnums=(0, 1, 2))


def _time(fn, args_state, batches, steps: int):
  import jax  # pylint: disable=import-outside-toplevel
  state = fn(*args_state, batches[0])
  jax.block_until_ready(state)
  best = float("inf")
  for _ in range(3):
    t = time.perf_counter()
    for b in batches[:steps]:
      state = fn(*state[:-1], b)
    jax.block_until_ready(state)
    best = min(best, (time.perf_counter() - t) / steps)
  return best


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from bench import harness as run_lib  # pylint: disable=import-outside-toplevel
  from configs import melon_cf_ae  # pylint: disable=import-outside-toplevel

  hidden = _HIDDEN.value
  results = []
  for n in [int(x) for x in _ITEMS.value]:
    batches, inter = _batches(n, _STEPS.value + 1, _BATCH.value, _MEAN_NNZ.value)
    dev = [jax.device_put(b) for b in batches]
    key = jax.random.PRNGKey(0)
    table = jax.random.normal(key, (n, hidden), jnp.float32) * 0.01
    rest = [(jax.random.normal(key, (hidden, 512), jnp.float32) * 0.01,
             jnp.zeros((512,), jnp.float32))]
    fn = encoder_step_fn()
    enc_s = _time(fn, (table, jnp.zeros((hidden,), jnp.float32), rest), dev[1:], _STEPS.value)
    full_s = None
    if _FULL.value:
      c = melon_cf_ae.get_config()
      c.model.layers = (hidden,)
      c.train.batch_size = _BATCH.value
      engine = run_lib.build_engine(c, inter.shape[0], n, _STEPS.value)
      tt = run_lib.time_training(engine, inter, batch_size=_BATCH.value, steps=_STEPS.value,
                                 repeats=3)
      full_s = tt.step_s
    nnz = sum(int(b.lengths.sum()) for b in batches[1:]) / _STEPS.value
    results.append((n, enc_s, full_s, nnz))
    del table, rest, fn
  print(f"encoder-side step vs items: hidden {hidden} (then 512), batch {_BATCH.value}, mean "
        f"{_MEAN_NNZ.value} nonzeros per row, {jax.devices()[0].platform}")
  base = results[0]
  print(f"{'items':>8}  {'nnz/batch':>9}  {'encoder step':>12}  {'ratio':>6}  "
        f"{'full step (Melon CF AE, Adam)':>30}  {'ratio':>6}")
  for n, enc_s, full_s, nnz in results:
    full = "-" if full_s is None else f"{full_s * 1e3:.1f} ms"
    fr = "-" if full_s is None or base[2] is None else f"{full_s / base[2]:.2f}x"
    print(f"{n:>8,}  {nnz:>9,.0f}  {enc_s * 1e3:>9.2f} ms  {enc_s / base[1]:>5.2f}x  {full:>30}  "
          f"{fr:>6}")
  ratio = results[-1][1] / base[1]
  print(f"target: encoder-side step at {results[-1][0]:,} items within 1.5x of {base[0]:,}: "
        f"{ratio:.2f}x -> {'MET' if ratio <= 1.5 else 'NOT MET'}")


if __name__ == "__main__":
  app.run(main)
