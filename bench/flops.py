"""Honest model FLOP counts of one train step, and the device peak they are compared with.

Only matrix products are counted (2 FLOPs per multiply-add); activations, losses, the optimizer and
gathers are not. Per layer ``a -> b`` and pass:

  * a dense layer on B rows: forward ``2*B*a*b``; backward ``2x`` forward (input and weight
    gradients), except the FIRST layer, whose input gradient is never needed: ``1x`` forward.
  * a sparse first layer (embedding-bag over the nonzeros): forward ``2*nnz*b``; backward ``1x``
    forward (the weight gradient over the nonzeros only).
  * an output layer computed only at the target's entries (the masked-loss path of
    :func:`jaxae.training.step.entry_output`): forward ``2*nnz*a``, backward ``2x``. When dense
    re-feeding needs the whole output, its dense forward ``2*B*a*n`` is counted too (no backward).
  * every dense re-feeding pass: dense input and output, forward plus backward as above.

This is stricter than "backward = 2x forward everywhere": a dense first layer gets ``1x`` too, since
no framework computes the gradient of the data. The counts follow the path the step really runs.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp

# Peak dense throughput (FLOP/s) of accelerator kinds, from the vendors' data sheets (dense, no
# sparsity). "f32" is the tensor-core rate jax uses for float32 matmuls by default (TF32).
GPU_PEAKS: dict[str, dict[str, float]] = {
    "H100 80GB HBM3": {"bfloat16": 989e12, "float32": 495e12},   # H100 SXM
    "H100 PCIe": {"bfloat16": 756e12, "float32": 378e12},
    "H200": {"bfloat16": 989e12, "float32": 495e12},
    "A100-SXM4-80GB": {"bfloat16": 312e12, "float32": 156e12},
    "A100-SXM4-40GB": {"bfloat16": 312e12, "float32": 156e12},
    "A100-PCIE-40GB": {"bfloat16": 312e12, "float32": 156e12},
    "L4": {"bfloat16": 121e12, "float32": 60e12},
    "Tesla V100-SXM2-16GB": {"bfloat16": 125e12, "float32": 15.7e12},   # fp16 tensor cores
}


def layer_chain(model) -> list[tuple[int, int]] | None:
  """The ``(in, out)`` widths of the model's matmul layers in forward order (None: not a layered
  autoencoder, e.g. EASE)."""
  name = type(model).__name__
  n = int(model.n_cols)
  if name in ("DeepAE", "MultDAE"):
    sizes = (n,) + tuple(int(s) for s in model.layers)
    enc = list(zip(sizes[:-1], sizes[1:]))
    return enc + [(b, a) for a, b in reversed(enc)]
  if name == "MultVAE":
    sizes = (n,) + tuple(int(s) for s in model.layers)
    enc = list(zip(sizes[:-2], sizes[1:-1])) + [(sizes[-2], 2 * sizes[-1])]
    dec = list(zip(sizes[::-1][:-1], sizes[::-1][1:]))
    return enc + dec
  if name in ("AutoRec", "CDAE"):
    return [(n, int(model.hidden)), (int(model.hidden), n)]
  return None


@dataclasses.dataclass(frozen=True)
class StepShape:
  """What a step's FLOPs depend on: real rows, input and target nonzeros, and the step's path."""

  rows: int
  nnz: int
  sparse_input: bool
  entry_output: bool
  refeed_steps: int


def step_flops(chain: list[tuple[int, int]], s: StepShape) -> float:
  """Model FLOPs of one train step (normal pass + ``refeed_steps`` dense re-feeding passes)."""
  b = s.rows
  total = 0.0
  last = len(chain) - 1
  for i, (a, o) in enumerate(chain):
    if i == 0 and s.sparse_input:
      fwd = 2.0 * s.nnz * o
      total += 2 * fwd                              # forward + weight gradient over the nonzeros
    elif i == 0:
      total += 2 * (2.0 * b * a * o)                # forward + weight gradient (no input gradient)
    elif i == last and s.entry_output:
      total += 3 * (2.0 * s.nnz * a)                # forward + both gradients at the entries
      if s.refeed_steps:
        total += 2.0 * b * a * o                    # the dense output the re-feed pass reads
    else:
      total += 3 * (2.0 * b * a * o)
  for _ in range(s.refeed_steps):
    for i, (a, o) in enumerate(chain):
      total += (2 if i == 0 else 3) * (2.0 * b * a * o)
  return total


def step_products(chain: list[tuple[int, int]], batch: int, sparse_input: bool,
                  entry_output: bool, refeed_steps: int, item_major_last: bool = False
                  ) -> list[tuple[str, tuple[int, int, int], str]]:
  """The step's dense matrix products as ``(label, (m, k, n), kind)``, kind "nn" (``x @ W``),
  "tn" (``x^T @ g``) or "nt" (``g @ W^T``), in the order the step runs them, on the path
  :func:`step_flops` counts (``bench.step_floor`` times them): a sparse first layer
  (embedding-bag) and an output layer read at the batch's entries only (``entry_output``) are
  gathers, not products; with re-feeding the latter still makes the dense forward the re-fed
  input is. ``item_major_last``: the output layer's kernel is stored ``[out, in]``
  (``layers.ItemDense``: the deep AE's, CDAE's, Mult-DAE / Mult-VAE's), so its forward is
  ``h @ W^T``, its weight gradient ``g^T @ h`` and its input gradient ``g @ W``."""
  out = []
  last = len(chain) - 1
  passes = [("pass 1", sparse_input, entry_output)] + [
      (f"re-feed {t + 1}", False, False) for t in range(refeed_steps)]
  for name, sparse, at_entries in passes:
    for i, (a, b) in enumerate(chain):
      if i == 0 and sparse:
        continue                                   # the embedding-bag: not a product
      rows = i == last and item_major_last
      fwd = "nt" if rows else "nn"
      if i == last and at_entries:
        if refeed_steps:
          out.append((f"{name} layer {i} {a}->{b} forward (dense, for the re-feed)", (batch, a, b),
                      fwd))
        continue                                   # the loss's gathered rows: not a product
      out.append((f"{name} layer {i} {a}->{b} forward", (batch, a, b), fwd))
      out.append((f"{name} layer {i} weight gradient", (b, batch, a) if rows else (a, batch, b),
                  "tn"))
      if i > 0:
        out.append((f"{name} layer {i} input gradient", (batch, b, a), "nn" if rows else "nt"))
  return out


def score_flops(chain: list[tuple[int, int]], rows: int, nnz: int, sparse_input: bool) -> float:
  """Model FLOPs of scoring ``rows`` rows over the full catalog (forward only)."""
  total = 0.0
  for i, (a, o) in enumerate(chain):
    total += 2.0 * (nnz if (i == 0 and sparse_input) else rows * a) * o
  return total


def measure_peak(dtype: str = "float32", size: int = 8192, repeats: int = 10,
                 best: bool = False) -> float:
  """Matmul FLOP/s of ``jnp.dot`` on ``size``^3 random ``dtype`` operands on the default device
  after a warm-up: the median of ``repeats`` timed products (``best``: the fastest one), the
  ceiling a step's matmuls can reach here."""
  import statistics  # pylint: disable=import-outside-toplevel
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  dt = jnp.bfloat16 if dtype == "bfloat16" else jnp.float32
  a = jax.random.normal(k1, (size, size), jnp.float32).astype(dt)
  b = jax.random.normal(k2, (size, size), jnp.float32).astype(dt)
  dot = jax.jit(jnp.dot)
  dot(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    dot(a, b).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2.0 * size ** 3 / (min(times) if best else statistics.median(times))


def measure_cpu_peak(size: int = 2048, repeats: int = 5) -> float:
  """f32 matmul FLOP/s of ``jnp.dot`` on ``size``^3 (best of ``repeats``), on the default device."""
  return measure_peak("float32", size, repeats, best=True)


def device_peak(dtype: str = "float32") -> tuple[float | None, str]:
  """(peak FLOP/s, how it was obtained) for the default device and compute dtype."""
  dev = jax.devices()[0]
  if dev.platform == "cpu":
    peak = measure_cpu_peak()
    return peak, "f32 jnp.dot 2048^3 measured in this run"
  kind = dev.device_kind.removeprefix("NVIDIA ")      # jax says "NVIDIA H100 80GB HBM3"
  for name, peaks in GPU_PEAKS.items():
    if kind == name or kind.startswith(name):
      key = "bfloat16" if dtype == "bfloat16" else "float32"
      return peaks[key], f"{kind} data sheet, {key}{' (TF32)' if key == 'float32' else ''} dense"
  return None, f"unknown peak for {kind}"
