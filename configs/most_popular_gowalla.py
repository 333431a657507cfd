r"""Most popular on the LightGCN Gowalla split: every user gets the items most users hold in
train.txt (the user's own items excluded), the baseline a personalized model must beat.

  python train.py --config=configs/most_popular_gowalla.py --config.data.path=../shared/data/gowalla \
      --config.data.val_fraction=0
  python eval.py --workdir=workdirs/most_popular_gowalla --split=test

Result (docs/results.md): test Recall@20 0.0416 / NDCG@20 0.0317 (LightGCN definitions), under
a second to fit.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()
  c.model.name = "most_popular"
  c.eval = base.topn_eval(20)
  return c
