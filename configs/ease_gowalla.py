r"""EASE (Steck 2019) on the LightGCN Gowalla split: closed form, B = I - P / diag(P),
P = (X^T X + l2 I)^-1, computed with jax in float32 (40,981^2 floats: 6.7 GB for B). The blocked
solver inverts in place on tiles (at most 2048 items a side) of the lower triangle: about 10.3 GB
of device memory at the peak (``jaxae.models.ease.memory_needed``), where the dense "cholesky"
solver needs 33.6 GB.

  python train.py --config=configs/ease_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/ease_gowalla --split=test

Recall@20 / NDCG@20 (LightGCN definitions) are recorded in docs/results.md with their commands.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "ease"
  c.model.l2 = 500.0
  c.model.solver = "blocked"         # "cholesky" | "blocked" (tiled in-place inverse, ~1.5 n^2 floats)
  c.model.block_size = 2048
  c.model.sparse_input = True        # scoring gathers rows of B: nnz x items, not batch x items^2

  c.eval = base.topn_eval(20)
  return c
