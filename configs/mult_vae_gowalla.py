r"""Mult-VAE (Liang et al. 2018) on the LightGCN Gowalla split: full-catalog top-N.

[n -> (mu, logvar) 200 -> n]: one 200-wide latent layer (the shape Liang et al. give the DAE;
their VAE has a 600-wide hidden layer on each side), tanh, input dropout 0.5, multinomial
likelihood, KL weight annealed to 0.5 over the first 300 steps (5 epochs), then held there; Adam
1e-3, batch 500, 100 epochs. Mult-DAE: configs/mult_dae_gowalla.py.

  python train.py --config=configs/mult_vae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/mult_vae_gowalla --best --split=test

Result (docs/results.md): validation Recall@20 best at epoch 62 (0.2072), whose checkpoint gives
test Recall@20 0.1805 / NDCG@20 0.1483 (LightGCN definitions; published 0.1641 / 0.1335); refitted
on all of train.txt for those 62 epochs (--config.data.val_fraction=0 --config.train.epochs=62,
then eval.py without --best): 0.1845 / 0.1519. Chosen on validation: the shape over
[n -> 600 -> 200 -> 600 -> n] (0.1735 at its best epoch, 26; "--config.model.layers=(600,200)"),
the KL cap 0.5 over 0.2, 0.7 and 1.0 and the input dropout 0.5 over 0.0 and 0.2 (both on the
600-200 model).
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "mult_vae"
  c.model.layers = (200,)
  c.model.input_dropout = 0.5
  c.model.activation = "tanh"
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.multinomial = 1.0
  c.loss.kl = 1.0
  c.loss_anneal.total_steps = 600     # beta = step / 600, so the cap is reached at step 300
  c.loss_anneal.beta_cap = 0.5

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 500
  c.train.epochs = 100
  c.train.eval_every_epochs = 2
  c.train.checkpoint_every_epochs = 2

  c.eval = base.topn_eval(20)
  return c
