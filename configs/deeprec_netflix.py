r"""Deep AE of Kuchaiev & Ginsburg 2017 ("Training Deep AutoEncoders for Collaborative Filtering").

n -> 512 -> 512 -> 1024 -> 512 -> 512 -> n, SELU, dropout 0.8 on the code layer, momentum SGD lr 0.005,
batch 128, masked MSE, dense re-feeding once per step. Data: NVIDIA DeepRecommender's Netflix layout
(folders of user\titem\trating files):

  python train.py --config=configs/deeprec_netflix.py --config.data.path=PATH/TO/Netflix

Without a path it trains on embedded synthetic ratings. The RMSE it reaches is recorded in
docs/results.md with the command that produced it.
"""

from ml_collections import config_dict

from configs import base


def get_config():
  c = base.get_base()
  c.data.name = "netflix"
  c.data.path = config_dict.placeholder(str)   # None: embedded synthetic data
  c.data.train_dir = "N3M_TRAIN"
  c.data.val_dir = "N3M_VALID"
  c.data.test_dir = "N3M_TEST"
  c.data.orientation = "user"
  c.data.rating_range = (1.0, 5.0)

  c.model.name = "deep_ae"
  c.model.layers = (512, 512, 1024)
  c.model.activation = "selu"
  c.model.tied = False
  c.model.code_dropout = 0.8
  c.model.last_activation = True    # DeepRecommender applies the non-linearity on the last layer too
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.masked_mse = 1.0

  c.optim.name = "momentum"
  c.optim.lr = 0.005
  c.optim.momentum = 0.9

  c.train.batch_size = 128
  c.train.epochs = 12
  c.train.refeed_steps = 1

  c.eval.evaluators = ("rating",)
  c.eval.metric = "rmse"
  c.eval.metric_mode = "min"
  return c
