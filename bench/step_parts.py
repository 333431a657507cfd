r"""Where a train step's time goes: the whole step against its parts, each timed alone.

  python -m bench.step_parts [--config=configs/melon_cf_ae.py] [--batch_size=1024]
      [--dtype=bfloat16] [--size=melon_cf] [--steps=30]

For a one-hidden-layer autoencoder n -> d -> n (the Melon CF AE: n = 277,218, d = 1024) it times,
each jitted and alone (median of ``--steps`` calls after a warm-up, one sync per call):

  * the train step of the config as ``bench.run`` times it (Adam, the config's loss), with the
    loss's target dense (``config.loss_impl.full_mse = "dense"``) and read at the batch's entries
    ("entries");
  * the same step with plain SGD (no optimizer state; the config's "auto" loss path): the
    difference is Adam's update;
  * the decoder's three matmuls, each alone: ``z @ W`` forward, ``g @ W^T`` and ``z^T @ g``
    backward (``dtype`` operands and outputs, as autodiff makes them), then the decoder's forward
    and backward by autodiff from the float32 master kernel (its casts included) -- FLOPs over time
    is the decoder's fraction of the device's matmul peak (``jnp.dot`` 8192^3 measured in the same
    run, and the data sheet);
  * Adam's update of a params-sized pytree alone (``bench.harness.time_update``: optax.adam, added
    to the params, donated): the bytes it must move (read params, grads, both moments; write
    params and moments) over its time;
  * the float32 -> ``dtype`` cast of the two big kernels (what a bf16 step reads its weights through).
"""

from __future__ import annotations

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", "configs/melon_cf_ae.py", "config file")
_SIZE = flags.DEFINE_string("size", "melon_cf", "a bench.sizes size (its rows give the batches)")
_BATCH = flags.DEFINE_integer("batch_size", 1024, "rows per step")
_DTYPE = flags.DEFINE_string("dtype", "bfloat16", "compute dtype")
_STEPS = flags.DEFINE_integer("steps", 30, "timed calls per part (median)")
_SCALE = flags.DEFINE_float("scale", 0.1, "fraction of the size's rows generated (batches only)")


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import optax  # pylint: disable=import-outside-toplevel
  from bench import flops as flops_lib  # pylint: disable=import-outside-toplevel
  from bench import harness  # pylint: disable=import-outside-toplevel
  from bench import sizes  # pylint: disable=import-outside-toplevel
  from jaxae.data.batching import BatchIterator  # pylint: disable=import-outside-toplevel

  steps = _STEPS.value
  c = _CONFIG.value
  c.train.batch_size = _BATCH.value
  c.model.dtype = _DTYPE.value
  data = sizes.load(_SIZE.value, scale=_SCALE.value, eval_rows=1)
  n_rows, n = data.train.shape
  batch = next(iter(BatchIterator(data.train, _BATCH.value, seed=0, drop_remainder=True).epoch(0)))
  rows = []

  def step_time(optim_name, full_mse="auto"):
    c.optim.name = optim_name
    c.loss_impl.full_mse = full_mse
    engine = harness.build_engine(c, n_rows, n, max(1, n_rows // _BATCH.value))
    b = engine.put(batch)
    fn = engine.train_step.lower(engine.state, b).compile()
    t, out = harness.median_time(fn, engine.state, b, steps=steps, carry=True)
    return t, out[0]                     # the state after the timed steps (the first is donated)

  d = int(c.model.layers[0])
  for impl in ("dense", "entries"):
    t_adam, state = step_time("adam", impl)
    rows.append((f"train step, Adam, loss_impl.full_mse={impl}", t_adam, ""))
    del state
  t_sgd, state = step_time("sgd")
  rows.append(("train step, SGD (no optimizer state)", t_sgd, ""))
  params = state.params
  del state

  dt = jnp.bfloat16 if _DTYPE.value == "bfloat16" else jnp.float32
  key = jax.random.PRNGKey(0)
  z = jax.random.normal(key, (_BATCH.value, d), jnp.float32).astype(dt)
  g = jax.random.normal(jax.random.PRNGKey(1), (_BATCH.value, n), jnp.float32).astype(dt)
  w = jax.random.normal(jax.random.PRNGKey(2), (d, n), jnp.float32) * 0.01

  def decoder(z, g, w):      # forward and backward of the step's decoder product, by autodiff
    y, vjp = jax.vjp(lambda z, w: jnp.dot(z, w.astype(dt)), z, w)
    return (y,) + vjp(g)

  wc = w.astype(dt)
  parts = {                  # the three products alone, output dtypes as autodiff makes them
      "forward z @ W": jax.jit(lambda z, g, wc: jnp.dot(z, wc)),
      "input gradient g @ W^T": jax.jit(lambda z, g, wc: jnp.dot(g, wc.T)),
      "weight gradient z^T @ g": jax.jit(lambda z, g, wc: jnp.dot(z.T, g)),
  }
  one_flops = 2.0 * _BATCH.value * d * n
  dec_flops = 3 * one_flops
  t_dec, _ = harness.median_time(jax.jit(decoder), z, g, w, steps=steps)
  t_parts = {name: harness.median_time(fn, z, g, wc, steps=steps)[0] for name, fn in parts.items()}
  t_cast, _ = harness.median_time(jax.jit(lambda a: a.astype(dt)), w, steps=steps)

  t_opt = harness.time_update(optax.adam(1e-3), params, steps)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  opt_bytes = n_params * 4 * 7          # read p, g, m, v; write p, m, v (float32)

  dev = jax.devices()[0]
  peak_meas = flops_lib.measure_peak(_DTYPE.value, size=8192 if dev.platform != "cpu" else 1024)
  peak_sheet, how = flops_lib.device_peak(_DTYPE.value)
  frac = lambda f, t: (f"{f / t / peak_meas:.0%} of the measured jnp.dot"
                       + (f", {f / t / peak_sheet:.0%} of {how}"
                          if peak_sheet and dev.platform != "cpu" else ""))
  for name, t in t_parts.items():
    rows.append((f"  {name}", t, f"{one_flops / t / 1e12:.1f} TFLOP/s = " + frac(one_flops, t)))
  t_mm = sum(t_parts.values())
  rows.append(("decoder's 3 matmuls (sum of the above)", t_mm,
               f"{dec_flops / t_mm / 1e12:.1f} TFLOP/s = " + frac(dec_flops, t_mm)))
  rows.append(("decoder forward + backward (autodiff, with the f32 master kernel's casts)", t_dec,
               f"{dec_flops / t_dec / 1e12:.1f} TFLOP/s = " + frac(dec_flops, t_dec)))
  rows.append((f"cast [{d}, {n}] float32 -> {_DTYPE.value}", t_cast,
               f"{w.size * (4 + jnp.dtype(dt).itemsize) / t_cast / 1e9:.0f} GB/s"))
  rows.append((f"Adam update alone ({n_params / 1e6:.0f}M params)", t_opt,
               f"{opt_bytes / t_opt / 1e9:.0f} GB/s of the {opt_bytes / 1e9:.1f} GB it must move"))
  harness.print_parts(
      f"step parts: {c.model.name} {n}-{d}-{n} {_DTYPE.value}, batch {_BATCH.value}, loss "
      f"{', '.join(f'{k}={v:g}' for k, v in c.loss.items())}; {dev.platform} {dev.device_kind}, "
      f"jax {jax.__version__}; {_DTYPE.value} jnp.dot {8192 if dev.platform != 'cpu' else 1024}^3 "
      f"{peak_meas / 1e12:.3g} TFLOP/s; {how}; median of {steps}", rows)


if __name__ == "__main__":
  app.run(main)
