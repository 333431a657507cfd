r"""EASE (Steck 2019) under strong generalization on the MovieLens 1M users we hold: fitted on the
train users, each held-out user scored from their fold-in items (configs/mult_vae_ml1m.py's data
and metrics).

  python train.py --config=configs/ease_ml1m.py \
      --config.data.path=../shared/data/ml-1m/partial-users-1-2999/ratings.dat.gz
  python eval.py --workdir=workdirs/ease_ml1m --split=test

Result (docs/results.md, MovieLens 1M section): L2 500 chosen on validation (NDCG@100 0.4140;
0.4131 at 700, 0.4112 at 1000, 0.4096 at 300); refit on the train and validation users
(--config.data.val_fraction=0): test Recall@20 / Recall@50 / NDCG@100 0.3820 / 0.5085 / 0.4470,
a 1.5 s fit.
"""

from configs import base
from configs import mult_vae_ml1m


def get_config():
  c = base.get_base()
  c.data = mult_vae_ml1m.ml1m_heldout_users()
  c.model.name = "ease"
  c.model.l2 = 500.0                 # chosen on validation among 50 .. 5000 (docs/results.md)
  c.model.sparse_input = True
  c.eval = mult_vae_ml1m.heldout_users_eval()
  return c
