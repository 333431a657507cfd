r"""Most popular under strong generalization on the MovieLens 1M users we hold: every held-out user
gets the movies most train users liked, their own fold-in movies excluded (configs/mult_vae_ml1m.py's
data and metrics).

  python train.py --config=configs/most_popular_ml1m.py \
      --config.data.path=../shared/data/ml-1m/partial-users-1-2999/ratings.dat.gz \
      --config.data.val_fraction=0
  python eval.py --workdir=workdirs/most_popular_ml1m --split=test

Result (docs/results.md, MovieLens 1M section): test Recall@20 / Recall@50 / NDCG@100
0.1895 / 0.2715 / 0.2304.
"""

from configs import base
from configs import mult_vae_ml1m


def get_config():
  c = base.get_base()
  c.data = mult_vae_ml1m.ml1m_heldout_users()
  c.model.name = "most_popular"
  c.eval = mult_vae_ml1m.heldout_users_eval()
  return c
