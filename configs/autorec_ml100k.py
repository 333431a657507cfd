r"""I-AutoRec (Sedhain et al. 2015) on MovieLens-100K, canonical u1 split, rating prediction.

Rows = items (item-based), features = users; sigmoid encoder (500 units), identity decoder,
masked MSE + L2 on the weights. Validation = 10% of u1.base held out (no tuning on u1.test).

  python train.py --config=configs/autorec_ml100k.py --config.data.path=../shared/data/ml-100k/u.data
  python eval.py --workdir=workdirs/autorec_ml100k --split=test

Without a path it trains on embedded synthetic ratings. U-AutoRec: --config.data.orientation=user.
The RMSE it reaches is recorded in docs/results.md with the command that produced it.
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
  c.loss.l2 = 1e-3                  # weight of sum ||W||^2 / 2 relative to the per-rating mean

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 64
  c.train.epochs = 100
  c.train.eval_every_epochs = 10
  c.train.checkpoint_every_epochs = 10

  c.eval.evaluators = ("rating",)
  c.eval.metric = "rmse"
  c.eval.metric_mode = "min"
  return c
