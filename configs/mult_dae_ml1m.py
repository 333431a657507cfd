r"""Mult-DAE (Liang et al. 2018) under strong generalization on the MovieLens 1M users we hold:
configs/mult_vae_ml1m.py's data and metrics, configs/mult_dae_gowalla.py's model ([n -> 200 -> n],
tanh, input dropout 0.5, multinomial likelihood; Adam 1e-3, batch 500).

  python train.py --config=configs/mult_dae_ml1m.py \
      --config.data.path=../shared/data/ml-1m/partial-users-1-2999/ratings.dat.gz
  python eval.py --workdir=workdirs/mult_dae_ml1m --best --split=test

Result (docs/results.md, MovieLens 1M section): [n -> 200 -> n] chosen on validation over
[n -> 600 -> 200 -> 600 -> n] (0.3971 at epoch 65); validation NDCG@100 best at epoch 155
(0.4118), whose checkpoint gives test Recall@20 / Recall@50 / NDCG@100 0.3753 / 0.5020 / 0.4384;
refit on the train and validation users for 155 epochs (--config.data.val_fraction=0
--config.train.epochs=155, then eval.py without --best): 0.3825 / 0.4936 / 0.4407.
"""

from configs import mult_dae_gowalla
from configs import mult_vae_ml1m


def get_config():
  c = mult_dae_gowalla.get_config()
  c.data = mult_vae_ml1m.ml1m_heldout_users()
  c.train.epochs = 200                # best validation epoch 155 (docs/results.md)
  c.train.eval_every_epochs = 5
  c.train.checkpoint_every_epochs = 5
  c.eval = mult_vae_ml1m.heldout_users_eval()
  return c
