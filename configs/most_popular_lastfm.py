r"""Most popular on HetRec 2011 Last.fm 2K, the data section of configs/ease_lastfm.py: every user
gets the artists most users listen to (their own excluded), the baseline the others must beat.

  python train.py --config=configs/most_popular_lastfm.py \
      --config.data.path=../shared/data/lastfm-2k/user_artists.dat --config.data.val_fraction=0
  python eval.py --workdir=workdirs/most_popular_lastfm --split=test

Result (docs/results.md, Last.fm section): test Recall@20 0.1194 / NDCG@20 0.1046.
"""

from configs import base
from configs import ease_lastfm


def get_config():
  c = base.get_base()
  c.data = ease_lastfm.lastfm_data()
  c.model.name = "most_popular"
  c.eval = base.topn_eval(20)
  return c
