r"""GLocal-K (Han et al. 2021) on MovieLens-100K, canonical u1 split, rating prediction: the
kernelized autoencoder of configs/kernel_ae_ml100k.py (the local kernel), pre-trained by that
config, then fine-tuned here with the global convolution kernel (jaxae/models/glocal_k.py), full
batch with L-BFGS as the authors do. GLocal-K's ML-100K settings: global kernel 3 x 3, dot scale 1,
the local kernel's lambda_2 = 20 and lambda_s = 0.006 (written per rating as in kernel_ae_ml100k).
One epoch is one full-batch L-BFGS iteration. Validation = 10% of u1.base held out; the fine-tuning
of the validation run starts from a kernel_ae run on the same carve.

  M=../shared/data/ml-100k/u.data
  python train.py --config=configs/kernel_ae_ml100k.py --config.data.path=$M \
    --config.data.val_fraction=0 --workdir=workdirs/kernel_ae_ml100k
  python train.py --config=configs/glocal_k_ml100k.py --config.data.path=$M \
    --config.data.val_fraction=0 --config.train.init_from=workdirs/kernel_ae_ml100k \
    --workdir=workdirs/glocal_k_ml100k
  python eval.py --workdir=workdirs/glocal_k_ml100k --split=test

Result: see docs/results.md (MovieLens-100K). Without ``init_from`` the whole model trains from
scratch; without a data path it trains on embedded synthetic ratings.
"""

from configs import kernel_ae_ml100k


def get_config():
  c = kernel_ae_ml100k.get_config()   # data, loss, L-BFGS as the local kernel's pre-training
  c.model.name = "glocal_k"
  c.model.gk_size = 3                 # the global kernel is gk_size x gk_size
  c.model.dot_scale = 1.0

  c.train.epochs = 300                # fine-tuning L-BFGS iterations (GLocal-K: 60 x 5)
  c.train.eval_every_epochs = 10
  c.train.checkpoint_every_epochs = 10
  c.eval.batch_size = 2048            # every call reads the whole matrix: all 1,682 rows at once
  return c
