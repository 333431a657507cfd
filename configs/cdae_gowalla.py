r"""CDAE (Wu et al. 2016) on the LightGCN Gowalla split: full-catalog top-N.

Input corruption q = 0.7, a per-user node in the hidden layer, sigmoid output, BCE over the whole
catalog, no weight decay. Two settings differ from the paper's (50 sigmoid units, output biases from
0), both chosen on validation (as was q, over 0.5 and 0.85): 200 tanh hidden units, and the output
biases starting at -7, about the log-odds of the data's density (from 0 every configuration ranked
by popularity: the hidden layer was spent pushing every output down; jaxae/models/cdae.py,
docs/results.md).
Validation = 10% of the training entries; test = test.txt.

  python train.py --config=configs/cdae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/cdae_gowalla --best --split=test

Result (docs/results.md): best validation Recall@20 0.1980 at epoch 22 (0.1969 at 20, 0.1955 at 24,
then falling); eval.py --best (epoch 22): test Recall@20 0.1664 / NDCG@20 0.1317 (LightGCN
definitions); refitted on all of train.txt for 22 epochs (--config.train.epochs=22
--config.data.val_fraction=0): 0.1723 / 0.1374.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "cdae"
  c.model.hidden = 200
  c.model.corruption = 0.7
  c.model.output = "sigmoid"
  c.model.hidden_activation = "tanh"
  # About the log-odds of the training data's density, log(p / (1 - p)) with p = 810,128 /
  # (29,858 x 40,981) = 6.6e-4, i.e. -7.3: the outputs start at the base rate (see models/cdae.py).
  c.model.output_bias_init = -7.0
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.bce = 1.0
  c.loss.l2 = 0.0   # the first runs used 1e-5 (docs/results.md); kept as a key to override

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 256
  c.train.epochs = 24
  c.train.eval_every_epochs = 2
  c.train.checkpoint_every_epochs = 2

  c.eval = base.topn_eval(20)
  return c
