r"""I-AutoRec (Sedhain et al. 2015) on MovieLens 1M users 1..2999, the paper's 90/10 rating split.

The full ML-1M `ratings.dat` is not in shared/data; its first 2,999 users are
(`ml-1m/partial-users-1-2999/ratings.dat.gz`, 487,650 ratings of 3,615 movies). As in the paper:
10% of the ratings at random are the test split (`split="holdout"`), 10% of the rest validate (no
tuning on the test split), and the split is redrawn with `--config.seed` (the paper averages 5
draws). Rows = items (item-based), features = users; sigmoid encoder (500 units), identity decoder,
masked MSE + L2; Adam with a cosine decay, as configs/autorec_ml100k.py.

  python train.py --config=configs/autorec_ml1m.py \
    --config.data.path=../shared/data/ml-1m/partial-users-1-2999/ratings.dat.gz
  python eval.py --workdir=workdirs/autorec_ml1m --split=test

Result (docs/results.md, "MovieLens 1M users 1..2999: rating prediction"): validation RMSE 0.8466
(L2 1e-3, lr 1e-3 chosen there); refit on the train and validation ratings
(--config.data.val_fraction=0): test RMSE 0.8459; over 5 draws of the split (--config.seed=0..4)
mean 0.8457, sd 0.0019 (I-AutoRec's published 0.831 is on all 6,040 users). U-AutoRec:
--config.data.orientation=user --config.loss.l2=3e-4 (validation 0.8762 at epoch 80; its best
saved checkpoint, epoch 100, test 0.8838). Without a path it trains on embedded synthetic ratings.
"""

from configs import autorec_ml100k


def get_config():
  c = autorec_ml100k.get_config()
  c.data.split = "holdout"
  c.data.test_fraction = 0.1
  c.data.val_fraction = 0.1
  # Chosen on validation (docs/results.md): L2 1e-3 of 1e-4..4e-3, lr 1e-3 over 3e-3, 500 units
  # over 1000; the 200 epochs with the cosine decay of configs/autorec_ml100k.py.
  c.loss.l2 = 1e-3
  c.optim.lr = 1e-3
  return c
