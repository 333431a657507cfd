r"""Mult-DAE (Liang et al. 2018) on the LightGCN Gowalla split: full-catalog top-N.

[n -> 600 -> 200 -> 600 -> n], tanh, input dropout 0.5, multinomial likelihood, no KL term.

  python train.py --config=configs/mult_dae_gowalla.py --config.data.path=../shared/data/gowalla
  python eval.py --workdir=workdirs/mult_dae_gowalla --split=test

Recall@20 / NDCG@20 (LightGCN definitions) are recorded in docs/results.md with their commands.
"""

from configs import mult_vae_gowalla


def get_config():
  c = mult_vae_gowalla.get_config()
  c.model.name = "mult_dae"
  del c.loss["kl"]
  c.loss_anneal.total_steps = 0
  return c
