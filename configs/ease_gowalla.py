r"""EASE (Steck 2019) on the LightGCN Gowalla split: closed form, B = I - P / diag(P),
P = (X^T X + l2 I)^-1, computed with jax in float32 (40,981^2 floats: 6.7 GB for B). The blocked
solver inverts in place on tiles (at most 2048 items a side) of the lower triangle: about 10.3 GB
of device memory at the peak (``jaxae.models.ease.memory_needed``), where the dense "cholesky"
solver needs 33.6 GB.

  python train.py --config=configs/ease_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/ease_gowalla --split=test

Result (docs/results.md): l2 chosen on validation (Recall@20 0.2087 at 20, 0.2121 at 30, 0.2150 at
50, 0.2148 at 80, 0.2117 at 150, 0.1971 at 500); refit on all of train.txt
(--config.data.val_fraction=0), test Recall@20 0.1752 / NDCG@20 0.1455 (LightGCN definitions;
published EASE 0.1765 / 0.1467), ~13 minutes and 16 GB RSS here.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "ease"
  c.model.l2 = 50.0                  # chosen on validation among 20 .. 500 (docs/results.md)
  c.model.solver = "blocked"         # "cholesky" | "blocked" (tiled in-place inverse, ~1.5 n^2 floats)
  c.model.block_size = 2048
  c.model.sparse_input = True        # scoring gathers rows of B: nnz x items, not batch x items^2

  c.eval = base.topn_eval(20)
  return c
