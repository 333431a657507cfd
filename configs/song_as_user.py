r"""Melon seed B: the song-as-user autoencoder (rows = songs, features = playlists + one-hot meta).

Loss 15 * masked MSE + 200 * full MSE; SELU; dropout 0.8 on the code layer;
n -> 2048 -> 1024 -> 2048 -> n.
Song embeddings (the code layer) -> playlist embedding = sum of its songs -> cosine neighbour
playlists give the songs (the 100 nearest playlists that hold songs) and tags (the 200 nearest that
hold tags) of the answer, each neighbour voting with its cosine squared for songs and its cosine
for tags; a question with tags but no embedded song takes the songs that co-occur most with its
tags (seed A's cold start), and one with neither an embedded song nor a known tag finds its
neighbours by title (character bigrams). These recommender settings were chosen on the validation
questions of the real Melon sample (docs/results.md); the published seed B counts plain votes of
the 10 / 50 nearest playlists, takes the songs of tag-only questions from their tag-overlap
neighbours and answers questions with neither by popularity:

  --config.eval.recommender_args.song_neighbours=10 \
  --config.eval.recommender_args.tag_neighbours=50 \
  --config.eval.recommender_args.song_vote_power=0 \
  --config.eval.recommender_args.tag_vote_power=0 \
  --config.eval.recommender_args.titles=False \
  --config.eval.recommender_args.cooccurrence_songs=False

The main job, on the embedded synthetic Melon data (no files needed):

  python train.py --config=configs/song_as_user.py

It ends with the validation score beside the most-popular baseline on the same 186 questions;
measured (seed 0, 2-core AMD EPYC CPU, 42 s): music nDCG 0.487, tag nDCG 0.570, score 0.500 vs
most_popular 0.159.

On real Melon playlists (a folder with train.json [+ song_meta.json], or one playlists file that is
split with the Kakao Arena protocol):

  python train.py --config=configs/song_as_user.py --config.data.path=../shared/data/melon/test.json

What it reaches there is recorded in docs/results.md with the command that produced it.
"""

from ml_collections import config_dict

from configs import base


def get_config():
  c = base.get_base()
  c.data.name = "melon_song_as_user"
  c.data.path = config_dict.placeholder(str)   # None: the embedded synthetic Melon world
  c.data.synthetic_size = "small"    # about 2 minutes for the 50 epochs on 2 CPU cores
  c.data.split_seed = 0
  c.data.min_song_count = 2         # rows: songs in at least this many playlists
  c.data.min_tag_count = 5          # tag feature columns: tags in at least this many playlists
  c.data.max_tags = 1000
  c.data.min_song_tag_count = 1
  c.data.max_tags_per_song = 10
  c.data.genres = True
  c.data.detail_genres = False
  c.data.years = True
  c.data.months = True
  c.data.tags = True

  c.model.name = "deep_ae"
  c.model.layers = (2048, 1024)
  c.model.activation = "selu"
  c.model.tied = False
  c.model.code_dropout = 0.8
  c.model.last_activation = False
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.masked_mse = 15.0
  c.loss.mse = 200.0

  c.optim.name = "adam"
  c.optim.lr = 5e-4
  c.optim.weight_decay = 1e-4

  c.train.batch_size = 2048
  c.train.epochs = 50
  c.train.eval_every_epochs = 10
  c.train.checkpoint_every_epochs = 10
  c.train.log_every_steps = 20

  c.eval.evaluators = ("melon",)
  c.eval.recommender = "song_as_user"
  c.eval.recommender_args = dict(song_neighbours=100, song_vote_power=2.0, tag_neighbours=200,
                                 tag_vote_power=1.0, titles=True, cooccurrence_songs=True)
  c.eval.empty_answers = "skip"      # real Kakao splits have answers with no songs (or no tags)
  c.eval.baselines = ("most_popular",)   # scored on the same questions, printed beside the model
  c.eval.metric = "melon_score"
  c.eval.metric_mode = "max"
  return c
