r"""The deep AE (Kuchaiev & Ginsburg 2017) on implicit data: the LightGCN Gowalla split, top-N.

[n -> 600 -> 200 -> 600 -> n], SELU, tied (constrained) decoder, dropout on the code layer, input
entries dropped at train time (denoising, which implicit data needs: the paper's masked MSE sees only
the positives), multinomial likelihood over the catalog (the implicit-data loss; masked MSE on
all-ones targets has a trivial optimum). No re-feeding: its target f(x) is a dense rating
vector, which implicit data has no use for.

  python train.py --config=configs/deep_ae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/deep_ae_gowalla --best --split=test

Result (docs/results.md): 20 of the 50 epochs (--config.train.epochs=20; validation flat from epoch
15), then eval.py --best (epoch 15): test Recall@20 0.1589 / NDCG@20 0.1243 (LightGCN definitions);
these settings were not tuned.
"""

from configs import base


def get_config():
  c = base.get_base()
  c.data = base.lightgcn_data()

  c.model.name = "deep_ae"
  c.model.layers = (600, 200)
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
  c.train.eval_every_epochs = 5
  c.train.checkpoint_every_epochs = 5

  c.eval = base.topn_eval(20)
  return c
