r"""The deep AE (Kuchaiev & Ginsburg 2017) on implicit data: the LightGCN Gowalla split, top-N.

[n -> 200 -> n] (one 200-wide code layer, chosen on validation over 600-200, as for Mult-DAE and
Mult-VAE), SELU, tied (constrained) decoder, dropout on the code layer, input
entries dropped at train time (denoising, which implicit data needs: the paper's masked MSE sees only
the positives), multinomial likelihood over the catalog (the implicit-data loss; masked MSE on
all-ones targets has a trivial optimum). No re-feeding: its target f(x) is a dense rating
vector, which implicit data has no use for.

  python train.py --config=configs/deep_ae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/deep_ae_gowalla --best --split=test

Result (docs/results.md): best validation Recall@20 0.1888 at epoch 42 of 50 (0.1697 at 10, 0.1861
at 30); eval.py --best (epoch 42): test Recall@20 0.1641 / NDCG@20 0.1311 (LightGCN definitions);
refitted on all of train.txt for 42 epochs (--config.train.epochs=42 --config.data.val_fraction=0):
0.1711 / 0.1366. The first shape, 600-200 ("--config.model.layers=(600,200)"), validated at 0.1752
and tested at 0.1589 / 0.1243.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "deep_ae"
  c.model.layers = (200,)
  c.model.activation = "selu"
  c.model.tied = True
  c.model.code_dropout = 0.5
  c.model.input_dropout = 0.5
  c.model.last_activation = False
  c.model.sparse_input = True
  c.model.dtype = "float32"

  c.loss.multinomial = 1.0

  c.optim.name = "adam"
  c.optim.lr = 1e-3

  c.train.batch_size = 500
  c.train.epochs = 50
  c.train.refeed_steps = 0
  c.train.eval_every_epochs = 2
  c.train.checkpoint_every_epochs = 2

  c.eval = base.topn_eval(20)
  return c
