r"""Full-catalog top-K with the scores in column tiles (``config.eval.score_tile``) against whole
[chunk, n_cols] score blocks, side by side in one process.

  python -m bench.score_tiles --config=configs/cdae_gowalla.py --size=gowalla [--tiles=2048,4096]
      [--ks=20,100] [--rounds=3] [--config.eval.topk_group=64 ...]

For each K: every variant (tile 0 = whole blocks, then each of ``--tiles``) runs one untimed pass
(compiles every chunk shape), then ``--rounds`` rounds of one timed pass each, the variants
alternating within a round (so a slow spell of a shared machine hits them alike). Prints each
variant's median and best pass, its ratio to whole blocks (median over median), and the largest
array of a chunk's ranking (computed, not measured: [chunk, n_cols] float32 for whole blocks;
[chunk, tile] and the [chunk, K, group] kept scores for tiles). Every variant must give the same
metrics (checked). The model is the config's at its initialization (ranking time does not depend
on training). The config's data section is ignored: ``--size`` gives the data (``bench.sizes``).
"""

from __future__ import annotations

import statistics
import time

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "model config file", lock_config=False)
_SIZE = flags.DEFINE_string("size", "gowalla", "data size (bench.sizes)")
_TILES = flags.DEFINE_list("tiles", ["2048", "4096"], "score_tile values to compare with 0")
_KS = flags.DEFINE_list("ks", ["20", "100"], "the K of each comparison")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "timed passes per variant")
_SCALE = flags.DEFINE_float("scale", 1.0, "scale of a synthetic size")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from bench import sizes  # pylint: disable=import-outside-toplevel
  from bench.harness import build_engine, topn_pass  # pylint: disable=import-outside-toplevel

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
  tiles = [0] + [int(t) for t in _TILES.value]
  dev = jax.devices()[0]
  print(f"jaxae bench.score_tiles: config={config_flags.get_config_filename(flags.FLAGS['config'])}"
        f" size={_SIZE.value}: {data.description}; {dev.platform} {dev.device_kind} "
        f"x{jax.device_count()}, jax {jax.__version__}; chunk {chunk}, topk_group {group}")
  print(f"{'K':>4} {'score_tile':>10} {'median s':>9} {'best s':>8} {'vs whole':>9} "
        f"{'largest array (computed)':>26}")
  for k in (int(x) for x in _KS.value):
    runs = {t: topn_pass(engine, params, data.train, data.eval_split, (k,), chunk, group, t)
            for t in tiles}
    metrics = {t: run() for t, run in runs.items()}                # compiles every chunk shape
    for t in tiles:
      for name, v in metrics[0].items():
        if not np.isclose(metrics[t][name], v, rtol=1e-6, atol=1e-7):
          raise SystemExit(f"score_tile {t}: {name} {metrics[t][name]} != {v} (whole blocks)")
    secs = {t: [] for t in tiles}
    for _ in range(_ROUNDS.value):
      for t, run in runs.items():
        start = time.perf_counter()
        run()
        secs[t].append(time.perf_counter() - start)
    whole = statistics.median(secs[0])
    for t in tiles:
      g = max(group, 1)
      largest = 4 * (chunk * n_cols if t == 0 else max(chunk * t, chunk * k * g))
      print(f"{k:>4} {t:>10} {statistics.median(secs[t]):>9.2f} {min(secs[t]):>8.2f} "
            f"{whole / statistics.median(secs[t]):>8.2f}x {largest / 2**20:>22.0f} MiB")
  print(f"same metrics in every variant (recall@{k} {metrics[0][f'recall@{k}']:.4f} at the "
        f"initialization)")


if __name__ == "__main__":
  flags.mark_flag_as_required("config")
  app.run(main)
