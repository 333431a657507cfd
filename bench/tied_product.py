r"""The tied (constrained) decoder's product two ways, side by side in one process, per row count.

  python -m bench.tied_product [--items=40981] [--code=200] [--rows=1,2,16,128,1024]

A tied decoder layer computes ``z @ kernel.T + bias`` with the encoder's kernel [items, code]. As
written with ``kernel.T`` (the form before session 17), XLA turns a one-row product into a
matrix-vector product over a transposed copy of the kernel, made on every call; contracting the
kernel's second axis directly (``jax.lax.dot_general``, ``jaxae.models.layers.TiedDense``) does
not. Each variant is jitted as in the model's forward (the code from the embedding bag of a few
kernel rows, SELU, then the product and the bias) and timed as the median of ``--steps`` calls.
Printed: milliseconds a call, the ratio of ``z @ kernel.T`` to ``dot_general``, and whether XLA
compiled the two to the same program (the optimized HLO, names and metadata aside); the two give
the same values (checked).
"""

from __future__ import annotations

from absl import app
from absl import flags

from jaxae import cli

_ITEMS = flags.DEFINE_integer("items", 40981, "kernel rows (the catalog)", lower_bound=1)
_CODE = flags.DEFINE_integer("code", 200, "kernel columns (the code size)", lower_bound=1)
_ROWS = flags.DEFINE_list("rows", ["1", "2", "16", "128", "1024"], "rows of z")
_STEPS = flags.DEFINE_integer("steps", 50, "timed calls per variant and row count", lower_bound=1)


def main(argv):
  cli.no_extra_args(argv)
  # pylint: disable=import-outside-toplevel
  import jax
  import jax.numpy as jnp
  import numpy as np
  from bench.harness import median_time
  # pylint: enable=import-outside-toplevel
  try:
    rows = [int(x) for x in _ROWS.value]
  except ValueError:
    raise app.UsageError(f"--rows: integers expected, got {_ROWS.value}") from None
  rng = np.random.default_rng(0)
  kernel = jnp.asarray(rng.normal(0, 0.05, (_ITEMS.value, _CODE.value)).astype(np.float32))
  bias = jnp.asarray(rng.normal(0, 0.05, _ITEMS.value).astype(np.float32))
  cols = jnp.asarray(rng.integers(0, _ITEMS.value, 32))

  def code(kernel, n):                      # an embedding bag of 32 kernel rows, n times
    return jax.nn.selu(jnp.broadcast_to(jnp.take(kernel, cols, axis=0).sum(0), (n, _CODE.value)))

  variants = {
      "z @ kernel.T": lambda kernel, bias, n: code(kernel, n) @ kernel.T + bias,
      "dot_general": lambda kernel, bias, n: jax.lax.dot_general(
          code(kernel, n), kernel, (((1,), (1,)), ((), ()))) + bias,
  }
  dev = jax.devices()[0]
  print(f"jaxae bench.tied_product: kernel {_ITEMS.value:,} x {_CODE.value}, float32; "
        f"{dev.platform} {dev.device_kind}, jax {jax.__version__}")
  print(f"{'rows':>6} {'z @ kernel.T ms':>16} {'dot_general ms':>15} {'ratio':>7} "
        f"{'same program':>13}")
  for n in rows:
    secs, outs, programs = {}, {}, {}
    for name, fn in variants.items():
      f = jax.jit(fn, static_argnums=2)
      secs[name], outs[name] = median_time(f, kernel, bias, n, steps=_STEPS.value)
      programs[name] = _program(f.lower(kernel, bias, n).compile().as_text())
    np.testing.assert_allclose(np.asarray(outs["z @ kernel.T"]), np.asarray(outs["dot_general"]),
                               rtol=1e-4, atol=1e-4)
    a, b = secs["z @ kernel.T"], secs["dot_general"]
    same = "yes" if programs["z @ kernel.T"] == programs["dot_general"] else "no"
    print(f"{n:>6} {a * 1e3:>16.3f} {b * 1e3:>15.3f} {a / b:>6.2f}x {same:>13}")


def _program(hlo: str) -> str:
  """The optimized HLO's instructions without what names them or says where they came from
  (metadata, the stack-frame tables, the numbering of instructions), to compare two programs."""
  import re  # pylint: disable=import-outside-toplevel
  lines = [ln for ln in hlo.splitlines()
           if ln.strip() and not re.match(r"^\s*\d+ [{\"]", ln) and "FileNames" not in ln
           and "FunctionNames" not in ln and "FileLocations" not in ln and "StackFrames" not in ln]
  text = re.sub(r", metadata=\{[^}]*\}", "", "\n".join(lines))
  text = re.sub(r"stack_frame_id=\d+", "", text)
  text = re.sub(r"^HloModule [^,]*", "HloModule", text)
  return re.sub(r"%[\w.-]+", "%v", text)


if __name__ == "__main__":
  app.run(main)
