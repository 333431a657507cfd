r"""The deep AE (Kuchaiev & Ginsburg 2017) on HetRec 2011 Last.fm 2K, the data section of
configs/ease_lastfm.py: configs/deep_ae_gowalla.py's model ([n -> 200 -> n], SELU, tied decoder,
code and input dropout 0.5, multinomial likelihood) with a batch of 128 for the 1,859 users.

  python train.py --config=configs/deep_ae_lastfm.py \
      --config.data.path=../shared/data/lastfm-2k/user_artists.dat
  python eval.py --workdir=workdirs/deep_ae_lastfm --best --split=test

Result (docs/results.md, Last.fm section): validation Recall@20 best at epoch 20 (0.3530; code
dropout 0.5 over 0), whose checkpoint gives test Recall@20 0.3457 / NDCG@20 0.3142; refit on all
non-test entries for 20 epochs (--config.data.val_fraction=0 --config.train.epochs=20, eval.py
without --best): 0.3557 / 0.3240.
"""

from configs import deep_ae_gowalla
from configs import ease_lastfm


def get_config():
  c = deep_ae_gowalla.get_config()
  c.data = ease_lastfm.lastfm_data()
  c.train.batch_size = 128
  c.train.epochs = 40                  # validation peaks early (epoch 20 of 150 evaluated every 10)
  c.train.eval_every_epochs = 2
  c.train.checkpoint_every_epochs = 2
  return c
