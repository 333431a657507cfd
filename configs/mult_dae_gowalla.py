r"""Mult-DAE (Liang et al. 2018) on the LightGCN Gowalla split: full-catalog top-N.

[n -> 600 -> 200 -> 600 -> n], tanh, input dropout 0.5, multinomial likelihood, no KL term.

  python train.py --config=configs/mult_dae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/mult_dae_gowalla --best --split=test

Result (docs/results.md): 20 epochs (--config.train.epochs=20), best validation Recall@20 at epoch 15
(0.1562), whose checkpoint gives test Recall@20 0.1361 / NDCG@20 0.1013 (LightGCN definitions).
"""

from configs import mult_vae_gowalla


def get_config():
  c = mult_vae_gowalla.get_config()
  c.model.name = "mult_dae"
  del c.loss["kl"]
  c.loss_anneal.total_steps = 0
  c.train.epochs = 50                  # the schedule its tabled run was made with
  c.train.eval_every_epochs = 5
  c.train.checkpoint_every_epochs = 5
  return c
