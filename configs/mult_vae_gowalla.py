r"""Mult-VAE (Liang et al. 2018) on the LightGCN Gowalla split: full-catalog top-N.

[n -> 600 -> 200 -> 600 -> n], tanh, input dropout 0.5, multinomial likelihood, KL annealed to 0.2.
Mult-DAE: --config.model.name=mult_dae --config.loss.kl=0 (or configs/mult_dae_gowalla.py).

  python train.py --config=configs/mult_vae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/mult_vae_gowalla --best --split=test

Result (docs/results.md): the 50 epochs (validation Recall@20 0.1583, 0.1596, 0.1595, 0.1590,
0.1604, 0.1612, 0.1602, 0.1588 at epochs 15, 20, ..., 50), the best validation checkpoint (epoch 40)
gives test Recall@20 0.1375 / NDCG@20 0.1011 (LightGCN definitions), below the published
0.1641 / 0.1335.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "mult_vae"
  c.model.layers = (600, 200)
  c.model.input_dropout = 0.5
  c.model.activation = "tanh"
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.multinomial = 1.0
  c.loss.kl = 1.0
  c.loss_anneal.total_steps = 20000
  c.loss_anneal.beta_cap = 0.2

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 500
  c.train.epochs = 50
  c.train.eval_every_epochs = 5
  c.train.checkpoint_every_epochs = 5

  c.eval = base.topn_eval(20)
  return c
