r"""CDAE (Wu et al. 2016) on the LightGCN Gowalla split: full-catalog top-N.

Input corruption q = 0.5, a per-user node in the 50-unit sigmoid hidden layer, sigmoid output, BCE.
Validation = 10% of each user's train.txt items; test = test.txt.

  python train.py --config=configs/cdae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/cdae_gowalla --best --split=test

Result (docs/results.md): 10 epochs (--config.train.epochs=10), best validation at epoch 5, test
Recall@20 0.0406 / NDCG@20 0.0313 (LightGCN definitions).
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "cdae"
  c.model.hidden = 50
  c.model.corruption = 0.5
  c.model.output = "sigmoid"
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.bce = 1.0
  c.loss.l2 = 1e-5

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 256
  c.train.epochs = 20
  c.train.eval_every_epochs = 5
  c.train.checkpoint_every_epochs = 5

  c.eval = base.topn_eval(20)
  return c
