r"""Mult-VAE (Liang et al. 2018) on HetRec 2011 Last.fm 2K, the data section of
configs/ease_lastfm.py (5-core, 20% of each user's artists as test, 10% of the rest as validation).

  python train.py --config=configs/mult_vae_lastfm.py \
      --config.data.path=../shared/data/lastfm-2k/user_artists.dat
  python eval.py --workdir=workdirs/mult_vae_lastfm --best --split=test

Result (docs/results.md, Last.fm section): validation Recall@20 best at epoch 120 (0.3674), whose
checkpoint gives test Recall@20 0.3597 / NDCG@20 0.3323; refit on all non-test entries for 120
epochs (--config.data.val_fraction=0 --config.train.epochs=120, then eval.py without --best):
0.3708 / 0.3425, the best of the Last.fm rows (EASE 0.3399 / 0.3148). Chosen on validation: one
200-wide latent layer over [n -> 600 -> 200 -> 600 -> n], the KL cap 0.5 over 0.2, input dropout
0.5 over 0.2.
"""

from configs import ease_lastfm
from configs import mult_vae_gowalla


def get_config():
  c = mult_vae_gowalla.get_config()   # [n -> (mu, logvar) 200 -> n], dropout 0.5, KL cap 0.5
  c.data = ease_lastfm.lastfm_data()
  c.loss_anneal.total_steps = 400     # beta = step / 400: the cap 0.5 at step 200
  c.train.batch_size = 128
  c.train.epochs = 150                # best validation epoch 120 (docs/results.md)
  c.train.eval_every_epochs = 10
  c.train.checkpoint_every_epochs = 10
  return c
