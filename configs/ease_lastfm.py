r"""EASE (Steck 2019) on HetRec 2011 Last.fm 2K (`user_artists.dat`: user, artist, play count),
read by the `csv` pipeline: every listened artist is a positive (play counts ignored), users and
artists with fewer than 5 entries dropped (iterated: a 5-core, 1,859 users x 2,823 artists,
71,355 entries), 20% of each user's artists held out as test and 10% of the rest as validation.

  python train.py --config=configs/ease_lastfm.py \
      --config.data.path=../shared/data/lastfm-2k/user_artists.dat
  python eval.py --workdir=workdirs/ease_lastfm --split=test

Result (docs/results.md, Last.fm section): L2 100 chosen on validation (Recall@20 0.3360; 0.3296
at 50, 0.3275 at 200); refit on all non-test entries (--config.data.val_fraction=0), test
Recall@20 0.3399 / NDCG@20 0.3148 (most popular: 0.1194 / 0.1046), a 1.4 s fit.
"""

from configs import base


def lastfm_data():
  """The Last.fm 2K section every Last.fm config shares (the file's header names its columns)."""
  return base.csv_data(delimiter="\t", user_col="userID", item_col="artistID",
                       value_col="weight", min_user_entries=5, min_item_entries=5,
                       split="per_user", test_fraction=0.2, val_fraction=0.1)


def get_config():
  c = base.get_base()
  c.data = lastfm_data()
  c.model.name = "ease"
  c.model.l2 = 100.0                 # chosen on validation among 10 .. 2000 (docs/results.md)
  c.model.sparse_input = True
  c.eval = base.topn_eval(20)
  return c
