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

from configs import base
from configs import ease_lastfm


def get_config():
  c = base.get_base()
  c.data = ease_lastfm.lastfm_data()

  c.model.name = "mult_vae"
  c.model.layers = (200,)              # chosen on validation over (600, 200)
  c.model.input_dropout = 0.5
  c.model.activation = "tanh"
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.multinomial = 1.0
  c.loss.kl = 1.0
  c.loss_anneal.total_steps = 400     # beta = step / 400 up to the cap
  c.loss_anneal.beta_cap = 0.5         # chosen on validation over 0.2

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 128
  c.train.epochs = 150                 # best validation epoch 120 (docs/results.md)
  c.train.eval_every_epochs = 10
  c.train.checkpoint_every_epochs = 10

  c.eval = base.topn_eval(20)
  return c
