r"""Melon seed A, part 2: the CF autoencoder over all songs (rows = playlists, columns = songs),
n -> 1024 -> n, SELU, untied. Validation scores the question playlists' hidden songs (top-100).

  python train.py --config=configs/melon_cf_ae.py [--config.data.path=../shared/data/melon/test.json]

The content autoencoder it is paired with is configs/melon_content_ae.py. Results are recorded in
docs/results.md with the commands that produced them.
"""

from ml_collections import config_dict

from configs import base


def get_config():
  c = base.get_base()
  c.data.name = "melon_cf"
  c.data.path = config_dict.placeholder(str)   # None: embedded synthetic data
  c.data.synthetic_size = "small"
  c.data.split_seed = 0
  c.data.min_song_count = 2

  c.model.name = "deep_ae"
  c.model.layers = (1024,)
  c.model.activation = "selu"
  c.model.tied = False
  c.model.code_dropout = 0.5
  c.model.last_activation = False
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.masked_mse = 15.0
  c.loss.mse = 200.0

  c.optim.name = "adam"
  c.optim.lr = 5e-4
  c.optim.weight_decay = 1e-4

  c.train.batch_size = 256
  c.train.epochs = 20
  c.train.eval_every_epochs = 5
  c.train.checkpoint_every_epochs = 5

  c.eval.evaluators = ("topn",)
  c.eval.ks = (100,)
  c.eval.metric = "ndcg@100"
  c.eval.metric_mode = "max"
  return c
