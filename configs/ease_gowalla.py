r"""EASE (Steck 2019) on the LightGCN Gowalla split: closed form, B = I - P / diag(P),
P = (X^T X + l2 I)^-1, computed with jax in float32 (40,981^2 floats: 6.7 GB for P, about 20 GB peak).

  python train.py --config=configs/ease_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/ease_gowalla --split=test

Recall@20 / NDCG@20 (LightGCN definitions) are recorded in docs/results.md with their commands.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data.name = "lightgcn"
  c.data.path = None
  c.data.val_fraction = 0.1
  c.data.binarize_threshold = None

  c.model.name = "ease"
  c.model.l2 = 500.0

  c.eval.evaluators = ("topn",)
  c.eval.ks = (20,)
  c.eval.metric = "recall@20"
  c.eval.metric_mode = "max"
  return c
