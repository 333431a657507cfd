r"""Mult-VAE (Liang et al. 2018) under their strong-generalization protocol, on the MovieLens 1M
users we hold (users 1..2999 of ratings.dat), read by the `csv` pipeline.

Liang et al.'s preprocessing and protocol (their ML-20M setup, scaled to this file): ratings above
3.5 are positives, users with fewer than 5 positives dropped; 10% of the users are test users and
10% of the rest validation users, never trained on; each held-out user is given 80% of their
items and scored on the other 20% (users with fewer than 5 items are given all, not scored);
Recall@K as they define it (hits / min(K, held-out items): ``recall@K_liang``) and NDCG@100, the
best checkpoint picked by validation NDCG@100. Model: [n -> (mu, logvar) 200 -> n], tanh, input
dropout 0.5, KL annealed to 0.2, Adam 1e-3, batch 500 (their code's settings, but one 200-wide
layer: chosen on validation over their [n -> 600 -> 200 -> 600 -> n], and the cap 0.2 over 0.5).

  python train.py --config=configs/mult_vae_ml1m.py \
      --config.data.path=../shared/data/ml-1m/partial-users-1-2999/ratings.dat.gz
  python eval.py --workdir=workdirs/mult_vae_ml1m --best --split=test

Result (docs/results.md, MovieLens 1M section): validation NDCG@100 best at epoch 270 (0.4038),
whose checkpoint gives test Recall@20 / Recall@50 / NDCG@100 0.3752 / 0.4865 / 0.4377; refit on the
train and validation users for 270 epochs (--config.data.val_fraction=0 --config.train.epochs=270,
then eval.py without --best): 0.3815 / 0.4850 / 0.4372. EASE (configs/ease_ml1m.py) and Mult-DAE
(configs/mult_dae_ml1m.py) reach the same within the spread over user draws.
"""

from configs import base
from configs import mult_vae_gowalla


def ml1m_heldout_users():
  """The data section of every ML-1M strong-generalization config (ratings.dat: user::item::
  rating::time, no header)."""
  return base.csv_data(delimiter="::", header=False, value_col=2, timestamp_col=3,
                       binarize_threshold=3.5, min_user_entries=5, split="users",
                       test_fraction=0.1, val_fraction=0.1, fold_in_fraction=0.8,
                       min_entries_to_split=5)


def heldout_users_eval():
  """Liang et al.'s metrics: Recall@20 / @50 (their definition: ``recall@K_liang``) and NDCG@100,
  the best checkpoint by NDCG@100."""
  e = base.topn_eval(100)
  e.ks = (20, 50, 100)
  e.metric = "ndcg@100"
  return e


def get_config():
  c = mult_vae_gowalla.get_config()   # [n -> (mu, logvar) 200 -> n], tanh, input dropout 0.5
  c.data = ml1m_heldout_users()
  c.loss_anneal.beta_cap = 0.2
  c.loss_anneal.total_steps = 1000    # beta = step / 1000: the cap 0.2 at step 200 (40 epochs)
  c.train.batch_size = 500
  c.train.epochs = 300                # best validation epoch 270 (docs/results.md)
  c.train.eval_every_epochs = 5
  c.train.checkpoint_every_epochs = 5
  c.eval = heldout_users_eval()
  return c
