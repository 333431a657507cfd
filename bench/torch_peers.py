r"""The ANCHORS.md training workloads in PyTorch and in jaxae, in the same process, as ratios.

  python -m bench.torch_peers [--steps=10] [--repeats=2] [--only=deeprec1,deeprec0,multidae]

DeepRecommender and RecBole are not installed here, so their train steps are written out in PyTorch
as their code does them, on the Gowalla training matrix:

* deeprec1 / deeprec0: NVIDIA DeepRecommender (``reco_encoder/model/model.py`` and ``run.py``):
  40981-512-512-1024-512-512-40981, SELU on every layer (also the last), dropout 0.8 on the code,
  dense input, ``MSEloss`` over the nonzero targets / their number, SGD momentum 0.9 lr 0.005,
  batch 128, with (``aug_step`` 1) and without dense re-feeding.
* multidae: RecBole 1.2.1 ``MultiDAE`` (mlp_hidden_size [600], latent 64, tanh, dropout 0.5 on the
  L2-normalized dense input, multinomial log-likelihood), Adam 1e-3, batch 2048.

Both sides time steady-state steps on batches already built (the dense torch batches and jaxae's
sparse device batches), compile and first steps excluded, best of ``--repeats``. Because both run in
one process one after the other, the ratio holds on a busy machine where absolute rows/s do not; it
is a ratio to a faithful re-implementation, not to the peers' own code (ANCHORS.md has those).
"""

from __future__ import annotations

import time

from absl import app
from absl import flags

from jaxae import cli

_STEPS = flags.DEFINE_integer("steps", 10, "timed steps per repeat")
_REPEATS = flags.DEFINE_integer("repeats", 2, "timed loops per side (best one)")
_ONLY = flags.DEFINE_list("only", ["deeprec1", "deeprec0", "multidae"], "workloads")
cli.define_malloc_flags("Both sides (jaxae, PyTorch) run in this process.")

# name: (peer figure in ANCHORS.md rows/s, issue-7 target ratio)
ANCHOR = {"deeprec1": (292.0, 2.0), "deeprec0": (571.0, 3.0), "multidae": (470.0, 3.0)}


def torch_deeprec(n: int):
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel

  class AutoEncoder(nn.Module):
    def __init__(self):
      super().__init__()
      sizes = [n, 512, 512, 1024]
      self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
      rev = sizes[::-1]
      self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(rev[:-1], rev[1:]))
      for m in list(self.enc) + list(self.dec):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)
      self.drop = nn.Dropout(0.8)

    def forward(self, x):
      for m in self.enc:
        x = torch.selu(m(x))
      x = self.drop(x)
      for m in self.dec:
        x = torch.selu(m(x))          # last_layer_activations=True
      return x

  model = AutoEncoder()
  opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)

  def mse_loss(outputs, targets):
    mask = (targets != 0).float()
    num = mask.sum()
    return ((outputs * mask - targets) ** 2).sum() / num.clamp(min=1.0)

  def step(x, refeed: int):
    opt.zero_grad()
    out = model(x)
    mse_loss(out, x).backward()
    opt.step()
    for _ in range(refeed):
      x = out.detach()
      opt.zero_grad()
      out = model(x)
      mse_loss(out, x).backward()
      opt.step()
  return step


def torch_multidae(n: int):
  import torch  # pylint: disable=import-outside-toplevel
  from torch import nn  # pylint: disable=import-outside-toplevel
  import torch.nn.functional as F  # pylint: disable=import-outside-toplevel

  class MultiDAE(nn.Module):
    def __init__(self):
      super().__init__()
      enc = [n, 600, 64]
      dec = [64, 600, n]
      self.enc = nn.ModuleList(nn.Linear(a, b) for a, b in zip(enc[:-1], enc[1:]))
      self.dec = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dec[:-1], dec[1:]))
      self.drop = nn.Dropout(0.5)

    def forward(self, x):
      h = self.drop(F.normalize(x))
      for i, m in enumerate(self.enc):
        h = m(h)
        if i < len(self.enc) - 1:
          h = torch.tanh(h)
      for i, m in enumerate(self.dec):
        h = m(h)
        if i < len(self.dec) - 1:
          h = torch.tanh(h)
      return h

  model = MultiDAE()
  opt = torch.optim.Adam(model.parameters(), lr=1e-3)

  def step(x, refeed: int):
    del refeed
    opt.zero_grad()
    z = model(x)
    (-(F.log_softmax(z, 1) * x).sum(1).mean()).backward()
    opt.step()
  return step


def time_torch(step, batches, refeed: int, steps: int, repeats: int) -> float:
  step(batches[0], refeed)
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    for x in batches[1:steps + 1]:
      step(x, refeed)
    best = min(best, (time.perf_counter() - t) / steps)
  return best


def main(argv):
  del argv
  from bench import harness  # pylint: disable=import-outside-toplevel
  cli.tune_malloc()                               # before jax: may re-execute the process
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel
  from bench import flops as flops_lib  # pylint: disable=import-outside-toplevel
  from bench import sizes  # pylint: disable=import-outside-toplevel
  from configs import deeprec_netflix, mult_dae_gowalla  # pylint: disable=import-outside-toplevel

  data = sizes.load("gowalla")
  train = data.train
  n = train.shape[1]
  steps, repeats = _STEPS.value, _REPEATS.value
  peak = flops_lib.measure_cpu_peak()
  print(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads) vs jaxae, Gowalla "
        f"{train.shape[0]:,} x {n:,}; {cli.malloc_mode()}; f32 jnp.dot peak now "
        f"{peak / 1e9:.0f} GFLOP/s")
  print(f"{'workload':<44} {'torch rows/s':>12} {'jaxae rows/s':>12} {'ratio':>6}  target")
  for name in _ONLY.value:
    if name.startswith("deeprec"):
      refeed = int(name[-1])
      c = deeprec_netflix.get_config()
      c.train.refeed_steps = refeed
      bs, label = 128, f"DeepRecommender bs128 re-feed {refeed}"
      make = torch_deeprec
    else:
      refeed = 0
      c = mult_dae_gowalla.get_config()
      c.model.layers = (600, 64)
      c.train.batch_size = 2048
      bs, label = 2048, "RecBole MultiDAE 600/64 bs2048"
      make = torch_multidae
    rng = np.random.default_rng(0)
    rows = rng.permutation(train.shape[0])[:bs * (steps + 1)].reshape(steps + 1, bs)
    m = train.matrix
    t_batches = [torch.from_numpy(m[r].toarray().astype(np.float32)) for r in rows]
    t_step = make(n)
    t_s = time_torch(t_step, t_batches, refeed, steps, repeats)
    del t_batches, t_step
    engine = harness.build_engine(c, train.shape[0], n, max(1, train.shape[0] // bs))
    tt = harness.time_training(engine, train, batch_size=bs, steps=steps, repeats=repeats)
    ratio = tt.rows_per_s / (bs / t_s)
    peer, target = ANCHOR[name]
    print(f"{label:<44} {bs / t_s:>12,.0f} {tt.rows_per_s:>12,.0f} {ratio:>5.2f}x  >= {target:.1f}x "
          f"the peer's {peer:g} rows/s: {'MET' if ratio >= target else 'NOT MET'} (as a ratio to "
          f"this re-implementation)", flush=True)
    del engine


if __name__ == "__main__":
  app.run(main)
