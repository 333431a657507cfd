r"""Full-catalog top-K with the scores in column tiles (``config.eval.score_tile``) against whole
[chunk, n_cols] score blocks, and with the output layer's product from other operands
(``config.eval.score_dtype``), side by side in one process.

  python -m bench.score_tiles --config=configs/cdae_gowalla.py --size=gowalla [--tiles=2048,4096]
      [--score_dtypes=model,bfloat16] [--ks=20,100] [--rounds=3] [--config.eval.topk_group=64 ...]

For each K: every variant (each of ``--score_dtypes``, and within it tile 0 = whole blocks, then
each of ``--tiles``) runs one untimed pass (compiles every chunk shape), then ``--rounds`` rounds
of one timed pass each, the variants alternating within a round (so a slow spell of a shared
machine hits them alike). Prints each variant's median and best pass, its ratio to the first
variant (whole blocks in the first score dtype; median over median), and the largest array of a
chunk's ranking (computed, not measured: [chunk, n_cols] float32 for whole blocks; [chunk, tile]
and the [chunk, K, group] kept scores for tiles). The variants of one score dtype must give the
same metrics (checked); another dtype's are printed beside them (bfloat16 operands move them
within their rounding; on a trained model, ``eval.py --score_dtype``: docs/benchmarks.md). The
model is the config's at its initialization (ranking time does not depend on training). The
config's data section is ignored: ``--size`` gives the data (``bench.sizes``).
"""

from __future__ import annotations

import statistics

from absl import app
from absl import flags
from ml_collections import config_flags

from jaxae import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "model config file", lock_config=False)
_SIZE = flags.DEFINE_string("size", "gowalla", "data size (bench.sizes)")
_TILES = flags.DEFINE_list("tiles", ["2048", "4096"], "score_tile values to compare with 0")
_DTYPES = flags.DEFINE_list("score_dtypes", ["model"],
                            "score_dtype values (model | float32 | bfloat16), the first the base")
_KS = flags.DEFINE_list("ks", ["20", "100"], "the K of each comparison")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "timed passes per variant")
_SCALE = flags.DEFINE_float("scale", 1.0, "scale of a synthetic size")
cli.define_malloc_flags()


def main(argv):
  cli.no_extra_args(argv)
  bad = [d for d in _DTYPES.value if d not in cli.SCORE_DTYPES]
  if bad or not _DTYPES.value:
    raise app.UsageError(f"--score_dtypes: each of {', '.join(cli.SCORE_DTYPES)} (config.eval."
                         f"score_dtype), got {','.join(_DTYPES.value)!r}")
  cli.tune_malloc()                               # before jax: may re-execute the process
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from bench import sizes  # pylint: disable=import-outside-toplevel
  # pylint: disable-next=import-outside-toplevel
  from bench.harness import alternating_rounds, build_engine, topn_pass

  config = _CONFIG.value
  data = sizes.load(_SIZE.value, scale=_SCALE.value,
                    orientation=str(config.data.get("orientation", "user") or "user"))
  n_rows, n_cols = data.train.shape
  chunk = int(config.eval.batch_size)
  group = int(config.eval.get("topk_group", 0) or 0)
  engine = build_engine(config, n_rows, n_cols, max(1, n_rows // int(config.train.batch_size)))
  if engine.head_fn is None:
    raise app.UsageError(f"model {config.model.name!r} has no output layer to score in tiles")
  params = engine.state.params
  tiles = [0] + [int(t) for t in _TILES.value if t]
  variants = [(d, t) for d in _DTYPES.value for t in tiles]
  dev = jax.devices()[0]
  print(f"jaxae bench.score_tiles: config={config_flags.get_config_filename(flags.FLAGS['config'])}"
        f" size={_SIZE.value}: {data.description}; {dev.platform} {dev.device_kind} "
        f"x{jax.device_count()}, jax {jax.__version__}; {cli.malloc_mode()}; chunk {chunk}, "
        f"topk_group {group}")
  print(f"{'K':>4} {'score_dtype':>11} {'score_tile':>10} {'median s':>9} {'best s':>8} "
        f"{'vs first':>9} {'largest array (computed)':>26} {'recall@K':>9}")
  for k in (int(x) for x in _KS.value):
    runs = {v: topn_pass(engine, params, data.train, data.eval_split, (k,), chunk, group, v[1],
                         v[0]) for v in variants}
    metrics = {v: run() for v, run in runs.items()}                # compiles every chunk shape
    for d, t in variants:
      for name, want in metrics[(d, 0)].items():
        if not np.isclose(metrics[(d, t)][name], want, rtol=1e-6, atol=1e-7):
          raise SystemExit(f"score_dtype {d}, score_tile {t}: {name} {metrics[(d, t)][name]} "
                           f"!= {want} (its whole blocks)")
    secs = alternating_rounds(runs, _ROUNDS.value)
    first = statistics.median(secs[variants[0]])
    for d, t in variants:
      g = max(group, 1)
      largest = 4 * (chunk * n_cols if t == 0 else max(chunk * t, chunk * k * g))
      med = statistics.median(secs[(d, t)])
      print(f"{k:>4} {d:>11} {t:>10} {med:>9.2f} {min(secs[(d, t)]):>8.2f} {first / med:>8.2f}x "
            f"{largest / 2**20:>22.0f} MiB {metrics[(d, t)][f'recall@{k}']:>9.4f}")
  print("the variants of each score dtype give the same metrics (checked; the model at its "
        "initialization)")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
