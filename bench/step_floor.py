r"""A layered autoencoder's train step against the sum of its parts, each timed alone.

  python -m bench.step_floor --config=configs/deeprec_netflix.py --size=gowalla [--steps=20]

The step (as ``bench.run`` builds and times it) is set beside what it is made of, each part jitted
and timed alone (median of ``--steps`` calls after a warm-up):

  * every dense matrix product of the step, from the model's layer chain and the step's path
    (``bench.flops``): per dense layer ``a -> b`` and pass the forward ``[B, a] @ [a, b]``, the
    weight gradient ``[B, a]^T @ [B, b]`` and, but for the first layer, the input gradient
    ``[B, b] @ [a, b]^T``; a sparse first layer's embedding-bag and an output layer the loss reads
    at the batch's entries only are gathers, left out (their time is part of the remainder), but
    for the dense forward a re-feed pass needs; each dense re-feeding pass adds the products of a
    pass with a dense input;
  * the optimizer's update of a params-sized pytree (the config's optimizer, state donated), once
    per update of the step (``1 + refeed_steps``).

Their sum is what the step costs if nothing else did and nothing overlapped: on a CPU, where each
part already runs on every core, a step cannot be much faster than that sum. When the run matches
a peer of ``bench.harness.ANCHORS`` with a target ratio (on Gowalla), the step time the target
allows is printed beside it.
"""

from __future__ import annotations

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "config file")
_SIZE = flags.DEFINE_string("size", "gowalla", "a bench.sizes size")
_STEPS = flags.DEFINE_integer("steps", 20, "timed calls per part (median)")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  from bench import flops as flops_lib  # pylint: disable=import-outside-toplevel
  from bench import harness  # pylint: disable=import-outside-toplevel
  from bench import sizes  # pylint: disable=import-outside-toplevel
  from jaxae.data.batching import BatchIterator  # pylint: disable=import-outside-toplevel
  from jaxae.training import optim as optim_lib  # pylint: disable=import-outside-toplevel
  from jaxae.training import step as step_lib  # pylint: disable=import-outside-toplevel

  c = _CONFIG.value
  if c.model.get("dtype", "float32") != "float32":
    raise SystemExit(f"error: bench.step_floor times float32 products; config.model.dtype is "
                     f"{c.model.dtype!r}")
  steps = _STEPS.value
  bs = int(c.train.batch_size)
  refeed = int(c.train.refeed_steps)
  data = sizes.load(_SIZE.value, eval_rows=1)
  n_rows, n = data.train.shape
  spe = max(1, n_rows // bs)
  engine = harness.build_engine(c, n_rows, n, spe)
  chain = flops_lib.layer_chain(engine.model)
  if chain is None:
    raise SystemExit(f"error: {c.model.name} is not a layered autoencoder")
  batch = engine.put(next(iter(BatchIterator(data.train, bs, seed=0, drop_remainder=True)
                               .epoch(0))))
  step = engine.train_step.lower(engine.state, batch).compile()
  t_step, out = harness.median_time(step, engine.state, batch, steps=steps, carry=True)
  params = out[0].params
  rows = [("train step (bench.run's)", t_step, f"{bs / t_step:,.0f} rows/s")]

  dims = {"nn": lambda m, k, n_: ((m, k), (k, n_), (((1,), (0,)), ((), ()))),
          "tn": lambda m, k, n_: ((k, m), (k, n_), (((0,), (0,)), ((), ()))),
          "nt": lambda m, k, n_: ((m, k), (n_, k), (((1,), (1,)), ((), ())))}
  timed: dict[tuple, float] = {}
  t_mm, f_mm = 0.0, 0.0
  at_entries = step_lib.entry_output(engine.model, c)
  sparse_input = bool(c.model.get("sparse_input"))
  # The output kernel stored one row per item (layers.ItemDense; a tied decoder reads the first
  # layer's [items, width]) when no parameter has the output layer's [in, out] shape.
  item_major = all(tuple(np.shape(x)) != tuple(chain[-1]) for x in jax.tree.leaves(params))
  for label, (m, k, n_), kind in flops_lib.step_products(chain, bs, sparse_input, at_entries,
                                                         refeed, item_major):
    key = ((m, k, n_), kind)
    if key not in timed:
      sa, sb, dn = dims[kind](m, k, n_)
      x = jax.random.normal(jax.random.PRNGKey(0), sa, jnp.float32)
      y = jax.random.normal(jax.random.PRNGKey(1), sb, jnp.float32)
      fn = jax.jit(lambda x, y, dn=dn: jax.lax.dot_general(x, y, dn))
      timed[key] = harness.median_time(fn, x, y, steps=steps)[0]
    t, f = timed[key], 2.0 * m * k * n_
    t_mm, f_mm = t_mm + t, f_mm + f
    rows.append((f"  {label}", t, f"{f / t / 1e9:,.0f} GFLOP/s"))
  rows.append(("matrix products (sum of the above)", t_mm,
               f"{f_mm / 1e9:.1f} GFLOP at {f_mm / t_mm / 1e9:,.0f} GFLOP/s"))

  tx = optim_lib.make_optimizer(c.optim, spe, int(c.train.epochs), 1 + refeed)
  t_opt = harness.time_update(tx, params, steps)
  n_params = sum(x.size for x in jax.tree.leaves(params))
  rows.append((f"optimizer update ({c.optim.name}, {n_params / 1e6:.0f}M params) x {1 + refeed}",
               t_opt * (1 + refeed), f"{t_opt * 1e3:.2f} ms each"))
  floor = t_mm + t_opt * (1 + refeed)
  rows.append(("parts' sum (products + updates)", floor,
               f"{bs / floor:,.0f} rows/s if the step were only these; the step spends "
               f"{(t_step - floor) * 1e3:.1f} ms beyond them"))
  peak = flops_lib.measure_peak("float32", size=1024)
  dev = jax.devices()[0]
  harness.print_parts(
      f"step floor: {c.model.name} {'-'.join(str(a) for a, _ in chain)}-{chain[-1][1]} batch "
      f"{bs}, re-feed {refeed}, optim {c.optim.name}; {_SIZE.value} {n_rows:,} x {n:,}; "
      f"{dev.platform}, jax {jax.__version__}; f32 jnp.dot 1024^3 {peak / 1e9:,.0f} GFLOP/s; "
      f"median of {steps}", rows)
  for name, peer, ratio, match in harness.ANCHORS:
    if ratio and _SIZE.value == "gowalla" and match(engine.model, c):   # the peers ran on Gowalla
      allowed = bs / (ratio * peer)
      verdict = ("the parts alone already exceed it" if floor > allowed else
                 "the parts alone fit within it")
      print(f"target {ratio:g}x {name} ({peer:g} rows/s): a step of at most {allowed * 1e3:.1f} ms;"
            f" {verdict} ({floor * 1e3:.1f} ms)")


if __name__ == "__main__":
  app.run(main)
