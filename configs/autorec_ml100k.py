r"""I-AutoRec (Sedhain et al. 2015) on MovieLens-100K, canonical u1 split, rating prediction.

Rows = items (item-based), features = users; sigmoid encoder (500 units), identity decoder,
masked MSE + L2 on the weights. Validation = 10% of u1.base held out (no tuning on u1.test).

  python train.py --config=configs/autorec_ml100k.py --config.data.path=../shared/data/ml-100k/u.data
  python eval.py --workdir=workdirs/autorec_ml100k --split=test

Result (docs/results.md has the sweeps and commands): validation RMSE 0.9031; refit on all of
u1.base (--config.data.val_fraction=0) then u1.test RMSE 0.9045; u1..u5 (--config.data.split=uK)
mean 0.8962, standard deviation 0.0046. U-AutoRec: --config.data.orientation=user
--config.loss.l2=0.004 (u1.test RMSE 0.9672). Without a path it trains on embedded synthetic ratings.
"""

from ml_collections import config_dict

from configs import base


def get_config():
  c = base.get_base()
  c.data.name = "movielens"
  c.data.path = config_dict.placeholder(str)   # None: embedded synthetic data
  c.data.split = "u1"
  c.data.test_fraction = 0.1        # used by split="holdout" only
  c.data.val_fraction = 0.1
  c.data.orientation = "item"
  c.data.rating_range = (1.0, 5.0)

  c.model.name = "autorec"
  c.model.hidden = 500
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.masked_mse = 1.0
  c.loss.l2 = 4e-3                  # weight of sum ||W||^2 / 2 relative to the per-rating mean

  # lr, l2, batch, schedule and epochs: chosen by the validation sweeps in docs/results.md.
  c.optim.name = "adam"
  c.optim.lr = 3e-3
  c.optim.schedule = "cosine"

  c.train.batch_size = 256
  c.train.epochs = 200
  c.train.eval_every_epochs = 10
  c.train.checkpoint_every_epochs = 50

  c.eval.evaluators = ("rating",)
  c.eval.metric = "rmse"
  c.eval.metric_mode = "min"
  return c
