r"""Melon seed A, part 1: the content autoencoder on the song-meta one-hot (release year, month,
genre, frequent tags), 457 -> 512 -> 512 -> 1024 in the seed; tied decoder, ReLU. Its code layer
gives the content-similar songs that densify the CF autoencoder's query.

  python train.py --config=configs/melon_content_ae.py

Needs song meta: the embedded synthetic data has it; real data needs song_meta.json beside the
playlists. Training is judged by its reconstruction loss (no row-wise evaluation split).
"""

from ml_collections import config_dict

from configs import base


def get_config():
  c = base.get_base()
  c.data.name = "melon_content"
  c.data.path = config_dict.placeholder(str)   # None: embedded synthetic data
  c.data.synthetic_size = "small"
  c.data.split_seed = 0
  c.data.min_song_count = 2
  c.data.min_tag_count = 5
  c.data.max_tags = 300
  c.data.min_song_tag_count = 1
  c.data.max_tags_per_song = 5
  c.data.genres = True
  c.data.detail_genres = False
  c.data.years = True
  c.data.months = True
  c.data.tags = True

  c.model.name = "deep_ae"
  c.model.layers = (512, 512, 1024)
  c.model.activation = "relu"
  c.model.tied = True
  c.model.code_dropout = 0.0
  c.model.last_activation = False
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.masked_mse = 1.0
  c.loss.mse = 1.0

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 256
  c.train.epochs = 10
  c.train.eval_every_epochs = 10
  c.train.checkpoint_every_epochs = 10

  c.eval.evaluators = ()
  c.eval.metric = "loss"
  c.eval.metric_mode = "min"
  return c
