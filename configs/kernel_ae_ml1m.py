r"""The kernelized autoencoder (Muller et al. 2018; GLocal-K's local kernel) on MovieLens 1M users
1..2999, the 90/10 rating split of configs/autorec_ml1m.py, trained as GLocal-K's authors' code does
for ML-1M: full batch, L-BFGS restarted every 50 iterations (their 50-iteration scipy L-BFGS-B
calls), Glorot-uniform kernels, lambda_2 = 70 and lambda_s = 0.018 in their code's units.

Rows = items, features = users; two kernelized hidden layers of 500 sigmoid units and a kernelized
identity output layer, kernel vectors of 5 dimensions (configs/kernel_ae_ml100k.py's model). The
regularization per rating (``jaxae/models/kernel_ae.py``) over the refit's 438,885 training ratings
(90% of the file's 487,650): l2 = 2 * 70 / 438885, kernel_l2 = 2 * 0.018 / 438885. One epoch is
one full-batch L-BFGS iteration.

  M=../shared/data/ml-1m/partial-users-1-2999/ratings.dat.gz
  python train.py --config=configs/kernel_ae_ml1m.py --config.data.path=$M   # with validation
  python train.py --config=configs/kernel_ae_ml1m.py --config.data.path=$M \
    --config.data.val_fraction=0 --workdir=workdirs/kernel_ae_ml1m_refit
  python eval.py --workdir=workdirs/kernel_ae_ml1m_refit --split=test

Result (docs/results.md, "MovieLens 1M users 1..2999: rating prediction"): validation RMSE
0.8415-0.8430 from iteration 525 to the 1,000 kept; refit test RMSE 0.8410; over 5 draws of the
split (--config.seed=0..4) mean 0.8410, sd 0.0024, below configs/autorec_ml1m.py's I-AutoRec on
every draw (mean 0.8457). Without a path it trains on embedded synthetic ratings.
"""

from configs import autorec_ml1m
from configs import kernel_ae_ml100k

N_TRAIN_RATINGS = 438885            # the refit's training ratings (90% of 487,650)


def get_config():
  c = kernel_ae_ml100k.get_config()  # the model, dense loss, L-BFGS of the ML-100K config
  c.data = autorec_ml1m.get_config().data   # the 90/10 split, 10% of the rest validates
  c.loss.l2 = 2 * 70.0 / N_TRAIN_RATINGS           # lambda_2 = 70 (GLocal-K, ML-1M)
  c.loss.kernel_l2 = 2 * 0.018 / N_TRAIN_RATINGS   # lambda_s = 0.018
  c.optim.restart_every = 50         # the authors' ML-1M iter_p
  c.train.batch_size = 4096          # >= the 3,615 item rows: one full batch per epoch
  c.train.epochs = 1000              # the authors' 20 x 50 pre-training iterations
  c.train.eval_every_epochs = 25
  c.train.checkpoint_every_epochs = 25
  c.eval.batch_size = 4096           # all 3,615 rows in one call: configs/glocal_k_ml1m.py,
                                     # which reads the whole matrix each call, inherits it
  return c
