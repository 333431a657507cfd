r"""Mult-DAE (Liang et al. 2018) on the LightGCN Gowalla split: full-catalog top-N.

[n -> 200 -> n] (the shape Liang et al. give the DAE), tanh, input dropout 0.5, multinomial
likelihood, no KL term, no weight decay; Adam 1e-3, batch 500, 40 epochs.

  python train.py --config=configs/mult_dae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/mult_dae_gowalla --best --split=test

Result (docs/results.md): validation Recall@20 best at epoch 30 (0.1953), whose checkpoint gives
test Recall@20 0.1664 / NDCG@20 0.1304 (LightGCN definitions); refitted on all of train.txt for
those 30 epochs (--config.data.val_fraction=0 --config.train.epochs=30, then eval.py without
--best): 0.1713 / 0.1349, above the published Mult-VAE 0.1641 / 0.1335. Chosen on validation over
[n -> 600 -> 200 -> 600 -> n] (0.1562 at epoch 15 of 20) and an L2 term on the kernels
(--config.loss.l2=0.02, vae_cf's lam 0.01, and 0.001: both far behind from epoch 2 on).
"""

from configs import mult_vae_gowalla


def get_config():
  c = mult_vae_gowalla.get_config()
  c.model.name = "mult_dae"
  c.model.layers = (200,)
  del c.loss["kl"]
  c.loss_anneal.total_steps = 0
  c.train.epochs = 40                  # the schedule of its tabled run
  c.train.eval_every_epochs = 2
  c.train.checkpoint_every_epochs = 2
  return c
